"""The ingestor's check stage: a batch of messages in, checked readings and refusals out.

Decoding, signature checks and thresholds are the CPU-heavy part of ingestion and need no
transaction: they run here, before the writer settles the batch against the store
(edge/settle.py). What fails any check is quarantined with its reason; the rest goes on
as `Checked` readings in arrival order.
"""

from __future__ import annotations

import asyncio
from concurrent.futures import Future
from dataclasses import dataclass, field

from packproof.edge.decode import Accepted, Plausibility, bad_signature, decode
from packproof.edge.message import Message, quarantine
from packproof.edge.registry import RegistryCache
from packproof.edge.settle import Checked
from packproof.edge.thresholds import evaluate
from packproof.edge.verifiers import SignatureCheck, VerifierPool
from packproof.errors import InvalidReading
from packproof.records import IngestBatch

VERIFY_CHUNK = 250  # readings per hand-off to a verifier process: small enough to overlap with decoding


@dataclass(slots=True)
class Chunk:
    """Decoded readings whose signatures a verifier process is checking (`answer` None: nothing to ask)."""

    answer: Future[list[bool]] | None
    decoded: list[tuple[Accepted, Message]]

    def checks(self) -> list[SignatureCheck]:
        """What was handed to the verifier, to check here if it died with the chunk."""
        return [a.check for a, _ in self.decoded if a.check is not None]


@dataclass(slots=True)
class Decoded:
    """A batch after the check stage: what failed is quarantined; the rest is settled against the store.

    Signatures left to verifier processes are still `pending` when the check stage hands the
    batch on, so the next batch decodes while they are checked; `CheckStage.finish` collects them.
    """

    pending: list[Chunk]
    rejected: IngestBatch  # quarantined payloads and their counters
    acks: list[tuple[int, int]]  # (mid, qos) to PUBACK once the batch commits
    readings: list[Checked] = field(default_factory=list)  # decoded, signatures verified, in arrival order
    finished: bool = False


class CheckStage:
    """Decode, verify and judge a batch against the registry, outside any transaction."""

    def __init__(self, registry: RegistryCache, verifiers: VerifierPool, verify_signatures: bool,
                 limits: Plausibility) -> None:
        self.registry = registry
        self.verifiers = verifiers
        self.verify_signatures = verify_signatures
        self.limits = limits

    async def process(self, msgs: list[Message]) -> Decoded:
        """Decode, verify and check thresholds: the CPU-heavy stage, outside any transaction.

        Decoding runs in a worker thread, not on the event loop: the writer's transaction is
        some ten awaits on the database, and each of them used to wait until a whole batch
        had decoded (2,000 readings, 300-600 ms), so a commit took 400-700 ms instead of 30
        (measured on PostgreSQL). In a thread the loop gets the GIL back within the switch
        interval, and whenever libsodium verifies a signature (it releases the GIL).
        """
        rejected = IngestBatch()
        pending, unknown = await asyncio.to_thread(self._decode_all, msgs, rejected)
        if unknown:
            await self.registry.look_up(m.topic.split("/")[3] for m in unknown)
            more, _ = self._decode_all(unknown, rejected, retry=True)
            pending += more
        return Decoded(pending, rejected, [(m.mid, m.qos) for m in msgs])

    async def finish(self, d: Decoded) -> None:
        """The verifiers' answers (a bad signature is quarantined), and each reading's threshold findings."""
        if d.finished:
            return
        for chunk in d.pending:
            results = iter(await self.verifiers.answers(chunk.answer, chunk.checks) if chunk.answer is not None else ())
            for a, m in chunk.decoded:
                if a.check is not None and not next(results):
                    quarantine(d.rejected, m, bad_signature(a.reading))
                    continue
                d.readings.append(Checked(a, m, evaluate(a.entry.profile, a.reading)))
        d.pending, d.finished = [], True

    def _decode_all(self, msgs: list[Message], rejected: IngestBatch,
                    retry: bool = False) -> tuple[list[Chunk], list[Message]]:
        """Decoded chunks, and messages from devices not in the registry yet (quarantined on `retry`).

        With verifier processes, each chunk's signatures go to them as soon as it is decoded,
        while this thread decodes the next: libsodium's time leaves this process and its GIL.
        """
        unknown: list[Message] = []
        registry, verify, limits = self.registry.entries, self.verify_signatures, self.limits
        defer = self.verifiers.active
        pending: list[Chunk] = []
        for start in range(0, len(msgs), VERIFY_CHUNK):
            decoded: list[tuple[Accepted, Message]] = []
            for m in msgs[start:start + VERIFY_CHUNK]:
                try:
                    decoded.append((decode(m.topic, m.payload, registry, verify, m.received_at, defer, limits), m))
                except InvalidReading as exc:
                    if exc.code == "unknown_device" and not retry:
                        unknown.append(m)
                    else:
                        quarantine(rejected, m, exc)
            checks = [a.check for a, _ in decoded if a.check is not None]
            pending.append(Chunk(self.verifiers.submit(checks) if checks else None, decoded))
        return pending, unknown
