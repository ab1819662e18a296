"""The `packproof` command line (typer).

One place catches packproof's root error, prints the diagnosis and exits with a code
that tells scripts what happened (sigstore's CLI does the same):

    0  everything checked holds
    1  a proof, signature or the ledger does not hold
    2  bad input: a flag, a file, an unknown id
    3  cannot reach a service (the API, the broker)
    4  the store failed (a full disk included: "disk full")
    5  internal error: an unexpected exception (a bug), reported in one line

`--verbose` shows the traceback as well.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import json
import logging
import sqlite3
import sys
import threading
from enum import IntEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, NoReturn

import typer
from rich.console import Console

from packproof.app.config import Settings
from packproof.app.options import COMMON, FLEET_FLAGS, MQTT_CLIENT, WRITER, Flag, bare, configured, show_command
from packproof.diskfull import DISK, is_disk_full
from packproof.errors import (
    BrokerError,
    LedgerIntegrityError,
    PackproofError,
    ProofError,
    StoreError,
)
from packproof.health import MAX_AGE

if TYPE_CHECKING:  # imported where used: `packproof --help` stays quick
    from packproof.anchor.ledger import Block
    from packproof.anchor.proof import LedgerView, ProofBundle


class Exit(IntEnum):
    OK = 0
    INVALID = 1
    BAD_INPUT = 2
    UNREACHABLE = 3
    STORE = 4
    INTERNAL = 5


app = typer.Typer(no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False,
                  help="Provable transport condition of lithium-ion battery packs.")
ledger_app = typer.Typer(no_args_is_help=True, help="Inspect and check the sealed ledger.")
app.add_typer(ledger_app, name="ledger")
devices_app = typer.Typer(no_args_is_help=True, help="Device identities: provision, register, list, rotate, revoke.")
app.add_typer(devices_app, name="devices")
health_app = typer.Typer(no_args_is_help=True, help="Healthchecks: exit 0 only while the service itself is at work.")
app.add_typer(health_app, name="health")
shipments_app = typer.Typer(no_args_is_help=True, help="Shipments: the UN 38.3 profile their packs are judged by.")
app.add_typer(shipments_app, name="shipments")
out = Console(soft_wrap=True)
err = Console(stderr=True, soft_wrap=True)
_verbose = False

# Every setting a service reads is a `Flag` over packproof.app.config: flag > PACKPROOF_* env > --config file > default.
RUN_FLAGS = (*WRITER, Flag("run.mqtt_port", ("--mqtt-port",)), Flag("api.port", ("--api-port",)),
             Flag("ingest.verify_signatures", ("--verify-signatures/--no-verify-signatures",)),
             bare("fleet.unsigned_shipments"), *FLEET_FLAGS)
BROKER_FLAGS = (Flag("broker.host", ("--host",)), Flag("broker.port", ("--port",)),
                Flag("broker.password_file", ("--password-file",)), Flag("broker.services", ("--service",)),
                Flag("broker.certfile", ("--certfile",)), Flag("broker.keyfile", ("--keyfile",)))
SEAL_INTERVAL = Flag("seal.interval", ("--seal-interval",))
INGEST_FLAGS = (*WRITER, *MQTT_CLIENT, Flag("mqtt.username"), Flag("mqtt.password"),
                Flag("mqtt.client_id", ("--client-id",)), Flag("mqtt.share_group", ("--share-group",)),
                Flag("mqtt.protocol"), Flag("mqtt.session_expiry", ("--session-expiry",)),
                Flag("ingest.seal", ("--seal/--no-seal",)), SEAL_INTERVAL,
                Flag("ingest.verify_signatures", ("--verify-signatures/--no-verify-signatures",)),
                Flag("ingest.verify_workers", ("--verify-workers",)), Flag("ingest.profiles", ("--profiles",)),
                Flag("ingest.max_clock_ahead", ("--max-clock-ahead",)), Flag("ingest.earliest_ts", ("--earliest-ts",)),
                Flag("ingest.max_seq_jump", ("--max-seq-jump",)))
STALE_AFTER = Flag("api.stale_after", ("--stale-after",))
API_FLAGS = (*WRITER, Flag("api.host", ("--host",)), Flag("api.port", ("--port", "--api-port")), STALE_AFTER,
             Flag("api.admin_token_file", ("--admin-token-file",)), Flag("api.read_token_file", ("--read-token-file",)))
SIMULATE_FLAGS = (*WRITER, *MQTT_CLIENT, bare("fleet.unsigned_shipments"), *FLEET_FLAGS,
                  bare("fleet.count"), Flag("fleet.register_devices", ("--register/--no-register",)),
                  Flag("fleet.password_file", ("--password-file",)))

@app.callback()
def _main(verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Debug logs and tracebacks.")] = False) -> None:
    global _verbose
    _verbose = verbose
    logging.basicConfig(level=logging.DEBUG if verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if not verbose:
        for noisy in ("amqtt", "transitions", "uvicorn", "httpx", "aiosqlite"):
            logging.getLogger(noisy).setLevel(logging.WARNING)


def fail(code: Exit, message: str) -> NoReturn:
    err.print(f"[bold red]error:[/] {message}", highlight=False)
    raise typer.Exit(int(code))


def _code_for(exc: PackproofError) -> Exit:
    if isinstance(exc, ProofError | LedgerIntegrityError):
        return Exit.INVALID
    if isinstance(exc, BrokerError):
        return Exit.UNREACHABLE
    if isinstance(exc, StoreError):
        return Exit.STORE
    return Exit.BAD_INPUT


# ---- services -----------------------------------------------------------------------


@app.command()
@configured("run", RUN_FLAGS, announce=True)
def run(cfg: Settings) -> None:
    """Everything in one process on embedded defaults: broker, ingestor, sealer, API, simulator."""
    from packproof.app.runner import RunOptions
    from packproof.app.runner import run as run_all

    f = cfg.fleet
    opts = RunOptions(data_dir=cfg.data_dir, store_url=cfg.store_url, intake_key_file=cfg.intake_key_file,
                      mqtt_port=cfg.run.mqtt_port,
                      api_port=cfg.api.port, duration=f.duration, shipments=f.shipments, packs=f.packs,
                      scenario=f.scenario, rate=f.rate, seed=f.seed, unsigned_shipments=f.unsigned_shipments,
                      step_s=f.step_s, verify_signatures=cfg.ingest.verify_signatures, forward=_forward(cfg),
                      console=out)
    result = asyncio.run(run_all(opts))
    out.print("done: " + ", ".join(f"{k} {v:,}" for k, v in result.items()), highlight=False)


def _forward(cfg: Settings) -> Any:
    from packproof.simulators.publisher import ForwardOptions

    f = cfg.fleet
    return ForwardOptions(f.buffer_max, f.backlog_rate, f.resend_after, f.drain_timeout, f.outage_every,
                          f.outage_for, f.outage_devices, f.outage_random)


def _secret(value: Any) -> str | None:
    return None if value is None else str(value.get_secret_value())


@app.command()
@configured("broker", BROKER_FLAGS, announce=True)
def broker(cfg: Settings) -> None:
    """The embedded MQTT broker (amqtt) alone, until Ctrl-C."""
    from packproof.broker.embedded import EmbeddedBroker

    b = cfg.broker

    async def serve() -> None:
        if (b.certfile is None) != (b.keyfile is None):
            fail(Exit.BAD_INPUT, "TLS needs both --certfile and --keyfile")
        async with EmbeddedBroker(b.host, b.port, flag="--port", password_file=b.password_file,
                                  services=tuple(b.services),
                                  tls=(b.certfile, b.keyfile) if b.certfile and b.keyfile else None):
            out.print(f"MQTT broker listening on {b.host}:{b.port} (Ctrl-C stops)")
            await _until_signal()

    asyncio.run(serve())


async def _until_signal() -> None:
    import signal

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()


@app.command()
@configured("ingest", INGEST_FLAGS, announce=True)
def ingest(cfg: Settings) -> None:
    """The ingestor (and sealer): MQTT in, store and ledger out, until Ctrl-C."""
    from packproof.app.services import IngestOptions, IngestService
    from packproof.edge.decode import Plausibility

    m, i = cfg.mqtt, cfg.ingest

    async def serve() -> None:
        service = IngestService(IngestOptions(cfg.data_dir, m.host, m.port, cfg.ingest.verify_signatures,
                                              cfg.ingest.seal, cfg.seal.interval, profiles_file=cfg.ingest.profiles,
                                              client_id=m.client_id, mqtt_username=m.username,
                                              mqtt_password=_secret(m.password), mqtt_tls_ca=m.ca,
                                              share_group=m.share_group, mqtt_protocol=m.protocol,
                                              session_expiry=m.session_expiry, store_url=cfg.store_url,
                                              intake_key_file=cfg.intake_key_file,
                                              verify_workers=cfg.ingest.verify_workers,
                                              limits=Plausibility(i.max_clock_ahead, i.earliest_ts, i.max_seq_jump)))
        await service.start()
        group = f" as a member of share group {m.share_group}" if m.share_group else ""
        out.print(f"ingesting from {m.host}:{m.port}{group} into {service.store_label} (Ctrl-C stops cleanly)")
        ingest_stop, seal_stop = asyncio.Event(), asyncio.Event()
        task = asyncio.create_task(service.run(ingest_stop, seal_stop))
        await _until_signal()
        ingest_stop.set()
        await task

    asyncio.run(serve())


@app.command()
@configured("seal", (*WRITER, SEAL_INTERVAL, Flag("seal.key_file")), announce=True)
def seal(cfg: Settings) -> None:
    """The sealer alone, beside `packproof ingest --no-seal`, until Ctrl-C.

    One sealer per ledger: a second one waits and takes over when the first stops or dies.
    """
    from packproof.app.services import seal_until

    interval = cfg.seal.interval

    async def serve() -> None:
        stop = asyncio.Event()
        task = asyncio.create_task(seal_until(
            _dirs(cfg), stop, interval,
            on_start=lambda: out.print(f"sealing {cfg.data_dir} every {interval:g} s (Ctrl-C stops cleanly)")))
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


def _dirs(cfg: Settings) -> Any:
    """The data directory with the store the settings name (`--store`, PACKPROOF_STORE, the file)."""
    from packproof.paths import DataDir

    return DataDir(cfg.data_dir, store_url=cfg.store_url, key_file=cfg.seal.key_file,
                   intake_key_file=cfg.intake_key_file)


@app.command()
def passwd(
    password_file: Annotated[Path, typer.Argument(help="The broker's password file (created if absent).")],
    username: Annotated[str, typer.Argument(help="MQTT username: a device id, or a service account.")],
    password: Annotated[str | None, typer.Option(envvar="PACKPROOF_MQTT_PASSWORD",
                                                 help="The password; omitted: a random one is printed once.")] = None,
    delete: Annotated[bool, typer.Option("--delete", help="Remove the user instead.")] = False,
) -> None:
    """Add, change or remove an MQTT login (hashes only, Mosquitto's format: works with both brokers)."""
    import secrets

    from packproof.broker.auth import PasswordFile

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


@app.command("intake-key")
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
    from packproof.intake import create_intake_key, read_intake_key

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
    import grp

    if group.isdigit():
        return int(group)
    try:
        return grp.getgrnam(group).gr_gid
    except KeyError:
        fail(Exit.BAD_INPUT, f"--group {group}: no such group")


@app.command()
@configured("api", API_FLAGS, announce=True)
def api(cfg: Settings) -> None:
    """The REST API over a data directory (OpenAPI at /docs)."""
    from packproof.api.main import check_startup
    from packproof.app.services import api_server

    a = cfg.api
    server = api_server(_dirs(cfg), a.host, a.port, a.stale_after, a.admin_token_file, a.read_token_file,
                        cfg.ingest.profiles)
    asyncio.run(check_startup(_dirs(cfg)))
    out.print(f"API at http://{a.host}:{a.port} (docs at /docs)")
    server.run()


@app.command()
@configured("simulate", SIMULATE_FLAGS, announce=True)
def simulate(cfg: Settings, credentials_only: Annotated[bool, typer.Option(
        "--credentials-only", help="Only give the fleet's devices their MQTT logins in --password-file, then exit: "
                                   "for a broker that reads its password file at start (Mosquitto).")] = False) -> None:
    """A simulated fleet publishing signed readings over MQTT (QoS 1), store-and-forward.

    Every reading is kept in DATA_DIR/sim-buffer.db until the ingestor acknowledges it end to end;
    what a link outage, a broker restart or a crash kept from arriving is sent again, oldest first.
    """
    import signal

    from packproof.app.credentials import provision_credentials
    from packproof.simulators.buffer import SimBuffer
    from packproof.simulators.fleet import build_fleet, register_fleet
    from packproof.simulators.publisher import FleetPublisher, PublishStats, leftover_note

    f, m = cfg.fleet, cfg.mqtt
    fwd = _forward(cfg)
    fleet = build_fleet(shipments=f.shipments, packs=f.packs, scenario=f.scenario, seed=f.seed,
                        unsigned_shipments=f.unsigned_shipments, step_s=f.step_s)
    dirs = _dirs(cfg)
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


@app.command()
def scenarios() -> None:
    """List the simulator's named scenarios."""
    from packproof.simulators.scenarios import MIXED_FLEET, SCENARIOS

    for name, sc in sorted(SCENARIOS.items()):
        doc = (getattr(sc, "description", None) or "").strip()
        out.print(f"{name:20} {doc}", highlight=False)
    out.print(f"mixed fleet: {', '.join(MIXED_FLEET)}", highlight=False)


# ---- checks -------------------------------------------------------------------------


def _http_json(client: Any, url: str) -> Any:
    """GET `url` as JSON. Unreachable, an error status or an answer that is not JSON is exit 3
    (no packproof API answered); 404/422 with the API's own `detail` is bad input (exit 2)."""
    import httpx

    from packproof.anchor.proof import strict_json

    try:
        r = client.get(url)
    except httpx.HTTPError as exc:
        fail(Exit.UNREACHABLE, f"cannot reach the API at {url}: {exc}")
    try:
        doc = strict_json(r.content)
    except ValueError as exc:
        fail(Exit.UNREACHABLE, f"{url} answered {r.status_code} with something that is not JSON ({exc}): "
                               f"{r.text[:80]!r}")
    detail = doc.get("detail") if isinstance(doc, dict) else None
    if r.status_code in (404, 422) and isinstance(detail, str):
        fail(Exit.BAD_INPUT, f"{url}: {detail}")
    if r.status_code != 200:
        fail(Exit.UNREACHABLE, f"{url} answered {r.status_code}: {r.text[:200]}")
    return doc


def _api_chain(client: Any, base: str, start: int) -> list[Block]:
    """The ledger's blocks from `start` to the head, page by page, from GET /ledger/blocks."""
    from packproof.anchor.proof import typed_block

    chain: list[Block] = []
    at: int | None = start
    while at is not None:
        url = f"{base}/ledger/blocks?start={at}&limit=1000"
        page = _http_json(client, url)
        blocks, nxt = (page.get("blocks"), page.get("next_start")) if isinstance(page, dict) else (None, None)
        if not isinstance(blocks, list) or not (nxt is None or (type(nxt) is int and nxt > at)):
            fail(Exit.UNREACHABLE, f"{url} did not answer a page of blocks (a list `blocks` and a rising "
                                   "`next_start`)")
        chain += [typed_block(b, f"API block {at + i}") for i, b in enumerate(blocks)]
        at = nxt
    return chain


def _read_bundle(path: Path) -> bytes:
    """The bundle file's bytes, read no further than a bundle can be long."""
    from packproof.anchor.proof import MAX_BUNDLE_BYTES

    try:
        with path.open("rb") as f:
            return f.read(MAX_BUNDLE_BYTES + 1)
    except OSError as exc:
        fail(Exit.BAD_INPUT, f"cannot read bundle {path}: {exc.strerror or exc}")


def _read_ledger(path: Path) -> list[Block]:
    from packproof.anchor.ledger import LedgerFile
    from packproof.anchor.proof import typed_block

    if not path.is_file():
        fail(Exit.BAD_INPUT, f"no ledger file at {path}")
    try:
        return [typed_block(b.to_json(), f"{path} block {i}") for i, b in enumerate(LedgerFile(path).read())]
    except OSError as exc:
        fail(Exit.BAD_INPUT, f"cannot read ledger {path}: {exc.strerror or exc}")


def _ledger_view(heights: list[int], pinned: bytes | None, chain: list[Block] | None) -> LedgerView:
    """What the verifier knows besides the bundle: the trusted key at each of the bundle's block
    heights (a pinned genesis key followed through the rotations a chain from block 0 announces),
    and the chain from the lowest of those heights to the head."""
    from packproof.anchor.proof import LedgerView

    from_genesis = bool(chain) and chain is not None and chain[0].height == 0
    keys: dict[int, bytes] = {}
    if pinned is not None:
        keys = keys_in_force(chain, pinned, heights) if chain and from_genesis else dict.fromkeys(heights, pinned)
    if chain and from_genesis:
        chain = chain[heights[0]:]
    return LedgerView(keys, chain)


def _fetch_proof(base: str, reading_id: str, from_genesis: bool, save: Path | None,
                 ) -> tuple[str, ProofBundle, list[Block]]:
    """The reading id as its body spells it ("P01:007" is P01:7), its bundle from the API, and the
    chain from the bundle's lowest block (from block 0 when a pinned key must follow rotations)."""
    import httpx

    from packproof.anchor.proof import bundle_of
    from packproof.reading import parse_reading_id

    try:
        device_id, seq = parse_reading_id(reading_id)
    except ValueError as exc:
        fail(Exit.BAD_INPUT, str(exc))
    reading_id = f"{device_id}:{seq}"
    with httpx.Client(timeout=10) as client:
        raw = _http_json(client, f"{base}/readings/{reading_id}/proof")
        doc = bundle_of(raw)
        chain = _api_chain(client, base, 0 if from_genesis else min(doc.reading.height, doc.registry.height))
    if save:
        try:
            save.write_text(json.dumps(raw, indent=1))
        except OSError as exc:
            fail(Exit.BAD_INPUT, f"cannot write {save}: {exc.strerror or exc}")
    return reading_id, doc, chain


@app.command()
def verify(
    reading_id: Annotated[str | None, typer.Argument(help="device_id:seq, fetched from --api.")] = None,
    api_url: Annotated[str | None, typer.Option("--api", help="Base URL of the packproof API.")] = None,
    bundle: Annotated[Path | None, typer.Option(help="A saved proof bundle (JSON), checked offline.")] = None,
    ledger_key: Annotated[str | None, typer.Option(help="Trusted ledger public key (base64 or a file).")] = None,
    ledger: Annotated[Path | None, typer.Option(help="A ledger file to show the block is in the chain.")] = None,
    save: Annotated[Path | None, typer.Option(help="Also write the fetched bundle to this file.")] = None,
) -> None:
    """Check one reading's proof: the reading, the device's sealed registry record and signature,
    both Merkle paths, the block hashes and signatures, the chain.

    Every claim printed is derived from proven bytes: the reading id from the reading, the
    device's key and trust level from its sealed registry record.
    """
    from packproof.anchor.proof import parse_bundle, verify_bundle
    from packproof.crypto import read_public_key

    trusted = read_public_key(ledger_key) if ledger_key else None
    chain: list[Block] | None = None
    if bundle is not None and reading_id is None:
        doc = parse_bundle(_read_bundle(bundle))
    elif reading_id is not None and bundle is None:
        if api_url is None:
            fail(Exit.BAD_INPUT, "READING_ID needs --api URL (or use --bundle FILE)")
        reading_id, doc, chain = _fetch_proof(api_url.rstrip("/"), reading_id, trusted is not None, save)
    else:
        fail(Exit.BAD_INPUT, "give either READING_ID with --api URL, or --bundle FILE")
    if ledger is not None:
        chain = _read_ledger(ledger)
    heights = sorted({doc.reading.height, doc.registry.height})
    verdict = verify_bundle(doc, _ledger_view(heights, trusted, chain), asked_id=reading_id)
    out.print(f"reading {verdict.reading_id or '(not a valid reading)'} (device trust: {verdict.trust})",
              highlight=False)
    for c in verdict.checks:
        mark = "[green]ok  [/]" if c.ok else ("[yellow]skip[/]" if c.ok is None else "[red]FAIL[/]")
        out.print(f"  {mark} {c.name:24} {c.detail}", highlight=False)
    broken = [c.name for c in verdict.checks if c.ok is False]
    if broken:
        fail(Exit.INVALID, f"proof does not hold: {', '.join(broken)}")
    out.print("[green]proof holds[/]")


DATA_DIR = (Flag("data_dir"),)


@ledger_app.command("verify")
@configured("ledger verify", DATA_DIR)
def ledger_verify(
    cfg: Settings,
    ledger: Annotated[Path | None, typer.Option(help="Ledger file (default: DATA_DIR/ledger.jsonl).")] = None,
    ledger_key: Annotated[str | None, typer.Option(help="Trusted ledger key (default DATA_DIR/ledger.pub).")] = None,
    checkpoint: Annotated[Path | None, typer.Option(
        help="A checkpoint saved earlier (`ledger export`): pin its key and check its block is still there.")] = None,
) -> None:
    """Re-check the whole chain: heights, links, block hashes, signatures."""
    from packproof.anchor.checkpoint import check_against, checkpoint_key
    from packproof.anchor.ledger import LedgerFile, verify_chain
    from packproof.crypto import read_public_key

    dirs = _dirs(cfg)
    path = ledger or dirs.ledger
    if not path.exists():
        fail(Exit.BAD_INPUT, f"no ledger at {path}")
    cp = _read_json(checkpoint) if checkpoint else None
    key = checkpoint_key(cp) if cp else read_public_key(ledger_key or str(dirs.ledger_pub))
    blocks = list(LedgerFile(path).read())
    current = verify_chain(blocks, key)
    prev = blocks[-1] if blocks else None
    if current != key:
        out.print(f"key rotations followed: blocks are now signed by key {key_id_of(current)}", highlight=False)
    if cp:
        check_against(cp, blocks)
        out.print(f"checkpoint holds: block {cp['height']} is still {cp['hash']}", highlight=False)
    leaves = sum(b.header["leaf_count"] for b in blocks)
    out.print(f"[green]ledger holds[/]: {len(blocks):,} blocks, {leaves:,} leaves, head "
              f"{prev.hash.hex() if prev else '-'}", highlight=False)


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except OSError as exc:
        fail(Exit.BAD_INPUT, f"cannot read {path}: {exc}")
    except ValueError as exc:
        fail(Exit.BAD_INPUT, f"{path} is not JSON: {exc}")


@ledger_app.command("rotate-key")
@configured("ledger rotate-key", DATA_DIR)
def ledger_rotate_key(cfg: Settings) -> None:
    """Make a new ledger key; the next block, signed by the current key, names it, and later blocks use it."""
    import os

    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from packproof.crypto import public_key_bytes

    dirs = _dirs(cfg)
    if not dirs.ledger_key.exists():
        fail(Exit.BAD_INPUT, f"no ledger key at {dirs.ledger_key}: nothing to rotate")
    nxt = dirs.ledger_key.with_name(dirs.ledger_key.name + ".next")
    if nxt.exists():
        fail(Exit.BAD_INPUT, f"a rotation is already waiting ({nxt}); the sealer applies it with its next block")
    key = Ed25519PrivateKey.generate()
    fd = os.open(nxt, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                  serialization.NoEncryption()))
    out.print(f"new ledger key {key_id_of(public_key_bytes(key))} waits in {nxt}: the sealer's next block, signed "
              "by the current key, announces it; auditors keep trusting the genesis key in ledger.pub", highlight=False)


@ledger_app.command("export")
@configured("ledger export", DATA_DIR)
def ledger_export(
    cfg: Settings,
    out_file: Annotated[Path, typer.Option("--out", help="Where to write the signed checkpoint.")] = Path(
        "checkpoint.json"),
) -> None:
    """Write a signed checkpoint (head height, hash, ledger public key) for auditors to keep."""
    from packproof.anchor.checkpoint import make_checkpoint
    from packproof.anchor.ledger import LedgerFile
    from packproof.crypto import load_or_create_ledger_key

    dirs = _dirs(cfg)
    blocks = list(LedgerFile(dirs.ledger).read())
    if not blocks:
        fail(Exit.BAD_INPUT, f"no sealed block in {dirs.ledger} yet")
    if not dirs.ledger_key.exists():
        fail(Exit.BAD_INPUT, f"no ledger key at {dirs.ledger_key}")
    cp = make_checkpoint(blocks[-1], load_or_create_ledger_key(dirs.ledger_key))
    out_file.write_text(json.dumps(cp, indent=1) + "\n")
    out.print(f"checkpoint of block {cp['height']} ({cp['hash']}), key {cp['key_id']}, written to {out_file}",
              highlight=False)


@app.command()
@configured("audit", COMMON)
def audit(
    cfg: Settings,
    ledger_key: Annotated[str | None, typer.Option(help="Trusted ledger key (default DATA_DIR/ledger.pub).")] = None,
    signatures: Annotated[bool, typer.Option(help="Check every reading's device signature against the sealed "
                                                  "registry (the slow part; --no-signatures skips only that).")] = True,
    show: Annotated[int, typer.Option(help="List at most this many problems of each kind.", min=1)] = 20,
) -> None:
    """Recompute every leaf and block root from the store, check them against the ledger, then the chain."""
    from rich.markup import escape
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    from packproof.anchor.audit import audit as run_audit
    from packproof.anchor.ledger import LedgerFile
    from packproof.crypto import read_public_key
    from packproof.store import Store

    dirs = _dirs(cfg)
    key = read_public_key(ledger_key or str(dirs.ledger_pub))

    async def go():  # type: ignore[no-untyped-def]
        store = await Store.open(dirs.store, readonly=True)
        try:
            total = await store.max_id()
            with Progress(TextColumn("auditing"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                          console=err, transient=True) as bar:
                task = bar.add_task("readings", total=total)
                return await run_audit(store, LedgerFile(dirs.ledger), key, signatures=signatures,
                                       progress=lambda n: bar.advance(task, n))
        finally:
            await store.close()

    report = asyncio.run(go())
    out.print(f"audited {report.readings:,} sealed readings in {report.blocks:,} blocks"
              f" ({report.unsealed:,} stored rows not sealed yet), {report.quarantine_rows:,} quarantined payloads; "
              + ("device signatures checked" if report.signatures else
                 "device signatures NOT checked (--no-signatures)"),
              highlight=False)
    sections = [("ledger chain", report.chain), ("blocks", [f"block {h}: {m}" for h, m in report.blocks_bad]),
                ("readings", [f"reading {r}: {m}" for r, m in report.readings_bad]),
                ("readings no block covers (store ids)", [str(i) for i in report.uncovered]),
                ("readings two blocks cover (store ids)", [str(i) for i in report.covered_twice]),
                ("registry (table vs sealed records)", report.registry),
                ("quarantine (table vs sealed decisions)", report.quarantine)]
    for title, items in sections:
        if items:
            out.print(f"[red]{title}: {len(items):,} problem(s)[/]", highlight=False)
            for line in items[:show]:
                out.print(f"  {line}", highlight=False, markup=False)  # a problem quotes stored data: never markup
            if len(items) > show:
                out.print(f"  ... and {len(items) - show:,} more", highlight=False)
    if not report.ok:
        first = next(items[0] for _, items in sections if items)
        fail(Exit.INVALID, f"audit failed; first problem: {escape(first)}")
    out.print("[green]audit passed[/]: every leaf, root, link and block signature holds; every row's columns match "
              "its bytes; registry and quarantine match their sealed records"
              + ("; every device signature holds" if report.signatures else ""), highlight=False)


@app.command("condition")
@configured("condition", (*COMMON, STALE_AFTER))
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
    import time

    from rich.table import Table

    from packproof.api.condition import RECENT_DISPUTES, condition
    from packproof.store import Store

    data_dir, stale_after = cfg.data_dir, cfg.api.stale_after

    async def go():  # type: ignore[no-untyped-def]
        store = await Store.open(_dirs(cfg).store, readonly=True)
        try:
            row = await store.shipment(shipment_id)
            if row is None:
                fail(Exit.BAD_INPUT, f"shipment {shipment_id!r} is not in {data_dir}")
            return condition(row[0], row[1], await store.shipment_devices(row[0]),
                             await store.shipment_excursions(row[0]), time.time(), stale_after,
                             await store.shipment_disputes(row[0], RECENT_DISPUTES))
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
    for p in c.packs:
        for d in p.disputes:
            out.print(f"  disputed {d.reading_id or p.device_id}: stored version at {d.stored or '(unknown seq)'}, "
                      f"other version quarantined as row {d.quarantine_id} ({d.quarantined})", highlight=False)


def _epoch(rfc3339_text: str) -> float:
    from datetime import datetime

    return datetime.fromisoformat(rfc3339_text.replace("Z", "+00:00")).timestamp()


def _age(seconds: float) -> str:
    """How long ago, in the largest unit that keeps it a small number: "40 s ago", "3 h ago"."""
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= 2 * size:
            return f"{seconds / size:.0f} {unit} ago"
    return f"{max(seconds, 0):.0f} s ago"


def _store_call(cfg: Settings, work, *, write: bool = True):  # type: ignore[no-untyped-def]
    """Run `work(store)` on the configured store: as a writer (with the intake key: registry changes
    are sealed, so their rows must carry its MAC), or only to read (`write=False`: no key is made
    or needed, so a listing from another directory does not leave an intake.key behind)."""

    async def go():  # type: ignore[no-untyped-def]
        dirs = _dirs(cfg)
        from packproof.store import Store  # the store pulls in the database drivers: only commands that use it

        store = await dirs.open_writer() if write else await Store.open(dirs.store, readonly=True)
        try:
            return await work(store)
        finally:
            await store.close()

    return asyncio.run(go())


class _NewKey:
    """A fresh Ed25519 key pair whose private half reaches KEY_OUT/<device>.key (0600) only if the
    registry takes the public half: `with _NewKey(...) as public:` around the store call.

    The key is written (to a temporary name) before the registry names it, so a registered key is
    never one whose private half was lost; a refused registration or rotation removes it again,
    with the directory if it made it, so a failed command leaves nothing behind.
    """

    def __init__(self, device_id: str, key_out: Path) -> None:
        from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

        self.path = key_out / f"{device_id}.key"
        self._staged = key_out / f".{device_id}.key.new"
        self._made_dir = not key_out.exists()
        self._key = Ed25519PrivateKey.generate()

    def __enter__(self) -> bytes:
        import os

        from cryptography.hazmat.primitives import serialization

        from packproof.crypto import public_key_bytes

        pem = self._key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                      serialization.NoEncryption())
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self._staged, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(pem)
        return public_key_bytes(self._key)

    def __exit__(self, exc_type: object, *_: object) -> None:
        if exc_type is None:
            self._staged.replace(self.path)
            out.print(f"private key written to {self.path} (install it on the device, then delete it here)")
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
    from packproof.app.services import profiles_from
    from packproof.edge.thresholds import profile_problem

    if profile is not None and (problem := profile_problem(profile, profiles_from(cfg.ingest.profiles))):
        fail(Exit.BAD_INPUT, problem)


def _check_device_id(device_id: str) -> None:
    import re

    from packproof.reading import ID_PATTERN

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
    import secrets

    from packproof.broker.auth import PasswordFile

    _check_device_id(device_id)
    _check_profile(cfg, profile)
    with _NewKey(device_id, key_out) as public:
        _store_call(cfg, lambda st: st.register({shipment: profile}, [(device_id, shipment, public)]))
    out.print(f"registered {device_id} in shipment {shipment}, key {key_id_of(public)}", highlight=False)
    if password_file is not None:
        password = secrets.token_urlsafe(18)
        PasswordFile(password_file).set(device_id, password)
        out.print(f"MQTT login: user {device_id}, password {password} (shown once)", highlight=False)


def key_id_of(public: bytes) -> str:
    from packproof.crypto import key_id

    return key_id(public)


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
    from packproof.crypto import read_public_key

    _check_device_id(device_id)
    _check_profile(cfg, profile)
    if (public_key is None) == (not unsigned):
        fail(Exit.BAD_INPUT, "give either --public-key B64 or --unsigned")
    key = read_public_key(public_key) if public_key else None
    added = _store_call(cfg, lambda st: st.register({shipment: profile}, [(device_id, shipment, key)]))
    out.print(f"{'registered' if added else 'already registered:'} {device_id} in shipment {shipment}"
              + (f", key {key_id_of(key)}" if key else ", unsigned (trust begins at the ingestor)"), highlight=False)


@devices_app.command("list")
@configured("devices list", COMMON)
def devices_list(cfg: Settings,
                 shipment: Annotated[str | None, typer.Option(help="Only this shipment.")] = None) -> None:
    """Every registered device with its keys and state."""
    from rich.table import Table

    devices = _store_call(cfg, lambda st: st.devices(), write=False)
    table = Table("device", "shipment", "profile", "keys (from seq: key id)", "state")
    for d in devices:
        if shipment and d.shipment_id != shipment:
            continue
        keys = ", ".join(f"{start}: {key_id_of(k) if k else 'unsigned'}" for start, k in d.keys)
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
    from packproof.crypto import read_public_key

    def rotate(key: bytes) -> int:
        async def work(st):  # type: ignore[no-untyped-def]
            start = from_seq
            if start is None:
                # A device with no reading stored yet (just provisioned) has its key from seq 0: the new
                # one starts after both, as a key must start after the one it replaces.
                device = await st.device(device_id)
                current = device.keys[-1][0] if device is not None and device.keys else -1
                start = max(await st.last_seq(device_id), current) + 1
            await st.rotate_key(device_id, key, start)
            return start

        return int(_store_call(cfg, work))

    if public_key:
        key = read_public_key(public_key)
        start = rotate(key)
    else:
        with _NewKey(device_id, key_out) as key:
            start = rotate(key)
    out.print(f"{device_id}: key {key_id_of(key)} signs from seq {start} on", highlight=False)


@devices_app.command("revoke")
@configured("devices revoke", WRITER)
def devices_revoke(cfg: Settings, device_id: DeviceArg,
                   reason: Annotated[str, typer.Option(help="Why, for the record.")]) -> None:
    """Refuse the device's readings from now on (what was stored stays provable)."""
    _store_call(cfg, lambda st: st.revoke(device_id, reason))
    out.print(f"{device_id} revoked: its readings are quarantined from now on", highlight=False)


config_app = typer.Typer(no_args_is_help=True, help="Show the effective configuration of a command: each value "
                         "and where it came from (flag > PACKPROOF_* env > --config file > default).")
app.add_typer(config_app, name="config")
for _name in ("run", "broker", "ingest", "seal", "api", "simulate"):
    config_app.command(_name)(show_command(_name))


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
    previous = _store_call(cfg, lambda st: st.set_profile(shipment_id, profile, reason))
    out.print(f"shipment {shipment_id}: profile {previous} -> {profile} (sealed on the record)", highlight=False)


def keys_in_force(chain: list[Block], genesis_key: bytes, heights: list[int]) -> dict[int, bytes]:
    """The ledger key in force at each of `heights` (ascending), following the rotations announced
    in `chain` (blocks 0..) from the genesis key; a chain that does not hold up to there is exit 1."""
    from packproof.anchor.ledger import verify_chain

    keys, key, done = {}, genesis_key, 0
    try:
        for h in heights:
            key = verify_chain(chain[done:h], key, start_prev=chain[done - 1] if done else None)
            keys[h], done = key, h
    except LedgerIntegrityError as exc:
        fail(Exit.INVALID, f"the chain before this block does not hold: {exc}")
    return keys


MaxAgeOpt = Annotated[float, typer.Option("--max-age", min=1.0,
                                          help="Seconds since the service's last report after which it counts "
                                               "as dead (it reports every 5 s).")]


@health_app.command("ingest")
@configured("health ingest", (*COMMON, Flag("mqtt.client_id", ("--client-id",))))
def health_ingest(cfg: Settings, max_age: MaxAgeOpt = MAX_AGE) -> None:
    """Exit 0 while the ingestor with this client id runs, connected to its broker (its own
    status in the store, written every few seconds); non-zero when it is stopped, dead or cut off."""
    _health("ingest", cfg, max_age)


@health_app.command("seal")
@configured("health seal", COMMON)
def health_seal(cfg: Settings, max_age: MaxAgeOpt = MAX_AGE) -> None:
    """Exit 0 while a sealer holds the sealer lock and reports it is sealing; non-zero otherwise
    (a ledger.pub left by an earlier run proves nothing)."""
    _health("seal", cfg, max_age)


def _health(service: str, cfg: Settings, max_age: float) -> None:
    from packproof.app.healthcheck import check

    problem = asyncio.run(check(service, _dirs(cfg), cfg.mqtt.client_id, max_age))
    if problem:
        fail(Exit.UNREACHABLE, problem)
    out.print(f"{service}: ok")


def main() -> None:
    try:
        app()
    except PackproofError as exc:
        if _verbose:
            err.print_exception()
        err.print(f"[bold red]error:[/] {exc}", highlight=False)
        sys.exit(int(_code_for(exc)))
    except Exception as exc:  # noqa: BLE001 - the last resort: a bug must not read as a verdict (0 or 1)
        if _verbose:
            err.print_exception()
        if isinstance(exc, OSError | sqlite3.Error) and is_disk_full(exc):
            # A full disk where a running service retries is reported there; one met while a command
            # starts (creating a file, opening a database) ends it here, with a line, not a traceback.
            err.print(f"[bold red]error:[/] disk full: {exc}; free space where the data directory or the store "
                      "lives, then start again", highlight=False)
            sys.exit(int(Exit.STORE))
        what = " ".join(f"{type(exc).__name__}: {exc}".split())[:300]
        err.print(f"[bold red]internal error:[/] {what} (a bug in packproof; --verbose shows the traceback)",
                  highlight=False)
        sys.exit(int(Exit.INTERNAL))
