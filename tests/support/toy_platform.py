"""A third-party platform plugin made on the fly: a package `herald_toy` and its
distribution's metadata (`herald_toy-1.0.dist-info` with an `entry_points.txt` in the group
`herald.platforms`) written into a folder, the way pip installs a package. Putting the folder
on `sys.path` (or PYTHONPATH) registers the platform; Herald's code is not touched.

The toy platform imports only `herald.platforms`. Its posts are lines in the file named by
`HERALD_TOY_POSTS`, so a test counts them (one per job: no double post)."""

from __future__ import annotations

from pathlib import Path

PLUGIN = '''
"""Toy: a platform of text and square pictures, posted to a file."""

import os
import uuid

from herald.platforms import (
    AccountRules,
    AttemptContext,
    CaptionLimits,
    Connection,
    MediaKind,
    MediaRules,
    MetadataField,
    Outcome,
    Platform,
    PlatformEnv,
    PublishOutcome,
    PublishRequest,
)


def _posts():
    path = os.environ["HERALD_TOY_POSTS"]
    if not os.path.exists(path):
        return []
    with open(path) as f:
        return [line.split() for line in f if line.strip()]


class ToyPublisher:
    name = "toy"
    posts_without_container = True

    async def publish(self, request, connection, ctx):
        for job_id, post_id in _posts():
            if job_id == request.job_id:  # an earlier call went through: never twice
                return PublishOutcome(Outcome.PUBLISHED, provider_ids={"post_id": post_id})
        await ctx.confirm_claim()
        post_id = uuid.uuid4().hex
        with open(os.environ["HERALD_TOY_POSTS"], "a") as f:
            f.write(f"{request.job_id} {post_id} {connection.metadata['board']}\\n")
        return PublishOutcome(Outcome.PUBLISHED, provider_ids={"post_id": post_id})

    async def confirm(self, request, connection, ctx):
        for job_id, post_id in _posts():
            if job_id == request.job_id:
                return PublishOutcome(Outcome.PUBLISHED, provider_ids={"post_id": post_id})
        return PublishOutcome(Outcome.UNCONFIRMED)

    async def close(self):
        return None


class Toy(Platform):
    name = "toy"
    title = "Toy board"
    media = MediaRules(
        kinds=(MediaKind("TEXT", min_assets=0, max_assets=0), MediaKind("SQUARE", video=False)),
        max_assets=1,
        caption=CaptionLimits(chars=40, hashtags=2),
        default_kind_allowed=False,
    )
    account = AccountRules(
        metadata=(MetadataField("board", "[a-z]{1,20}", "the board's name (a to z)"),),
        token_required=False,
    )

    def publisher(self, env: PlatformEnv) -> ToyPublisher:
        return ToyPublisher()
'''

METADATA = "Metadata-Version: 2.1\nName: herald-toy\nVersion: 1.0\n"
ENTRY_POINTS = "[herald.platforms]\ntoy = herald_toy:Toy\n"


def install_toy(folder: Path, *, entry_points: str = ENTRY_POINTS) -> Path:
    """Write the toy package and its dist-info into `folder` (put it on sys.path)."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "herald_toy.py").write_text(PLUGIN)
    info = folder / "herald_toy-1.0.dist-info"
    info.mkdir(exist_ok=True)
    (info / "METADATA").write_text(METADATA)
    (info / "entry_points.txt").write_text(entry_points)
    return folder
