"""The deployment's moving parts that can run without a container engine.

docker-compose.yml is checked statically (tests/test_compose.py); what its services rely on
is run here for real: the store password kept out of the URL (a PostgreSQL login whose
password holds `/ @ : %`), the least-privilege role the PostgreSQL init script makes, and
each service's healthcheck, a `packproof health` command that must pass against a running
service and fail against a stopped one.
"""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import ROOT, MosquittoBroker, Service, _pg_admin, cli
from tests.test_compose import COMPOSE

INIT_SCRIPT = ROOT / "deploy" / "postgres-init" / "10-packproof-role.sh"
PASSWORD = "p/w@h:o%st?#&= '\\x"  # what a generator may produce; each of / @ : % broke the raw URL


@pytest.fixture
def app_role() -> Iterator[tuple[str, str]]:
    """A throwaway login made by the compose file's PostgreSQL init script: (role, store URL without password)."""
    role = f"pp_role_{uuid.uuid4().hex[:10]}"
    admin = _pg_admin()
    info = admin.info
    env = {**os.environ, "PACKPROOF_DB_ROLE": role, "PACKPROOF_DB_PASSWORD": PASSWORD, "PGHOST": info.host,
           "PGPORT": str(info.port), "POSTGRES_USER": info.user, "POSTGRES_DB": info.dbname}
    try:
        made = subprocess.run(["sh", str(INIT_SCRIPT)], env=env, capture_output=True, text=True, timeout=30)
        assert made.returncode == 0, made.stderr
        assert PASSWORD not in made.stdout + made.stderr
        yield role, f"postgresql://{role}@{info.host}:{info.port}/{info.dbname}"
    finally:
        admin.execute(f'DROP SCHEMA IF EXISTS "{role}" CASCADE')
        admin.execute(f'REVOKE ALL ON DATABASE "{info.dbname}" FROM "{role}"')
        admin.execute(f'DROP ROLE IF EXISTS "{role}"')
        admin.close()


def test_the_init_script_makes_a_least_privilege_role_owning_one_schema(app_role: tuple[str, str]) -> None:
    role, _ = app_role
    with _pg_admin() as admin:
        flags = admin.execute("SELECT rolsuper, rolcreatedb, rolcreaterole, rolcanlogin FROM pg_roles "
                              "WHERE rolname = %s", (role,)).fetchone()
        assert flags == (False, False, False, True)
        owner = admin.execute("SELECT nspowner::regrole::text FROM pg_namespace WHERE nspname = %s", (role,)).fetchone()
        assert owner == (role,)
        assert admin.execute("SELECT has_schema_privilege(%s, 'public', 'CREATE')", (role,)).fetchone() == (False,)
    assert INIT_SCRIPT.stat().st_mode & 0o111, "the image runs only an executable script as a program"


def test_the_postgres_healthcheck_logs_in_as_the_role_the_init_script_made(app_role: tuple[str, str]) -> None:
    """The compose file's PostgreSQL healthcheck line, run here against the local server and the
    `test` database: it passes once the role exists and fails for a role that does not."""
    role, url = app_role
    line = COMPOSE["services"]["postgres"]["healthcheck"]["test"][1].replace("$$", "$")
    assert " -U packproof -d packproof " in line
    with _pg_admin() as admin:
        dbname, port = admin.info.dbname, admin.info.port

    def run(user: str) -> int:
        cmd = line.replace(" -U packproof -d packproof ", f" -U {user} -d {dbname} -p {port} ")
        return subprocess.run(["sh", "-c", cmd], env={**os.environ, "PACKPROOF_DB_PASSWORD": PASSWORD},
                              capture_output=True, timeout=30).returncode

    assert run(role) == 0
    assert run(role + "_absent") != 0


def test_a_store_password_with_url_characters_reaches_libpq_intact(app_role: tuple[str, str]) -> None:
    from packproof.app.config import load
    from packproof.store import Store

    role, url = app_role
    os.environ["PACKPROOF_STORE"], os.environ["PACKPROOF_STORE_PASSWORD"] = url, PASSWORD
    try:
        settings = load()
    finally:
        del os.environ["PACKPROOF_STORE"], os.environ["PACKPROOF_STORE_PASSWORD"]
    assert settings.store_url is not None

    async def open_it() -> tuple[str | None, str, str]:
        store = await Store.open(settings.store_url)  # type: ignore[arg-type]
        try:
            conn = store._db._conn  # type: ignore[attr-defined]
            schema = await (await conn.execute("SELECT current_user || ' ' || current_schema()")).fetchone()
            return conn.info.password, schema[0], store.label
        finally:
            await store.close()

    password, who, label = asyncio.run(open_it())
    assert password == PASSWORD  # as given: nothing cut at a '/', '@' or ':', no '%' decoded twice
    assert who == f"{role} {role}"  # the store's tables went into the role's own schema
    assert PASSWORD not in label


def test_the_cli_takes_the_password_apart_from_the_url_and_never_prints_it(app_role: tuple[str, str],
                                                                          tmp_path: Path) -> None:
    _, url = app_role
    env = {"PACKPROOF_STORE": url, "PACKPROOF_STORE_PASSWORD": PASSWORD}
    made = cli("devices", "register", "dev-pw", "--shipment", "SHP-PW", "--unsigned", "--data-dir", str(tmp_path),
               env=env)  # a writer makes the store: `devices list` only reads one
    assert made.returncode == 0, made.stderr
    r = cli("devices", "list", env=env)
    assert r.returncode == 0 and "dev-pw" in r.stdout, r.stderr
    shown = cli("config", "seal", env={"PACKPROOF_STORE": url, "PACKPROOF_STORE_PASSWORD": PASSWORD})
    assert shown.returncode == 0, shown.stderr
    assert re.search(r"store_password += \*\*\*   \(env PACKPROOF_STORE_PASSWORD\)", shown.stdout), shown.stdout
    for out in (made, r, shown):
        assert PASSWORD not in out.stdout + out.stderr


@pytest.mark.parametrize("command", [("devices", "list"), ("config", "seal"), ("seal",)])
def test_a_raw_password_in_the_url_is_refused_in_one_line_without_echoing_it(command: tuple[str, ...]) -> None:
    raw = f"postgresql://packproof:{PASSWORD}@127.0.0.1:5432/test"
    r = cli(*command, env={"PACKPROOF_STORE": raw}, timeout=30)
    assert r.returncode != 0
    assert "Traceback" not in r.stderr
    assert "percent-encoded" in r.stderr and "PACKPROOF_STORE_PASSWORD" in r.stderr
    for part in ("p/w", "h:o", "o%st"):
        assert part not in r.stdout + r.stderr


@pytest.mark.parametrize("url, shown", [
    ("postgresql://u:p/w@h:o%st@db:5432/app", "postgresql://u:***@db:5432/app"),
    ("postgresql://u:secret@db/app?password=x&sslmode=require", "postgresql://u:***@db/app?password=***&sslmode=require"),
    ("postgresql://u@db/app?sslmode=require&password=a%2Fb", "postgresql://u@db/app?sslmode=require&password=***"),
    ("postgresql://db/app", "postgresql://db/app"),
    ("/var/lib/packproof.db", "/var/lib/packproof.db"),
])
def test_redact_masks_a_password_even_when_it_breaks_the_url(url: str, shown: str) -> None:
    from packproof.db.urls import redact

    assert redact(url) == shown


# ---- healthchecks: each passes against its running service and fails against a stopped one ----

def _health(service: str, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return cli("health", service, *args, env=env, timeout=60)


def _until_healthy(service: str, *args: str, svc: Service, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while (r := _health(service, *args)).returncode != 0:
        assert svc.proc.poll() is None and time.monotonic() < deadline, f"{r.stderr}\n{svc.output()}"
        time.sleep(0.3)
    assert "Traceback" not in r.stderr


def _unhealthy(service: str, *args: str, why: str) -> None:
    r = _health(service, *args)
    assert r.returncode != 0, r.stdout
    assert why in r.stderr, r.stderr
    assert "Traceback" not in r.stderr


@pytest.mark.e2e
def test_the_ingest_healthcheck_passes_only_while_that_ingestor_ingests(mosquitto: MosquittoBroker, store_url: str,
                                                                      tmp_path: Path) -> None:
    ingest = ("--no-seal", "--store", store_url, "--data-dir", str(tmp_path), "--mqtt-port", str(mosquitto.port),
              "--mqtt-username", "packproof-ingestor")
    check = ("--store", store_url, "--data-dir", str(tmp_path), "--client-id")
    svc = Service("ingest", *ingest, "--client-id", "ing-a", log=tmp_path / "a.log", env=mosquitto.ingestor_env())
    try:
        svc.wait_output("ingesting from")
        _until_healthy("ingest", *check, "ing-a", svc=svc)
        _unhealthy("ingest", *check, "ing-b", why="no ingestor with client id 'ing-b'")  # another one: not it
        mosquitto.process.stop()  # the broker goes: the ingestor is up but cannot do its job
        deadline = time.monotonic() + 20
        while _health("ingest", *check, "ing-a").returncode == 0:
            assert time.monotonic() < deadline, svc.output()
            time.sleep(0.3)
        _unhealthy("ingest", *check, "ing-a", why="disconnected")
        mosquitto.process.start()
        _until_healthy("ingest", *check, "ing-a", svc=svc)
    finally:
        assert svc.stop() == 0, svc.output()
    _unhealthy("ingest", *check, "ing-a", why="is stopped")  # stopped cleanly: it said so

    svc = Service("ingest", *ingest, "--client-id", "ing-a", log=tmp_path / "b.log", env=mosquitto.ingestor_env())
    svc.wait_output("ingesting from")
    _until_healthy("ingest", *check, "ing-a", "--max-age", "7", svc=svc)
    time.sleep(6)  # a running ingestor reports every 5 s: still healthy with --max-age 7
    _until_healthy("ingest", *check, "ing-a", "--max-age", "7", svc=svc)
    svc.kill()  # died without a word: its status goes stale
    time.sleep(8)
    _unhealthy("ingest", *check, "ing-a", "--max-age", "7", why="last reported")


@pytest.mark.e2e
def test_the_seal_healthcheck_is_not_fooled_by_the_ledger_an_earlier_run_left(store_url: str, tmp_path: Path) -> None:
    check = ("--store", store_url, "--data-dir", str(tmp_path))
    seal = ("--store", store_url, "--data-dir", str(tmp_path), "--seal-interval", "0.3")
    svc = Service("seal", *seal, log=tmp_path / "a.log")
    try:
        _until_healthy("seal", *check, svc=svc)
    finally:
        assert svc.stop() == 0, svc.output()
    assert (tmp_path / "ledger.pub").exists()  # what the old healthcheck looked for
    _unhealthy("seal", *check, why="no sealer holds the sealer lock")  # a second `up`, before the sealer runs

    svc = Service("seal", *seal, log=tmp_path / "b.log")
    _until_healthy("seal", *check, svc=svc)
    svc.kill()  # the lock ends with the process
    _unhealthy("seal", *check, why="no sealer holds the sealer lock")


def _mosquitto_healthcheck(port: int) -> str:
    """The compose file's Mosquitto healthcheck as the container's shell runs it, on this port."""
    test = COMPOSE["services"]["mosquitto"]["healthcheck"]["test"]
    assert test[0] == "CMD-SHELL" and " -p 1883 " in test[1]
    return test[1].replace("$$", "$").replace(" -p 1883 ", f" -p {port} ")


@pytest.mark.e2e
def test_the_mosquitto_healthcheck_needs_a_publish_the_acl_allows(mosquitto: MosquittoBroker) -> None:
    if shutil.which("mosquitto_pub") is None:
        pytest.skip("mosquitto_pub is not installed here (apt-get install mosquitto-clients)")
    command = _mosquitto_healthcheck(mosquitto.port)
    env = {**os.environ, "PACKPROOF_MQTT_PASSWORD": mosquitto.ingestor_password}

    def run(cmd: str, **extra: str) -> int:
        return subprocess.run(["sh", "-c", cmd], env={**env, **extra}, capture_output=True, timeout=30).returncode

    assert run(command) == 0
    topic = re.search(r"-t (\S+)", command)
    assert topic is not None
    denied = command.replace(topic.group(1), "packproof/v1/healthcheck/healthcheck/telemetry")  # ACL: read only
    assert run(denied) != 0, "a publish the ACL denies must fail the check (MQTT 5 PUBACK reason code)"
    assert run(command, PACKPROOF_MQTT_PASSWORD="wrong") != 0
    mosquitto.process.stop()
    assert run(command) != 0
