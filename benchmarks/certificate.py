"""Certificate figures (issue 18): size and build time of one pack's certificate, and `verify --certificate` time.

A pack with READINGS signed readings (the demo fleet's `hot-container` scenario, so it has
excursions and custody), written through the ingestor's write path and sealed into the log
(tests/certutil.py), alone in the log or with OTHERS other packs whose readings arrive
interleaved with its own (a fleet's log: its leaves are spread, so the one multi-leaf proof
carries a subtree root beside each run of them). Reported: the JSON
certificate's size raw and gzipped, the HTML and PDF sizes, the build time from the store (median
of RUNS), each renderer's time, and `packproof verify --certificate` wall time (a fresh process:
start-up, parse, every signature, the multi-proof, the claims recomputed).

    python benchmarks/certificate.py [--readings 100000] [--others 0] [--store URL] [--runs 3]
"""

from __future__ import annotations

import argparse
import asyncio
import gzip
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from packproof.api.certificate.build import pack_certificate  # noqa: E402
from packproof.api.certificate.html import certificate_html  # noqa: E402
from packproof.api.certificate.pdf import certificate_pdf  # noqa: E402
from packproof.crypto import b64  # noqa: E402
from tests.certutil import LEDGER_PUBLIC, sealed_pack  # noqa: E402


def kb(n: int) -> str:
    return f"{n / 1024:,.0f} kB" if n < 10 * 1024 * 1024 else f"{n / 1024 / 1024:,.1f} MB"


async def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--readings", type=int, default=100_000)
    ap.add_argument("--others", type=int, default=0)
    ap.add_argument("--store", default=None)
    ap.add_argument("--runs", type=int, default=3)
    a = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="cert-bench-"))
    url = a.store or f"sqlite:///{tmp / 'store.db'}"
    t = time.perf_counter()
    sp = await sealed_pack(url, tmp, a.readings, "hot-container", step_s=30.0, others=a.others)
    print(f"store: {a.readings:,} readings sealed in {time.perf_counter() - t:.1f} s ({url.split(':')[0]})")
    builds = []
    for _ in range(a.runs):
        t = time.perf_counter()
        cert = await pack_certificate(sp.store, sp.device.device_id, LEDGER_PUBLIC, time.time())
        builds.append(time.perf_counter() - t)
    await sp.store.close()
    raw = cert.model_dump_json().encode()
    t = time.perf_counter()
    html = certificate_html(cert).encode()
    t_html = time.perf_counter() - t
    t = time.perf_counter()
    pdf = certificate_pdf(cert)
    t_pdf = time.perf_counter() - t
    path, key = tmp / "c.json", tmp / "ledger.pub"
    path.write_bytes(raw)
    key.write_text(b64(LEDGER_PUBLIC))
    t = time.perf_counter()
    r = subprocess.run([sys.executable, "-m", "packproof", "verify", "--certificate", str(path), "--ledger-key",
                        str(key)], capture_output=True, text=True)
    t_verify = time.perf_counter() - t
    assert r.returncode == 0, r.stdout + r.stderr
    proof = len(cert.evidence.log.proof) * 3 // 4 // 32
    print(f"verdict: {cert.claims.overall.verdict} ({cert.claims.overall.rule}), "
          f"{len(cert.claims.excursions)} excursions, multi-proof {proof:,} hashes")
    print(f"JSON {kb(len(raw))} ({len(raw) / a.readings:.0f} B/reading), gzip {kb(len(gzip.compress(raw)))}, "
          f"HTML {kb(len(html))}, PDF {kb(len(pdf))}")
    print(f"build (store -> JSON model) median {statistics.median(builds):.2f} s of {a.runs}; HTML {t_html:.2f} s; "
          f"PDF {t_pdf:.2f} s; verify --certificate {t_verify:.2f} s")


if __name__ == "__main__":
    asyncio.run(main())
