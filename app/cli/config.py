"""`packproof config COMMAND`: the effective configuration of a service, each value with where
it came from."""

from __future__ import annotations

import typer

# The services declare their flags (options.COMMANDS) where they are defined: before show_command reads them.
import packproof.app.cli.anchor  # noqa: F401
import packproof.app.cli.serve  # noqa: F401
from packproof.app.options import show_command

config_app = typer.Typer(no_args_is_help=True, help="Show the effective configuration of a command: each value "
                         "and where it came from (flag > PACKPROOF_* env > --config file > default).")
for _name in ("run", "broker", "ingest", "seal", "api", "simulate", "anchor-run", "anchor-deploy"):
    config_app.command(_name)(show_command(_name))
