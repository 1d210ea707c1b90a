"""Response shapes the middleware understands: one module per API."""

from __future__ import annotations

from ..sse import SSEParser
from .anthropic import AnthropicStream
from .base import StreamAdapter
from .openai_chat import ChatStream
from .openai_responses import ResponsesStream

__all__ = ["STREAM_ADAPTERS", "stream_text"]

STREAM_ADAPTERS: tuple[type[StreamAdapter], ...] = (ChatStream, ResponsesStream, AnthropicStream)


def stream_text(raw_stream: bytes) -> str:
    """The text a client assembles from a labelled stream (every event, in order, of the first
    API any event belongs to): what the middleware's record in the stream signs."""
    parser = SSEParser(max_pending=len(raw_stream) + 1)  # the whole stream is here: no bound needed
    api: type[StreamAdapter] | None = None
    parts: list[str] = []
    for event in parser.feed(raw_stream):
        obj = event.json()
        if api is None:
            for candidate in STREAM_ADAPTERS:
                fragments = candidate.texts(obj)
                if fragments is not None:
                    api = candidate
                    parts += fragments
                    break
        else:
            parts += api.texts(obj) or []
    return "".join(parts)
