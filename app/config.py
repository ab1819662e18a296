"""Configuration in one place: every service's settings, and where each value came from.

Four sources, the first that names a setting wins:

    1. a command-line flag           --mqtt-port 1884
    2. an environment variable       PACKPROOF_MQTT_PORT=1884   (PACKPROOF_<SECTION>_<KEY>)
    3. a TOML file                   [mqtt] port = 1884         (--config PATH or PACKPROOF_CONFIG)
    4. the default below

Without `--config` and without PACKPROOF_CONFIG no file is read (there is no implicit
search path, so what runs never depends on the directory it started in); a file that is
named but missing is an error. The file holds the settings of every service, so one file
can serve a whole deployment: an unknown key anywhere in it is an error, naming the key
and the file, rather than a typo silently ignored.

pydantic-settings reads the environment (prefix, nesting, case, empty values) and the
TOML file; `load` merges the layers itself so that every value keeps its source, which is
what `packproof config COMMAND` prints and what a validation error names. Secrets (MQTT
password, a password inside the store URL) are never shown: see `shown`.
"""

from __future__ import annotations

import difflib
import os
import tomllib
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    SecretStr,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, EnvSettingsSource, SettingsConfigDict, TomlConfigSettingsSource
from pydantic_settings.exceptions import SettingsError

from packproof.db.urls import engine_of, redact, url_problem, with_password
from packproof.errors import ConfigError
from packproof.paths import DataDir
from packproof.reading import share_group_problem

ENV_PREFIX = "PACKPROOF_"
CONFIG_ENV = "PACKPROOF_CONFIG"
DEFAULT = "default"


class Section(BaseModel):
    """One `[section]` of the file: unknown keys are refused, values fixed once loaded."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class MqttConfig(Section):
    """How a client (ingestor, simulator) reaches the broker."""

    host: str = Field("127.0.0.1", description="MQTT broker host.")
    port: int = Field(1883, ge=1, le=65535, description="MQTT broker port.")
    username: str | None = Field(None, description="MQTT login, when the broker requires one.")
    password: SecretStr | None = Field(None, description="MQTT password (better from the environment or a file "
                                                         "than a flag, which `ps` shows).")
    ca: str | None = Field(None, description="Connect over TLS, trusting this CA certificate (PEM).")
    client_id: str = Field("packproof-ingestor", min_length=1,
                           description="The ingestor's MQTT client id (persistent session); one per ingestor.")
    share_group: str | None = Field(None, description="Subscribe through the MQTT shared subscription "
                                                      "$share/GROUP/...: ingestors of one group (each with its own "
                                                      "client id) split the telemetry.")
    protocol: Literal["3.1.1", "5"] = Field("3.1.1", description="The ingestor's MQTT version; 5 (always with a "
                                                                  "share group) keeps a session that expires.")

    @model_validator(mode="before")
    @classmethod
    def _share_group_speaks_5(cls, data: Any) -> Any:
        """A shared subscription is MQTT 5: the ingestor speaks 5 with a share group whatever `protocol`
        says, so the value shown (the start-up banner, `packproof config`) is 5 too, not 3.1.1."""
        if isinstance(data, dict) and data.get("share_group"):
            data = {**data, "protocol": "5"}
        return data
    session_expiry: int = Field(600, ge=0, description="MQTT 5: seconds the broker keeps the ingestor's session "
                                                       "while it is away (a share group member still gets its "
                                                       "share meanwhile).")

    @field_validator("share_group")
    @classmethod
    def _plain_group(cls, v: str | None) -> str | None:
        if v is not None and (problem := share_group_problem(v)):
            raise ValueError(problem)
        return v


class IngestConfig(Section):
    seal: bool = Field(True, description="Also run the sealer in this process.")
    verify_signatures: bool = Field(True, description="Check device signatures.")
    verify_workers: int = Field(0, ge=0, le=64, description="Processes that check signatures beside the ingestor "
                                                            "(0: the ingestor does); frees its GIL for the rest.")
    profiles: Path | None = Field(None, description="JSON file of extra UN 38.3 profiles.")
    max_clock_ahead: float = Field(300.0, gt=0, description="Seconds a reading may be dated ahead of the ingestor's "
                                                            "clock before it is quarantined (clock_skew).")
    earliest_ts: str = Field("2020-01-01T00:00:00", pattern=r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}$",
                             description="UTC time (YYYY-MM-DDTHH:MM:SS) before which a reading is quarantined "
                                         "(ts_too_early).")
    max_seq_jump: int = Field(1_000_000, ge=1, description="How far above its device's highest stored seq a reading "
                                                          "may be before it is quarantined (seq_jump).")


class SealConfig(Section):
    interval: float = Field(1.0, ge=0.05, description="Seconds between blocks at most.")
    key_file: Path | None = Field(None, description="The ledger's private key (unset: DATA_DIR/ledger.key): "
                                                    "elsewhere, the data dir can be shared read-only (API, "
                                                    "auditors) without it.")
    tiles_dir: Path | None = Field(None, description="Where the sealer publishes the transparency log as static "
                                                     "C2SP tlog-tiles and its checkpoint (unset: DATA_DIR/tiles).")
    log_origin: str | None = Field(None, description="The log's origin (checkpoint first line and key name), used "
                                                     "when the log starts; unset: packproof.example/<ledger key id>. "
                                                     "Once chosen it is kept in the store.")


class ApiConfig(Section):
    host: str = Field("127.0.0.1", description="Address the API listens on.")
    port: int = Field(8000, ge=1, le=65535, description="Port the API listens on.")
    stale_after: float = Field(120.0, ge=1, description="Seconds of silence before a pack is stale.")
    admin_token_file: Path | None = Field(None, description="File holding the bearer token that endpoints "
                                                            "changing state require; without it they are off.")
    read_token_file: Path | None = Field(None, description="File holding a bearer token that reads require; "
                                                           "without it reads are open.")
    handover_window_s: float = Field(300.0, ge=0, description="Seconds (in the readings' time base) either side "
                                     "of a custody change of hands within which an excursion names both "
                                     "sides; `packproof run` writes its simulation's own into the data "
                                     "directory, used when this is not set.")
    notify: bool = Field(False, description="Announce each accepted custody event on the [mqtt] broker "
                                            "(packproof/v1/{shipment}/custody, retained), logged in as [mqtt] "
                                            "username; a broker that is down never fails an event.")


class BrokerConfig(Section):
    host: str = Field("127.0.0.1", description="Address the embedded broker listens on.")
    port: int = Field(1883, ge=1, le=65535, description="Port the embedded broker listens on.")
    password_file: Path | None = Field(None, description="Require logins from this file (`packproof passwd`, "
                                                         "Mosquitto format); devices then use only their own topics.")
    services: list[str] = Field(["packproof-ingestor"], description="Service accounts (the ingestor) that read "
                                                                    "all telemetry.")
    custody_readers: list[str] = Field([], description="Logins of parties' systems that may only subscribe to "
                                                       "custody notifications (packproof/v1/+/custody); give "
                                                       "each a password with `packproof passwd`.")
    certfile: Path | None = Field(None, description="TLS certificate (PEM): the listener speaks TLS only.")
    keyfile: Path | None = Field(None, description="TLS private key (PEM) for the certificate.")


class FleetConfig(Section):
    """The simulated fleet (`simulate`, and `run`): its size, signals and store-and-forward."""

    shipments: int = Field(8, ge=1, description="Shipments in the simulated fleet.")
    packs: int = Field(4, ge=1, description="Packs (sensors) per shipment.")
    scenario: str = Field("mixed", description="'mixed' (each excursion kind, plus nominal) or a scenario name.")
    rate: float = Field(1.0, ge=0.001, description="Readings per second per pack.")
    seed: int = Field(1, description="Makes the fleet and its signals deterministic.")
    unsigned_shipments: int = Field(1, ge=0, description="Shipments whose trackers cannot sign (the last ones; "
                                                        "at most all but one). `run` and `simulate` must agree "
                                                        "on one data directory: the store keeps each device's key.")
    step_s: float = Field(60.0, ge=0.001, description="Simulated seconds of travel per reading.")
    duration: float | None = Field(None, ge=0.1, description="Stop cleanly after this many seconds.")
    count: int | None = Field(None, ge=1, description="Stop after this many readings per pack.")
    register_devices: bool = Field(True, description="Register the fleet's devices and keys in the store.")
    password_file: Path | None = Field(None, description="The broker's password file: give each device an MQTT "
                                                         "login there (kept in DATA_DIR/sim-credentials.json) and "
                                                         "connect with it.")
    buffer_max: int = Field(100_000, ge=1, description="Readings each device buffers until acknowledged; when "
                                                       "full the oldest is dropped (counted).")
    backlog_rate: float = Field(50.0, ge=0.001, description="Messages per second per device at most when "
                                                            "catching up.")
    resend_after: float = Field(5.0, ge=0.001, description="Seconds before a reading the ingestor has not "
                                                           "acknowledged is sent again.")
    drain_timeout: float = Field(30.0, ge=0, description="At the end, seconds to wait until every reading is "
                                                         "acknowledged end to end (0: do not wait).")
    outage_every: float | None = Field(None, ge=0.001, description="Cut device links every this many seconds "
                                                                   "(off by default).")
    outage_for: float = Field(10.0, ge=0.001, description="Seconds each outage lasts.")
    outage_devices: float = Field(0.25, ge=0, le=1, description="Fraction of the devices that have outages "
                                                                "(picked with the seed).")
    outage_random: bool = Field(False, description="Outages start at random (exponential, mean outage_every) "
                                                   "instead of periodically.")


class RunConfig(Section):
    """What only `packproof run` (everything in one process) has."""

    mqtt_port: int = Field(0, ge=0, le=65535, description="Embedded broker port; 0 picks a free one.")


class WitnessingConfig(Section):
    """The witnesses the sealer asks to cosign each checkpoint (c2sp.org/tlog-witness), beside sealing."""

    witnesses: list[str] = Field([], description="A witness as '<URL> <witness vkey>' (repeatable): POST "
                                                 "<URL>/add-checkpoint; its cosignatures are kept and served "
                                                 "with the checkpoint.")
    timeout: float = Field(5.0, gt=0, description="Seconds one witness request may take.")
    late_after: float = Field(60.0, gt=0, description="Seconds after which a checkpoint not yet cosigned by "
                                                      "every witness is reported late (/health).")


class AnchoringConfig(Section):
    """The log's checkpoints anchored on an Ethereum chain (issue 17): on when rpc, contract and key_file are set."""

    rpc: str | None = Field(None, description="JSON-RPC URL of an Ethereum node (http(s)://...): a public "
                                              "endpoint will do, transactions are signed here.")
    contract: str | None = Field(None, description="The PackproofAnchor contract's address (0x + 40 hex), printed "
                                                   "by `packproof anchor deploy`.")
    key_file: Path | None = Field(None, description="The anchoring account's key (made by `packproof anchor key`, "
                                                    "mode 0600); the account pays the gas.")
    chain_id: int | None = Field(None, ge=1, description="The chain the node must serve (EIP-155): 1 mainnet, "
                                                         "11155111 Sepolia, 31337 a Hardhat dev node.")
    every: float = Field(600.0, ge=0, description="Seconds between anchors at most (one transaction each).")
    confirmations: int = Field(12, ge=1, description="Blocks on top of an anchor's block, itself included, before "
                                                     "it counts as confirmed (a reorg shallower than this is "
                                                     "followed; 12 suits mainnet's ~2.4 min, a dev node 1).")
    timeout: float = Field(10.0, gt=0, description="Seconds one JSON-RPC request may take.")
    stop_wait: float = Field(60.0, ge=0, description="Seconds to wait, when stopping, for the last checkpoint's "
                                                     "anchor to be mined.")

    @field_validator("rpc")
    @classmethod
    def _http(cls, v: str | None) -> str | None:
        if v is not None and not v.startswith(("http://", "https://")):
            raise ValueError(f"expected an http(s):// JSON-RPC URL, got {v!r}")
        return v

    @field_validator("contract")
    @classmethod
    def _address(cls, v: str | None) -> str | None:
        if v is not None and not (len(v) == 42 and v[:2] in ("0x", "0X") and
                                  all(c in "0123456789abcdefABCDEF" for c in v[2:])):
            raise ValueError(f"expected a contract address (0x + 40 hex digits), got {v!r}")
        return v


class Settings(BaseSettings):
    """Every setting of every packproof service; a command uses the keys its flags name."""

    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, env_nested_delimiter="_", env_nested_max_split=1,
                                      env_ignore_empty=True, extra="forbid", frozen=True)

    data_dir: Path = Field(Path("data"), description="Where the ledger, its keys and the SQLite store live.")
    store: str | None = Field(None, description="Store URL: sqlite:///PATH or postgresql://USER@HOST/DB "
                                                "(unset: sqlite:///DATA_DIR/packproof.db).")
    store_password: SecretStr | None = Field(None, description="The PostgreSQL store's password, kept out of the "
                                                               "URL: any characters, none encoded (better from "
                                                               "the environment than a flag, which `ps` shows).")
    intake_key_file: Path | None = Field(None, description="The intake key every writer of the store shares "
                                                           "(unset: DATA_DIR/intake.key, made on first use); when "
                                                           "set it must exist: `packproof intake-key FILE` makes it.")
    mqtt: MqttConfig = MqttConfig()
    ingest: IngestConfig = IngestConfig()
    seal: SealConfig = SealConfig()
    api: ApiConfig = ApiConfig()
    broker: BrokerConfig = BrokerConfig()
    fleet: FleetConfig = FleetConfig()
    run: RunConfig = RunConfig()
    witnessing: WitnessingConfig = WitnessingConfig()
    anchoring: AnchoringConfig = AnchoringConfig()

    _sources: dict[str, str] = PrivateAttr(default_factory=dict)
    _config_file: Path | None = PrivateAttr(default=None)

    @field_validator("store")
    @classmethod
    def _known_scheme(cls, v: str | None) -> str | None:
        if v is None or "://" not in v:
            return v  # unset, or a bare path: SQLite
        try:
            engine = engine_of(v)
        except ConfigError as exc:
            raise ValueError(str(exc)) from exc
        if engine == "postgresql" and (problem := url_problem(v)):
            raise ValueError(f"store URL {redact(v)!r} does not parse ({problem}): a password inside a URL must be "
                             "percent-encoded; better, leave it out and set PACKPROOF_STORE_PASSWORD")
        return v

    @field_validator("store_password")
    @classmethod
    def _password_needs_postgresql(cls, v: SecretStr | None, info: ValidationInfo) -> SecretStr | None:
        store = info.data.get("store")
        if v is not None and (store is None or "://" not in store or engine_of(store) != "postgresql"):
            raise ValueError("a store password is for a PostgreSQL store (postgresql://USER@HOST/DB)")
        return v

    @property
    def store_url(self) -> str | None:
        """The store URL to open: `store` with `store_password` passed to libpq unchanged (see with_password)."""
        if self.store is None or self.store_password is None:
            return self.store
        return with_password(self.store, self.store_password.get_secret_value())

    def source_of(self, key: str) -> str:
        """Where a dotted key's value came from: 'flag --x', 'env PACKPROOF_X', 'file F' or 'default'
        (mqtt.protocol: 'share group' when a share group made it 5, see `MqttConfig`)."""
        if key == "mqtt.protocol" and self.mqtt.share_group and self._sources.get(key, DEFAULT) == DEFAULT:
            return "share group"
        return self._sources.get(key, DEFAULT)

    @property
    def config_file(self) -> Path | None:
        return self._config_file


def env_name(key: str) -> str:
    """The environment variable of a dotted key: mqtt.client_id -> PACKPROOF_MQTT_CLIENT_ID."""
    return ENV_PREFIX + key.replace(".", "_").upper()


def field_of(key: str) -> Any:
    """The pydantic FieldInfo of a dotted key (KeyError for an unknown one)."""
    model: type[BaseModel] = Settings
    *sections, name = key.split(".")
    for s in sections:
        model = model.model_fields[s].annotation  # type: ignore[assignment]
    return model.model_fields[name]


def all_keys() -> list[str]:
    keys = []
    for name, f in Settings.model_fields.items():
        if isinstance(f.annotation, type) and issubclass(f.annotation, Section):
            keys += [f"{name}.{sub}" for sub in f.annotation.model_fields]
        else:
            keys.append(name)
    return keys


def _flatten(data: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for k, v in data.items():
        if isinstance(v, Mapping) and not prefix:
            flat.update(_flatten(v, f"{k}."))
        else:
            flat[prefix + k] = v
    return flat


def _nest(flat: Mapping[str, Any]) -> dict[str, Any]:
    nested: dict[str, Any] = {}
    for key, v in flat.items():
        *sections, name = key.split(".")
        node = nested
        for s in sections:
            node = node.setdefault(s, {})
            if not isinstance(node, dict):  # `mqtt = 5` in the file: the validator names it
                break
        else:
            node[name] = v
    return nested


def config_path(flag: Path | None) -> tuple[Path | None, str]:
    """The config file to read and who named it; (None, ...) when nobody did."""
    if flag is not None:
        return flag, "--config"
    named = os.environ.get(CONFIG_ENV)
    return (Path(named), CONFIG_ENV) if named else (None, "")


def _read_file(path: Path, named_by: str) -> dict[str, Any]:
    if not path.is_file():
        raise ConfigError(f"config file {path} (from {named_by}) does not exist or is not a file")
    try:
        return dict(TomlConfigSettingsSource(Settings, toml_file=path)())
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"config file {path} is not valid TOML: {exc}") from exc
    except OSError as exc:
        raise ConfigError(f"config file {path}: cannot read it: {exc}") from exc


def _read_env() -> dict[str, Any]:
    try:
        return dict(EnvSettingsSource(Settings)())
    except SettingsError as exc:  # e.g. a list setting that is not JSON
        raise ConfigError(f"environment: {exc}") from exc


def load(flags: Mapping[str, Any] | None = None, flag_names: Mapping[str, str] | None = None,
         config_file: Path | None = None) -> Settings:
    """Settings from flags (dotted key -> value, None meaning 'not given'), env, the file, defaults.

    Raises ConfigError naming every bad key, its source and what is wrong with it.
    """
    path, named_by = config_path(config_file)
    layers: list[tuple[dict[str, Any], Any]] = []  # lowest precedence first: (flat values, key -> source)
    if path is not None:
        layers.append((_flatten(_read_file(path, named_by)), lambda _k: f"file {path}"))
    layers.append((_flatten(_read_env()), lambda k: f"env {env_name(k)}"))
    names = flag_names or {}
    layers.append(({k: v for k, v in (flags or {}).items() if v is not None},
                   lambda k: f"flag {names.get(k, '--' + k)}"))
    merged: dict[str, Any] = {}
    sources: dict[str, str] = {}
    for values, source in layers:
        for k, v in values.items():
            merged[k] = v
            sources[k] = source(k)
    try:
        settings = Settings.model_validate(_nest(merged))
    except ValidationError as exc:
        raise ConfigError(explain(exc, sources, path)) from exc
    settings._sources = sources
    settings._config_file = path
    return settings


def explain(exc: ValidationError, sources: Mapping[str, str], path: Path | None) -> str:
    """One line per problem: the key, where it came from, what is wrong (secrets not echoed)."""
    known = all_keys()
    lines = []
    for e in exc.errors():
        key = ".".join(str(p) for p in e["loc"])
        source = sources.get(key) or next((s for k, s in sources.items() if k.startswith(key + ".")), None) \
            or (f"file {path}" if path else "the environment")
        if e["type"] == "extra_forbidden":
            near = difflib.get_close_matches(key, known, n=1)
            hint = f" (did you mean {near[0]!r}?)" if near else ""
            lines.append(f"unknown setting {key!r} in {source}{hint}")
            continue
        value = "" if _secret(key) else f" = {e.get('input')!r}"
        lines.append(f"{key}{value} (from {source}): {e['msg']}")
    return "bad configuration:\n  " + "\n  ".join(lines)


def _secret(key: str) -> bool:
    return key in ("mqtt.password", "store", "store_password")


def shown(key: str, value: Any) -> str:
    """A value as printed: secrets masked, a password inside a URL masked, unset as '-'."""
    if value is None:
        return "-"
    if isinstance(value, SecretStr):
        return "***"
    if key == "store":
        return redact(str(value))
    if isinstance(value, list):
        return ",".join(str(v) for v in value) or "-"
    return str(value)


def value_of(settings: Settings, key: str) -> Any:
    if key == "store" and settings.store is None:
        return DataDir(settings.data_dir).store  # what is opened
    node: Any = settings
    for part in key.split("."):
        node = getattr(node, part)
    return node


def describe(settings: Settings, keys: Iterable[str], *, title: str, sources: bool) -> str:
    """The effective configuration as text: compact (sources marked only when not default) or
    one line per key with its source, for `packproof config`."""
    keys = list(keys)
    where = f"file {settings.config_file}" if settings.config_file else "no config file"
    head = f"{title} (flag > env {ENV_PREFIX}* > {where} > default)"
    if sources:
        width = max(len(k) for k in keys)
        return "\n".join([head] + [f"  {k:<{width}} = {shown(k, value_of(settings, k))}   ({settings.source_of(k)})"
                                   for k in keys])
    groups: dict[str, list[str]] = {}
    for k in keys:
        section, _, name = k.rpartition(".")
        src = settings.source_of(k)
        mark = "" if src == DEFAULT else f"[{src.split()[0]}]"
        groups.setdefault(section, []).append(f"{name}={shown(k, value_of(settings, k))}{mark}")
    return "\n".join([head] + [f"  {s + ': ' if s else ''}{' '.join(items)}" for s, items in groups.items()])
