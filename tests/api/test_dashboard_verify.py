"""The dashboard's in-browser verifier (api/static/verify.js) against the Python one (anchor/proof.py).

Issue 18, "Verify in your browser". The same bundles (a signed and an unsigned reading from the
real write path, benchmarks/bundle_corruptions.py, and every corruption that script makes of
them) go through both: Python's `parse_bundle` + `verify_bundle`, and the page's
`verifyBundle` in the system's Chromium with WebCrypto. They must agree on whether the proof
holds and on the first link that breaks; a bundle Python refuses as malformed must not hold in
the browser either. Also: witness cosignatures (cosignature/v1) made by the Python cosigner
verify in the browser, and a changed one is named.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from benchmarks.bundle_corruptions import corruptions, fill_store
from packproof.anchor.cosignature import CosignerKey
from packproof.anchor.note import SignerKey
from packproof.anchor.proof import parse_bundle, verify_bundle
from packproof.anchor.tlog_checkpoint import Checkpoint, sign_checkpoint
from packproof.errors import ConfigError
from packproof.net import free_port
from tests.browserutil import ARTIFACTS, browser
from tests.conftest import Service

# not bundles anyone pastes into a page
SKIPPED = {"20 MB of whitespace before it", "nested 100,000 deep", "a field nested 100,000 deep"}


def python_outcome(text: str) -> str:
    """"holds", the name of the first link that breaks, or "bundle" for a malformed bundle."""
    try:
        bundle = parse_bundle(text)
    except ConfigError:
        return "bundle"
    verdict = verify_bundle(bundle)
    return "holds" if verdict.holds else next(c.name for c in verdict.checks if c.ok is False)


@pytest.fixture(scope="module")
def page(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """The verify page of a real `packproof api` over a store from the real write path."""
    root = tmp_path_factory.mktemp("verify") / "data"
    fill_store(root)
    port = free_port()
    api = Service("api", "--data-dir", str(root), "--port", str(port), log=root.parent / "api.log")
    try:
        api.wait_port(port)
        for b in browser():
            p = b.new_page()  # type: ignore[attr-defined]
            p.goto(f"http://127.0.0.1:{port}/ui/verify?reading=dev-a:2")
            p.wait_for_selector("body[data-rendered]")
            p.api = f"http://127.0.0.1:{port}"  # type: ignore[attr-defined]
            yield p
    finally:
        api.stop()


JS_OUTCOMES = """async (texts) => Promise.all(texts.map(async (text) => {
  let doc;
  try { doc = window.packproof.parseBundleText(text); } catch { return "bundle"; }
  const v = await window.packproof.verifyBundle(doc, {});
  return v.holds ? "holds" : v.checks.find((c) => c.ok === false).name;
}))"""


def test_the_page_verifies_a_reading_and_names_a_tampered_link(page: Any) -> None:
    assert page.get_attribute("#verdict", "data-holds") == "true"
    steps = page.locator("#steps li").all_inner_texts()
    assert any(s.startswith("✓merkle path") for s in steps) and any(s.startswith("✓log checkpoint") for s in steps)
    assert any("device signature" in s and s.startswith("✓") for s in steps)
    page.screenshot(path=str(ARTIFACTS / "verify-good.png"), full_page=True)
    for tamper, broken in [("reading value", "device signature"), ("audit path", "merkle path"),
                           ("block signature", "block signature"), ("checkpoint root", "log checkpoint")]:
        page.click("#fetch")
        page.wait_for_function("document.querySelector('#verdict').dataset.holds === 'true'")
        page.click(f"button[data-tamper='{tamper}']")
        page.wait_for_function("document.querySelector('#verdict').dataset.holds === 'false'")
        assert page.get_attribute("#verdict", "data-broken") == broken, tamper
        assert f"broken link: {broken}" in page.inner_text("#verdict")
        page.screenshot(path=str(ARTIFACTS / f"verify-tampered-{tamper.replace(' ', '-')}.png"), full_page=True)


@pytest.mark.parametrize("reading_id", ["dev-a:2", "dev-u:1"])
def test_javascript_and_python_agree_on_every_corruption(page: Any, reading_id: str) -> None:
    doc = httpx.get(f"{page.api}/readings/{reading_id}/proof").json()
    cases = [(f"{c.where} {c.how}", c.text.decode()) for c in corruptions(doc)
             if c.text is not None and c.how not in SKIPPED and _utf8(c.text)]
    cases.insert(0, ("the bundle as served", json.dumps(doc)))
    assert len(cases) > 300
    js = page.evaluate(JS_OUTCOMES, [text for _, text in cases])
    disagree = []
    for (name, text), theirs in zip(cases, js, strict=True):
        ours = python_outcome(text)
        agree = theirs == ours or (ours == "bundle" and theirs != "holds")  # both refuse; the names may differ
        if not agree:
            disagree.append(f"{name}: python {ours}, browser {theirs}")
    assert js[0] == "holds"
    assert not disagree, "\n".join(disagree[:30]) + f"\n({len(disagree)} of {len(cases)})"


def _utf8(data: bytes) -> bool:
    try:
        data.decode()
    except UnicodeDecodeError:
        return False
    return True


def test_witness_cosignatures_verify_in_the_browser(page: Any) -> None:
    log_key = SignerKey("example.com/log", b"\x05" * 32)
    witness = CosignerKey.generate("example.com/witness")
    body = Checkpoint("example.com/log", 5, b"\x07" * 32).body()
    note = sign_checkpoint(Checkpoint("example.com/log", 5, b"\x07" * 32), [log_key],
                           keep=[witness.cosign(body, 1_790_000_000)]).decode()
    line = next(x for x in note.split("\n") if x.startswith("\u2014 example.com/witness "))
    changed = note.replace(line, line[:-8] + ("AAAAAA==" if not line.endswith("AAAAAA==") else "BBBBBA=="))
    result = page.evaluate("""async ([note, changed, logVkey, witnessVkey]) => {
      const m = await import("./ui/assets/verify.js");
      const logKey = await m.parseVkey(logVkey, 1), w = await m.parseVkey(witnessVkey, 4);
      const out = [];
      for (const text of [note, changed]) {
        const cp = await m.openCheckpoint(text, [logKey]);
        out.push(await m.verifyCosignature(cp, w));
      }
      return out;
    }""", [note, changed, str(log_key.verifier), str(witness.verifier)])
    assert result[0]["ok"] is True and "example.com/witness" in result[0]["detail"]
    assert result[1]["ok"] is False and result[1]["detail"].endswith("does not verify")


def test_a_document_carrying_bundles_is_checked_bundle_by_bundle(page: Any) -> None:
    """The certificate path: every packproof-proof/2 bundle found in a JSON document is verified with
    the same function, and the broken one is named by where it sits."""
    good = httpx.get(f"{page.api}/readings/dev-a:1/proof").json()
    other = httpx.get(f"{page.api}/readings/dev-u:3/proof").json()
    bad = json.loads(json.dumps(other))
    bad["reading"]["leaf"] = bad["reading"]["leaf"].replace('"temperature_c":24.5', '"temperature_c":20.5')
    assert bad != other
    page.fill("#reading-id", "")
    for doc, holds in [({"format": "a certificate", "readings": [{"proof": good}, {"proof": other}]}, "true"),
                       ({"format": "a certificate", "readings": [{"proof": good}, {"proof": bad}]}, "false")]:
        page.fill("#bundle", json.dumps(doc))
        page.click("#verify")
        page.wait_for_function(f"document.querySelector('#verdict').dataset.holds === '{holds}'")
    assert page.get_attribute("#verdict", "data-broken") == "merkle path"
    assert "broken link: merkle path in readings.1.proof" in page.inner_text("#verdict")
    assert page.locator("#steps li", has_text="readings.0.proof").count() == 1
