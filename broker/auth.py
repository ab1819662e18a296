"""Who may connect, and which topics each may use: one password file and one set of rules
for both the embedded broker (amqtt) and Mosquitto.

Passwords are stored only as hashes, in Mosquitto's own format
`user:$7$<iterations>$<salt b64>$<PBKDF2-HMAC-SHA512 b64>`, so the file written by
`packproof passwd` (or by `mosquitto_passwd`) works unchanged on either broker.

Topic rules (docs/design.md, "MQTT topics"), the same as `broker/packproof.acl` for Mosquitto:

- a device, whose MQTT username is its device id, may publish only
  `packproof/v1/+/<its id>/telemetry` and `.../status`, and subscribe only to
  `packproof/v1/+/<its id>/ack` (its acknowledgements);
- a service account (the ingestor) may subscribe to every device's telemetry (also as an
  MQTT 5 shared subscription) and publish acknowledgements; the API, logged in as a service
  account, publishes and reads custody notifications `packproof/v1/+/custody` (issue 15);
- a custody reader (a party's system: `broker.custody_readers`) may only subscribe to custody
  notifications `packproof/v1/+/custody` (and receive them), so a party follows custody without
  polling the API and without seeing any telemetry; it publishes nothing;
- nobody connects without a username and password.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import secrets
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from amqtt.contexts import Action
from amqtt.plugins.base import BaseAuthPlugin, BaseTopicPlugin
from amqtt.session import Session

from packproof.errors import ConfigError

ITERATIONS = 20_000  # Mosquitto's own default is 101; the format carries the count
_ALGO = "$7$"


def hash_password(password: str, iterations: int = ITERATIONS) -> str:
    salt = secrets.token_bytes(12)
    digest = hashlib.pbkdf2_hmac("sha512", password.encode(), salt, iterations, 64)
    return f"{_ALGO}{iterations}${base64.b64encode(salt).decode()}${base64.b64encode(digest).decode()}"


def verify_password(password: str, encoded: str) -> bool:
    try:
        _, algo, iterations, salt, digest = encoded.split("$")
        if f"${algo}$" != _ALGO:
            return False
        computed = hashlib.pbkdf2_hmac("sha512", password.encode(), base64.b64decode(salt), int(iterations), 64)
        return hmac.compare_digest(computed, base64.b64decode(digest))
    except ValueError:
        return False


class PasswordFile:
    """`user:hash` lines, owner-readable only; re-read when it changes on disk."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._cache: tuple[float, dict[str, str]] | None = None

    def users(self) -> dict[str, str]:
        try:
            mtime = self.path.stat().st_mtime
        except FileNotFoundError as exc:
            raise ConfigError(f"password file {self.path} does not exist (create it with `packproof passwd`)") from exc
        if self._cache is None or self._cache[0] != mtime:
            users = {}
            for n, line in enumerate(self.path.read_text().splitlines(), start=1):
                if line.strip() and not line.startswith("#"):
                    user, sep, encoded = line.partition(":")
                    if not sep:
                        raise ConfigError(f"{self.path}:{n}: expected user:hash")
                    users[user] = encoded
            self._cache = (mtime, users)
        return self._cache[1]

    def set(self, user: str, password: str) -> None:
        if ":" in user or not user:
            raise ConfigError(f"MQTT username {user!r} must be non-empty and contain no ':'")
        users = dict(self.users()) if self.path.exists() else {}
        users[user] = hash_password(password)
        self._write(users)

    def remove(self, user: str) -> bool:
        users = dict(self.users())
        found = users.pop(user, None) is not None
        self._write(users)
        return found

    def check(self, user: str | None, password: str | None) -> bool:
        if not user or password is None:
            return False
        encoded = self.users().get(user)
        return encoded is not None and verify_password(password, encoded)

    def _write(self, users: dict[str, str]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(self.path.name + ".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.writelines(f"{u}:{h}\n" for u, h in sorted(users.items()))
        tmp.replace(self.path)
        self._cache = None


def _matches(topic: str, pattern: str) -> bool:
    t, p = topic.split("/"), pattern.split("/")
    for i, part in enumerate(p):
        if part == "#":
            return True
        if i >= len(t) or (part != "+" and part != t[i]):
            return False
    return len(t) == len(p)


def topic_allowed(username: str | None, services: frozenset[str], topic: str, action: str,
                  readers: frozenset[str] = frozenset()) -> bool:
    """The ACL, as a pure function of who, which topic and what (publish/subscribe/receive)."""
    if not username:
        return False
    if topic.startswith("$share/"):  # $share/<group>/<filter>: judge the filter
        topic = topic.split("/", 2)[2] if topic.count("/") >= 2 else ""
    if username in readers:  # a party's system following custody notifications (issue 15)
        return action != "publish" and _matches(topic, "packproof/v1/+/custody")
    if username in services:  # the ingestor (acks) and the API (custody notifications, issue 15)
        if action == "publish":
            return _matches(topic, "packproof/v1/+/+/ack") or _matches(topic, "packproof/v1/+/custody")
        return (_matches(topic, "packproof/v1/+/+/telemetry") or _matches(topic, "packproof/v1/+/+/status")
                or _matches(topic, "packproof/v1/+/custody"))
    if "/" in username or "+" in username or "#" in username:
        return False
    if action == "publish":
        return _matches(topic, f"packproof/v1/+/{username}/telemetry") or _matches(
            topic, f"packproof/v1/+/{username}/status")
    return _matches(topic, f"packproof/v1/+/{username}/ack")


class PasswordFileAuth(BaseAuthPlugin):
    """amqtt plugin: accept a client only with a username and a password matching the file."""

    def __init__(self, context) -> None:  # type: ignore[no-untyped-def]
        super().__init__(context)
        self._file = PasswordFile(Path(self.config.password_file))

    async def authenticate(self, *, session: Session) -> bool | None:
        return self._file.check(session.username, session.password)

    @dataclass
    class Config:
        password_file: str = ""


class DeviceTopicACL(BaseTopicPlugin):
    """amqtt plugin: `topic_allowed` for every publish, subscribe and delivery.

    A refused publish or subscription is counted and logged (`broker.refusals`); a refused
    delivery is not: filtering what each subscriber receives is the rules' routine work.
    """

    async def topic_filtering(self, *, session: Session | None = None, topic: str | None = None,
                              action: Action | None = None) -> bool | None:
        if not topic or action is None:
            return False
        user = session.username if session else None
        allowed = topic_allowed(user, frozenset(self.config.services), topic, action.value,
                                frozenset(self.config.readers))
        if not allowed and action.value in ("publish", "subscribe") and self.config.refusals is not None:
            client = session.client_id if session else None
            self.config.refusals.refuse(action.value, f"{action.value} to {topic!r} by client id {client!r}, "
                                                      f"username {user!r}")
        return allowed

    @dataclass
    class Config:
        services: list[str] = field(default_factory=list)
        readers: list[str] = field(default_factory=list)  # custody readers: subscribe to custody topics only
        refusals: Any = None  # a broker.refusals.Refusals, when the broker counts what it refuses
