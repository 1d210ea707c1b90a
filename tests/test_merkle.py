from __future__ import annotations

import hashlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from labeler import merkle


def _rfc9162_root(leaves: list[bytes]) -> bytes:
    """MTH from RFC 9162 section 2.1.1, written from its definition (recursive split at the
    largest power of two below n), to check the bottom-up builder against."""
    if len(leaves) == 1:
        return hashlib.sha256(b"\x00" + leaves[0]).digest()
    k = 1
    while k * 2 < len(leaves):
        k *= 2
    return hashlib.sha256(b"\x01" + _rfc9162_root(leaves[:k]) + _rfc9162_root(leaves[k:])).digest()


def _leaves(n: int) -> list[bytes]:
    return [f"leaf {i}".encode() for i in range(n)]


def test_small_trees_by_hand() -> None:
    a, b, c = (merkle.leaf_hash(x) for x in (b"a", b"b", b"c"))
    assert merkle.tree_root([a]) == a
    assert merkle.tree_root([a, b]) == merkle.node_hash(a, b)
    assert merkle.tree_root([a, b, c]) == merkle.node_hash(merkle.node_hash(a, b), c)
    root, paths = merkle.audit_paths([a, b, c])
    assert root == merkle.tree_root([a, b, c])
    assert paths == [[b, c], [a, c], [merkle.node_hash(a, b)]]  # c is unpaired at the bottom
    with pytest.raises(ValueError):
        merkle.tree_root([])


@given(st.integers(1, 130))
def test_root_is_rfc9162_and_every_path_verifies(n: int) -> None:
    leaves = _leaves(n)
    hashes = [merkle.leaf_hash(x) for x in leaves]
    root, paths = merkle.audit_paths(hashes)
    assert root == merkle.tree_root(hashes) == _rfc9162_root(leaves)
    for index, path in enumerate(paths):
        assert len(path) <= max(1, n - 1).bit_length()
        assert merkle.verify_path(hashes[index], index, n, path, root)


@given(st.integers(2, 70), st.data())
def test_a_path_proves_only_its_own_leaf_and_index(n: int, data: st.DataObject) -> None:
    hashes = [merkle.leaf_hash(x) for x in _leaves(n)]
    root, paths = merkle.audit_paths(hashes)
    index = data.draw(st.integers(0, n - 1))
    path = paths[index]
    other = data.draw(st.integers(0, n - 1).filter(lambda i: i != index))
    assert not merkle.verify_path(hashes[other], index, n, path, root)  # another leaf
    assert not merkle.verify_path(hashes[index], other, n, path, root)  # another position
    assert not merkle.verify_path(merkle.leaf_hash(b"forged"), index, n, path, root)
    if path:
        flipped = [*path]
        flipped[0] = bytes([flipped[0][0] ^ 1]) + flipped[0][1:]
        assert not merkle.verify_path(hashes[index], index, n, flipped, root)
        assert not merkle.verify_path(hashes[index], index, n, path[:-1], root)  # too short
    assert not merkle.verify_path(hashes[index], index, n, [*path, root], root)  # too long


def test_out_of_range_and_oversized_trees_are_refused() -> None:
    leaf = merkle.leaf_hash(b"x")
    assert merkle.root_from_path(leaf, 0, 1, []) == leaf
    for index, size in ((1, 1), (-1, 2), (0, 0), (0, merkle.MAX_LEAVES + 1)):
        assert merkle.root_from_path(leaf, index, size, []) is None


def test_a_leaf_cannot_pass_for_an_interior_node() -> None:
    """Domain separation: the concatenation of two leaf hashes, offered as a leaf, is not
    the node over them (the second-preimage attack the 0x00/0x01 prefixes stop)."""
    a, b = merkle.leaf_hash(b"a"), merkle.leaf_hash(b"b")
    assert merkle.leaf_hash(a + b) != merkle.node_hash(a, b)
