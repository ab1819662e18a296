"""`packproof parties` (add, list, rotate, revoke): the custody parties (issue 15), changed through
the store as sealed records, like devices (app/cli/devices.py)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from packproof.app.cli.common import Exit, fail, key_id_of, out, store_call
from packproof.app.cli.devices import NewKey
from packproof.app.config import Settings
from packproof.app.options import COMMON, WRITER, configured
from packproof.parties import ROLES, party_id_problem

parties_app = typer.Typer(no_args_is_help=True,
                          help="Custody parties (makers, carriers, receivers, inspectors): add, list, rotate, revoke.")

PartyArg = Annotated[str, typer.Argument(help="The party's id (a slug: lowercase letters, digits, '-').")]
PublicKeyOpt = Annotated[str | None, typer.Option(
    help="The party's Ed25519 public key, base64 (made by the party); omitted: make a pair, see --key-out.")]
KeyOutOpt = Annotated[Path | None, typer.Option(
    help="Make a key pair and write the private key to DIR/<party>.key (0600).")]


def slug(name: str) -> str:
    """A party id from its name: `Hamburg Air Cargo GmbH` -> `hamburg-air-cargo-gmbh`."""
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")[:63].strip("-")


def _public_key(public_key: str | None, key_out: Path | None) -> bytes | None:
    """The key given with --public-key, or None when one is to be made into --key-out (exactly one of them)."""
    from packproof.crypto import read_public_key  # not at start-up: cryptography

    if (public_key is None) == (key_out is None):
        fail(Exit.BAD_INPUT, "give either --public-key B64 (the party made its key) or --key-out DIR (make one here)")
    return read_public_key(public_key) if public_key is not None else None


@parties_app.command("add")
@configured("parties add", WRITER)
def parties_add(
    cfg: Settings,
    name: Annotated[str, typer.Argument(help="The organisation's name, e.g. 'Hamburg Air Cargo'.")],
    role: Annotated[list[str], typer.Option(help=f"A role it holds ({', '.join(sorted(ROLES))}); repeatable.")],
    party_id: Annotated[str | None, typer.Option("--id", help="Its id (default: the name as a slug).")] = None,
    public_key: PublicKeyOpt = None,
    key_out: KeyOutOpt = None,
) -> None:
    """Register a party with its roles and Ed25519 key; sealed in the ledger as a `party-added` record."""
    pid = party_id if party_id is not None else slug(name)
    if problem := party_id_problem(pid):
        fail(Exit.BAD_INPUT, problem + ("" if party_id is not None else "; give one with --id"))
    key = _public_key(public_key, key_out)
    if key is not None:
        added = store_call(cfg, lambda st: st.add_party(pid, name, role, key))
    else:
        assert key_out is not None
        with NewKey(pid, key_out, holder="the party's signing system") as key:
            added = store_call(cfg, lambda st: st.add_party(pid, name, role, key))
    roles = ",".join(sorted(set(role)))
    out.print(f"{'added' if added else 'already registered:'} party {pid} ({name}), roles {roles}, "
              f"key {key_id_of(key)}", highlight=False)


@parties_app.command("list")
@configured("parties list", COMMON)
def parties_list(cfg: Settings) -> None:
    """Every party with its roles, keys and state."""
    parties = store_call(cfg, lambda st: st.parties(), write=False)
    table = Table("party", "name", "roles", "keys (from event seq: key id)", "state")
    for p in parties:
        keys = ", ".join(f"{k.valid_from_seq}: {key_id_of(k.public_key)}" for k in p.keys)
        table.add_row(p.party_id, p.name, ",".join(sorted(p.roles)), keys,
                      f"revoked: {p.revoked_reason}" if p.revoked else "active")
    out.print(table)


@parties_app.command("rotate")
@configured("parties rotate", WRITER)
def parties_rotate(
    cfg: Settings, party_id: PartyArg,
    public_key: PublicKeyOpt = None,
    key_out: KeyOutOpt = None,
    from_seq: Annotated[int | None, typer.Option(
        help="First event seq of the party the new key signs (default: its next event, and after the "
             "seq its current key starts at).", min=1)] = None,
) -> None:
    """A new key for a party; the events it signed before keep verifying with the key valid at their seq."""
    key = _public_key(public_key, key_out)

    def rotate(new: bytes) -> int:
        # The default start is computed by the store inside the rotation's own transaction (its next event).
        return int(store_call(cfg, lambda st: st.rotate_party_key(party_id, new, from_seq)))

    if key is not None:
        start = rotate(key)
    else:
        assert key_out is not None
        with NewKey(party_id, key_out, holder="the party's signing system") as key:
            start = rotate(key)
    out.print(f"party {party_id}: key {key_id_of(key)} signs its events from seq {start} on", highlight=False)


@parties_app.command("revoke")
@configured("parties revoke", WRITER)
def parties_revoke(cfg: Settings, party_id: PartyArg,
                   reason: Annotated[str, typer.Option(help="Why, for the record.")]) -> None:
    """Refuse the party's custody events from now on (what it signed before stays provable)."""
    store_call(cfg, lambda st: st.revoke_party(party_id, reason))
    out.print(f"party {party_id} revoked: its custody events are refused from now on", highlight=False)
