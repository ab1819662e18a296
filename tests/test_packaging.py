"""Installed, packproof is one namespace: `packproof.*`, and nothing else at the top of site-packages.

The folders of the flow (edge/, broker/, anchor/, api/, simulators/, app/) are mapped into the
namespace by pyproject.toml's package-dir; a wheel built from the tree must hold them there,
with the broker's shipped configuration, and no top-level `edge` or `api` that could collide
with another distribution installed beside packproof.
"""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from packproof.net import free_port

ROOT = Path(__file__).resolve().parents[1]
MAPPED = ("simulators", "broker", "edge", "anchor", "api", "app")


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> list[str]:
    out = tmp_path_factory.mktemp("wheel")
    r = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "--wheel-dir", str(out),
                        str(ROOT)], capture_output=True, text=True, timeout=300)
    if r.returncode != 0 and ("Could not find a version" in r.stderr or "NewConnectionError" in r.stderr):
        pytest.skip(f"cannot fetch the build backend (setuptools) from the package index: {r.stderr[-300:]}")
    assert r.returncode == 0, r.stderr
    (whl,) = out.glob("packproof-*.whl")
    return zipfile.ZipFile(whl).namelist()


def test_the_wheel_holds_only_the_packproof_namespace(wheel: list[str]) -> None:
    tops = {name.split("/")[0] for name in wheel}
    assert {t for t in tops if not t.endswith(".dist-info")} == {"packproof"}, sorted(tops)


def test_every_source_file_of_a_mapped_folder_is_in_the_wheel(wheel: list[str]) -> None:
    for folder in MAPPED:
        sources = {f"packproof/{p.relative_to(ROOT).as_posix()}" for p in (ROOT / folder).rglob("*.py")
                   if "__pycache__" not in p.parts}
        assert sources, folder
        assert sources <= set(wheel), f"{folder}/ files missing from the wheel: {sorted(sources - set(wheel))}"
    assert "packproof/broker/mosquitto.conf" in wheel and "packproof/broker/packproof.acl" in wheel
    # the dashboard's pages (issue 18) are package data: the API serves them from the installed package
    assert {f"packproof/api/static/{f}" for f in ("index.html", "app.js", "verify.js", "app.css")} <= set(wheel)


def test_no_stage_is_importable_by_its_folder_name(tmp_path: Path) -> None:
    """From outside the checkout (as a user's program runs), `edge` is nobody's; `packproof.edge` is ours."""
    code = ("import importlib.util as u; import packproof.edge.ingestor, packproof.app.cli; "
            "print([m for m in ('edge', 'broker', 'anchor', 'api', 'simulators', 'app') if u.find_spec(m)])")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    r = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, env=env,
                       timeout=60)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "[]", r.stdout


def test_run_works_from_outside_the_checkout(tmp_path: Path) -> None:
    """The whole flow, started where a user starts it: not in the checkout, so nothing is found by
    a folder's name. The suite's own commands run in the checkout, where `broker` and `edge` are on
    the path and a stale module path (amqtt's plugins are named by strings) would go unnoticed."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    r = subprocess.run([sys.executable, "-m", "packproof", "run", "--duration", "3", "--data-dir", str(tmp_path / "d"),
                        "--api-port", str(free_port())], cwd=tmp_path, capture_output=True, text=True, env=env,
                       timeout=180)
    assert r.returncode == 0, r.stderr[-2000:]
    assert "done:" in r.stdout and "sealed" in r.stdout, r.stdout[-2000:]
