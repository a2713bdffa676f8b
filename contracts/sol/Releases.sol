// SPDX-License-Identifier: GPL-3.0-only
pragma solidity 0.8.30;

import {Roles} from "./Roles.sol";

/// @title Releases: the hub software the consortium vouches for.
/// @notice The consortium admin (in production the Consortium contract, an
/// M-of-N of hospitals) publishes a release: the SHA-256 of its signed RAUC
/// bundle and its version. A hub installs a bundle only if its hash is
/// published here and not withdrawn, and only if the bundle's signature
/// checks against the release key on the hub; a clinic decides which of its
/// hubs take it when (a staged rollout), but cannot make a hub take a bundle
/// the consortium did not publish. A release that fails is withdrawn: hubs
/// that have not installed it no longer will.
contract Releases {
    struct Release {
        string version;
        address publisher;
        uint64 publishedAt;
        /// 0 while it stands.
        uint64 withdrawnAt;
        /// 1 for the first release, +1 each.
        uint64 seq;
    }

    /// Versions are short labels ("2026.12.2", a git describe).
    uint256 public constant MAX_VERSION_BYTES = 64;

    Roles public immutable roles;

    mapping(bytes32 => Release) private releases;
    uint64 public releaseCount;

    event ReleasePublished(bytes32 indexed bundleHash, string version, uint64 seq);
    event ReleaseWithdrawn(bytes32 indexed bundleHash, string version);

    error NotAdmin(address caller);
    error ZeroHash();
    error BadVersion();
    error AlreadyPublished(bytes32 bundleHash);
    error UnknownRelease(bytes32 bundleHash);
    error AlreadyWithdrawn(bytes32 bundleHash);

    modifier onlyAdmin() {
        if (msg.sender != roles.admin()) revert NotAdmin(msg.sender);
        _;
    }

    constructor(Roles roleRegistry) {
        roles = roleRegistry;
    }

    /// Vouches for the bundle whose SHA-256 is `bundleHash`. A hash is
    /// published once: a withdrawn release cannot come back under the same
    /// bytes (publish a new bundle).
    function publish(bytes32 bundleHash, string calldata version) external onlyAdmin {
        if (bundleHash == bytes32(0)) revert ZeroHash();
        uint256 length = bytes(version).length;
        if (length == 0 || length > MAX_VERSION_BYTES) revert BadVersion();
        if (releases[bundleHash].publishedAt != 0) revert AlreadyPublished(bundleHash);
        uint64 seq = ++releaseCount;
        releases[bundleHash] = Release({
            version: version,
            publisher: msg.sender,
            publishedAt: uint64(block.timestamp),
            withdrawnAt: 0,
            seq: seq
        });
        emit ReleasePublished(bundleHash, version, seq);
    }

    /// Stops every hub that has not installed it from installing it.
    function withdraw(bytes32 bundleHash) external onlyAdmin {
        Release storage release = releases[bundleHash];
        if (release.publishedAt == 0) revert UnknownRelease(bundleHash);
        if (release.withdrawnAt != 0) revert AlreadyWithdrawn(bundleHash);
        release.withdrawnAt = uint64(block.timestamp);
        emit ReleaseWithdrawn(bundleHash, release.version);
    }

    /// The release of `bundleHash` (all zero when never published).
    function releaseOf(bytes32 bundleHash) external view returns (Release memory) {
        return releases[bundleHash];
    }

    /// Whether a hub may install the bundle: published and not withdrawn.
    function isInstallable(bytes32 bundleHash) external view returns (bool) {
        Release storage release = releases[bundleHash];
        return release.publishedAt != 0 && release.withdrawnAt == 0;
    }
}
