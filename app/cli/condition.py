"""`packproof condition`: a shipment's condition and loss report, from the store, as a table
or as the very document GET /shipments/{id}/condition serves."""

from __future__ import annotations

import asyncio
import time
from datetime import datetime
from typing import Annotated

import typer
from rich.table import Table

from packproof.app.cli.common import HANDOVER_WINDOW, STALE_AFTER, Exit, data_dir_of, fail, out
from packproof.app.config import Settings
from packproof.app.options import COMMON, configured


@configured("condition", (*COMMON, STALE_AFTER, HANDOVER_WINDOW))
def condition_report(
    cfg: Settings,
    shipment_id: Annotated[str, typer.Argument(help="The shipment to report on.")],
    as_json: Annotated[bool, typer.Option("--json", help="The same document as GET /shipments/{id}/condition.")]
    = False,
) -> None:
    """A shipment's condition and its loss report: per pack, what arrived, what is missing, what is unsealed.

    `missing` seqs never arrived (a gap the device is asked to fill); `unsealed` readings are
    stored but not in a block yet; a `stale` pack has gone silent: "we don't know", not "ok".
    """
    # not at start-up: the API's models
    from packproof.api.condition import RECENT_DISPUTES, condition, tracked_intervals
    from packproof.app.services import handover_window_of  # not at start-up: every stage
    from packproof.store import Store  # not at start-up: db drivers

    data_dir, stale_after, window_s = cfg.data_dir, cfg.api.stale_after, handover_window_of(cfg, data_dir_of(cfg))

    async def go():  # type: ignore[no-untyped-def]
        store = await Store.open(data_dir_of(cfg).store, readonly=True)
        try:
            shipment = await store.shipment(shipment_id)
            if shipment is None:
                fail(Exit.BAD_INPUT, f"shipment {shipment_id!r} is not in {data_dir}")
            sid = shipment.shipment_id
            excursions = await store.shipment_excursions(sid)
            return condition(sid, shipment.profile, await store.shipment_devices(sid), excursions, time.time(),
                             stale_after, await store.shipment_disputes(sid, RECENT_DISPUTES),
                             tracked_intervals(await store.custody_of_trackers(
                                 sorted({e.device_id for e in excursions}))), window_s)
        finally:
            await store.close()

    c = asyncio.run(go())
    if as_json:
        out.print_json(c.model_dump_json())
        return
    colour = {"ok": "green", "warning": "yellow", "no-data": "yellow", "incomplete": "yellow", "violated": "red",
              "disputed": "red"}
    out.print(f"shipment {c.shipment_id} ({c.profile}): [{colour[c.status]}]{c.status}[/], "
              f"{len(c.excursions)} excursion(s); {c.readings:,} readings stored, {c.missing:,} missing, "
              f"{c.disputed:,} disputed, {c.unsealed:,} not yet sealed", highlight=False)
    # Readable at 80 columns: no vertical rules, ids never cut, "disputed" only when a pack has any,
    # and the last message as an age (the --json document has the timestamps). "to seq": every seq
    # up to it is stored; "missing" lists the gaps above it.
    disputes = any(p.disputed for p in c.packs)
    table = Table(box=None, pad_edge=False, header_style="bold underline")
    table.add_column("pack", no_wrap=True)
    for name in ("status", "readings", "to seq", "missing", *(["disputed"] if disputes else []),
                 "unsealed", "last seen"):
        wraps = name in ("missing", "last seen")  # the others are short and must not be cut
        table.add_column(name, justify="right" if name in ("readings", "to seq", "disputed", "unsealed") else "left",
                         no_wrap=not wraps)
    now = time.time()
    for p in c.packs:
        gaps = ", ".join(f"{a}" if a == b else f"{a}-{b}" for a, b in p.gaps)
        table.add_row(p.device_id, p.status, f"{p.readings:,}", "-" if p.acked_seq is None else str(p.acked_seq),
                      f"{p.missing:,}" + (f" ({gaps})" if gaps else ""),
                      *([f"{p.disputed:,}"] if disputes else []), f"{p.unsealed:,}",
                      ("never" if p.last_seen is None else _age(now - _epoch(p.last_seen)))
                      + (", stale" if p.stale else ""))
    out.print(table)
    for e in c.excursions:
        out.print(f"  {e.severity} {e.test} on {e.device_id}: {e.quantity} peak {e.peak:g} ({e.limit_crossed}), "
                  f"seq {e.start_seq}..{e.end_seq}", highlight=False)
        if e.custody is not None:
            out.print(f"    pack {e.custody.pack}: owner {' / '.join(e.custody.owners) or '-'}, carrier "
                      f"{' / '.join(e.custody.carriers) or 'none (at a site)'}"
                      + ("  (during a handover: both sides named)" if len(e.custody.carriers) > 1 else ""),
                      highlight=False)
            for ch in e.custody.changes:
                out.print(f"    then {ch.role} {ch.party} from {ch.ts} ({ch.event_id})", highlight=False)
    for p in c.packs:
        for d in p.disputes:
            out.print(f"  disputed {d.reading_id or p.device_id}: stored version at {d.stored or '(unknown seq)'}, "
                      f"other version quarantined as row {d.quarantine_id} ({d.quarantined})", highlight=False)


def _epoch(rfc3339_text: str) -> float:
    return datetime.fromisoformat(rfc3339_text.replace("Z", "+00:00")).timestamp()


def _age(seconds: float) -> str:
    """How long ago, in the largest unit that keeps it a small number: "40 s ago", "3 h ago"."""
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= 2 * size:
            return f"{seconds / size:.0f} {unit} ago"
    return f"{max(seconds, 0):.0f} s ago"
