// SPDX-License-Identifier: MIT
pragma solidity 0.8.37;

/// @notice Test-only: the per-event design packproof does NOT use, kept as small as it can be so its
/// gas is a floor: one transaction per reading records the reading's hash and when it was seen.
/// benchmarks/anchor_cost.py compiles it with the pinned solc (anchor/chain) and measures it.
contract PerEvent {
    mapping(bytes32 => uint64) public seenAt;

    event Recorded(bytes32 indexed eventHash);

    function record(bytes32 eventHash) external {
        seenAt[eventHash] = uint64(block.timestamp);
        emit Recorded(eventHash);
    }
}
