"""The fuzz targets: one per parser we own. Each takes untrusted bytes; a :class:`LabelerError`
is the expected, typed outcome of bad input, and anything else that escapes is a bug.
``verify_*`` targets must not raise at all: verification answers every input with a verdict."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable
from dataclasses import dataclass

from labeler import verify
from labeler.errors import LabelerError
from labeler.formats import formats

from . import seeds


@dataclass(frozen=True)
class Target:
    name: str
    run: Callable[[bytes], object]
    seeds: Callable[[], list[bytes]]
    allowed: tuple[type[BaseException], ...] = (LabelerError,)


PACKET = b"<x:xmpmeta xmlns:x='adobe:ns:meta/'/>"
RECORD = '{"Label":"1","ContentProducer":"x","ProduceID":"y"}'


def _container(name: str) -> Target:
    fmt = next(f for f in formats() if f.name == name)

    def run(data: bytes) -> None:
        for op in (fmt.read_xmp, fmt.read_fallback, fmt.content_digest, fmt.stage):
            with contextlib.suppress(LabelerError):
                op(data)
        try:
            if fmt.write_record is not None:
                out = fmt.write_record(data, RECORD)
                assert fmt.read_fallback(out) == RECORD, "written record does not read back"
            else:
                staged = fmt.stage(data)
                out = fmt.write_xmp(staged, PACKET)
                assert fmt.read_xmp(out) == PACKET, "written packet does not read back"
                assert fmt.content_digest(out) == fmt.content_digest(staged), "digest covers the slot"
                assert fmt.read_fallback(out) is None, "a second record survives beside our label"
        except LabelerError:
            pass

    return Target(f"container:{name}", run, lambda: seeds.of_format(name))


def _xmp(data: bytes) -> None:
    from labeler.xmp import XmpLabel, read_label, write_label

    label = read_label(data)
    write_label(XmpLabel(aigc=RECORD), existing=data)
    assert label is None or isinstance(label.aigc, str)


def _aigc(data: bytes) -> None:
    from labeler.aigc import AigcRecord

    record = AigcRecord.from_json(data.decode("utf-8", "surrogateescape"))
    assert AigcRecord.from_json(record.to_json()) == record, "record does not round-trip"


def _token(data: bytes) -> None:
    from labeler.provenance import parse_token

    parse_token(data.decode("latin-1")).signature_valid()


def _sse(data: bytes) -> None:
    """Chunked as the mutation says or whole: the same events, every byte forwarded once."""
    from labeler.sse import SSEParser

    parser, whole = SSEParser(), SSEParser()
    step = 1 + (data[0] % 7 if data else 0)
    events = []
    for i in range(0, len(data), step):
        events += parser.feed(data[i : i + step])
    rest = parser.flush()
    at_once = whole.feed(data)
    assert [e.raw for e in events] == [e.raw for e in at_once], "chunking changed the events"
    assert rest == whole.flush() and b"".join(e.raw for e in events) + rest == data, "bytes lost"
    for event in events:
        event.json()


def _verify_stream(data: bytes) -> None:
    """``verify_stream`` / ``verify_response`` answer anything with a verdict."""
    from labeler.middleware import verify_response, verify_stream

    verify_stream(data)
    verify_stream("text", data)
    head, _, body = data.partition(b"\n\n")
    verify_response([(b"aigc", line) for line in head.split(b"\n")], body)


def _stream_seeds() -> list[bytes]:
    """Streams as the middleware labels them: chat, Responses and Anthropic, signed."""
    import asyncio

    from labeler.demo.server import create_app
    from labeler.middleware import LabelingMiddleware

    async def run(path: str, body: bytes) -> bytes:
        app = LabelingMiddleware(create_app(token_delay=0), policy=seeds.policy(), text_position="both")
        out: list[bytes] = []
        asked = asyncio.Event()

        async def receive() -> dict[str, object]:
            if asked.is_set():
                await asyncio.Event().wait()
            asked.set()
            return {"type": "http.request", "body": body, "more_body": False}

        async def send(message: dict[str, object]) -> None:
            out.append(message.get("body", b""))  # type: ignore[arg-type]

        scope = {
            "type": "http",
            "method": "POST",
            "path": path,
            "headers": [(b"content-type", b"application/json")],
        }
        await app(scope, receive, send)  # type: ignore[arg-type]
        return b"".join(out)

    requests = [
        ("/v1/chat/completions", {"messages": [{"role": "user", "content": "hi"}], "stream": True}),
        ("/v1/responses", {"input": "hi", "stream": True}),
        ("/v1/messages", {"messages": [{"role": "user", "content": "hi"}], "max_tokens": 9, "stream": True}),
    ]
    return [asyncio.run(run(path, json.dumps(body).encode())) for path, body in requests]


def _text(data: bytes) -> None:
    from labeler.text import find_text_labels, markdown_record, read_text_mark, strip_text_mark
    from labeler.verification import verify_text

    text = data.decode("utf-8", "replace")
    find_text_labels(text)
    strip_text_mark(text)
    markdown_record(text)
    with contextlib.suppress(LabelerError):
        read_text_mark(text)
    verify_text(text)  # never raises


def _rhythm(data: bytes) -> None:
    from labeler.explicit.audio import add_rhythm_label, find_rhythm_label

    try:
        find_rhythm_label(data)
    finally:
        add_rhythm_label(data)


def _sse_seeds() -> list[bytes]:
    return [
        b'data: {"choices":[{"delta":{"content":"hi"}}]}\n\ndata: [DONE]\n\n',
        b'event: response.output_text.delta\r\ndata: {"delta":"x"}\r\n\r\n: comment\n\n',
        b"id: 1\nretry: 10\ndata: a\ndata: b\n\n",
    ]


def _token_seeds() -> list[bytes]:
    out = []
    for record in seeds.records():
        from labeler.aigc import AigcRecord

        token = AigcRecord.from_json(record.decode()).ReservedCode1
        if token:
            out.append(token.encode())
    return (out or [b"aigcl1.e30.AA"]) + _batch_token_seeds()


def _batch_token_seeds() -> list[bytes]:
    """Batch-signed tokens (Merkle audit path + shared signature): three of a batch of five."""
    from labeler.provenance import encode_payload, provenance_for, sign_payloads

    policy = seeds.policy()
    assert policy.signing_key is not None
    payloads = [
        encode_payload(
            provenance_for(policy, produce_id=f"fuzz{i}", media_format="json", content_digest=bytes(32)),
            policy.signing_key.public_key,
        )
        for i in range(5)
    ]
    return [t.encode() for t in sign_payloads(payloads, policy.signing_key)[:3]]


def _document(data: bytes) -> None:
    """The document explicit labels: found again once added, never added twice."""
    from labeler.explicit.documents import add_docx_label, add_pdf_label, find_docx_label, find_pdf_label
    from labeler.explicit.image import VisibleStyle

    def add(document: bytes) -> bytes:
        if pdf:
            return add_pdf_label(document, "AI生成", VisibleStyle())
        return add_docx_label(document, "【AI生成】")

    pdf = data.startswith(b"%PDF")
    find = find_pdf_label if pdf else find_docx_label
    with contextlib.suppress(LabelerError):
        find(data)
    out = add(data)
    assert find(out), "added label is not found again"
    assert add(out) == out, "label added twice"


def _label_api(data: bytes) -> None:
    """The public labelling entry points: on any input, a labelled result or a LabelerError that
    we raised on purpose (an UnexpectedParserError is the safety net catching a parser: a find)."""
    from labeler import Label, label_bytes, label_content, propagate_bytes
    from labeler.errors import UnexpectedParserError
    from labeler.formats import detect

    policy = seeds.policy()

    def content() -> object:
        if detect(data).kind in ("image", "document") or detect(data).name == "wav":  # no ffmpeg
            return label_content(data, policy, on_existing="replace")
        return None

    calls: list[Callable[[], object]] = [
        lambda: label_bytes(data, policy, on_existing="replace"),
        lambda: propagate_bytes(data, policy, declared=Label.SUSPECTED),
        content,
    ]
    for call in calls:
        try:
            call()
        except UnexpectedParserError as exc:
            raise AssertionError(f"unanticipated {type(exc.__cause__).__name__}: {exc}") from exc
        except LabelerError:
            pass


def _label_api_seeds() -> list[bytes]:
    return [d for d in seeds.files().values() if d[:4] not in (b"ID3\x03", b"ID3\x04", b"fLaC", b"OggS")]


def _xmp_seeds() -> list[bytes]:
    from labeler.xmp import XmpLabel, write_label

    return [seeds.XMP, write_label(XmpLabel(aigc=RECORD, provenance="aigcl1.x.y"))]


def all_targets() -> list[Target]:
    containers = [_container(f.name) for f in formats()]
    return [
        *containers,
        Target("xmp-reader", _xmp, _xmp_seeds),
        Target("gb-aigc-json", _aigc, seeds.records),
        Target("signature-token", _token, _token_seeds),
        Target("sse-parser", _sse, _sse_seeds),
        Target("verify_stream/response", _verify_stream, _stream_seeds, ()),
        Target("text-label-detector", _text, seeds.texts),
        Target("audio-rhythm", _rhythm, lambda: seeds.of_format("wav")),
        Target("document-label", _document, lambda: seeds.of_format("pdf") + seeds.of_format("docx")),
        Target("label/propagate(any file)", _label_api, _label_api_seeds),
        Target("verify(any file)", lambda d: verify(d), lambda: list(seeds.files().values()), ()),
    ]
