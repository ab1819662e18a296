"""Where a packproof data directory keeps its files: one place, so every command agrees."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True, slots=True)
class DataDir:
    root: Path
    store_url: str | None = None  # `sqlite:///path` or `postgresql://...`; None: SQLite in the data dir
    key_file: Path | None = None  # the ledger's private key; None: in the data dir

    @property
    def store(self) -> str:
        """The store's URL: what `Store.open` takes."""
        return self.store_url or f"sqlite:///{self.root / 'packproof.db'}"

    @property
    def ledger(self) -> Path:
        return self.root / "ledger.jsonl"

    @property
    def ledger_key(self) -> Path:
        return self.key_file or self.root / "ledger.key"  # private, 0600

    @property
    def ledger_pub(self) -> Path:
        return self.root / "ledger.pub"  # base64 public key, for auditors

    @property
    def sim_buffer(self) -> Path:
        return self.root / "sim-buffer.db"  # the simulated trackers' store-and-forward buffer

    @property
    def sim_progress_legacy(self) -> Path:
        return self.root / "simulator.json"  # next seqs before the buffer; taken over once
