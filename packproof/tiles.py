"""C2SP tlog-tiles (c2sp.org/tlog-tiles): the log's interior hashes as tiles, and every proof from them. Pure.

In the kernel beside its hasher (packproof/rfc6962.py) because the store answers log proofs from
its tiles (`Store.consistency_proof`, the contract of issue 16) and the store may not import from
anchor/; the sealer (anchor/) appends with it, the API and the verifiers read with it.

The log (issue 16) is one RFC 6962 tree over every sealed leaf. Its hashes are kept as tlog-tiles
keeps them, so the same bytes serve the store, the API and a static directory a web server can
publish ("Merkle Tree"):

* a tile holds up to 256 consecutive hashes of one tree level: tile level L holds the nodes at
  tree level 8·L (level 0: the leaf hashes), tile N of that level the nodes N·256 .. N·256+255;
* only complete subtrees' hashes appear, so at tree size s level L has ``s >> 8L`` nodes and its
  last tile is *partial* (width W < 256) unless that count is a multiple of 256;
* a tile is addressed ``tile/<L>/<N>[.p/<W>]``, N written in groups of three digits, each but the
  last prefixed ``x`` (1234067 -> ``x001/x234/067``); entry bundles ``tile/entries/<N>[.p/<W>]``
  hold the leaves' data, each entry a 2-byte big-endian length and the bytes.

A full tile never changes, and a partial tile is a prefix of every later version of itself, so
keeping only the newest version of each tile answers for every smaller tree size: every proof
and root below is computed for any size N <= the size the tiles were written at, from the tiles
alone, never from the leaves. Tiles are passed in as a mapping ``(level, index) -> bytes``
(32-byte hashes back to back); `needed_*` name the tiles a computation reads, so a store can
fetch exactly those first (the addresses depend on the sizes only, never on hash values).

The proofs are RFC 6962's (§2.1.1 inclusion, §2.1.2 consistency), walked as
anchor/consistency.py walks them, but with each subtree's root read from the tiles: the root of a
complete subtree of height h is at most 2**(h mod 8) - 1 hashes over one tile's slice, and the
root of a right-edge range is the fold of its complete subtrees (the binary digits of its size).
"""

from __future__ import annotations

import re
from bisect import bisect_left
from collections import ChainMap
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Final

from packproof.errors import ProofError
from packproof.rfc6962 import EMPTY_ROOT, HASH_LEN, NODE_STATE

__all__ = [
    "HEIGHT",
    "WIDTH",
    "Appended",
    "TileAddress",
    "Tiles",
    "append_leaves",
    "consistency_proof",
    "entries_path",
    "entry_bundle",
    "fold_multiproof",
    "inclusion_proof",
    "multi_inclusion_proof",
    "multiproof_ranges",
    "needed_for_consistency",
    "needed_for_inclusion",
    "needed_for_multi_inclusion",
    "needed_for_root",
    "parse_entry_bundle",
    "parse_tile_path",
    "root_at",
    "tile_path",
    "tile_width",
    "tiles_at",
]

HEIGHT: Final = 8  # tlog-tiles: "tiles of height 8", so 256 hashes wide
WIDTH: Final = 1 << HEIGHT
ENTRIES: Final = -1  # the level `parse_tile_path` gives an entry bundle

Tiles = Mapping[tuple[int, int], bytes]


@dataclass(frozen=True, slots=True)
class TileAddress:
    """One tile: `level` (ENTRIES for an entry bundle), `index`, and `width` (256 for a full tile)."""

    level: int
    index: int
    width: int

    @property
    def path(self) -> str:
        if self.level == ENTRIES:
            return entries_path(self.index, self.width)
        return tile_path(self.level, self.index, self.width)


def _index_path(n: int) -> str:
    """N in groups of three digits, every group but the last prefixed 'x' (tlog-tiles "Merkle Tree")."""
    digits = f"{n:03d}"
    digits = "0" * (-len(digits) % 3) + digits
    groups = [digits[i:i + 3] for i in range(0, len(digits), 3)]
    return "/".join([*(f"x{g}" for g in groups[:-1]), groups[-1]])


def tile_path(level: int, index: int, width: int = WIDTH) -> str:
    """``tile/<L>/<N>[.p/<W>]``: the URL path of a hash tile (a full tile has no ``.p/`` part)."""
    _check_address(level, index, width)
    return f"tile/{level}/{_index_path(index)}" + ("" if width == WIDTH else f".p/{width}")


def entries_path(index: int, width: int = WIDTH) -> str:
    """``tile/entries/<N>[.p/<W>]``: the URL path of an entry bundle."""
    _check_address(0, index, width)
    return f"tile/entries/{_index_path(index)}" + ("" if width == WIDTH else f".p/{width}")


def _check_address(level: int, index: int, width: int) -> None:
    if not 0 <= level <= 63 or index < 0 or not 1 <= width <= WIDTH:
        raise ProofError(f"tile level {level}, index {index}, width {width}: expected level 0..63, "
                         f"index >= 0, width 1..{WIDTH}")


_PATH: Final = re.compile(r"tile/(entries|0|[1-9][0-9]?)/((?:x[0-9]{3}/)*[0-9]{3})(?:\.p/([1-9][0-9]{0,2}))?")


def parse_tile_path(path: str) -> TileAddress:
    """The tile a ``tile/...`` path names; ProofError for anything tlog-tiles would not write.

    Exact: leading zeros only where the three-digit groups require them, no ``x000`` group in
    front, a partial width of 1..255; ``tile_path(parse_tile_path(p)) == p``.
    """
    m = _PATH.fullmatch(path)
    if m is None:
        raise ProofError(f"tile path {path!r} is not tile/<L>/<N>[.p/<W>] or tile/entries/<N>[.p/<W>]")
    level = ENTRIES if m[1] == "entries" else int(m[1])
    groups = m[2].replace("x", "").split("/")
    width = int(m[3]) if m[3] else WIDTH
    partial_full = m[3] is not None and width >= WIDTH
    if (len(groups) > 1 and groups[0] == "000") or partial_full or (level != ENTRIES and level > 63):
        raise ProofError(f"tile path {path!r} is not canonical")
    address = TileAddress(level, int("".join(groups)), width)
    if address.path != path:
        raise ProofError(f"tile path {path!r} is not canonical")
    return address


def tile_width(level: int, index: int, size: int) -> int:
    """How many hashes tile (`level`, `index`) holds at tree size `size` (0: it does not exist yet)."""
    nodes = size >> (HEIGHT * level)
    return max(0, min(WIDTH, nodes - index * WIDTH))


def tiles_at(size: int) -> Iterator[TileAddress]:
    """The right-edge tile of each level at `size` (the ones an append changes), lowest level first."""
    level = 0
    while (nodes := size >> (HEIGHT * level)) > 0:
        index = (nodes - 1) // WIDTH
        yield TileAddress(level, index, nodes - index * WIDTH)
        level += 1


# ---- reading subtree roots from tiles ---------------------------------------------------------

def _hashes(tiles: Tiles, level: int, index: int, start: int, count: int) -> bytes:
    """`count` hashes of tile (level, index) from position `start`, or ProofError naming what is missing."""
    try:
        tile = tiles[(level, index)]
    except KeyError:
        raise ProofError(f"tile {tile_path(level, index)} is missing") from None
    end = (start + count) * HASH_LEN
    if len(tile) < end or len(tile) % HASH_LEN:
        raise ProofError(f"tile {tile_path(level, index)} holds {len(tile)} bytes, expected at least {end} "
                         f"in whole {HASH_LEN}-byte hashes")
    return tile[start * HASH_LEN:end]


def _fold(data: bytes) -> bytes:
    """The root over 2**r hashes back to back (a complete subtree): pairwise, level by level."""
    copy = NODE_STATE.copy
    while len(data) > HASH_LEN:
        up = bytearray()
        for k in range(0, len(data), 2 * HASH_LEN):
            h = copy()
            h.update(data[k:k + 2 * HASH_LEN])
            up += h.digest()
        data = bytes(up)
    return data


def subtree_root(tiles: Tiles, height: int, index: int) -> bytes:
    """The root of the complete subtree of `height` over leaves index·2**height .. (index+1)·2**height - 1.

    Its 2**r nodes at tree level 8·L (height = 8·L + r) lie in one tile of level L, being aligned.
    """
    level, r = divmod(height, HEIGHT)
    first = index << r
    tile, start = divmod(first, WIDTH)
    return _fold(_hashes(tiles, level, tile, start, 1 << r))


def _range_root(tiles: Tiles, lo: int, hi: int) -> bytes:
    """MTH(D[lo:hi]) for a range the RFC 6962 split reaches (lo aligned to a power of two >= hi - lo).

    Such a range is its complete subtrees of decreasing size, one per binary digit of hi - lo,
    and its root their fold from the right (the RFC's left-heavy shape).
    """
    parts: list[bytes] = []
    while lo < hi:
        height = (hi - lo).bit_length() - 1
        if lo:
            height = min(height, (lo & -lo).bit_length() - 1)
        parts.append(subtree_root(tiles, height, lo >> height))
        lo += 1 << height
    root = parts.pop()
    while parts:
        h = NODE_STATE.copy()
        h.update(parts.pop())
        h.update(root)
        root = h.digest()
    return root


def _split(size: int) -> int:
    """k, the largest power of two smaller than `size` (size > 1): where RFC 6962 §2.1 splits a tree."""
    return 1 << ((size - 1).bit_length() - 1)


def root_at(size: int, tiles: Tiles) -> bytes:
    """The RFC 6962 root of the log at `size` (EMPTY_ROOT at 0), from tiles written at any size >= it."""
    if size < 0:
        raise ProofError(f"tree size {size} is negative")
    return EMPTY_ROOT if size == 0 else _range_root(tiles, 0, size)


def inclusion_proof(index: int, size: int, tiles: Tiles) -> list[bytes]:
    """PATH(index, D[size]) of RFC 6962 §2.1.1, bottom-up, from tiles (anchor/merkle.py checks it)."""
    if not 0 <= index < size:
        raise ProofError(f"leaf index {index} out of range for tree size {size}")
    top_down: list[bytes] = []
    lo, hi = 0, size
    while hi - lo > 1:
        k = _split(hi - lo)
        if index < lo + k:
            top_down.append(_range_root(tiles, lo + k, hi))
            hi = lo + k
        else:
            top_down.append(_range_root(tiles, lo, lo + k))
            lo += k
    top_down.reverse()
    return top_down


def consistency_proof(m: int, n: int, tiles: Tiles) -> list[bytes]:
    """PROOF(m, D[n]) of RFC 6962 §2.1.2 from tiles: empty for m == 0 and m == n (anchor/consistency.py
    explains those edges, and verifies the result), ProofError for m outside 0..n."""
    if not 0 <= m <= n:
        raise ProofError(f"old size {m} out of range for tree size {n}")
    if m in (0, n):
        return []
    top_down: list[bytes] = []
    lo, hi = 0, n
    own_root = True  # SUBPROOF's b: is D[lo:hi] the old tree's root itself?
    while hi != m:
        k = _split(hi - lo)
        if m - lo <= k:
            top_down.append(_range_root(tiles, lo + k, hi))
            hi = lo + k
        else:
            top_down.append(_range_root(tiles, lo, lo + k))
            lo += k
            own_root = False
    if not own_root:
        top_down.append(_range_root(tiles, lo, hi))
    top_down.reverse()
    return top_down


class _Recorder(Mapping[tuple[int, int], bytes]):
    """A stand-in for the tiles that notes which ones are read (and answers full tiles of zeros)."""

    _FULL: Final = bytes(WIDTH * HASH_LEN)

    def __init__(self) -> None:
        self.read: set[tuple[int, int]] = set()

    def __getitem__(self, key: tuple[int, int]) -> bytes:
        self.read.add(key)
        return self._FULL

    def __iter__(self) -> Iterator[tuple[int, int]]:
        return iter(self.read)

    def __len__(self) -> int:
        return len(self.read)


def _needed(work: Callable[[Tiles], object]) -> set[tuple[int, int]]:
    recorder = _Recorder()
    work(recorder)
    return recorder.read


def needed_for_root(size: int) -> set[tuple[int, int]]:
    """The tiles `root_at(size, ...)` reads."""
    return _needed(lambda t: root_at(size, t))


def needed_for_inclusion(index: int, size: int) -> set[tuple[int, int]]:
    """The tiles `inclusion_proof(index, size, ...)` reads."""
    return _needed(lambda t: inclusion_proof(index, size, t))


def needed_for_consistency(m: int, n: int) -> set[tuple[int, int]]:
    """The tiles `consistency_proof(m, n, ...)` reads."""
    return _needed(lambda t: consistency_proof(m, n, t))


# ---- appending ---------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class Appended:
    """What an append changed: the new size and root, and every tile it wrote (newest version)."""

    size: int
    root: bytes
    tiles: dict[tuple[int, int], bytes]


def append_leaves(size: int, edge: Tiles, leaves: Sequence[bytes]) -> Appended:
    """Append leaf hashes to the log of `size` whose right-edge tiles (`tiles_at(size)`) are `edge`.

    Level 0 takes the leaf hashes; each tile an append fills (256 hashes) contributes its root,
    one node of tree level 8·(L+1), to the tile level above, and so on up. Only the tiles that
    changed are returned, so a store writes those and nothing else.
    """
    for k, leaf in enumerate(leaves):
        if len(leaf) != HASH_LEN:
            raise ProofError(f"leaf hash {k} has {len(leaf)} bytes, expected {HASH_LEN}")
    changed: dict[tuple[int, int], bytes] = {}
    new: Sequence[bytes] = leaves
    level = 0
    while new:
        pos = size >> (HEIGHT * level)
        filled: list[bytes] = []
        i = 0
        while i < len(new):
            index, offset = divmod(pos, WIDTH)
            current = changed.get((level, index))
            if current is None:
                current = edge.get((level, index), b"") if offset else b""
            if len(current) != offset * HASH_LEN:
                raise ProofError(f"tile {tile_path(level, index)} holds {len(current) // HASH_LEN} hashes, expected "
                                 f"{offset} at tree size {size}")
            take = min(WIDTH - offset, len(new) - i)
            current += b"".join(new[i:i + take])
            changed[(level, index)] = current
            if offset + take == WIDTH:
                filled.append(_fold(current))
            pos += take
            i += take
        new = filled
        level += 1
    new_size = size + len(leaves)
    return Appended(new_size, root_at(new_size, ChainMap(changed, dict(edge))), changed)


# ---- entry bundles ------------------------------------------------------------------------------

def entry_bundle(entries: Sequence[bytes]) -> bytes:
    """The entries of one bundle (at most 256), each a 2-byte big-endian length then its bytes."""
    if len(entries) > WIDTH:
        raise ProofError(f"an entry bundle holds at most {WIDTH} entries, not {len(entries)}")
    out = bytearray()
    for k, entry in enumerate(entries):
        if len(entry) > 0xFFFF:
            raise ProofError(f"entry {k} has {len(entry)} bytes; a bundle entry holds at most 65535")
        out += len(entry).to_bytes(2, "big") + entry
    return bytes(out)


def parse_entry_bundle(data: bytes) -> list[bytes]:
    """The entries of a bundle; ProofError for a length running past the end."""
    entries: list[bytes] = []
    at = 0
    while at < len(data):
        if at + 2 > len(data):
            raise ProofError(f"entry bundle ends inside the length of entry {len(entries)}")
        n = int.from_bytes(data[at:at + 2], "big")
        if at + 2 + n > len(data):
            raise ProofError(f"entry {len(entries)} claims {n} bytes, only {len(data) - at - 2} remain")
        entries.append(data[at + 2:at + 2 + n])
        at += 2 + n
    if len(entries) > WIDTH:
        raise ProofError(f"entry bundle holds {len(entries)} entries, at most {WIDTH}")
    return entries


# ---- multi-leaf inclusion (issue 18: a certificate proves every reading of a pack at once) -----
#
# One proof for a set of leaves of one tree: walk RFC 6962's split (§2.1) from the root; a
# subtree holding none of the leaves is carried as its root, once; a subtree holding only
# wanted leaves (all of them) is rebuilt from them; any other splits again. The roots carried
# are therefore the union of the leaves' audit paths with every node shared between paths, or
# computable from the leaves themselves, left out. The walk below is the one home of that
# shape: the prover (`multi_inclusion_proof`, here) and the verifier
# (`packproof.anchor.merkle.root_from_multi_proof`) both run it.


def fold_multiproof(size: int, indices: Sequence[int], full: Callable[[int, int, int, int], bytes],
                    missing: Callable[[int, int], bytes]) -> bytes:
    """The root of a tree of `size` over the sorted, distinct leaf `indices`: `full(lo, hi, a, b)` is the
    root of leaves lo..hi-1, all of them wanted (indices[a:b]); `missing(lo, hi)` the root of a subtree
    with none of them, called left to right. ProofError for indices not sorted, distinct and in range."""
    n = len(indices)
    if n == 0:
        raise ProofError("a multi-leaf proof needs at least one leaf")
    for k, i in enumerate(indices):
        if not 0 <= i < size:
            raise ProofError(f"leaf index {i} out of range for tree size {size}")
        if k and i <= indices[k - 1]:
            raise ProofError(f"leaf indices must rise: {indices[k - 1]} then {i}")

    def walk(lo: int, hi: int, a: int, b: int) -> bytes:
        if a == b:
            return missing(lo, hi)
        if b - a == hi - lo:
            return full(lo, hi, a, b)
        k = _split(hi - lo)
        m = bisect_left(indices, lo + k, a, b)
        left = walk(lo, lo + k, a, m)
        right = walk(lo + k, hi, m, b)
        h = NODE_STATE.copy()
        h.update(left)
        h.update(right)
        return h.digest()

    return walk(0, size, 0, n)


def multiproof_ranges(indices: Sequence[int], size: int) -> list[tuple[int, int]]:
    """The subtrees (leaves lo..hi-1) whose roots a multi-leaf proof of `indices` carries, in order."""
    ranges: list[tuple[int, int]] = []

    def missing(lo: int, hi: int) -> bytes:
        ranges.append((lo, hi))
        return EMPTY_ROOT  # a placeholder: the prover needs the shape, not the root

    fold_multiproof(size, indices, lambda lo, hi, a, b: EMPTY_ROOT, missing)
    return ranges


def multi_inclusion_proof(indices: Sequence[int], size: int, tiles: Tiles) -> list[bytes]:
    """The multi-leaf inclusion proof of `indices` in the tree of `size`, from tiles: one root per
    subtree of `multiproof_ranges`, each once however many of the leaves' paths share it."""
    return [_range_root(tiles, lo, hi) for lo, hi in multiproof_ranges(indices, size)]


def needed_for_multi_inclusion(indices: Sequence[int], size: int) -> set[tuple[int, int]]:
    return _needed(lambda t: multi_inclusion_proof(indices, size, t))
