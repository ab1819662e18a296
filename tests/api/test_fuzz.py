"""Fuzz the REST API from its own OpenAPI document (schemathesis): no input gives a 5xx.

A real `packproof api` serves a store and ledger made by a real `packproof run`.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error

from packproof.net import free_port
from tests.conftest import Service, cli


@pytest.fixture(scope="module")
def api_schema(tmp_path_factory: pytest.TempPathFactory) -> Iterator[schemathesis.BaseSchema]:
    tmp: Path = tmp_path_factory.mktemp("fuzz")
    r = cli("run", "--data-dir", str(tmp / "d"), "--api-port", str(free_port()), "--duration", "2",
            "--shipments", "2", "--packs", "2", "--rate", "5", timeout=90)
    assert r.returncode == 0, r.stdout + r.stderr
    port = free_port()
    api = Service("api", "--data-dir", str(tmp / "d"), "--port", str(port), log=tmp / "api.log")
    try:
        api.wait_port(port)
        yield schemathesis.openapi.from_url(f"http://127.0.0.1:{port}/openapi.json")
    finally:
        api.stop()


def test_no_input_makes_the_api_fail(api_schema: schemathesis.BaseSchema) -> None:
    """Every operation, with generated paths, queries and headers; checked: never a 5xx."""
    operations = [result.ok() for result in api_schema.get_all_operations()]
    # the event stream never ends by itself (a case would wait for its end): its bad input (a long
    # `shipment`) and its bound are tested in tests/api/test_dashboard.py
    operations = [o for o in operations if o.path != "/events/stream"]
    assert len(operations) >= 10
    for operation in operations:

        @given(case=operation.as_strategy())
        @settings(max_examples=25, deadline=None, database=None, suppress_health_check=list(HealthCheck))
        def no_server_error(case: schemathesis.Case) -> None:
            case.call_and_validate(checks=[not_a_server_error])

        no_server_error()
