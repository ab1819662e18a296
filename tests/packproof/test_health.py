"""/health's rule (packproof.health.problems): pure, so each case is a status and a time."""

from __future__ import annotations

from packproof.health import MAX_AGE, problems

NOW = 1_800_000_000.0


def ingestor(state: str, written: float | None, **more: object) -> dict[str, object]:
    st: dict[str, object] = {"component": "ingestor", "client_id": "ing-1", "state": state, "since": "t0",
                             "losses": 0, "takeovers": 0, "last_loss": None, **more}
    if written is not None:
        st["written_unix"] = written
    return st


def test_a_fresh_connected_ingestor_and_a_stopped_one_are_no_problem() -> None:
    assert problems({"ingestor:ing-1": ingestor("connected", NOW - 4)}, NOW) == []
    assert problems({"ingestor:ing-1": ingestor("stopped", NOW - 3600)}, NOW) == []


def test_a_status_that_stopped_being_rewritten_is_a_dead_process() -> None:
    found = problems({"ingestor:ing-1": ingestor("connected", NOW - MAX_AGE - 5),
                      "sealer": {"component": "sealer", "state": "sealing", "since": "t0",
                                 "written_unix": NOW - 600}}, NOW)
    assert len(found) == 2
    assert found[0].startswith("ingestor:ing-1: says connected but last reported 35 s ago")
    assert found[1].startswith("sealer: says sealing but last reported 600 s ago")


def test_a_halted_sealer_is_named() -> None:
    found = problems({"sealer": {"component": "sealer", "state": "halted", "since": "t1", "written_unix": NOW}}, NOW)
    assert found == ["sealer: sealing stopped since t1 (the sealer's log says why: a ledger file that does not "
                     "continue the store's chain, or a lost sealer lock)"]


def test_a_malformed_row_is_a_problem_not_an_error() -> None:
    found = problems({"ingestor:x": {"component": "ingestor", "state": "connected", "written_unix": "yesterday"},
                      "ingestor:y": ingestor("connected", NOW, last_loss="not a dict")}, NOW)
    assert [f.split(":")[1] for f in found] == ["x", "y"]
    assert all("malformed" in f for f in found)


def test_anchoring_failing_or_late_is_named_with_what_the_chain_holds() -> None:
    confirmed = {"size": 120, "block_number": 57, "block_time": 1, "tx_hash": "0xab"}
    failing = {"component": "anchoring", "error": "eth_blockNumber: ConnectionError: refused", "failures": 4,
               "error_since": 1_796_000_000.0, "confirmed": confirmed, "late": True, "latest_size": 300}
    assert problems({"anchoring": failing}, 1_796_000_100.0) == [
        "anchoring: failing since 2026-11-30T00:53:20.000Z (4 attempts): eth_blockNumber: ConnectionError: refused; "
        "the chain holds checkpoint 120 (block 57)"]
    late = {"component": "anchoring", "error": None, "confirmed": None, "late": True, "latest_size": 300,
            "confirmations": 12}
    assert problems({"anchoring": late}, 0.0) == [
        "anchoring: checkpoint 300 not anchored with 12 confirmations in time; no anchor confirmed yet"]
    assert problems({"anchoring": {**late, "late": False}}, 0.0) == []
