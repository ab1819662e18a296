"""The custody parties' contract (issue 15): ids, roles, and the sealed records of every registry change.

A party is an organisation that signs custody events (packproof/custody.py, which fixes the
id pattern and the roles): a pack maker, a carrier, a receiving plant, an inspector. Its id is
a slug, its roles a subset of ROLES,
its key an Ed25519 key that a rotation replaces from a given event seq of that party on.
Like the device registry, every change is a record leaf sealed in the ledger (reserved device
id `~parties`), and each record names everything a verifier needs to rebuild the party
without the store's tables: `sealed_parties` replays them, and `packproof audit` compares the
tables with that replay.

Pure: no I/O. One home for the party rules, used by the store, the CLI, the API and the audit.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from packproof.crypto import b64, unb64, weak_key_problem
from packproof.custody import PARTY_PATTERN
from packproof.custody import ROLES as ROLE_NAMES
from packproof.records import PartyKey, PartyRecord, keys_text
from packproof.timefmt import epoch_of

PARTIES = "~parties"  # device id of the parties' record leaves; no real device id can start with "~"
ROLES = frozenset(ROLE_NAMES)  # the custody contract's roles (packproof/custody.py), as a set
FIRST_SEQ = 1  # a party's events are numbered from 1: its first key is valid from there
NAME_MAX = 200  # characters of a party's display name

ADDED, KEY_ROTATED, REVOKED = "party-added", "party-key-rotated", "party-revoked"
KINDS = frozenset({ADDED, KEY_ROTATED, REVOKED})

_PARTY_ID = re.compile(PARTY_PATTERN)


def party_id_problem(party_id: str) -> str | None:
    if not _PARTY_ID.match(party_id):
        return (f"party id {party_id!r} must be a slug of lowercase letters, digits and '-' "
                f"(1 to 63 characters, not starting with '-'): {PARTY_PATTERN}")
    return None


def name_problem(name: str) -> str | None:
    if not name.strip() or len(name) > NAME_MAX or any(ord(c) < 32 or ord(c) == 127 for c in name):
        return f"party name {name[:40]!r} must be 1 to {NAME_MAX} printable characters"
    return None


def roles_problem(roles: Iterable[str]) -> str | None:
    roles = list(roles)
    if not roles:
        return f"a party needs at least one role: {', '.join(sorted(ROLES))}"
    unknown = sorted(set(roles) - ROLES)
    if unknown:
        return f"unknown role(s) {', '.join(unknown)}; roles are {', '.join(sorted(ROLES))}"
    return None


def key_problem(public_key: bytes) -> str | None:
    """Why `public_key` cannot be a party's key (the same test as a device's: a weak key is refused)."""
    problem = weak_key_problem(public_key)
    return f"public key {b64(public_key)} is {problem}" if problem else None


def party_problem(party_id: str, name: str, roles: Iterable[str], public_key: bytes) -> str | None:
    """The first thing wrong with a new party, or None."""
    return party_id_problem(party_id) or name_problem(name) or roles_problem(roles) or key_problem(public_key)


# ---- the sealed records -----------------------------------------------------------------
# Each is the body of a `~parties` leaf before the store adds `at` (when it was written).

def added_record(party_id: str, name: str, roles: Iterable[str], public_key: bytes) -> dict[str, Any]:
    return {"record": ADDED, "party_id": party_id, "name": name, "roles": sorted(roles),
            "public_key": b64(public_key), "valid_from_seq": FIRST_SEQ}


def key_rotated_record(party_id: str, public_key: bytes, valid_from_seq: int) -> dict[str, Any]:
    return {"record": KEY_ROTATED, "party_id": party_id, "public_key": b64(public_key),
            "valid_from_seq": valid_from_seq}


def revoked_record(party_id: str, reason: str) -> dict[str, Any]:
    return {"record": REVOKED, "party_id": party_id, "reason": reason}


def _epoch(at: Any) -> float:
    if not isinstance(at, str):
        raise ValueError(f"`at` must be an RFC 3339 time, got {at!r}")
    return epoch_of(at)


@dataclass(slots=True)
class PartyReplay:
    """The parties as their sealed records built them so far, record by record.

    The audit feeds it the `~parties` leaves interleaved with the `~custody` leaves in the order
    they were sealed, so each custody event is checked against the parties as they stood when it
    was accepted: a key rotated or a party revoked later does not apply to it, one sealed earlier
    does (review 15, 1.5). `problems` names the records the store never writes (one that cannot be
    read, one for a party never added, a second `party-added`): finding one means the records were
    tampered with, or written by something other than the store.
    """

    parties: dict[str, PartyRecord] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)

    def add(self, rec: object, where: str) -> str | None:
        """Apply one record (a parsed leaf body; `where` names it in problems); the party it changed, if any."""
        if not isinstance(rec, Mapping):
            self.problems.append(f"{where} is not a JSON object")
            return None
        kind, pid = rec.get("record"), rec.get("party_id")
        if not isinstance(pid, str):
            self.problems.append(f"{where} ({kind}) names no party")
            return None
        held = self.parties.get(pid)
        try:
            if kind == ADDED:
                if held is not None:
                    self.problems.append(f"{where}: party {pid} added a second time")
                    return None
                self.parties[pid] = PartyRecord(
                    pid, rec["name"], frozenset(rec["roles"]),
                    (PartyKey(int(rec["valid_from_seq"]), unb64(rec["public_key"])),), _epoch(rec["at"]))
            elif held is None:
                self.problems.append(f"{where}: {kind} for party {pid!r}, which no earlier record added")
                return None
            elif kind == KEY_ROTATED:
                key = PartyKey(int(rec["valid_from_seq"]), unb64(rec["public_key"]))
                self.parties[pid] = dataclasses.replace(held, keys=(*held.keys, key))
            elif kind == REVOKED:
                self.parties[pid] = dataclasses.replace(held, revoked_at=_epoch(rec["at"]),
                                                        revoked_reason=rec["reason"])
            else:
                self.problems.append(f"{where}: unknown kind {kind!r}")
                return None
        except (KeyError, TypeError, ValueError) as exc:
            self.problems.append(f"{where} ({kind} of {pid!r}) is malformed: {exc!r}")
            return None
        return pid


def sealed_parties(records: Iterable[object]) -> PartyReplay:
    """Replay the parties' record leaves (parsed bodies, in store order) into each party as sealed."""
    replay = PartyReplay()
    for n, rec in enumerate(records):
        replay.add(rec, f"record {n}")
    return replay


def party_problems(table: Iterable[PartyRecord], sealed: Mapping[str, PartyRecord]) -> list[str]:
    """Where the parties' tables (what the custody rules trust) differ from their sealed records.

    Compares what a verifier relies on: name, roles, every key and the seq it starts at, and
    whether (and why) the party is revoked. Times are not compared: the tables keep the writer's
    clock as a float, the records it to the millisecond.
    """
    out = []
    listed = set()
    for p in table:
        listed.add(p.party_id)
        s = sealed.get(p.party_id)
        if s is None:
            out.append(f"party {p.party_id} is in the parties table but no sealed record added it")
            continue
        if p.name != s.name:
            out.append(f"party {p.party_id}: the table names it {p.name!r}, its sealed record {s.name!r}")
        if p.roles != s.roles:
            out.append(f"party {p.party_id}: the table gives roles {sorted(p.roles)}, its sealed records "
                       f"{sorted(s.roles)}")
        if p.keys != s.keys:
            out.append(f"party {p.party_id}: the table holds keys [{keys_text(p.keys)}], its sealed records "
                       f"[{keys_text(s.keys)}] (a key swapped in the table)")
        if p.revoked != s.revoked or p.revoked_reason != s.revoked_reason:
            said = f"revoked ({s.revoked_reason})" if s.revoked else "not revoked"
            held = f"revoked ({p.revoked_reason})" if p.revoked else "not revoked"
            out.append(f"party {p.party_id}: the table says {held}, its sealed records {said}")
    out += [f"party {i} was added by a sealed record but is gone from the parties table"
            for i in sorted(set(sealed) - listed)]
    return out
