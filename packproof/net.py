"""Ports: never assume one is free; find out, and say which flag changes it."""

from __future__ import annotations

import errno
import socket

from packproof.errors import ConfigError


def port_in_use(host: str, port: int) -> bool:
    """True when something already listens on host:port (checked by trying to bind)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                return True
            raise ConfigError(f"cannot listen on {host}:{port}: {exc}") from exc
    return False


def require_free(host: str, port: int, flag: str, what: str) -> None:
    if port_in_use(host, port):
        raise ConfigError(f"port {port} on {host} is already in use ({what}); choose another with {flag} PORT")


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])
