"""The log side of c2sp.org/tlog-witness: ask each configured witness to cosign the latest checkpoint.

Runs beside the sealer, never in its path: the sealer signs checkpoints and goes on; one task per
witness takes the store's latest checkpoint, sends ``old <size this witness last cosigned for
us>``, the RFC 6962 consistency proof from that size and the signed note, and keeps the
cosignature lines that verify under the witness's configured key (store table `cosignatures`).
A witness that is down, slow or refusing only delays its own cosignatures: each request has a
timeout, failures back off exponentially (capped), and no sealer lock or transaction is held
while a witness is asked.

The protocol's turns (tlog-witness "add-checkpoint"):

* 200: signature lines; those by the witness's key that verify on this checkpoint are kept;
* 409 with ``text/x.tlog.size``: the witness holds another size (a restart of ours, a lost
  answer): take it as the new `old` and ask again at once. If it names the very size we sent,
  the witness holds another root at that size: the log showed it a different history (a split
  view, or a database restored behind the witness) - reported as an error, never retried fast;
* anything else (400/403/404/422/5xx, a timeout, no connection): reported, retried after backoff.

`WitnessingStatus` says, per witness, what it last cosigned and since when the latest checkpoint
waits for it; a checkpoint older than `late_after` seconds without a cosignature from every
witness is `late`, shown by /health (via Store.set_status) so an operator sees it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import httpx

from packproof.anchor.cosignature import WitnessKey
from packproof.anchor.note import parse_note
from packproof.anchor.witness import SIZE_CONTENT_TYPE, request_body
from packproof.errors import NoteError, PackproofError

__all__ = ["WitnessEndpoint", "Witnessing", "WitnessingOptions", "endpoints", "parse_endpoint"]

log = logging.getLogger(__name__)
STATUS_COMPONENT = "witnessing"


@dataclass(frozen=True)
class WitnessEndpoint:
    """A witness the log asks: its submission prefix (POST <url>/add-checkpoint) and its vkey."""

    url: str
    key: WitnessKey


def parse_endpoint(text: str) -> WitnessEndpoint:
    """``<URL> <VKEY>`` (one space between), as the configuration names a witness."""
    url, _, vkey = text.strip().partition(" ")
    if not url.startswith(("http://", "https://")) or not vkey:
        raise NoteError("bad-witness", f"witness {text!r}: expected '<http(s) URL> <witness vkey>'")
    return WitnessEndpoint(url.rstrip("/"), WitnessKey.parse(vkey.strip()))


@dataclass(frozen=True)
class WitnessingOptions:
    witnesses: tuple[WitnessEndpoint, ...] = ()
    timeout: float = 5.0  # seconds for one add-checkpoint request
    poll: float = 0.5  # seconds between looks at the latest checkpoint when nothing is new
    backoff_max: float = 60.0  # seconds between attempts at most, after failures
    late_after: float = 60.0  # a checkpoint this old without every witness's cosignature is late


class CheckpointRow(Protocol):
    """What the store keeps of a checkpoint (packproof.records.CheckpointRecord)."""

    @property
    def size(self) -> int: ...
    @property
    def note(self) -> str: ...
    @property
    def signed_at(self) -> float: ...


class WitnessedStore(Protocol):
    """The store methods witnessing uses (packproof.store.Store has them all)."""

    async def latest_checkpoint(self) -> Any: ...
    async def consistency_proof(self, m: int, n: int) -> list[bytes]: ...
    async def save_cosignatures(self, size: int, lines: Mapping[str, str]) -> None: ...
    async def cosigned_sizes(self) -> dict[str, int]: ...
    async def set_status(self, component: str, status: dict[str, Any]) -> None: ...


@dataclass
class _Progress:
    """One witness's account: what it cosigned, what went wrong last, when to try again."""

    endpoint: WitnessEndpoint
    cosigned: int | None = None  # the largest size whose cosignature by it we keep (None: none)
    held: int = 0  # the size it holds for our origin, as far as we know: the `old` to send
    cosigned_at: float | None = None
    error: str | None = None
    failures: int = 0
    split_view: bool = False
    next_try: float = 0.0

    def view(self, latest: CheckpointRow | None, now: float, late_after: float) -> dict[str, Any]:
        behind = latest is not None and (self.cosigned is None or self.cosigned < latest.size)
        return {"url": self.endpoint.url, "key": str(self.endpoint.key), "cosigned_size": self.cosigned,
                "cosigned_at": self.cosigned_at, "error": self.error, "split_view": self.split_view,
                "late": bool(behind and latest is not None and now - latest.signed_at > late_after)}


class Witnessing:
    """The background loop: `await run(stop)` until `stop` is set."""

    def __init__(self, store: WitnessedStore, opts: WitnessingOptions,
                 client: httpx.AsyncClient | None = None) -> None:
        self.store = store
        self.opts = opts
        self._client = client
        self.progress = [_Progress(w) for w in opts.witnesses]

    async def run(self, stop: asyncio.Event) -> None:
        if not self.progress:
            return
        own = self._client is None
        client = self._client or httpx.AsyncClient(timeout=self.opts.timeout)
        try:
            known = await self.store.cosigned_sizes()
            for p in self.progress:
                p.cosigned = known.get(p.endpoint.key.name)
                p.held = p.cosigned or 0
            await asyncio.gather(*(self._follow(p, client, stop) for p in self.progress),
                                 self._report(stop))
        finally:
            if own:
                await client.aclose()

    async def _report(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                await self.store.set_status(STATUS_COMPONENT, await self.status())
            except PackproofError as exc:
                log.warning("witnessing: cannot record its status: %s", exc)
            await _sleep(stop, 2.0)

    async def status(self) -> dict[str, Any]:
        latest = await self.store.latest_checkpoint()
        now = time.time()
        views = [p.view(latest, now, self.opts.late_after) for p in self.progress]
        return {"component": STATUS_COMPONENT, "written_unix": now, "latest_size": latest.size if latest else None,
                "witnesses": views,
                "late": any(v["late"] for v in views), "split_view": any(v["split_view"] for v in views)}

    async def _follow(self, p: _Progress, client: httpx.AsyncClient, stop: asyncio.Event) -> None:
        while not stop.is_set():
            wait = p.next_try - time.monotonic()
            if wait > 0:
                await _sleep(stop, wait)
                continue
            try:
                latest = await self.store.latest_checkpoint()
                if latest is None or p.cosigned == latest.size:
                    await _sleep(stop, self.opts.poll)
                    continue
                await self._ask(p, client, latest)
            except PackproofError as exc:  # the store failed: the sealer reports that; try later
                self._failed(p, f"store: {exc}")
            except Exception as exc:  # noqa: BLE001 - a bug here must never reach the sealer beside it
                log.exception("witnessing: unexpected error asking %s", p.endpoint.url)
                self._failed(p, f"internal error: {type(exc).__name__}: {exc}", long=True)

    async def _ask(self, p: _Progress, client: httpx.AsyncClient, cp: CheckpointRow) -> None:
        old = p.held
        if old > cp.size:
            self._failed(p, f"the witness cosigned size {old}, larger than the log's latest checkpoint {cp.size}: "
                            "a log rolled back (restored from a backup?) cannot be cosigned", long=True)
            return
        proof = await self.store.consistency_proof(old, cp.size) if old else []
        body = request_body(old, proof, cp.note.encode())
        url = f"{p.endpoint.url}/add-checkpoint"
        try:
            r = await client.post(url, content=body, timeout=self.opts.timeout)
        except httpx.HTTPError as exc:
            self._failed(p, f"{url}: {type(exc).__name__} {exc}".strip())
            return
        if r.status_code == 200:
            await self._save(p, cp, r.text)
        elif r.status_code == 409 and r.headers.get("content-type", "").split(";")[0] == SIZE_CONTENT_TYPE:
            self._conflict(p, cp, old, r.text)
        else:
            self._failed(p, f"{url} answered {r.status_code}: {r.text.strip()[:200]}")

    async def _save(self, p: _Progress, cp: CheckpointRow, answer: str) -> None:
        """Keep the line(s) by this witness's key that verify on this checkpoint; others are ignored
        (tlog-witness: "The client MUST ignore any cosignatures from unknown keys")."""
        key = p.endpoint.key
        try:
            parsed = parse_note(cp.note.encode() + answer.encode())
        except NoteError as exc:
            self._failed(p, f"{p.endpoint.url} answered 200 with lines that are not signature lines: {exc}")
            return
        good = [s for s in parsed.signatures if key.verifies(parsed.text, s)]
        if not good:
            self._failed(p, f"{p.endpoint.url} answered 200 without a valid cosignature by {key}")
            return
        await self.store.save_cosignatures(cp.size, {key.name: good[-1].line()})
        p.cosigned, p.held, p.cosigned_at = cp.size, cp.size, time.time()
        p.error, p.failures, p.split_view, p.next_try = None, 0, False, 0.0
        log.debug("witnessing: %s cosigned size %d", key.name, cp.size)

    def _conflict(self, p: _Progress, cp: CheckpointRow, old: int, text: str) -> None:
        held = text.strip()
        if not held.isdigit():
            self._failed(p, f"{p.endpoint.url} answered 409 with a size that is not a number: {held[:40]!r}")
            return
        size = int(held)
        if size == old:
            p.split_view = True
            self._failed(p, f"witness {p.endpoint.key.name} holds another root at size {size} than the log: the log "
                            f"showed it a different history (checkpoint {cp.size} refused)", long=True)
            return
        log.info("witnessing: %s holds size %d (we sent old %d); asking again", p.endpoint.key.name, size, old)
        p.held = size
        p.next_try = 0.0

    def _failed(self, p: _Progress, why: str, *, long: bool = False) -> None:
        p.failures += 1
        p.error = why
        delay = self.opts.backoff_max if long else min(self.opts.backoff_max, 0.5 * 2 ** min(p.failures - 1, 10))
        p.next_try = time.monotonic() + delay
        (log.error if long else log.warning)("witnessing: %s (attempt %d; next in %.1f s)", why, p.failures, delay)


async def _sleep(stop: asyncio.Event, seconds: float) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), timeout=max(0.0, seconds))


def endpoints(texts: Sequence[str]) -> tuple[WitnessEndpoint, ...]:
    """The configured witnesses; a ConfigError-worthy NoteError names the bad entry."""
    return tuple(parse_endpoint(t) for t in texts)
