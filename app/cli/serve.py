"""The services and their set-up: `run`, `broker`, `ingest`, `seal`, `api`, `simulate`, and
`scenarios`, `passwd`, `intake-key` that prepare them.

Each service imports its stage where it runs, so `packproof --help` and one service never load
the others (FastAPI, amqtt, the simulators).
"""

from __future__ import annotations

import asyncio
import errno
import grp
import secrets
import signal
import threading
from pathlib import Path
from typing import Annotated, Any

import typer

from packproof.app.cli.common import HANDOVER_WINDOW, STALE_AFTER, Exit, data_dir_of, fail, out
from packproof.app.config import Settings
from packproof.app.options import FLEET_FLAGS, MQTT_CLIENT, WRITER, Flag, bare, configured
from packproof.diskfull import DISK

# Every setting a service reads is a `Flag` over packproof.app.config: flag > PACKPROOF_* env > --config file > default.
WITNESS_FLAGS = (Flag("witnessing.witnesses", ("--witness",)), Flag("witnessing.timeout", ("--witness-timeout",)),
                 Flag("witnessing.late_after", ("--witness-late-after",)))
# [anchoring] on the services that seal: prefixed (--anchor-rpc ...), as `run` has its own --every-like flags;
# `packproof anchor run/deploy` take the bare names (app/cli/anchor.py).
ANCHOR_FLAGS = tuple(Flag(f"anchoring.{k}", (f"--anchor-{k.replace('_', '-')}",))
                     for k in ("rpc", "contract", "key_file", "chain_id", "every", "confirmations"))
RUN_FLAGS = (*WRITER, Flag("run.mqtt_port", ("--mqtt-port",)), Flag("api.port", ("--api-port",)),
             Flag("ingest.verify_signatures", ("--verify-signatures/--no-verify-signatures",)),
             bare("fleet.unsigned_shipments"), *FLEET_FLAGS, *WITNESS_FLAGS, *ANCHOR_FLAGS)
BROKER_FLAGS = (Flag("broker.host", ("--host",)), Flag("broker.port", ("--port",)),
                Flag("broker.password_file", ("--password-file",)), Flag("broker.services", ("--service",)),
                Flag("broker.custody_readers", ("--custody-reader",)),
                Flag("broker.certfile", ("--certfile",)), Flag("broker.keyfile", ("--keyfile",)))
SEAL_INTERVAL = Flag("seal.interval", ("--seal-interval",))
INGEST_FLAGS = (*WRITER, *MQTT_CLIENT, Flag("mqtt.username"), Flag("mqtt.password"),
                Flag("mqtt.client_id", ("--client-id",)), Flag("mqtt.share_group", ("--share-group",)),
                Flag("mqtt.protocol"), Flag("mqtt.session_expiry", ("--session-expiry",)),
                Flag("ingest.seal", ("--seal/--no-seal",)), SEAL_INTERVAL, *WITNESS_FLAGS, *ANCHOR_FLAGS,
                Flag("ingest.verify_signatures", ("--verify-signatures/--no-verify-signatures",)),
                Flag("ingest.verify_workers", ("--verify-workers",)), Flag("ingest.profiles", ("--profiles",)),
                Flag("ingest.max_clock_ahead", ("--max-clock-ahead",)), Flag("ingest.earliest_ts", ("--earliest-ts",)),
                Flag("ingest.max_seq_jump", ("--max-seq-jump",)))
API_FLAGS = (*WRITER, Flag("api.host", ("--host",)), Flag("api.port", ("--port", "--api-port")), STALE_AFTER,
             HANDOVER_WINDOW,
             Flag("api.admin_token_file", ("--admin-token-file",)), Flag("api.read_token_file", ("--read-token-file",)),
             Flag("api.notify", ("--notify/--no-notify",)), *MQTT_CLIENT, Flag("mqtt.username"), Flag("mqtt.password"))
SIMULATE_FLAGS = (*WRITER, *MQTT_CLIENT, bare("fleet.unsigned_shipments"), *FLEET_FLAGS,
                  bare("fleet.count"), Flag("fleet.register_devices", ("--register/--no-register",)),
                  Flag("fleet.password_file", ("--password-file",)))


@configured("run", RUN_FLAGS, announce=True)
def run(cfg: Settings) -> None:
    """Everything in one process on embedded defaults: broker, ingestor, sealer, API, simulator."""
    from packproof.app.runner import RunOptions  # not at start-up: every stage
    from packproof.app.runner import run as run_all  # not at start-up: every stage
    from packproof.app.services import anchoring_options, witnessing_options  # not at start-up: every stage

    f = cfg.fleet
    opts = RunOptions(data_dir=cfg.data_dir, store_url=cfg.store_url, intake_key_file=cfg.intake_key_file,
                      mqtt_port=cfg.run.mqtt_port,
                      api_port=cfg.api.port, duration=f.duration, shipments=f.shipments, packs=f.packs,
                      scenario=f.scenario, rate=f.rate, seed=f.seed, unsigned_shipments=f.unsigned_shipments,
                      step_s=f.step_s, verify_signatures=cfg.ingest.verify_signatures, forward=_forward(cfg),
                      console=out, witnessing=witnessing_options(cfg), anchoring=anchoring_options(cfg))
    result = asyncio.run(run_all(opts))
    out.print("done: " + ", ".join(f"{k} {v:,}" for k, v in result.items()), highlight=False)


def _forward(cfg: Settings) -> Any:
    from packproof.simulators.publisher import ForwardOptions  # not at start-up: simulator

    f = cfg.fleet
    return ForwardOptions(f.buffer_max, f.backlog_rate, f.resend_after, f.drain_timeout, f.outage_every,
                          f.outage_for, f.outage_devices, f.outage_random)


@configured("broker", BROKER_FLAGS, announce=True)
def broker(cfg: Settings) -> None:
    """The embedded MQTT broker (amqtt) alone, until Ctrl-C."""
    from packproof.broker.embedded import EmbeddedBroker  # not at start-up: amqtt

    b = cfg.broker

    async def serve() -> None:
        if (b.certfile is None) != (b.keyfile is None):
            fail(Exit.BAD_INPUT, "TLS needs both --certfile and --keyfile")
        async with EmbeddedBroker(b.host, b.port, flag="--port", password_file=b.password_file,
                                  services=tuple(b.services), readers=tuple(b.custody_readers),
                                  tls=(b.certfile, b.keyfile) if b.certfile and b.keyfile else None):
            out.print(f"MQTT broker listening on {b.host}:{b.port} (Ctrl-C stops)")
            await _until_signal()

    asyncio.run(serve())


async def _until_signal() -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()


@configured("ingest", INGEST_FLAGS, announce=True)
def ingest(cfg: Settings) -> None:
    """The ingestor (and sealer): MQTT in, store and ledger out, until Ctrl-C."""
    from packproof.app.services import IngestOptions, IngestService  # not at start-up: every stage

    m = cfg.mqtt

    async def serve() -> None:
        service = IngestService(IngestOptions.from_settings(cfg))
        await service.start()
        group = f" as a member of share group {m.share_group}" if m.share_group else ""
        out.print(f"ingesting from {m.host}:{m.port}{group} into {service.store_label} (Ctrl-C stops cleanly)")
        ingest_stop, seal_stop = asyncio.Event(), asyncio.Event()
        task = asyncio.create_task(service.run(ingest_stop, seal_stop))
        await _until_signal()
        ingest_stop.set()
        await task

    asyncio.run(serve())


@configured("seal", (*WRITER, SEAL_INTERVAL, Flag("seal.key_file"), *WITNESS_FLAGS, *ANCHOR_FLAGS), announce=True)
def seal(cfg: Settings) -> None:
    """The sealer alone, beside `packproof ingest --no-seal`, until Ctrl-C.

    One sealer per ledger: a second one waits and takes over when the first stops or dies.
    """
    from packproof.app.services import anchoring_options, seal_until, witnessing_options  # not at start-up

    interval = cfg.seal.interval
    witnessing = witnessing_options(cfg)
    anchoring = anchoring_options(cfg)

    async def serve() -> None:
        stop = asyncio.Event()
        task = asyncio.create_task(seal_until(
            data_dir_of(cfg), stop, interval,
            on_start=lambda: out.print(f"sealing {cfg.data_dir} every {interval:g} s (Ctrl-C stops cleanly)"),
            witnessing=witnessing, anchoring=anchoring))
        signalled = asyncio.create_task(_until_signal())
        await asyncio.wait([task, signalled], return_when=asyncio.FIRST_COMPLETED)  # a failed sealer ends too
        stop.set()
        signalled.cancel()
        sealer = await task
        if sealer is None:
            out.print("stopped while another sealer held the lock: sealed nothing")
            return
        records = sealer.sealed_leaves - sealer.sealed_readings  # device registrations and key changes
        out.print(f"sealed {sealer.sealed_readings:,} readings"
                  + (f" and {records:,} registry records" if records else "")
                  + f" in {sealer.sealed_blocks:,} block{'' if sealer.sealed_blocks == 1 else 's'}")
        if sealer.halted:
            fail(Exit.INVALID, f"sealing stopped: {sealer.halted}")

    asyncio.run(serve())


def passwd(
    password_file: Annotated[Path, typer.Argument(help="The broker's password file (created if absent).")],
    username: Annotated[str, typer.Argument(help="MQTT username: a device id, or a service account.")],
    password: Annotated[str | None, typer.Option(envvar="PACKPROOF_MQTT_PASSWORD",
                                                 help="The password; omitted: a random one is printed once.")] = None,
    delete: Annotated[bool, typer.Option("--delete", help="Remove the user instead.")] = False,
) -> None:
    """Add, change or remove an MQTT login (hashes only, Mosquitto's format: works with both brokers)."""
    from packproof.broker.auth import PasswordFile  # not at start-up: password hashing

    pf = PasswordFile(password_file)
    if delete:
        if not pf.remove(username):
            fail(Exit.BAD_INPUT, f"{username} is not in {password_file}")
        out.print(f"removed {username} from {password_file}")
        return
    made = password is None
    pf.set(username, password or (password := secrets.token_urlsafe(18)))
    out.print(f"set the password of {username} in {password_file}" + (f": {password}" if made else ""),
              highlight=False)


def intake_key(
    key_file: Annotated[Path, typer.Argument(help="The file to make: what every writer's --intake-key-file "
                                                  "(PACKPROOF_INTAKE_KEY_FILE) names.")],
    group: Annotated[str | None, typer.Option(help="Share it with this group (name or gid): mode 0640, for "
                                                   "services of another uid in the group; without it 0600, "
                                                   "its owner only.")] = None,
) -> None:
    """Make the intake key that writers with their own data directories share (docker compose).

    Run once before they start; a key already there is kept, so running it again is harmless.
    """
    from packproof.intake import create_intake_key, read_intake_key  # not at start-up: writers only

    gid = None if group is None else _group_id(group)
    try:
        key = create_intake_key(key_file, gid)
    except FileExistsError:
        out.print(f"intake key {read_intake_key(key_file).key_id} already in {key_file}: kept", highlight=False)
        return
    except OSError as exc:
        member = f" (the user making it must belong to group {group})" if exc.errno == errno.EPERM else ""
        fail(Exit.BAD_INPUT, f"cannot make intake key {key_file}: {exc.strerror or exc}{member}")
    mode = f"0640, group {group}" if group else "0600"
    out.print(f"intake key {key.key_id} made in {key_file} ({mode}): give every writer of the store this file "
              "(--intake-key-file, PACKPROOF_INTAKE_KEY_FILE)", highlight=False)


def _group_id(group: str) -> int:
    if group.isdigit():
        return int(group)
    try:
        return grp.getgrnam(group).gr_gid
    except KeyError:
        fail(Exit.BAD_INPUT, f"--group {group}: no such group")


@configured("api", API_FLAGS, announce=True)
def api(cfg: Settings) -> None:
    """The REST API over a data directory (OpenAPI at /docs)."""
    from packproof.api.main import check_startup  # not at start-up: FastAPI
    from packproof.api.notify import MqttTarget  # not at start-up: paho
    from packproof.app.services import api_server, handover_window_of, plausibility_of  # not at start-up: every stage

    a = cfg.api
    m = cfg.mqtt
    notify = MqttTarget(m.host, m.port, m.username, m.password.get_secret_value() if m.password else None,
                        m.ca) if a.notify else None
    dirs = data_dir_of(cfg)
    server = api_server(dirs, a.host, a.port, a.stale_after, a.admin_token_file, a.read_token_file,
                        cfg.ingest.profiles, notify, handover_window_s=handover_window_of(cfg, dirs),
                        plausibility=plausibility_of(cfg))
    asyncio.run(check_startup(data_dir_of(cfg)))
    out.print(f"API at http://{a.host}:{a.port} (docs at /docs)")
    server.run()


@configured("simulate", SIMULATE_FLAGS, announce=True)
def simulate(cfg: Settings, credentials_only: Annotated[bool, typer.Option(
        "--credentials-only", help="Only give the fleet's devices their MQTT logins in --password-file, then exit: "
                                   "for a broker that reads its password file at start (Mosquitto).")] = False) -> None:
    """A simulated fleet publishing signed readings over MQTT (QoS 1), store-and-forward.

    Every reading is kept in DATA_DIR/sim-buffer.db until the ingestor acknowledges it end to end;
    what a link outage, a broker restart or a crash kept from arriving is sent again, oldest first.
    """
    from packproof.app.credentials import provision_credentials  # not at start-up: simulator
    from packproof.simulators.buffer import SimBuffer  # not at start-up: simulator
    from packproof.simulators.fleet import build_fleet, register_fleet  # not at start-up: simulator
    from packproof.simulators.publisher import FleetPublisher, PublishStats, leftover_note  # not at start-up: simulator

    f, m = cfg.fleet, cfg.mqtt
    fwd = _forward(cfg)
    fleet = build_fleet(shipments=f.shipments, packs=f.packs, scenario=f.scenario, seed=f.seed,
                        unsigned_shipments=f.unsigned_shipments, step_s=f.step_s)
    dirs = data_dir_of(cfg)
    if credentials_only:
        if f.password_file is None:
            fail(Exit.BAD_INPUT, "--credentials-only needs --password-file (PACKPROOF_FLEET_PASSWORD_FILE)")
        made = provision_credentials(fleet, f.password_file, dirs.root / "sim-credentials.json")
        out.print(f"{len(made)} device logins in {f.password_file} (passwords in {dirs.root / 'sim-credentials.json'})",
                  highlight=False)
        return
    if f.register_devices:
        async def reg() -> None:
            store = await dirs.open_writer()
            try:
                await register_fleet(store, fleet, seed=f.seed, unsigned_shipments=f.unsigned_shipments)
            finally:
                await store.close()
        asyncio.run(reg())
    credentials = provision_credentials(fleet, f.password_file, dirs.root / "sim-credentials.json") \
        if f.password_file else None
    with SimBuffer(dirs.sim_buffer, max_per_device=fwd.buffer_max) as buffer:
        buffer.migrate_progress_file(dirs.sim_progress_legacy)
        publisher = FleetPublisher(fleet, buffer, host=m.host, port=m.port, rate=f.rate, credentials=credentials,
                                   tls_ca=m.ca, backlog_rate=fwd.backlog_rate, resend_after=fwd.resend_after,
                                   outages=fwd.schedule(fleet, f.seed))
        if publisher.stats.buffered:
            out.print(f"{publisher.stats.buffered:,} readings from an earlier run wait in {dirs.sim_buffer}: "
                      "sent first", highlight=False)
        publisher.connect()
        stop, abort = threading.Event(), threading.Event()

        def on_signal(*_: object) -> None:
            (abort if stop.is_set() else stop).set()  # a second Ctrl-C stops the draining

        signal.signal(signal.SIGINT, on_signal)
        signal.signal(signal.SIGTERM, on_signal)
        out.print(f"simulating {f.shipments} shipments x {f.packs} packs ({f.scenario}) to {m.host}:{m.port}, "
                  f"{f.rate:g} reading/s per pack, {fwd.describe()}; Ctrl-C stops", highlight=False)
        try:
            with out.status("starting") as status:
                def tick(s: PublishStats) -> None:
                    full = DISK.summary()  # the buffer's disk: the devices keep measuring, in memory
                    status.update(s.summary() + (f" | {full}" if full else ""))

                def draining(s: PublishStats) -> None:
                    status.update(f"draining: {s.buffered:,} readings not yet acknowledged "
                                  "(Ctrl-C again leaves them in the buffer)")

                stats = publisher.run(stop=stop, duration=f.duration, count=f.count, on_tick=tick)
                if fwd.drain_timeout > 0 and stats.buffered:
                    publisher.drain(timeout=fwd.drain_timeout, abort=abort, on_tick=draining)
        finally:
            publisher.close()
    out.print(stats.summary(), highlight=False)
    out.print(leftover_note(stats, dirs.sim_buffer), highlight=False)


def scenarios() -> None:
    """List the simulator's named scenarios."""
    from packproof.simulators.scenarios import MIXED_FLEET, SCENARIOS  # not at start-up: simulator

    for name, sc in sorted(SCENARIOS.items()):
        doc = (getattr(sc, "description", None) or "").strip()
        out.print(f"{name:20} {doc}", highlight=False)
    out.print(f"mixed fleet: {', '.join(MIXED_FLEET)}", highlight=False)
