"""The transparency log's sealer side (issue 16): appending blocks, signing checkpoints, static tiles.

One RFC 6962 tree over every sealed leaf in sealing order (the blocks' dense id ranges one after
another), kept as C2SP tlog-tiles in the store (packproof/tiles.py, `Store` "log" section). The
sealer, per block, appends the block's leaf hashes (`append_block`: only the tiles that change),
records the log's size and root in the block header (v2), signs a C2SP tlog-checkpoint with the
key that signs the block (`sign_log_checkpoint`: key name = origin) and stores all of it in the
transaction that records the block. Then `publish` writes the changed tiles, entry bundles and the
`checkpoint` into a directory any web server can serve (C2SP tlog-tiles "Static"), each file
written aside and renamed into place, the checkpoint last, so a reader never sees a checkpoint
whose tiles are not there yet.

The origin is chosen once and kept in the store's meta: the configured one, or
`packproof.example/<key id of the ledger's first key>`.
"""

from __future__ import annotations

import asyncio
import os
import tempfile
import time
from collections.abc import Iterable, Mapping
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from packproof import tiles
from packproof.anchor.note import SignerKey, VerifierKey, parse_note, valid_key_name
from packproof.anchor.tlog_checkpoint import Checkpoint, parse_checkpoint, sign_checkpoint
from packproof.errors import ConfigError, NoteError, ProofError
from packproof.records import CheckpointRecord
from packproof.store import Store

__all__ = [
    "CHECKPOINT_FILE",
    "append_block",
    "default_origin",
    "log_verifier",
    "publish",
    "published_size",
    "sign_log_checkpoint",
]

CHECKPOINT_FILE = "checkpoint"
DEFAULT_ORIGIN_PREFIX = "packproof.example/"


def default_origin(first_key_id: str) -> str:
    """`packproof.example/<key id of the ledger's first key>` (the issue's suggested default)."""
    return DEFAULT_ORIGIN_PREFIX + first_key_id


def check_origin(origin: str) -> str:
    """An origin must be usable as the note key name (signed-note: no space, no "+")."""
    if not valid_key_name(origin):
        raise ConfigError(f"log origin {origin!r}: must be non-empty with no space or '+' (it is the "
                          "checkpoint's key name)")
    return origin


def log_verifier(origin: str, public_key: bytes) -> VerifierKey:
    """The log's note verifier key for a ledger public key (`name+hex8(id)+base64(0x01||key)`)."""
    return VerifierKey(origin, public_key)


def sign_log_checkpoint(origin: str, size: int, root: bytes, key: Ed25519PrivateKey,
                        signed_at: float | None = None) -> CheckpointRecord:
    """The checkpoint of the log at `size` as a signed note, signed by `key` under the name `origin`."""
    note = sign_checkpoint(Checkpoint(origin, size, root), [SignerKey.from_private_key(origin, key)])
    return CheckpointRecord(size, root, note.decode(), time.time() if signed_at is None else signed_at)


async def append_block(store: Store, size: int, leaves: list[bytes],
                       pending: Mapping[tuple[int, int], bytes] | None = None) -> tiles.Appended:
    """Append one block's leaf hashes to the stored log of `size`: reads only its right-edge tiles,
    from `pending` (tiles computed but not stored yet) where it has them, else from the store."""
    pending = pending or {}
    edge_keys = [(a.level, a.index) for a in tiles.tiles_at(size)]
    edge = {k: pending[k] for k in edge_keys if k in pending}
    edge.update(await store.log_tiles([k for k in edge_keys if k not in pending]))
    if len(edge) != len(edge_keys):
        missing = sorted(set(edge_keys) - edge.keys())
        raise ProofError(f"the log of size {size} lacks its tile {tiles.tile_path(*missing[0])} in the store")
    return tiles.append_leaves(size, edge, leaves)


# ---- the static directory -------------------------------------------------------------------


def _write_atomically(path: Path, data: bytes) -> None:
    """Write aside in the same directory, fsync, rename over: a reader sees the old file or the new one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def published_size(directory: Path) -> int:
    """The size of the checkpoint the directory serves; 0 if it has none (or one it cannot read)."""
    try:
        note = parse_note((directory / CHECKPOINT_FILE).read_bytes())
        return parse_checkpoint(note.text).size
    except (OSError, NoteError):
        return 0


def _changed_between(old: int, new: int) -> Iterable[tuple[int, int]]:
    """Every tile whose content differs between sizes `old` and `new` (old <= new), lowest level first."""
    level = 0
    while (nodes := new >> (tiles.HEIGHT * level)) > 0:
        before = old >> (tiles.HEIGHT * level)
        if nodes > before:
            yield from ((level, i) for i in range(before // tiles.WIDTH, (nodes - 1) // tiles.WIDTH + 1))
        level += 1


async def publish(store: Store, directory: Path, checkpoint: CheckpointRecord, cosigned_note: str | None = None,
                  ) -> int:
    """Bring the static directory up to `checkpoint`: the tiles and entry bundles that changed since
    the checkpoint it serves, then the checkpoint itself (`cosigned_note`: the note with witness
    cosignatures, when there are any). Returns how many files were written.

    Tiles are written at their width at this size (`.p/<W>` for a partial one); partial tiles of
    older widths stay, as tlog-tiles allows, so a reader at an older checkpoint still finds them.
    """
    old = min(published_size(directory), checkpoint.size)
    new = checkpoint.size
    keys = list(_changed_between(old, new))
    written = 0
    for start in range(0, len(keys), 500):
        chunk = keys[start:start + 500]
        found = await store.log_tiles(chunk)
        for level, index in chunk:
            width = tiles.tile_width(level, index, new)
            data = found.get((level, index), b"")
            if len(data) < width * 32:
                raise ProofError(f"the store's tile {tiles.tile_path(level, index)} holds {len(data) // 32} hashes, "
                                 f"fewer than the {width} of log size {new}")
            # each fsync off the event loop: the ingestor shares it with the sealer
            await asyncio.to_thread(_write_atomically, directory / tiles.tile_path(level, index, width),
                                    data[:width * 32])
            written += 1
            if level == 0:
                entries = await store.log_entries(index * tiles.WIDTH, index * tiles.WIDTH + width)
                await asyncio.to_thread(_write_atomically, directory / tiles.entries_path(index, width),
                                        tiles.entry_bundle(entries))
                written += 1
    await asyncio.to_thread(_write_atomically, directory / CHECKPOINT_FILE,
                            (cosigned_note or checkpoint.note).encode())
    return written + 1
