"""The `packproof` command line (typer).

One place catches packproof's root error, prints the diagnosis and exits with a code
that tells scripts what happened (sigstore's CLI does the same):

    0  everything checked holds
    1  a proof, signature or the ledger does not hold
    2  bad input: a flag, a file, an unknown id
    3  cannot reach a service (the API, the broker)
    4  the store failed (a full disk included: "disk full")
    5  internal error: an unexpected exception (a bug), reported in one line
    6  `verify --eth-rpc`: the proof holds, but no anchor on chain covers it yet (none at or after
       its log size), or the consistency proof to the later anchor could not be had

`--verbose` shows the traceback as well.

The commands live by group in the modules of this package (serve, verify, ledger, condition,
devices, health, config; common holds what they share); here they are assembled into one typer
app, in the order `packproof --help` lists them. A command imports what only it uses (a stage,
cryptography, httpx, the database drivers) inside its function, marked `# not at start-up`:
`packproof --help` and every service start without what they do not run.
"""

from __future__ import annotations

import logging
import sqlite3
import sys
from typing import Annotated

import typer

from packproof.app.cli import certificate, condition, ledger, monitor, serve, verify
from packproof.app.cli.anchor import anchor_app
from packproof.app.cli.common import Exit, code_for, err
from packproof.app.cli.config import config_app
from packproof.app.cli.custody import custody_app
from packproof.app.cli.devices import devices_app, shipments_app
from packproof.app.cli.health import health_app
from packproof.app.cli.parties import parties_app
from packproof.app.cli.witness import witness_app
from packproof.diskfull import is_disk_full
from packproof.errors import PackproofError

app = typer.Typer(no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False,
                  help="Provable transport condition of lithium-ion battery packs.")
app.command()(serve.run)
app.command()(serve.broker)
app.command()(serve.ingest)
app.command()(serve.seal)
app.command()(serve.passwd)
app.command("intake-key")(serve.intake_key)
app.command()(serve.api)
app.command()(serve.simulate)
app.command()(serve.scenarios)
app.command()(verify.verify)
app.command()(ledger.audit)
app.command()(monitor.monitor)
app.command("condition")(condition.condition_report)
app.command("certificate")(certificate.certificate)
app.add_typer(ledger.ledger_app, name="ledger")
app.add_typer(devices_app, name="devices")
app.add_typer(parties_app, name="parties")
app.add_typer(health_app, name="health")
app.add_typer(shipments_app, name="shipments")
app.add_typer(config_app, name="config")
app.add_typer(custody_app, name="custody")
app.add_typer(witness_app, name="witness")
app.add_typer(anchor_app, name="anchor")

_verbose = False


@app.callback()
def _main(verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Debug logs and tracebacks.")] = False) -> None:
    global _verbose
    _verbose = verbose
    logging.basicConfig(level=logging.DEBUG if verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if not verbose:
        for noisy in ("amqtt", "transitions", "uvicorn", "httpx", "aiosqlite"):
            logging.getLogger(noisy).setLevel(logging.WARNING)


def main() -> None:
    try:
        app()
    except PackproofError as exc:
        if _verbose:
            err.print_exception()
        err.print(f"[bold red]error:[/] {exc}", highlight=False)
        sys.exit(int(code_for(exc)))
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
