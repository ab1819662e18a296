"""`packproof witness` as a user runs it: a real process on a free port, spoken to over HTTP.

Every status of c2sp.org/tlog-witness add-checkpoint through the wire, cosignatures checked with
the vkey the witness printed, a split view refused, racing requests that never roll the state
back, and the state surviving kill -9 in the middle of traffic.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from packproof.anchor.consistency import consistency_proof
from packproof.anchor.cosignature import CosignerKey, WitnessKey, tally
from packproof.anchor.merkle import leaf_hash, root_from_leaf_hashes
from packproof.anchor.note import SignerKey
from packproof.anchor.tlog_checkpoint import Checkpoint, sign_checkpoint
from packproof.anchor.witness import SIZE_CONTENT_TYPE, request_body
from packproof.app.witness import Witness, WitnessState
from packproof.net import free_port
from tests.conftest import Service, cli

ORIGIN = "packproof.example/witness-test"
LOG = SignerKey(ORIGIN, bytes(range(32)))
LEAVES = [leaf_hash(i.to_bytes(4, "big")) for i in range(3000)]
FORK = LEAVES[:3] + [leaf_hash(b"rewritten")] + LEAVES[4:]


def _note(n: int, leaves: list[bytes] = LEAVES) -> bytes:
    return sign_checkpoint(Checkpoint(ORIGIN, n, root_from_leaf_hashes(leaves[:n])), [LOG])


def _body(old: int, new: int, leaves: list[bytes] = LEAVES) -> bytes:
    return request_body(old, consistency_proof(old, leaves[:new]), _note(new, leaves))


class RunningWitness:
    def __init__(self, tmp: Path, name: str = "witness.example/w1", port: int | None = None,
                 log: str = str(LOG.verifier)) -> None:
        self.tmp, self.name, self.log = tmp, name, log
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.key, self.state = tmp / f"{name.replace('/', '_')}.key", tmp / f"{name.replace('/', '_')}.db"
        self.service: Service | None = None

    def start(self) -> RunningWitness:
        self.service = Service("witness", "--init", "--name", self.name, "--key", str(self.key), "--state",
                               str(self.state), "--listen", f"127.0.0.1:{self.port}", "--log", self.log,
                               log=self.tmp / f"{self.name.replace('/', '_')}.log")
        self.service.wait_port(self.port)
        self.service.wait_output("witness ")
        return self

    @property
    def vkey(self) -> WitnessKey:
        assert self.service is not None
        line = next(x for x in self.service.output().splitlines() if x.startswith("witness "))
        return WitnessKey.parse(line.split()[1])

    def post(self, body: bytes, client: httpx.Client | None = None) -> httpx.Response:
        c = client or httpx
        return c.post(f"{self.url}/add-checkpoint", content=body, timeout=10)


@pytest.fixture
def witness(tmp_path: Path) -> Iterator[RunningWitness]:
    w = RunningWitness(tmp_path).start()
    yield w
    assert w.service is not None
    w.service.stop()


def test_every_status_over_http(witness: RunningWitness) -> None:
    r = witness.post(_body(0, 10))
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain")
    assert r.text.startswith("\u2014 witness.example/w1 ") and r.text.endswith("\n")
    t = tally(_note(10) + r.content, [witness.vkey])
    assert t.valid == (str(witness.vkey),)

    r = witness.post(_body(10, 25))
    assert r.status_code == 200 and tally(_note(25) + r.content, [witness.vkey]).satisfied(1)

    r = witness.post(_body(0, 30))  # the client does not know what the witness holds: it learns 25
    assert r.status_code == 409 and r.headers["content-type"] == SIZE_CONTENT_TYPE and r.text == "25\n"

    r = witness.post(_body(25, 30).replace(b"old 25", b"old 31"))
    assert r.status_code == 400

    other = SignerKey("packproof.example/other", bytes(range(32)))
    unknown = request_body(0, [], sign_checkpoint(Checkpoint(other.name, 1, LEAVES[0]), [other]))
    assert witness.post(unknown).status_code == 404

    impostor = SignerKey(ORIGIN, bytes(range(9, 41)))
    forged = request_body(25, consistency_proof(25, LEAVES[:30]),
                          sign_checkpoint(Checkpoint(ORIGIN, 30, root_from_leaf_hashes(LEAVES[:30])), [impostor]))
    assert witness.post(forged).status_code == 403

    assert witness.post(_body(25, 30, FORK)).status_code == 422  # a fork past what the witness holds
    assert witness.post(b"old 25\nnot base64\n\n" + _note(30)).status_code == 400
    assert witness.post(b"x" * 70_000).status_code == 400


def test_a_split_view_is_refused(witness: RunningWitness) -> None:
    """The operator signs two different checkpoints of size 20: the witness cosigns one, never both."""
    assert witness.post(_body(0, 20)).status_code == 200
    r = witness.post(_body(20, 20, FORK))
    assert r.status_code == 409 and r.text == "20\n"
    assert witness.post(_body(0, 20, FORK)).status_code == 409
    assert witness.post(_body(20, 20)).status_code == 200  # the same checkpoint again is fine


def test_racing_requests_never_roll_the_state_back(tmp_path: Path) -> None:
    """Many threads submit old 0 with different sizes at once to one witness (real SQLite file):
    exactly one wins; then racers extending from it: again one wins, and the state only grows."""
    w = Witness(CosignerKey("w.example/race", bytes(range(32))), [LOG.verifier], WitnessState(tmp_path / "s.db"))
    known = 0
    for _round in range(3):
        statuses: dict[int, int] = {}
        sizes = [known + 5 + 7 * k for k in range(12)]
        bodies = {n: _body(known, n) for n in sizes}
        barrier = threading.Barrier(len(sizes))

        def go(n: int, barrier: threading.Barrier, bodies: dict[int, bytes], statuses: dict[int, int]) -> None:
            barrier.wait()
            statuses[n] = w.add_checkpoint(bodies[n]).status

        threads = [threading.Thread(target=go, args=(n, barrier, bodies, statuses)) for n in sizes]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        winners = [n for n, s in statuses.items() if s == 200]
        assert len(winners) == 1 and all(s == 409 for n, s in statuses.items() if n not in winners), statuses
        state = w.state.get(ORIGIN)
        assert state is not None and state.size == winners[0] > known
        known = state.size
    w.state.close()


def test_state_survives_kill_9_mid_traffic(tmp_path: Path) -> None:
    """A client grows the log one checkpoint after another while the witness is killed with
    SIGKILL; after a restart on the same state file the witness still holds at least the largest
    size it ever answered 200 for, with that size's root, and refuses to go back."""
    w = RunningWitness(tmp_path).start()
    cosigned: list[int] = []
    stop = threading.Event()

    def traffic() -> None:
        old, n = 0, 0
        with httpx.Client() as client:
            while not stop.is_set() and n < len(LEAVES) - 7:
                n += 7
                try:
                    r = w.post(_body(old, n), client)
                except httpx.HTTPError:
                    return
                if r.status_code == 200:
                    cosigned.append(n)
                    old = n

    t = threading.Thread(target=traffic)
    t.start()
    deadline = time.monotonic() + 20
    while len(cosigned) < 40 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert w.service is not None
    w.service.kill()
    stop.set()
    t.join()
    assert len(cosigned) >= 40
    last = cosigned[-1]

    w.start()
    r = w.post(_body(0, last + 7))
    assert r.status_code == 409
    held = int(r.text)
    assert held >= last  # never behind what it vouched for; one more may have been stored unanswered
    assert w.post(_body(held, held)).status_code == 200  # same size, same root: it holds the honest root
    assert w.post(_body(held, held, FORK)).status_code == 409
    assert w.post(_body(last - 7, last - 7)).status_code == 409  # a rollback, refused after the restart
    w.service.stop()


def test_keygen_prints_the_vkey_and_refuses_to_overwrite(tmp_path: Path) -> None:
    key = tmp_path / "w.key"
    r = cli("witness", "keygen", "--key", str(key), "--name", "witness.example/kg")
    assert r.returncode == 0, r.stderr
    vkey = WitnessKey.parse(r.stdout.strip())
    assert vkey.name == "witness.example/kg" and key.stat().st_mode & 0o777 == 0o600
    r = cli("witness", "keygen", "--key", str(key), "--name", "witness.example/kg")
    assert r.returncode == 2 and "exists" in r.stderr
    assert cli("witness", "vkey", "--key", str(key)).stdout.strip() == str(vkey)


@pytest.mark.parametrize(("args", "says"), [
    (["--state", "s.db", "--log", "x"], "needs --key"),
    (["--key", "k", "--state", "s.db"], "--log VKEY"),
    (["--key", "k", "--state", "s.db", "--log", "nonsense"], "--log"),
    (["--key", "missing.key", "--state", "s.db", "--log", str(LOG.verifier)], "does not exist"),
    (["--key", "k", "--state", "s.db", "--log", str(LOG.verifier), "--listen", "nowhere"], "HOST:PORT"),
])
def test_bad_flags_are_exit_2_with_a_line(tmp_path: Path, args: list[str], says: str) -> None:
    full = [a if a not in ("k", "s.db", "missing.key") else str(tmp_path / a) for a in args]
    r = cli("witness", *full)
    assert r.returncode == 2 and says in r.stderr and "Traceback" not in r.stderr, r.stderr


def test_a_bad_witness_entry_stops_the_sealer_at_start_with_a_line(tmp_path: Path) -> None:
    r = cli("seal", "--data-dir", str(tmp_path / "data"), "--witness", "http://127.0.0.1:1 not-a-vkey")
    assert r.returncode == 2 and "--witness" in r.stderr and "Traceback" not in r.stderr, r.stderr
    r = cli("seal", "--data-dir", str(tmp_path / "data"), "--witness", "127.0.0.1:1")
    assert r.returncode == 2 and "URL" in r.stderr, r.stderr


@pytest.mark.parametrize(("args", "says"), [
    (["--witness", "nonsense"], "--witness"),
    (["--witness", str(CosignerKey("w.example/a", bytes(range(32))).verifier), "--min-witnesses", "2"],
     "--min-witnesses 2"),
    (["--min-witnesses", "1"], "--min-witnesses 1"),
])
def test_verify_refuses_bad_witness_flags(tmp_path: Path, args: list[str], says: str) -> None:
    """Read before the bundle: a bundle that is not one is not what the message names."""
    bundle = tmp_path / "b.json"
    bundle.write_text("{}")
    r = cli("verify", "--bundle", str(bundle), *args)
    assert r.returncode == 2 and says in r.stderr and "Traceback" not in r.stderr, r.stderr
