"""A Mosquitto broker started from the configuration we ship, in a directory of its own.

Tests and the benchmark run packproof against the real Mosquitto with exactly the
settings users get (`broker/mosquitto.conf`, `broker/packproof.acl`), so the shipped files
are what is tested. Only what must differ on a shared machine is rewritten:

- the listener: a port the caller found free, on one address (never 1883, which another
  broker may hold);
- the password file, ACL and persistence location: absolute paths inside the directory,
  so two brokers never share a session store and nothing outside the directory is written;
- `user`: started as root, Mosquitto 2 drops to the `mosquitto` user, who cannot read our
  owner-only (0600) password file; it is told to stay the user who started it.

Every other line (queue limits, persistence, anonymous access off) is used unchanged.
"""

from __future__ import annotations

import getpass
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path
from types import TracebackType

from packproof.errors import BrokerError, ConfigError
from packproof.net import port_in_use

SHIPPED_CONF = Path(__file__).with_name("mosquitto.conf")
SHIPPED_ACL = Path(__file__).with_name("packproof.acl")
INGESTOR_USER = "packproof-ingestor"


def mosquitto_binary() -> str | None:
    """The `mosquitto` executable, or None when it is not installed (Debian puts it in /usr/sbin)."""
    found = shutil.which("mosquitto")
    if found:
        return found
    return "/usr/sbin/mosquitto" if os.access("/usr/sbin/mosquitto", os.X_OK) else None


def write_config(directory: Path, port: int, host: str = "127.0.0.1", *,
                 password_file: Path | None = None, acl_file: Path | None = None) -> Path:
    """Write the shipped configuration and ACL into `directory`, listening on host:port.

    `password_file` defaults to `directory/mqtt.passwd` (it need not exist yet: create it with
    `packproof passwd`); `acl_file` defaults to a copy of the shipped `packproof.acl`.
    Returns the configuration file's path. Raises ConfigError when the shipped file no longer
    has a line this rewrite depends on, so a changed configuration fails here, not silently.
    """
    directory = Path(directory).resolve()
    directory.mkdir(parents=True, exist_ok=True)
    if acl_file is None:
        acl_file = directory / "packproof.acl"
        shutil.copyfile(SHIPPED_ACL, acl_file)
    password_file = (password_file or directory / "mqtt.passwd").resolve()
    replaced: set[str] = set()
    lines = []
    for line in SHIPPED_CONF.read_text().splitlines():
        key = line.split(maxsplit=1)[0] if line.strip() and not line.lstrip().startswith("#") else ""
        if key == "listener" and "listener" not in replaced:
            line = f"listener {port} {host}"
        elif key == "password_file":
            line = f"password_file {password_file}"
        elif key == "acl_file":
            line = f"acl_file {Path(acl_file).resolve()}"
        elif key == "persistence_location":
            line = f"persistence_location {directory}/"
        elif key == "user":
            continue
        replaced.add(key)
        lines.append(line)
    missing = {"listener", "password_file", "acl_file", "persistence_location"} - replaced
    if missing:
        raise ConfigError(f"{SHIPPED_CONF} has no {', '.join(sorted(missing))} line to point at {directory}")
    lines.append(f"user {getpass.getuser()}")  # see the module docstring: stay who we are
    conf = directory / "mosquitto.conf"
    conf.write_text("\n".join(lines) + "\n")
    return conf


class MosquittoProcess:
    """`with MosquittoProcess(dir, port) as m:` a real Mosquitto for the block's lifetime.

    Logs go to `directory/mosquitto.log`; a broker that exits or never opens its port is
    reported with that log, so a bad configuration line says which one.
    """

    def __init__(self, directory: Path, port: int, host: str = "127.0.0.1", *,
                 password_file: Path | None = None, acl_file: Path | None = None,
                 binary: str | None = None) -> None:
        """`acl_file`: topic rules other than the shipped `packproof.acl` (the benchmark adds a login)."""
        self.directory = Path(directory).resolve()
        self.acl_file = acl_file
        self.host, self.port = host, port
        self.password_file = (password_file or self.directory / "mqtt.passwd").resolve()
        self.binary = binary or mosquitto_binary()
        self.log_path = self.directory / "mosquitto.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 10.0) -> MosquittoProcess:
        if self.binary is None:
            raise BrokerError("mosquitto is not installed (apt-get install mosquitto)")
        if port_in_use(self.host, self.port):
            raise ConfigError(f"port {self.port} on {self.host} is already in use (another MQTT broker?)")
        conf = write_config(self.directory, self.port, self.host, password_file=self.password_file,
                            acl_file=self.acl_file)
        if not self.password_file.exists():
            raise ConfigError(f"password file {self.password_file} does not exist (create it with `packproof passwd`)")
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen([self.binary, "-c", str(conf)], cwd=self.directory,
                                         stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        while not port_in_use(self.host, self.port):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise BrokerError(f"mosquitto did not open {self.host}:{self.port}:\n{self.log()}")
            time.sleep(0.05)
        return self

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def reload(self) -> None:
        """Re-read the password file and ACL (SIGHUP): Mosquitto reads them only at start otherwise,
        so logins added with `packproof passwd` while it runs need this."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGHUP)
            time.sleep(0.2)  # handled on the broker's next loop pass

    def kill(self) -> None:
        """kill -9: queued messages not yet saved to the persistence file are gone, as in a crash."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM: Mosquitto saves its persistence file (sessions, queued messages) and exits."""
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()

    def __enter__(self) -> MosquittoProcess:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()
