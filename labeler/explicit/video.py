"""The video explicit label: the visible label burnt into the opening frames for >= 2 s.

GB 45438 asks for a label on the opening frames lasting at least 2 s at normal speed, text at
least 5% of the shortest side: the same geometry as pictures, so the label is drawn by
:mod:`labeler.visible` onto a transparent frame-sized canvas and ffmpeg overlays it for the
first ``seconds``. Video is re-encoded (H.264, visually lossless CRF 18), audio is copied.
``mark`` (the invisible watermark, :mod:`labeler.explicit.marking`) changes every decoded frame
in that same re-encode: frames go from one ffmpeg process through Python into the next as raw
RGB.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .. import ffmpeg
from ..errors import MalformedFileError
from .styles import VisibleStyle

__all__ = ["MIN_SECONDS", "FrameMark", "FramesNotPipedError", "add_video_label", "sample_frames"]

#: changes one raw RGB frame (bytes, width, height) into another of the same size
FrameMark = Callable[[bytes, int, int], bytes]

MIN_SECONDS = 2.0


class FramesNotPipedError(MalformedFileError):
    """A video whose frames can't go through a pipe as they are (rotated, no frame rate)."""


def add_video_label(
    data: bytes,
    text: str,
    style: VisibleStyle,
    second: str | None = None,
    *,
    seconds: float = MIN_SECONDS,
    mark: FrameMark | None = None,
) -> bytes:
    """MP4 ``data`` with the label over its first ``seconds`` (>= 2) of video; with ``mark``,
    every frame changed by it first (same re-encode); :class:`FramesNotPipedError` for a video
    whose frames can't go through a pipe as they are."""
    if seconds < MIN_SECONDS:
        raise ValueError(f"GB 45438 asks for >= {MIN_SECONDS} s of label, got {seconds}")
    from PIL import Image

    from .image import check_decode_budget, draw_label

    with tempfile.TemporaryDirectory(prefix="labeler-video-") as tmp:
        work = Path(tmp)
        (work / "in.mp4").write_bytes(data)
        stream = _video_stream(work / "in.mp4")
        width, height = int(stream["width"]), int(stream["height"])
        check_decode_budget(width, height, 1, style, "video frame")  # our overlay canvas, one frame
        canvas = Image.new("RGBA", (width, height), (0, 0, 0, 0))
        draw_label(canvas, text, style, second)
        canvas.save(work / "label.png")
        overlay = f"overlay=0:0:enable='lt(t,{seconds:g})'[v]"
        encode = (
            "-map", "[v]", "-map_metadata", "0", "-c:v", "libx264", "-preset", "veryfast", "-crf", "18",
            "-pix_fmt", "yuv420p", "-c:a", "copy", "-movflags", "+faststart", "out.mp4",
        )  # fmt: skip
        if mark is None:
            ffmpeg.run(
                "-i", "in.mp4", "-i", "label.png", "-filter_complex", f"[0:v:0][1:v]{overlay}",
                "-map", "0:a?", *encode, cwd=work,
            )  # fmt: skip
        else:
            _through(work, stream, mark, f"[0:v][2:v]{overlay}", encode)
        return (work / "out.mp4").read_bytes()


def _video_stream(path: Path) -> dict[str, Any]:
    video = [s for s in ffmpeg.probe(path).get("streams", []) if s.get("codec_type") == "video"]
    if not video or not video[0].get("width") or not video[0].get("height"):
        raise MalformedFileError("no video stream with a frame size")
    return dict(video[0])


def _turns(stream: dict[str, Any]) -> list[int]:
    """The rotations a player applies to the stored frames (tag or display matrix), degrees."""
    found = [stream.get("tags", {}).get("rotate")]
    found += [d.get("rotation") for d in stream.get("side_data_list", []) if isinstance(d, dict)]
    out = []
    for turn in found:
        try:
            out.append(int(float(turn)) % 360)
        except (TypeError, ValueError):
            continue
    return [t for t in out if t]


def _through(
    work: Path, stream: dict[str, Any], mark: FrameMark, overlay: str, encode: tuple[str, ...]
) -> None:
    """Decode to raw RGB frames, ``mark`` each, encode with the label overlaid (audio copied
    from the source, its metadata kept)."""
    width, height = int(stream["width"]), int(stream["height"])
    rate = stream.get("avg_frame_rate") or stream.get("r_frame_rate") or "0/0"
    if _turns(stream) or rate in ("0/0", "0"):
        raise FramesNotPipedError("a rotated or variable-rate video can't take the mark frame by frame")
    size = width * height * 3
    logs = (work / "decode.log", work / "encode.log")
    decoder = ffmpeg.popen(
        "-i", "in.mp4", "-map", "0:v:0", "-f", "rawvideo", "-pix_fmt", "rgb24", "pipe:1",
        log=logs[0], read=True,
    )  # fmt: skip
    encoder = ffmpeg.popen(
        "-f", "rawvideo", "-pix_fmt", "rgb24", "-s", f"{width}x{height}", "-framerate", rate, "-i", "pipe:0",
        "-i", "in.mp4", "-i", "label.png", "-filter_complex", overlay, "-map", "1:a?", *encode,
        log=logs[1], write=True,
    )  # fmt: skip
    assert decoder.stdout is not None and encoder.stdin is not None
    try:
        while len(frame := decoder.stdout.read(size)) == size:
            encoder.stdin.write(mark(frame, width, height))
    except BrokenPipeError:
        pass  # the encoder stopped: its exit status says why
    finally:
        encoder.stdin.close()
        decoder.stdout.close()
        decoder.wait()
        encoder.wait()
    for process, log in zip((decoder, encoder), logs, strict=True):
        if process.returncode != 0:
            raise ffmpeg.failure(process, log)


def sample_frames(data: bytes, count: int = 12, every: float = 0.25) -> tuple[int, int, list[bytes]]:
    """(width, height, up to ``count`` raw RGB frames one per ``every`` seconds from the start):
    what the invisible mark is read from. Raises :class:`MalformedFileError` (and
    :class:`ToolNotFoundError` without ffmpeg). Every frame carries the mark, so more frames from
    the first 3 s read its payload after harder re-encodes than frames a second apart did
    (benchmarks/bench_watermark_video.py: 12 at 4 fps against 6 at 1 fps)."""
    with tempfile.TemporaryDirectory(prefix="labeler-video-") as tmp:
        work = Path(tmp)
        (work / "in.mp4").write_bytes(data)
        stream = _video_stream(work / "in.mp4")
        width, height = int(stream["width"]), int(stream["height"])
        if any(t in (90, 270) for t in _turns(stream)):
            width, height = height, width  # decoded upright
        ffmpeg.run(
            "-i", "in.mp4", "-map", "0:v:0", "-vf", f"fps=1/{every:g}", "-frames:v", str(count),
            "-f", "rawvideo", "-pix_fmt", "rgb24", "frames.rgb", cwd=work,
        )  # fmt: skip
        raw = (work / "frames.rgb").read_bytes()
    size = width * height * 3
    return width, height, [raw[i : i + size] for i in range(0, len(raw) - size + 1, size)]
