"""Failpoints: named places where a process can be made to die, for crash-safety tests.

`PACKPROOF_FAILPOINT=name[:n]` makes the n-th time (default the first) the process passes
`hit("name")` end it at once with `os._exit`, as kill -9 would: no cleanup, no flush, no
finally blocks. Unset (always, in production) a failpoint costs one dict look-up. The idea
is etcd's gofail and TiKV's fail-rs: the crash windows that matter (a block written to the
ledger but not yet recorded in the store) are too narrow to hit reliably with a signal.

`bug("name")` instead raises FailpointBug there: an unexpected exception, as a bug would, for
tests that a service which fails says so and that the process around it does not hang.

Names in use:
    seal.after-ledger   the block's line is in the ledger and fsynced; the store has not recorded it
    seal.mid-ledger     half of the block's line is written (then the process dies)
    seal.bug            (raises) at the start of a seal
    ingest.bug          (raises) in the ingestor's loop, after taking a batch from the inbox
"""

from __future__ import annotations

import os
import sys

EXIT_CODE = 86  # distinct from a signal's 128+n, so a test can tell a failpoint from a kill

_armed: dict[str, int] = {}
_spec = os.environ.get("PACKPROOF_FAILPOINT", "")
if _spec:
    name, _, nth = _spec.partition(":")
    _armed[name] = int(nth or 1)


def armed(name: str) -> bool:
    """True when `name` is set to fire on this pass (counts the pass)."""
    left = _armed.get(name)
    if left is None:
        return False
    _armed[name] = left - 1
    return left == 1


def hit(name: str) -> None:
    if armed(name):
        die(name)


class FailpointBug(RuntimeError):
    """Raised by `bug(name)`: deliberately not a PackproofError, as a real bug would not be."""


def bug(name: str) -> None:
    if armed(name):
        raise FailpointBug(f"failpoint {name} raised (a simulated bug)")


def die(name: str) -> None:
    sys.stderr.write(f"packproof: failpoint {name} fired: exiting at once\n")
    sys.stderr.flush()
    os._exit(EXIT_CODE)
