"""`packproof anchor`: the log's checkpoints on an Ethereum chain (issue 17).

    packproof anchor key --out anchor.key                       (prints the account's address: fund it)
    packproof anchor deploy --rpc URL --key-file anchor.key --chain-id 11155111
    packproof anchor run --rpc URL --contract 0x... --key-file anchor.key --chain-id 11155111

`run` is the anchoring loop alone (anchor/anchorer.py), beside any sealer of the store; `seal`,
`ingest` and `run` start the same loop beside their sealer when [anchoring] rpc, contract and
key_file are set (flags --anchor-rpc ... there). web3 is imported only by these commands.
"""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path
from typing import Annotated

import typer

from packproof.app.cli.common import Exit, data_dir_of, fail, out
from packproof.app.config import Settings
from packproof.app.options import COMMON, Flag, configured
from packproof.errors import ChainError

anchor_app = typer.Typer(no_args_is_help=True, help="Anchor the log's checkpoints on an Ethereum chain: an "
                         "account key, the contract, the loop.")

RPC = Flag("anchoring.rpc", ("--rpc",))
KEY = Flag("anchoring.key_file", ("--key-file",))
CHAIN = Flag("anchoring.chain_id", ("--chain-id",))
TIMEOUT = Flag("anchoring.timeout", ("--timeout",))
DEPLOY_FLAGS = (*COMMON, Flag("seal.key_file"), Flag("seal.log_origin", ("--log-origin",)), RPC, KEY, CHAIN, TIMEOUT)
RUN_FLAGS = (*COMMON, RPC, Flag("anchoring.contract", ("--contract",)), KEY, CHAIN,
             Flag("anchoring.every", ("--every",)), Flag("anchoring.confirmations", ("--confirmations",)), TIMEOUT,
             Flag("anchoring.stop_wait", ("--stop-wait",)))


@anchor_app.command("key")
def key(out_file: Annotated[Path, typer.Option("--out", help="The key file to make (mode 0600; never "
                                                             "overwritten).")]) -> None:
    """Make a fresh secp256k1 account key for anchoring and print its address (fund it with ETH)."""
    from packproof.anchor.anchoring import new_key_file  # not at start-up: web3

    address = new_key_file(out_file)
    out.print(f"{address}\nanchoring account key written to {out_file} (mode 0600); fund {address} with ETH on the "
              "chain you anchor on (each anchor costs ~100,000 gas), then `packproof anchor deploy`", highlight=False)


def _need(cfg: Settings, *names: str) -> None:
    a = cfg.anchoring
    given = {"--rpc": a.rpc, "--key-file": a.key_file, "--chain-id": a.chain_id, "--contract": a.contract}
    missing = [n for n in names if given[n] is None]
    if missing:
        fail(Exit.BAD_INPUT, f"{', '.join(missing)}: required (flag, PACKPROOF_ANCHORING_* or [anchoring] in --config)")


async def _origin(cfg: Settings) -> str:
    """The log's origin: as the store keeps it; before the first seal, as the sealer will choose it."""
    from packproof.anchor.tlog import default_origin  # not at start-up: the log
    from packproof.crypto import key_id, read_public_key  # not at start-up: cryptography
    from packproof.store import Store  # not at start-up: the store

    dirs = data_dir_of(cfg)
    try:
        store = await Store.open(dirs.store, readonly=True)
    except Exception:  # noqa: BLE001 - no store yet: the origin the sealer will choose
        store = None
    if store is not None:
        try:
            kept = await store.log_origin()
        finally:
            await store.close()
        if kept is not None:
            return kept
    if cfg.seal.log_origin:
        return cfg.seal.log_origin
    if dirs.ledger_pub.exists():
        return default_origin(key_id(read_public_key(str(dirs.ledger_pub))))
    fail(Exit.BAD_INPUT, f"the log in {dirs.root} has no origin yet (no store, no ledger key): seal once, or name "
                         "it with --log-origin (it must be the origin the sealer uses)")


@configured("anchor-deploy", DEPLOY_FLAGS)
def deploy(cfg: Settings) -> None:
    """Deploy the PackproofAnchor contract for this log's origin, with this key as its only anchorer."""
    from packproof.anchor import anchoring  # not at start-up: web3

    _need(cfg, "--rpc", "--key-file", "--chain-id")
    a = cfg.anchoring
    assert a.rpc is not None and a.key_file is not None and a.chain_id is not None
    origin = asyncio.run(_origin(cfg))
    account = anchoring.load_key(a.key_file)
    w3 = anchoring.connect(a.rpc, a.timeout)
    address = anchoring.deploy_signed(w3, origin, account, a.chain_id)
    out.print(f"PackproofAnchor deployed at {address} on chain {a.chain_id} for log {origin}, anchorer "
              f"{account.address}\n\nsettings to anchor with it (a --config file; or flags --anchor-rpc ... on "
              f"seal/ingest/run, --rpc ... on `packproof anchor run`):\n\n[anchoring]\nrpc = \"{a.rpc}\"\n"
              f"contract = \"{address}\"\nkey_file = \"{a.key_file.resolve()}\"\nchain_id = {a.chain_id}\n"
              f"every = {a.every:g}\nconfirmations = {a.confirmations}", highlight=False, markup=False)


@configured("anchor-run", RUN_FLAGS, announce=True)
def run(cfg: Settings) -> None:
    """The anchoring loop alone, beside any sealer of the store, until Ctrl-C (then the last checkpoint)."""
    from packproof.anchor.anchorer import Anchoring, chain_of  # not at start-up: web3
    from packproof.anchor.anchoring import NotTheContract, WrongChain  # not at start-up: web3
    from packproof.app.services import anchoring_options  # not at start-up: every stage
    from packproof.store import Store  # not at start-up: the store

    _need(cfg, "--rpc", "--contract", "--key-file", "--chain-id")
    opts = anchoring_options(cfg)
    chain = chain_of(opts)

    async def serve() -> None:
        store = await Store.open(data_dir_of(cfg).store)
        try:
            try:  # the chain, the contract's code and (once the log has one) the origin it anchors
                chain.check(await store.log_origin())
            except (WrongChain, NotTheContract) as exc:
                fail(Exit.BAD_INPUT, str(exc))
            except ChainError as exc:
                out.print(f"the node is not answering now ({exc}); anchoring retries with backoff", highlight=False)
            stop = asyncio.Event()
            loop = asyncio.get_running_loop()
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.add_signal_handler(sig, stop.set)
            out.print(f"anchoring {store.label} on chain {opts.chain_id} at {chain.address} every {opts.every:g} s "
                      f"from {chain.account.address} (Ctrl-C stops after anchoring the last checkpoint)",
                      highlight=False)
            await Anchoring(store, opts, chain).run(stop)
        finally:
            await store.close()

    asyncio.run(serve())


anchor_app.command("deploy")(deploy)
anchor_app.command("run")(run)
