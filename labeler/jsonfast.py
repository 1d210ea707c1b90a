"""JSON on the per-response hot path: orjson where installed (extra ``speed``), stdlib otherwise.

orjson decodes and re-encodes a typical chat completion about 7x faster than the stdlib, which
matters when the middleware rewrites every response. It is stricter than the stdlib (no NaN,
no lone surrogates) and reads integers beyond 64 bits as floats, losing digits; so a body orjson
refuses, or one with a run of 19 or more digits, is decoded *and re-encoded* by the stdlib.
:func:`parse` returns the encoder that writes back faithfully what its decoder read (orjson
would turn a NaN the stdlib accepted into ``null``).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

__all__ = ["FAST", "dumps", "loads", "parse"]

try:
    import orjson
except ImportError:  # pragma: no cover - exercised where the extra is not installed
    orjson = None  # type: ignore[assignment]

#: True where orjson is installed.
FAST = orjson is not None
#: Digits to "0", everything else to " ": a run of 19 "0"s is a number that may not fit 64
#: bits (orjson would read it as a float). translate + find beat a regex 8x on a chat body.
_DIGITS = bytes(0x30 if 0x30 <= b <= 0x39 else 0x20 for b in range(256))
_LONG_RUN = b"0" * 19


def _std_dumps(obj: Any) -> bytes:
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def _fast_dumps(obj: Any) -> bytes:
    try:
        return orjson.dumps(obj)
    except TypeError:  # e.g. an integer beyond 64 bits: the stdlib writes it exactly
        return _std_dumps(obj)


#: Compact UTF-8 JSON of values we built ourselves (str keys; str, int, list, dict values).
dumps: Callable[[Any], bytes] = _fast_dumps if FAST else _std_dumps


def parse(data: bytes) -> tuple[Any, Callable[[Any], bytes]]:
    """``(value, encoder)``: ``data`` decoded, and the compact encoder that matches the decoder.

    Raises ``ValueError`` (``json.JSONDecodeError`` or ``UnicodeDecodeError``) or
    ``RecursionError`` as ``json.loads`` does.
    """
    if FAST and _LONG_RUN not in data.translate(_DIGITS):
        try:
            return orjson.loads(data), _fast_dumps
        except orjson.JSONDecodeError:
            pass  # maybe JSON only the stdlib reads (NaN, huge integers): let it decide
    return json.loads(data), _std_dumps


def loads(text: str) -> Any:
    """``json.loads(text)``, value for value (exact integers, NaN, lone surrogates), by orjson
    where it reads ``text`` the same: what SSE events are read with, one per streamed token."""
    if FAST:
        data = text.encode("utf-8", "surrogatepass")
        if _LONG_RUN not in data.translate(_DIGITS):
            try:
                return orjson.loads(data)
            except orjson.JSONDecodeError:
                pass
    return json.loads(text)
