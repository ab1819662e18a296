"""`packproof devices` (provision, register, list, rotate, revoke) and `packproof shipments`
(set-profile): the device registry and the shipments' profiles, changed through the store as
sealed records."""

from __future__ import annotations

import contextlib
import re
import secrets
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from packproof.app.cli.common import Exit, fail, key_id_of, out, store_call
from packproof.app.config import Settings
from packproof.app.options import COMMON, WRITER, configured
from packproof.reading import ID_PATTERN

devices_app = typer.Typer(no_args_is_help=True, help="Device identities: provision, register, list, rotate, revoke.")
shipments_app = typer.Typer(no_args_is_help=True, help="Shipments: the UN 38.3 profile their packs are judged by.")


class NewKey:
    """A fresh Ed25519 key pair whose private half reaches KEY_OUT/<id>.key (0600) only if the
    registry takes the public half: `with NewKey(...) as public:` around the store call (a device's
    key, or a custody party's: app/cli/parties.py).

    The key is written (to a temporary name) before the registry names it, so a registered key is
    never one whose private half was lost; a refused registration or rotation removes it again,
    with the directory if it made it, so a failed command leaves nothing behind.
    """

    def __init__(self, device_id: str, key_out: Path, holder: str = "the device") -> None:
        from packproof.crypto import new_private_key  # not at start-up: cryptography

        self.path = key_out / f"{device_id}.key"
        self._staged = key_out / f".{device_id}.key.new"
        self._made_dir = not key_out.exists()
        self._holder = holder
        self._key = new_private_key()

    def __enter__(self) -> bytes:
        from packproof.crypto import public_key_bytes, write_private_key  # not at start-up: cryptography

        self.path.parent.mkdir(parents=True, exist_ok=True)
        write_private_key(self._staged, self._key, overwrite=True)
        return public_key_bytes(self._key)

    def __exit__(self, exc_type: object, *_: object) -> None:
        if exc_type is None:
            self._staged.replace(self.path)
            out.print(f"private key written to {self.path} (install it on {self._holder}, then delete it here)")
            return
        self._staged.unlink(missing_ok=True)
        if self._made_dir:
            with contextlib.suppress(OSError):  # not empty: something else is in it
                self.path.parent.rmdir()


DeviceArg = Annotated[str, typer.Argument(help="The device id (one sensor per pack).")]
ShipmentOpt = Annotated[str, typer.Option(help="The shipment the pack travels in.")]
ProfileOpt = Annotated[str | None, typer.Option(
    help="UN 38.3 profile of a new shipment (un38.3-cell by default, un38.3-large, ...); for an existing "
         "shipment, if given, it must be the one it has (`packproof shipments set-profile` changes it).")]


def _check_profile(cfg: Settings, profile: str | None) -> None:
    """A profile the ingestor cannot evaluate would silently judge the packs by the default envelope."""
    from packproof.app.services import profiles_from  # not at start-up: every stage
    from packproof.edge.thresholds import profile_problem  # not at start-up: the ingestor

    if profile is not None and (problem := profile_problem(profile, profiles_from(cfg.ingest.profiles))):
        fail(Exit.BAD_INPUT, problem)


def _check_device_id(device_id: str) -> None:
    if not re.match(ID_PATTERN, device_id):
        fail(Exit.BAD_INPUT, f"device id {device_id!r} must match {ID_PATTERN}")


@devices_app.command("provision")
@configured("devices provision", WRITER)
def devices_provision(
    cfg: Settings, device_id: DeviceArg, shipment: ShipmentOpt,
    profile: ProfileOpt = None,
    key_out: Annotated[Path, typer.Option(help="Where to write the new private key.")] = Path("device-keys"),
    password_file: Annotated[Path | None, typer.Option(
        help="Also give the device an MQTT login in this broker password file (printed once).")] = None,
) -> None:
    """Make a key pair (and an MQTT login) for a device, and register its public key."""
    from packproof.broker.auth import PasswordFile  # not at start-up: password hashing

    _check_device_id(device_id)
    _check_profile(cfg, profile)
    with NewKey(device_id, key_out) as public:
        store_call(cfg, lambda st: st.register({shipment: profile}, [(device_id, shipment, public)]))
    out.print(f"registered {device_id} in shipment {shipment}, key {key_id_of(public)}", highlight=False)
    if password_file is not None:
        password = secrets.token_urlsafe(18)
        PasswordFile(password_file).set(device_id, password)
        out.print(f"MQTT login: user {device_id}, password {password} (shown once)", highlight=False)


@devices_app.command("register")
@configured("devices register", WRITER)
def devices_register(
    cfg: Settings, device_id: DeviceArg, shipment: ShipmentOpt,
    profile: ProfileOpt = None,
    public_key: Annotated[str | None, typer.Option(help="The device's Ed25519 public key, base64 (made on "
                                                        "the device).")] = None,
    unsigned: Annotated[bool, typer.Option("--unsigned", help="A tracker that cannot sign.")] = False,
) -> None:
    """Register a device whose key was generated on the device (or that cannot sign)."""
    from packproof.crypto import read_public_key  # not at start-up: cryptography

    _check_device_id(device_id)
    _check_profile(cfg, profile)
    if (public_key is None) == (not unsigned):
        fail(Exit.BAD_INPUT, "give either --public-key B64 or --unsigned")
    key = read_public_key(public_key) if public_key else None
    added = store_call(cfg, lambda st: st.register({shipment: profile}, [(device_id, shipment, key)]))
    out.print(f"{'registered' if added else 'already registered:'} {device_id} in shipment {shipment}"
              + (f", key {key_id_of(key)}" if key else ", unsigned (trust begins at the ingestor)"), highlight=False)


@devices_app.command("list")
@configured("devices list", COMMON)
def devices_list(cfg: Settings,
                 shipment: Annotated[str | None, typer.Option(help="Only this shipment.")] = None) -> None:
    """Every registered device with its keys and state."""
    devices = store_call(cfg, lambda st: st.devices(), write=False)
    table = Table("device", "shipment", "profile", "keys (from seq: key id)", "state")
    for d in devices:
        if shipment and d.shipment_id != shipment:
            continue
        keys = ", ".join(f"{k.valid_from_seq}: {key_id_of(k.public_key) if k.public_key else 'unsigned'}"
                         for k in d.keys)
        table.add_row(d.device_id, d.shipment_id, d.profile, keys, "revoked" if d.revoked else "active")
    out.print(table)


@devices_app.command("rotate")
@configured("devices rotate", WRITER)
def devices_rotate(
    cfg: Settings, device_id: DeviceArg,
    public_key: Annotated[str | None, typer.Option(help="The new public key (base64); omitted: make a pair.")] = None,
    from_seq: Annotated[int | None, typer.Option(help="First seq the new key signs (default: after the last "
                                                      "stored reading, and after the seq its current key "
                                                      "starts at).", min=0)] = None,
    key_out: Annotated[Path, typer.Option(help="Where to write a new private key.")] = Path("device-keys"),
) -> None:
    """A new key for a device; readings signed before keep verifying with the key valid at their seq."""
    from packproof.crypto import read_public_key  # not at start-up: cryptography

    def rotate(key: bytes) -> int:
        async def work(st):  # type: ignore[no-untyped-def]
            start = from_seq
            if start is None:
                # A device with no reading stored yet (just provisioned) has its key from seq 0: the new
                # one starts after both, as a key must start after the one it replaces.
                device = await st.device(device_id)
                current = device.keys[-1].valid_from_seq if device is not None and device.keys else -1
                start = max(await st.last_seq(device_id), current) + 1
            await st.rotate_key(device_id, key, start)
            return start

        return int(store_call(cfg, work))

    if public_key:
        key = read_public_key(public_key)
        start = rotate(key)
    else:
        with NewKey(device_id, key_out) as key:
            start = rotate(key)
    out.print(f"{device_id}: key {key_id_of(key)} signs from seq {start} on", highlight=False)


@devices_app.command("revoke")
@configured("devices revoke", WRITER)
def devices_revoke(cfg: Settings, device_id: DeviceArg,
                   reason: Annotated[str, typer.Option(help="Why, for the record.")]) -> None:
    """Refuse the device's readings from now on (what was stored stays provable)."""
    store_call(cfg, lambda st: st.revoke(device_id, reason))
    out.print(f"{device_id} revoked: its readings are quarantined from now on", highlight=False)


@shipments_app.command("set-profile")
@configured("shipments set-profile", WRITER)
def shipments_set_profile(
    cfg: Settings, shipment_id: Annotated[str, typer.Argument(help="The shipment.")],
    profile: Annotated[str, typer.Argument(help="The UN 38.3 profile its packs are judged by from now on.")],
    reason: Annotated[str, typer.Option(help="Why, for the record.")],
) -> None:
    """Change a shipment's profile: its own act, sealed in the ledger with the previous profile and the reason.

    Registering a device never changes it. Excursions already found stay as they were found.
    """
    _check_profile(cfg, profile)
    previous = store_call(cfg, lambda st: st.set_profile(shipment_id, profile, reason))
    out.print(f"shipment {shipment_id}: profile {previous} -> {profile} (sealed on the record)", highlight=False)
