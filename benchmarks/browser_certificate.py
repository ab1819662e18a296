"""In-browser certificate verification time (issue 18, "Verify in your browser").

One pack of the `hot-container` scenario with READINGS signed readings sealed into the log
(tests/certutil.py; with --others N, N other packs' readings interleaved: the worst case for the
multi-leaf proof), served by a real `packproof api`; the system's Chromium (Playwright) opens
/ui/verify on the pack's certificate. Reported: the time the API takes to issue the JSON, the whole
page flow (fetch, parse, fill the text box, verify, draw the steps), and `verifyCertificate` alone on
the parsed document (gunzip, every leaf hash, the multi-proof, every Ed25519 signature, the claims),
median of RUNS.

    python benchmarks/browser_certificate.py [--readings 100000] [--others 0] [--runs 3]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from packproof.crypto import b64  # noqa: E402
from packproof.net import free_port  # noqa: E402
from packproof.paths import DataDir  # noqa: E402
from tests.browserutil import ARGS, CHROMIUM  # noqa: E402
from tests.certutil import LEDGER_PUBLIC, sealed_pack  # noqa: E402
from tests.conftest import Service  # noqa: E402

VERIFY_ONLY = """async (url) => {
  const doc = await (await fetch(url)).json();
  const t0 = performance.now();
  const results = await window.packproof.verifyCertificate(doc, {});
  const ms = performance.now() - t0;
  const checks = results[0].verdict.checks.map((c) => c.name + ": " + c.detail);
  return { ms, holds: results.every((r) => r.verdict.holds), checks };
}"""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--readings", type=int, default=100_000)
    ap.add_argument("--others", type=int, default=0)
    ap.add_argument("--runs", type=int, default=3)
    a = ap.parse_args()
    data = Path(tempfile.mkdtemp(prefix="browser-cert-bench-")) / "data"
    data.mkdir()
    (data / "ledger.pub").write_text(b64(LEDGER_PUBLIC))

    async def fill() -> str:
        sp = await sealed_pack(DataDir(data).store, data, a.readings, "hot-container", step_s=30.0, others=a.others)
        await sp.store.close()
        return sp.device.device_id

    t = time.perf_counter()
    device = asyncio.run(fill())
    print(f"store: {a.readings:,} readings (+{a.others} interleaved packs) sealed in {time.perf_counter() - t:.1f} s")
    port = free_port()
    api = Service("api", "--data-dir", str(data), "--port", str(port), log=data.parent / "api.log")
    # not at start-up: a dev-only package, needed for the timing run only
    from playwright.sync_api import sync_playwright

    try:
        api.wait_port(port)
        base = f"http://127.0.0.1:{port}"
        cert = f"packs/{device}/certificate?format=json"
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=ARGS)
            page = browser.new_page()
            flows, alone = [], []
            for _ in range(a.runs):
                t = time.perf_counter()
                page.goto(f"{base}/ui/verify?certificate={cert.replace('?', '%3F').replace('=', '%3D')}")
                page.wait_for_function("['true', 'false'].includes(document.querySelector('#verdict').dataset.holds)",
                                       timeout=600_000)
                flows.append(time.perf_counter() - t)
                assert page.get_attribute("#verdict", "data-holds") == "true", page.inner_text("#steps")
                r = page.evaluate(VERIFY_ONLY, cert)
                assert r["holds"], r["checks"]
                alone.append(r["ms"] / 1000)
            browser.close()
        for line in r["checks"]:
            print("  " + line[:150])
        print(f"page flow (API issues the JSON, fetch, verify, draw) median {statistics.median(flows):.2f} s of "
              f"{a.runs} ({', '.join(f'{x:.2f}' for x in flows)}); verifyCertificate alone median "
              f"{statistics.median(alone):.2f} s ({', '.join(f'{x:.2f}' for x in alone)})")
    finally:
        api.stop()


if __name__ == "__main__":
    main()
