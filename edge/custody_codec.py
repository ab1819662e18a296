"""The custody machine's item state as the store keeps it: one JSON text per item (`custody_packs.state`).

The store (kernel) cannot import the machine (edge); the API, which accepts events, and the
audit, which replays the sealed ones and compares, both read and write the column through here.
"""

from __future__ import annotations

import dataclasses
import json

from packproof.edge.custody import ItemState, PendingOffer


def item_json(item: ItemState) -> str:
    """An item's state as the `custody_packs.state` column holds it: JSON of the dataclass's fields, sorted."""
    return json.dumps(dataclasses.asdict(item), sort_keys=True, separators=(",", ":"))


def item_of(text: str) -> ItemState:
    d = json.loads(text)
    offer = d.pop("offer")
    return ItemState(**{**d, "offer": PendingOffer(**{**offer, "packs": tuple(offer["packs"])}) if offer else None,
                        "un38_3_failed": tuple(d["un38_3_failed"])})
