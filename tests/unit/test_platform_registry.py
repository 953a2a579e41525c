"""The platform registry: plugins are found through the entry point group
`herald.platforms`, the built-in ones included; a broken or ambiguous plugin is refused
before anything runs; unknown names are refused wherever a platform is named."""

from __future__ import annotations

import importlib
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from herald.shared.errors import ValidationFailed
from herald.shared.jobs.validation import validate_job
from herald.shared.platforms import registry
from herald.shared.platforms.plugin import Platform
from tests.support.toy_platform import install_toy

NOW = datetime(2026, 5, 1, tzinfo=UTC)


@pytest.fixture
def on_path(tmp_path: Path) -> Iterator[Path]:
    """A folder on sys.path for a test's plugins; the registry is found afresh after."""
    folder = tmp_path / "site"
    folder.mkdir()
    sys.path.insert(0, str(folder))
    importlib.invalidate_caches()
    try:
        yield folder
    finally:
        sys.path.remove(str(folder))
        sys.modules.pop("herald_toy", None)
        importlib.invalidate_caches()
        registry.reload()


def test_the_built_in_platforms_register_through_the_entry_point_group() -> None:
    found = registry.discover()
    assert {"instagram", "sandbox"} <= set(found)
    assert all(isinstance(p, Platform) for p in found.values())
    assert found["instagram"].media.caption.hashtags == 30


def test_a_plugin_on_the_path_is_found_and_used_by_validation(on_path: Path) -> None:
    assert "toy" not in registry.reload()
    body = {
        "platform": "toy",
        "connection_id": "7f9c2c1e-7a55-4a43-9b8b-3c2f6f1d2a11",
        "media_asset_ids": [],
        "media_type": "TEXT",
    }
    with pytest.raises(ValidationFailed) as unknown:
        validate_job(body, now=NOW, missed_after_seconds=60)
    assert "platform" in (unknown.value.fields or {})
    install_toy(on_path)
    assert "toy" in registry.reload()
    job = validate_job(body, now=NOW, missed_after_seconds=60)
    assert job.platform == "toy" and job.media_asset_ids == []
    with pytest.raises(ValidationFailed) as long:
        validate_job({**body, "caption": "y" * 41}, now=NOW, missed_after_seconds=60)
    assert "at most 40 characters on toy" in (long.value.fields or {})["caption"]


@pytest.mark.parametrize(
    ("entry_points", "message"),
    [
        ("[herald.platforms]\ntoy = herald_toy:ToyPublisher\n", "is not a Platform"),
        ("[herald.platforms]\nboard = herald_toy:Toy\n", "must equal the entry point's name"),
        ("[herald.platforms]\ntoy = herald_toy:Missing\n", "Missing"),
        ("[herald.platforms]\ninstagram = herald_toy:Toy\n", "registered twice"),
    ],
)
def test_a_broken_or_ambiguous_plugin_is_refused(
    on_path: Path, entry_points: str, message: str
) -> None:
    install_toy(on_path, entry_points=entry_points)
    with pytest.raises(registry.PluginError, match=message):
        registry.discover()


def test_require_names_the_known_platforms() -> None:
    with pytest.raises(ValidationFailed) as refused:
        registry.platforms().require("myspace")
    assert "instagram" in (refused.value.fields or {})["platform"]


SIGN_IN_HOOKS = ("consent_url", "exchange_code")


def test_every_installed_plugin_keeps_the_hooks_herald_calls() -> None:
    """Herald calls a plugin's hooks with the base class's arguments: a plugin whose
    override drops one fails at a user's sign-in, not at start; catch it here. A plugin
    with an app per host (`oauth_host`) also takes `host` and `app` in its sign-in hooks
    and registers its app; no other plugin gets them."""
    import inspect

    base = {
        name: inspect.signature(getattr(Platform, name))
        for name in ("consent_url", "exchange_code", "refresh_token", "check_metadata")
    }
    for plugin in registry.platforms().values():
        for name, expected in base.items():
            got = list(inspect.signature(getattr(type(plugin), name)).parameters)
            extra = ["host", "app"] if plugin.oauth_host and name in SIGN_IN_HOOKS else []
            assert got == [*expected.parameters, *extra], (plugin.name, name)
        if plugin.oauth_host:
            assert type(plugin).register_app is not Platform.register_app, plugin.name
    assert registry.platforms().require("mastodon").oauth_host == "instanceUrl"


def test_each_sign_in_needs_only_its_own_app_settings() -> None:
    """The settings a built-in sign-in names are real settings, and its own: no platform
    but Instagram and Facebook needs the Meta app, Mastodon needs none."""
    from herald.shared.infra.settings import Settings

    needs = {p.name: p.oauth_settings for p in registry.platforms().values() if p.oauth}
    for name, fields in needs.items():
        assert all(field in Settings.model_fields for field in fields), name
    meta = ("meta_app_id", "meta_app_secret")
    assert needs["linkedin"] == ("linkedin_client_id", "linkedin_client_secret")
    assert needs["x"] == ("x_client_id", "x_client_secret")
    assert needs["threads"] == ("threads_app_id", "threads_app_secret")
    assert needs["instagram"] == needs["facebook"] == meta
    assert needs["mastodon"] == ()
