"""Typer flags made from the settings models, so each option is written once.

A command lists the settings it takes as `Flag`s; `configured` turns them into typer
options (help, default shown, env var named, all from `packproof.app.config`), defaulting to
None so that a flag given on the command line can be told from one left out, then loads
the settings (flag > env > file > default) and hands the command one `Settings`.
`run` and `simulate` share `FLEET_FLAGS` instead of two copies of twenty options.
"""

from __future__ import annotations

import functools
import inspect
import sys
import types
import typing
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from pydantic import SecretStr

from packproof.app.config import CONFIG_ENV, Settings, describe, env_name, field_of, load

F = TypeVar("F", bound=Callable[..., Any])
COMMANDS: dict[str, tuple[Flag, ...]] = {}  # command path -> its flags, for `packproof config COMMAND`


@dataclass(frozen=True, slots=True)
class Flag:
    """One setting as a command-line option.

    `decls` default to --<key with dashes> (`mqtt.host` -> --mqtt-host; a bool gets --x/--no-x);
    `default` replaces the default shown in --help when a command's own differs.
    """

    key: str
    decls: tuple[str, ...] = ()
    default: str | None = None

    @property
    def param(self) -> str:
        return "cfg__" + self.key.replace(".", "__")

    def names(self, annotation: Any) -> tuple[str, ...]:
        if self.decls:
            return self.decls
        name = self.key.replace(".", "-").replace("_", "-")
        return (f"--{name}/--no-{name}",) if annotation is bool else (f"--{name}",)

    @property
    def name(self) -> str:
        """The flag as a user types it, for messages: --mqtt-port."""
        return self.names(_base_type(field_of(self.key).annotation))[0]

    def parameter(self) -> inspect.Parameter:
        field = field_of(self.key)
        base = _base_type(field.annotation)
        if self.default is not None:
            show: bool | str = self.default
        elif field.default is None:
            show = False
        elif base is bool:
            decl = self.names(bool)[0]  # --x/--no-x shows the one in force; a lone --x shows on or off
            show = decl.split("/")[0 if field.default else -1].lstrip("-") if "/" in decl else \
                ("on" if field.default else "off")
        elif isinstance(field.default, list):
            show = ", ".join(field.default)
        else:
            show = str(field.default)
        help_text = f"{field.description} (env {env_name(self.key)})"
        option = typer.Option(*self.names(base), help=help_text, show_default=show)
        return inspect.Parameter(self.param, inspect.Parameter.KEYWORD_ONLY, default=None,
                                 annotation=Annotated[base | None, option])  # type: ignore[valid-type]


def bare(key: str, *, default: str | None = None) -> Flag:
    """A flag named after the key without its section: fleet.rate -> --rate (a bool: --x/--no-x)."""
    name = key.rpartition(".")[2].replace("_", "-")
    decl = f"--{name}/--no-{name}" if _base_type(field_of(key).annotation) is bool else f"--{name}"
    return Flag(key, (decl,), default)


def _base_type(annotation: Any) -> Any:
    """The type typer parses: `X | None` -> X, a secret as plain text."""
    if isinstance(annotation, types.UnionType) or typing.get_origin(annotation) is typing.Union:
        annotation = next(a for a in typing.get_args(annotation) if a is not type(None))
    return str if annotation is SecretStr else annotation


CONFIG_OPTION = inspect.Parameter(
    "config_file", inspect.Parameter.KEYWORD_ONLY, default=None,
    annotation=Annotated[Path | None, typer.Option(
        "--config", help=f"TOML file of settings, below flags and env vars (env {CONFIG_ENV}; none: defaults).")])

COMMON = (Flag("data_dir"), Flag("store"), Flag("store_password"))
WRITER = (*COMMON, Flag("intake_key_file"))  # commands that write the store: their rows carry the intake MAC
MQTT_CLIENT = (Flag("mqtt.host"), Flag("mqtt.port"), Flag("mqtt.ca"))
# The simulated fleet's options, shared by `run` and `simulate`.
FLEET_FLAGS = (
    *(bare(f"fleet.{k}") for k in ("shipments", "packs", "scenario", "rate", "seed", "step_s", "duration",
                                   "buffer_max", "backlog_rate", "resend_after", "drain_timeout", "outage_every",
                                   "outage_for", "outage_devices")),
    Flag("fleet.outage_random", ("--outage-random",)),
)


def configured(command: str, flags: Sequence[Flag], *, announce: bool = False,
               on_start: Callable[[str], None] | None = None) -> Callable[[F], F]:
    """Give a command the options of `flags` (and --config); call it with `cfg`, the loaded Settings.

    The command's own parameters stay as they are. With `announce`, the effective
    configuration of the command's keys goes to stderr once, secrets masked.
    """
    flags = tuple(flags)
    COMMANDS[command] = flags

    def decorate(func: F) -> F:
        own = [p for p in inspect.signature(func, eval_str=True).parameters.values() if p.name != "cfg"]
        injected = [f.parameter() for f in flags] + [CONFIG_OPTION]

        @functools.wraps(func)
        def wrapper(**kwargs: Any) -> Any:
            given = {f.key: kwargs.pop(f.param) for f in flags}
            cfg = load(given, {f.key: f.name for f in flags}, kwargs.pop("config_file"))
            if announce:
                text = describe(cfg, [f.key for f in flags], title=f"packproof {command}", sources=False)
                (on_start or _to_stderr)(text)
            return func(cfg=cfg, **kwargs)

        wrapper.__signature__ = inspect.Signature(own + injected)  # type: ignore[attr-defined]
        wrapper.__annotations__ = {p.name: p.annotation for p in own + injected}
        del wrapper.__wrapped__  # type: ignore[attr-defined]  # typer must see the new signature
        return wrapper  # type: ignore[return-value]

    return decorate


def _to_stderr(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def show_command(command: str) -> Callable[..., None]:
    """`packproof config COMMAND [its flags]`: every key it uses, its value and where it came from."""
    def show(cfg: Settings) -> None:
        print(describe(cfg, [f.key for f in COMMANDS[command]], title=f"packproof {command}", sources=True))

    show.__doc__ = f"The effective configuration of `packproof {command}`: each value and its source."
    return configured(command, COMMANDS[command])(show)
