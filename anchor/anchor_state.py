"""An anchor transaction's life, as a pure state machine (issue 17; docs/design.md "Anchoring").

An anchor is one EIP-1559 transaction calling PackproofAnchor.anchor(size, root, note hash). What
the chain says of it changes under us: it waits in the node's pool, is mined, gathers
confirmations, and a reorganisation can take its block away again (Ethereum's fork choice, and
on a proof-of-stake chain until finality). The anchoring loop (anchor/anchorer.py) looks at the
node once per pass; `observe` turns what it saw into at most one event, `step` gives the state an
event leads to, and the store records the state (compare-and-set on the state it replaces).
Nothing here does I/O, so every (state, observation) pair is tested.

States:

* ``pending``   sent; no receipt in the canonical chain (yet, or again after a reorg);
* ``mined``     a receipt with status 1 in block `block_number` (hash `block_hash`), fewer than
  N confirmations (N = the `confirmations` setting; depth = head - block + 1);
* ``confirmed`` at least N confirmations: the anchor counts (GET /checkpoint shows it). A reorg
  deeper than N still takes it back to pending; the loop keeps watching the newest confirmed one;
* ``failed``    mined with status 0 (the contract refused it: SizeBackwards, NotAnchorer):
  final, its message says why;
* ``replaced``  its nonce was used by another transaction of the account (the node answers
  "nonce too low" to the resend): final; the loop anchors the newest checkpoint afresh.

Events: ``mined``, ``reverted`` (receipt status 0), ``confirmed``, ``reorged`` (the recorded
block is no longer the canonical one at its height), ``dropped`` (no receipt and the node no
longer knows the transaction: resend it, same nonce, bumped fees; it stays pending), ``stuck``
(known, still no receipt after `stuck_after` s: its fees are too low for the chain now; resent
the same way, which replaces it in the node's pool), ``replaced`` (a transaction of ours took its
nonce: the newest checkpoint resent in its place, or the node says the nonce is used).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from packproof.errors import PackproofError
from packproof.records import AnchorState

__all__ = ["AnchorEvent", "AnchorState", "IllegalTransition", "Observation", "depth", "observe", "step"]


class AnchorEvent(StrEnum):
    MINED = "mined"
    REVERTED = "reverted"
    CONFIRMED = "confirmed"
    REORGED = "reorged"
    DROPPED = "dropped"
    STUCK = "stuck"
    REPLACED = "replaced"


S, E = AnchorState, AnchorEvent
TRANSITIONS: dict[tuple[AnchorState, AnchorEvent], AnchorState] = {
    (S.PENDING, E.MINED): S.MINED,
    (S.PENDING, E.REVERTED): S.FAILED,
    (S.PENDING, E.DROPPED): S.PENDING,
    (S.PENDING, E.STUCK): S.PENDING,
    (S.PENDING, E.REPLACED): S.REPLACED,
    (S.MINED, E.CONFIRMED): S.CONFIRMED,
    (S.MINED, E.REORGED): S.PENDING,
    (S.CONFIRMED, E.REORGED): S.PENDING,
}
FINAL = frozenset({S.FAILED, S.REPLACED})
OPEN = frozenset({S.PENDING, S.MINED})  # the loop follows these at every pass


class IllegalTransition(PackproofError):
    """An event that cannot happen in this state (a bug, or a row changed under the loop)."""


def step(state: AnchorState, event: AnchorEvent) -> AnchorState:
    """The state `event` leads to from `state`; IllegalTransition when it cannot happen there."""
    try:
        return TRANSITIONS[(state, event)]
    except KeyError:
        raise IllegalTransition(f"anchor in state {state.value}: event {event.value} cannot happen there") from None


def depth(head: int, block_number: int) -> int:
    """Confirmations of a transaction in `block_number` when the chain's head is `head` (1 = in the head)."""
    return max(0, head - block_number + 1)


@dataclass(frozen=True, slots=True)
class Observation:
    """What the node said during one pass about one anchor transaction.

    `receipt_block`/`receipt_block_hash`/`receipt_ok`: its receipt (None: none); `tx_known`: the
    node still knows the transaction (pool or chain); `canonical_hash`: the hash of the canonical
    block at the anchor's recorded height (None: no block there any more, or nothing recorded);
    `head`: the chain's head block number; `waited`: seconds since it was (last) sent.
    """

    head: int
    receipt_block: int | None = None
    receipt_block_hash: bytes | None = None
    receipt_ok: bool = True
    tx_known: bool = True
    canonical_hash: bytes | None = None
    waited: float = 0.0


def observe(state: AnchorState, block: tuple[int, bytes] | None, seen: Observation, confirmations: int,
            stuck_after: float = float("inf")) -> AnchorEvent | None:
    """The one event what was seen means for an anchor in `state` recorded in `block` (its number
    and hash; None while pending), or None: nothing changed. `confirmations`: N, at least 1."""
    if state in FINAL:
        return None
    if state is S.PENDING:
        if seen.receipt_block is not None:
            return E.MINED if seen.receipt_ok else E.REVERTED
        if not seen.tx_known:
            return E.DROPPED
        return E.STUCK if seen.waited > stuck_after else None
    if block is None or seen.canonical_hash != block[1]:
        return E.REORGED
    if state is S.MINED and depth(seen.head, block[0]) >= confirmations:
        return E.CONFIRMED
    return None
