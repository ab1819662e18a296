"""GET /anchors and the latest confirmed anchor on GET /checkpoint, through a real `packproof api`
over a store whose anchors rows are written as the anchoring loop writes them."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

import httpx

from packproof.net import free_port
from packproof.paths import DataDir
from packproof.records import AnchorMined, AnchorSent
from tests.api.test_log_api import _seal
from tests.conftest import Service
from tests.storeutil import driver_of

CONTRACT = "0x5FbDB2315678afecb367f032d93F642f64180aa3"


def _sizes(data: Path) -> list[int]:
    async def go() -> list[int]:
        store = await DataDir(data).open_writer()
        try:
            return [int(r[0]) for r in await driver_of(store).fetch("SELECT size FROM checkpoints ORDER BY size")]
        finally:
            await store.close()
    return asyncio.run(go())


def _anchor(data: Path, sizes: list[int], confirm: bool, first: int = 0) -> None:
    async def go() -> None:
        store = await DataDir(data).open_writer()
        try:
            for i, size in enumerate(sizes, first):
                cp = await store.checkpoint_at(size)
                assert cp is not None
                row = await store.record_anchor_sent(AnchorSent(31337, CONTRACT, size, cp.root, b"\x01" * 32,
                                                                bytes([i + 1]) * 32, i, 3, 1, 1_796_000_000.0 + i))
                await store.record_anchor_mined(row.id, AnchorMined(10 + i, bytes([0x10 + i]) * 32,
                                                                    1_796_000_012 + i, 98_723))
                if confirm:
                    await store.record_anchor_confirmed(row.id)
            await store.set_status("anchoring", {"component": "anchoring", "head": 20, "head_seen_unix": 1.0})
        finally:
            await store.close()
    asyncio.run(go())


def test_anchors_listed_and_the_latest_confirmed_on_the_checkpoint(tmp_path: Path) -> None:
    data = tmp_path / "data"
    _seal(data, 0, 250)
    sizes = _sizes(data)
    assert len(sizes) == 3  # blocks of 100 leaves at most
    port = free_port()
    api = Service("api", "--data-dir", str(data), "--port", str(port), log=tmp_path / "api.log")
    try:
        api.wait_port(port)
        url = f"http://127.0.0.1:{port}"
        plain = httpx.get(f"{url}/checkpoint", timeout=5)
        assert plain.status_code == 200 and "packproof-anchor" not in plain.headers
        as_json = httpx.get(f"{url}/checkpoint", headers={"Accept": "application/json"}, timeout=5).json()
        assert as_json["anchor"] is None
        assert httpx.get(f"{url}/anchors", timeout=5).json() == {"items": [], "head": None, "head_seen_at": None,
                                                                 "next_before": None}
        _anchor(data, sizes[:2], confirm=True)
        _anchor(data, sizes[2:], confirm=False, first=2)
        again = httpx.get(f"{url}/checkpoint", timeout=5)
        assert again.content == plain.content  # the C2SP body unchanged, byte for byte
        assert again.headers["packproof-anchor"] == (
            f"size={sizes[1]}; chain-id=31337; contract={CONTRACT}; tx=0x{'02' * 32}; block=11; "
            'block-time="2026-11-30T00:53:33.000Z"')
        # RFC 9110 5.6.6: parameters = *( OWS ";" OWS [ token "=" ( token / quoted-string ) ] )
        token, quoted = r"[!#$%&'*+.^_`|~0-9A-Za-z-]+", r'"(?:[^"\\]|\\.)*"'
        assert re.fullmatch(rf"{token}=(?:{token}|{quoted})(?:; {token}=(?:{token}|{quoted}))*",
                            again.headers["packproof-anchor"]), again.headers["packproof-anchor"]
        assert again.headers["vary"] == "Accept"
        both = httpx.get(f"{url}/checkpoint", headers={"Accept": "text/plain, application/json"}, timeout=5)
        assert both.content == plain.content
        as_json = httpx.get(f"{url}/checkpoint", headers={"Accept": "application/json"}, timeout=5).json()
        assert (as_json["size"], as_json["note"], as_json["anchor"]["size"]) == (sizes[2], plain.text, sizes[1])
        assert as_json["anchor"]["confirmations"] == 20 - 11 + 1
        page = httpx.get(f"{url}/anchors", params={"limit": 2}, timeout=5).json()
        assert [(a["size"], a["status"], a["confirmations"]) for a in page["items"]] == [(sizes[2], "mined", 9),
                                                                                         (sizes[1], "confirmed", 10)]
        assert page["head"] == 20 and page["items"][0]["gas_used"] == 98_723
        rest = httpx.get(f"{url}/anchors", params={"before": page["next_before"]}, timeout=5).json()
        assert [a["size"] for a in rest["items"]] == [sizes[0]] and rest["next_before"] is None
        bad = httpx.get(f"{url}/anchors", params={"limit": 0}, timeout=5)
        assert bad.status_code == 422 and "detail" in bad.json()
    finally:
        api.stop()
