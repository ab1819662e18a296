"""Brokers with logins for the broker tests: embedded and Mosquitto, on free ports."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest

from packproof.broker.auth import PasswordFile
from packproof.broker.embedded import EmbeddedBroker
from packproof.broker.mosquitto import MosquittoProcess, mosquitto_binary
from packproof.net import free_port

SERVICES = frozenset({"packproof-ingestor"})


def login(port: int, user: str | None, password: str | None, cid: str,
          clean: bool = True) -> tuple[mqtt.Client, str]:
    """A paho client connected (or refused): the client, running, and the CONNACK's reason."""
    c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=cid, clean_session=clean)
    if user:
        c.username_pw_set(user, password)
    result: list[str] = []
    done = threading.Event()
    c.on_connect = lambda _c, _u, _f, rc, _p: (result.append(str(rc)), done.set())
    c.connect("127.0.0.1", port)
    c.loop_start()
    assert done.wait(10), "no CONNACK"
    return c, result[0]


@pytest.fixture
def passwords(tmp_path: Path) -> Path:
    pf = PasswordFile(tmp_path / "mqtt.passwd")
    for user, pw in (("dev-1", "p1"), ("dev-2", "p2"), ("packproof-ingestor", "ing")):
        pf.set(user, pw)
    return pf.path


def run_embedded(port: int, passwords: Path) -> Iterator[None]:
    ready, stop = threading.Event(), threading.Event()

    def serve() -> None:
        async def main() -> None:
            async with EmbeddedBroker(port=port, password_file=passwords, services=tuple(SERVICES)):
                ready.set()
                await asyncio.to_thread(stop.wait)
        asyncio.run(main())

    t = threading.Thread(target=serve, daemon=True)
    t.start()
    assert ready.wait(10)
    yield
    stop.set()
    t.join(15)


def run_mosquitto(port: int, passwords: Path) -> Iterator[None]:
    """The shipped Mosquitto configuration (broker/mosquitto.py rewrites only port and paths)."""
    if mosquitto_binary() is None:
        pytest.skip("Mosquitto is not installed here")
    with MosquittoProcess(passwords.parent / "mosquitto", port, password_file=passwords):
        yield


@pytest.fixture(params=["embedded", "mosquitto"])
def secured_broker(request: pytest.FixtureRequest, passwords: Path) -> Iterator[int]:
    port = free_port()
    runner = run_embedded if request.param == "embedded" else run_mosquitto
    gen = runner(port, passwords)
    next(gen)
    yield port
    next(gen, None)
