"""The intake key file: made once with the mode asked, never half made, never made where it is only named."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from packproof.errors import ConfigError
from packproof.intake import create_intake_key, load_or_create_intake_key, read_intake_key, shared_intake_key
from packproof.paths import DataDir


def test_a_new_key_is_its_owners_alone_or_its_groups_too(tmp_path: Path) -> None:
    own = create_intake_key(tmp_path / "own.key")
    shared = create_intake_key(tmp_path / "shared" / "intake.key", group=os.getgid())
    assert (tmp_path / "own.key").stat().st_mode & 0o777 == 0o600
    assert (tmp_path / "shared" / "intake.key").stat().st_mode & 0o777 == 0o640
    assert read_intake_key(tmp_path / "own.key") == own and own != shared
    assert read_intake_key(tmp_path / "own.key").source == str(tmp_path / "own.key")


def test_an_existing_key_is_never_replaced(tmp_path: Path) -> None:
    path = tmp_path / "intake.key"
    first = create_intake_key(path)
    with pytest.raises(FileExistsError):
        create_intake_key(path)
    assert load_or_create_intake_key(path) == first


def test_a_key_that_cannot_get_its_group_is_removed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*_: object) -> None:
        raise PermissionError(1, "Operation not permitted")

    monkeypatch.setattr(os, "fchown", refuse)
    with pytest.raises(PermissionError):
        create_intake_key(tmp_path / "intake.key", group=12345)
    assert not (tmp_path / "intake.key").exists()


def test_a_named_key_file_is_read_never_made(tmp_path: Path) -> None:
    named = tmp_path / "keys" / "intake.key"
    with pytest.raises(ConfigError, match=r"does not exist: make it once with `packproof intake-key "):
        shared_intake_key(named)
    with pytest.raises(ConfigError, match="does not exist"):
        DataDir(tmp_path / "data", intake_key_file=named).writer_key()
    assert not named.exists() and not (tmp_path / "data" / "intake.key").exists()
    key = create_intake_key(named)
    assert DataDir(tmp_path / "data", intake_key_file=named).writer_key() == key
    assert DataDir(tmp_path / "data").writer_key() != key  # unnamed: DATA_DIR/intake.key, made on first use
    assert (tmp_path / "data" / "intake.key").stat().st_mode & 0o777 == 0o600
