"""The local stack's key files, and no invented key anywhere else."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest
from pydantic import SecretStr

from herald.shared.errors import ConfigError
from herald.shared.infra.runtime import Runtime
from herald.shared.infra.settings import Settings, create_private_file


def _no_chmod(*args: object, **kwargs: object) -> None:
    raise AssertionError("a key file was created with wider permissions, then narrowed")


def test_key_files_are_0600_from_their_first_byte_whatever_the_umask(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = Settings(stack_dir=tmp_path / "stack")
    old_umask = os.umask(0)  # the file's mode comes from its creation alone
    try:
        with monkeypatch.context() as m:
            for name in ("chmod", "fchmod", "lchmod"):
                m.setattr(os, name, _no_chmod, raising=False)
            m.setattr(Path, "chmod", _no_chmod)
            settings.ensure_local_secret_key()
            create_private_file(tmp_path / "stack" / "admin.key", "hk_unit")
    finally:
        os.umask(old_umask)
    for name in ("secret.key", "admin.key"):
        assert stat.S_IMODE((tmp_path / "stack" / name).stat().st_mode) == 0o600
    assert sorted(p.name for p in (tmp_path / "stack").iterdir()) == ["admin.key", "secret.key"]
    assert len(settings.secret_key_ring()) == 43  # a random key: base64 of 32 bytes


def test_the_first_creator_of_a_key_file_wins(tmp_path: Path) -> None:
    path = tmp_path / "admin.key"
    assert create_private_file(path, "first") == "first"
    assert create_private_file(path, "second") == "first"
    assert [p.name for p in tmp_path.iterdir()] == ["admin.key"]


def test_without_a_key_outside_the_local_stack_no_key_is_invented(tmp_path: Path) -> None:
    settings = Settings(stack_dir=tmp_path / "elsewhere")
    with pytest.raises(ConfigError, match="HERALD_SECRET_KEY is not set"):
        settings.secret_key_ring()
    with pytest.raises(ConfigError, match="HERALD_SECRET_KEY is not set"):
        Runtime.build(settings)
    assert not (tmp_path / "elsewhere").exists()


def test_a_given_key_is_used_and_no_local_key_is_made(tmp_path: Path) -> None:
    settings = Settings(stack_dir=tmp_path / "stack", secret_key=SecretStr("k1:my passphrase"))
    settings.ensure_local_secret_key()
    assert settings.secret_key_ring() == "k1:my passphrase"
    assert not (tmp_path / "stack").exists()
