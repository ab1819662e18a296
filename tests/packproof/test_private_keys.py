"""Private-key files are written in one place (`crypto.write_private_key`): PKCS8 PEM, 0600 from
the moment the file exists, and never over an existing key unless the caller says it is its own
staging file."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from packproof.crypto import load_or_create_ledger_key, new_private_key, public_key_bytes, write_private_key


def test_a_key_file_is_owner_only_and_reads_back(tmp_path: Path) -> None:
    key = new_private_key()
    path = tmp_path / "ledger.key"
    write_private_key(path, key)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert path.read_bytes().startswith(b"-----BEGIN PRIVATE KEY-----")
    assert public_key_bytes(load_or_create_ledger_key(path)) == public_key_bytes(key)


def test_an_existing_key_is_never_overwritten_unless_asked(tmp_path: Path) -> None:
    path = tmp_path / "k"
    first, second = new_private_key(), new_private_key()
    write_private_key(path, first)
    with pytest.raises(FileExistsError):
        write_private_key(path, second)
    assert public_key_bytes(load_or_create_ledger_key(path)) == public_key_bytes(first)
    write_private_key(path, second, overwrite=True)
    assert public_key_bytes(load_or_create_ledger_key(path)) == public_key_bytes(second)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
