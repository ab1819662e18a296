"""`packproof witness`: run a C2SP tlog-witness for the logs named by --log, or make its key.

    packproof witness keygen --key witness.key --name witness.example/w1    (prints the vkey)
    packproof witness --listen 127.0.0.1:7380 --key witness.key --state witness.db --log VKEY ...

A partner who runs this cosigns packproof's checkpoints only while they extend every one it
cosigned before (app/witness.py, anchor/witness.py).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from packproof.app.cli.common import Exit, fail, out
from packproof.errors import NoteError
from packproof.net import require_free

witness_app = typer.Typer(help="A C2SP tlog-witness: cosigns a log's checkpoints that extend what it saw before.")

KeyOpt = Annotated[Path, typer.Option("--key", help="The witness's signing key file (PRIVATE+KEY+..., mode 0600).")]
NameOpt = Annotated[str | None, typer.Option("--name", help="The key name of a new key: a schema-less URL such as "
                                                            "witness.example/w1.")]


def _listen(text: str) -> tuple[str, int]:
    host, _, port = text.rpartition(":")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        fail(Exit.BAD_INPUT, f"--listen {text!r}: expected HOST:PORT, such as 127.0.0.1:7380")
    return host, int(port)


@witness_app.callback(invoke_without_command=True)
def witness(ctx: typer.Context,
            key: Annotated[Path | None, typer.Option("--key", help="The witness's signing key file.")] = None,
            listen: Annotated[str, typer.Option("--listen", help="HOST:PORT to serve POST /add-checkpoint on.")]
            = "127.0.0.1:7380",
            state: Annotated[Path | None, typer.Option("--state", help="SQLite file of the size and root last "
                                                                        "cosigned per log (made if absent).")] = None,
            logs: Annotated[list[str] | None, typer.Option("--log", help="Verifier key of a log to witness "
                                                                         "(repeatable); its origin is the key name.")]
            = None,
            init: Annotated[bool, typer.Option("--init", help="Make the --key file first if it does not exist.")]
            = False,
            name: NameOpt = None) -> None:
    """Serve POST /add-checkpoint (c2sp.org/tlog-witness) until interrupted."""
    if ctx.invoked_subcommand is not None:
        return
    from packproof.anchor.note import VerifierKey  # not at start-up: cryptography
    from packproof.app.witness import (  # not at start-up: FastAPI
        Witness,
        WitnessState,
        create_witness_app,
        load_or_create_key,
    )

    if key is None or state is None:
        fail(Exit.BAD_INPUT, "packproof witness needs --key FILE and --state FILE (and --log VKEY per log)")
    if not logs:
        fail(Exit.BAD_INPUT, "--log VKEY: name at least one log to witness (its verifier key, origin = key name)")
    try:
        log_keys = [VerifierKey.parse(v) for v in logs]
    except NoteError as exc:
        fail(Exit.BAD_INPUT, f"--log: {exc}")
    host, port = _listen(listen)
    require_free(host, port, "--listen", "another witness?")
    signer = load_or_create_key(key, name, create=init)
    import uvicorn  # not at start-up: the server

    w = Witness(signer, log_keys, WitnessState(state))
    out.print(f"witness {signer.verifier} at http://{host}:{port}/add-checkpoint for "
              f"{', '.join(sorted({k.name for k in log_keys}))}", highlight=False)
    server = uvicorn.Server(uvicorn.Config(create_witness_app(w), host=host, port=port, log_level="warning"))
    try:
        server.run()
    finally:
        w.state.close()


@witness_app.command("keygen")
def keygen(key: KeyOpt, name: Annotated[str, typer.Option("--name", help="The key name: a schema-less URL such as "
                                                                         "witness.example/w1.")]) -> None:
    """Make a witness signing key in FILE (refused if FILE exists) and print its verifier key."""
    from packproof.app.witness import load_or_create_key  # not at start-up: FastAPI

    if key.exists():
        fail(Exit.BAD_INPUT, f"{key} exists: a witness keeps its key (its vkey is what logs and verifiers trust)")
    signer = load_or_create_key(key, name, create=True)
    out.print(str(signer.verifier), highlight=False)


@witness_app.command("vkey")
def vkey(key: KeyOpt) -> None:
    """Print the verifier key of the witness key in FILE."""
    from packproof.app.witness import load_or_create_key  # not at start-up: FastAPI

    out.print(str(load_or_create_key(key, None, create=False).verifier), highlight=False)
