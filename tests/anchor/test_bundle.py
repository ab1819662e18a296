"""anchor.bundle assembles a reading's proof from the store: the typed ProofBundle whose
document the API serves, and by name what cannot be proven yet."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from benchmarks.bundle_corruptions import _reading_body, fetch_bundle, fill_store
from packproof.anchor.bundle import LedgerKeys, NotAReadingId, NotSealed, NotStored, proof_bundle
from packproof.anchor.merkle import leaf_hash
from packproof.anchor.proof import ProofBundle, verify_bundle
from packproof.crypto import read_public_key
from packproof.paths import DataDir
from packproof.records import IngestBatch, ReadingRow
from tests.storeutil import write_batch


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """dev-a and dev-u sealed as in the corruption benchmark, plus dev-u:7 stored but not sealed."""
    root = tmp_path_factory.mktemp("bundle") / "data"
    fill_store(root)

    async def unsealed() -> None:
        store = await DataDir(root).open_writer()
        try:
            body = _reading_body("dev-u", 7, None)
            await write_batch(store, IngestBatch(readings=[
                ReadingRow("dev-u", 7, "SHP-A", "2026-01-02T03:04:05Z", time.time(), body, leaf_hash(body))]))
        finally:
            await store.close()

    asyncio.run(unsealed())
    return root


def bundle(root: Path, reading_id: str) -> ProofBundle:
    async def go() -> ProofBundle:
        dirs = DataDir(root)
        store = await dirs.open_writer()
        try:
            return await proof_bundle(store, LedgerKeys(read_public_key(str(dirs.ledger_pub))), reading_id)
        finally:
            await store.close()

    return asyncio.run(go())


def test_the_typed_bundle_is_the_document_the_api_serves_and_it_verifies(data: Path) -> None:
    typed = bundle(data, "dev-a:2")
    assert typed.document() == fetch_bundle(data, "dev-a:2")
    assert all(c.ok is not False for c in verify_bundle(typed).checks)


@pytest.mark.parametrize(("reading_id", "error", "says"), [
    ("no-colon", NotAReadingId, "not of the form <device_id>:<seq>"),
    ("ghost:1", NotStored, "reading 'ghost:1' is not stored"),
    ("dev-u:7", NotSealed, "reading 'dev-u:7' is stored but not sealed yet"),
])
def test_what_cannot_be_proven_is_named(data: Path, reading_id: str, error: type[Exception], says: str) -> None:
    with pytest.raises(error, match=says):
        bundle(data, reading_id)
