"""The one exception root of packproof.

Tree::

    PackproofError
    ├── InvalidReading        a device payload that cannot be accepted (carries a reason code)
    ├── InvalidCustodyEvent   a custody event body that is not a valid event (names the field)
    ├── ConfigError           bad user input to a command: flags, files, profiles
    │   └── RegistryConflict  a registration contradicts what the registry holds
    ├── StoreError            the off-chain store failed or holds something impossible
    │   └── DiskFullError     ... because its disk (or quota) is full: retried, never fatal to a service
    ├── LedgerIntegrityError  the ledger file, its chain or its signatures do not hold
    ├── ProofError            a Merkle inclusion or consistency proof does not check (expected vs got)
    ├── NoteError             a C2SP signed note, key or checkpoint is malformed or unsigned (carries a reason code)
    └── BrokerError           the embedded broker could not start or serve

A threshold breach is data (an excursion), never an exception.
"""

from __future__ import annotations


class PackproofError(Exception):
    """Root of every error packproof raises on purpose."""


class InvalidReading(PackproofError):
    """A telemetry payload that fails a check; `code` is the stable reason key counted in metrics."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class InvalidCustodyEvent(PackproofError):
    """A custody event that is not a valid event (packproof/custody.py); `field` names the part at fault
    as a dotted path ("location.lat", "un38_3.results.T4"), "" for the body as a whole.

    Always a `malformed` refusal (HTTP 422): a body nobody could have meant, whoever sent it.
    """

    code = "malformed"

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field
        self.message = message


class ConfigError(PackproofError):
    """User input to a command (flag, file, profile) is unusable."""


class RegistryConflict(ConfigError):
    """A registration contradicts the registry (another key, shipment or profile): changing it is its own act."""


class StoreError(PackproofError):
    """The off-chain store failed, or holds data that contradicts itself."""


class DiskFullError(StoreError):
    """A store write failed for lack of space (see packproof.diskfull); the message says "disk full"."""


class LedgerIntegrityError(PackproofError):
    """The ledger does not hold: a broken link, hash or signature, named by height."""

    def __init__(self, message: str, height: int | None = None) -> None:
        super().__init__(message)
        self.height = height


class ProofError(PackproofError):
    """A Merkle proof failed; the message says what was expected and what was got."""

    def __init__(self, message: str, expected: str | None = None, got: str | None = None) -> None:
        super().__init__(message)
        self.expected = expected
        self.got = got


class NoteError(PackproofError):
    """A signed note (c2sp.org/signed-note), a note key or a checkpoint body that cannot be accepted.

    `reason` is a stable key naming what is wrong ("bad-base64", "unknown-key", ...), for tests
    and for a witness choosing its HTTP status; the message says it for people.
    """

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


class ChainError(PackproofError):
    """An Ethereum node failed a JSON-RPC call: unreachable, too slow, or an error it answered (anchoring)."""


class BrokerError(PackproofError):
    """The embedded MQTT broker could not start or serve."""
