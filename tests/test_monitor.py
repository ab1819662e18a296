"""`packproof monitor` as a user runs it, against a log served over real HTTP.

The log here is a lying operator's: a small server speaking the API's contract for GET /checkpoint
and GET /log/consistency (issue 16) whose answers each test sets, so that it can sign two
histories, roll back, or send a bad proof. (The monitor against packproof's own API is in the
end-to-end tests.)
"""

from __future__ import annotations

import base64
import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated

import pytest
import uvicorn
from fastapi import FastAPI, Query
from fastapi.responses import JSONResponse, PlainTextResponse, Response

from packproof.anchor.consistency import consistency_proof
from packproof.anchor.merkle import leaf_hash, root_from_leaf_hashes
from packproof.anchor.note import SignerKey
from packproof.anchor.tlog_checkpoint import Checkpoint, sign_checkpoint
from packproof.net import free_port
from tests.conftest import cli

ORIGIN = "packproof.example/monitor-cli"
LOG = SignerKey(ORIGIN, bytes(range(32)))
LEAVES = [leaf_hash(i.to_bytes(4, "big")) for i in range(100)]
FORK = LEAVES[:9] + [leaf_hash(b"rewritten")] + LEAVES[10:]


class Operator:
    """What the log serves: the leaves behind its checkpoint, and the size it claims."""

    def __init__(self) -> None:
        self.leaves: list[bytes] = LEAVES
        self.size: int | None = None
        self.proof_leaves: list[bytes] | None = None  # proofs from another history than the checkpoint's

    def app(self) -> FastAPI:
        app = FastAPI()

        @app.get("/checkpoint")
        def checkpoint() -> Response:
            if self.size is None:
                return JSONResponse({"detail": "no checkpoint yet"}, status_code=404)
            cp = Checkpoint(ORIGIN, self.size, root_from_leaf_hashes(self.leaves[: self.size]))
            return PlainTextResponse(sign_checkpoint(cp, [LOG]).decode())

        @app.get("/log/consistency")
        def consistency(m: Annotated[int, Query(alias="from")], n: Annotated[int, Query(alias="to")]) -> Response:
            leaves = self.proof_leaves or self.leaves
            proof = consistency_proof(m, leaves[:n])
            return JSONResponse({"from": m, "to": n, "proof": [base64.b64encode(p).decode() for p in proof]})
        return app


@pytest.fixture
def operator() -> Iterator[tuple[Operator, str]]:
    op = Operator()
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(op.app(), host="127.0.0.1", port=port, log_level="warning"))
    t = threading.Thread(target=server.run, daemon=True)
    t.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert time.monotonic() < deadline
        time.sleep(0.02)
    yield op, f"http://127.0.0.1:{port}"
    server.should_exit = True
    t.join(5)


def _monitor(url: str, state: Path, *extra: str) -> tuple[int, str]:
    r = cli("monitor", "--api", url, "--state", str(state), "--log-key", str(LOG.verifier), "--once", *extra)
    assert "Traceback" not in r.stderr, r.stderr
    return r.returncode, r.stdout + r.stderr


def test_follows_an_honest_log_and_keeps_its_state(operator: tuple[Operator, str], tmp_path: Path) -> None:
    op, url = operator
    state = tmp_path / "monitor.json"
    assert _monitor(url, state) == (0, "monitor: the log has no checkpoint yet\n")
    for size in (5, 5, 40, 100):
        op.size = size
        code, text = _monitor(url, state)
        assert code == 0, text
        assert json.loads(state.read_text())["size"] == size
    assert "from size 40 to size 100" in text and not (tmp_path / "monitor.json.tmp").exists()


def test_a_split_view_alarms_naming_both_roots(operator: tuple[Operator, str], tmp_path: Path) -> None:
    op, url = operator
    state = tmp_path / "monitor.json"
    op.size = 20
    assert _monitor(url, state)[0] == 0
    op.leaves = FORK  # the operator signs a second checkpoint of size 20
    code, text = _monitor(url, state)
    honest, forked = (base64.b64encode(root_from_leaf_hashes(x[:20])).decode() for x in (LEAVES, FORK))
    assert code == 1 and "FORK" in text and "size 20" in text and honest in text and forked in text
    assert json.loads(state.read_text())["root"] == honest  # the evidence is kept: it alarms again
    assert _monitor(url, state)[0] == 1


def test_a_fork_past_the_saved_size_and_a_lying_proof_alarm(operator: tuple[Operator, str], tmp_path: Path) -> None:
    op, url = operator
    state = tmp_path / "monitor.json"
    op.size = 20
    assert _monitor(url, state)[0] == 0
    op.leaves, op.size = FORK, 60
    code, text = _monitor(url, state)
    assert code == 1 and "FORK" in text and "size 60" in text and "size 20" in text
    op.proof_leaves = LEAVES  # a proof from the honest history does not rescue the forked head
    assert _monitor(url, state)[0] == 1


def test_a_rollback_alarms(operator: tuple[Operator, str], tmp_path: Path) -> None:
    op, url = operator
    state = tmp_path / "monitor.json"
    op.size = 50
    assert _monitor(url, state)[0] == 0
    op.size = 30
    code, text = _monitor(url, state)
    assert code == 1 and "ROLLBACK" in text and "size 30" in text and "size 50" in text


def test_unreachable_bad_key_and_bad_state_are_named(tmp_path: Path) -> None:
    state = tmp_path / "monitor.json"
    code, text = _monitor(f"http://127.0.0.1:{free_port()}", state)
    assert code == 3 and "cannot reach" in text
    r = cli("monitor", "--api", "http://x", "--state", str(state), "--log-key", "nonsense", "--once")
    assert r.returncode == 2 and "--log-key" in r.stderr
    state.write_text("{not json")
    code, text = _monitor("http://127.0.0.1:1", state)
    assert code == 2 and "not a monitor state file" in text
