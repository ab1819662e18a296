"""Publish-to-sealed latency with two witnesses on localhost against none (issue 16), printed as figures.

The same paced load runs through the real pipeline (embedded broker, `packproof ingest` with its
sealer) alternately without witnesses and with two `packproof witness` processes the sealer asks
to cosign every new checkpoint (`--witness URL VKEY`), for `--rounds` rounds; publish-to-sealed
p50/p99 come from benchmarks/pipeline.py's `run_pipeline` (the block's `sealed_at` minus each
reading's publish time). Witnessing runs beside the sealer, so the figures should not differ
beyond the machine's noise; the cosigned count shows the witnesses were working.

    python benchmarks/witnesses.py [--rate 1000] [--seconds 15] [--rounds 3]
"""

from __future__ import annotations

import argparse
import shutil
import sqlite3
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from pipeline import PUBLISHERS, BrokerSetup, Proc, StoreSetup, make_payloads, run_pipeline, wait_port  # noqa: E402

from packproof.anchor.cosignature import CosignerKey  # noqa: E402
from packproof.anchor.tlog import default_origin, log_verifier  # noqa: E402
from packproof.crypto import key_id, load_or_create_ledger_key, public_key_bytes  # noqa: E402
from packproof.net import free_port  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rate", type=float, default=1000.0, help="readings per second offered")
    ap.add_argument("--seconds", type=float, default=15.0)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--devices", type=int, default=20)
    ap.add_argument("--publisher", choices=sorted(PUBLISHERS),
                    default="mosquitto_pub" if shutil.which("mosquitto_pub") else "paho")
    a = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="packproof-witness-bench-") as tmp:
        work = Path(tmp)
        port = free_port()
        broker = Proc("broker", "--port", str(port), log=work / "broker.log")
        b = BrokerSetup("amqtt", port, publish=a.publisher, pid=broker.p.pid)
        witnesses: list[Proc] = []

        def two_witnesses(data: Path) -> Sequence[str]:
            """Two witness processes for this run's log (its ledger key made now, so its vkey is known)."""
            data.mkdir(parents=True, exist_ok=True)
            pub = public_key_bytes(load_or_create_ledger_key(data / "ledger.key"))
            vkey = log_verifier(default_origin(key_id(pub)), pub)
            args: list[str] = []
            for i in (1, 2):
                key = CosignerKey.generate(f"witness.example/bench{i}")
                (data / f"w{i}.key").write_text(key.text() + "\n")
                wport = free_port()
                witnesses.append(Proc("witness", "--key", str(data / f"w{i}.key"), "--state", str(data / f"w{i}.db"),
                                      "--listen", f"127.0.0.1:{wport}", "--log", str(vkey),
                                      log=data / f"witness{i}.log"))
                wait_port(wport)
                args += ["--witness", f"http://127.0.0.1:{wport} {key.verifier}"]
            return args

        try:
            wait_port(port)
            st = StoreSetup("sqlite")
            count = int(a.rate * a.seconds)
            runs: dict[str, list[dict[str, float]]] = {"none": [], "two": []}
            for r in range(a.rounds):
                for mode in ("none", "two"):
                    msgs, fleet, order = make_payloads(count, a.devices, 1000 + 10 * r + len(mode))
                    label = f"{mode}-{r}"
                    res = run_pipeline(b, st, msgs, fleet, order, work, verify=True, rate=a.rate, label=label,
                                       keep=True, setup=two_witnesses if mode == "two" else None)
                    time.sleep(1.0)  # the last checkpoint's cosignatures
                    for w in witnesses:
                        w.stop()
                    witnesses.clear()
                    db = sqlite3.connect(work / label / "packproof.db")
                    cps = db.execute("SELECT count(*) FROM checkpoints").fetchone()[0]
                    cos = db.execute("SELECT count(DISTINCT size) FROM cosignatures").fetchone()[0]
                    db.close()
                    runs[mode].append(res)
                    print(f"  round {r + 1}, witnesses {mode}: publish-to-sealed p50 {res['p50'] * 1e3:5.0f} ms, "
                          f"p99 {res['p99'] * 1e3:5.0f} ms; {cps} checkpoints, {cos} cosigned", flush=True)
            med = statistics.median
            for mode, rs in runs.items():
                print(f"{a.rate:,.0f} readings/s, witnesses {mode}: publish-to-sealed p50 "
                      f"{med(x['p50'] for x in rs) * 1e3:.0f} ms, p99 {med(x['p99'] for x in rs) * 1e3:.0f} ms "
                      f"(median of {len(rs)} rounds; p99 {min(x['p99'] for x in rs) * 1e3:.0f}.."
                      f"{max(x['p99'] for x in rs) * 1e3:.0f} ms)")
        finally:
            for w in witnesses:
                w.stop()
            broker.stop()


if __name__ == "__main__":
    main()
