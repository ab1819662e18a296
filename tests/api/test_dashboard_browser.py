"""The dashboard in a real browser against a real running pipeline (issue 18).

`packproof run` (broker, ingestor, sealer, API, simulated fleet) with the hot-container shipment;
the system's Chromium, driven by Playwright, loads the shipment page before the excursion
happens and watches it arrive over the live feed (server-sent events), then checks a reading
in the browser and a tampered copy of it. When the run has ended, `packproof api` serves the
same data directory and every chart's drawn points are compared with the API's series answer.
Screenshots are kept under build/test-artifacts/dashboard/.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from packproof.net import free_port
from tests.browserutil import ARTIFACTS, browser
from tests.conftest import Service

HOT = "SHP-001-0002"  # the default fleet's second shipment: a hot container, T.2 (README)


@pytest.fixture(scope="module")
def chromium() -> Iterator[Any]:
    yield from browser()


def drawn(page: Any, device: str) -> list[dict[str, Any]]:
    """Each chart of a pack: its quantity, the counts it states and the vertices of its line."""
    result: list[dict[str, Any]] = page.eval_on_selector_all(
        f".pack[data-device='{device}'] svg.chart",
        """svgs => svgs.map(s => ({quantity: s.dataset.quantity, total: +s.dataset.total, points: +s.dataset.points,
             vertices: s.querySelector('polyline.series').getAttribute('points').trim().split(/\\s+/).length}))""")
    return result


def test_live_excursion_verification_and_point_counts(chromium: Any, tmp_path: Path) -> None:
    data = tmp_path / "data"
    port = free_port()
    run = Service("run", "--data-dir", str(data), "--api-port", str(port), "--shipments", "2", "--packs", "2",
                  "--rate", "0.5", "--duration", "45", log=tmp_path / "run.log")
    base = f"http://127.0.0.1:{port}"
    page = chromium.new_page(viewport={"width": 1280, "height": 1000})
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    try:
        run.wait_port(port, timeout=60)
        page.goto(f"{base}/ui/shipments/{HOT}")
        page.wait_for_selector("body[data-rendered]", timeout=20_000)
        before = page.locator("#excursions tbody tr[data-excursion]").count()
        assert before == 0, "the excursion happened before the page loaded: slow the fleet down"
        # the excursion arrives over the live feed and is listed, marked new, without a reload
        page.wait_for_function("window.packproofLive.counts.excursion >= 1", timeout=60_000)
        page.wait_for_selector("#excursions tbody tr.new[data-excursion]", timeout=10_000)
        row = page.inner_text("#excursions tbody tr[data-excursion]")
        assert "T.2" in row and "temperature_c" in row
        assert page.inner_text("#live") == "live"
        page.screenshot(path=str(ARTIFACTS / "shipment-live-excursion.png"), full_page=True)

        # in-browser verification on the running pipeline: a signed reading, then a tampered copy
        page.goto(f"{base}/ui/verify?reading=SHP-001-0001-P01:2")
        page.wait_for_selector("body[data-rendered]", timeout=20_000)
        assert page.get_attribute("#verdict", "data-holds") == "true", page.inner_text("#steps")
        assert "✓device signature" in page.inner_text("#steps").replace("\n", "")
        page.click("button[data-tamper='reading value']")
        page.wait_for_function("document.querySelector('#verdict').dataset.holds === 'false'")
        assert page.get_attribute("#verdict", "data-broken") == "device signature"
        page.screenshot(path=str(ARTIFACTS / "verify-live-tampered.png"), full_page=True)

        page.goto(f"{base}/")
        page.wait_for_selector(f"#shipments tr[data-shipment='{HOT}'] .badge")
        page.screenshot(path=str(ARTIFACTS / "shipments.png"), full_page=True)
        page.goto(f"{base}/ui/ledger")
        page.wait_for_selector("body[data-rendered]")
        assert page.locator("#blocks tbody tr").count() > 0 and "the log" in page.inner_text("#checkpoint")
        page.screenshot(path=str(ARTIFACTS / "ledger.png"), full_page=True)
        assert run.proc.wait(timeout=90) == 0, run.output()
    finally:
        run.stop()

    # the run is over: the data stands still, so the charts must match the API's answers exactly
    port = free_port()
    api = Service("api", "--data-dir", str(data), "--port", str(port), log=tmp_path / "api.log")
    try:
        api.wait_port(port)
        base = f"http://127.0.0.1:{port}"
        page.goto(f"{base}/ui/shipments/{HOT}")
        page.wait_for_selector("body[data-rendered]", timeout=20_000)
        for device in (f"{HOT}-P01", f"{HOT}-P02"):
            charts = drawn(page, device)
            assert [c["quantity"] for c in charts] == ["temperature_c", "vibration.peak_g", "shock.peak_g",
                                                       "pressure_kpa"]
            for c in charts:
                answer = httpx.get(f"{base}/shipments/{HOT}/packs/{device}/series",
                                   params={"quantity": c["quantity"], "points": 800}).json()
                assert c["vertices"] == c["points"] == answer["points"] == len(answer["seq"]), (device, c)
                assert c["total"] == answer["total"] > 0
        excursions = page.locator("#excursions tbody tr[data-excursion]").count()
        condition = httpx.get(f"{base}/shipments/{HOT}/condition").json()
        assert excursions == len(condition["excursions"]) >= 2
        assert page.locator("svg.map polyline").count() == 2  # one track per pack
        page.screenshot(path=str(ARTIFACTS / "shipment.png"), full_page=True)
    finally:
        api.stop()
    assert not errors, errors
