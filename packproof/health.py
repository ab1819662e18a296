"""What /health and the progress line say is wrong, from the components' own accounts.

Each long-running component writes its status to the store (`Store.set_status`); this
module is the one rule that turns those accounts into problems a person can act on. Pure:
statuses and the time in, sentences out.
"""

from __future__ import annotations

from typing import Any

RECENT = 300.0  # s: a lost broker session is reported this long after it came back
HEARTBEAT = 5.0  # s between a long-running component's status writes when nothing changed
MAX_AGE = 30.0  # s: a status older than this is a service that died without saying so (six heartbeats)
SEALER_STATUS = "sealer"  # the sealer's status key (Store.set_status); ingestors write `ingestor:<client id>`
WORKING = ("connected", "sealing")  # the states in which a component rewrites its status every few seconds


def stale_or_idle(what: str, st: dict[str, Any] | None, working: str, max_age: float, now: float) -> str | None:
    """Why a component's own status does not show it at work, or None: it never reported, it says it
    is not `working` (stopped, disconnected, halted), or it stopped rewriting its status more than
    `max_age` s ago (a process killed without a word). The healthchecks' one rule (packproof.app.healthcheck)."""
    if st is None:
        return f"{what} has not reported to this store"
    if st.get("state") != working:
        return f"{what} is {st.get('state')} since {st.get('since')}"
    written = st.get("written_unix")
    age = None if written is None else now - float(written)
    if age is None or age > max_age:
        return (f"{what} last reported {'never' if age is None else f'{age:.0f} s ago'} "
                f"(it reports every few seconds; more than {max_age:g} s: it is not running)")
    return None


def problems(statuses: dict[str, dict[str, Any]], now: float) -> list[str]:
    """One sentence per problem. A status that claims work (connected, sealing) but was last written
    more than MAX_AGE s ago is a process that died without saying so; a row that cannot be read is
    itself a problem, never an error of /health."""
    found: list[str] = []
    for name, st in sorted(statuses.items()):
        try:
            found += _problems_of(name, st, now)
        except (AttributeError, TypeError, ValueError):
            found.append(f"{name}: its status in the store is malformed ({str(st)[:120]})")
    return found


def _problems_of(name: str, st: dict[str, Any], now: float) -> list[str]:
    out: list[str] = []
    if st.get("component") == "ingestor":
        out += _ingestor_problems(name, st, now)
    elif st.get("component") == "witnessing":
        out += _witnessing_problems(name, st)
    elif st.get("component") == "anchoring":
        out += _anchoring_problems(name, st)
    elif st.get("component") == "sealer" and st.get("state") == "halted":
        out.append(f"{name}: sealing stopped since {st.get('since')} (the sealer's log says why: a ledger file that "
                   "does not continue the store's chain, or a lost sealer lock)")
    written = st.get("written_unix")
    if st.get("state") in WORKING and written is not None and now - float(written) > MAX_AGE:
        out.append(f"{name}: says {st.get('state')} but last reported {now - float(written):.0f} s ago (it "
                   f"reports every few seconds; more than {MAX_AGE:g} s: it is not running)")
    return out


def _ingestor_problems(name: str, st: dict[str, Any], now: float) -> list[str]:
    out = []
    if st.get("state") == "disconnected":
        last = st.get("last_loss") or {}
        out.append(f"{name}: not connected to the MQTT broker since {st.get('since')} ({last.get('reason')}); "
                   "intake is stopped until it reconnects")
    last = st.get("last_loss")
    if st.get("state") == "connected" and last and now - float(last.get("at_unix", 0)) < RECENT:
        taken = st.get("takeovers", 0)
        why = (f", {taken} taken over by another client with client id {st.get('client_id')!r}" if taken else "")
        out.append(f"{name}: lost its MQTT session {st.get('losses')} times{why}; last at {last.get('at')}: "
                   f"{last.get('reason')} (reconnected since {st.get('since')})")
    return out


def _witnessing_problems(name: str, st: dict[str, Any]) -> list[str]:
    """A checkpoint a witness has not cosigned in time, and a witness that holds another history
    (anchor/witnessing.py writes this status): sealing goes on, but proofs lack those cosignatures."""
    out = []
    for w in st.get("witnesses", []):
        if w.get("split_view"):
            out.append(f"{name}: witness {w.get('key')} holds another root than the log at the size it cosigned: "
                       f"a split view or a store restored behind it ({w.get('error')})")
        elif w.get("late"):
            out.append(f"{name}: checkpoint {st.get('latest_size')} not cosigned by witness {w.get('key')} in time "
                       f"(it cosigned size {w.get('cosigned_size')}; last error: {w.get('error')})")
    return out


def _anchoring_problems(name: str, st: dict[str, Any]) -> list[str]:
    """The anchoring loop failing (node unreachable, wrong chain, refused by the contract) or late
    (anchor/anchorer.py writes this status): sealing goes on, but the chain does not yet hold the log's head."""
    out = []
    confirmed = st.get("confirmed") or {}
    held = (f"the chain holds checkpoint {confirmed.get('size')} (block {confirmed.get('block_number')})"
            if confirmed else "no anchor confirmed yet")
    if st.get("error"):
        out.append(f"{name}: failing since {st.get('error_since')} ({st.get('failures')} attempts): {st.get('error')}; "
                   f"{held}")
    elif st.get("late"):
        out.append(f"{name}: checkpoint {st.get('latest_size')} not anchored with {st.get('confirmations')} "
                   f"confirmations in time; {held}")
    return out
