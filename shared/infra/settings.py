"""Typed settings from ``HERALD_*`` environment variables, with local-stack defaults."""

from __future__ import annotations

import contextlib
import os
import re
import secrets
from pathlib import Path
from typing import Any

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from herald.shared.errors import ConfigError
from herald.shared.infra.crypto import new_secret_key
from herald.shared.infra.paths import default_stack_dir, relative_base

LOCAL_SECRET_KEY = "secret.key"  # the local stack's key, in its folder

# The password of a URL's user (`scheme://user:password@host`); the host part ends at a path,
# a query, a comma (several brokers or hosts) or the end, so an unencoded @ in a password
# is masked whole.
_URL_PASSWORD = re.compile(r"(://[^:/?#@\s]*):\S*?@(?=[^@\s/?#,]*(?:[/?#,\s]|$))")
# `password=...` in a URL query or a libpq `key=value` string, and the like.
_PARAM_SECRET = re.compile(
    r"(\b[\w.-]*(?:password|secret|token)\s*=\s*)('(?:\\.|[^'])*'|[^\s&,;]*)", re.IGNORECASE
)
# Settings whose whole value is a secret, whatever its type.
# A secret setting is named for what it holds (`secret_key`, `meta_app_secret`), unlike a
# setting about one (`token_check_seconds`).
_SECRET_NAME = re.compile(r"(secret|password|token|credential)s?(_key)?$", re.IGNORECASE)


def mask_credentials(text: str) -> str:
    """`text` with every password in a URL or a `password=` parameter replaced by ***."""
    return _PARAM_SECRET.sub(r"\1***", _URL_PASSWORD.sub(r"\1:***@", text))


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="HERALD_", frozen=True, extra="ignore")

    kafka_bootstrap: str = "127.0.0.1:9092"
    redis_url: str = "redis://127.0.0.1:6379/0"
    database_url: str = "postgresql://herald@127.0.0.1:5432/herald"
    stack_dir: Path = Field(default_factory=default_stack_dir)
    secret_key: SecretStr | None = None

    topic_prefix: str = ""
    redis_prefix: str = ""
    db_schema: str = Field(default="herald", pattern=r"^[a-z_][a-z0-9_]{0,62}$")

    max_attempts: int = Field(default=5, ge=1)
    backoff_base_seconds: float = Field(default=2.0, gt=0)
    backoff_max_seconds: float = Field(default=600.0, gt=0)
    missed_after_seconds: float = Field(default=48 * 3600, gt=0)
    stuck_after_seconds: float = Field(default=900.0, gt=0)
    redis_horizon_seconds: float = Field(default=24 * 3600, gt=0)
    container_poll_seconds: float = Field(default=300.0, gt=0)
    call_timeout_seconds: float = Field(default=30.0, gt=0)
    lease_seconds: float = Field(default=30.0, gt=0)
    reconcile_interval_seconds: float = Field(default=5.0, gt=0)
    retention_days: int = Field(default=30, ge=1)

    # INFO: work on jobs is logged as one summary line per few seconds (a count and the
    # first job ids); DEBUG adds a line for every job.
    log_level: str = Field(default="INFO", pattern=r"(?i)^(debug|info|warning|error)$")

    api_port: int = 8080
    metrics_port: int = 0
    # The address the API and the ops endpoints listen on: loopback unless a container or a
    # pod needs them reachable (0.0.0.0, or :: for every IPv6 and IPv4 address).
    bind_address: str = "127.0.0.1"
    # Requests one publisher copy works on at once (decision 0013: 512, was 256).
    publisher_max_in_flight: int = Field(default=512, ge=1)
    # The results service's CPU niceness (0-19; 0 = the same priority as the other
    # services). Its work comes after a post is live, so where services share CPUs the
    # publish path goes first (decision 0009).
    results_nice: int = Field(default=10, ge=0, le=19)
    # Results wait while the publishers are at least `results_hold_backlog` requests behind
    # on publish.request, but at most `results_hold_seconds` (0: never); decision 0012.
    results_hold_seconds: float = Field(default=5.0, ge=0)
    results_hold_backlog: int = Field(default=2000, ge=1)
    # The dispatcher keeps the publishers' backlog on publish.request (requests not yet
    # committed) under this many, so a burst waits in Redis, shared fairly between tenants
    # (decision 0023). Above copies x HERALD_PUBLISHER_MAX_IN_FLIGHT, or they idle.
    dispatch_window: int = Field(default=5000, ge=1)
    instagram_graph_url: str = "https://graph.facebook.com/v25.0"
    # Instagram API with Instagram Login: connections whose metadata says `"login":
    # "instagram"` are published through this host instead.
    instagram_login_graph_url: str = "https://graph.instagram.com/v25.0"
    # With it, every Graph call carries appsecret_proof (HMAC-SHA256 of the token).
    instagram_app_secret: SecretStr | None = None
    # OAuth sign-in (`/publishing/connections/oauth/{platform}/start`): the Meta app's id and
    # secret (for Instagram Login, the Instagram app's), and the public base URL of this API,
    # where the platform sends the browser back (`<base>/publishing/connections/oauth/
    # <platform>/callback`, registered with the app as a valid redirect URI).
    meta_app_id: str | None = None
    meta_app_secret: SecretStr | None = None
    oauth_redirect_base_url: str | None = None
    # Instagram Login's consent page and code exchange (the tests point them at a fake).
    instagram_authorize_url: str = "https://www.instagram.com/oauth/authorize"
    instagram_code_exchange_url: str = "https://api.instagram.com/oauth/access_token"
    # How often the scheduler looks for tokens due for a refresh (each is refreshed days
    # before it expires, at a time its platform's rules and some jitter choose).
    token_check_seconds: float = Field(default=60.0, gt=0)
    # Facebook Pages (Graph, version included) and Threads (its own host and version).
    facebook_graph_url: str = "https://graph.facebook.com/v25.0"
    facebook_authorize_url: str = "https://www.facebook.com/v25.0/dialog/oauth"
    threads_graph_url: str = "https://graph.threads.net/v1.0"
    # A Threads app has its own id and secret (not the Facebook app's), for its OAuth sign-in,
    # and its consent page (the tests point it at a fake).
    threads_app_id: str | None = None
    threads_app_secret: SecretStr | None = None
    threads_authorize_url: str = "https://threads.net/oauth/authorize"
    # LinkedIn: the REST API's host, the pinned API version (`LinkedIn-Version`, YYYYMM; a
    # sunset version fails every call), the OAuth host (consent page and token endpoint) and
    # the app's client id and secret. The tests point the URLs at a fake.
    linkedin_api_url: str = "https://api.linkedin.com"
    linkedin_version: str = Field(default="202601", pattern=r"^[0-9]{6}$")
    linkedin_oauth_url: str = "https://www.linkedin.com/oauth/v2"
    linkedin_client_id: str | None = None
    linkedin_client_secret: SecretStr | None = None
    # X: the API's host (posts, media, token endpoint), the consent page, the app's OAuth 2
    # client id and secret (a confidential client).
    x_api_url: str = "https://api.x.com"
    x_authorize_url: str = "https://x.com/i/oauth2/authorize"
    x_client_id: str | None = None
    x_client_secret: SecretStr | None = None

    # Kafka client properties (security, timeouts ...) are not settings here: any librdkafka
    # property is read as HERALD_KAFKA_<PROPERTY> or from HERALD_KAFKA_CONFIG_FILE by
    # kafka/properties.py, which passes through no HERALD_KAFKA_* field of this class.
    # Ports of the local stack beyond those named by the URLs above (`herald stack up`).
    kafka_controller_port: int = 9093
    prometheus_port: int = 9090
    # The Prometheus the API's health route reads (alerts, consumer lag, publishers up);
    # unset: the local stack's, on 127.0.0.1:prometheus_port.
    prometheus_url: str | None = None

    replica: str = Field(default_factory=lambda: secrets.token_hex(3))

    @model_validator(mode="after")
    def _stuck_after_an_attempt(self) -> Settings:
        """A job is re-dispatched as stuck only after the longest attempt could have ended:
        its container polls plus four call timeouts. Less, and a slow but live attempt
        would be dispatched a second time."""
        attempt = self.container_poll_seconds + 4 * self.call_timeout_seconds
        if self.stuck_after_seconds <= attempt:
            raise ValueError(
                f"HERALD_STUCK_AFTER_SECONDS ({self.stuck_after_seconds:g}) must exceed"
                " HERALD_CONTAINER_POLL_SECONDS + 4 x HERALD_CALL_TIMEOUT_SECONDS"
                f" ({attempt:g})"
            )
        return self

    def resolved_stack_dir(self) -> Path:
        path = self.stack_dir
        return path if path.is_absolute() else relative_base() / path

    def secret_key_ring(self) -> str:
        """HERALD_SECRET_KEY; unset, the local stack's key (`<stack dir>/secret.key`, made
        by `herald stack up` and `herald run`). Anywhere else no process invents a key of
        its own: it refuses to start."""
        if self.secret_key is not None and self.secret_key.get_secret_value().strip():
            return self.secret_key.get_secret_value()
        path = self.resolved_stack_dir() / LOCAL_SECRET_KEY
        try:
            return path.read_text().strip()
        except FileNotFoundError:
            raise ConfigError(
                f"HERALD_SECRET_KEY is not set (and {path} does not exist: that file is the"
                " local stack's only); give every process the same key"
            ) from None

    def ensure_local_secret_key(self) -> None:
        """Generate the local stack's key once, unless HERALD_SECRET_KEY is set."""
        if self.secret_key is None or not self.secret_key.get_secret_value().strip():
            path = self.resolved_stack_dir() / LOCAL_SECRET_KEY
            if not path.exists():
                create_private_file(path, new_secret_key())

    def masked(self) -> dict[str, Any]:
        """Effective configuration for printing: secret settings as ***, and every
        credential inside a URL or connection string masked."""
        data = self.model_dump(mode="json")
        for key, value in data.items():
            if _SECRET_NAME.search(key):
                data[key] = "***" if value else value
            elif isinstance(value, str):
                data[key] = mask_credentials(value)
        from herald.shared.infra.kafka.properties import client_properties

        data["kafka_client_properties"] = client_properties().masked()
        return data


def create_private_file(path: Path, text: str) -> str:
    """Create `path` holding `text`, readable by its owner alone from its first byte (made
    with mode 0600, so no umask widens it), unless it exists; answers the file's text
    either way (another process may have won the race)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "w") as out:
            out.write(text + "\n")
        with contextlib.suppress(FileExistsError):  # another process won the race
            os.link(tmp, path)  # the whole file appears at once, never half written
    finally:
        tmp.unlink()
    return path.read_text().strip()


def load_settings(**overrides: Any) -> Settings:
    return Settings(**overrides)
