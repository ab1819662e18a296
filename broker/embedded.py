"""The embedded MQTT broker (amqtt), for running packproof with no server to install.

amqtt is a pure-Python MQTT 3.1.1 broker: ~4,500 msg/s at QoS 1 on this kind of
machine (DESIGN.md field notes), plenty for a pilot. At scale the same clients talk to
Mosquitto instead; nothing in packproof depends on which broker it is.

We never assume a port is free: the port is the caller's choice, and a taken port is
reported with the flag that changes it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from amqtt.broker import Broker

from broker.auth import PasswordFile
from packproof.errors import BrokerError, ConfigError
from packproof.net import require_free

log = logging.getLogger(__name__)


def broker_config(host: str, port: int, password_file: Path | None = None,
                  services: tuple[str, ...] = (), tls: tuple[Path, Path] | None = None) -> dict[str, Any]:
    """Only the plugins we need: amqtt's default set logs every packet and publishes $SYS,
    which cost time on every message. With a password file, clients must authenticate and
    the topic rules of `broker.auth` apply; without one, the broker is open (a local demo)."""
    plugins: dict[str, Any]
    if password_file is None:
        plugins = {"amqtt.plugins.authentication.AnonymousAuthPlugin": {"allow_anonymous": True}}
    else:
        PasswordFile(password_file).users()  # fail now, with a clear message, if it is missing or malformed
        plugins = {"broker.auth.PasswordFileAuth": {"password_file": str(password_file)},
                   "broker.auth.DeviceTopicACL": {"services": list(services)}}
    listener: dict[str, Any] = {"type": "tcp", "bind": f"{host}:{port}", "max_connections": 10000}
    if tls is not None:
        for f in tls:
            if not Path(f).exists():
                raise ConfigError(f"TLS file {f} does not exist")
        listener |= {"ssl": True, "certfile": str(tls[0]), "keyfile": str(tls[1])}
    return {"listeners": {"default": listener}, "plugins": plugins}


class _Subscriptions(dict[str, Any]):
    """amqtt's filter -> subscribers map, iterated over a snapshot.

    amqtt 0.12.1 awaits inside its loops over this dict (broadcasting a message, offering
    retained ones), so a client subscribing meanwhile changed its size under the loop:
    "RuntimeError: dictionary changed size during iteration" killed the broadcast task and
    the message never reached anyone (seen in `packproof run` with outages, as devices
    reconnected and re-subscribed).
    """

    def __iter__(self) -> Iterator[str]:
        return iter(list(super().keys()))

    def items(self) -> list[tuple[str, Any]]:  # type: ignore[override]
        return list(super().items())


class _Broker(Broker):
    """amqtt 0.12.1 with two flaws fixed: iteration over subscriptions (see `_Subscriptions`),
    and retained messages delivered only along the client's own subscriptions.

    On every connect amqtt offers the client the retained messages matching *every* filter
    any client holds (`for topic in self._subscriptions` in `Broker.client_connected`), so a
    device received another device's ack, past the topic ACL, and the ingestor received
    acks on its telemetry subscription (found by tests/test_fault_injection.py after a
    broker restart). A retained message now goes to a session only for a filter it holds.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._subscriptions = _Subscriptions()

    async def _publish_retained_messages_for_subscription(self, subscription: tuple[str, int],
                                                          session: Any) -> None:
        holders = self._subscriptions.get(subscription[0], [])
        if any(s.client_id == session.client_id for s, _ in holders):
            await super()._publish_retained_messages_for_subscription(subscription, session)


class _UnackedAtShutdown(logging.Filter):
    """One line instead of amqtt's traceback for a delivery still unacknowledged when the broker stops.

    That is expected, not a fault: the ingestor acknowledges only what it stored, so on a full
    disk it stops with deliveries unacknowledged (the devices still hold them), and amqtt 0.12.1
    logs each with `logger.exception`. A command must not print a traceback for it.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        if record.exc_info and str(record.msg).startswith("Task failed during broadcast shutdown"):
            record.msg, record.args = "at shutdown a delivery was still unacknowledged by its subscriber (%s)", (
                record.exc_info[1],)
            record.exc_info, record.exc_text = None, None
            record.levelno, record.levelname = logging.WARNING, "WARNING"
        return True


_UNACKED_AT_SHUTDOWN = _UnackedAtShutdown()


class EmbeddedBroker:
    """`async with EmbeddedBroker(port=...)`: an amqtt broker for the block's lifetime."""

    def __init__(self, host: str = "127.0.0.1", port: int = 1883, flag: str = "--mqtt-port",
                 password_file: Path | None = None, services: tuple[str, ...] = (),
                 tls: tuple[Path, Path] | None = None) -> None:
        """`tls`: (certificate, private key) files, PEM; the listener then speaks MQTT over TLS only."""
        self.host, self.port, self.flag = host, port, flag
        self.password_file, self.services, self.tls = password_file, services, tls
        self._broker: Broker | None = None

    async def start(self) -> None:
        require_free(self.host, self.port, self.flag, "another MQTT broker?")
        for name in ("amqtt", "transitions"):
            logging.getLogger(name).setLevel(logging.WARNING)
        logging.getLogger("amqtt.broker").addFilter(_UNACKED_AT_SHUTDOWN)  # once: a logger keeps a filter once
        self._broker = _Broker(broker_config(self.host, self.port, self.password_file, self.services, self.tls))
        try:
            await self._broker.start()
        except Exception as exc:  # amqtt wraps its failures in its own BrokerError
            raise BrokerError(f"the embedded broker could not start on {self.host}:{self.port}: {exc}") from exc
        log.info("embedded MQTT broker listening on %s:%d", self.host, self.port)

    async def stop(self) -> None:
        if self._broker is not None:
            try:
                await asyncio.wait_for(self._broker.shutdown(), timeout=10)
            except (TimeoutError, Exception) as exc:  # noqa: BLE001 - shutting down regardless
                log.warning("embedded broker shutdown: %s", exc)
            self._broker = None

    async def __aenter__(self) -> EmbeddedBroker:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()
