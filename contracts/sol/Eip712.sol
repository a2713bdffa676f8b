// SPDX-License-Identifier: GPL-3.0-only
pragma solidity 0.8.30;

/// @title Eip712: typed-data signatures (EIP-712) checked in a contract.
/// @notice Consent to a role, a physician's access request and a key rotation
/// are signed off chain as EIP-712 typed data and checked here, so one
/// transaction carries the consent of a key that did not send it.
abstract contract Eip712 {
    bytes32 private constant DOMAIN_TYPEHASH =
        keccak256("EIP712Domain(string name,string version,uint256 chainId,address verifyingContract)");
    /// secp256k1n / 2: larger `s` values are the malleable twin of a valid signature.
    uint256 private constant HALF_ORDER = 0x7fffffffffffffffffffffffffffffff5d576e7357a4501ddfe92f46681b20a0;

    bytes32 private immutable nameHash;
    bytes32 private immutable versionHash;
    uint256 private immutable cachedChainId;
    bytes32 private immutable cachedDomainSeparator;

    error BadSignature();

    constructor(string memory name, string memory version) {
        nameHash = keccak256(bytes(name));
        versionHash = keccak256(bytes(version));
        cachedChainId = block.chainid;
        cachedDomainSeparator = _buildDomainSeparator();
    }

    function _buildDomainSeparator() private view returns (bytes32) {
        return keccak256(abi.encode(DOMAIN_TYPEHASH, nameHash, versionHash, block.chainid, address(this)));
    }

    /// The EIP-712 domain separator (recomputed if the chain id ever changes).
    function domainSeparator() public view returns (bytes32) {
        return block.chainid == cachedChainId ? cachedDomainSeparator : _buildDomainSeparator();
    }

    function _typedDataHash(bytes32 structHash) internal view returns (bytes32) {
        return keccak256(abi.encodePacked("\x19\x01", domainSeparator(), structHash));
    }

    /// The signer of `structHash`, or a revert with BadSignature: wrong length,
    /// malleable `s`, bad `v`, or no signer at all.
    function _signer(bytes32 structHash, bytes calldata signature) internal view returns (address signer) {
        if (signature.length != 65) revert BadSignature();
        bytes32 r = bytes32(signature[0:32]);
        bytes32 s = bytes32(signature[32:64]);
        uint8 v = uint8(signature[64]);
        if (uint256(s) > HALF_ORDER || (v != 27 && v != 28)) revert BadSignature();
        signer = ecrecover(_typedDataHash(structHash), v, r, s);
        if (signer == address(0)) revert BadSignature();
    }
}
