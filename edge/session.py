"""The ingestor's MQTT session as the ingestor saw it: connected, lost, taken over.

A broker may end the ingestor's session (a restart, a cut link, another client connecting
with the same client id). paho reconnects by itself, so without a record of it a session
that is lost again and again — two ingestors sharing a client id take it from each other
every few seconds — would look healthy. `SessionWatch` is filled on paho's thread and read
on the ingestor's loop, which writes `status()` to the store for /health (packproof.health).
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Any

from packproof.timefmt import rfc3339


@dataclass
class SessionWatch:
    client_id: str
    connected: bool = False
    since: float = field(default_factory=time.time)
    losses: int = 0
    takeovers: int = 0
    last_loss_at: float | None = None
    last_loss: str | None = None
    stopped: bool = False
    changed: bool = True  # not yet written to the store
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def on_connected(self, now: float | None = None) -> None:
        with self._lock:
            self.connected, self.since, self.changed = True, time.time() if now is None else now, True
            self.stopped = False

    def on_lost(self, reason: str, taken_over: bool, now: float | None = None) -> None:
        now = time.time() if now is None else now
        with self._lock:
            self.connected, self.since, self.changed = False, now, True
            self.losses += 1
            self.takeovers += taken_over
            self.last_loss_at, self.last_loss = now, reason

    def on_stopped(self, now: float | None = None) -> None:
        with self._lock:
            self.connected, self.stopped, self.changed = False, True, True
            self.since = time.time() if now is None else now

    def status(self) -> dict[str, Any]:
        """The session as /health reads it (packproof.health)."""
        with self._lock:
            state = "stopped" if self.stopped else "connected" if self.connected else "disconnected"
            return {"component": "ingestor", "client_id": self.client_id, "state": state,
                    "since": rfc3339(self.since), "since_unix": self.since, "losses": self.losses,
                    "takeovers": self.takeovers, "written_unix": time.time(),  # the heartbeat
                    "last_loss": None if self.last_loss_at is None else
                    {"at": rfc3339(self.last_loss_at), "at_unix": self.last_loss_at, "reason": self.last_loss}}
