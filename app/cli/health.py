"""`packproof health`: the healthchecks a container runtime calls, exit 0 only while the service
itself is at work."""

from __future__ import annotations

import asyncio
from typing import Annotated

import typer

from packproof.app.cli.common import Exit, data_dir_of, fail, out
from packproof.app.config import Settings
from packproof.app.options import COMMON, Flag, configured
from packproof.health import MAX_AGE

health_app = typer.Typer(no_args_is_help=True, help="Healthchecks: exit 0 only while the service itself is at work.")


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

    problem = asyncio.run(check(service, data_dir_of(cfg), cfg.mqtt.client_id, max_age))
    if problem:
        fail(Exit.UNREACHABLE, problem)
    out.print(f"{service}: ok")
