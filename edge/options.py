"""The ingestor's settings as two typed records, built once by the composition root and passed whole.

`packproof.app` builds them from its `Settings` (flags, environment, file); tests and
benchmarks build them directly. Before, each of some eighteen settings was copied field by
field from the settings into a service record and again into the ingestor's keyword
arguments; now each is named once here, with its default and what it means.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from packproof.edge.decode import PLAUSIBLE, Plausibility
from packproof.edge.thresholds import BUILTIN_PROFILES, Profile
from packproof.errors import ConfigError
from packproof.reading import TELEMETRY_FILTER, share_group_problem

MQTT_PROTOCOLS = ("3.1.1", "5")
SESSION_EXPIRY = 600  # s the broker keeps an MQTT 5 ingestor's session (and its share) while it is away
STOP_GRACE = 3.0  # s a stop keeps retrying a store that cannot write


@dataclass(frozen=True, slots=True)
class MqttOptions:
    """How the ingestor reaches the broker, and the session it holds there.

    `share_group`: subscribe as one member of an MQTT 5 shared subscription (several ingestors
    on one store split the telemetry). A share group, or `protocol="5"`, speaks MQTT 5 with a
    persistent session (clean start off) that the broker keeps `session_expiry` seconds after
    a disconnect; otherwise MQTT 3.1.1 with clean session off, as the embedded broker (amqtt)
    speaks only 3.1.1. `tls_ca`: verify the broker against this CA (or its own certificate).
    """

    host: str = "127.0.0.1"
    port: int = 1883
    client_id: str = "packproof-ingestor"  # one per ingestor: its persistent session
    topic: str = TELEMETRY_FILTER
    username: str | None = None
    password: str | None = None
    tls_ca: str | None = None
    share_group: str | None = None
    protocol: str = "3.1.1"
    session_expiry: int = SESSION_EXPIRY

    def __post_init__(self) -> None:
        if self.protocol not in MQTT_PROTOCOLS:
            raise ConfigError(f"MQTT protocol {self.protocol!r}: choose one of {', '.join(MQTT_PROTOCOLS)}")
        if self.share_group is not None and (problem := share_group_problem(self.share_group)):
            raise ConfigError(problem)

    @property
    def mqtt5(self) -> bool:
        return self.share_group is not None or self.protocol == "5"

    @property
    def subscription(self) -> str:
        """The filter subscribed to: `topic`, or `$share/<group>/<topic>` in a share group.

        In an MQTT 5 shared subscription the broker hands each message to one member of the
        group, so several ingestors split the load instead of each storing everything.
        """
        return self.topic if self.share_group is None else f"$share/{self.share_group}/{self.topic}"


@dataclass(frozen=True, slots=True)
class IngestorOptions:
    """What the ingestor checks, and how it batches, acknowledges and stops.

    `verify_workers`: processes that check signatures (0: the ingestor's own decode thread).
    `profiles`: the threshold profiles shipments may name (None: the built-in ones).
    `stop_grace`: s a stop waits for a store that cannot write before leaving the rest unacknowledged.
    """

    verify_signatures: bool = True
    verify_workers: int = 0
    profiles: Mapping[str, Profile] | None = None
    limits: Plausibility = PLAUSIBLE  # what a reading's seq and time may be
    batch_max: int = 2000  # readings per transaction
    inbox_max: int = 20000  # messages received and not yet decoded; paho's thread waits beyond this
    linger: float = 0.05  # s a batch waits to fill before it is decoded
    ack_interval: float = 1.0  # s between two acks to one device
    stop_grace: float = STOP_GRACE

    @property
    def profile_table(self) -> Mapping[str, Profile]:
        return self.profiles or BUILTIN_PROFILES
