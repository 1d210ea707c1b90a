"""Seed inputs for the fuzz targets: small real files of every kind, unlabelled and labelled,
so mutations start from structure the parsers actually walk (labels included)."""

from __future__ import annotations

import functools
import io
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from labeler import LabelPolicy, SigningKey, label_bytes
from labeler.formats import detect

XMP = (
    b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">'
    b'<rdf:Description xmlns:TC260="http://www.tc260.org.cn/ns/AIGC/1.0/" '
    b'TC260:AIGC="{&quot;AIGC&quot;:{&quot;Label&quot;:&quot;1&quot;}}"/></rdf:RDF></x:xmpmeta>'
)


@functools.cache
def policy() -> LabelPolicy:
    return LabelPolicy(
        provider_name="FuzzAI",
        provider_code="001191440300708461136T1XGW3",
        filing_numbers=("Beijing-YunQue-20230821",),
        signing_key=SigningKey.generate(),
    )


#: A record as other producers put it where there is no key: EXIF UserComment, PNG tEXt.
FOREIGN_RECORD = '{"AIGC":{"Label":"2","ContentProducer":"x","ProduceID":"y"}}'


def _exif_record() -> bytes:
    import piexif

    body = b"ASCII\x00\x00\x00" + FOREIGN_RECORD.encode()
    exif: bytes = piexif.dump(
        {"0th": {piexif.ImageIFD.Make: b"Fuzz"}, "Exif": {piexif.ExifIFD.UserComment: body}}
    )
    return exif


def _png_text_record() -> object:
    from PIL import PngImagePlugin

    info = PngImagePlugin.PngInfo()
    info.add_text("AIGC", FOREIGN_RECORD)
    return info


def _images() -> dict[str, bytes]:
    from PIL import Image

    img = Image.new("RGB", (24, 16), (200, 40, 90))
    out: dict[str, bytes] = {}
    for name, fmt, params in (
        ("jpeg", "JPEG", {"quality": 80, "xmp": XMP}),
        ("jpeg-exif-record", "JPEG", {"quality": 80, "exif": _exif_record()}),
        ("png", "PNG", {}),
        ("png-text-record", "PNG", {"pnginfo": _png_text_record()}),
        ("webp", "WEBP", {"quality": 60}),
        ("webp-lossless", "WEBP", {"lossless": True}),
        ("gif", "GIF", {}),
    ):
        buf = io.BytesIO()
        (img.convert("P") if fmt == "GIF" else img).save(buf, fmt, **params)
        out[name] = buf.getvalue()
    return out


@functools.cache
def files() -> dict[str, bytes]:
    """Every container's seeds, each also in its labelled form (``<name>+label``)."""
    import media  # type: ignore[import-not-found]  # tests/media.py, on sys.path above

    out = _images()
    out["wav"] = media.sine_wav(0.05, rate=8000)
    out["pdf"] = media.make_pdf(1)
    out["docx"] = media.make_docx("fuzz")
    if media.FFMPEG and media.FFPROBE:
        with tempfile.TemporaryDirectory() as tmp:
            work = Path(tmp)
            (work / "in.wav").write_bytes(media.sine_wav(0.2, rate=8000))
            out["mp3"] = media.ffmpeg(work, "a.mp3", "-i", "in.wav", "-c:a", "libmp3lame", "-b:a", "32k")
            out["flac"] = media.ffmpeg(work, "a.flac", "-i", "in.wav", "-c:a", "flac")
            out["ogg"] = media.ffmpeg(work, "a.ogg", "-i", "in.wav", "-c:a", "libvorbis")
            out["opus"] = media.ffmpeg(work, "a.opus", "-i", "in.wav", "-c:a", "libopus")
            out["mp4"] = media.ffmpeg(
                work, "v.mp4", "-f", "lavfi", "-i", "testsrc=size=32x32:rate=5", "-t", "0.4",
                "-c:v", "libx264", "-pix_fmt", "yuv420p", "-movflags", "+faststart",
            )  # fmt: skip
    for name, data in list(out.items()):
        out[f"{name}+label"] = label_bytes(data, policy(), on_existing="replace")
    return out


def of_format(fmt_name: str) -> list[bytes]:
    """The seeds whose container is ``fmt_name`` (e.g. "jpeg", "ogg")."""
    return [data for data in files().values() if detect(data).name == fmt_name]


def texts() -> list[bytes]:
    from labeler.text import add_text_label, label_markdown, mark_text

    p = policy()
    plain = "The answer is 42.\n第二段。"
    return [
        s.encode("utf-8")
        for s in (
            plain,
            add_text_label(plain, p, "both"),
            mark_text(add_text_label(plain, p), p),
            label_markdown("---\ntitle: x\n---\n# T\n\nbody\n", p, visible="start"),
            "【AI生成】 hello",
        )
    ]


def records() -> list[bytes]:
    from labeler.formats import detect as _detect

    out = []
    for data in files().values():
        fmt = _detect(data)
        record = fmt.read_fallback(data)
        if record:
            out.append(record.encode())
    return out or [b'{"AIGC":{"Label":"1"}}']
