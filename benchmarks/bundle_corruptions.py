"""Corrupt every field of a real proof bundle and count `packproof verify --bundle` exit codes.

A real bundle comes from the real write path: a store with a signed and an unsigned device
(their registry records sealed in block 0), readings sealed in block 1, and the API's
`GET /readings/{id}/proof`. Every value in the bundle is then corrupted in each way that
fits its type (deleted, null, another type, empty, one byte short, a character changed, NaN,
negative, huge, an extra key, ...), and the whole document in ways no field shows (a
directory, not JSON, not UTF-8, nested 100,000 deep, ...). Each corruption is verified by
the real command in this process and tabulated by exit code; an exception escaping
`packproof.app.cli.main` (a traceback, exit 1 in a shell) is counted on its own.

    python benchmarks/bundle_corruptions.py [--list]

The code under test is the installed packproof (`make install`: this checkout); to compare
another revision, install its checkout in a venv of its own and run its copy of this script.
It reads the bundle through the API of the code under test, so it works whatever the format.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import binascii
import contextlib
import io
import json
import math
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

import packproof.anchor.proof
from packproof.anchor.ledger import LedgerFile
from packproof.anchor.merkle import leaf_hash
from packproof.anchor.sealer import Sealer
from packproof.api.deps import ApiSettings
from packproof.api.main import create_app
from packproof.app.cli import main as cli_main
from packproof.canonical import canonical_bytes, signing_bytes
from packproof.crypto import b64, load_or_create_ledger_key, private_key_from_seed, public_key_bytes
from packproof.paths import DataDir
from packproof.reading import Reading
from packproof.records import IngestBatch, ReadingRow

TRACEBACK = "traceback"


@dataclass(frozen=True, slots=True)
class Corruption:
    """One way to spoil a bundle: `text` is written as the bundle file (None: give a directory)."""

    where: str
    how: str
    text: bytes | None


@dataclass(frozen=True, slots=True)
class Outcome:
    corruption: Corruption
    code: int | str  # the exit code, or TRACEBACK
    message: str  # the last line the command wrote to stderr


def _reading_body(device_id: str, seq: int, key: Any) -> bytes:
    r = Reading.model_validate({
        "v": 1, "device_id": device_id, "shipment_id": "SHP-A", "seq": seq, "ts": "2026-01-02T03:04:05Z",
        "temperature_c": 21.5 + seq, "vibration": {"peak_g": 0.3, "freq_hz": 20.0},
        "shock": {"peak_g": 0.0, "duration_ms": 0.0}, "pressure_kpa": 101.0})
    if key is not None:
        r = r.model_copy(update={"sig": b64(key.sign(signing_bytes(r)))})
    return canonical_bytes(r)


async def _fill(root: Path) -> None:
    """Two devices registered and sealed in block 0; four readings each sealed in block 1."""
    dirs = DataDir(root)
    key = private_key_from_seed(b"dev-a")
    store = await dirs.open_writer()
    try:
        await store.register({"SHP-A": "un38.3-cell"}, [("dev-a", "SHP-A", public_key_bytes(key)),
                                                        ("dev-u", "SHP-A", None)])
        sealer = Sealer(store, LedgerFile(dirs.ledger), load_or_create_ledger_key(dirs.ledger_key))
        await sealer.recover()
        await sealer.seal_once()
        rows = []
        for seq in range(4):
            for device_id, k in (("dev-a", key), ("dev-u", None)):
                body = _reading_body(device_id, seq, k)
                rows.append(ReadingRow(device_id, seq, "SHP-A", "2026-01-02T03:04:05Z", time.time(), body,
                                       leaf_hash(body)))
        async with store.transaction("storing the readings"):  # as the ingestor writes
            await store.write_rows(IngestBatch(readings=rows))
        await sealer.seal_once()
    finally:
        await store.close()


def fill_store(root: Path) -> None:
    asyncio.run(_fill(root))


def fetch_bundle(root: Path, reading_id: str = "dev-a:2") -> dict[str, Any]:
    """A bundle exactly as the API of the code under test serves it (in this process, its lifespan run)."""
    async def get() -> dict[str, Any]:
        app = create_app(ApiSettings(DataDir(root)))
        async with app.router.lifespan_context(app), httpx.AsyncClient(
                transport=httpx.ASGITransport(app=app), base_url="http://api") as client:
            r = await client.get(f"/readings/{reading_id}/proof")
            r.raise_for_status()
            doc: dict[str, Any] = r.json()
            return doc

    return asyncio.run(get())


# ---- corruptions ------------------------------------------------------------------------


def value_paths(value: Any, path: tuple[Any, ...] = ()) -> Iterator[tuple[tuple[Any, ...], Any]]:
    """Every value in the document with its path, containers before their contents."""
    yield path, value
    if isinstance(value, dict):
        for k, v in value.items():
            yield from value_paths(v, (*path, k))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from value_paths(v, (*path, i))


def _name(path: tuple[Any, ...]) -> str:
    out = ""
    for p in path:
        out += f"[{p}]" if isinstance(p, int) else (f".{p}" if out else str(p))
    return out or "(document)"


_DELETE = object()


def replaced(doc: Any, path: tuple[Any, ...], new: Any) -> Any:
    """A deep copy of `doc` with the value at `path` replaced by `new` (or removed: _DELETE)."""
    if not path:
        return new
    copy = json.loads(json.dumps(doc))
    parent = copy
    for p in path[:-1]:
        parent = parent[p]
    if new is _DELETE:
        del parent[path[-1]]
    else:
        parent[path[-1]] = new
    return copy


def _one_byte_short(text: str) -> str | None:
    """The same encoding (hex or base64) of the decoded bytes minus the last one, when it decodes."""
    if len(text) % 2 == 0 and all(c in "0123456789abcdef" for c in text) and text:
        return text[:-2]
    try:
        raw = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        return None
    return base64.b64encode(raw[:-1]).decode() if raw else None


def _value_variants(value: Any) -> Iterator[tuple[str, Any]]:
    """Type-aware replacements for one value."""
    yield "null", None
    if isinstance(value, bool) or not isinstance(value, int | float | str | list | dict):
        return
    if isinstance(value, int):
        yield from [("as string", str(value)), ("as float", value + 0.5), ("NaN", math.nan),
                    ("Infinity", math.inf), ("negative", -1), ("plus one", value + 1), ("huge", 2**80),
                    ("true", True), ("as list", [value])]
    elif isinstance(value, str):
        short = _one_byte_short(value)
        if short is not None:
            yield "one byte short", short
        yield from [("empty", ""), ("as number", 12345), ("a character changed",
                    value[:-1] + ("0" if value[-1:] != "0" else "1")), ("lone surrogate", value + "\ud800"),
                    ("as object", {"text": value}), ("1 MB long", value + "A" * 1_000_000)]
    elif isinstance(value, list):
        yield from [("empty", []), ("as object", {}), ("as string", "[]"),
                    ("an extra item", [*value, value[0] if value else "00" * 32])]
        if value:
            yield "last item dropped", value[:-1]
    elif isinstance(value, dict):
        yield from [("empty object", {}), ("as list", [value]), ("as string", json.dumps(value)[:40]),
                    ("an extra key", {**value, "extra": 1})]


def corruptions(doc: dict[str, Any]) -> Iterator[Corruption]:
    """Every corruption of `doc`: each value in each way that fits its type, then the document."""
    for path, value in value_paths(doc):
        where = _name(path)
        if path and isinstance(path[-1], str):
            yield Corruption(where, "deleted", json.dumps(replaced(doc, path, _DELETE)).encode())
        for how, new in _value_variants(value):
            text = json.dumps(replaced(doc, path, new), allow_nan=True).encode("utf-8", "surrogatepass")
            yield Corruption(where, how, text)
    whole = json.dumps(doc).encode()
    nested = b"[" * 100_000 + b"]" * 100_000
    for how, text in [
        ("empty file", b""), ("not JSON", b"proof holds"), ("not UTF-8", b"\xff\xfe" + whole),
        ("nested 100,000 deep", nested), ("a field nested 100,000 deep",
                                          whole[:-1] + b', "deep": ' + nested + b"}"),
        ("a JSON array", b"[" + whole + b"]"), ("a JSON string", json.dumps(whole.decode()).encode()),
        ("cut in half", whole[: len(whole) // 2]), ("a key given twice",
                                                    whole[:-1] + b', "format": "packproof-proof/0"}'),
        ("20 MB of whitespace before it", b" " * 20_000_000 + whole),
    ]:
        yield Corruption("(document)", how, text)
    yield Corruption("(document)", "a directory", None)


@dataclass(frozen=True, slots=True)
class Run:
    code: int | str  # the exit code, or TRACEBACK
    stdout: str
    message: str  # the last line written to stderr


def run_cli(*args: str) -> Run:
    """`packproof ARGS` in this process, as `main()` runs it for a shell."""
    argv, sys.argv = sys.argv, ["packproof", *args]
    stdout, stderr = io.StringIO(), io.StringIO()
    code: int | str
    try:
        with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
            cli_main()
        code = 0
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    except Exception as exc:  # noqa: BLE001 - exactly what is being counted
        code = TRACEBACK
        stderr.write(f"{type(exc).__name__}: {str(exc)[:200]}\n")
    finally:
        sys.argv = argv
    lines = [x for x in stderr.getvalue().splitlines() if x.strip()]
    return Run(code, stdout.getvalue(), lines[-1][:400] if lines else "")


def bundle_file(c: Corruption, scratch: Path) -> Path:
    """Where the corrupted bundle is: a file holding it, or a directory."""
    if c.text is None:
        path = scratch / "bundle-dir"
        path.mkdir(exist_ok=True)
        return path
    path = scratch / "bundle.json"
    path.write_bytes(c.text)
    return path


def run_all(doc: dict[str, Any], scratch: Path) -> list[Outcome]:
    out = []
    for c in corruptions(doc):
        r = run_cli("verify", "--bundle", str(bundle_file(c, scratch)))
        out.append(Outcome(c, r.code, r.message))
    return out


def table(outcomes: list[Outcome]) -> str:
    counts = Counter(o.code for o in outcomes)
    cols: list[int | str] = [0, 1, 2, 3, TRACEBACK]
    other = sum(n for code, n in counts.items() if code not in cols)
    head = "| corruptions | " + " | ".join(f"exit {c}" if isinstance(c, int) else c for c in cols) + " | other |"
    row = f"| {len(outcomes)} | " + " | ".join(str(counts.get(c, 0)) for c in cols) + f" | {other} |"
    return "\n".join([head, "|" + "---|" * (len(cols) + 2), row])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--list", action="store_true", help="print every corruption and its outcome")
    args = parser.parse_args()
    print(f"code under test: {Path(packproof.anchor.proof.__file__).resolve().parents[1]}")
    with tempfile.TemporaryDirectory() as tmp:
        fill_store(Path(tmp) / "data")
        doc = fetch_bundle(Path(tmp) / "data")
        outcomes = run_all(doc, Path(tmp))
    if args.list:
        for o in outcomes:
            print(f"{o.code!s:>9}  {o.corruption.where} {o.corruption.how}: {o.message}")
    print(table(outcomes))


if __name__ == "__main__":
    main()
