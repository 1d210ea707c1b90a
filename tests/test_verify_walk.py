"""verify reads a file in one walk of its container and finds C2PA from that walk, never by
scanning the whole file (issue 15); the formats' functions stay pure on bytes outside verify."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from conftest import EXISTING_XMP, SAMPLES
from test_digest_binding import (
    jpeg_app11,
    jpeg_insert,
    jpeg_segment,
    jpeg_xmp,
    jumbf_claiming_c2pa,
    png_chunk,
    png_insert,
    png_xmp,
    riff_append,
)

from labeler import LabelPolicy, Status, TrustStore, content_credentials, label_bytes, verify
from labeler.formats import detect, formats, gif, jpeg, png, riff, wav, webp

#: The walker under each format's shared walk: (module, attribute).
WALKERS: dict[str, tuple[Any, str]] = {
    "jpeg": (jpeg, "segments"),
    "png": (png, "chunks"),
    "webp-lossy": (webp, "walk"),
    "gif": (gif, "blocks"),
    "wav": (wav, "walk"),
}


def _count_calls(monkeypatch: pytest.MonkeyPatch, module: Any, name: str) -> list[int]:
    calls: list[int] = []
    real: Callable[[bytes], Any] = getattr(module, name)

    def counted(data: bytes) -> Any:
        calls.append(len(data))
        return real(data)

    monkeypatch.setattr(module, name, counted)
    return calls


@pytest.mark.parametrize("name", sorted(WALKERS))
def test_verify_walks_the_container_once(
    name: str,
    media: dict[str, bytes],
    policy: LabelPolicy,
    trust: TrustStore,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Label, digest, C2PA stores and the C2PA check all come from one walk."""
    labelled = label_bytes(SAMPLES.get(name) or media[name], policy)
    calls = _count_calls(monkeypatch, *WALKERS[name])
    assert verify(labelled, trust).status is Status.VERIFIED
    assert len(calls) == 1
    fmt = detect(labelled)  # outside verify nothing is kept: every call walks the bytes it gets
    assert fmt.content_digest(labelled) == fmt.content_digest(labelled)
    assert len(calls) == 3


def _store() -> bytes:
    return jumbf_claiming_c2pa(b"manifest")


REMOTE = EXISTING_XMP.replace(
    b'photoshop:Credit="Studio A"',
    b'xmlns:dcterms="http://purl.org/dc/terms/" dcterms:provenance="https://example.com/m.c2pa"',
)

#: name -> (make the file from a labelled sample, whether the C2PA reader is asked)
C2PA_CASES: dict[str, tuple[str, Callable[[bytes], bytes], bool]] = {
    "jpeg: APP11 C2PA store": ("jpeg", lambda d: jpeg_insert(d, jpeg_app11(_store())), True),
    "jpeg: APP11 JUMBF that is not C2PA": (
        "jpeg",
        lambda d: jpeg_insert(d, jpeg_app11(b"J" * 300), jpeg_segment(0xFE, b"c2pa")),
        False,
    ),
    "jpeg: 'c2pa' in a comment": (
        "jpeg",
        lambda d: jpeg_insert(d, jpeg_segment(0xFE, b"no c2pa here")),
        False,
    ),
    "jpeg: 'c2pa' after the image": ("jpeg", lambda d: d + b"c2pa", False),
    # the reader looks for a remote manifest in the first XMP packet, as we read it
    "jpeg: XMP naming a remote manifest": (
        "jpeg",
        lambda d: jpeg_insert(SAMPLES["jpeg"], jpeg_xmp(REMOTE)),
        True,
    ),
    "jpeg: a second XMP packet naming one": ("jpeg", lambda d: jpeg_insert(d, jpeg_xmp(REMOTE)), False),
    "png: caBX store": ("png", lambda d: png_insert(d, png_chunk(b"caBX", _store())), True),
    "png: XMP naming a remote manifest": ("png", lambda d: png_insert(SAMPLES["png"], png_xmp(REMOTE)), True),
    "png: 'c2pa' in a text chunk": (
        "png",
        lambda d: png_insert(d, png_chunk(b"tEXt", b"Note\x00c2pa")),
        False,
    ),
    "png: truncated, with a caBX store": (
        "png",
        lambda d: png_insert(d, png_chunk(b"caBX", _store()))[:-20],
        True,  # no walk: asked as before, so a broken file's credentials still read as Invalid
    ),
    "webp: C2PA chunk": ("webp-lossy", lambda d: riff_append(d, riff.chunk(b"C2PA", _store())), True),
    "webp: 'c2pa' in an unknown chunk": (
        "webp-lossy",
        lambda d: riff_append(d, riff.chunk(b"JUNK", b"c2pa")),
        False,
    ),
    # no C2PA reader for these formats: never asked
    "gif: 'c2pa' anywhere": ("gif", lambda d: d + b"c2pa", False),
    "wav: 'c2pa' in a chunk": ("wav", lambda d: riff_append(d, riff.chunk(b"JUNK", b"c2pa")), False),
}


@pytest.mark.parametrize("case", sorted(C2PA_CASES))
def test_the_c2pa_reader_is_asked_when_the_walk_finds_c2pa(
    case: str,
    media: dict[str, bytes],
    policy: LabelPolicy,
    trust: TrustStore,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    name, make, asked = C2PA_CASES[case]
    data = make(label_bytes(SAMPLES.get(name) or media[name], policy))
    assert b"c2pa" in data  # what the old pre-filter looked for
    calls: list[bytes] = []

    def reader(content: bytes, anchors: str | None = None) -> dict[str, Any] | None:
        calls.append(content)
        return None

    monkeypatch.setattr(content_credentials, "read_content_credentials", reader)
    verify(data, trust)
    assert bool(calls) is asked


def test_every_format_the_c2pa_reader_reads_reports_its_c2pa() -> None:
    """verify asks the C2PA reader only about formats whose walk says where C2PA lives."""
    reporting = {f.name for f in formats() if f.holds_c2pa is not None}
    assert set(content_credentials.MIME) <= reporting
    for name in ("jpeg", "png", "webp-lossy"):
        assert detect(SAMPLES[name]).holds_c2pa is not None
        assert not detect(SAMPLES[name]).holds_c2pa(SAMPLES[name])  # type: ignore[misc]
