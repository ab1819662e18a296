"""What every command group of the `packproof` command shares: the exit codes, the two
consoles, `fail`, and the way a command reaches the data directory and the store."""

from __future__ import annotations

import asyncio
from enum import IntEnum
from typing import NoReturn

import typer
from rich.console import Console

from packproof.app.config import Settings
from packproof.app.options import Flag
from packproof.errors import (
    BrokerError,
    ChainError,
    LedgerIntegrityError,
    PackproofError,
    ProofError,
    StoreError,
)
from packproof.paths import DataDir


class Exit(IntEnum):
    OK = 0
    INVALID = 1
    BAD_INPUT = 2
    UNREACHABLE = 3
    STORE = 4
    INTERNAL = 5
    NOT_ANCHORED = 6  # `verify --eth-rpc`: the proof holds, but no anchor on chain is shown to cover it (yet)


out = Console(soft_wrap=True)
err = Console(stderr=True, soft_wrap=True)

STALE_AFTER = Flag("api.stale_after", ("--stale-after",))  # `api` and `condition` judge staleness alike
HANDOVER_WINDOW = Flag("api.handover_window_s", ("--handover-window",))  # and name parties near a handover alike


def fail(code: Exit, message: str) -> NoReturn:
    err.print(f"[bold red]error:[/] {message}", highlight=False)
    raise typer.Exit(int(code))


def code_for(exc: PackproofError) -> Exit:
    if isinstance(exc, ProofError | LedgerIntegrityError):
        return Exit.INVALID
    if isinstance(exc, BrokerError | ChainError):
        return Exit.UNREACHABLE
    if isinstance(exc, StoreError):
        return Exit.STORE
    return Exit.BAD_INPUT


def data_dir_of(cfg: Settings) -> DataDir:
    """The data directory with the store the settings name (`--store`, PACKPROOF_STORE, the file)."""
    return DataDir(cfg.data_dir, store_url=cfg.store_url, key_file=cfg.seal.key_file,
                   intake_key_file=cfg.intake_key_file, tiles_dir=cfg.seal.tiles_dir, log_origin=cfg.seal.log_origin)


def store_call(cfg: Settings, work, *, write: bool = True):  # type: ignore[no-untyped-def]
    """Run `work(store)` on the configured store: as a writer (with the intake key: registry changes
    are sealed, so their rows must carry its MAC), or only to read (`write=False`: no key is made
    or needed, so a listing from another directory does not leave an intake.key behind)."""

    async def go():  # type: ignore[no-untyped-def]
        dirs = data_dir_of(cfg)
        from packproof.store import Store  # the store pulls in the database drivers: only commands that use it

        store = await dirs.open_writer() if write else await Store.open(dirs.store, readonly=True)
        try:
            return await work(store)
        finally:
            await store.close()

    return asyncio.run(go())


def key_id_of(public: bytes) -> str:
    from packproof.crypto import key_id  # not at start-up: cryptography

    return key_id(public)
