"""The `packproof` command line (typer).

One place catches packproof's root error, prints the diagnosis and exits with a code
that tells scripts what happened (sigstore's CLI does the same):

    0  everything checked holds
    1  a proof, signature or the ledger does not hold
    2  bad input: a flag, a file, an unknown id
    3  cannot reach a service (the API, the broker)
    4  the store failed

`--verbose` shows the traceback as well.
"""

from __future__ import annotations

import asyncio
import json
import logging
import sys
import threading
from enum import IntEnum, StrEnum
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer
from rich.console import Console

from packproof.errors import (
    BrokerError,
    LedgerIntegrityError,
    PackproofError,
    ProofError,
    StoreError,
)


class Exit(IntEnum):
    OK = 0
    INVALID = 1
    BAD_INPUT = 2
    UNREACHABLE = 3
    STORE = 4


app = typer.Typer(no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False,
                  help="Provable transport condition of lithium-ion battery packs.")
ledger_app = typer.Typer(no_args_is_help=True, help="Inspect and check the sealed ledger.")
app.add_typer(ledger_app, name="ledger")
devices_app = typer.Typer(no_args_is_help=True, help="Device identities: provision, register, list, rotate, revoke.")
app.add_typer(devices_app, name="devices")
out = Console(soft_wrap=True)
err = Console(stderr=True, soft_wrap=True)
_verbose = False

DataDirOpt = Annotated[Path, typer.Option("--data-dir", help="Where the store, ledger and keys live.")]
MqttHost = Annotated[str, typer.Option("--mqtt-host", help="MQTT broker host.")]
MqttPort = Annotated[int, typer.Option("--mqtt-port", help="MQTT broker port.", min=1, max=65535)]
# The simulated fleet's options, shared by `run` and `simulate`.
Shipments = Annotated[int, typer.Option(help="Shipments in the simulated fleet.", min=1)]
Packs = Annotated[int, typer.Option(help="Packs (sensors) per shipment.", min=1)]
Scenario = Annotated[str, typer.Option(help="'mixed' (each excursion kind, plus nominal) or a scenario name.")]
Rate = Annotated[float, typer.Option(help="Readings per second per pack.", min=0.001)]
Seed = Annotated[int, typer.Option(help="Makes the fleet and its signals deterministic.")]
Unsigned = Annotated[int, typer.Option(help="Shipments whose trackers cannot sign.", min=0)]
StepS = Annotated[float, typer.Option(help="Simulated seconds of travel per reading.", min=0.001)]
# Store-and-forward at each simulated tracker (DATA_DIR/sim-buffer.db), and link outages.
BufferMax = Annotated[int, typer.Option(help="Readings each device buffers until acknowledged; when full the "
                                             "oldest is dropped (counted).", min=1)]
BacklogRate = Annotated[float, typer.Option(help="Messages per second per device at most when catching up.",
                                            min=0.001)]
ResendAfter = Annotated[float, typer.Option(help="Seconds before a reading the ingestor has not acknowledged "
                                                 "is sent again.", min=0.001)]
DrainTimeout = Annotated[float, typer.Option(help="At the end, seconds to wait until every reading is "
                                                  "acknowledged end to end (0: do not wait).", min=0)]
OutageEvery = Annotated[float | None, typer.Option(help="Cut device links every this many seconds (off by default).",
                                                   min=0.001)]
OutageFor = Annotated[float, typer.Option(help="Seconds each outage lasts.", min=0.001)]
OutageDevices = Annotated[float, typer.Option(help="Fraction of the devices that have outages (picked with "
                                                   "--seed).", min=0, max=1)]
OutageRandom = Annotated[bool, typer.Option("--outage-random", help="Outages start at random (exponential, mean "
                                                                    "--outage-every) instead of periodically.")]


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
def run(
    data_dir: DataDirOpt = Path("data"),
    mqtt_port: Annotated[int, typer.Option(help="Embedded broker port; 0 picks a free one.", min=0, max=65535)] = 0,
    api_port: Annotated[int, typer.Option(help="REST API port.", min=1, max=65535)] = 8000,
    duration: Annotated[float | None, typer.Option(help="Stop cleanly after this many seconds.", min=0.1)] = None,
    shipments: Shipments = 8,
    packs: Packs = 4,
    scenario: Scenario = "mixed",
    rate: Rate = 1.0,
    seed: Seed = 1,
    unsigned_shipments: Unsigned = 1,
    step_s: StepS = 60.0,
    verify_signatures: Annotated[bool, typer.Option(help="Check device signatures.")] = True,
    buffer_max: BufferMax = 100_000,
    backlog_rate: BacklogRate = 50.0,
    resend_after: ResendAfter = 5.0,
    drain_timeout: DrainTimeout = 30.0,
    outage_every: OutageEvery = None,
    outage_for: OutageFor = 10.0,
    outage_devices: OutageDevices = 0.25,
    outage_random: OutageRandom = False,
) -> None:
    """Everything in one process on embedded defaults: broker, ingestor, sealer, API, simulator."""
    from packproof.runner import RunOptions
    from packproof.runner import run as run_all
    from simulators.publisher import ForwardOptions

    forward = ForwardOptions(buffer_max, backlog_rate, resend_after, drain_timeout, outage_every, outage_for,
                             outage_devices, outage_random)
    opts = RunOptions(data_dir=data_dir, mqtt_port=mqtt_port, api_port=api_port, duration=duration,
                      shipments=shipments, packs=packs, scenario=scenario, rate=rate, seed=seed,
                      unsigned_shipments=min(unsigned_shipments, shipments - 1) if shipments > 1 else 0,
                      step_s=step_s, verify_signatures=verify_signatures, forward=forward, console=out)
    result = asyncio.run(run_all(opts))
    out.print("done: " + ", ".join(f"{k} {v:,}" for k, v in result.items()), highlight=False)


@app.command()
def broker(
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.", min=1, max=65535)] = 1883,
    password_file: Annotated[Path | None, typer.Option(
        help="Require logins from this file (`packproof passwd`, Mosquitto format); devices then use only "
             "their own topics.")] = None,
    service: Annotated[list[str] | None, typer.Option(
        help="A service account (the ingestor) that reads all telemetry; repeat for several.")] = None,
    certfile: Annotated[Path | None, typer.Option(help="TLS certificate (PEM): the listener speaks TLS only.")] = None,
    keyfile: Annotated[Path | None, typer.Option(help="TLS private key (PEM) for --certfile.")] = None,
) -> None:
    """The embedded MQTT broker (amqtt) alone, until Ctrl-C."""
    from broker.embedded import EmbeddedBroker

    async def serve() -> None:
        if (certfile is None) != (keyfile is None):
            fail(Exit.BAD_INPUT, "TLS needs both --certfile and --keyfile")
        async with EmbeddedBroker(host, port, flag="--port", password_file=password_file,
                                  services=tuple(service or ("packproof-ingestor",)),
                                  tls=(certfile, keyfile) if certfile and keyfile else None):
            out.print(f"MQTT broker listening on {host}:{port} (Ctrl-C stops)")
            await _until_signal()

    asyncio.run(serve())


async def _until_signal() -> None:
    import signal

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()


class MqttProtocol(StrEnum):
    """`ingest --mqtt-protocol`: 3.1.1 (the embedded broker's) or 5 (shared subscriptions, session expiry)."""

    v311 = "3.1.1"
    v5 = "5"


@app.command()
def ingest(
    data_dir: DataDirOpt = Path("data"),
    mqtt_host: MqttHost = "127.0.0.1",
    mqtt_port: MqttPort = 1883,
    seal: Annotated[bool, typer.Option(help="Also run the sealer in this process.")] = True,
    seal_interval: Annotated[float, typer.Option(help="Seconds between blocks at most.", min=0.05)] = 1.0,
    verify_signatures: Annotated[bool, typer.Option(help="Check device signatures.")] = True,
    profiles: Annotated[Path | None, typer.Option(help="JSON file of extra UN 38.3 profiles.")] = None,
    client_id: Annotated[str, typer.Option(help="MQTT client id (persistent session).")] = "packproof-ingestor",
    mqtt_username: Annotated[str | None, typer.Option(help="MQTT login, when the broker requires one.")] = None,
    mqtt_password: Annotated[str | None, typer.Option(envvar="PACKPROOF_MQTT_PASSWORD",
                                                      help="MQTT password (or PACKPROOF_MQTT_PASSWORD).")] = None,
    mqtt_ca: Annotated[str | None, typer.Option(help="Connect over TLS, trusting this CA certificate (PEM).")] = None,
    share_group: Annotated[str | None, typer.Option(
        envvar="PACKPROOF_SHARE_GROUP",
        help="Join this MQTT 5 shared subscription ($share/NAME/...), so several ingestors (each with its own "
             "--client-id) split the telemetry; needs an MQTT 5 broker such as Mosquitto.")] = None,
    mqtt_protocol: Annotated[MqttProtocol, typer.Option(
        help="MQTT version; 5 (always with --share-group) keeps a session that expires after --session-expiry.")
    ] = MqttProtocol.v311,
    session_expiry: Annotated[int, typer.Option(
        help="MQTT 5: seconds the broker keeps this ingestor's session while it is away; in a share group the "
             "broker routes it a share of the messages meanwhile.", min=0)] = 600,
) -> None:
    """The ingestor (and sealer): MQTT in, store and ledger out, until Ctrl-C."""
    from packproof.services import IngestOptions, IngestService

    async def serve() -> None:
        service = IngestService(IngestOptions(data_dir, mqtt_host, mqtt_port, verify_signatures, seal,
                                              seal_interval, profiles_file=profiles, client_id=client_id,
                                              mqtt_username=mqtt_username, mqtt_password=mqtt_password,
                                              mqtt_tls_ca=mqtt_ca, share_group=share_group,
                                              mqtt_protocol=mqtt_protocol.value, session_expiry=session_expiry))
        await service.start()
        group = f" as a member of share group {share_group}" if share_group else ""
        out.print(f"ingesting from {mqtt_host}:{mqtt_port}{group} into {data_dir} (Ctrl-C stops cleanly)")
        ingest_stop, seal_stop = asyncio.Event(), asyncio.Event()
        task = asyncio.create_task(service.run(ingest_stop, seal_stop))
        await _until_signal()
        ingest_stop.set()
        await task

    asyncio.run(serve())


@app.command()
def seal(
    data_dir: DataDirOpt = Path("data"),
    seal_interval: Annotated[float, typer.Option(help="Seconds between blocks at most.", min=0.05)] = 1.0,
) -> None:
    """The sealer alone, beside `packproof ingest --no-seal`, until Ctrl-C.

    One sealer per ledger: a second one waits and takes over when the first stops or dies.
    """
    from packproof.services import seal_until

    async def serve() -> None:
        stop = asyncio.Event()
        task = asyncio.create_task(seal_until(
            data_dir, stop, seal_interval,
            on_start=lambda: out.print(f"sealing {data_dir} every {seal_interval:g} s (Ctrl-C stops cleanly)")))
        signalled = asyncio.create_task(_until_signal())
        await asyncio.wait([task, signalled], return_when=asyncio.FIRST_COMPLETED)  # a failed sealer ends too
        stop.set()
        signalled.cancel()
        sealer = await task
        out.print(f"sealed {sealer.sealed_readings:,} readings in {sealer.sealed_blocks:,} blocks")

    asyncio.run(serve())


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

    from broker.auth import PasswordFile

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


@app.command()
def api(
    data_dir: DataDirOpt = Path("data"),
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", "--api-port", help="Port to listen on.", min=1, max=65535)] = 8000,
    stale_after: Annotated[float, typer.Option(help="Seconds of silence before a pack is stale.", min=1)] = 120.0,
    admin_token_file: Annotated[Path | None, typer.Option(
        help="File holding the bearer token that endpoints changing state require; without it they are off.")] = None,
    read_token_file: Annotated[Path | None, typer.Option(
        help="File holding a bearer token that reads require; without it reads are open.")] = None,
) -> None:
    """The REST API over a data directory (OpenAPI at /docs)."""
    from packproof.services import api_server

    server = api_server(data_dir, host, port, stale_after, admin_token_file, read_token_file)
    out.print(f"API at http://{host}:{port} (docs at /docs)")
    server.run()


@app.command()
def simulate(
    mqtt_host: MqttHost = "127.0.0.1",
    mqtt_port: MqttPort = 1883,
    data_dir: DataDirOpt = Path("data"),
    shipments: Shipments = 8,
    packs: Packs = 4,
    scenario: Scenario = "mixed",
    rate: Rate = 1.0,
    duration: Annotated[float | None, typer.Option(help="Stop after this many seconds.", min=0.1)] = None,
    count: Annotated[int | None, typer.Option(help="Stop after this many readings per pack.", min=1)] = None,
    seed: Seed = 1,
    unsigned_shipments: Unsigned = 0,
    step_s: StepS = 60.0,
    register: Annotated[bool, typer.Option(help="Register the fleet's devices and keys in --data-dir's store.")] = True,
    password_file: Annotated[Path | None, typer.Option(
        help="The broker's password file: give each device an MQTT login there (kept in "
             "DATA_DIR/sim-credentials.json) and connect with it.")] = None,
    mqtt_ca: Annotated[str | None, typer.Option(help="Connect over TLS, trusting this CA certificate (PEM).")] = None,
    buffer_max: BufferMax = 100_000,
    backlog_rate: BacklogRate = 50.0,
    resend_after: ResendAfter = 5.0,
    drain_timeout: DrainTimeout = 30.0,
    outage_every: OutageEvery = None,
    outage_for: OutageFor = 10.0,
    outage_devices: OutageDevices = 0.25,
    outage_random: OutageRandom = False,
) -> None:
    """A simulated fleet publishing signed readings over MQTT (QoS 1), store-and-forward.

    Every reading is kept in DATA_DIR/sim-buffer.db until the ingestor acknowledges it end to end;
    what a link outage, a broker restart or a crash kept from arriving is sent again, oldest first.
    """
    import signal

    from packproof.paths import DataDir
    from packproof.store import Store
    from simulators.buffer import SimBuffer
    from simulators.fleet import build_fleet, provision_credentials, shipments_of
    from simulators.publisher import FleetPublisher, ForwardOptions, PublishStats, leftover_note

    fwd = ForwardOptions(buffer_max, backlog_rate, resend_after, drain_timeout, outage_every, outage_for,
                         outage_devices, outage_random)
    fleet = build_fleet(shipments=shipments, packs=packs, scenario=scenario, seed=seed,
                        unsigned_shipments=unsigned_shipments, step_s=step_s)
    dirs = DataDir(data_dir)
    if register:
        async def reg() -> None:
            store = await Store.open(dirs.store)
            try:
                await store.register(shipments_of(fleet), [(d.device_id, d.shipment_id, d.public_key) for d in fleet])
            finally:
                await store.close()
        asyncio.run(reg())
    credentials = provision_credentials(fleet, password_file, dirs.root / "sim-credentials.json") \
        if password_file else None
    with SimBuffer(dirs.sim_buffer, max_per_device=fwd.buffer_max) as buffer:
        buffer.migrate_progress_file(dirs.sim_progress_legacy)
        publisher = FleetPublisher(fleet, buffer, host=mqtt_host, port=mqtt_port, rate=rate, credentials=credentials,
                                   tls_ca=mqtt_ca, backlog_rate=fwd.backlog_rate, resend_after=fwd.resend_after,
                                   outages=fwd.schedule(fleet, seed))
        if publisher.stats.buffered:
            out.print(f"{publisher.stats.buffered:,} readings from an earlier run wait in {dirs.sim_buffer}: "
                      "sent first", highlight=False)
        publisher.connect()
        stop, abort = threading.Event(), threading.Event()

        def on_signal(*_: object) -> None:
            (abort if stop.is_set() else stop).set()  # a second Ctrl-C stops the draining

        signal.signal(signal.SIGINT, on_signal)
        signal.signal(signal.SIGTERM, on_signal)
        out.print(f"simulating {shipments} shipments x {packs} packs ({scenario}) to {mqtt_host}:{mqtt_port}, "
                  f"{rate:g} reading/s per pack, {fwd.describe()}; Ctrl-C stops", highlight=False)
        try:
            with out.status("starting") as status:
                def tick(s: PublishStats) -> None:
                    status.update(s.summary())

                def draining(s: PublishStats) -> None:
                    status.update(f"draining: {s.buffered:,} readings not yet acknowledged "
                                  "(Ctrl-C again leaves them in the buffer)")

                stats = publisher.run(stop=stop, duration=duration, count=count, on_tick=tick)
                if fwd.drain_timeout > 0 and stats.buffered:
                    publisher.drain(timeout=fwd.drain_timeout, abort=abort, on_tick=draining)
        finally:
            publisher.close()
    out.print(stats.summary(), highlight=False)
    out.print(leftover_note(stats, dirs.sim_buffer), highlight=False)


@app.command()
def scenarios() -> None:
    """List the simulator's named scenarios."""
    from simulators.scenarios import MIXED_FLEET, SCENARIOS

    for name, sc in sorted(SCENARIOS.items()):
        doc = (getattr(sc, "description", None) or "").strip()
        out.print(f"{name:20} {doc}", highlight=False)
    out.print(f"mixed fleet: {', '.join(MIXED_FLEET)}", highlight=False)


# ---- checks -------------------------------------------------------------------------


def _http_get(client: Any, url: str) -> Any:
    import httpx

    try:
        r = client.get(url)
    except httpx.HTTPError as exc:
        fail(Exit.UNREACHABLE, f"cannot reach the API at {url}: {exc}")
    if r.status_code == 404 or r.status_code == 422:
        fail(Exit.BAD_INPUT, f"{url}: {r.json().get('detail', r.text)}")
    if r.status_code != 200:
        fail(Exit.UNREACHABLE, f"{url} answered {r.status_code}: {r.text[:200]}")
    return r.json()


@app.command()
def verify(
    reading_id: Annotated[str | None, typer.Argument(help="device_id:seq, fetched from --api.")] = None,
    api_url: Annotated[str | None, typer.Option("--api", help="Base URL of the packproof API.")] = None,
    bundle: Annotated[Path | None, typer.Option(help="A saved proof bundle (JSON), checked offline.")] = None,
    ledger_key: Annotated[str | None, typer.Option(help="Trusted ledger public key (base64 or a file).")] = None,
    ledger: Annotated[Path | None, typer.Option(help="A ledger file to show the block is in the chain.")] = None,
    save: Annotated[Path | None, typer.Option(help="Also write the fetched bundle to this file.")] = None,
) -> None:
    """Check one reading's proof: device signature, leaf, Merkle path, block hash and signature, chain."""
    import httpx

    from anchor.ledger import Block, LedgerFile
    from anchor.proof import parse_bundle, verify_bundle
    from packproof.crypto import read_public_key

    if (reading_id is None) == (bundle is None):
        fail(Exit.BAD_INPUT, "give either READING_ID with --api URL, or --bundle FILE")
    trusted = read_public_key(ledger_key) if ledger_key else None
    chain: list[Block] | None = None
    if bundle is not None:
        if not bundle.exists():
            fail(Exit.BAD_INPUT, f"bundle file {bundle} does not exist")
        doc = parse_bundle(bundle.read_bytes())
    else:
        if api_url is None:
            fail(Exit.BAD_INPUT, "READING_ID needs --api URL (or use --bundle FILE)")
        base = api_url.rstrip("/")
        with httpx.Client(timeout=10) as client:
            doc = parse_bundle(json.dumps(_http_get(client, f"{base}/readings/{reading_id}/proof")))
            height = doc["block"]["header"]["height"]
            chain = []
            start: int | None = 0 if trusted else height  # a pinned genesis key: follow rotations from block 0
            while start is not None:
                page = _http_get(client, f"{base}/ledger/blocks?start={start}&limit=1000")
                chain += [Block.from_json(b, f"API block {b['header']['height']}") for b in page["blocks"]]
                start = page["next_start"]
        if save:
            save.write_text(json.dumps(doc, indent=1))
    if ledger is not None:
        chain = list(LedgerFile(ledger).read())
    height = doc["block"]["header"]["height"]
    if chain is not None and trusted is not None and chain and chain[0].height == 0:
        # The key in force at this block: the pinned genesis key, then every rotation the chain announces.
        trusted = key_in_force(chain[:height], trusted)
        chain = chain[height:]
    elif chain is not None and chain and chain[0].height == 0:
        chain = chain[height:]
    checks = verify_bundle(doc, trusted, chain)
    out.print(f"reading {doc['reading_id']} (device trust: {doc['device']['trust']})", highlight=False)
    for c in checks:
        mark = "[green]ok  [/]" if c.ok else ("[yellow]skip[/]" if c.ok is None else "[red]FAIL[/]")
        out.print(f"  {mark} {c.name:17} {c.detail}", highlight=False)
    broken = [c.name for c in checks if c.ok is False]
    if broken:
        fail(Exit.INVALID, f"proof does not hold: {', '.join(broken)}")
    out.print("[green]proof holds[/]")


@ledger_app.command("verify")
def ledger_verify(
    data_dir: DataDirOpt = Path("data"),
    ledger: Annotated[Path | None, typer.Option(help="Ledger file (default: DATA_DIR/ledger.jsonl).")] = None,
    ledger_key: Annotated[str | None, typer.Option(help="Trusted ledger key (default DATA_DIR/ledger.pub).")] = None,
    checkpoint: Annotated[Path | None, typer.Option(
        help="A checkpoint saved earlier (`ledger export`): pin its key and check its block is still there.")] = None,
) -> None:
    """Re-check the whole chain: heights, links, block hashes, signatures."""
    from anchor.checkpoint import check_against, checkpoint_key
    from anchor.ledger import LedgerFile, verify_chain
    from packproof.crypto import read_public_key
    from packproof.paths import DataDir

    dirs = DataDir(data_dir)
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
def ledger_rotate_key(data_dir: DataDirOpt = Path("data")) -> None:
    """Make a new ledger key; the next block, signed by the current key, names it, and later blocks use it."""
    import os

    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from packproof.crypto import public_key_bytes
    from packproof.paths import DataDir

    dirs = DataDir(data_dir)
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
def ledger_export(
    data_dir: DataDirOpt = Path("data"),
    out_file: Annotated[Path, typer.Option("--out", help="Where to write the signed checkpoint.")] = Path(
        "checkpoint.json"),
) -> None:
    """Write a signed checkpoint (head height, hash, ledger public key) for auditors to keep."""
    from anchor.checkpoint import make_checkpoint
    from anchor.ledger import LedgerFile
    from packproof.crypto import load_or_create_ledger_key
    from packproof.paths import DataDir

    dirs = DataDir(data_dir)
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
def audit(
    data_dir: DataDirOpt = Path("data"),
    ledger_key: Annotated[str | None, typer.Option(help="Trusted ledger key (default DATA_DIR/ledger.pub).")] = None,
    signatures: Annotated[bool, typer.Option(help="Also check every device signature (slower).")] = False,
    show: Annotated[int, typer.Option(help="List at most this many problems of each kind.", min=1)] = 20,
) -> None:
    """Recompute every leaf and block root from the store, check them against the ledger, then the chain."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    from anchor.audit import audit as run_audit
    from anchor.ledger import LedgerFile
    from packproof.crypto import read_public_key
    from packproof.paths import DataDir
    from packproof.store import Store

    dirs = DataDir(data_dir)
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
              f" ({report.unsealed:,} stored readings not sealed yet)", highlight=False)
    sections = [("ledger chain", report.chain), ("blocks", [f"block {h}: {m}" for h, m in report.blocks_bad]),
                ("readings", [f"reading {r}: {m}" for r, m in report.readings_bad]),
                ("readings no block covers (store ids)", [str(i) for i in report.uncovered]),
                ("readings two blocks cover (store ids)", [str(i) for i in report.covered_twice])]
    for title, items in sections:
        if items:
            out.print(f"[red]{title}: {len(items):,} problem(s)[/]", highlight=False)
            for line in items[:show]:
                out.print(f"  {line}", highlight=False)
            if len(items) > show:
                out.print(f"  ... and {len(items) - show:,} more", highlight=False)
    if not report.ok:
        first = next(items[0] for _, items in sections if items)
        fail(Exit.INVALID, f"audit failed; first problem: {first}")
    out.print("[green]audit passed[/]: every leaf, root, link and signature holds")


@app.command("condition")
def condition_report(
    shipment_id: Annotated[str, typer.Argument(help="The shipment to report on.")],
    data_dir: DataDirOpt = Path("data"),
    stale_after: Annotated[float, typer.Option(help="Seconds of silence before a pack is stale.", min=1)] = 120.0,
    as_json: Annotated[bool, typer.Option("--json", help="The same document as GET /shipments/{id}/condition.")]
    = False,
) -> None:
    """A shipment's condition and its loss report: per pack, what arrived, what is missing, what is unsealed.

    `missing` seqs never arrived (a gap the device is asked to fill); `unsealed` readings are
    stored but not in a block yet; a `stale` pack has gone silent: "we don't know", not "ok".
    """
    import time

    from rich.table import Table

    from api.condition import condition
    from packproof.paths import DataDir
    from packproof.store import Store

    async def go():  # type: ignore[no-untyped-def]
        store = await Store.open(DataDir(data_dir).store, readonly=True)
        try:
            row = await store.shipment(shipment_id)
            if row is None:
                fail(Exit.BAD_INPUT, f"shipment {shipment_id!r} is not in {data_dir}")
            return condition(row[0], row[1], await store.shipment_devices(row[0]),
                             await store.shipment_excursions(row[0]), time.time(), stale_after)
        finally:
            await store.close()

    c = asyncio.run(go())
    if as_json:
        out.print_json(c.model_dump_json())
        return
    colour = {"ok": "green", "warning": "yellow", "violated": "red"}[c.status]
    out.print(f"shipment {c.shipment_id} ({c.profile}): [{colour}]{c.status}[/], {len(c.excursions)} excursion(s); "
              f"{c.readings:,} readings stored, {c.missing:,} missing, {c.unsealed:,} not yet sealed", highlight=False)
    table = Table("pack", "status", "readings", "stored up to seq", "missing (gaps)", "unsealed", "last seen")
    for p in c.packs:
        gaps = ", ".join(f"{a}" if a == b else f"{a}-{b}" for a, b in p.gaps)
        table.add_row(p.device_id, p.status + (" (stale)" if p.stale else ""), f"{p.readings:,}",
                      "-" if p.acked_seq is None else str(p.acked_seq),
                      f"{p.missing:,}" + (f" ({gaps})" if gaps else ""), f"{p.unsealed:,}", p.last_seen or "never")
    out.print(table)
    for e in c.excursions:
        out.print(f"  {e.severity} {e.test} on {e.device_id}: {e.quantity} peak {e.peak:g} ({e.limit_crossed}), "
                  f"seq {e.start_seq}..{e.end_seq}", highlight=False)


def _store_call(data_dir: Path, work):  # type: ignore[no-untyped-def]
    """Run `work(store)` on the store in DATA_DIR (the writer side: registry changes are sealed)."""
    from packproof.paths import DataDir
    from packproof.store import Store

    async def go():  # type: ignore[no-untyped-def]
        store = await Store.open(DataDir(data_dir).store)
        try:
            return await work(store)
        finally:
            await store.close()

    return asyncio.run(go())


def _new_key(device_id: str, key_out: Path) -> bytes:
    """A fresh Ed25519 key pair: the private half to KEY_OUT/<device>.key (0600), the public half returned."""
    import os

    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from packproof.crypto import public_key_bytes

    key = Ed25519PrivateKey.generate()
    key_out.mkdir(parents=True, exist_ok=True)
    path = key_out / f"{device_id}.key"
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption())
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(pem)
    out.print(f"private key written to {path} (install it on the device, then delete it here)")
    return public_key_bytes(key)


DeviceArg = Annotated[str, typer.Argument(help="The device id (one sensor per pack).")]
ShipmentOpt = Annotated[str, typer.Option(help="The shipment the pack travels in.")]
ProfileOpt = Annotated[str, typer.Option(help="UN 38.3 profile of the shipment (un38.3-cell, un38.3-large, ...).")]


def _check_device_id(device_id: str) -> None:
    import re

    from packproof.reading import ID_PATTERN

    if not re.match(ID_PATTERN, device_id):
        fail(Exit.BAD_INPUT, f"device id {device_id!r} must match {ID_PATTERN}")


@devices_app.command("provision")
def devices_provision(
    device_id: DeviceArg, shipment: ShipmentOpt, data_dir: DataDirOpt = Path("data"),
    profile: ProfileOpt = "un38.3-cell",
    key_out: Annotated[Path, typer.Option(help="Where to write the new private key.")] = Path("device-keys"),
    password_file: Annotated[Path | None, typer.Option(
        help="Also give the device an MQTT login in this broker password file (printed once).")] = None,
) -> None:
    """Make a key pair (and an MQTT login) for a device, and register its public key."""
    import secrets

    from broker.auth import PasswordFile

    _check_device_id(device_id)
    public = _new_key(device_id, key_out)
    _store_call(data_dir, lambda st: st.register({shipment: profile}, [(device_id, shipment, public)]))
    out.print(f"registered {device_id} in shipment {shipment}, key {key_id_of(public)}", highlight=False)
    if password_file is not None:
        password = secrets.token_urlsafe(18)
        PasswordFile(password_file).set(device_id, password)
        out.print(f"MQTT login: user {device_id}, password {password} (shown once)", highlight=False)


def key_id_of(public: bytes) -> str:
    from packproof.crypto import key_id

    return key_id(public)


@devices_app.command("register")
def devices_register(
    device_id: DeviceArg, shipment: ShipmentOpt, data_dir: DataDirOpt = Path("data"),
    profile: ProfileOpt = "un38.3-cell",
    public_key: Annotated[str | None, typer.Option(help="The device's Ed25519 public key, base64 (made on "
                                                        "the device).")] = None,
    unsigned: Annotated[bool, typer.Option("--unsigned", help="A tracker that cannot sign.")] = False,
) -> None:
    """Register a device whose key was generated on the device (or that cannot sign)."""
    from packproof.crypto import read_public_key

    _check_device_id(device_id)
    if (public_key is None) == (not unsigned):
        fail(Exit.BAD_INPUT, "give either --public-key B64 or --unsigned")
    key = read_public_key(public_key) if public_key else None
    added = _store_call(data_dir, lambda st: st.register({shipment: profile}, [(device_id, shipment, key)]))
    out.print(f"{'registered' if added else 'already registered:'} {device_id} in shipment {shipment}"
              + (f", key {key_id_of(key)}" if key else ", unsigned (trust begins at the ingestor)"), highlight=False)


@devices_app.command("list")
def devices_list(data_dir: DataDirOpt = Path("data"),
                 shipment: Annotated[str | None, typer.Option(help="Only this shipment.")] = None) -> None:
    """Every registered device with its keys and state."""
    from rich.table import Table

    devices = _store_call(data_dir, lambda st: st.devices())
    table = Table("device", "shipment", "profile", "keys (from seq: key id)", "state")
    for d in devices:
        if shipment and d.shipment_id != shipment:
            continue
        keys = ", ".join(f"{start}: {key_id_of(k) if k else 'unsigned'}" for start, k in d.keys)
        table.add_row(d.device_id, d.shipment_id, d.profile, keys, "revoked" if d.revoked else "active")
    out.print(table)


@devices_app.command("rotate")
def devices_rotate(
    device_id: DeviceArg, data_dir: DataDirOpt = Path("data"),
    public_key: Annotated[str | None, typer.Option(help="The new public key (base64); omitted: make a pair.")] = None,
    from_seq: Annotated[int | None, typer.Option(help="First seq the new key signs (default: after the last "
                                                      "stored reading).", min=0)] = None,
    key_out: Annotated[Path, typer.Option(help="Where to write a new private key.")] = Path("device-keys"),
) -> None:
    """A new key for a device; readings signed before keep verifying with the key valid at their seq."""
    from packproof.crypto import read_public_key

    key = read_public_key(public_key) if public_key else _new_key(device_id, key_out)

    async def work(st):  # type: ignore[no-untyped-def]
        start = from_seq
        if start is None:
            start = await st.last_seq(device_id) + 1
        await st.rotate_key(device_id, key, start)
        return start

    start = _store_call(data_dir, work)
    out.print(f"{device_id}: key {key_id_of(key)} signs from seq {start} on", highlight=False)


@devices_app.command("revoke")
def devices_revoke(device_id: DeviceArg, reason: Annotated[str, typer.Option(help="Why, for the record.")],
                   data_dir: DataDirOpt = Path("data")) -> None:
    """Refuse the device's readings from now on (what was stored stays provable)."""
    _store_call(data_dir, lambda st: st.revoke(device_id, reason))
    out.print(f"{device_id} revoked: its readings are quarantined from now on", highlight=False)


def key_in_force(before: list[Any], genesis_key: bytes) -> bytes:
    """The ledger key in force after `before` (blocks 0..h-1), or the reason it cannot be known."""
    from anchor.ledger import verify_chain

    try:
        return verify_chain(before, genesis_key)
    except LedgerIntegrityError as exc:
        fail(Exit.INVALID, f"the chain before this block does not hold: {exc}")


def main() -> None:
    try:
        app()
    except PackproofError as exc:
        if _verbose:
            err.print_exception()
        err.print(f"[bold red]error:[/] {exc}", highlight=False)
        sys.exit(int(_code_for(exc)))
