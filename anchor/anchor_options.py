"""The anchoring loop's options (anchor/anchorer.py), apart from it so that a service reads its
settings without importing web3 (slow to import) unless anchoring is on."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class AnchoringOptions:
    """The [anchoring] settings as the loop uses them. Enabled when rpc, contract and key file are set."""

    rpc: str | None = None
    contract: str | None = None
    key_file: Path | None = None
    chain_id: int | None = None
    every: float = 600.0  # s: at most one new anchor per `every`
    confirmations: int = 12
    poll: float = 12.0  # s between passes over the chain (about one mainnet slot)
    timeout: float = 10.0  # s for one JSON-RPC request
    backoff_max: float = 300.0
    stop_wait: float = 60.0  # s the last checkpoint's anchor is waited for when stopping
    stuck_after: float = 600.0  # s unmined before a transaction is replaced with higher fees

    @property
    def enabled(self) -> bool:
        return bool(self.rpc and self.contract and self.key_file)
