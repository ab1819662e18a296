"""Where a packproof data directory keeps its files: one place, so every command agrees."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from packproof.intake import IntakeKey
    from packproof.store import Store


@dataclass(frozen=True, slots=True)
class DataDir:
    root: Path
    store_url: str | None = None  # `sqlite:///path` or `postgresql://...`; None: SQLite in the data dir
    key_file: Path | None = None  # the ledger's private key; None: in the data dir
    intake_key_file: Path | None = None  # the intake key all writers of the store share; None: in the data dir
    tiles_dir: Path | None = None  # the log's static tiles and checkpoint; None: DATA_DIR/tiles
    log_origin: str | None = None  # the log's origin when it starts; None: packproof.example/<key id>

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
    def tiles(self) -> Path:
        """The static C2SP tlog-tiles directory: `checkpoint` beside `tile/`."""
        return self.tiles_dir or self.root / "tiles"

    @property
    def ledger_pub(self) -> Path:
        return self.root / "ledger.pub"  # base64 public key, for auditors

    @property
    def intake_key(self) -> Path:
        """The key that MACs the rows packproof's writers store (packproof/intake.py): private."""
        return self.intake_key_file or self.root / "intake.key"

    @property
    def sim_buffer(self) -> Path:
        return self.root / "sim-buffer.db"  # the simulated trackers' store-and-forward buffer

    @property
    def sim_progress_legacy(self) -> Path:
        return self.root / "simulator.json"  # next seqs before the buffer; taken over once

    def writer_key(self) -> IntakeKey:
        """The intake key this data directory's writers use: DATA_DIR/intake.key is made on first
        use; a key file named by the settings must exist (`packproof intake-key` makes it once),
        since writers that each made their own would refuse one another."""
        from packproof.intake import load_or_create_intake_key, shared_intake_key  # writers only: not at start-up

        if self.intake_key_file is not None:
            return shared_intake_key(self.intake_key_file)
        return load_or_create_intake_key(self.intake_key)

    async def open_writer(self) -> Store:
        """The store, opened to write with this data directory's intake key (see `writer_key`)."""
        # The store pulls in cryptography and a database driver: every command reads paths, `--help` too.
        from packproof.store import Store

        return await Store.open(self.store, intake_key=self.writer_key())
