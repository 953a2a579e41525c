"""What a service prints about its settings never shows a password, key or token."""

from __future__ import annotations

import orjson
import pytest
from pydantic import SecretStr

from herald.shared.errors import ConfigError
from herald.shared.infra.settings import Settings, mask_credentials
from stack.config import parse_database_url

PASSWORD = "pw-Zq8x"


@pytest.mark.parametrize(
    ("text", "masked"),
    [
        (
            "postgresql://herald:pw-Zq8x@db.internal:5432/herald",
            "postgresql://herald:***@db.internal:5432/herald",
        ),
        ("redis://:pw-Zq8x@127.0.0.1:6379/0", "redis://:***@127.0.0.1:6379/0"),
        ("rediss://default:pw-Zq8x@cache/1", "rediss://default:***@cache/1"),
        ("postgresql://u:p@w-Zq8x@h/db", "postgresql://u:***@h/db"),  # an unencoded @ too
        ("postgresql://u:pw-Zq8x@h1:5432,h2:5433/db", "postgresql://u:***@h1:5432,h2:5433/db"),
        (
            "SASL_SSL://u:pw-Zq8x@b1:9093,SASL_SSL://u:pw-Zq8x@b2:9093",
            "SASL_SSL://u:***@b1:9093,SASL_SSL://u:***@b2:9093",
        ),
        (
            "postgresql://h/db?sslmode=require&password=pw-Zq8x",
            "postgresql://h/db?sslmode=require&password=***",
        ),
        ("host=h user=u password=pw-Zq8x dbname=d", "host=h user=u password=*** dbname=d"),
        ("host=h password='pw Zq8x' dbname=d", "host=h password=*** dbname=d"),
        ("postgresql://herald@127.0.0.1:5432/herald", "postgresql://herald@127.0.0.1:5432/herald"),
        ("https://graph.facebook.com/v25.0", "https://graph.facebook.com/v25.0"),
    ],
)
def test_credentials_in_urls_are_masked(text: str, masked: str) -> None:
    assert mask_credentials(text) == masked


def test_masked_settings_never_show_a_password_or_the_secret_key() -> None:
    settings = Settings(
        database_url=f"postgresql://herald:{PASSWORD}@db.internal:5432/herald",
        redis_url=f"redis://:{PASSWORD}@cache.internal:6379/0",
        kafka_bootstrap=f"SASL_SSL://svc:{PASSWORD}@broker:9093",
        secret_key=SecretStr(f"k1:{PASSWORD}"),
    )
    shown = settings.masked()
    text = orjson.dumps(shown).decode()
    assert PASSWORD not in text
    assert shown["database_url"] == "postgresql://herald:***@db.internal:5432/herald"
    assert shown["redis_url"] == "redis://:***@cache.internal:6379/0"
    assert shown["secret_key"] == "***"
    assert shown["db_schema"] == "herald"  # the rest is shown as it is


def test_a_malformed_database_url_is_refused_without_quoting_it() -> None:
    with pytest.raises(ConfigError) as caught:
        parse_database_url("postgresql://u:pw Zq8x@h/db")
    assert "Zq8x" not in str(caught.value)


def test_secret_settings_are_masked_and_settings_about_them_are_not() -> None:
    shown = Settings(
        secret_key=SecretStr("k" * 44),
        meta_app_secret=SecretStr(PASSWORD),
        threads_app_secret=SecretStr(PASSWORD),
        token_check_seconds=42.0,
    ).masked()
    assert shown["secret_key"] == shown["meta_app_secret"] == shown["threads_app_secret"] == "***"
    assert shown["token_check_seconds"] == 42.0
    assert PASSWORD not in orjson.dumps(shown).decode()
