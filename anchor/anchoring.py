"""Anchoring the log's checkpoints on an Ethereum chain (issue 17): the contract's client.

One transaction per interval records (log size, RFC 6962 root, SHA-256 of the signed C2SP
checkpoint note) in anchor/chain/PackproofAnchor.sol; every earlier leaf is covered by the
anchor at or after its checkpoint through a consistency proof (RFC 6962 2.1.2), so the chain's
block time bounds when the log's head existed. The pure part (hashing the note, decoding the
contract's named reverts) is separate from the JSON-RPC calls made through web3.py.

Transactions are signed here with the operator's own account key (a secp256k1 key in a 0600
file, `packproof anchor key`; eth_account, which ships with web3) and sent raw
(eth_sendRawTransaction), so any node serves: a public RPC endpoint holds no key of ours. Fees
follow EIP-1559 (type-2 transactions): max priority fee = the node's eth_maxPriorityFeePerGas,
max fee = 2 x the head's base fee + that tip, which stays includable through six full blocks of
base-fee rises (+12.5 % each, EIP-1559's bound). A resend of the same nonce bumps both by at
least 12.5 % over the last (geth's txpool replaces a transaction only for 10 % more), and only when
the node's fees now outbid the last send's (`Fees.replacement`): fees follow the market, never
compound on their own. The chain id
is signed in (EIP-155) and checked against the node's eth_chainId before anything is sent.
"""

from __future__ import annotations

import json
import os
import re
import sys
from dataclasses import dataclass
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

_RECURSION_LIMIT = sys.getrecursionlimit()

from eth_account import Account  # noqa: E402
from eth_account.signers.local import LocalAccount  # noqa: E402
from web3 import Web3  # noqa: E402  (after reading the recursion limit: see below)
from web3.exceptions import BlockNotFound, ContractCustomError, ContractLogicError, TransactionNotFound  # noqa: E402

from packproof.anchor.anchor_check import Anchor as Anchor  # noqa: E402  (the record's home is the pure judge)
from packproof.anchor.anchor_check import note_hash as note_hash  # noqa: E402
from packproof.errors import ChainError, ConfigError, PackproofError  # noqa: E402
from packproof.records import CheckpointRecord  # noqa: E402

# web3 imports py_ecc, which raises the interpreter's recursion limit to 100,000 on import. At
# that limit a deeply nested JSON document (a forged proof bundle, a custody POST) overflows the
# C stack and kills the process with SIGSEGV instead of raising RecursionError, which the parsers
# turn into a named refusal. Nothing packproof asks of web3 recurses that deep: put it back.
sys.setrecursionlimit(_RECURSION_LIMIT)


def connect(rpc_url: str, timeout: float = 10.0) -> Web3:
    """A web3 client of the Ethereum JSON-RPC endpoint at `rpc_url` (HTTP)."""
    return Web3(Web3.HTTPProvider(rpc_url, request_kwargs={"timeout": timeout}))


class AnchorRefused(PackproofError):
    """The contract reverted: `error` names the Solidity error (SizeBackwards, NotAnchorer, ...)."""

    def __init__(self, error: str, message: str) -> None:
        super().__init__(message)
        self.error = error


@cache
def artifact() -> dict[str, Any]:
    """The committed ABI and bytecode (tests/anchor/test_chain_contract.py keeps them = the source)."""
    text = resources.files("packproof.anchor").joinpath("chain/PackproofAnchor.json").read_text("utf-8")
    loaded: dict[str, Any] = json.loads(text)
    return loaded


def revert_errors() -> dict[str, str]:
    """Solidity custom-error selector (0x + 4 bytes hex) -> error name, from the ABI."""
    out = {}
    for entry in artifact()["abi"]:
        if entry["type"] == "error":
            signature = f"{entry['name']}({','.join(i['type'] for i in entry['inputs'])})"
            out["0x" + Web3.keccak(text=signature)[:4].hex()] = entry["name"]
    return out


def _refused(exc: ContractLogicError) -> AnchorRefused:
    # web3.py passes the revert data as a hex string, or (from Hardhat) inside the error object
    data = exc.data.get("data", "") if isinstance(exc.data, dict) else exc.data
    data = data if isinstance(data, str) else ""
    name = revert_errors().get(data[:10], "unknown revert")
    return AnchorRefused(name, f"anchor contract refused: {name} (revert data {data or exc.message})")


def contract(w3: Web3, address: str) -> Any:
    return w3.eth.contract(address=Web3.to_checksum_address(address), abi=artifact()["abi"])


def deploy(w3: Web3, origin: str, sender: str) -> str:
    """Deploy a contract whose only anchorer is `sender` (an account the node signs for)."""
    factory = w3.eth.contract(abi=artifact()["abi"], bytecode=artifact()["bytecode"])
    tx = factory.constructor(origin).transact({"from": sender})
    receipt = w3.eth.wait_for_transaction_receipt(tx)
    return str(receipt["contractAddress"])


def send_anchor(w3: Web3, address: str, checkpoint: CheckpointRecord, sender: str) -> Anchor:
    """Anchor one checkpoint; waits for its receipt (confirmations come later, issue 17)."""
    if len(checkpoint.root) != 32:
        raise PackproofError(f"checkpoint root: expected 32 bytes, got {len(checkpoint.root)}")
    call = contract(w3, address).functions.anchor(checkpoint.size, checkpoint.root, note_hash(checkpoint.note))
    try:
        tx = call.transact({"from": sender})
    except (ContractCustomError, ContractLogicError) as exc:
        raise _refused(exc) from exc
    receipt = w3.eth.wait_for_transaction_receipt(tx)
    if receipt["status"] != 1:
        raise AnchorRefused("failed", f"anchor transaction {tx.hex()} failed in block {receipt['blockNumber']}")
    block = w3.eth.get_block(receipt["blockNumber"])
    return Anchor(
        size=checkpoint.size,
        root=checkpoint.root,
        note_hash=note_hash(checkpoint.note),
        tx_hash=bytes(tx),
        block_number=int(receipt["blockNumber"]),
        block_time=int(block["timestamp"]),
        gas_used=int(receipt["gasUsed"]),
    )


def _read(raw: Any) -> Anchor:
    size, time, root, nhash = raw
    return Anchor(int(size), bytes(root), bytes(nhash), None, None, int(time), None)


def latest(w3: Web3, address: str) -> Anchor | None:
    """The newest anchor, or None before the first."""
    c = contract(w3, address)
    if c.functions.count().call() == 0:
        return None
    return _read(c.functions.latest().call())


def at_or_after(w3: Web3, address: str, size: int) -> Anchor | None:
    """The first anchor whose size is >= `size` (it covers every leaf below `size`), or None."""
    try:
        return _read(contract(w3, address).functions.anchorAtOrAfter(size).call())
    except (ContractCustomError, ContractLogicError) as exc:
        if _refused(exc).error == "NoAnchor":
            return None
        raise _refused(exc) from exc


class NotTheContract(ConfigError):
    """The address holds no anchor contract, or one anchoring another log's origin (a setting to
    correct: the anchoring loop waits for a person, the commands exit 2)."""


def check_contract(w3: Web3, address: str, origin: str) -> None:
    """The address holds code and anchors `origin` (originHash = keccak256(origin)); NotTheContract if not."""
    where = Web3.to_checksum_address(address)
    if not w3.eth.get_code(where):
        raise NotTheContract(f"no contract at {where} on this chain (chain id {w3.eth.chain_id})")
    try:
        held = bytes(contract(w3, address).functions.originHash().call())
    except Exception as exc:  # noqa: BLE001 - any contract that fails the call is not ours
        raise NotTheContract(f"the contract at {where} does not answer originHash(): not a PackproofAnchor "
                             f"({type(exc).__name__})") from None
    want = Web3.keccak(text=origin)
    if held != want:
        raise NotTheContract(f"the contract at {where} anchors another log: originHash {held.hex()}, the log "
                             f"{origin!r} hashes to {want.hex()}")


# ---- the operator's own account: key file, chain id, fees, signed transactions -------------


class WrongChain(ConfigError):
    """The node serves another chain than the one the settings name (EIP-155 chain id)."""


_HEX_KEY = re.compile(r"(0x)?[0-9a-fA-F]{64}")


def new_key_file(path: Path) -> str:
    """A fresh secp256k1 account key written to `path` (0x + 64 hex, mode 0600 from the start,
    never over an existing file); returns its address (EIP-55 checksummed)."""
    account = Account.create()
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        raise ConfigError(f"--out: {path} exists; a key file is never overwritten (move it away first)") from None
    except OSError as exc:
        raise ConfigError(f"--out: cannot create {path}: {exc}") from exc
    with os.fdopen(fd, "w") as f:
        f.write("0x" + bytes(account.key).hex() + "\n")
    return str(account.address)


def load_key(path: Path) -> LocalAccount:
    """The account whose key `path` holds (0x + 64 hex, as `packproof anchor key` writes it).
    A key file others can read is refused: whoever reads it can anchor (and spend) as us."""
    try:
        mode = path.stat().st_mode
        text = path.read_text().strip()
    except OSError as exc:
        raise ConfigError(f"--key-file: cannot read {path}: {exc}") from exc
    if mode & 0o077:
        raise ConfigError(f"--key-file: {path} is readable by others (mode {mode & 0o777:o}); chmod 600 {path}")
    if not _HEX_KEY.fullmatch(text):
        raise ConfigError(f"--key-file: {path} does not hold a secp256k1 private key as 64 hex digits "
                          "(made by `packproof anchor key`)")
    try:
        account: LocalAccount = Account.from_key(text)
    except ValueError as exc:  # 0, or not below the secp256k1 group order
        raise ConfigError(f"--key-file: {path} holds no valid secp256k1 private key: {exc}") from exc
    return account


def require_chain(w3: Web3, chain_id: int) -> None:
    """WrongChain unless the node's eth_chainId is `chain_id` (a mainnet key sent to a testnet
    node, or the reverse, is refused before anything is signed)."""
    served = call(lambda: int(w3.eth.chain_id), "eth_chainId")
    if served != chain_id:
        raise WrongChain(f"wrong network: --chain-id {chain_id}, but the node at {endpoint(w3)} serves chain "
                         f"{served}; name the node of chain {chain_id} or set --chain-id {served}")


def endpoint(w3: Web3) -> str:
    return str(getattr(w3.provider, "endpoint_uri", "the node"))


def call(fn: Any, what: str) -> Any:
    """`fn()` with the node's failures (no connection, timeout, JSON-RPC error) as one ChainError."""
    try:
        return fn()
    except (ContractCustomError, ContractLogicError) as exc:
        raise _refused(exc) from exc
    except PackproofError:
        raise
    except Exception as exc:  # noqa: BLE001 - requests', web3's, and eth_abi's errors all mean "the node failed"
        raise ChainError(f"{what}: {type(exc).__name__}: {exc}".strip()) from exc


@dataclass(frozen=True)
class Fees:
    """EIP-1559 fees in wei per gas."""

    max_fee_per_gas: int
    max_priority_fee_per_gas: int

    def replacement(self, market: Fees) -> Fees | None:
        """The fees to send again a transaction sent with these, given the node's `market` fees now:
        the market's, at least 12.5 % above these, when the market outbids them (a higher max fee or
        tip: the transaction is underpriced); None when it does not. Bumping a transaction that is not
        underpriced (one waiting behind a nonce gap, an account without funds, a node that lost it)
        would compound +12.5 % per resend without bound, and the tip is paid in full once mined."""
        if market.max_fee_per_gas <= self.max_fee_per_gas and \
                market.max_priority_fee_per_gas <= self.max_priority_fee_per_gas:
            return None
        return market.at_least_bumped(self)

    def at_least_bumped(self, last: Fees) -> Fees:
        """These fees, raised where needed to 12.5 % above `last` (so a replacement is accepted)."""
        def bump(x: int) -> int:
            return x + max(1, (x + 7) // 8)
        tip = max(self.max_priority_fee_per_gas, bump(last.max_priority_fee_per_gas))
        return Fees(max(self.max_fee_per_gas, bump(last.max_fee_per_gas), tip), tip)


def current_fees(w3: Web3) -> Fees:
    """From the node: tip = eth_maxPriorityFeePerGas, max fee = 2 x the head's base fee + tip."""
    tip = int(call(lambda: w3.eth.max_priority_fee, "eth_maxPriorityFeePerGas"))
    base = int(call(lambda: w3.eth.get_block("latest"), "eth_getBlockByNumber")["baseFeePerGas"])
    return Fees(2 * base + tip, tip)


@dataclass(frozen=True)
class Signed:
    """A signed transaction ready for eth_sendRawTransaction."""

    tx_hash: bytes
    raw: bytes
    nonce: int
    fees: Fees
    gas: int


def sign(w3: Web3, account: LocalAccount, chain_id: int, tx: dict[str, Any], nonce: int, fees: Fees) -> Signed:
    """Sign `tx` (to/data) as a type-2 transaction; gas = the node's estimate + 20 % (the estimate
    runs against the latest state; the margin covers a state changed by the time it is mined)."""
    estimate = int(call(lambda: w3.eth.estimate_gas({**tx, "from": account.address}),  # type: ignore[typeddict-item]
                        "eth_estimateGas"))
    body = {**tx, "chainId": chain_id, "nonce": nonce, "type": 2, "gas": estimate + estimate // 5,
            "maxFeePerGas": fees.max_fee_per_gas, "maxPriorityFeePerGas": fees.max_priority_fee_per_gas}
    signed = account.sign_transaction(body)
    return Signed(bytes(signed.hash), bytes(signed.raw_transaction), nonce, fees, int(body["gas"]))


def send_raw(w3: Web3, signed: Signed) -> bytes:
    """eth_sendRawTransaction; the node's own hash must be the one signed."""
    got = bytes(call(lambda: w3.eth.send_raw_transaction(signed.raw), "eth_sendRawTransaction"))
    if got != signed.tx_hash:
        raise ChainError(f"the node answered transaction hash {got.hex()} for the one signed as {signed.tx_hash.hex()}")
    return got


def anchor_tx(w3: Web3, address: str, checkpoint: CheckpointRecord) -> dict[str, Any]:
    """The `anchor(size, root, note hash)` call's to/data, for `sign`."""
    if len(checkpoint.root) != 32:
        raise PackproofError(f"checkpoint root: expected 32 bytes, got {len(checkpoint.root)}")
    data = contract(w3, address).encode_abi("anchor", args=[checkpoint.size, checkpoint.root,
                                                           note_hash(checkpoint.note)])
    return {"to": Web3.to_checksum_address(address), "data": data}


def deploy_signed(w3: Web3, origin: str, account: LocalAccount, chain_id: int, timeout: float = 120.0) -> str:
    """Deploy a contract for `origin` whose only anchorer is `account`; waits for its receipt."""
    require_chain(w3, chain_id)
    factory = w3.eth.contract(abi=artifact()["abi"], bytecode=artifact()["bytecode"])
    data = factory.constructor(origin).data_in_transaction
    nonce = int(call(lambda: w3.eth.get_transaction_count(account.address, "pending"), "eth_getTransactionCount"))
    signed = sign(w3, account, chain_id, {"data": data}, nonce, current_fees(w3))
    send_raw(w3, signed)
    receipt = call(lambda: w3.eth.wait_for_transaction_receipt(signed.tx_hash, timeout=timeout),  # type: ignore[arg-type]
                   f"waiting for the deployment {signed.tx_hash.hex()}")
    if receipt["status"] != 1 or not receipt["contractAddress"]:
        raise ChainError(f"deployment transaction 0x{signed.tx_hash.hex()} failed in block {receipt['blockNumber']}")
    return str(receipt["contractAddress"])


@dataclass(frozen=True)
class Receipt:
    """The part of a transaction receipt the anchoring loop reads."""

    block_number: int
    block_hash: bytes
    ok: bool
    gas_used: int


class Chain:
    """The JSON-RPC calls the anchoring loop makes, each bounded by the client's timeout, each
    failure a ChainError. Blocking (web3's HTTP provider): the loop runs them in a thread."""

    def __init__(self, w3: Web3, address: str, account: LocalAccount, chain_id: int) -> None:
        self.w3, self.account, self.chain_id = w3, account, chain_id
        self.address = Web3.to_checksum_address(address)

    def check(self, origin: str | None = None) -> None:
        """The node serves our chain, a contract is deployed at the address and, when the log's
        `origin` is known, it is the contract deployed for that log (originHash = keccak256(origin)):
        a log's checkpoints sent to another log's contract would be anchors no verifier accepts; and
        its anchorer is this key (else every anchor would revert NotAnchorer)."""
        require_chain(self.w3, self.chain_id)
        code = call(lambda: self.w3.eth.get_code(self.address), "eth_getCode")
        if not code:
            raise ConfigError(f"--contract: no contract at {self.address} on chain {self.chain_id} "
                              f"({endpoint(self.w3)}); deploy one with `packproof anchor deploy`")
        if origin is not None:
            call(lambda: check_contract(self.w3, self.address, origin), "originHash()")
        anchorer = str(call(lambda: contract(self.w3, self.address).functions.anchorer().call(), "anchorer()"))
        if anchorer.lower() != self.account.address.lower():
            raise NotTheContract(f"--key-file: the contract at {self.address} takes anchors only from {anchorer}, "
                                 f"this key is {self.account.address}; use the key that deployed it, or deploy a "
                                 "contract for this key (`packproof anchor deploy`)")

    def head(self) -> int:
        return int(call(lambda: self.w3.eth.block_number, "eth_blockNumber"))

    def block(self, number: int) -> tuple[bytes, int] | None:
        """(hash, timestamp) of the canonical block at `number`, or None: no such block (yet, or any more)."""
        try:
            b = self.w3.eth.get_block(number)
        except BlockNotFound:
            return None
        except Exception as exc:  # noqa: BLE001 - as `call`
            raise ChainError(f"eth_getBlockByNumber {number}: {type(exc).__name__}: {exc}") from exc
        return bytes(b["hash"]), int(b["timestamp"])

    def receipt(self, tx_hash: bytes) -> Receipt | None:
        try:
            r = self.w3.eth.get_transaction_receipt(tx_hash)  # type: ignore[arg-type]
        except TransactionNotFound:
            return None
        except Exception as exc:  # noqa: BLE001 - as `call`
            raise ChainError(f"eth_getTransactionReceipt: {type(exc).__name__}: {exc}") from exc
        return Receipt(int(r["blockNumber"]), bytes(r["blockHash"]), r["status"] == 1, int(r["gasUsed"]))

    def known(self, tx_hash: bytes) -> bool:
        """The node still has the transaction (in its pool or a block)."""
        try:
            self.w3.eth.get_transaction(tx_hash)  # type: ignore[arg-type]
        except TransactionNotFound:
            return False
        except Exception as exc:  # noqa: BLE001 - as `call`
            raise ChainError(f"eth_getTransactionByHash: {type(exc).__name__}: {exc}") from exc
        return True

    def pending_nonce(self) -> int:
        return int(call(lambda: self.w3.eth.get_transaction_count(self.account.address, "pending"),
                        "eth_getTransactionCount"))

    def fees(self) -> Fees:
        return current_fees(self.w3)

    def sign_anchor(self, checkpoint: CheckpointRecord, nonce: int, fees: Fees) -> Signed:
        """`anchor(checkpoint)` signed with this nonce and fees; AnchorRefused if it would revert."""
        return sign(self.w3, self.account, self.chain_id, anchor_tx(self.w3, self.address, checkpoint), nonce, fees)

    def send(self, signed: Signed) -> None:
        send_raw(self.w3, signed)


def nonce_too_low(exc: ChainError) -> bool:
    """The node's answer when a nonce is already used by a mined transaction (geth, Hardhat, ...)."""
    return "nonce too low" in str(exc).lower()
