"""The public-host rule for hosts a connection names and media Herald downloads: https only,
every resolved address public (IPv4 and IPv6), checked again on every connection; the
allowlist exempts named hosts only; media is capped in size and time."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from typing import Any

import aiohttp
import pytest

from herald.platforms import (
    HostRefused,
    MediaRefused,
    MediaUnavailable,
    check_host,
    fetch_media,
    public_session,
)
from herald.shared.platforms.hosts import ALLOW_ENV, is_public
from tests.fakes.media_host import MediaHost


@pytest.mark.parametrize(
    "address",
    [
        "127.0.0.1", "10.0.0.1", "172.16.5.4", "192.168.1.1", "169.254.169.254", "0.0.0.0",
        "224.0.0.1", "100.64.0.1", "::1", "::", "fe80::1", "fc00::1", "ff02::1",
        "::ffff:127.0.0.1", "::ffff:10.0.0.1", "240.0.0.1",
    ],
)  # fmt: skip
def test_non_public_addresses_are_refused(address: str) -> None:
    assert not is_public(address)


@pytest.mark.parametrize("address", ["93.184.216.34", "1.1.1.1", "2606:4700:4700::1111"])
def test_public_addresses_pass(address: str) -> None:
    assert is_public(address)


@pytest.fixture
def resolves_to(monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, list[str]]]:
    """Names resolved by this table (the way a hostile DNS name would answer)."""
    table: dict[str, list[str]] = {}
    real = socket.getaddrinfo

    def fake(host: str, *args: Any, **kwargs: Any) -> Any:
        if host in table:
            return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (a, 443)) for a in table[host]]
        return real(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", fake)
    monkeypatch.delenv(ALLOW_ENV, raising=False)
    yield table


@pytest.mark.parametrize(
    ("url", "why"),
    [
        ("https://127.0.0.1", "non-public"),
        ("https://10.0.0.1:8443/", "non-public"),
        ("https://[::1]/", "non-public"),
        ("https://inside.example/", "non-public"),  # resolves to 10.0.0.1
        ("https://mixed.example/", "non-public"),  # one public, one loopback address
        ("http://social.example/", "https"),
        ("ftp://social.example/", "https"),
        ("https://user:pw@social.example/", "user name"),
        ("not a url", "https"),
    ],
)
def test_a_host_is_refused_with_its_reason(
    resolves_to: dict[str, list[str]], url: str, why: str
) -> None:
    resolves_to.update(
        {
            "inside.example": ["10.0.0.1"],
            "mixed.example": ["93.184.216.34", "127.0.0.1"],
            "social.example": ["93.184.216.34"],
        }
    )
    with pytest.raises(HostRefused, match=why):
        check_host(url)


def test_a_public_https_host_passes(resolves_to: dict[str, list[str]]) -> None:
    resolves_to["social.example"] = ["93.184.216.34"]
    assert check_host("https://social.example/") == "https://social.example"


def test_the_allowlist_exempts_only_the_hosts_it_names(
    resolves_to: dict[str, list[str]], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(ALLOW_ENV, "127.0.0.1")
    assert check_host("http://127.0.0.1:9000") == "http://127.0.0.1:9000"
    with pytest.raises(HostRefused):
        check_host("https://10.0.0.1")


async def test_media_from_a_loopback_host_is_refused_unless_allowed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async with MediaHost() as cdn, public_session() as session:
        url = cdn.url("a/photo.jpg").replace("http://", "https://")
        monkeypatch.setenv(ALLOW_ENV, "")
        with pytest.raises(MediaRefused):
            await fetch_media(session, url, max_bytes=10_000, timeout_seconds=5)
        with pytest.raises(MediaRefused, match="https"):
            await fetch_media(session, cdn.url("a/photo.jpg"), max_bytes=10_000, timeout_seconds=5)
        assert cdn.requests == []  # refused before any connection


async def test_every_connection_is_checked_not_just_the_first_lookup(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A session from public_session refuses a loopback address at connect time, even for
    a URL no earlier check saw (a redirect, a name that now resolves elsewhere)."""
    monkeypatch.setenv(ALLOW_ENV, "")
    async with MediaHost() as cdn, public_session() as session:
        with pytest.raises(aiohttp.ClientConnectorError, match="non-public"):
            async with session.get(cdn.url("a/photo.jpg").replace("127.0.0.1", "localhost")):
                pass
        assert cdn.requests == []


async def test_media_is_capped_in_size_and_time(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ALLOW_ENV, "127.0.0.1")
    async with MediaHost(slow_seconds=5) as cdn, public_session() as session:
        got = await fetch_media(
            session, cdn.url("hop/a/photo.jpg"), max_bytes=10_000, timeout_seconds=5
        )
        assert got.content_type == "image/jpeg" and got.data.startswith(b"\xff\xd8")
        with pytest.raises(MediaRefused, match="cap"):
            await fetch_media(
                session, cdn.url("big/photo.jpg"), max_bytes=1_000_000, timeout_seconds=5
            )
        with pytest.raises(MediaRefused, match="404"):
            await fetch_media(
                session, cdn.url("gone/photo.jpg"), max_bytes=10_000, timeout_seconds=5
            )
        with pytest.raises(MediaUnavailable, match="within"):
            await fetch_media(
                session, cdn.url("slow/photo.jpg"), max_bytes=10_000, timeout_seconds=0.3
            )


def test_a_name_that_does_not_resolve_in_time_is_refused(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The check may run on the API's event loop: a slow name must not hold it."""
    import time

    from herald.shared.platforms import hosts

    monkeypatch.setattr(hosts, "LOOKUP_SECONDS", 0.2)
    monkeypatch.setattr(socket, "getaddrinfo", lambda *a, **k: time.sleep(2) or [])
    monkeypatch.delenv(ALLOW_ENV, raising=False)
    with pytest.raises(HostRefused, match="did not resolve within"):
        check_host("https://slow.example/")
