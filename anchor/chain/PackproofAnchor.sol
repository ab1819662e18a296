// SPDX-License-Identifier: MIT
pragma solidity 0.8.37;

/// @title Anchors of one packproof transparency log (issue 17).
/// @notice Records (log size, RFC 6962 root, SHA-256 of the C2SP signed checkpoint note) for
/// one origin, sent only by the account that deployed it. A size never goes backwards, and an
/// equal size must carry the same root: a log that forks is refused on chain, so the chain's
/// timestamp binds the one head the operator published. Readers find the anchor covering a
/// checkpoint with `anchorAtOrAfter` and bridge the gap with a consistency proof (RFC 6962 2.1.2).
contract PackproofAnchor {
    struct Anchor {
        uint64 size;
        uint64 time; // block.timestamp when anchored
        bytes32 root;
        bytes32 noteHash;
    }

    address public immutable anchorer;
    bytes32 public immutable originHash; // keccak256 of the C2SP origin line

    Anchor[] private anchors;

    event Anchored(uint64 indexed size, bytes32 root, bytes32 noteHash);

    error NotAnchorer(address sender);
    error SizeBackwards(uint64 latest, uint64 size);
    error RootMismatch(uint64 size, bytes32 anchored, bytes32 root);
    error NoAnchor(uint64 size);

    constructor(string memory origin) {
        anchorer = msg.sender;
        originHash = keccak256(bytes(origin));
    }

    function anchor(uint64 size, bytes32 root, bytes32 noteHash) external {
        if (msg.sender != anchorer) revert NotAnchorer(msg.sender);
        uint256 n = anchors.length;
        if (n > 0) {
            Anchor storage last = anchors[n - 1];
            if (size < last.size) revert SizeBackwards(last.size, size);
            if (size == last.size) {
                if (root != last.root) revert RootMismatch(size, last.root, root);
                return; // the same head again: nothing new to record
            }
        }
        anchors.push(Anchor(size, uint64(block.timestamp), root, noteHash));
        emit Anchored(size, root, noteHash);
    }

    function count() external view returns (uint256) {
        return anchors.length;
    }

    function latest() external view returns (Anchor memory) {
        if (anchors.length == 0) revert NoAnchor(0);
        return anchors[anchors.length - 1];
    }

    /// @notice The first anchor whose size is >= `size` (binary search over increasing sizes).
    function anchorAtOrAfter(uint64 size) external view returns (Anchor memory) {
        uint256 lo = 0;
        uint256 hi = anchors.length;
        while (lo < hi) {
            uint256 mid = (lo + hi) / 2;
            if (anchors[mid].size < size) lo = mid + 1;
            else hi = mid;
        }
        if (lo == anchors.length) revert NoAnchor(size);
        return anchors[lo];
    }
}
