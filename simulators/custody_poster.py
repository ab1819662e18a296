"""The simulated parties at work (issue 15): sign each shipment's custody script and POST it to the
API as the journey's time passes, as each party's own system would.

The scripts (simulators/custody_script.py) say what happens at which journey time; `clock`
maps a shipment's journey time to the wall clock its trackers' readings are stamped with, so
an event's `ts` falls among the readings of the moment it describes (the drop's handover
among the readings of the drop). An event is posted once its time has come; the API's answer
decides: 201 advances the script, a refusal (403/409/422) stops that shipment's script and is
counted, an API that does not answer is asked again.

A restart picks up where the store says the last run left off: each party's next seq from
`GET /parties/{id}`, each shipment's accepted events from `GET /shipments/{id}/custody` (its
script is deterministic, so the first N accepted events are its first N steps).
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import httpx
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from packproof.crypto import public_key_bytes
from packproof.errors import RegistryConflict
from packproof.simulators.custody_script import SIM_PARTIES, ScriptRun, Signed, custody_script, party_key
from packproof.simulators.fleet import SimDevice
from packproof.simulators.scenarios import SCENARIOS
from packproof.timefmt import rfc3339

if TYPE_CHECKING:
    from packproof.store import Store

log = logging.getLogger(__name__)
Clock = Callable[[str, float], float]  # (shipment id, journey seconds) -> epoch seconds


async def register_parties(store: Store, seed: int) -> int:
    """Register the simulated parties with their keys from `seed`; returns how many were new."""
    new = 0
    for p in SIM_PARTIES:
        try:
            new += await store.add_party(p.party_id, p.name, p.roles, public_key_bytes(party_key(seed, p.party_id)))
        except RegistryConflict as exc:
            raise RegistryConflict(f"{exc}. The simulated parties of this store were registered with another "
                                   f"--seed than {seed}: use that one, or another --data-dir") from exc
    return new


def party_keys(seed: int) -> dict[str, Ed25519PrivateKey]:
    return {p.party_id: party_key(seed, p.party_id) for p in SIM_PARTIES}


def script_runs(fleet: Sequence[SimDevice]) -> list[ScriptRun]:
    """One script per shipment of the fleet, its packs those the shipment's trackers ride on."""
    trackers: dict[str, list[str]] = {}
    scenario: dict[str, str] = {}
    for d in fleet:
        trackers.setdefault(d.shipment_id, []).append(d.device_id)
        scenario[d.shipment_id] = d.scenario
    return [ScriptRun(sid, custody_script(SCENARIOS[scenario[sid]], sid, ids)) for sid, ids in trackers.items()]


def journey_clock(fleet: Sequence[SimDevice], *, started: float, rate: float, step_s: float) -> Clock:
    """Journey time -> wall time: reading `seq` covers journey seconds [seq * step_s, (seq + 1) * step_s) and
    is measured `(seq - first) / rate` seconds after `started`, `first` being the seq the run began at."""
    first: dict[str, int] = {}
    for d in fleet:
        first.setdefault(d.shipment_id, d.next_seq)

    def clock(shipment_id: str, at_s: float) -> float:
        return started + (at_s / step_s - first[shipment_id]) / rate

    return clock


@dataclass(slots=True)
class PosterStats:
    accepted: int = 0
    refused: int = 0
    resumed: int = 0  # events an earlier run had posted, found accepted at the start
    last_refusal: str | None = None


class CustodyPoster:
    """Plays the custody scripts against the API's `POST /custody/events`."""

    def __init__(self, api_url: str, runs: Sequence[ScriptRun], keys: Mapping[str, Ed25519PrivateKey],
                 clock: Clock, *, retry_s: float = 1.0, token: str | None = None) -> None:
        """`token`: the bearer token of an API that requires one for reads (its resume reads
        GET /parties and GET /shipments/{id}/custody; posting events needs none)."""
        self.api_url, self.runs, self.keys, self.clock, self.retry_s = api_url, list(runs), keys, clock, retry_s
        self.headers = {"authorization": f"Bearer {token}"} if token else {}
        self.seqs: dict[str, int] = {}  # party -> its last accepted seq
        self.stats = PosterStats()

    def run(self, *, stop: threading.Event) -> PosterStats:
        """Post every event when its time comes, until every script is done or `stop` is set."""
        with httpx.Client(base_url=self.api_url, timeout=10.0, headers=self.headers) as client:
            while not stop.is_set():
                try:
                    self._resume(client)
                    break
                except httpx.HTTPError as exc:
                    log.warning("custody: cannot read where the last run left off (%s); asking again", exc)
                    stop.wait(self.retry_s)
            while not stop.is_set():
                pending = [r for r in self.runs if not r.finished]
                if not pending:
                    break
                run = min(pending, key=lambda r: self.clock(r.shipment_id, r.steps[r.next].at_s))
                due = self.clock(run.shipment_id, run.steps[run.next].at_s)
                if due > time.time():
                    stop.wait(min(due - time.time(), 0.5))
                    continue
                if not self._post(client, run, rfc3339(due)):
                    stop.wait(self.retry_s)
        return self.stats

    def _post(self, client: httpx.Client, run: ScriptRun, ts: str) -> bool:
        """Sign and post `run`'s next step; False when the API did not answer (to be asked again)."""
        event = run.event(self.seqs, ts, self.keys)
        try:
            r = client.post("/custody/events", content=json.dumps(event).encode(),
                            headers={"content-type": "application/json"})
        except httpx.HTTPError as exc:
            log.warning("custody: posting %s failed (%s); trying again", event["event_id"], exc)
            return False
        if r.status_code == 201:
            self._accepted(run, event, r.json()["hash"])
            return True
        if r.status_code >= 500:
            log.warning("custody: the API answered %d to %s; trying again", r.status_code, event["event_id"])
            return False
        detail = _detail(r)
        if detail.get("code") == "replay" and self._already_accepted(client, run, event):
            return True  # accepted before, its answer lost: nothing was refused
        self.stats.refused += 1
        self.stats.last_refusal = f"{event['event_id']} ({event['kind']}): {detail.get('code')}: {detail.get('detail')}"
        run.stopped = self.stats.last_refusal
        log.warning("custody of %s stops: %s", run.shipment_id, self.stats.last_refusal)
        return True

    def _accepted(self, run: ScriptRun, event: Mapping[str, Any], api_hash: str) -> None:
        ours = run.accepted(event, self.seqs)
        if ours != api_hash:  # the API's hash is what the next prev must name
            log.warning("custody: %s hashes to %s here, %s at the API", event["event_id"], ours, api_hash)
            step = run.steps[run.next - 1]
            run.done[run.next - 1] = Signed(str(event["event_id"]), api_hash)
            run.heads.update({p: api_hash for p in step.packs})
        self.stats.accepted += 1

    def _already_accepted(self, client: httpx.Client, run: ScriptRun, event: Mapping[str, Any]) -> bool:
        r = client.get(f"/custody/events/{event['event_id']}")
        if r.status_code != 200 or r.json().get("event") != json.loads(json.dumps(event)):
            return False
        self._accepted(run, event, r.json()["hash"])
        return True

    def _resume(self, client: httpx.Client) -> None:
        """Each party's last seq, and each script's steps an earlier run had accepted, from the API."""
        for p in SIM_PARTIES:
            r = client.get(f"/parties/{p.party_id}")
            r.raise_for_status()
            self.seqs[p.party_id] = int(r.json()["next_seq"]) - 1
        for run in self.runs:
            after: int | None = 0
            while after is not None:
                r = client.get(f"/shipments/{run.shipment_id}/custody", params={"after": after, "limit": 500})
                if r.status_code == 404:
                    break
                r.raise_for_status()
                page = r.json()
                for e in page["events"]:
                    if run.next >= len(run.steps):
                        break
                    step = run.steps[run.next]
                    run.done[run.next] = Signed(e["event_id"], e["hash"])
                    run.heads.update({p: e["hash"] for p in step.packs})
                    run.next += 1
                    self.stats.resumed += 1
                after = page.get("next_after")


def _detail(r: httpx.Response) -> dict[str, Any]:
    try:
        body = r.json()
    except ValueError:
        return {"detail": r.text[:200], "code": None}
    return body if isinstance(body, dict) else {"detail": str(body)[:200], "code": None}
