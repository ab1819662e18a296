"""The committed contract artifact is what the pinned compiler makes of the committed source.

anchor/chain/PackproofAnchor.json (ABI + bytecode) is what the anchoring code deploys and
calls; it must never drift from PackproofAnchor.sol. The compiler is the `solc` npm package at
the exact version in anchor/chain/package-lock.json (installed by `make install` with `npm ci`),
so the comparison is byte for byte, offline (issue 17).
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

CHAIN = Path(__file__).resolve().parents[2] / "anchor" / "chain"


def _compile() -> str:
    if shutil.which("node") is None:
        pytest.skip("Node.js is absent: cannot recompile PackproofAnchor.sol (install node and run make install)")
    if not (CHAIN / "node_modules" / "solc").is_dir():
        pytest.skip("anchor/chain/node_modules/solc is absent: run `make install` (npm ci) with Node.js present")
    done = subprocess.run(
        ["node", str(CHAIN / "compile.js")], capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, f"solc failed: {done.stderr}"
    return done.stdout


def test_artifact_matches_a_fresh_compile_byte_for_byte() -> None:
    committed = (CHAIN / "PackproofAnchor.json").read_text(encoding="utf-8")
    fix = "node anchor/chain/compile.js > anchor/chain/PackproofAnchor.json"
    assert _compile() == committed, f"PackproofAnchor.json is stale: run `{fix}`"


def test_compiler_is_the_pinned_version() -> None:
    pinned = json.loads((CHAIN / "package.json").read_text())["devDependencies"]["solc"]
    locked = json.loads((CHAIN / "package-lock.json").read_text())["packages"]["node_modules/solc"]["version"]
    artifact = json.loads((CHAIN / "PackproofAnchor.json").read_text())
    assert pinned == locked, f"package.json pins solc {pinned}, the lock holds {locked}"
    assert artifact["compiler"].startswith(f"solc {pinned}+"), artifact["compiler"]
    pragma = f"pragma solidity {pinned};"
    assert pragma in (CHAIN / "PackproofAnchor.sol").read_text(), f"source must say {pragma!r}"


def test_abi_exposes_the_anchor_interface() -> None:
    abi = json.loads((CHAIN / "PackproofAnchor.json").read_text())["abi"]
    names = {(e["type"], e.get("name")) for e in abi}
    for wanted in [
        ("function", "anchor"),
        ("function", "latest"),
        ("function", "anchorAtOrAfter"),
        ("function", "anchorer"),
        ("function", "originHash"),
        ("event", "Anchored"),
        ("error", "SizeBackwards"),
        ("error", "RootMismatch"),
        ("error", "NotAnchorer"),
    ]:
        assert wanted in names, f"ABI lacks {wanted}"
