"""`/anchors`: the log's checkpoints anchored on an Ethereum chain (issue 17), newest first.

What the anchoring loop (anchor/anchorer.py) recorded: each transaction, its state
(anchor/anchor_state.py), block and gas; confirmations are counted against the chain head the
loop saw at its last pass (`head`, from its status), since the API itself talks to no node.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query

from packproof.api.deps import MAX_ROW, StoreDep
from packproof.api.schemas import AnchorOut, AnchorPage
from packproof.records import AnchorRow, AnchorState
from packproof.store import Store
from packproof.timefmt import rfc3339

router = APIRouter(prefix="/anchors", tags=["log"])

PAGE_MAX = 500
STATUS_COMPONENT = "anchoring"  # the loop's status key (anchor/anchorer.py STATUS_COMPONENT)


async def chain_head(store: Store) -> tuple[int | None, float | None]:
    """The head block the anchoring loop last saw, and when (None: it never ran on this store)."""
    st: dict[str, Any] = (await store.statuses()).get(STATUS_COMPONENT) or {}
    head, at = st.get("head"), st.get("head_seen_unix")
    return (int(head) if isinstance(head, int) else None, float(at) if isinstance(at, int | float) else None)


def anchor_out(a: AnchorRow, head: int | None) -> AnchorOut:
    confirmations = None
    if a.block_number is not None and a.status in (AnchorState.MINED, AnchorState.CONFIRMED) and head is not None:
        confirmations = max(1, head - a.block_number + 1)
    return AnchorOut(id=a.id, size=a.size, root=a.root.hex(), note_hash=a.note_hash.hex(), status=a.status.value,
                     confirmations=confirmations, chain_id=a.chain_id, contract=a.contract,
                     tx_hash="0x" + a.tx_hash.hex(), nonce=a.nonce, sends=a.sends, sent_at=rfc3339(a.sent_at),
                     block_number=a.block_number,
                     block_hash=None if a.block_hash is None else "0x" + a.block_hash.hex(),
                     block_time=None if a.block_time is None else rfc3339(a.block_time), gas_used=a.gas_used,
                     max_fee_per_gas=a.max_fee_per_gas, max_priority_fee_per_gas=a.max_priority_fee_per_gas,
                     error=a.error, updated_at=rfc3339(a.updated_at))


@router.get("", response_model=AnchorPage)
async def list_anchors(
    store: StoreDep,
    before: Annotated[int | None, Query(ge=1, le=MAX_ROW, description="Cursor: next_before of the last page.")] = None,
    limit: Annotated[int, Query(ge=1, le=PAGE_MAX)] = 50,
) -> AnchorPage:
    rows = await store.anchors(limit, before)
    head, at = await chain_head(store)
    return AnchorPage(items=[anchor_out(a, head) for a in rows], head=head,
                      head_seen_at=None if at is None else rfc3339(at),
                      next_before=rows[-1].id if len(rows) == limit else None)
