"""The embedded MQTT broker (amqtt), for running packproof with no server to install.

amqtt is a pure-Python MQTT 3.1.1 broker: ~4,500 msg/s at QoS 1 on this kind of
machine (docs/benchmarks.md, field notes), plenty for a pilot. At scale the same clients talk to
Mosquitto instead; nothing in packproof depends on which broker it is.

We never assume a port is free: the port is the caller's choice, and a taken port is
reported with the flag that changes it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from amqtt.adapters import StreamReaderAdapter, StreamWriterAdapter
from amqtt.broker import Broker
from amqtt.errors import AMQTTError, MQTTError, NoDataError
from amqtt.mqtt.protocol.broker_handler import BrokerProtocolHandler
from amqtt.session import Session
from amqtt.utils import gen_client_id

from packproof.broker.auth import DeviceTopicACL, PasswordFile, PasswordFileAuth
from packproof.broker.refusals import Refusals
from packproof.errors import BrokerError, ConfigError
from packproof.net import require_free

log = logging.getLogger(__name__)

# The largest MQTT packet either broker accepts (Mosquitto: `max_packet_size` in mosquitto.conf):
# a reading is ~300 bytes and the ingestor refuses payloads over 4 KiB, so 8 KiB leaves room
# for its topic and for quarantining what is a little too large, while a 16 MB message is
# refused at the door instead of being held by the broker and the ingestor's inbox.
MAX_PACKET_SIZE = 8192


def _import_path(plugin: type) -> str:
    """The dotted path amqtt imports a plugin by, from the class itself: a hand-written string
    (it once said `broker.auth...`) goes stale when the package moves, and fails only at start."""
    return f"{plugin.__module__}.{plugin.__qualname__}"


def broker_config(host: str, port: int, password_file: Path | None = None,
                  services: tuple[str, ...] = (), tls: tuple[Path, Path] | None = None,
                  refusals: Refusals | None = None, readers: tuple[str, ...] = ()) -> dict[str, Any]:
    """Only the plugins we need: amqtt's default set logs every packet and publishes $SYS,
    which cost time on every message. With a password file, clients must authenticate and
    the topic rules of `packproof.broker.auth` apply; without one, the broker is open (a local demo)."""
    plugins: dict[str, Any]
    if password_file is None:
        plugins = {"amqtt.plugins.authentication.AnonymousAuthPlugin": {"allow_anonymous": True}}
    else:
        PasswordFile(password_file).users()  # fail now, with a clear message, if it is missing or malformed
        plugins = {_import_path(PasswordFileAuth): {"password_file": str(password_file)},
                   _import_path(DeviceTopicACL): {"services": list(services), "readers": list(readers),
                                                  "refusals": refusals}}
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


class _BoundedReader(StreamReaderAdapter):
    """A client's byte stream that refuses any read longer than `limit`, and everything after it.

    amqtt 0.12.1 has no maximum packet size: it reads a PUBLISH's whole remaining length as
    announced. Its parser asks for each part (topic, payload) in one read, so a read above the
    limit is a packet above it, refused before its bytes are buffered. The connection is then
    closed and the stream ends here: what is left in the socket buffer is the middle of a
    packet, and parsing it as the next one would act on an attacker's bytes.
    """

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, limit: int) -> None:
        super().__init__(reader)
        self._writer, self._limit, self._refused = writer, limit, False

    async def read(self, n: int = -1) -> bytes:
        if self._refused:
            raise ConnectionResetError("connection closed after an oversized packet")
        if n > self._limit:
            self._refused = True
            peer = self._writer.get_extra_info("peername")
            log.warning("closed the MQTT connection from %s: it sent a packet of more than %d bytes (%d announced)",
                        peer, self._limit, n)
            self._writer.close()
            raise ConnectionResetError(f"packet larger than {self._limit} bytes")
        return await super().read(n)


async def _close_quietly(writer: Any) -> None:
    """Close a connection whose client may have closed it first: a client refused at login (paho, on
    its CONNACK) hangs up at once, and closing then raised OSError (ENOTCONN) out of amqtt's
    connection callback, one traceback per refused device in the log."""
    with contextlib.suppress(OSError):
        await writer.close()


_REFUSED_TEXT = "login refused (counted and logged by packproof's broker refusals)"


class _LoginRefused(AMQTTError):
    """A CONNECT refused before it could touch any session (see `_Broker`)."""


class _QuietRefusals(logging.Filter):
    """amqtt logs every aborted connection as a warning; refused logins are counted and
    logged, rate-limited, by `Refusals`, so a client retrying a wrong password in a loop
    must not write a line each time through amqtt as well."""

    def filter(self, record: logging.LogRecord) -> bool:
        return _REFUSED_TEXT not in record.getMessage()  # amqtt logs the exception's text, not its type


_QUIET = _QuietRefusals()


class _Broker(Broker):
    """amqtt 0.12.1 with four flaws fixed.

    1. A refused login disturbed the session it named. amqtt looked the client id up (and,
       for a clean session, deleted the existing session with its subscriptions; otherwise
       wrote the newcomer's credentials into it) *before* authenticating, then took the
       connection over: a client that knew only the ingestor's client id, with a wrong
       password, stopped ingestion for good (issue 12). Here the CONNECT is authenticated
       first; a refused one gets its CONNACK (not authorised) on a session of its own and
       never reaches `_sessions`. A session is resumed or taken over only by the login
       that holds it (`_owner_of`).
       A clean-session CONNECT for a client id that is still connected now closes the old
       connection (see `_end_connection_of`) instead of leaving it open and deaf.
    2. Iteration over subscriptions (see `_Subscriptions`).
    3. Retained messages are delivered only along the client's own subscriptions.
    4. No bound on a packet's size (see `_BoundedReader`).

    On every connect amqtt offers the client the retained messages matching *every* filter
    any client holds (`for topic in self._subscriptions` in `Broker.client_connected`), so a
    device received another device's ack, past the topic ACL, and the ingestor received
    acks on its telemetry subscription (found by tests/test_fault_injection.py after a
    broker restart). A retained message now goes to a session only for a filter it holds.
    """

    def __init__(self, *args: Any, refusals: Refusals | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._subscriptions = _Subscriptions()
        self.refusals = refusals or Refusals()
        self.logger.addFilter(_QUIET)  # the same object each time: added once

    async def _initialize_client_session(self, reader: Any, writer: Any, remote_address: str,
                                         remote_port: int) -> tuple[BrokerProtocolHandler, Session]:
        """Read the CONNECT, authenticate it, and only then find or replace the client's session.

        The session handling after authentication is amqtt's own (a clean session replaces
        the old one, otherwise the stored session resumes with the new connection's
        settings); what changes is that nothing happens to it for a refused client.
        """
        try:
            handler, session = await BrokerProtocolHandler.init_from_connect(reader, writer, self.plugins_manager)
        except (AMQTTError, MQTTError, NoDataError) as exc:
            await _close_quietly(writer)
            raise AMQTTError(f"{remote_address}:{remote_port} sent no valid CONNECT: {exc}") from exc
        refusal = None
        if not await super()._authenticate(session, None):  # type: ignore[arg-type]  # the listener is unused
            refusal = "wrong username or password"
        elif (owner := self._owner_of(session.client_id)) not in (None, session.username):
            refusal = f"the client id's session belongs to another login ({owner!r})"
        if refusal is not None:
            self.refusals.refuse("login", f"client id {session.client_id!r}, username {session.username!r} "
                                          f"from {remote_address}:{remote_port}: {refusal}")
            session.parent = 0
            handler.attach(session, reader, writer)
            try:
                with contextlib.suppress(OSError):  # the client is gone already: nothing to tell it
                    await handler.mqtt_connack_authorize(False)
            finally:
                await _close_quietly(writer)
            raise _LoginRefused(_REFUSED_TEXT)
        session.authenticated_as = (session.username, session.password)  # type: ignore[attr-defined]
        if session.clean_session:
            if session.client_id:
                await self._end_connection_of(session.client_id, f"{remote_address}:{remote_port}")
                await self._delete_session(session.client_id)
            else:
                session.client_id = gen_client_id()
            session.parent = 0
        elif session.client_id in self._sessions:
            await self._end_connection_of(session.client_id, f"{remote_address}:{remote_port}")
            existing, _ = self._sessions[session.client_id]
            for name in ("will_flag", "will_message", "will_topic", "will_qos", "keep_alive", "username",
                         "password"):
                setattr(existing, name, getattr(session, name))
            existing.authenticated_as = session.authenticated_as  # type: ignore[attr-defined]
            session = existing
            session.parent = 1
        else:
            session.parent = 0
        delay = self.config.get("timeout-disconnect-delay", 0)
        if session.keep_alive > 0 and isinstance(delay, int):
            session.keep_alive += delay
        return handler, session

    def _owner_of(self, client_id: str | None) -> str | None:
        """The login whose session holds this client id, if any.

        Only the same login may resume or take over a session: otherwise a device, with its
        own valid password, could connect with the ingestor's client id, end its connection
        again and again, or claim its stored session and the messages queued in it."""
        held = self._sessions.get(client_id) if client_id else None
        authenticated = getattr(held[0], "authenticated_as", None) if held else None
        return authenticated[0] if authenticated else None

    async def _end_connection_of(self, client_id: str, by: str) -> None:
        """A client id can be connected once: the old connection of a session about to be replaced
        is closed, so its client learns it lost the session and reconnects. amqtt deleted the session
        (and its subscriptions) under a clean-session CONNECT but left the old connection open: the
        old client stayed connected and received nothing, with nothing to tell it so."""
        old = self._sessions.get(client_id)
        if old is not None and old[0].transitions.is_connected():
            log.warning("client id %r connected again from %s: closing its previous connection", client_id, by)
            await old[1].stop()
            # The old connection's own loop then marks the session disconnected. Left to amqtt's
            # take-over, that came after the new connection had resumed the (persistent) session:
            # the session read "disconnected" and every message was queued offline for a client
            # that looked connected. So the resume waits until the old loop is done (or 2 s).
            deadline = asyncio.get_running_loop().time() + 2.0
            while old[0].transitions.is_connected() and asyncio.get_running_loop().time() < deadline:
                await asyncio.sleep(0.01)

    async def _authenticate(self, session: Session, listener: Any) -> bool:
        """Already decided in `_initialize_client_session`, for exactly these credentials."""
        if getattr(session, "authenticated_as", None) == (session.username, session.password):
            return True
        return await super()._authenticate(session, listener)

    async def stream_connected(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                               listener_name: str) -> None:
        """Every TCP (and TLS) client reads through `_BoundedReader`: packets above MAX_PACKET_SIZE are refused."""
        await self._client_connected(listener_name, _BoundedReader(reader, writer, MAX_PACKET_SIZE),
                                     StreamWriterAdapter(writer))

    async def _publish_retained_messages_for_subscription(self, subscription: tuple[str, int],
                                                          session: Any) -> None:
        holders = self._subscriptions.get(subscription[0], [])
        if any(s.client_id == session.client_id for s, _ in holders):
            await super()._publish_retained_messages_for_subscription(subscription, session)


class _UnackedAtShutdown(logging.Filter):
    """One line instead of amqtt's traceback for a delivery left unacknowledged (when the broker stops,
    or past amqtt's PUBACK timeout while it runs).

    That is expected, not a fault: the ingestor acknowledges only what it stored, so on a full
    disk it stops with deliveries unacknowledged (the devices still hold them), and amqtt 0.12.1
    logs each with `logger.exception`. A command must not print a traceback for it.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        msg = str(record.msg)
        if record.exc_info and msg.startswith("Task failed during broadcast shutdown"):
            record.msg, record.args = "at shutdown a delivery was still unacknowledged by its subscriber (%s)", (
                record.exc_info[1],)
            record.exc_info, record.exc_text = None, None
            record.levelno, record.levelname = logging.WARNING, "WARNING"
        elif record.exc_info and msg.startswith("Task failed and will be skipped") \
                and isinstance(record.exc_info[1], TimeoutError):
            # The same while running: amqtt gives up on a QoS 1 delivery its subscriber has not
            # acknowledged in time (the ingestor holds back PUBACKs while it cannot store); the
            # devices send it again, as the end-to-end acknowledgement has not covered it.
            record.msg, record.args = "a delivery was not acknowledged by its subscriber in time (%s)", (
                record.exc_info[1],)
            record.exc_info, record.exc_text = None, None
            record.levelno, record.levelname = logging.WARNING, "WARNING"
        return True


_UNACKED_AT_SHUTDOWN = _UnackedAtShutdown()


class EmbeddedBroker:
    """`async with EmbeddedBroker(port=...)`: an amqtt broker for the block's lifetime."""

    def __init__(self, host: str = "127.0.0.1", port: int = 1883, flag: str = "--mqtt-port",
                 password_file: Path | None = None, services: tuple[str, ...] = (),
                 tls: tuple[Path, Path] | None = None, readers: tuple[str, ...] = ()) -> None:
        """`tls`: (certificate, private key) files, PEM; the listener then speaks MQTT over TLS only.
        `refusals` counts what the broker refused (logins, publishes, subscriptions)."""
        self.host, self.port, self.flag = host, port, flag
        self.password_file, self.services, self.tls, self.readers = password_file, services, tls, readers
        self.refusals = Refusals()
        self._broker: Broker | None = None

    async def start(self) -> None:
        require_free(self.host, self.port, self.flag, "another MQTT broker?")
        for name in ("amqtt", "transitions"):
            logging.getLogger(name).setLevel(logging.WARNING)
        logging.getLogger("amqtt.broker").addFilter(_UNACKED_AT_SHUTDOWN)  # once: a logger keeps a filter once
        self._broker = _Broker(broker_config(self.host, self.port, self.password_file, self.services, self.tls,
                                             self.refusals, self.readers), refusals=self.refusals)
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
