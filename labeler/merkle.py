"""Merkle trees for batch signatures: one signature vouches for many records.

The middleware signs a record per response. Ed25519 costs ~30 us a signature, more than
everything else it does to a JSON response; so records that are ready in the same event-loop
turn are signed together: the signature covers the root of a Merkle tree over their payloads,
and each record carries its audit path to that root. Verification stays offline and per record.

The tree is RFC 9162's (Certificate Transparency 2.0, section 2.1): SHA-256, leaves hashed as
``H(0x00 || leaf)``, interior nodes as ``H(0x01 || left || right)`` (the prefixes keep a leaf
from passing for a node), and an unpaired last node moves up a level unchanged. Audit paths
list the siblings from the leaf up; verification needs the leaf's index and the tree size.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Sequence

__all__ = [
    "MAX_LEAVES",
    "audit_paths",
    "leaf_hash",
    "node_hash",
    "root_from_path",
    "tree_root",
    "verify_path",
]

HASH_SIZE = 32
#: A batch larger than this is split; it keeps audit paths at most 16 hashes (512 bytes).
MAX_LEAVES = 1 << 16


def leaf_hash(leaf: bytes) -> bytes:
    return hashlib.sha256(b"\x00" + leaf).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + left + right).digest()


def _levels(leaf_hashes: Sequence[bytes]) -> list[list[bytes]]:
    """Every level of the tree, leaves first, root last."""
    if not leaf_hashes:
        raise ValueError("a Merkle tree needs at least one leaf")
    levels = [list(leaf_hashes)]
    while len(level := levels[-1]) > 1:
        parents = [node_hash(level[i], level[i + 1]) for i in range(0, len(level) - 1, 2)]
        if len(level) % 2:
            parents.append(level[-1])  # unpaired: moves up unchanged
        levels.append(parents)
    return levels


def tree_root(leaf_hashes: Sequence[bytes]) -> bytes:
    return _levels(leaf_hashes)[-1][0]


def audit_paths(leaf_hashes: Sequence[bytes]) -> tuple[bytes, list[list[bytes]]]:
    """``(root, paths)``: the root, and for each leaf its siblings from the bottom up."""
    levels = _levels(leaf_hashes)
    paths: list[list[bytes]] = []
    for index in range(len(leaf_hashes)):
        path = []
        for level in levels[:-1]:
            sibling = index ^ 1
            if sibling < len(level):
                path.append(level[sibling])
            index //= 2
        paths.append(path)
    return levels[-1][0], paths


def root_from_path(leaf_digest: bytes, index: int, size: int, path: Sequence[bytes]) -> bytes | None:
    """The root that ``path`` leads to from the hash of leaf ``index`` of a ``size``-leaf tree,
    or ``None`` when the path cannot belong to such a tree (wrong length, index out of range)."""
    if not 0 <= index < size or size > MAX_LEAVES:
        return None
    node, steps = leaf_digest, iter(path)
    while size > 1:
        if index % 2:
            sibling = next(steps, None)
            if sibling is None:
                return None
            node = node_hash(sibling, node)
        elif index + 1 < size:
            sibling = next(steps, None)
            if sibling is None:
                return None
            node = node_hash(node, sibling)
        index, size = index // 2, (size + 1) // 2
    if next(steps, None) is not None:
        return None  # a path longer than the tree is deep
    return node


def verify_path(leaf_digest: bytes, index: int, size: int, path: Sequence[bytes], root: bytes) -> bool:
    """Whether ``path`` proves that the leaf hashed to ``leaf_digest`` is leaf ``index`` of the
    ``size``-leaf tree under ``root``."""
    found = root_from_path(leaf_digest, index, size, path)
    return found is not None and hmac.compare_digest(found, root)
