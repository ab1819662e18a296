"""Shared fixtures: real services on free ports, the way users run them.

- `mqtt_broker`: the embedded amqtt broker in a thread of its own for the session
  (as httpx's tests serve a real uvicorn in a thread).
- `Service`: a `packproof` command started as a real subprocess, stopped with SIGINT
  (the clean path) at the end of the test.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import paho.mqtt.client as mqtt
import pytest

from broker.embedded import EmbeddedBroker
from packproof.net import free_port, port_in_use

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
        self.port = free_port()
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


@pytest.fixture
def fault_scale(request: pytest.FixtureRequest) -> float:
    return float(request.config.getoption("--fault-scale"))


@pytest.fixture(scope="session")
def mqtt_broker() -> Iterator[BrokerThread]:
    b = BrokerThread().start()
    yield b
    b.stop()


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
    """A real `packproof broker` and `packproof ingest` (with sealer) for one test."""

    data: Path
    mqtt: int
    services: list[Service]

    def start_api(self, tmp_path: Path) -> str:
        port = free_port()
        api = Service("api", "--data-dir", str(self.data), "--port", str(port), log=tmp_path / "api.log")
        self.services.append(api)
        api.wait_port(port)
        return f"http://127.0.0.1:{port}"


@pytest.fixture
def pipeline_services(tmp_path: Path) -> Iterator[Pipeline]:
    mqtt = free_port()
    p = Pipeline(tmp_path / "data", mqtt, [Service("broker", "--port", str(mqtt), log=tmp_path / "broker.log")])
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
