"""C2SP tlog-tiles: paths, appends, and every root and proof from tiles against the references.

References: anchor/merkle.py and anchor/consistency.py (which compute from the leaves, and are
themselves checked against transparency-dev's vectors and a naive RFC 6962 tree), and
`tlog-scales` (PyPI, written by nobody here), which reads our tiles from a directory exactly as it
would read any tlog-tiles log and computes roots and proofs its own way.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from tlog_scales import tiles as scales_tiles
from tlog_scales.backend import LocalBackend
from tlog_scales.reader import TilesReader

from packproof import tiles
from packproof.anchor.consistency import consistency_proof as reference_consistency
from packproof.anchor.consistency import verify_consistency
from packproof.anchor.merkle import inclusion_proof as reference_inclusion
from packproof.anchor.merkle import root_from_inclusion_proof, root_from_leaf_hashes
from packproof.errors import ProofError
from packproof.rfc6962 import EMPTY_ROOT, leaf_hash
from packproof.tiles import (
    WIDTH,
    TileAddress,
    append_leaves,
    consistency_proof,
    entries_path,
    entry_bundle,
    inclusion_proof,
    needed_for_consistency,
    needed_for_inclusion,
    needed_for_root,
    parse_entry_bundle,
    parse_tile_path,
    root_at,
    tile_path,
    tiles_at,
)


def leaves(n: int, salt: bytes = b"") -> list[bytes]:
    return [leaf_hash(salt + i.to_bytes(8, "big")) for i in range(n)]


def build(hashes: list[bytes], batches: list[int] | None = None) -> dict[tuple[int, int], bytes]:
    """The tiles of a log grown by appending `hashes` in batches of the given sizes (one batch by default)."""
    store: dict[tuple[int, int], bytes] = {}
    size = 0
    for count in batches or [len(hashes)]:
        edge = {(a.level, a.index): store[(a.level, a.index)] for a in tiles_at(size)}
        out = append_leaves(size, edge, hashes[size:size + count])
        assert out.size == size + count
        assert out.root == root_from_leaf_hashes(hashes[:out.size])
        store.update(out.tiles)
        size = out.size
    return store


# ---- paths ----------------------------------------------------------------------------------

@pytest.mark.parametrize(("level", "index", "width", "path"), [
    (0, 0, 256, "tile/0/000"),
    (0, 1234067, 256, "tile/0/x001/x234/067"),  # the spec's example
    (1, 5, 7, "tile/1/005.p/7"),
    (2, 1000, 255, "tile/2/x001/000.p/255"),
    (0, 999, 1, "tile/0/999.p/1"),
])
def test_tile_paths(level: int, index: int, width: int, path: str) -> None:
    assert tile_path(level, index, width) == path
    assert parse_tile_path(path) == TileAddress(level, index, width)
    # tlog-scales spells the same path
    assert "/".join(scales_tiles.tile_path(level, index, 0 if width == WIDTH else width)) == path


def test_entries_paths() -> None:
    assert entries_path(1234067) == "tile/entries/x001/x234/067"
    assert entries_path(0, 3) == "tile/entries/000.p/3"
    assert parse_tile_path("tile/entries/000.p/3") == TileAddress(tiles.ENTRIES, 0, 3)


@pytest.mark.parametrize("path", [
    "tile/0/0", "tile/0/0000", "tile/0/x000/001", "tile/0/001.p/0", "tile/0/001.p/256", "tile/0/001.p/007",
    "tile/01/001", "tile/64/001", "tile/0/001/", "/tile/0/001", "tile/entries/x1/001", "tile/-1/000", "tile/0/x001",
    "tile/0/1a3",
])
def test_bad_tile_paths_are_refused(path: str) -> None:
    with pytest.raises(ProofError):
        parse_tile_path(path)


def test_tiles_at_gives_the_right_edge() -> None:
    assert list(tiles_at(0)) == []
    assert list(tiles_at(1)) == [TileAddress(0, 0, 1)]
    assert list(tiles_at(256)) == [TileAddress(0, 0, 256), TileAddress(1, 0, 1)]
    assert list(tiles_at(70000)) == [TileAddress(0, 273, 112), TileAddress(1, 1, 17), TileAddress(2, 0, 1)]


# ---- roots and proofs against the leaf-based references --------------------------------------

SIZES = [1, 2, 3, 7, 8, 255, 256, 257, 511, 512, 513, 1000, 65535, 65536, 65537, 70000]


@pytest.fixture(scope="module")
def big() -> tuple[list[bytes], dict[tuple[int, int], bytes]]:
    hashes = leaves(70000)
    return hashes, build(hashes, [1, 254, 1, 1, 300, 65000, 4443])


def test_root_at_every_older_size(big: tuple[list[bytes], dict[tuple[int, int], bytes]]) -> None:
    hashes, store = big
    assert root_at(0, store) == EMPTY_ROOT
    for n in [*SIZES, 4097, 12345, 69999]:
        assert root_at(n, store) == root_from_leaf_hashes(hashes[:n]), n


def test_inclusion_matches_the_reference(big: tuple[list[bytes], dict[tuple[int, int], bytes]]) -> None:
    hashes, store = big
    for n in SIZES:
        for i in sorted({0, 1, n // 2, n - 2, n - 1, 255, 256} & set(range(n))):
            proof = inclusion_proof(i, n, store)
            assert proof == reference_inclusion(i, hashes[:n]), (i, n)
            assert root_from_inclusion_proof(i, n, hashes[i], proof) == root_from_leaf_hashes(hashes[:n])


def test_consistency_matches_the_reference(big: tuple[list[bytes], dict[tuple[int, int], bytes]]) -> None:
    hashes, store = big
    for n in SIZES:
        for m in sorted({0, 1, 2, n // 3, n - 1, n, 256, 257} & set(range(n + 1))):
            proof = consistency_proof(m, n, store)
            assert proof == reference_consistency(m, hashes[:n]), (m, n)
            verify_consistency(m, n, proof, root_from_leaf_hashes(hashes[:m]), root_from_leaf_hashes(hashes[:n]))


def test_needed_tiles_are_exactly_what_is_read(big: tuple[list[bytes], dict[tuple[int, int], bytes]]) -> None:
    """A store fetches only `needed_*`: with only those, the answer is the same."""
    hashes, store = big
    for (m, n) in [(1, 70000), (300, 65537), (65536, 69999)]:
        only = {k: store[k] for k in needed_for_consistency(m, n)}
        assert consistency_proof(m, n, only) == consistency_proof(m, n, store)
        only = {k: store[k] for k in needed_for_inclusion(m, n)}
        assert inclusion_proof(m, n, only) == inclusion_proof(m, n, store)
        only = {k: store[k] for k in needed_for_root(n)}
        assert root_at(n, only) == root_from_leaf_hashes(hashes[:n])
    assert len(needed_for_inclusion(12345, 70000)) <= 4  # a proof reads a handful of tiles


def test_a_missing_or_short_tile_is_named() -> None:
    store = build(leaves(600))
    with pytest.raises(ProofError, match=r"tile tile/0/001 is missing"):
        inclusion_proof(300, 600, {k: v for k, v in store.items() if k != (0, 1)})
    short = {**store, (0, 2): store[(0, 2)][:-32]}
    with pytest.raises(ProofError, match=r"tile/0/002 holds"):
        root_at(600, short)
    with pytest.raises(ProofError, match=r"out of range"):
        inclusion_proof(600, 600, store)
    with pytest.raises(ProofError, match=r"out of range"):
        consistency_proof(601, 600, store)


def test_append_refuses_an_edge_of_the_wrong_width() -> None:
    store = build(leaves(300))
    with pytest.raises(ProofError, match=r"tile/0/001 holds 43 hashes, expected 44"):
        append_leaves(300, {(0, 1): store[(0, 1)][:-32], (1, 0): store[(1, 0)]}, leaves(1))
    with pytest.raises(ProofError, match=r"leaf hash 0 has 31 bytes"):
        append_leaves(0, {}, [b"x" * 31])


def test_append_writes_only_the_changed_tiles() -> None:
    hashes = leaves(1000)
    store = build(hashes[:600])
    edge = {(a.level, a.index): store[(a.level, a.index)] for a in tiles_at(600)}
    out = append_leaves(600, edge, hashes[600:700])
    assert set(out.tiles) == {(0, 2)}  # the partial level-0 tile only: no tile was filled
    out = append_leaves(600, edge, hashes[600:800])
    assert set(out.tiles) == {(0, 2), (0, 3), (1, 0)}  # tile 2 filled: its root joins level 1


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(min_value=0, max_value=700), min_size=1, max_size=8), st.data())
def test_any_batching_gives_the_same_tiles_and_proofs(batches: list[int], data: st.DataObject) -> None:
    total = sum(batches)
    hashes = leaves(total, b"h")
    store = build(hashes, batches)
    assert store == build(hashes) if total else store == {}
    if total:
        n = data.draw(st.integers(min_value=1, max_value=total))
        i = data.draw(st.integers(min_value=0, max_value=n - 1))
        m = data.draw(st.integers(min_value=0, max_value=n))
        assert inclusion_proof(i, n, store) == reference_inclusion(i, hashes[:n])
        assert consistency_proof(m, n, store) == reference_consistency(m, hashes[:n])


# ---- entry bundles -----------------------------------------------------------------------------

@given(st.lists(st.binary(max_size=300), max_size=WIDTH))
def test_entry_bundle_round_trip(entries: list[bytes]) -> None:
    assert parse_entry_bundle(entry_bundle(entries)) == entries


def test_entry_bundle_bad_input() -> None:
    with pytest.raises(ProofError, match="claims 5 bytes"):
        parse_entry_bundle(b"\x00\x05abc")
    with pytest.raises(ProofError, match="inside the length"):
        parse_entry_bundle(b"\x00\x01a\x00")
    with pytest.raises(ProofError, match="at most 65535"):
        entry_bundle([bytes(70000)])
    with pytest.raises(ProofError, match="at most 256"):
        entry_bundle([b""] * 257)


# ---- tlog-scales reads our tiles from a directory -----------------------------------------------

def write_dir(root: Path, store: dict[tuple[int, int], bytes], size: int) -> None:
    """The tiles as a static directory: each at its path for `size` (partial ones with .p/W)."""
    for (level, index), data in store.items():
        width = tiles.tile_width(level, index, size)
        if width == 0:
            continue
        path = root / tile_path(level, index, width)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data[:width * 32])


def test_tlog_scales_computes_the_same_roots_and_proofs(tmp_path: Path) -> None:
    size = 70000
    hashes = leaves(size)
    store = build(hashes, [5000, 65000])
    write_dir(tmp_path, store, size)
    reader = TilesReader(LocalBackend(tmp_path))
    reader.set_size(size)
    assert reader.calculate_root_hash() == root_at(size, store)
    for i in (0, 255, 256, 65535, 65536, 69999):
        theirs = reader.get_inclusion_proof(i, size)
        assert theirs.node_hashes == inclusion_proof(i, size, store), i
        theirs.check(hashes[i], root_at(size, store))
    for m, n in ((1, size), (256, size), (5000, 65537), (65536, size), (size, size)):
        theirs_c = reader.get_consistency_proof(m, n)
        assert theirs_c.node_hashes == consistency_proof(m, n, store), (m, n)
        theirs_c.check(root_at(m, store), root_at(n, store))


def test_hash_of_a_leaf_is_rfc6962() -> None:
    assert scales_tiles.leaf_hash(b"abc") == leaf_hash(b"abc") == hashlib.sha256(b"\x00abc").digest()
