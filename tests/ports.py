"""Ports for services a test stops and starts again on the same port.

`packproof.net.free_port` asks the kernel (bind to port 0), so it hands out ports from the
ephemeral range, which the kernel also gives to every outgoing connection. While a broker or
node is down, its port is then free for any of them to take: another test's `free_port`, any
client's source port, even the test's own client reconnecting to it (on loopback a connect to
an unused ephemeral port can pick that very port as its source and connect to itself). Seen
with two pytest workers: a restarted embedded broker found its port taken. A port below the
ephemeral range is only ever taken by an explicit bind.
"""

from __future__ import annotations

import random
from pathlib import Path

from packproof.net import port_in_use

_RANGE = Path("/proc/sys/net/ipv4/ip_local_port_range")
LOWEST = 10000  # above the registered services a test machine may run


def restartable_port(host: str = "127.0.0.1") -> int:
    """A free port below the kernel's ephemeral range: nothing takes it while its service restarts."""
    try:
        below = int(_RANGE.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        below = 32768  # Linux's default range starts here
    for _ in range(200):
        port = random.randrange(LOWEST, below)
        if not port_in_use(host, port):
            return port
    raise RuntimeError(f"no free port between {LOWEST} and {below} on {host} after 200 tries")
