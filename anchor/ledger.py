"""The signed, hash-chained ledger: an append-only file of blocks, one JSON line each.

A block seals one batch (docs/design.md, "Hashing, Merkle trees and the ledger"):

    header = {v, height, prev_hash, merkle_root, leaf_count, sealed_at, key_id}       v 1
    header = {v, height, prev_hash, merkle_root, leaf_count, sealed_at, key_id,
              log_size, log_root}                                                   v 2
    hash   = SHA-256(RFC 8785 canonical JSON of header)
    sig    = Ed25519(ledger key, hash)

Block 0's prev_hash is 32 zero bytes. A v2 header also records the transparency log (issue 16,
docs/design.md "The transparency log") after the block: its size and RFC 6962 root (hex). Blocks
sealed before the log existed stay v1, valid as they are; once a block is v2, every later one is.

The file lives apart from the off-chain store so it
can be handed to an auditor whole; every line is self-describing, and `verify_chain`
re-checks links, hashes and signatures and names the first broken height.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from packproof import failpoints
from packproof.canonical import canonical_json
from packproof.crypto import b64, key_id, public_key_bytes, unb64
from packproof.errors import LedgerIntegrityError

GENESIS_PREV = bytes(32)
HEADER_FIELDS = ("v", "height", "prev_hash", "merkle_root", "leaf_count", "sealed_at", "key_id")
LOG_FIELDS = ("log_size", "log_root")  # v2: the log after the block


def log_of(header: Mapping[str, Any]) -> tuple[int, bytes] | None:
    """A v2 header's (log_size, log_root); None for a v1 header (sealed before the log)."""
    if header.get("v") != 2:
        return None
    return int(header["log_size"]), bytes.fromhex(header["log_root"])


@dataclass(frozen=True, slots=True)
class Block:
    header: dict[str, Any]
    hash: bytes
    signature: bytes

    @property
    def height(self) -> int:
        return int(self.header["height"])

    @property
    def header_text(self) -> str:
        return canonical_json(self.header).decode()

    def to_json(self) -> dict[str, Any]:
        return {"header": self.header, "hash": self.hash.hex(), "signature": b64(self.signature)}

    def to_line(self) -> bytes:
        return canonical_json(self.to_json()) + b"\n"

    @classmethod
    def from_json(cls, obj: Any, where: str) -> Block:
        """Parse a block document; shape errors name `where` (a line or a height)."""
        if not isinstance(obj, dict) or set(obj) != {"header", "hash", "signature"}:
            raise LedgerIntegrityError(f"{where}: expected an object with header, hash, signature")
        header = obj["header"]
        version = header.get("v") if isinstance(header, dict) else None
        fields = HEADER_FIELDS + (LOG_FIELDS if version == 2 else ())
        if not isinstance(header, dict) or version not in (1, 2) or set(header) - {"next_key"} != set(fields):
            raise LedgerIntegrityError(
                f"{where}: a v1 header has exactly the fields {', '.join(HEADER_FIELDS)}, a v2 header also "
                f"{', '.join(LOG_FIELDS)} (and either optionally next_key)")
        if version == 2 and not (isinstance(header["log_size"], int) and not isinstance(header["log_size"], bool)
                                 and isinstance(header["log_root"], str) and len(header["log_root"]) == 64):
            raise LedgerIntegrityError(f"{where}: log_size must be an integer and log_root 64 hex digits")
        try:
            digest = bytes.fromhex(obj["hash"])
            sig = unb64(obj["signature"])
        except (TypeError, ValueError) as exc:
            raise LedgerIntegrityError(f"{where}: hash or signature is not hex/base64: {exc}") from exc
        if not isinstance(header["height"], int):
            raise LedgerIntegrityError(f"{where}: header height is not an integer")
        return cls(header, digest, sig)


def block_hash(header: dict[str, Any]) -> bytes:
    return hashlib.sha256(canonical_json(header)).digest()


def make_block(
    *, height: int, prev_hash: bytes, merkle_root: bytes, leaf_count: int, sealed_at: str,
    key: Ed25519PrivateKey, next_key: bytes | None = None, log: tuple[int, bytes] | None = None,
) -> Block:
    """`next_key`: announce a key rotation; this block is signed by the old key, the next by the new.
    `log`: the transparency log's (size, root) after this block, making it a v2 header."""
    header: dict[str, Any] = {
        "v": 1 if log is None else 2,
        "height": height,
        "prev_hash": prev_hash.hex(),
        "merkle_root": merkle_root.hex(),
        "leaf_count": leaf_count,
        "sealed_at": sealed_at,
        "key_id": key_id(public_key_bytes(key)),
    }
    if log is not None:
        header["log_size"], header["log_root"] = log[0], log[1].hex()
    if next_key is not None:
        header["next_key"] = b64(next_key)
    digest = block_hash(header)
    return Block(header, digest, key.sign(digest))


def check_block(block: Block, prev: Block | None, public_key: bytes) -> None:
    """Raise LedgerIntegrityError naming the height and the link that broke."""
    h = block.height
    expected_height = 0 if prev is None else prev.height + 1
    if h != expected_height:
        raise LedgerIntegrityError(f"block at position {expected_height} has height {h}", h)
    expected_prev = GENESIS_PREV if prev is None else prev.hash
    if block.header["prev_hash"] != expected_prev.hex():
        raise LedgerIntegrityError(
            f"block {h}: prev_hash {block.header['prev_hash']} does not link to the previous "
            f"block's hash {expected_prev.hex()}", h)
    computed = block_hash(block.header)
    if computed != block.hash:
        raise LedgerIntegrityError(
            f"block {h}: header hashes to {computed.hex()}, but the block says {block.hash.hex()}", h)
    _check_log_link(block, prev)
    if block.header["key_id"] != key_id(public_key):
        raise LedgerIntegrityError(
            f"block {h}: signed by key {block.header['key_id']}, expected key {key_id(public_key)}", h)
    try:
        Ed25519PublicKey.from_public_bytes(public_key).verify(block.signature, block.hash)
    except InvalidSignature as exc:
        raise LedgerIntegrityError(f"block {h}: signature does not verify with key {key_id(public_key)}", h) from exc


def _check_log_link(block: Block, prev: Block | None) -> None:
    """The log only grows, by exactly the block's leaves; v1 never follows v2 (a log is not dropped).

    Whether log_root is the right root needs the leaves: `packproof audit` recomputes it.
    """
    h, mine = block.height, log_of(block.header)
    before = None if prev is None else log_of(prev.header)
    if mine is None:
        if before is not None:
            raise LedgerIntegrityError(f"block {h} is a v1 block after v2 block {h - 1}: the log stopped", h)
        return
    expected = (0 if prev is None else before[0] if before is not None else None)
    if expected is not None and mine[0] != expected + block.header["leaf_count"]:
        raise LedgerIntegrityError(
            f"block {h}: log_size {mine[0]} is not the previous log size {expected} plus its "
            f"{block.header['leaf_count']} leaves (a truncated, rolled back or rewritten log)", h)


def next_key_of(block: Block) -> bytes | None:
    """The key a rotation block hands over to (its own signature, by the old key, vouches for it)."""
    return _announced(block.header)


def _announced(header: Mapping[str, Any]) -> bytes | None:
    announced = header.get("next_key")
    if announced is None:
        return None
    height = int(header["height"])
    try:
        key = unb64(announced)
    except ValueError as exc:
        raise LedgerIntegrityError(f"block {height}: next_key is not base64", height) from exc
    if len(key) != 32:
        raise LedgerIntegrityError(f"block {height}: next_key is not a 32-byte Ed25519 key", height)
    return key


def key_in_force(start_key: bytes, headers: Iterable[Mapping[str, Any]], height: int) -> bytes:
    """The ledger key that signs block `height`: `start_key` (the genesis key, or the key in force
    at the first of `headers`) followed through the rotations the block `headers` below `height`
    announce, in ascending height (headers at or above `height` are not read; blocks that rotate
    nothing may be left out).

    The one rule of ledger-key rotation, written once: a key a block announces signs from the
    next block on. Walking the chain, the verifier's trusted keys and the API's proofs ask here.
    It checks no signature: `verify_chain` does, asking this for the key of each block.
    """
    key = start_key
    for header in headers:
        if int(header["height"]) >= height:
            break
        key = _announced(header) or key
    return key


def keys_in_force(chain: Sequence[Block], genesis_key: bytes, heights: Sequence[int]) -> dict[int, bytes]:
    """The ledger key in force at each of `heights` (ascending), following the rotations announced
    in `chain` (blocks 0..) from the genesis key, once the chain below the highest of them holds
    (LedgerIntegrityError names the first broken block otherwise)."""
    verify_chain(chain[:heights[-1]], genesis_key)
    return {h: key_in_force(genesis_key, (b.header for b in chain), h) for h in heights}


def walk_chain(blocks: Sequence[Block], public_key: bytes, start_prev: Block | None = None,
               ) -> Iterator[tuple[Block, bytes, LedgerIntegrityError | None]]:
    """Check each block with the key in force at its height, following announced rotations.

    Yields (block, key it was checked with, the problem or None), so an auditor sees every
    broken block, not only the first. `public_key` is the key in force at the first block.
    """
    prev, key = start_prev, public_key
    for block in blocks:
        used = key
        try:
            check_block(block, prev, used)
            problem = None
            key = key_in_force(used, (block.header,), block.height + 1)
        except LedgerIntegrityError as exc:
            problem = exc
        yield block, used, problem
        prev = block


def verify_chain(blocks: Sequence[Block], public_key: bytes, start_prev: Block | None = None) -> bytes:
    """Raise on the first broken block; return the key in force after the last one."""
    key = public_key
    for block, used, problem in walk_chain(blocks, public_key, start_prev):
        if problem is not None:
            raise problem
        key = key_in_force(used, (block.header,), block.height + 1)
    return key


class LedgerFile:
    """The append-only ledger file: one fsync per block, nothing rewritten."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)

    def read(self) -> Iterator[Block]:
        if not self.path.exists():
            return
        with self.path.open("rb") as f:
            for lineno, line in enumerate(f, start=1):
                if not line.endswith(b"\n"):
                    raise LedgerIntegrityError(
                        f"{self.path}:{lineno}: last line is incomplete (a write cut short)")
                try:
                    obj = json.loads(line)
                except ValueError as exc:
                    raise LedgerIntegrityError(f"{self.path}:{lineno}: not JSON: {exc}") from exc
                yield Block.from_json(obj, f"{self.path}:{lineno}")

    def tail(self) -> Block | None:
        """The last complete block of the file, read from its end (a seal asks before every append).

        None when the file is absent or empty. An unparseable last line raises, naming it.
        """
        try:
            f = self.path.open("rb")
        except FileNotFoundError:
            return None
        with f:
            end = f.seek(0, os.SEEK_END)
            window = 4096
            while True:
                start = max(0, end - window)
                f.seek(start)
                data = f.read(end - start)
                body = data[: data.rfind(b"\n") + 1]  # complete lines only: a torn last line is not the tail
                cut = body.rfind(b"\n", 0, len(body) - 1)
                if cut >= 0 or start == 0:
                    line = body[cut + 1:]
                    break
                window *= 4
        if not line:
            return None
        try:
            return Block.from_json(json.loads(line), f"{self.path} (last line)")
        except ValueError as exc:
            raise LedgerIntegrityError(f"{self.path}: the last line is not JSON: {exc}") from exc

    def repair_tail(self) -> int:
        """Cut a final line left incomplete by a crash mid-write; returns bytes removed.

        Safe: a block is recorded in the store only after its line is complete and
        synced, so an incomplete line was never relied on.
        """
        if not self.path.exists():
            return 0
        data = self.path.read_bytes()
        keep = data.rfind(b"\n") + 1
        if keep == len(data):
            return 0
        with self.path.open("r+b") as f:
            f.truncate(keep)
            f.flush()
            os.fsync(f.fileno())
        return len(data) - keep

    def append(self, block: Block) -> None:
        """Append one block's line and fsync it, or leave the file as it was and raise.

        A full disk can cut a write short or fail the fsync: the file is then cut back to its
        last whole line, so the retry appends a clean one rather than one glued to a fragment.
        """
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            size = os.fstat(fd).st_size
            line = block.to_line()
            if failpoints.armed("seal.mid-ledger"):
                os.write(fd, line[: len(line) // 2])
                os.fsync(fd)
                failpoints.die("seal.mid-ledger")
            try:
                written = 0
                while written < len(line):  # os.write may write part of it (a full disk)
                    written += os.write(fd, line[written:])
                os.fsync(fd)
            except OSError:
                with contextlib.suppress(OSError):  # if this fails too, repair_tail cuts it at the next start
                    os.ftruncate(fd, size)
                    os.fsync(fd)
                raise
        finally:
            os.close(fd)
