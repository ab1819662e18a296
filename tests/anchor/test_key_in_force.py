"""The one rule of ledger-key rotation (`ledger.key_in_force`): a key a block announces signs
from the next block on; `keys_in_force` follows it from the genesis key once the chain holds."""

from __future__ import annotations

import pytest

from packproof.anchor.ledger import GENESIS_PREV, Block, key_in_force, keys_in_force, make_block
from packproof.crypto import private_key_from_seed, public_key_bytes
from packproof.errors import LedgerIntegrityError

KEYS = [private_key_from_seed(f"ledger-{i}".encode()) for i in range(3)]
PUBLIC = [public_key_bytes(k) for k in KEYS]


def rotated_chain() -> list[Block]:
    """Six blocks: block 1 (key 0) announces key 1, block 3 (key 1) announces key 2."""
    blocks: list[Block] = []
    signer = 0
    for h in range(6):
        announce = {1: 1, 3: 2}.get(h)
        block = make_block(height=h, prev_hash=blocks[-1].hash if blocks else GENESIS_PREV, merkle_root=bytes(32),
                           leaf_count=1, sealed_at="2026-01-02T03:04:05Z", key=KEYS[signer],
                           next_key=PUBLIC[announce] if announce is not None else None)
        blocks.append(block)
        signer = announce if announce is not None else signer
    return blocks


def test_a_rotation_takes_effect_from_the_next_block() -> None:
    headers = [b.header for b in rotated_chain()]
    expected = [0, 0, 1, 1, 2, 2, 2]  # the key in force at heights 0..6
    for height, k in enumerate(expected):
        assert key_in_force(PUBLIC[0], headers, height) == PUBLIC[k]
    rotations_only = [h for h in headers if "next_key" in h]  # blocks that rotate nothing may be left out
    assert [key_in_force(PUBLIC[0], rotations_only, h) for h in range(7)] == [PUBLIC[k] for k in expected]


def test_keys_in_force_checks_the_chain_below_the_highest_height() -> None:
    chain = rotated_chain()
    assert keys_in_force(chain, PUBLIC[0], [2, 5]) == {2: PUBLIC[1], 5: PUBLIC[2]}
    with pytest.raises(LedgerIntegrityError):
        keys_in_force(chain, PUBLIC[1], [2])  # not the genesis key: block 0 does not verify
