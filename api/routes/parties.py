"""`/parties`: the custody parties (issue 15) and their key histories, as the custody rules see them.

Read-only: a party is added, rotated or revoked by `packproof parties`, each change a sealed
record. A party's systems read their own entry here to learn which event seq to sign next
(`next_seq`, where the store keeps custody events).
"""

from __future__ import annotations

from fastapi import APIRouter, HTTPException
from pydantic import BaseModel, Field

from packproof.api.deps import StoreDep
from packproof.crypto import b64, key_id
from packproof.records import PartyRecord
from packproof.timefmt import rfc3339

router = APIRouter(prefix="/parties", tags=["parties"])


class PartyKeyOut(BaseModel):
    valid_from_seq: int = Field(description="first event seq of the party this key signs")
    public_key: str = Field(description="Ed25519 public key, standard base64 of 32 bytes")
    key_id: str = Field(description="first 16 hex digits of the key's SHA-256")


class PartyOut(BaseModel):
    party_id: str
    name: str
    roles: list[str]
    keys: list[PartyKeyOut] = Field(description="oldest first; an event is checked with the last key valid at "
                                                "or below its seq")
    added_at: str
    revoked_at: str | None
    revoked_reason: str | None
    next_seq: int = Field(description="the seq the party's next custody event must carry (its last accepted + 1)")


class PartyList(BaseModel):
    parties: list[PartyOut]


def party_out(p: PartyRecord, next_seq: int) -> PartyOut:
    return PartyOut(party_id=p.party_id, name=p.name, roles=sorted(p.roles),
                    keys=[PartyKeyOut(valid_from_seq=k.valid_from_seq, public_key=b64(k.public_key),
                                      key_id=key_id(k.public_key)) for k in p.keys],
                    added_at=rfc3339(p.added_at), revoked_at=rfc3339(p.revoked_at) if p.revoked_at else None,
                    revoked_reason=p.revoked_reason, next_seq=next_seq)


@router.get("", response_model=PartyList)
async def list_parties(store: StoreDep) -> PartyList:
    """Every party, by id (a registry of organisations: small, read whole)."""
    parties = await store.parties()
    last = await store.custody_seqs([p.party_id for p in parties])
    return PartyList(parties=[party_out(p, last.get(p.party_id, 0) + 1) for p in parties])


@router.get("/{party_id}", response_model=PartyOut)
async def get_party(store: StoreDep, party_id: str) -> PartyOut:
    party = await store.party(party_id)
    if party is None:
        raise HTTPException(404, f"party {party_id!r} is not registered")
    return party_out(party, await store.party_next_seq(party_id))
