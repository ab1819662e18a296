"""Condition certificates (issue 18): built from a real sealed store on both engines, served by a real
API server, checked offline by `packproof verify --certificate`, and refused, naming the claim, after
each of a table of edits. The PDF is converted back (pdftotext, pdftoppm); its pages are kept under
build/test-artifacts/certificates/."""

from __future__ import annotations

import asyncio
import base64
import gzip
import hashlib
import json
import shutil
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from packproof.anchor.anchor_check import note_hash
from packproof.api.certificate.build import pack_certificate, shipment_certificate
from packproof.api.certificate.claims import RULES, mean_kinetic_temperature, verdict_of
from packproof.api.certificate.document import PackCertificate, parse_certificate, readings_of
from packproof.api.certificate.verify import verify_certificate
from packproof.crypto import b64
from packproof.net import free_port
from packproof.paths import DataDir
from tests.certutil import LEDGER_PUBLIC, SealedPack, sealed_pack
from tests.conftest import Service, cli

ARTIFACTS = Path(__file__).resolve().parents[2] / "build" / "test-artifacts" / "certificates"


# ---- pure: the figures and the rules ------------------------------------------------------------


@pytest.mark.parametrize(("temps", "mkt"), [
    # By hand, ΔH/R = 83144 / 8.3144 = 10000 K: for 20 and 30 °C, exp(-10000/293.15) = 1.530e-15 and
    # exp(-10000/303.15) = 4.716e-15; their mean 3.123e-15; -ln of it 33.39906; 10000 / 33.39906 =
    # 299.4096 K = 26.26 °C (above the arithmetic mean 25: MKT weighs heat more).
    ([20.0, 30.0], 26.2599),
    ([25.0, 25.0, 25.0, 40.0], 31.2751),  # one hot reading in four lifts MKT by 6.3 K, the mean by 3.75
    ([5.0] * 10, 5.0),  # a constant is its own MKT
])
def test_mean_kinetic_temperature_known_answers(temps: list[float], mkt: float) -> None:
    assert mean_kinetic_temperature(temps) == pytest.approx(mkt, abs=5e-4)


def test_mkt_of_a_long_cold_series_does_not_underflow() -> None:
    assert mean_kinetic_temperature([-40.0] * 100_000) == pytest.approx(-40.0, abs=1e-9)


@pytest.mark.parametrize(("matched", "verdict", "rule"), [
    ([], "fit", "all-clear"),
    (["warning"], "inspect before use", "warning"),
    (["missing-readings", "T.3-violation"], "inspect before use", "T.3-violation"),
    (["warning", "T.4-violation", "missing-readings"], "do not install", "T.4-violation"),
    (["T.2-violation", "type-test-failed"], "do not install", "type-test-failed"),
    (["unsealed"], "inspect before use", "unsealed"),
])
def test_the_verdict_is_the_most_severe_rule_that_holds(matched: list[str], verdict: str, rule: str) -> None:
    assert verdict_of(matched) == (verdict, rule)
    assert {r.id for r in RULES} >= set(matched)


# ---- from a real sealed store, both engines -------------------------------------------------------


def _drop_seq(n: int) -> Callable[[int, Any], Any]:
    return lambda i, r: None if i == n else r


async def test_a_certificate_from_the_store_holds_and_states_what_happened(tmp_path: Path, store_url: str) -> None:
    sp = await sealed_pack(store_url, tmp_path, 240, "hot-container", edit=_drop_seq(200))
    try:
        cert = await pack_certificate(sp.store, sp.device.device_id, LEDGER_PUBLIC, time.time())
        c = cert.claims
        assert (c.overall.verdict, c.overall.rule) == ("do not install", "T.2-violation")
        assert {"T.2-violation", "missing-readings"} <= set(c.overall.reasons)
        assert [g.model_dump() for g in c.completeness.gaps] == [{"first_seq": 200, "last_seq": 200}]
        assert (c.completeness.expected, c.completeness.carried, c.completeness.unsealed) == (240, 239, 0)
        hot = [e for e in c.excursions if e.test == "T.2" and e.severity == "violation"]
        assert hot and all(e.custody is not None and e.custody.carriers == ["road"] for e in hot)
        assert c.un38_3 is not None and c.un38_3.report_id == "TR-2026-0815" and cert.subject.serial == sp.serial
        t2 = next(q for q in c.quantities if q.test == "T.2")
        assert t2.max is not None and t2.max.value > 72 and t2.time_beyond_s > 0
        assert [e.kind for e in c.custody.events] == ["pack-registered", "transporter-assigned", "picked-up",
                                                     "delivered"] and c.custody.chain_intact
        (verdict,) = verify_certificate(cert, LEDGER_PUBLIC)
        assert verdict.holds, [ch for ch in verdict.checks if ch.ok is False]
        by_serial = await pack_certificate(sp.store, sp.serial, LEDGER_PUBLIC, time.time())
        assert by_serial.subject.device_id == sp.device.device_id and by_serial.claims == cert.claims
        shipment = await shipment_certificate(sp.store, sp.device.shipment_id, LEDGER_PUBLIC, time.time())
        assert shipment.verdict == "do not install" and len(shipment.packs) == 1
        assert all(v.holds for v in verify_certificate(shipment, LEDGER_PUBLIC))
    finally:
        await sp.store.close()


async def test_readings_after_the_checkpoint_are_unsealed_and_not_claimed(tmp_path: Path, store_url: str) -> None:
    from packproof.records import IngestBatch, ReadingRow
    from packproof.rfc6962 import leaf_hash
    from packproof.timefmt import rfc3339
    from tests.storeutil import write_batch

    sp = await sealed_pack(store_url, tmp_path, 50)
    try:
        body = sp.device.reading(2e9)
        await write_batch(sp.store, IngestBatch(readings=[ReadingRow(sp.device.device_id, 50, sp.device.shipment_id,
                                                                     rfc3339(2e9), 2e9, body, leaf_hash(body))]))
        cert = await pack_certificate(sp.store, sp.device.device_id, LEDGER_PUBLIC, time.time())
        k = cert.claims.completeness
        assert (k.carried, k.unsealed, k.last_seq) == (50, 1, 49)
        assert cert.claims.overall.verdict == "inspect before use" and "unsealed" in cert.claims.overall.reasons
        assert verify_certificate(cert, LEDGER_PUBLIC)[0].holds
    finally:
        await sp.store.close()


async def test_a_pack_without_readings_is_inspect_before_use_and_still_verifies(tmp_path: Path,
                                                                                store_url: str) -> None:
    sp = await sealed_pack(store_url, tmp_path, 0)
    try:
        cert = await pack_certificate(sp.store, sp.device.device_id, LEDGER_PUBLIC, time.time())
        c = cert.claims
        assert (c.overall.verdict, c.overall.rule, c.mkt_c, c.completeness.expected) == (
            "inspect before use", "no-readings", None, 0)
        assert {t.verdict for t in c.tests} == {"no data"}
        assert verify_certificate(cert, LEDGER_PUBLIC)[0].holds
    finally:
        await sp.store.close()


async def test_a_silent_sensor_is_a_declared_silent_period_not_fine(tmp_path: Path) -> None:
    from packproof.timefmt import rfc3339

    def later(i: int, r: Any) -> Any:  # the sensor stops for two hours after seq 99, then goes on
        return r.model_copy(update={"ts": rfc3339(r.epoch + 7200)}) if i >= 100 else r

    sp = await sealed_pack(f"sqlite:///{tmp_path / 's.db'}", tmp_path, 150, edit=later)
    try:
        c = (await pack_certificate(sp.store, sp.device.device_id, LEDGER_PUBLIC, time.time())).claims
        assert [(s.after_seq, s.before_seq, s.seconds) for s in c.completeness.silent] == [(99, 100, 7260.0)]
        assert c.completeness.silent_limit_s == 600.0 and not c.completeness.gaps
        assert (c.overall.verdict, c.overall.rule) == ("inspect before use", "silent-period")
        t2 = next(q for q in c.quantities if q.test == "T.2")
        assert t2.time_in_warning_s + t2.time_beyond_s == 0  # the silence is not counted as any state
    finally:
        await sp.store.close()


# ---- the edit table: verify exits 1 naming the claim --------------------------------------------


async def anchor_later(sp: SealedPack) -> None:
    """A witness cosigns the pack's checkpoint (a certificate binds to it), the log grows by one more
    block, and an anchor of that later checkpoint is recorded confirmed as the anchoring loop records it
    (the chain itself is in tests/test_anchor_verify.py; these edits are checked offline)."""
    from packproof.anchor.cosignature import CosignerKey
    from packproof.anchor.note import parse_note
    from packproof.records import AnchorMined, AnchorSent, IngestBatch, ReadingRow
    from packproof.rfc6962 import leaf_hash
    from packproof.timefmt import rfc3339
    from tests.storeutil import write_batch

    cp = await sp.store.latest_checkpoint()
    assert cp is not None
    witness = CosignerKey.generate("witness.example/w0")
    await sp.store.save_cosignatures(cp.size, {witness.name: witness.cosign(parse_note(cp.note.encode()).text,
                                                                            int(time.time())).line()})
    body = sp.device.reading(2e9)
    await write_batch(sp.store, IngestBatch(readings=[ReadingRow(sp.device.device_id, 240, sp.device.shipment_id,
                                                                 rfc3339(2e9), 2e9, body, leaf_hash(body))]))
    await sp.sealer.seal_once()
    later = await sp.store.latest_checkpoint()
    assert later is not None and later.size > cp.size
    row = await sp.store.record_anchor_sent(AnchorSent(31337, "0x" + "5a" * 20, later.size, later.root,
                                                       note_hash(later.note), b"\x7e" * 32, 0, 10**9, 10**9, 0.0))
    await sp.store.record_anchor_mined(row.id, AnchorMined(12, b"\x3c" * 32, 1_795_100_000, 51_000))
    await sp.store.record_anchor_confirmed(row.id)


@pytest.fixture(scope="module")
def issued(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[dict[str, Any], Path]]:
    tmp = tmp_path_factory.mktemp("issued")

    async def go() -> PackCertificate:
        sp = await sealed_pack(f"sqlite:///{tmp / 'store.db'}", tmp, 240, "hot-container", edit=_drop_seq(200))
        try:
            await anchor_later(sp)
            cert = await pack_certificate(sp.store, sp.device.device_id, LEDGER_PUBLIC, time.time())
            assert cert.anchor is not None and cert.anchor.consistency  # the later anchor and the proof to it
            return cert
        finally:
            await sp.store.close()

    cert = asyncio.run(go())
    key = tmp / "ledger.pub"
    key.write_text(b64(LEDGER_PUBLIC))
    yield json.loads(cert.model_dump_json()), key


def _lines(doc: dict[str, Any]) -> list[bytes]:
    return gzip.decompress(base64.b64decode(doc["evidence"]["readings"]["data"])).split(b"\n")


def _set_lines(doc: dict[str, Any], lines: list[bytes]) -> None:
    raw = b"\n".join(lines)
    doc["evidence"]["readings"].update(data=base64.b64encode(gzip.compress(raw, mtime=0)).decode(),
                                       sha256=hashlib.sha256(raw).hexdigest(), count=len(lines))


def _edit_reading(doc: dict[str, Any]) -> None:
    lines = _lines(doc)
    r = orjson.loads(lines[10])
    r["temperature_c"] = 99.5
    lines[10] = orjson.dumps(r)  # orjson writes it as compactly as RFC 8785 here
    _set_lines(doc, lines)


def _drop_reading(doc: dict[str, Any]) -> None:
    lines = _lines(doc)
    del lines[5]
    _set_lines(doc, lines)
    idx = [a + k for a, n in doc["evidence"]["log"]["reading_runs"] for k in range(n)]
    del idx[5]
    doc["evidence"]["log"]["reading_runs"] = [[i, 1] for i in idx]


def _first_violation(doc: dict[str, Any]) -> int:
    return next(i for i, e in enumerate(doc["claims"]["excursions"]) if e["severity"] == "violation")


EDITS: list[tuple[str, Callable[[dict[str, Any]], None], str]] = [
    ("a number: MKT", lambda d: d["claims"].update(mkt_c=d["claims"]["mkt_c"] - 3), r"claims\.mkt_c"),
    ("a changed verdict", lambda d: d["claims"]["overall"].update(verdict="fit"), r"claims\.overall\.verdict"),
    ("a test's verdict", lambda d: d["claims"]["tests"][1].update(verdict="pass"), r"claims\.tests\[1\]\.verdict"),
    ("a maximum", lambda d: d["claims"]["quantities"][1]["max"].update(value=70.0),
     r"claims\.quantities\[1\]\.max\.value"),
    ("time beyond the envelope", lambda d: d["claims"]["quantities"][1].update(time_beyond_s=0.0),
     r"claims\.quantities\[1\]\.time_beyond_s"),
    ("a dropped excursion", lambda d: d["claims"]["excursions"].pop(_first_violation(d)), r"claims\.excursions\["),
    ("an excursion's peak", lambda d: d["claims"]["excursions"][_first_violation(d)].update(peak=72.0),
     r"claims\.excursions\[\d+\]\.peak"),
    ("a removed gap", lambda d: d["claims"]["completeness"].update(gaps=[], missing=0),
     r"claims\.completeness\.gaps\[0\]"),
    ("unsealed hidden", lambda d: d["claims"]["completeness"].update(unsealed=0) or d["evidence"].update(unsealed=3),
     r"claims\.completeness\.unsealed"),
    ("a reading's value", _edit_reading, r"device signatures|log inclusion"),
    ("a reading left out", _drop_reading, r"log inclusion"),
    ("the envelope widened", lambda d: d["evidence"]["profile"].update(t2_max_c=90.0), r"profile"),
    ("a party key swapped", lambda d: d["evidence"]["parties"].__setitem__(0, d["evidence"]["parties"][0].replace(
        '"public_key":"', '"public_key":"A', 1).replace('=",', '",', 1)), r"party signatures|log inclusion"),
    ("a custody event removed", lambda d: (d["evidence"]["custody"].pop(2), d["evidence"]["log"]["custody_indices"]
                                           .pop(2)), r"log inclusion"),
    ("the checkpoint's root", lambda d: d["evidence"]["log"].update(
        checkpoint=d["evidence"]["log"]["checkpoint"].replace("\n", "\nX", 1)), r"checkpoint"),
    ("the serial", lambda d: d["subject"].update(serial="PK-OTHER"), r"subject\.serial"),
    ("the anchored root", lambda d: d["anchor"].update(root="ab" * 32), r"anchor .*does not extend"),
    ("the anchored size", lambda d: d["anchor"].update(size=d["anchor"]["size"] + 1), r"anchor .*does not extend"),
    ("an anchor older than the checkpoint", lambda d: d["anchor"].update(size=1),
     r"anchor .*older than the checkpoint"),
    ("a consistency hash", lambda d: d["anchor"]["consistency"].__setitem__(0, b64(bytes(32))),
     r"anchor .*does not extend"),
    ("the consistency proof dropped", lambda d: d["anchor"].update(consistency=[]), r"anchor .*does not extend"),
]


def test_a_fresh_certificate_verifies_on_the_command_line(issued: tuple[dict[str, Any], Path],
                                                          tmp_path: Path) -> None:
    doc, key = issued
    path = tmp_path / "c.json"
    path.write_text(json.dumps(doc))
    r = cli("verify", "--certificate", str(path), "--ledger-key", str(key))
    assert r.returncode == 0, r.stdout + r.stderr
    assert "certificate holds" in r.stdout and "do not install (T.2-violation)" in r.stdout
    anchor = next(line for line in r.stdout.splitlines() if " anchor " in line)
    assert "ok" in anchor and f"covered by the later anchor at size {doc['anchor']['size']}" in anchor, anchor
    assert "contract 0x" + "5a" * 20 in anchor and "block 12" in anchor


@pytest.mark.parametrize(("what", "edit", "named"), EDITS, ids=[e[0] for e in EDITS])
def test_an_edit_makes_verify_exit_1_naming_the_claim(issued: tuple[dict[str, Any], Path], tmp_path: Path,
                                                      what: str, edit: Callable[[dict[str, Any]], None],
                                                      named: str) -> None:
    import copy
    import re

    doc = copy.deepcopy(issued[0])
    edit(doc)
    path = tmp_path / "c.json"
    path.write_text(json.dumps(doc))
    r = cli("verify", "--certificate", str(path), "--ledger-key", str(issued[1]))
    assert r.returncode == 1, (what, r.stdout, r.stderr)
    failed = [line for line in r.stdout.splitlines() if "FAIL" in line]
    assert any(re.search(named, line) for line in failed), (what, failed)
    assert "certificate does not hold" in r.stderr


def test_a_certificate_signed_by_another_key_is_refused(issued: tuple[dict[str, Any], Path], tmp_path: Path) -> None:
    from packproof.crypto import private_key_from_seed, public_key_bytes

    path, other = tmp_path / "c.json", tmp_path / "other.pub"
    path.write_text(json.dumps(issued[0]))
    other.write_text(b64(public_key_bytes(private_key_from_seed(b"someone else"))))
    r = cli("verify", "--certificate", str(path), "--ledger-key", str(other))
    assert r.returncode == 1 and "you trust" in r.stdout


def test_witnesses_the_checkpoint_lacks_are_named(issued: tuple[dict[str, Any], Path], tmp_path: Path) -> None:
    from packproof.anchor.cosignature import CosignerKey

    path = tmp_path / "c.json"
    path.write_text(json.dumps(issued[0]))
    witness = CosignerKey.generate("witness.example/w1").verifier
    r = cli("verify", "--certificate", str(path), "--ledger-key", str(issued[1]), "--witness", str(witness))
    assert r.returncode == 1 and "FAIL missing cosignature by witness.example/w1" in r.stdout, r.stdout + r.stderr
    assert "0 valid cosignature(s), 1 required" in r.stderr


def test_a_file_that_is_no_certificate_is_bad_input(tmp_path: Path) -> None:
    path = tmp_path / "c.json"
    path.write_text('{"format": "packproof-proof/2"}')
    r = cli("verify", "--certificate", str(path))
    assert r.returncode == 2 and "expected 'packproof-certificate/1'" in r.stderr


# ---- a real API server, the CLI and the PDF converted back ---------------------------------------


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[str, Path, str]]:
    data = tmp_path / "data"
    data.mkdir()
    (data / "ledger.pub").write_text(b64(LEDGER_PUBLIC))

    async def go() -> str:
        sp = await sealed_pack(DataDir(data).store, data, 600, "hot-container")
        await sp.store.close()
        return sp.device.device_id

    device = asyncio.run(go())
    port = free_port()
    service = Service("api", "--data-dir", str(data), "--port", str(port), log=tmp_path / "api.log")
    try:
        service.wait_port(port)
        yield f"http://127.0.0.1:{port}", data, device
    finally:
        service.stop()


def test_the_api_serves_each_format_and_the_pdf_reads_back(served: tuple[str, Path, str], tmp_path: Path) -> None:
    api, data, device = served
    shipment = device.rsplit("-", 1)[0]
    doc = httpx.get(f"{api}/packs/{device}/certificate", timeout=60)
    assert doc.status_code == 200 and doc.headers["content-type"] == "application/json"
    cert = parse_certificate(doc.content)
    assert isinstance(cert, PackCertificate) and all(v.holds for v in verify_certificate(cert, LEDGER_PUBLIC))
    assert cert.anchor is None and orjson.loads(doc.content)["anchor"] is None  # no anchor: null, said so
    html = httpx.get(f"{api}/packs/{device}/certificate", headers={"Accept": "text/html"}, timeout=60)
    assert html.status_code == 200 and html.headers["content-type"].startswith("text/html")
    assert "DO NOT INSTALL" in html.text and html.text.count("<svg") >= 5  # four charts and the QR code
    assert "Chain anchor: not anchored yet" in html.text
    assert not any(x in html.text for x in ("<script", "<link", " src=", "href=", "@import"))  # self-contained
    pdf = httpx.get(f"{api}/packs/{device}/certificate?format=pdf", timeout=60)
    assert pdf.status_code == 200 and pdf.content.startswith(b"%PDF-")
    passport = httpx.get(f"{api}/packs/{device}/certificate?format=passport", timeout=60).json()
    assert passport["format"] == "packproof-passport-transport/1"
    assert passport["temperature_exposure"]["time_above_extreme_s"] > 0
    whole = httpx.get(f"{api}/shipments/{shipment}/certificate", timeout=60).json()
    assert whole["kind"] == "shipment" and whole["verdict"] == "do not install"
    for url, status, message in ((f"{api}/packs/NOPE/certificate", 404, "no device with that id"),
                                 (f"{api}/shipments/NOPE/certificate", 404, "is not registered"),
                                 (f"{api}/packs/{device}/certificate?format=docx", 422, None)):
        r = httpx.get(url, timeout=30)
        assert r.status_code == status and "detail" in r.json()
        assert message is None or message in r.json()["detail"]

    _read_back(pdf.content, device, "DO NOT INSTALL", tmp_path, "api", "Chain anchor: not anchored yet")
    for suffix in (".json", ".html", ".pdf", ".passport.json"):
        out = tmp_path / f"cli{suffix}"
        r = cli("certificate", device, "--out", str(out), "--data-dir", str(data))
        assert r.returncode == 0 and "do not install" in r.stdout, r.stdout + r.stderr
        assert out.stat().st_size > 1000
    r = cli("certificate", device, "--out", str(tmp_path / "from-api.json"), "--api", api)
    assert r.returncode == 0, r.stderr
    r = cli("verify", "--certificate", str(tmp_path / "from-api.json"))
    assert r.returncode == 0 and "skip anchor" in r.stdout and "not anchored yet" in r.stdout, r.stdout
    assert cli("certificate", "NOPE", "--out", str(tmp_path / "x.json"), "--api", api).returncode == 2
    assert cli("certificate", device, "--out", str(tmp_path / "x.docx"), "--data-dir", str(data)).returncode == 2


def _read_back(pdf: bytes, device: str, verdict: str, tmp_path: Path, name: str, *said: str) -> None:
    if shutil.which("pdftotext") is None or shutil.which("pdftoppm") is None:
        pytest.skip("poppler-utils (pdftotext, pdftoppm) are not installed: make install brings them")
    path = tmp_path / f"{name}.pdf"
    path.write_bytes(pdf)
    text = subprocess.run(["pdftotext", "-layout", str(path), "-"], capture_output=True, text=True, check=True).stdout
    assert verdict in text and device in text
    flat = " ".join(text.split())
    assert all(x in flat for x in said), [x for x in said if x not in flat]
    pages = int(next(line.split()[-1] for line in subprocess.run(
        ["pdfinfo", str(path)], capture_output=True, text=True, check=True).stdout.splitlines()
        if line.startswith("Pages:")))
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    subprocess.run(["pdftoppm", "-r", "60", "-png", str(path), str(ARTIFACTS / name)], check=True)
    rendered = sorted(ARTIFACTS.glob(f"{name}-*.png"))
    assert len(rendered) == pages >= 3 and all(p.stat().st_size > 2000 for p in rendered)


def test_the_demo_fleet_certificates_render_with_their_excursions(tmp_path: Path) -> None:
    """One pack of each demo scenario with an excursion, and a nominal one: each PDF reads back with its
    verdict and id, every page renders (kept as test artefacts)."""
    async def go() -> list[PackCertificate]:
        out = []
        for k, scenario in enumerate(("nominal-road", "hot-container", "drop", "unpressurised-air")):
            sp = await sealed_pack(f"sqlite:///{tmp_path / f'{k}.db'}", tmp_path / str(k), 300, scenario, seed=k + 1)
            out.append(await pack_certificate(sp.store, sp.device.device_id, LEDGER_PUBLIC, time.time()))
            await sp.store.close()
        return out

    from packproof.api.certificate.pdf import certificate_pdf

    for k in range(4):
        (tmp_path / str(k)).mkdir()
    for cert in asyncio.run(go()):
        assert len(readings_of(cert)) == 300
        verdict = cert.claims.overall.verdict.upper()
        _read_back(certificate_pdf(cert), cert.subject.device_id, verdict, tmp_path,
                   f"demo-{cert.subject.device_id}")


def test_without_dejavu_the_pdf_falls_back_to_the_core_font(issued: tuple[dict[str, Any], Path], tmp_path: Path,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    from packproof.api.certificate import pdf

    monkeypatch.setattr(pdf, "FONT_DIRS", ())
    cert = parse_certificate(json.dumps(issued[0]).encode())
    assert isinstance(cert, PackCertificate)
    data = pdf.certificate_pdf(cert)
    assert data.startswith(b"%PDF-") and b"DejaVu" not in data
    assert cert.anchor is not None
    from packproof.api.certificate.html import certificate_html

    html = certificate_html(cert)
    assert f"Chain anchor: chain id 31337, contract 0x{'5a' * 20}, block 12 (" in html
    assert f"tx {cert.anchor.tx_hash}" in html and cert.anchor.block_time in html
    _read_back(data, cert.subject.device_id, "DO NOT INSTALL", tmp_path, "core-font",
               "Chain anchor: chain id 31337", "block 12", cert.anchor.tx_hash[:20])
