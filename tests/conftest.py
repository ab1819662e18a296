"""Shared fixtures: real services on free ports, the way users run them.

- `mqtt_broker`: the embedded amqtt broker in a thread of its own for the session
  (as httpx's tests serve a real uvicorn in a thread).
- `mosquitto`: a real Mosquitto from our shipped configuration (`broker/mosquitto.conf`,
  `broker/packproof.acl`) on a free port, in the test's tmp dir, with a login for the
  ingestor made by `packproof passwd`; skipped where Mosquitto is not installed.
- `Service`: a `packproof` command started as a real subprocess, stopped with SIGINT
  (the clean path) at the end of the test.
- `store_url`: a fresh store on each engine: a SQLite file, and a schema of its own in
  the PostgreSQL database `test` on 127.0.0.1:5432 (PACKPROOF_TEST_PG overrides the URL),
  dropped afterwards; the PostgreSQL case skips, saying why, where no server answers.
- `small_fs`, `fill_up`: a small tmpfs mounted for a test and filled: a real full disk
  (ENOSPC, SQLITE_FULL); skipped, saying why, where mount is not allowed.
"""

from __future__ import annotations

import asyncio
import errno
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import paho.mqtt.client as mqtt
import pytest

from packproof.broker.embedded import EmbeddedBroker
from packproof.broker.mosquitto import INGESTOR_USER, MosquittoProcess, mosquitto_binary
from packproof.net import free_port, port_in_use
from tests.dbutil import in_schema
from tests.dbutil import query_sync as query
from tests.ports import restartable_port

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"


def packproof_cmd(*args: str) -> list[str]:
    return [sys.executable, "-m", "packproof", *args]


def cli(*args: str, timeout: float = 120, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """Run a `packproof` command to completion; returns its exit code and output. `env` adds variables."""
    full = {**os.environ, "COLUMNS": "200", "NO_COLOR": "1", **(env or {})}
    return subprocess.run(packproof_cmd(*args), capture_output=True, text=True, timeout=timeout, cwd=ROOT, env=full)


class BrokerThread:
    def __init__(self) -> None:
        self.port = restartable_port()  # tests stop it and start another on the same port
        self._loop = asyncio.new_event_loop()
        self._stop: asyncio.Event | None = None
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        async def main() -> None:
            self._stop = asyncio.Event()
            async with EmbeddedBroker(port=self.port):
                self._ready.set()
                await self._stop.wait()

        self._loop.run_until_complete(main())

    def start(self) -> BrokerThread:
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("embedded broker did not start in 10 s")
        return self

    def stop(self) -> None:
        if self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(15)
        if not self._thread.is_alive():
            self._loop.close()


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--fault-scale", type=float, default=1.0,
                     help="Scale the fault-injection run (duration, fleet and number of crashes); 1 suits CI.")


PG_URL = os.environ.get("PACKPROOF_TEST_PG", "postgresql://postgres@127.0.0.1:5432/test")
_pg_absent: str | None = None


def _pg_admin():  # type: ignore[no-untyped-def]
    """A sync connection to the test database, or a skip naming why there is none."""
    global _pg_absent
    import psycopg
    if _pg_absent is None:
        try:
            return psycopg.connect(PG_URL, autocommit=True, connect_timeout=3)
        except psycopg.Error as exc:
            _pg_absent = f"no PostgreSQL at {PG_URL} ({str(exc).strip().splitlines()[0]}); set PACKPROOF_TEST_PG"
    pytest.skip(_pg_absent)


@contextmanager
def pg_schema() -> Iterator[str]:
    """A URL whose connections work in a new, empty schema, dropped at the end."""
    schema = f"pp_{uuid.uuid4().hex[:12]}"
    with _pg_admin() as conn:
        conn.execute(f"CREATE SCHEMA {schema}")
    try:
        yield in_schema(PG_URL, schema)
    finally:
        with _pg_admin() as conn:
            conn.execute(f"DROP SCHEMA {schema} CASCADE")


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'data' / 'packproof.db'}"
    else:
        with pg_schema() as url:
            yield url


class Db:
    """`sqlite3.connect(...)`'s `execute(...).fetchone()/.fetchall()` on a store of either engine, by URL."""

    def __init__(self, url: str) -> None:
        self.url = url

    def execute(self, sql: str, params: tuple = ()) -> _Rows:  # type: ignore[type-arg]
        return _Rows(query(self.url, sql, params))


@dataclass
class _Rows:
    rows: list[tuple]  # type: ignore[type-arg]

    def fetchall(self) -> list[tuple]:  # type: ignore[type-arg]
        return self.rows

    def fetchone(self) -> tuple | None:  # type: ignore[type-arg]
        return self.rows[0] if self.rows else None


@contextmanager
def writes_blocked(url: str) -> Iterator[None]:
    """Another connection holds the store's write lock, as a stalled disk or a long transaction would."""
    if url.startswith("postgresql"):
        import psycopg

        from packproof.db.postgres import WRITE_LOCK
        with psycopg.connect(url) as conn:  # a transaction until the block ends
            conn.execute("SELECT pg_advisory_xact_lock(hashtext(current_schema()), %s)", (WRITE_LOCK,))
            yield
            conn.rollback()
    else:
        import sqlite3

        from packproof.db.sqlite import sqlite_path
        conn = sqlite3.connect(sqlite_path(url), timeout=5, isolation_level=None)
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield
        finally:
            conn.execute("ROLLBACK")
            conn.close()


@pytest.fixture
def fault_scale(request: pytest.FixtureRequest) -> float:
    return float(request.config.getoption("--fault-scale"))


@pytest.fixture(scope="session")
def mqtt_broker() -> Iterator[BrokerThread]:
    b = BrokerThread().start()
    yield b
    b.stop()


@dataclass
class MosquittoBroker:
    """A running Mosquitto for one test: its port, files, and logins made with `packproof passwd`."""

    process: MosquittoProcess
    ingestor_password: str

    @property
    def port(self) -> int:
        return self.process.port

    @property
    def password_file(self) -> Path:
        return self.process.password_file

    @property
    def directory(self) -> Path:
        return self.process.directory

    def ingestor_env(self) -> dict[str, str]:
        """Environment for `packproof ingest --mqtt-username packproof-ingestor`: the password, off the command line."""
        return {"PACKPROOF_MQTT_PASSWORD": self.ingestor_password}

    def add_login(self, user: str, password: str) -> None:
        """`packproof passwd`, then SIGHUP: Mosquitto reads its password file only at start and on reload."""
        r = cli("passwd", str(self.password_file), user, "--password", password)
        assert r.returncode == 0, r.stdout + r.stderr
        self.reload()

    def reload(self) -> None:
        self.process.reload()


def device_logins(broker: MosquittoBroker, data: Path, shipments: int, packs: int, seed: int = 1) -> dict[str, str]:
    """The simulator's own provisioning (as `simulate --password-file` does), done before it starts,
    then a reload: Mosquitto reads its password file only at start and on SIGHUP."""
    from packproof.app.credentials import provision_credentials
    from packproof.simulators.fleet import build_fleet
    fleet = build_fleet(shipments=shipments, packs=packs, scenario="mixed", seed=seed)
    creds = provision_credentials(fleet, broker.password_file, data / "sim-credentials.json")
    broker.reload()
    return creds


@pytest.fixture
def mosquitto(tmp_path: Path) -> Iterator[MosquittoBroker]:
    if mosquitto_binary() is None:
        pytest.skip("Mosquitto is not installed here (apt-get install mosquitto); the tests against it need one")
    work = tmp_path / "mosquitto"
    password = "ingestor-" + os.urandom(6).hex()
    r = cli("passwd", str(work / "mqtt.passwd"), INGESTOR_USER, "--password", password)
    assert r.returncode == 0, r.stdout + r.stderr
    process = MosquittoProcess(work, restartable_port(), password_file=work / "mqtt.passwd").start()
    try:
        yield MosquittoBroker(process, password)
    finally:
        process.stop()


class Service:
    """A long-running `packproof` subprocess, logs kept for the failure message."""

    def __init__(self, *args: str, log: Path, env: dict[str, str] | None = None) -> None:
        self.log_path = log
        self._log = log.open("w")
        self.proc = subprocess.Popen(packproof_cmd(*args), stdout=self._log, stderr=subprocess.STDOUT, cwd=ROOT,
                                     env={**os.environ, "PYTHONUNBUFFERED": "1", "NO_COLOR": "1", **(env or {})})

    def output(self) -> str:
        return self.log_path.read_text()

    def wait_port(self, port: int, timeout: float = 20) -> None:
        deadline = time.monotonic() + timeout
        while not port_in_use("127.0.0.1", port):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"service did not open port {port}:\n{self.output()}")
            time.sleep(0.1)

    def wait_output(self, text: str, timeout: float = 20) -> None:
        deadline = time.monotonic() + timeout
        while text not in self.output():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"service never printed {text!r}:\n{self.output()}")
            time.sleep(0.1)

    def kill(self) -> None:
        """kill -9: no cleanup, no flush, as a crash or the OOM killer would."""
        self.proc.kill()
        self.proc.wait()
        self._log.close()

    def stop(self, timeout: float = 30) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log.close()
        return self.proc.returncode


@dataclass
class Pipeline:
    """A real `packproof broker` and `packproof ingest` (with sealer) for one test, on one store engine.

    PACKPROOF_STORE is set for the test, so every `packproof` command it runs uses that store.
    """

    data: Path
    mqtt: int
    services: list[Service]
    store: str

    def start_api(self, tmp_path: Path) -> str:
        port = free_port()
        api = Service("api", "--data-dir", str(self.data), "--port", str(port), log=tmp_path / "api.log")
        self.services.append(api)
        api.wait_port(port)
        return f"http://127.0.0.1:{port}"


@pytest.fixture
def pipeline_services(tmp_path: Path, store_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[Pipeline]:
    monkeypatch.setenv("PACKPROOF_STORE", store_url)
    mqtt = restartable_port()  # some tests kill the broker and start it again
    p = Pipeline(tmp_path / "data", mqtt, [Service("broker", "--port", str(mqtt), log=tmp_path / "broker.log")],
                 store_url)
    try:
        p.services[0].wait_port(mqtt)
        ingest = Service("ingest", "--data-dir", str(p.data), "--mqtt-port", str(mqtt), "--seal-interval", "0.2",
                         log=tmp_path / "ingest.log")
        p.services.append(ingest)
        ingest.wait_output("ingesting from")
        yield p
    finally:
        for s in reversed(p.services):
            s.stop()


def wait_for(predicate, timeout: float = 20, what: str = "condition"):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.1)


def publish_all(port: int, messages: list[tuple[str, bytes]]) -> None:
    """Publish at QoS 1 and wait for every PUBACK."""
    c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"test-pub-{os.getpid()}")
    c.connect("127.0.0.1", port)
    c.loop_start()
    infos = [c.publish(t, p, qos=1) for t, p in messages]
    for i in infos:
        i.wait_for_publish(10)
    c.disconnect()
    c.loop_stop()


def get_json(url: str) -> dict:  # type: ignore[type-arg]
    r = httpx.get(url, timeout=10)
    r.raise_for_status()
    return r.json()  # type: ignore[no-any-return]


@contextmanager
def small_fs(where: Path, size: str = "24m") -> Iterator[Path]:
    """A tmpfs of `size` mounted at `where`, unmounted at the end whatever happens."""
    if os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs for a real full disk needs root")
    where.mkdir()
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(where)],
                       capture_output=True, text=True)
    if r.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({r.stderr.strip()}); "
                    "the SQLITE_FULL tests (PRAGMA max_page_count) cover the logic without one")
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], check=False)  # lazy: a killed process may still hold files


def fill_up(fs: Path) -> Path:
    """Write zeros until the file system refuses (ENOSPC); returns the filler file."""
    filler = fs / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        while True:
            os.write(fd, bytes(1 << 16))
    except OSError as exc:
        assert exc.errno == errno.ENOSPC, exc
    finally:
        os.close(fd)
    return filler
