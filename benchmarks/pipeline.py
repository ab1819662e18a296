"""Throughput and latency of the pipeline, printed as figures (not a timed test).

One run, one machine, real processes on free ports:

1. a bare counting subscriber through the broker: the ceiling any MQTT consumer has;
2. the full pipeline (`packproof ingest`: decode, verify, thresholds, store, seal) at
   full speed, with and without signature checks: readings/s stored *and* sealed;
3. publish-to-sealed latency p50/p99 at 80% of the measured maximum;
4. proof-bundle time through the API;
5. the ingestor's peak memory and CPU time per reading, beside the same-run cost of
   the steps it cannot avoid (Ed25519 verify, SHA-256, JSON decode and validation,
   batched insert).

Publishing uses readings signed in advance, so the publisher's own signing does not
limit the rate being measured, and by default one `mosquitto_pub` per device (C, a few
µs a message) rather than a Python client, which would take a third of this 2-core
machine from what is measured (`--publisher paho` for that). Rates count from the first
publish, once the publishers are connected, to the last reading received (bare), stored
or sealed (pipeline). The ratio to the bare subscriber compares like with like: readings
taken in and acknowledged per second, so it uses the stored rate. The sealed rate adds
the wait for the next seal (the sealer runs every `--seal-interval`, 1 s): that wait is
latency, not throughput, and it quantises the sealed rate (eight 30,000-reading runs
whose last reading reached the ingestor between 9.3 and 9.7 s all sealed at 10.25-10.30
s). It is printed beside, and publish-to-sealed latency is measured on its own; `--offer` shows
whether a rate is sustained.

    python benchmarks/pipeline.py [--readings 60000] [--devices 20] [--broker embedded|mosquitto]
                                  [--ingestors N] [--offer 4000,8000] [--publisher mosquitto_pub|paho]

`--broker mosquitto` starts Mosquitto from our shipped configuration on a free port (as
the tests do, `broker/mosquitto.py`), with logins: the bare subscriber and the ingestors
log in as `packproof-ingestor`; the benchmark's one publisher, which speaks for every
device, gets a login of its own in the benchmark's copy of the ACL. `--ingestors N` (N > 1,
an MQTT 5 broker) runs N ingest processes on one store in a share group.
"""

from __future__ import annotations

import argparse
import asyncio
import bisect
import hashlib
import json
import multiprocessing as mp
import os
import shutil
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import paho.mqtt.client as mqtt
import psutil
import psycopg
from nacl.bindings import crypto_sign_open

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from packproof.broker.auth import PasswordFile  # noqa: E402
from packproof.broker.mosquitto import INGESTOR_USER, SHIPPED_ACL, MosquittoProcess  # noqa: E402
from packproof.canonical import signing_bytes  # noqa: E402
from packproof.crypto import unb64  # noqa: E402
from packproof.net import free_port, port_in_use  # noqa: E402
from packproof.paths import DataDir  # noqa: E402
from packproof.reading import Reading  # noqa: E402
from packproof.simulators.fleet import build_fleet, shipments_of  # noqa: E402
from tests.dbutil import in_schema, query_sync  # noqa: E402


def make_payloads(n: int, devices: int, seed: int) -> tuple[list[tuple[str, bytes]], list, list]:  # type: ignore[type-arg]
    """Signed readings in publishing order, the fleet, and (device, seq) of each message."""
    fleet = build_fleet(shipments=1, packs=devices, scenario="nominal-road", seed=seed)
    out, order = [], []
    now = time.time()
    for k in range(n // devices):
        for d in fleet:
            order.append((d, d.next_seq))
            out.append((d.topic, d.reading(now + k * 0.001)))
    return out, fleet, order


Login = tuple[str, str] | None  # MQTT username and password, when the broker requires them
PUBLISHER_USER = "bench-publisher"


def publisher(port: int, msgs: list[tuple[str, bytes]], rate: float | None, q: mp.Queue,  # type: ignore[type-arg]
              login: Login = None) -> None:
    """Publish at QoS 1, as fast as possible or paced at `rate` msg/s; report send times."""
    c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"bench-pub-{os.getpid()}")
    if login:
        c.username_pw_set(*login)
    c.connect("127.0.0.1", port)
    c.loop_start()
    acked = [0]
    c.on_publish = lambda *a: acked.__setitem__(0, acked[0] + 1)
    t0 = time.monotonic()
    sent_at = []
    for i, (topic, payload) in enumerate(msgs):
        if rate:
            due = t0 + i / rate
            delay = due - time.monotonic()
            if delay > 0:
                time.sleep(delay)
        sent_at.append(time.time())
        c.publish(topic, payload, qos=1)
    while acked[0] < len(msgs) and time.monotonic() - t0 < 300:
        time.sleep(0.01)
    q.put(sent_at)
    c.disconnect()
    c.loop_stop()


def publisher_cli(port: int, msgs: list[tuple[str, bytes]], rate: float | None, q: mp.Queue,  # type: ignore[type-arg]
                  login: Login = None) -> None:
    """`publisher`'s job done by Mosquitto's own C client: one `mosquitto_pub -l -q 1` per device topic.

    On two cores the Python publisher costs the machine 0.55-0.9 of a core (about 130 µs
    a message), CPU the broker and the ingestor then lack; sensors publish from elsewhere.
    Lines are written in publishing order (paced at `rate`); each process publishes its
    device's lines at QoS 1 and exits when all are acknowledged. Send times are when a
    line left for its client (paced runs write and flush line by line).
    """
    topics: dict[str, subprocess.Popen[bytes]] = {}
    for topic, _ in msgs:
        if topic not in topics:
            cmd = ["mosquitto_pub", "-h", "127.0.0.1", "-p", str(port), "-q", "1", "-l", "-t", topic,
                   "-i", f"bench-pub-{os.getpid()}-{len(topics)}", "-M", "100"]
            if login:
                cmd += ["-u", login[0], "-P", login[1]]
            topics[topic] = subprocess.Popen(cmd, stdin=subprocess.PIPE)
    # Send nothing before every client is connected, or the first second's readings wait in
    # the pipes and their latency is the clients' start-up (seen: p50 169 ms in second 0, 5 after).
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and not all(connected(p.pid, port) for p in topics.values()):
        time.sleep(0.02)
    time.sleep(0.05)  # the TCP connection is up; CONNACK follows
    t0 = time.monotonic()
    sent_at = []
    for i, (topic, payload) in enumerate(msgs):
        pipe = topics[topic].stdin
        assert pipe is not None
        if rate:
            delay = t0 + i / rate - time.monotonic()
            if delay > 0:
                time.sleep(delay)
        sent_at.append(time.time())
        pipe.write(payload + b"\n")
        if rate:
            pipe.flush()
    for p in topics.values():
        assert p.stdin is not None
        p.stdin.close()
    for p in topics.values():
        p.wait(300)
    q.put(sent_at)


def connected(pid: int, port: int) -> bool:
    try:
        return any(c.raddr and c.raddr.port == port and c.status == psutil.CONN_ESTABLISHED
                   for c in psutil.Process(pid).net_connections("tcp"))
    except psutil.Error:
        return False


PUBLISHERS = {"paho": publisher, "mosquitto_pub": publisher_cli}


def bare_subscriber(port: int, n: int, ready: Any, q: mp.Queue,  # type: ignore[type-arg]
                    login: Login = None) -> None:
    """Count messages at QoS 1, acknowledging each; `ready` (an mp.Event) is set once subscribed."""
    got = [0, 0.0, 0.0]
    cpu = [0.0, 0.0]

    def on_message(c, _u, m) -> None:  # type: ignore[no-untyped-def]
        if got[0] == 0:
            got[1] = time.time()
            cpu[0] = time.process_time()
        got[0] += 1
        got[2] = time.time()
        cpu[1] = time.process_time()
        c.ack(m.mid, m.qos)  # acknowledge as the ingestor does, so its floor is comparable

    c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="bench-bare", clean_session=True, manual_ack=True)
    if login:
        c.username_pw_set(*login)
    c.on_message = on_message
    def on_connect(cl: mqtt.Client, *_a: Any) -> None:
        cl.subscribe("packproof/v1/+/+/telemetry", qos=1)
        ready.set()

    c.on_connect = on_connect
    c.connect("127.0.0.1", port)
    c.loop_start()
    last_seen: tuple[float, float] = (0, time.monotonic())
    while got[0] < n:  # stop when all arrived, or nothing more for 5 s (the broker lost some)
        time.sleep(0.05)
        if got[0] != last_seen[0]:
            last_seen = (got[0], time.monotonic())
        elif time.monotonic() - last_seen[1] > 5 and got[0]:
            break
    q.put((got[0], got[1], got[2], (cpu[1] - cpu[0]) / max(got[0] - 1, 1)))
    c.loop_stop()


class Proc:
    def __init__(self, *args: str, log: Path, env: dict[str, str] | None = None) -> None:
        self.log = log.open("w")
        self.p = subprocess.Popen([sys.executable, "-m", "packproof", *args], stdout=self.log,
                                  stderr=subprocess.STDOUT, cwd=ROOT, env={**os.environ, **(env or {})})
        self.ps = psutil.Process(self.p.pid)

    def stop(self) -> None:
        if self.p.poll() is None:
            self.p.send_signal(signal.SIGINT)
            try:
                self.p.wait(30)
            except subprocess.TimeoutExpired:
                self.p.kill()
        self.log.close()


def wait_port(port: int, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while not port_in_use("127.0.0.1", port):
        if time.monotonic() > deadline:
            raise SystemExit(f"nothing listens on {port} after {timeout}s")
        time.sleep(0.05)


def counts(url: str, sql: str) -> tuple[int, ...]:
    try:
        return tuple(int(x) for x in query_sync(url, sql)[0])
    except Exception:  # the store is still being created
        return (0, 0)


@dataclass
class StoreSetup:
    """Where each pipeline run keeps its readings: a SQLite file, or a fresh schema in a PostgreSQL database."""

    kind: str
    pg_url: str = ""

    def new(self, data: Path, label: str) -> str:
        if self.kind == "sqlite":
            return f"sqlite:///{data / 'packproof.db'}"
        schema = self.schema(label)
        with psycopg.connect(self.pg_url, autocommit=True) as c:
            c.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
            c.execute(f"CREATE SCHEMA {schema}")
        return in_schema(self.pg_url, schema)

    @staticmethod
    def schema(label: str) -> str:
        return f"bench_{label.replace('-', '_')}_{os.getpid()}"

    def drop(self, label: str) -> None:
        """A run's schema, once measured: later runs should not share the server with every earlier one."""
        if self.kind != "postgresql":
            return
        with psycopg.connect(self.pg_url, autocommit=True) as c:
            c.execute(f"DROP SCHEMA IF EXISTS {self.schema(label)} CASCADE")

    def drop_all(self) -> None:
        if self.kind != "postgresql":
            return
        with psycopg.connect(self.pg_url, autocommit=True) as c:
            for (schema,) in c.execute("SELECT nspname FROM pg_namespace WHERE nspname LIKE %s",
                                       (f"bench\\_%\\_{os.getpid()}",)).fetchall():
                c.execute(f"DROP SCHEMA {schema} CASCADE")


def clear_session(port: int, client_id: str, login: Login = None) -> None:
    """End a persistent session so the broker stops queueing for an ingestor that is gone."""
    c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id, clean_session=True)
    if login:
        c.username_pw_set(*login)
    c.connect("127.0.0.1", port)
    c.loop_start()
    time.sleep(0.2)
    c.disconnect()
    c.loop_stop()


def parse_ts(text: str) -> float:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


@dataclass
class BrokerSetup:
    """Where the benchmark's clients connect, and as whom (no logins on the embedded broker)."""

    kind: str
    port: int
    ingestor: Login = None
    publisher: Login = None
    verify_workers: int = 0
    publish: str = "paho"  # which load generator (PUBLISHERS)
    pid: int = 0  # the broker's process

    def cpu(self) -> float:
        """CPU seconds the broker has used: per message, the same for every consumer unless CPU is short."""
        t = psutil.Process(self.pid).cpu_times()
        return t.user + t.system


def start_mosquitto(work: Path, port: int) -> tuple[MosquittoProcess, BrokerSetup]:
    """Mosquitto from the shipped config, plus one benchmark login allowed to publish any telemetry."""
    d = work / "mosquitto"
    d.mkdir()
    ingestor, pub = (INGESTOR_USER, "bench-" + os.urandom(8).hex()), (PUBLISHER_USER, "bench-" + os.urandom(8).hex())
    pf = PasswordFile(d / "mqtt.passwd")
    for user, password in (ingestor, pub):
        pf.set(user, password)
    acl = d / "bench.acl"
    acl.write_text(SHIPPED_ACL.read_text() + f"\n# benchmark only: one publisher speaks for every device\n"
                   f"user {PUBLISHER_USER}\ntopic write packproof/v1/+/+/telemetry\n")
    m = MosquittoProcess(d, port, password_file=pf.path, acl_file=acl).start()
    return m, BrokerSetup("mosquitto", port, ingestor, pub)


def run_bare(b: BrokerSetup, msgs: list[tuple[str, bytes]]) -> tuple[float, float, float]:
    """Messages/s through the broker to a bare paho subscriber, its CPU µs per message, and the broker's."""
    port = b.port
    q: mp.Queue = mp.Queue()  # type: ignore[type-arg]
    ready = mp.Event()
    sub = mp.Process(target=bare_subscriber, args=(port, len(msgs), ready, q, b.ingestor))
    sub.start()
    ready.wait(10)
    time.sleep(0.3)
    pq: mp.Queue = mp.Queue()  # type: ignore[type-arg]
    pub = mp.Process(target=PUBLISHERS[b.publish], args=(port, msgs, None, pq, b.publisher))
    c0 = b.cpu()
    pub.start()
    n, _first, last, cpu_per_msg = q.get(timeout=600)
    broker_us = (b.cpu() - c0) / max(n, 1) * 1e6
    t0 = pq.get(timeout=60)[0]  # the first publish (drain before join, or the child blocks flushing its queue)
    pub.join()
    sub.join()
    if n < len(msgs):
        print(f"  (the bare subscriber received {n:,} of {len(msgs):,}: the broker dropped {len(msgs) - n:,})")
    return n / (last - t0), cpu_per_msg * 1e6, broker_us


def process_tree_cpu(procs: list[Proc]) -> dict[int, tuple[float, float]]:
    """pid -> (user, system) CPU seconds of each ingestor and its children (signature verifiers)."""
    out = {}
    for p in procs:
        for q in [p.ps, *p.ps.children(recursive=True)]:
            try:
                t = q.cpu_times()
            except psutil.Error:
                continue
            out[q.pid] = (t.user, t.system)
    return out


def run_pipeline(b: BrokerSetup, st: StoreSetup, msgs: list[tuple[str, bytes]], fleet: list,  # type: ignore[type-arg]
                 order: list, work: Path, *, verify: bool, rate: float | None, label: str,  # type: ignore[type-arg]
                 ingestors: int = 1, keep: bool = False,
                 setup: Callable[[Path], Sequence[str]] | None = None) -> dict[str, Any]:
    """Publish `msgs`, run the pipeline until all are sealed, measure; `keep` the store for proof timing.
    `setup(data_dir)`, before the ingestors start, returns more arguments for the sealing one
    (benchmarks/witnesses.py starts witnesses there and passes `--witness`)."""
    port = b.port
    data = work / label
    url = st.new(data, label)
    args = ["ingest", "--data-dir", str(data), "--store", url, "--mqtt-port", str(port)]
    if not verify:
        args.append("--no-verify-signatures")
    elif b.verify_workers:
        args += ["--verify-workers", str(b.verify_workers)]
    env = {}
    if b.ingestor:
        args += ["--mqtt-username", b.ingestor[0]]
        env["PACKPROOF_MQTT_PASSWORD"] = b.ingestor[1]
    if ingestors > 1:
        args += ["--share-group", f"bench-{label}"]
    client_ids = [f"bench-{label}-{i}" if ingestors > 1 else f"bench-{label}" for i in range(ingestors)]
    # Register the fleet first (the simulator's --count 0 path would publish).
    async def reg() -> None:
        s = await DataDir(data, store_url=url).open_writer()  # with the intake key, as the ingestors write
        await s.register(shipments_of(fleet), [(d.device_id, d.shipment_id, d.public_key) for d in fleet])
        await s.close()

    asyncio.run(reg())
    # The first ingestor also seals; the others (a share group) only ingest into the same store.
    sealing_args = list(setup(data)) if setup else []
    ings = [Proc(*args, "--client-id", cid, *(["--no-seal"] if i else sealing_args),
                 log=work / f"ingest-{label}-{i}.log", env=env) for i, cid in enumerate(client_ids)]
    deadline = time.monotonic() + 20
    while not (data / "ledger.pub").exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(1.0 + 0.5 * len(ings))  # subscribed
    cpu0 = process_tree_cpu(ings)
    b0 = b.cpu()
    pq: mp.Queue = mp.Queue()  # type: ignore[type-arg]
    pub = mp.Process(target=PUBLISHERS[b.publish], args=(port, msgs, rate, pq, b.publisher))
    started = time.time()
    pub.start()
    peak_rss = 0
    n = len(msgs)
    t_stored = 0.0
    while (progress := counts(url, "SELECT coalesce(sum(reading_count), 0), coalesce(sum(sealed_count), 0) "
                                   "FROM device_stats"))[1] < n:
        if not t_stored and progress[0] >= n:
            t_stored = time.time()
        peak_rss = max(peak_rss, sum(i.ps.memory_info().rss for i in ings))
        if time.time() - started > 600:
            break
        time.sleep(0.02)
    t_end = time.time()
    t_stored = t_stored or t_end
    broker_us = (b.cpu() - b0) / n * 1e6
    cpu1 = process_tree_cpu(ings)
    user = sum(c1[0] - cpu0.get(pid, (0.0, 0.0))[0] for pid, c1 in cpu1.items())
    system = sum(c1[1] - cpu0.get(pid, (0.0, 0.0))[1] for pid, c1 in cpu1.items())
    cpu = user + system
    sent_at = pq.get(timeout=60)
    pub.join()
    sealed = progress[1]
    index = {(d.device_id, seq): i for i, (d, seq) in enumerate(order)}
    blocks = query_sync(url, "SELECT last_id, header FROM blocks ORDER BY last_id")
    ends = [b[0] for b in blocks]
    sealed_at = [parse_ts(json.loads(b[1])["sealed_at"]) for b in blocks]
    rows = query_sync(url, "SELECT device_id, seq, id, received_at FROM readings WHERE device_id NOT LIKE '~%'")
    lat = sorted(sealed_at[bisect.bisect_left(ends, i)] - sent_at[index[(d, q)]] for d, q, i, _ in rows
                 if bisect.bisect_left(ends, i) < len(ends))
    # The part of it before the ingestor had the message: the publisher, the broker, the in-flight window.
    reach = sorted(at - sent_at[index[(d, q)]] for d, q, _, at in rows)
    for i in ings:
        i.stop()
    for cid in client_ids:
        clear_session(port, cid, b.ingestor)
    if not keep:
        st.drop(label)
    return {"sealed_rate": sealed / (t_end - sent_at[0]), "stored_rate": n / (t_stored - sent_at[0]),
            "sealed": sealed, "broker_us": broker_us,
            # when the last reading reached the ingestor, was stored, was sealed (s after the first publish)
            "received_s": max((at for *_, at in rows), default=t_end) - sent_at[0],
            "stored_s": t_stored - sent_at[0], "sealed_s": t_end - sent_at[0], "cpu_us": cpu / max(sealed, 1) * 1e6,
            "sys_us": system / max(sealed, 1) * 1e6,
            "rss_mb": peak_rss / 2**20, "p50": lat[len(lat) // 2] if lat else float("nan"),
            "p99": lat[int(len(lat) * 0.99)] if lat else float("nan"),
            "reach_p50": reach[len(reach) // 2] if reach else float("nan"),
            "reach_p99": reach[int(len(reach) * 0.99)] if reach else float("nan"), "data": str(data), "url": url}


def unavoidable(msgs: list[tuple[str, bytes]], fleet: list) -> dict[str, float]:  # type: ignore[type-arg]
    """Same-run cost of the steps any honest ingestor must take, per reading (µs)."""
    sample = [p for _, p in msgs[:5000]]
    keys = {d.device_id: d.public_key for d in fleet}
    t = time.perf_counter()
    parsed = [Reading.model_validate_json(p) for p in sample]
    decode = (time.perf_counter() - t) / len(sample)
    pairs = [(unb64(r.sig) + signing_bytes(r), keys[r.device_id]) for r in parsed]  # type: ignore[arg-type]
    t = time.perf_counter()
    for sm, k in pairs:
        crypto_sign_open(sm, k)
    ed = (time.perf_counter() - t) / len(sample)
    t = time.perf_counter()
    for p in sample:
        hashlib.sha256(b"\x00" + p).digest()
    sha = (time.perf_counter() - t) / len(sample)
    with tempfile.TemporaryDirectory() as d:
        c = sqlite3.connect(Path(d) / "b.db")
        c.execute("PRAGMA journal_mode=WAL")
        c.execute("CREATE TABLE r(id INTEGER PRIMARY KEY, device_id TEXT, seq INTEGER, body BLOB, leaf BLOB, "
                  "UNIQUE(device_id, seq))")
        rows = [(r.device_id, r.seq, p, b"x" * 32) for r, p in zip(parsed, sample, strict=True)]
        t = time.perf_counter()
        for i in range(0, len(rows), 1000):
            c.executemany("INSERT INTO r(device_id, seq, body, leaf) VALUES (?,?,?,?)", rows[i:i + 1000])
            c.commit()
        ins = (time.perf_counter() - t) / len(rows)
        c.close()
    return {"ed25519": ed * 1e6, "sha256": sha * 1e6, "decode": decode * 1e6, "insert": ins * 1e6}


def proof_time(data: Path, url: str, ids: list[str], work: Path) -> tuple[float, float]:
    port = free_port()
    api = Proc("api", "--data-dir", str(data), "--store", url, "--port", str(port), log=work / "api.log")
    try:
        wait_port(port)
        times = []
        with httpx.Client(base_url=f"http://127.0.0.1:{port}") as c:
            for rid in ids:
                t = time.perf_counter()
                r = c.get(f"/readings/{rid}/proof")
                r.raise_for_status()
                times.append(time.perf_counter() - t)
        times.sort()
        return statistics.median(times) * 1e3, times[int(len(times) * 0.99)] * 1e3
    finally:
        api.stop()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--readings", type=int, default=60000,
                    help="per run; runs of 20 s or more keep the start and the last batch a small share")
    ap.add_argument("--devices", type=int, default=20)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--rounds", type=int, default=3,
                    help="bare / signatures off / signatures on, interleaved this many times; medians reported")
    ap.add_argument("--broker", choices=["embedded", "mosquitto"], default="embedded",
                    help="the embedded amqtt broker, or Mosquitto started from broker/mosquitto.conf")
    ap.add_argument("--ingestors", default="1",
                    help="ingest processes on one store, e.g. 1 or 1,2 (each count measured); more than 1 share "
                         "an MQTT 5 subscription (Mosquitto)")
    ap.add_argument("--store", choices=["sqlite", "postgresql"], default="sqlite",
                    help="a SQLite file per run, or a fresh schema per run in --pg-url's database")
    ap.add_argument("--pg-url", default=os.environ.get("PACKPROOF_BENCH_PG", "postgresql://postgres@127.0.0.1/test"),
                    help="PostgreSQL database for --store postgresql (env PACKPROOF_BENCH_PG)")
    ap.add_argument("--verify-workers", type=int, default=0,
                    help="signature-checking processes per ingestor (ingest --verify-workers)")
    ap.add_argument("--offer", type=lambda t: [float(x) for x in t.split(",")], default=[],
                    help="also offer these rates (readings/s, e.g. 4000,8000) with signatures on, each for "
                         "--offer-for seconds: does the pipeline keep up, and at what latency")
    ap.add_argument("--offer-for", type=float, default=15.0)
    ap.add_argument("--publisher", choices=sorted(PUBLISHERS),
                    default="mosquitto_pub" if shutil.which("mosquitto_pub") else "paho",
                    help="load generator: one mosquitto_pub per device (Mosquitto's C client, package "
                         "mosquitto-clients; the default where installed), or one paho client in Python, which "
                         "takes 0.55-0.9 of a core on two (about 130 µs a message) from the broker and the pipeline")
    a = ap.parse_args()
    counts = [int(x) for x in a.ingestors.split(",")]
    if max(counts) > 1 and a.broker == "embedded":
        ap.error("--ingestors above 1 needs shared subscriptions (MQTT 5): use --broker mosquitto")
    if a.publisher == "mosquitto_pub" and shutil.which("mosquitto_pub") is None:
        ap.error("--publisher mosquitto_pub: no mosquitto_pub on PATH (install mosquitto-clients)")
    st = StoreSetup(a.store, a.pg_url)
    print(f"packproof pipeline benchmark: {a.readings:,} readings from {a.devices} devices, {a.rounds} rounds, "
          f"{a.broker} broker, {a.store} store, {a.ingestors} ingestor(s), {a.publisher} publisher, "
          f"{os.cpu_count()} cores, "
          f"Python {sys.version.split()[0]}")
    with tempfile.TemporaryDirectory(prefix="packproof-bench-") as tmp:
        work = Path(tmp)
        port = free_port()
        broker: Proc | MosquittoProcess
        if a.broker == "mosquitto":
            broker, b = start_mosquitto(work, port)
        else:
            broker, b = Proc("broker", "--port", str(port), log=work / "broker.log"), BrokerSetup("amqtt", port)
        b.verify_workers, b.publish = a.verify_workers, a.publisher
        b.pid = broker.p.pid if isinstance(broker, Proc) else broker.proc.pid  # type: ignore[union-attr]
        try:
            wait_port(port)
            print("signing payloads ...", flush=True)
            msgs, fleet, order = make_payloads(a.readings, a.devices, a.seed)
            # The machine's speed drifts by ±20% within minutes (other tenants): each round runs
            # the bare subscriber and the pipelines back to back, so each ratio compares like with
            # like, and the medians of the rounds are the figures.
            bares: list[float] = []
            mqtt_uss: list[float] = []
            offs: dict[int, list[dict[str, Any]]] = {n: [] for n in counts}
            ons: dict[int, list[dict[str, Any]]] = {n: [] for n in counts}
            for r in range(a.rounds):
                bare, mqtt_us, broker_us = run_bare(b, msgs)
                bares.append(bare)
                mqtt_uss.append(mqtt_us)
                print(f"  round {r + 1}: bare subscriber {bare:7,.0f}/s, broker CPU {broker_us:4.0f} µs/msg",
                      flush=True)
                for n in counts:
                    # Fresh seqs for each pipeline run so nothing is a duplicate: a new fleet seed each.
                    m1, f1, o1 = make_payloads(a.readings, a.devices, a.seed + 10 * r + 1)
                    off = run_pipeline(b, st, m1, f1, o1, work, verify=False, rate=None, label=f"nosig-{n}-{r}",
                                       ingestors=n)
                    m2, f2, o2 = make_payloads(a.readings, a.devices, a.seed + 10 * r + 2)
                    on = run_pipeline(b, st, m2, f2, o2, work, verify=True, rate=None, label=f"sig-{n}-{r}",
                                      ingestors=n, keep=n == counts[0] and r == a.rounds - 1)
                    for name, run, runs in (("off", off, offs[n]), ("on", on, ons[n])):
                        run["ratio"], run["sealed_ratio"] = run["stored_rate"] / bare, run["sealed_rate"] / bare
                        runs.append(run)
                        print(f"    {n} ingestor(s), signatures {name + ':':4} stored {run['stored_rate']:7,.0f}/s "
                              f"({run['ratio']:.0%}), sealed {run['sealed_rate']:7,.0f}/s ({run['sealed_ratio']:.0%}); "
                              f"last reading received {run['received_s']:5.2f} s, stored {run['stored_s']:5.2f} s, "
                              f"sealed {run['sealed_s']:5.2f} s after the first publish; ingestor CPU "
                              f"{run['cpu_us']:4.0f} µs, broker {run['broker_us']:4.0f} µs/reading", flush=True)
            med = statistics.median
            print(f"bare counting subscriber ({b.kind + ', QoS 1):':15}{med(bares):9,.0f} readings/s (median)")
            for n in counts:
                for name, runs in (("off", offs[n]), ("on", ons[n])):
                    ratios = [x["ratio"] for x in runs]
                    sealed = [x["sealed_ratio"] for x in runs]
                    print(f"full pipeline, {n} ingestor(s), signatures {name + ':':4}  "
                          f"{med([x['stored_rate'] for x in runs]):9,.0f} readings/s stored ({med(ratios):.0%} of "
                          f"bare, median of per-round ratios; {min(ratios):.0%}..{max(ratios):.0%}); sealed "
                          f"{med([x['sealed_rate'] for x in runs]):,.0f}/s ({med(sealed):.0%}; "
                          f"{min(sealed):.0%}..{max(sealed):.0%}), which adds the wait for the next seal")
            n0 = counts[0]
            on_mid = sorted(ons[n0], key=lambda x: x["cpu_us"])[len(ons[n0]) // 2]
            steps = unavoidable(msgs, fleet)
            floor = sum(steps.values())
            mqtt_us = med(mqtt_uss)
            cpu = on_mid["cpu_us"]
            print(f"ingestor CPU per reading ({n0} ingestor(s), signatures on): {cpu:9.1f} µs (median round)")
            print("  unavoidable steps, same run:              "
                  + ", ".join(f"{k} {v:.1f}" for k, v in steps.items()) + f" = {floor:.1f} µs")
            print(f"  ratio to the unavoidable sum:             {cpu / floor:9.2f}x")
            print(f"  MQTT receive + PUBACK in paho (bare subscriber's CPU): {mqtt_us:.1f} µs; ratio counting it: "
                  f"{cpu / (floor + mqtt_us):.2f}x")
            print(f"  of which kernel time (syscalls, fsync):   {on_mid['sys_us']:9.1f} µs")
            every = [x for n in counts for x in offs[n] + ons[n]]
            print(f"ingestors' peak RSS (summed):               {max(x['rss_mb'] for x in every):9.1f} MiB")
            for n in counts:
                target = 0.8 * med([x["stored_rate"] for x in ons[n]])
                paced = run_paced(b, st, work, a, n, target, min(a.readings, int(target * 20)), a.seed + 5 + n,
                                  f"paced-{n}")
                print(f"at 80% ({target:,.0f}/s), {n} ingestor(s): {latency(paced)}")
                for k, offer in enumerate(a.offer):
                    held = run_paced(b, st, work, a, n, offer, int(offer * a.offer_for), a.seed + 100 + 10 * n + k,
                                     f"offer-{n}-{k}")
                    print(f"offered {offer:,.0f}/s for {a.offer_for:g} s, {n} ingestor(s), signatures on: "
                          f"sealed {held['sealed_rate']:7,.0f}/s (first publish to last seal), {latency(held)}")
            last = ons[n0][-1]
            ids = sample_ids(last["url"], 200)
            p50, p99 = proof_time(Path(last["data"]), last["url"], ids, work)
            print(f"proof bundle via API ({len(ids)} requests):         p50 {p50:6.1f} ms, p99 {p99:6.1f} ms")
        finally:
            broker.stop()
            st.drop_all()


def run_paced(b: BrokerSetup, st: StoreSetup, work: Path, a: argparse.Namespace, ingestors: int, rate: float,
              count: int, seed: int, label: str) -> dict[str, Any]:
    """`count` signed readings published at `rate` through the pipeline, with a fleet of their own."""
    msgs, fleet, order = make_payloads(count, a.devices, seed)
    return run_pipeline(b, st, msgs, fleet, order, work, verify=True, rate=rate, label=label, ingestors=ingestors)


def latency(r: dict[str, Any]) -> str:
    return (f"publish-to-sealed p50 {r['p50'] * 1e3:5.0f} ms, p99 {r['p99'] * 1e3:5.0f} ms "
            f"(publish to ingestor: p50 {r['reach_p50'] * 1e3:.0f} ms, p99 {r['reach_p99'] * 1e3:.0f} ms); "
            f"CPU a reading: ingestor {r['cpu_us']:.0f} µs, broker {r['broker_us']:.0f} µs")


def sample_ids(url: str, n: int) -> list[str]:
    """Reading ids spread over the devices and their seqs, for the proof-bundle requests."""
    rows = query_sync(url, "SELECT device_id, seq FROM readings WHERE device_id NOT LIKE '~%' AND seq % 50 = 0 "
                           "ORDER BY device_id, seq")
    return [f"{d}:{s}" for d, s in rows[:n]]


if __name__ == "__main__":
    main()
