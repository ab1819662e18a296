"""`packproof run`: broker, ingestor, sealer, API and a simulated fleet in one process.

Stopping (Ctrl-C, SIGTERM or the end of --duration) goes downstream in order so that
nothing is lost: the simulator stops measuring and drains its buffer until the ingestor
(still running) has acknowledged every reading end to end, up to --drain-timeout (a
second Ctrl-C cuts that short; what is left stays buffered for the next start); the
ingestor takes in everything the broker has delivered and commits it; the sealer seals
what is left; then the API and the broker stop.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import shutil
import signal
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import uvicorn
from rich.console import Console

from packproof.anchor.anchor_options import AnchoringOptions
from packproof.anchor.witnessing import WitnessingOptions
from packproof.api.notify import MqttTarget
from packproof.app.credentials import provision_credentials
from packproof.app.services import IngestOptions, IngestService, api_server
from packproof.broker.auth import PasswordFile
from packproof.broker.embedded import EmbeddedBroker
from packproof.broker.refusals import forward_refusals
from packproof.diskfull import DISK
from packproof.edge.options import IngestorOptions, MqttOptions
from packproof.net import free_port
from packproof.paths import DataDir
from packproof.simulators.buffer import SimBuffer
from packproof.simulators.custody_poster import (
    CustodyPoster,
    PosterStats,
    journey_clock,
    party_keys,
    register_parties,
    script_runs,
)
from packproof.simulators.fleet import MIXED, SimDevice, build_fleet, register_fleet
from packproof.simulators.publisher import FleetPublisher, ForwardOptions, PublishStats, leftover_note

log = logging.getLogger(__name__)
INGESTOR = "packproof-ingestor"  # the ingestor's MQTT service account


@dataclass(slots=True)
class RunOptions:
    data_dir: Path = Path("data")
    store_url: str | None = None  # None: SQLite in data_dir
    intake_key_file: Path | None = None  # None: DATA_DIR/intake.key, made on first use
    mqtt_port: int = 0  # 0: pick a free port
    api_host: str = "127.0.0.1"
    api_port: int = 8000
    duration: float | None = None
    shipments: int = 8
    packs: int = 4
    scenario: str = MIXED
    rate: float = 1.0
    seed: int = 1
    unsigned_shipments: int = 1
    step_s: float = 60.0
    custody: bool = True  # the simulated parties sign and post each shipment's custody script (issue 15)
    verify_signatures: bool = True
    forward: ForwardOptions = field(default_factory=ForwardOptions)
    console: Console = field(default_factory=Console)
    witnessing: WitnessingOptions = field(default_factory=WitnessingOptions)  # witnesses asked to cosign
    anchoring: AnchoringOptions = field(default_factory=AnchoringOptions)  # the chain checkpoints are anchored on


HANDOVER_WINDOW_JOURNEY_S = 300.0  # five journey minutes either side of a change of hands (api/condition.py)


def handover_window(rate: float, step_s: float) -> float:
    """The handover window in wall seconds for a simulation where each wall second is `rate` readings
    of `step_s` journey seconds each: five journey minutes are 300 / (step_s * rate) wall seconds
    (at the defaults, 60 s steps at 1/s: 5 s). Real time keeps the default, 300 s."""
    return HANDOVER_WINDOW_JOURNEY_S / (step_s * rate)


async def _wait_until(predicate: Callable[[], bool], timeout: float) -> bool:
    """Poll `predicate` on the event loop until it holds (True) or `timeout` passes (False): for what
    the runner cannot await (uvicorn's `started` flag, the ingestor's counters)."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(0.05)
    return True


async def run(o: RunOptions) -> dict[str, int]:
    """Run until stopped; returns the final counts (sent, accepted, quarantined, sealed)."""
    dirs = DataDir(o.data_dir, o.store_url, intake_key_file=o.intake_key_file)
    mqtt_port = o.mqtt_port or free_port()
    fleet = build_fleet(shipments=o.shipments, packs=o.packs, scenario=o.scenario, seed=o.seed,
                        unsigned_shipments=o.unsigned_shipments, step_s=o.step_s)
    ingestor_password = secrets.token_urlsafe(18)  # the service account, also the API's for custody notifications
    window = handover_window(o.rate, o.step_s)
    server = api_server(dirs, o.api_host, o.api_port,  # fails early if the port is taken
                        notify=MqttTarget("127.0.0.1", mqtt_port, INGESTOR, ingestor_password),
                        handover_window_s=window)
    dirs.root.mkdir(parents=True, exist_ok=True)
    dirs.handover_window.write_text(f"{window!r}\n")  # `api` and `condition` on this directory use it too
    buffer = SimBuffer(dirs.sim_buffer, max_per_device=o.forward.buffer_max)
    try:
        buffer.migrate_progress_file(dirs.sim_progress_legacy)
        return await _run(o, fleet, buffer, mqtt_port, server, ingestor_password)
    finally:
        buffer.close()


async def _run(o: RunOptions, fleet: list[SimDevice], buffer: SimBuffer, mqtt_port: int,
               server: uvicorn.Server, ingestor_password: str) -> dict[str, int]:
    dirs = DataDir(o.data_dir, o.store_url, intake_key_file=o.intake_key_file)
    stop = asyncio.Event()
    abort_drain = threading.Event()
    loop = asyncio.get_running_loop()

    first_signal = [0.0]

    def on_signal() -> None:
        # A second Ctrl-C stops waiting for acknowledgements. Only one a second or more after the
        # first: uvicorn captures the first too and raises it again when the API server stops.
        if not stop.is_set():
            first_signal[0] = time.monotonic()
        elif time.monotonic() - first_signal[0] >= 1.0:
            abort_drain.set()
        stop.set()

    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, on_signal)

    # Logins on, as in production: each device has its own, the ingestor a service account.
    password_file = dirs.root / "mqtt.passwd"
    credentials = await asyncio.to_thread(provision_credentials, fleet, password_file,
                                          dirs.root / "sim-credentials.json")
    PasswordFile(password_file).set(INGESTOR, ingestor_password)
    async with EmbeddedBroker(port=mqtt_port, password_file=password_file, services=(INGESTOR,)) as broker:
        service = IngestService(IngestOptions(
            o.data_dir, MqttOptions(port=mqtt_port, username=INGESTOR, password=ingestor_password),
            IngestorOptions(verify_signatures=o.verify_signatures), store_url=o.store_url,
            intake_key_file=o.intake_key_file, witnessing=o.witnessing, anchoring=o.anchoring))
        await service.start()
        assert service.store is not None and service.ingestor is not None and service.sealer is not None
        ingest_stop, seal_stop = asyncio.Event(), asyncio.Event()
        pipeline = asyncio.create_task(service.run(ingest_stop, seal_stop))
        refusals_stop = asyncio.Event()
        refusals = asyncio.create_task(forward_refusals(broker.refusals, service.store, refusals_stop))
        api = asyncio.create_task(server.serve())
        try:
            stats, final_line, custody = await _serve(o, fleet, buffer, mqtt_port, server, service, broker, api,
                                                      stop, abort_drain, credentials)
        finally:
            # Also when something failed (the broker refused the fleet, the store broke): every task and
            # thread started above ends here, or the process would print the error and then hang.
            ingest_stop.set()
            await pipeline
            refusals_stop.set()
            await refusals
            server.should_exit = True
            with contextlib.suppress(asyncio.CancelledError):
                await api
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.remove_signal_handler(sig)
        final_line(stats)  # after the last seal: what was sealed in the end
    ingestor, sealer = service.ingestor, service.sealer
    counts = {"measured": stats.measured, "sent": stats.sent, "resent": stats.resent,
              "acked": stats.acked, "buffered": stats.buffered, "dropped": stats.dropped,
              "accepted": ingestor.stats.accepted,
              "duplicates": ingestor.stats.duplicates, "quarantined": ingestor.stats.quarantined,
              "sealed": sealer.sealed_readings, "registry_records": sealer.sealed_leaves - sealer.sealed_readings,
              "blocks": sealer.sealed_blocks}
    if custody is not None:
        counts |= {"custody_events": custody.accepted, "custody_refused": custody.refused}
    return counts


async def _serve(o: RunOptions, fleet: list[SimDevice], buffer: SimBuffer, mqtt_port: int, server: uvicorn.Server,
                 service: IngestService, broker: EmbeddedBroker, api: asyncio.Task[None], stop: asyncio.Event,
                 abort_drain: threading.Event,
                 credentials: dict[str, str],
                 ) -> tuple[PublishStats, Callable[[PublishStats], None], PosterStats | None]:
    """Register the fleet and the simulated parties, wait for the API, run the simulator and the parties'
    custody scripts until stopped and drain it; returns its counts, the progress line's printer and the
    custody counts. `_run` stops the ingestor, sealer and API after it."""
    out = o.console
    dirs = DataDir(o.data_dir, o.store_url, intake_key_file=o.intake_key_file)
    assert service.store is not None and service.ingestor is not None
    await register_fleet(service.store, fleet, seed=o.seed, unsigned_shipments=o.unsigned_shipments)
    if o.custody:
        await register_parties(service.store, o.seed)
    await _wait_until(lambda: server.started or api.done(), 10)
    if api.done():
        api.result()
    url = f"http://{o.api_host}:{o.api_port}"
    out.print(f"[bold]packproof[/] running: MQTT on 127.0.0.1:{mqtt_port}, API at [link]{url}[/] "
              f"(docs {url}/docs), data in {o.data_dir}")
    out.print(f"fleet: {o.shipments} shipments x {o.packs} packs ({o.scenario}), {o.rate:g} reading/s per pack, "
              f"{o.forward.describe()}; "
              + (f"stopping after {o.duration:g} s" if o.duration else "Ctrl-C stops cleanly"))

    publisher = FleetPublisher(fleet, buffer, port=mqtt_port, rate=o.rate, credentials=credentials,
                               backlog_rate=o.forward.backlog_rate, resend_after=o.forward.resend_after,
                               outages=o.forward.schedule(fleet, o.seed))
    if publisher.stats.buffered:
        out.print(f"{publisher.stats.buffered:,} readings from an earlier run wait in {dirs.sim_buffer}: "
                  "sent first", highlight=False)
    await asyncio.to_thread(publisher.connect, refused_hint=(
        f"their passwords in {dirs.root / 'sim-credentials.json'} do not match the hashes in "
        f"{dirs.root / 'mqtt.passwd'}; `run` rewrites a hash that does not match, so this is a bug or a "
        "file changed while it started: start it again"))
    sim_stop = threading.Event()
    hint_shown = False
    command = "packproof" if shutil.which("packproof") else sys.argv[0]  # what the user can paste
    first = fleet[0]
    first_id = f"{first.device_id}:{first.next_seq}"

    def tick(s: PublishStats) -> None:
        nonlocal hint_shown
        sealer = service.sealer
        assert sealer is not None and service.ingestor is not None
        if not hint_shown and sealer.sealed_readings:
            hint_shown = True
            out.print(f"verify a reading:  {command} verify {first_id} --api {url} "
                      f"--ledger-key {dirs.ledger_pub}")
        st = service.ingestor.stats
        records = sealer.sealed_leaves - sealer.sealed_readings
        out.print(f"  sent {s.sent:,} ({s.rate:,.0f}/s, resent {s.resent:,}) | buffered {s.buffered:,} | "
                  f"acked end to end {s.acked:,} | dropped by the cap {s.dropped:,} | stored {st.accepted:,} | "
                  f"quarantined {st.quarantined:,} | sealed {sealer.sealed_readings:,} readings"
                  + (f" and {records:,} registry records" if records else "")
                  + f" in {sealer.sealed_blocks:,} block{'' if sealer.sealed_blocks == 1 else 's'}"
                  + outages(s) + custody_line() + trouble(), highlight=False)
        if sealer.halted:
            out.print(f"  [bold red]SEALING STOPPED[/]: {sealer.halted}", highlight=False)

    def outages(s: PublishStats) -> str:
        """With --outage-every: how many links are down now. Readings measured meanwhile wait in the
        buffer and are sent once the link is back: a first send, so `resent` does not count them
        (it counts readings sent again because no acknowledgement came)."""
        if o.forward.outage_every is None:
            return ""
        return f" | outages {s.outages:,}, links down now {publisher.links_down():,}"

    def custody_line() -> str:
        if poster is None:
            return ""
        c = poster.stats
        return f" | custody events {c.accepted:,}" + (f" (refused {c.refused:,})" if c.refused else "")

    def trouble() -> str:
        """What the line shows only when it happens: a full disk, refusals at the broker, a lost MQTT session."""
        full = DISK.summary()
        refused = sum(broker.refusals.snapshot().values())
        lost = service.ingestor.session.losses if service.ingestor else 0
        return (f" | {full}" if full else "") + (f" | refused by the broker {refused:,}" if refused else "") + \
            (f" | ingestor's MQTT session lost {lost:,} times" if lost else "")

    last = [0.0]
    was_full = [False]

    def throttled(s: PublishStats) -> None:
        # At once when the disk fills or frees, so the line says what /health says.
        full = bool(DISK.current())
        if time.monotonic() - last[0] >= 5.0 or not hint_shown or full != was_full[0]:
            was_full[0] = full
            last[0] = time.monotonic()
            tick(s)

    poster = None
    epoch = time.time()  # one time base: reading k of this run is stamped epoch + k / rate, and the poster's clock
    if o.custody:
        clock = journey_clock(fleet, started=epoch, rate=o.rate, step_s=o.step_s)
        poster = CustodyPoster(url, script_runs(fleet), party_keys(o.seed), clock)
    sim = asyncio.create_task(asyncio.to_thread(
        publisher.run, stop=sim_stop, duration=o.duration, on_tick=throttled, epoch=epoch))
    custody = asyncio.create_task(asyncio.to_thread(poster.run, stop=sim_stop)) if poster else None
    stopper = asyncio.create_task(stop.wait())
    await asyncio.wait([sim, stopper], return_when=asyncio.FIRST_COMPLETED)
    out.print("stopping: simulator, then ingestor, then sealer ...")
    sim_stop.set()
    stats = await sim
    if custody is not None:
        await custody
    stopper.cancel()
    drained = not stats.buffered

    def disk_full_stops_waiting() -> bool:
        # Acknowledgements need the ingestor to write: waiting for them on a full disk only delays the stop.
        full = DISK.summary()
        if full and not abort_drain.is_set():
            abort_drain.set()
            out.print(f"{full}; stopping without waiting for acknowledgements", highlight=False)
        return full is not None

    if not drained and o.forward.drain_timeout > 0 and not disk_full_stops_waiting():
        shown = [0.0]

        def draining(s: PublishStats) -> None:
            if disk_full_stops_waiting():  # the disk filled while draining
                return
            if time.monotonic() - shown[0] >= 2.0:
                shown[0] = time.monotonic()
                out.print(f"  draining: {s.buffered:,} readings not yet acknowledged", highlight=False)

        drained = await asyncio.to_thread(publisher.drain, timeout=o.forward.drain_timeout, abort=abort_drain,
                                          on_tick=draining)
    publisher.close()
    out.print(leftover_note(stats, dirs.sim_buffer), highlight=False)
    ingestor = service.ingestor
    if not drained and not DISK.current():  # let what is still on its way arrive before the ingestor stops
        await _wait_until(lambda: ingestor.stats.received >= stats.sent, 5)
    if poster is not None and poster.stats.last_refusal:
        out.print(f"custody: {poster.stats.refused:,} event(s) refused, the last: {poster.stats.last_refusal}",
                  highlight=False)
    return stats, tick, poster.stats if poster is not None else None
