"""The watermark's payload: 64 bits (a 16-bit key id and a 48-bit content id) with a CRC-16,
protected by a rate-1/3 convolutional code (K=7) decoded with a soft-decision Viterbi.

Why a convolutional code: it is small to write, decodes soft values (the correlations the
detector measures) directly, and gains ~5 dB over hard repetition at the bit error rates a
re-encoded, resized picture leaves. The CRC turns a wrong decode into "unreadable", not a
wrong id. A detected mark that Viterbi cannot read gets a CRC-aided list decode (the best 64
paths): about 1 dB more, at 64 more chances for noise to pass the CRC and the key id.
"""

from __future__ import annotations

import binascii
import hashlib
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

__all__ = [
    "CODED_BITS",
    "PAYLOAD_BITS",
    "Payload",
    "content_id_for",
    "decode_bits",
    "decode_list",
    "encode_bits",
    "list_candidates",
]

PAYLOAD_BITS = 64
_CRC_BITS = 16
_K = 7  # constraint length
_GENERATORS = (0o133, 0o171, 0o165)  # the classic rate-1/3 K=7 code (dfree 15)
_INFO_BITS = PAYLOAD_BITS + _CRC_BITS
CODED_BITS = (_INFO_BITS + _K - 1) * len(_GENERATORS)  # 258
_STATES = 1 << (_K - 1)


@dataclass(frozen=True)
class Payload:
    """What a mark carries: which key made it (16 bits) and which content (48 bits)."""

    key_id: int
    content_id: int

    def __post_init__(self) -> None:
        if not 0 <= self.key_id < 1 << 16:
            raise ValueError("key_id must fit in 16 bits")
        if not 0 <= self.content_id < 1 << 48:
            raise ValueError("content_id must fit in 48 bits")

    def to_int(self) -> int:
        return (self.key_id << 48) | self.content_id

    @classmethod
    def from_int(cls, value: int) -> Payload:
        return cls(key_id=(value >> 48) & 0xFFFF, content_id=value & ((1 << 48) - 1))


def content_id_for(provider_code: str, produce_id: str) -> int:
    """48 bits that link a mark to its signed record: 24 bits name the provider (a verifier with
    a list of provider codes names the producer) and 24 bits the ProduceID (to find the record)."""

    def h24(text: str, domain: bytes) -> int:
        return int.from_bytes(hashlib.sha256(domain + text.encode()).digest()[:3], "big")

    return (h24(provider_code, b"aigc-wm-provider\0") << 24) | h24(produce_id, b"aigc-wm-produce\0")


def _parity_table() -> npt.NDArray[np.uint8]:
    """outputs[reg] for each 7-bit register value (newest bit lowest): the coded bits."""
    regs = np.arange(1 << _K)
    out = np.zeros((1 << _K, len(_GENERATORS)), dtype=np.uint8)
    for j, g in enumerate(_GENERATORS):
        v = regs & g
        parity = np.zeros_like(v)
        for k in range(_K):
            parity ^= (v >> k) & 1
        out[:, j] = parity
    return out


_OUTPUTS = _parity_table()


def _info_bits(payload: Payload) -> list[int]:
    value = payload.to_int()
    data = value.to_bytes(8, "big")
    crc = binascii.crc_hqx(data, 0xFFFF)
    word = (value << _CRC_BITS) | crc
    return [(word >> (_INFO_BITS - 1 - i)) & 1 for i in range(_INFO_BITS)]


def encode_bits(payload: Payload) -> npt.NDArray[np.uint8]:
    """The CODED_BITS coded bits (0/1) of a payload: CRC appended, zero tail to end in state 0."""
    bits = [*_info_bits(payload), *([0] * (_K - 1))]
    state = 0
    out = np.empty((len(bits), len(_GENERATORS)), dtype=np.uint8)
    for i, b in enumerate(bits):
        reg = ((state << 1) | b) & ((1 << _K) - 1)
        out[i] = _OUTPUTS[reg]
        state = reg & (_STATES - 1)
    return out.reshape(-1)


def decode_bits(soft: npt.NDArray[np.floating], key_id: int | None = None) -> Payload | None:
    """Soft Viterbi on CODED_BITS values (positive: a coded 0 is more likely; 0: erased).
    Returns the payload if its CRC checks, else None. ``key_id``: the 16 bits a detector
    already knows (the key it looks with wrote them), kept fixed on the trellis: only the
    content id and the CRC are left to decode, which reads a fainter mark."""
    y = _steps(soft)
    symbols = 1.0 - 2.0 * _OUTPUTS.astype(np.float64)  # (128, 3): +1 for a 0 bit
    nxt = np.arange(_STATES)
    # predecessors of state n: register (hi<<6)|n, previous state = register >> 1
    regs = np.stack([nxt, nxt | _STATES])  # (2, 64)
    prev = regs >> 1
    metric = np.full(_STATES, -np.inf)
    metric[0] = 0.0
    choices = np.empty((y.shape[0], _STATES), dtype=np.uint8)
    for t in range(y.shape[0]):
        branch = symbols @ y[t]  # (128,)
        cand = metric[prev] + branch[regs]  # (2, 64)
        pick = np.argmax(cand, axis=0)
        choices[t] = pick
        metric = cand[pick, nxt]
        if key_id is not None and t < 16:  # the input bit at step t is the new state's lowest
            metric[(nxt & 1) != (key_id >> (15 - t)) & 1] = -np.inf
    state = 0  # the tail brings the encoder back to 0
    bits = np.empty(y.shape[0], dtype=np.uint8)
    for t in range(y.shape[0] - 1, -1, -1):
        bits[t] = state & 1
        state = int(regs[choices[t, state], state] >> 1)
    return _word_payload(int.from_bytes(np.packbits(bits[:_INFO_BITS]).tobytes(), "big"))


def _steps(soft: npt.NDArray[np.floating]) -> npt.NDArray[np.float64]:
    """The soft values as one row of three per trellis step; raises unless CODED_BITS."""
    y = np.asarray(soft, dtype=np.float64).reshape(-1, len(_GENERATORS))
    if y.shape[0] != _INFO_BITS + _K - 1:
        raise ValueError(f"expected {CODED_BITS} soft values")
    return y


def _word_payload(word: int) -> Payload | None:
    """The payload of a decoded info word if its CRC checks, else None."""
    value, crc = word >> _CRC_BITS, word & 0xFFFF
    if binascii.crc_hqx(value.to_bytes(8, "big"), 0xFFFF) != crc:
        return None
    return Payload.from_int(value)


def _list_paths(y: npt.NDArray[np.float64], key_id: int | None, size: int) -> npt.NDArray[np.uint8]:
    """The ``size`` most likely info-bit paths ending in state 0, a row each, best first (a
    parallel list Viterbi: every state keeps its ``size`` best paths). ``key_id`` fixes its 16
    bits."""
    symbols = 1.0 - 2.0 * _OUTPUTS.astype(np.float64)
    nxt = np.arange(_STATES)
    regs = np.stack([nxt, nxt | _STATES])  # (2, 64): the registers entering each state
    prev = regs >> 1
    metric = np.full((_STATES, size), -np.inf)
    metric[0, 0] = 0.0
    steps = y.shape[0]
    back = np.empty((steps, _STATES, size), dtype=np.int32)  # index into (2, size) candidates
    for t in range(steps):
        branch = symbols @ y[t]
        cand = (metric[prev] + branch[regs][:, :, None]).transpose(1, 0, 2).reshape(_STATES, 2 * size)
        order = np.argsort(-cand, axis=1, kind="stable")[:, :size]
        back[t] = order
        metric = np.take_along_axis(cand, order, axis=1)
        if key_id is not None and t < 16:  # paths that disagree with the key id are dropped
            metric[(nxt & 1) != (key_id >> (15 - t)) & 1] = -np.inf
    ranks = np.flatnonzero(np.isfinite(metric[0]))  # the ranks that reached state 0
    bits = np.empty((ranks.size, steps), dtype=np.uint8)
    state, r = np.zeros(ranks.size, dtype=np.intp), ranks
    for t in range(steps - 1, -1, -1):  # every path traced back at once
        bits[:, t] = state & 1
        branch_i, r = np.divmod(back[t, state, r], size)
        state = prev[branch_i, state]
    return bits[:, :_INFO_BITS]


def list_candidates(
    soft: npt.NDArray[np.floating], key_id: int, size: int, *, fixed: bool = True
) -> list[Payload]:
    """Every payload among the ``size`` best paths whose CRC checks and whose key id is
    ``key_id``, best first (``fixed``: the key id fixed on the trellis, else decoded and
    compared). More than one, or one when no mark is there, is a false accept."""
    y = _steps(soft)
    words = np.packbits(_list_paths(y, key_id if fixed else None, size), axis=1)  # whole bytes
    found = [_word_payload(int.from_bytes(w.tobytes(), "big")) for w in words]
    return [p for p in found if p is not None and p.key_id == key_id]


def decode_list(
    soft: npt.NDArray[np.floating], key_id: int, size: int = 16, *, fixed: bool = True
) -> Payload | None:
    """CRC-aided list Viterbi: the first of the ``size`` most likely paths whose CRC checks and
    whose key id is ``key_id``. Reads fainter marks than plain Viterbi, but every extra path is
    one more chance that noise passes the checks: call it only after a detection whose plain
    decode failed."""
    found = list_candidates(soft, key_id, size, fixed=fixed)
    return found[0] if found else None
