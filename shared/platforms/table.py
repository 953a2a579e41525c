"""The platform table (network, media kinds, limits) in Markdown, from the registry: what
`herald platforms --markdown` prints and the README shows (a test keeps them equal)."""

from __future__ import annotations

from collections.abc import Mapping

from herald.shared.platforms.plugin import MediaKind, Platform

BEGIN, END = "<!-- platforms:begin -->", "<!-- platforms:end -->"


def _kind(kind: MediaKind) -> str:
    count = (
        str(kind.min_assets)
        if kind.min_assets == kind.max_assets
        else f"{kind.min_assets} to {kind.max_assets}"
    )
    what = {True: " video", False: " image", None: ""}[kind.video]
    what += "s" if what and kind.max_assets > 1 else ""
    noun = "" if kind.max_assets == 0 else f" ({count}{what})"
    return f"`{kind.name}`{noun}"


def _size(limit: int | None) -> str:
    if limit is None:
        return "—"
    if limit % (1024 * 1024) == 0:
        return f"{limit // (1024 * 1024)} MiB"
    if limit % 1_000_000 == 0:
        return f"{limit // 1_000_000} MB"
    return f"{limit:,} bytes"


def _caption(p: Platform) -> str:
    c = p.media.caption
    parts = [f"{c.chars} {c.unit}"]
    if c.hashtags is not None:
        parts.append(f"{c.hashtags} #tags")
    if c.mentions is not None:
        parts.append(f"{c.mentions} @mentions")
    return ", ".join(parts)


def markdown(registry: Mapping[str, Platform]) -> str:
    rows = [
        "| network | `platform` | media kinds (assets) | caption | image / video size | sign-in |",
        "|---|---|---|---|---|---|",
    ]
    for name, p in registry.items():
        kinds = ", ".join(_kind(k) for k in p.media.kinds)
        sizes = f"{_size(p.media.max_image_bytes)} / {_size(p.media.max_video_bytes)}"
        sign_in = "OAuth" if p.oauth else "token" if p.account.token_required else "none"
        rows.append(
            f"| {p.title or name} | `{name}` | {kinds} | {_caption(p)} | {sizes} | {sign_in} |"
        )
    return "\n".join(rows) + "\n"


def section(text: str) -> str:
    """The table between the markers in `text` (a README)."""
    start, end = text.index(BEGIN) + len(BEGIN), text.index(END)
    return text[start:end].strip("\n") + "\n"
