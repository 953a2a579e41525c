"""Hosts a connection names, and media Herald downloads, on public https addresses only.

A connection that names its own host (a Mastodon instance, a Bluesky PDS) could point Herald
at an address inside its own network. So a host is accepted only as an ``https`` URL whose
name resolves to public addresses only: private, loopback, link-local, unspecified,
multicast and reserved addresses are refused, IPv4 and IPv6 (an IPv4 address mapped into
IPv6 is judged as IPv4). The check runs when a connection is created or changed
(``check_host``: a 422 naming the field) and again on every connection Herald opens
(``public_session``: its resolver drops refused addresses, so a name that resolves
elsewhere after the first check, or a redirect, reaches nothing private).

Media a plugin downloads to upload (``fetch_media``) passes the same check, and is capped in
size and time.

``HERALD_ALLOWED_PRIVATE_HOSTS`` (comma-separated host names or addresses, empty by default)
names hosts exempt from both rules, for tests against local fakes on 127.0.0.1 and plain
http. Never set it in production.
"""

from __future__ import annotations

import asyncio
import errno
import ipaddress
import os
import socket
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any
from urllib.parse import urljoin, urlsplit

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.resolver import DefaultResolver

ALLOW_ENV = "HERALD_ALLOWED_PRIVATE_HOSTS"
MAX_REDIRECTS = 3
LOOKUP_SECONDS = 3.0
_LOOKUPS = ThreadPoolExecutor(max_workers=4, thread_name_prefix="host-check")
Address = ipaddress.IPv4Address | ipaddress.IPv6Address


class HostRefused(ValueError):
    """A URL Herald will not call: not https, no host, or not a public address."""


class MediaRefused(ValueError):
    """Media that cannot be published (a refused host, too large, not found): permanent."""


class MediaUnavailable(Exception):
    """Media that could not be fetched now (timeout, server error): try again later."""


def allowed_private_hosts() -> frozenset[str]:
    raw = os.environ.get(ALLOW_ENV, "")
    return frozenset(h.strip().lower() for h in raw.split(",") if h.strip())


def is_public(address: str) -> bool:
    """Whether an IP address is one Herald may call."""
    try:
        ip: Address = ipaddress.ip_address(address.split("%", 1)[0])
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    refused = (
        ip.is_private
        or ip.is_loopback
        or ip.is_link_local
        or ip.is_unspecified
        or ip.is_multicast
        or ip.is_reserved
    )
    return not refused and ip.is_global


def _split(url: str) -> tuple[str, str]:
    """(scheme, host) of a URL, or HostRefused when it has none."""
    if not isinstance(url, str) or not url:
        raise HostRefused("must be an https URL")
    try:
        parts = urlsplit(url.strip())
        host = (parts.hostname or "").lower()
        parts.port  # noqa: B018 - raises ValueError on a bad port
    except ValueError as exc:
        raise HostRefused(f"is not a valid URL ({exc})") from None
    if not host:
        raise HostRefused("must be an https URL with a host name")
    if parts.username or parts.password:
        raise HostRefused("must not carry a user name or password")
    return parts.scheme.lower(), host


def _judge(host: str, addresses: list[str]) -> None:
    if not addresses:
        raise HostRefused(f"host {host} does not resolve")
    bad = sorted({a for a in addresses if not is_public(a)})
    if bad:
        raise HostRefused(f"host {host} resolves to a non-public address ({', '.join(bad)})")


def check_scheme(url: str) -> str:
    """The URL's host, when its scheme is https and, if the host is an IP address, a public
    one (the allow-listed hosts excepted). No DNS: for the check before every call, where
    ``PublicResolver`` judges the names (aiohttp never resolves an address)."""
    scheme, host = _split(url)
    allowed = host in allowed_private_hosts()
    if scheme != "https" and not (scheme == "http" and allowed):
        raise HostRefused("must be an https URL")
    literal = host.strip("[]")
    if not allowed and _is_address(literal) and not is_public(literal):
        raise HostRefused(f"host {host} is a non-public address")
    return host


def _is_address(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def check_host(url: str) -> str:
    """The URL without a trailing slash, when it is https on public addresses only (after
    resolving its name now). Raises HostRefused with the reason. Blocking (DNS)."""
    host = check_scheme(url)
    if host not in allowed_private_hosts():
        _judge(host, _lookup(host))
    return url.strip().rstrip("/")


def host_errors(metadata: Mapping[str, Any], key: str) -> dict[str, str]:
    """For ``Platform.check_metadata``: the error of the host URL under ``metadata[key]``
    (when it is a string; its pattern is the declaration's business), keyed
    ``metadata.<key>``."""
    url = metadata.get(key)
    if not isinstance(url, str):
        return {}
    try:
        check_host(url)
    except HostRefused as exc:
        return {f"metadata.{key}": str(exc)}
    return {}


def _lookup(host: str) -> list[str]:
    """The host's addresses, resolved within ``LOOKUP_SECONDS`` (the caller may be an event
    loop's thread: a slow name must not hold it long)."""
    future = _LOOKUPS.submit(socket.getaddrinfo, host, 443, type=socket.SOCK_STREAM)
    try:
        infos = future.result(timeout=LOOKUP_SECONDS)
    except TimeoutError:
        raise HostRefused(f"host {host} did not resolve within {LOOKUP_SECONDS:g}s") from None
    except (OSError, UnicodeError):
        raise HostRefused(f"host {host} does not resolve") from None
    return [str(i[4][0]) for i in infos]


class PublicResolver(AbstractResolver):
    """Resolves as aiohttp does, refusing names with any non-public address (unless the
    host is allow-listed): every connection is checked, not just the first lookup."""

    def __init__(self) -> None:
        self._inner = DefaultResolver()

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        found = await self._inner.resolve(host, port, family)
        if host.lower() not in allowed_private_hosts():
            try:
                _judge(host, [str(r["host"]) for r in found])
            except HostRefused as exc:
                raise OSError(errno.EACCES, str(exc)) from None
        return found

    async def close(self) -> None:
        await self._inner.close()


def public_session(**kwargs: Any) -> aiohttp.ClientSession:
    """An aiohttp session that connects to public addresses only."""
    return aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(resolver=PublicResolver()), **kwargs
    )


@dataclass(frozen=True)
class Media:
    url: str
    content_type: str
    data: bytes


async def fetch_media(
    session: aiohttp.ClientSession, url: str, *, max_bytes: int, timeout_seconds: float
) -> Media:
    """Download one asset from a public https host, at most ``max_bytes`` within
    ``timeout_seconds`` (redirects followed, each checked). ``session`` should come from
    ``public_session``. Raises MediaRefused (permanent) or MediaUnavailable (transient)."""
    try:
        async with asyncio.timeout(timeout_seconds):
            return await _fetch(session, url, max_bytes)
    except TimeoutError:
        raise MediaUnavailable(f"{url}: not fetched within {timeout_seconds:g}s") from None
    except HostRefused as exc:
        raise MediaRefused(f"{url}: {exc}") from None
    except aiohttp.ClientConnectorError as exc:
        if "non-public address" in str(exc):
            raise MediaRefused(f"{url}: {exc.os_error}") from None
        raise MediaUnavailable(f"{url}: {exc}") from None
    except aiohttp.ClientError as exc:
        raise MediaUnavailable(f"{url}: {type(exc).__name__}") from None


async def _fetch(session: aiohttp.ClientSession, url: str, max_bytes: int) -> Media:
    for _ in range(MAX_REDIRECTS + 1):
        check_scheme(url)
        async with session.get(url, allow_redirects=False) as response:
            if response.status in (301, 302, 303, 307, 308) and "Location" in response.headers:
                url = urljoin(url, response.headers["Location"])
                continue
            if response.status >= 500 or response.status == 429:
                raise MediaUnavailable(f"{url}: HTTP {response.status}")
            if response.status != 200:
                raise MediaRefused(f"{url}: HTTP {response.status}")
            declared = response.content_length
            if declared is not None and declared > max_bytes:
                raise MediaRefused(f"{url}: {declared} bytes, over the {max_bytes}-byte cap")
            data = bytearray()
            async for chunk in response.content.iter_chunked(65536):
                data += chunk
                if len(data) > max_bytes:
                    raise MediaRefused(f"{url}: over the {max_bytes}-byte cap")
            kind = response.content_type or "application/octet-stream"
            return Media(url, kind, bytes(data))
    raise MediaRefused(f"{url}: more than {MAX_REDIRECTS} redirects")
