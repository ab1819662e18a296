"""A real condition certificate verified in the browser (issue 18, "Verify in your browser").

A sealed store (tests/certutil.py, a hot pack with seq 200 never received) served by a real
`packproof api`; the system's Chromium, driven by Playwright, runs api/static/certificate.js on
the certificate the API issues: gunzip, RFC 6962 leaf hashes, the one multi-leaf proof against the
C2SP checkpoint, the device signatures with WebCrypto Ed25519, the cheap claims recomputed. The
same documents, good and edited, go through the Python verifier (api/certificate/verify.py): both
must name the same first broken link, and the JavaScript port of `root_from_multi_proof` must give
the Python's root, or its refusal word for word. Screenshots under build/test-artifacts/dashboard/.
"""

from __future__ import annotations

import asyncio
import base64
import copy
import json
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from packproof.anchor.merkle import root_from_multi_proof
from packproof.api.certificate.document import (
    PackCertificate,
    indices_of,
    parse_certificate,
    unpack_hashes,
    unpack_readings,
)
from packproof.api.certificate.verify import verify_certificate
from packproof.crypto import b64
from packproof.errors import ProofError
from packproof.net import free_port
from packproof.paths import DataDir
from packproof.rfc6962 import leaf_hash
from tests.api.test_certificates import _drop_reading, _edit_reading
from tests.browserutil import ARTIFACTS, browser
from tests.certutil import LEDGER_PUBLIC, sealed_pack
from tests.conftest import Service


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Any, str, str, str]]:
    """(a Chromium page, the API's address, the pack's device id, its shipment id)."""
    tmp = tmp_path_factory.mktemp("dashcert")
    data = tmp / "data"
    data.mkdir()
    (data / "ledger.pub").write_text(b64(LEDGER_PUBLIC))

    async def go() -> tuple[str, str]:
        sp = await sealed_pack(DataDir(data).store, data, 240, "hot-container",
                               edit=lambda i, r: None if i == 200 else r)
        await sp.store.close()
        return sp.device.device_id, sp.device.shipment_id

    device, shipment = asyncio.run(go())
    port = free_port()
    api = Service("api", "--data-dir", str(data), "--port", str(port), log=tmp / "api.log")
    errors: list[str] = []
    try:
        api.wait_port(port)
        for b in browser():
            page = b.new_page(viewport={"width": 1280, "height": 1000})  # type: ignore[attr-defined]
            page.on("pageerror", lambda e: errors.append(str(e)))
            yield page, f"http://127.0.0.1:{port}", device, shipment
            assert not errors, errors
    finally:
        api.stop()


def _blank_verify_page(page: Any, api: str) -> None:
    page.goto(f"{api}/ui/verify")
    page.wait_for_selector("body[data-rendered]")


def _verdict(page: Any) -> tuple[str, str]:
    page.wait_for_function("['true', 'false'].includes(document.querySelector('#verdict').dataset.holds)",
                           timeout=60_000)
    return page.get_attribute("#verdict", "data-holds"), page.get_attribute("#verdict", "data-broken")


def _steps(page: Any) -> dict[str, str]:
    items = page.locator("#steps li[data-check]").all()
    return {li.get_attribute("data-check"): li.get_attribute("data-ok") for li in items}


def test_the_shipment_page_links_verify_the_certificate_here(site: tuple[Any, str, str, str]) -> None:
    page, api, device, shipment = site
    for which in (0, 1):  # the shipment's certificate, then the pack's
        page.goto(f"{api}/ui/shipments/{shipment}")
        page.wait_for_selector("body[data-rendered]")
        page.wait_for_selector("a.verify-cert >> nth=1")
        page.locator("a.verify-cert").nth(which).click()
        page.wait_for_url("**/ui/verify?certificate=*")
        assert _verdict(page) == ("true", "")
        assert "the certificate holds" in page.inner_text("#verdict")
        assert "checked in your browser in" in page.inner_text("#progress")
        steps = _steps(page)
        for name in ("readings", "key records", "device signatures", "custody records", "checkpoint", "log inclusion",
                     "claims"):
            assert steps[name] == "true", (name, steps)
        assert steps["claims left to the command line"] == "null" and steps["party signatures"] == "null"
        if which == 1:
            assert "verdict" not in steps
    text = page.inner_text("#steps")
    assert "239 readings of" in text and "1 missing seq(s) in 1 gap(s)" in text
    assert "mean kinetic temperature" in text and "packproof verify --certificate" in text
    page.screenshot(path=str(ARTIFACTS / "verify-certificate-good.png"), full_page=True)


@pytest.mark.parametrize(("tamper", "broken"), [
    ("a reading's bytes", "device signatures"), ("a proof hash", "log inclusion"),
    ("checkpoint signature", "checkpoint"), ("a claimed max", "claims.quantities[0].max.value"),
])
def test_the_page_names_the_broken_link_of_a_tampered_certificate(site: tuple[Any, str, str, str], tamper: str,
                                                                  broken: str) -> None:
    page, api, device, _ = site
    page.goto(f"{api}/ui/verify?certificate={httpx.URL(f'packs/{device}/certificate?format=json')}")
    page.wait_for_selector("body[data-rendered]")
    assert _verdict(page) == ("true", "")
    page.click(f"button.tamper-cert[data-tamper=\"{tamper}\"]")
    page.wait_for_function("document.querySelector('#verdict').dataset.holds === 'false'", timeout=60_000)
    assert page.get_attribute("#verdict", "data-broken") == broken
    assert f"broken link: {broken}" in page.inner_text("#verdict")
    # the page's edit, through the Python verifier: the same first broken link
    edited = page.input_value("#bundle")
    (verdict,) = verify_certificate(parse_certificate(edited.encode()), LEDGER_PUBLIC)
    assert next(c.name for c in verdict.checks if c.ok is False) == broken
    page.screenshot(path=str(ARTIFACTS / f"verify-certificate-{tamper.replace(' ', '-').replace(chr(39), '')}.png"),
                    full_page=True)


def _flip_proof(doc: dict[str, Any]) -> None:
    raw = bytearray(base64.b64decode(doc["evidence"]["log"]["proof"]))
    raw[-1] ^= 1
    doc["evidence"]["log"]["proof"] = base64.b64encode(raw).decode()


def _cut_proof(doc: dict[str, Any]) -> None:
    doc["evidence"]["log"]["proof"] = base64.b64encode(base64.b64decode(doc["evidence"]["log"]["proof"])[32:]).decode()


def _log_signature(doc: dict[str, Any]) -> None:
    note = doc["evidence"]["log"]["checkpoint"]
    text, sigs = note.split("\n\n", 1)
    name, sig = sigs.split("\n")[0][2:].split(" ")
    raw = bytearray(base64.b64decode(sig))
    raw[10] ^= 1
    doc["evidence"]["log"]["checkpoint"] = note.replace(sig, base64.b64encode(raw).decode())


def _max(doc: dict[str, Any]) -> None:
    doc["claims"]["quantities"][1]["max"]["value"] += 0.5


def _gap(doc: dict[str, Any]) -> None:
    doc["claims"]["completeness"]["gaps"] = []


def _custody_record(doc: dict[str, Any]) -> None:
    record = json.loads(doc["evidence"]["custody"][1])
    record["event"]["event_id"] += "x"
    doc["evidence"]["custody"][1] = json.dumps(record, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def _ledger_key(doc: dict[str, Any]) -> None:
    doc["evidence"]["log"]["ledger_public_key"] = b64(b"\x01" * 32)


EDITS: list[tuple[str, Callable[[dict[str, Any]], None]]] = [
    # left out: the proof no longer fits the leaves carried (it is one proof of exactly those leaves)
    ("a reading's bytes", _edit_reading), ("a reading left out", _drop_reading), ("a proof hash", _flip_proof),
    ("a proof hash removed", _cut_proof), ("the checkpoint signature", _log_signature),
    ("a claim's max", _max), ("a declared gap removed", _gap), ("another ledger key", _ledger_key),
]

JS_FIRST_BROKEN = """async ([docs, key]) => {
  const ledgerKey = Uint8Array.from(atob(key), (c) => c.charCodeAt(0));
  const out = [];
  for (const doc of docs) {
    const results = await window.packproof.verifyCertificate(doc, { ledgerKey });
    const bad = results.flatMap((r) => r.verdict.checks).find((c) => c.ok === false);
    out.push(bad ? bad.name : "holds");
  }
  return out;
}"""


def test_javascript_and_python_name_the_same_broken_link(site: tuple[Any, str, str, str]) -> None:
    page, api, device, shipment = site
    _blank_verify_page(page, api)
    good = httpx.get(f"{api}/packs/{device}/certificate", params={"format": "json"}, timeout=60).json()
    docs, names = [good], ["as served"]
    for name, edit in EDITS:
        doc = copy.deepcopy(good)
        edit(doc)
        docs.append(doc)
        names.append(name)
    docs.append(httpx.get(f"{api}/shipments/{shipment}/certificate", params={"format": "json"}, timeout=60).json())
    names.append("the shipment's")
    wrong = copy.deepcopy(docs[-1])
    wrong["verdict"] = "fit"
    docs.append(wrong)
    names.append("the shipment's verdict")
    js = page.evaluate(JS_FIRST_BROKEN, [docs, b64(LEDGER_PUBLIC)])
    python = []
    for doc in docs:
        verdicts = verify_certificate(parse_certificate(json.dumps(doc).encode()), LEDGER_PUBLIC)
        python.append(next((c.name for v in verdicts for c in v.checks if c.ok is False), "holds"))
    assert js == python, list(zip(names, python, js, strict=True))
    assert python == ["holds", "device signatures", "log inclusion", "log inclusion", "log inclusion", "checkpoint",
                      "claims.quantities[1].max.value", "claims.completeness.gaps[0]", "checkpoint", "holds", "verdict"]
    # a custody record's party signature is left to the command line; the browser still finds the
    # edit, one link later: the record no longer hashes to a leaf the proof leads from
    doc = copy.deepcopy(good)
    _custody_record(doc)
    (theirs,) = page.evaluate(JS_FIRST_BROKEN, [[doc], b64(LEDGER_PUBLIC)])
    assert theirs == "log inclusion"


JS_MULTI = """async (cases) => Promise.all(cases.map(async ([size, leaves, proof]) => {
  const un = (h) => Uint8Array.from(h.match(/../g) || [], (x) => parseInt(x, 16));
  try {
    const root = await window.packproof.rootFromMultiProof(size, leaves.map(([i, h]) => [i, un(h)]), proof.map(un));
    return Array.from(root, (b) => b.toString(16).padStart(2, "0")).join("");
  } catch (e) { return "error: " + e.message; }
}))"""


def test_the_multi_leaf_proof_port_agrees_with_python(site: tuple[Any, str, str, str]) -> None:
    """root_from_multi_proof in JavaScript and Python on the certificate's leaves and proof, and on
    subsets, shortened, lengthened and out-of-order inputs: the same root or the same refusal."""
    page, api, device, _ = site
    _blank_verify_page(page, api)
    cert = parse_certificate(httpx.get(f"{api}/packs/{device}/certificate", timeout=60).content)
    assert isinstance(cert, PackCertificate)
    ev = cert.evidence
    leaves = sorted([*zip(indices_of(ev.log.reading_runs), map(leaf_hash, unpack_readings(ev.readings)), strict=True),
                     *zip(ev.log.registry_indices, (leaf_hash(t.encode()) for t in ev.registry), strict=True),
                     *zip(ev.log.custody_indices, (leaf_hash(t.encode()) for t in ev.custody), strict=True),
                     *zip(ev.log.party_indices, (leaf_hash(t.encode()) for t in ev.parties), strict=True)])
    proof = unpack_hashes(ev.log.proof)
    size = int(ev.log.checkpoint.split("\n")[1])
    cases = [(size, leaves, proof), (size, leaves, proof[:-1]), (size, leaves, [*proof, proof[0]]),
             (size, leaves[:-1], proof), (size, [leaves[1], leaves[0], *leaves[2:]], proof),
             (size, leaves, [proof[0][:31], *proof[1:]]), (leaves[-1][0], leaves, proof), (size, [], proof)]
    js = page.evaluate(JS_MULTI, [[s, [[i, h.hex()] for i, h in ls], [p.hex() for p in ps]] for s, ls, ps in cases])
    python = []
    for s, ls, ps in cases:
        try:
            python.append(root_from_multi_proof(s, ls, ps).hex())
        except ProofError as exc:
            python.append(f"error: {exc}")
    assert js == python
    assert not python[0].startswith("error") and sum(p.startswith("error") for p in python) >= 5
