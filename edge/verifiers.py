"""Ed25519 signature checks in worker processes, beside the ingestor's decode thread.

libsodium releases the GIL, but the Python around ~60 µs of verification per reading does
not: with `verify_workers` > 0 the checks of each chunk of a batch go to other processes
while the decode thread goes on with the next chunk. A verifier that dies (killed, out of
memory) costs nothing but time: its chunk is checked in this process and a new pool starts.
"""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
import os
import signal
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool

from packproof.crypto import verify_many
from packproof.errors import ConfigError

log = logging.getLogger(__name__)

# (public key, signature, signed bytes), as packproof.crypto.verify_many takes them: a plain tuple, since
# thousands a second are pickled to the verifier processes.
SignatureCheck = tuple[bytes, bytes, bytes]


def verifier_pool(workers: int) -> ProcessPoolExecutor | None:
    """Processes that check Ed25519 signatures in bulk; None: check them in the ingestor.

    Spawned, not forked (the ingestor has threads), and deaf to Ctrl-C, which the ingestor
    handles: a verifier killed by the terminal's SIGINT would break the batch in flight.
    """
    if workers <= 0:
        return None
    return ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"),
                               initializer=_verifier_start, initargs=(os.getpid(),))


def _verifier_start(ingestor_pid: int) -> None:
    """In a verifier process: ignore Ctrl-C, and exit when the ingestor is gone.

    An ingestor killed with SIGKILL cannot stop its verifiers, and the pool's pipes do not
    wake an idle one: without this watch each crash left its verifiers running (seen in the
    fault-injection test).
    """
    signal.signal(signal.SIGINT, signal.SIG_IGN)

    def watch() -> None:
        while os.getppid() == ingestor_pid:
            time.sleep(1.0)
        os._exit(0)

    threading.Thread(target=watch, name="ingestor-watch", daemon=True).start()


class VerifierPool:
    """The ingestor's verifier processes, or none (`workers` 0): submit chunks, collect answers, survive a death."""

    def __init__(self, workers: int) -> None:
        self.workers = workers
        self.pool = verifier_pool(workers)

    @property
    def active(self) -> bool:
        """Do signatures go to other processes (else `decode` checks them itself)?"""
        return self.pool is not None

    async def start(self) -> None:
        """Have every verifier process running before the first reading arrives.

        The pool spawns its processes on first use, and a spawned Python takes about a second
        to start here: the readings of the first batches waited for it (publish-to-sealed p50
        1.5 s in the first second of a run at 4,000/s, 0.6 s after).
        """
        if self.pool is None:
            return
        try:
            started = [self.pool.submit(verify_many, []) for _ in range(self.workers)]
            await asyncio.gather(*(asyncio.wrap_future(f) for f in started))
        except BrokenProcessPool as exc:
            raise ConfigError(f"the signature verifier processes (--verify-workers {self.workers}) did not "
                              f"start: {exc}; run with --verify-workers 0 to check signatures in the ingestor") from exc

    def submit(self, checks: list[SignatureCheck]) -> Future[list[bool]]:
        """Hand `checks` to a verifier; called from the decode thread."""
        assert self.pool is not None
        try:
            return self.pool.submit(verify_many, checks)
        except BrokenProcessPool:  # a verifier died since the last batch: check these here
            self._restart()
            done: Future[list[bool]] = Future()
            done.set_result(verify_many(checks))
            return done

    async def answers(self, future: Future[list[bool]], checks: Callable[[], list[SignatureCheck]]) -> list[bool]:
        """The verifier's answers; if it died with the chunk, this process checks `checks()` itself."""
        try:
            return await asyncio.wrap_future(future)
        except BrokenProcessPool:
            self._restart()
            return await asyncio.to_thread(verify_many, checks())

    def _restart(self) -> None:
        """A new pool, unless another chunk of the same batch already made one."""
        assert self.pool is not None
        try:
            self.pool.submit(int).result()
            return  # this pool works
        except BrokenProcessPool:
            pass
        log.error("a signature verifier process died; checking its readings here and starting another")
        self.pool.shutdown(wait=False)
        self.pool = verifier_pool(self.workers)

    def shutdown(self) -> None:
        if self.pool is not None:
            self.pool.shutdown()
