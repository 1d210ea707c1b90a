"""The video explicit label: the visible label burnt into the opening frames for >= 2 s.

GB 45438 asks for a label on the opening frames lasting at least 2 s at normal speed, text at
least 5% of the shortest side: the same geometry as pictures, so the label is drawn by
:mod:`labeler.visible` onto a transparent frame-sized canvas and ffmpeg overlays it for the
first ``seconds``. Video is re-encoded (H.264, visually lossless CRF 18), audio is copied.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from .. import ffmpeg
from ..errors import MalformedFileError
from .styles import VisibleStyle

__all__ = ["MIN_SECONDS", "add_video_label"]

MIN_SECONDS = 2.0


def add_video_label(
    data: bytes, text: str, style: VisibleStyle, second: str | None = None, *, seconds: float = MIN_SECONDS
) -> bytes:
    """MP4 ``data`` with the label over its first ``seconds`` (>= 2) of video."""
    if seconds < MIN_SECONDS:
        raise ValueError(f"GB 45438 asks for >= {MIN_SECONDS} s of label, got {seconds}")
    from PIL import Image

    from .image import check_decode_budget, draw_label

    with tempfile.TemporaryDirectory(prefix="labeler-video-") as tmp:
        work = Path(tmp)
        (work / "in.mp4").write_bytes(data)
        video = [
            s for s in ffmpeg.probe(work / "in.mp4").get("streams", []) if s.get("codec_type") == "video"
        ]
        if not video or not video[0].get("width") or not video[0].get("height"):
            raise MalformedFileError("no video stream with a frame size")
        width, height = int(video[0]["width"]), int(video[0]["height"])
        check_decode_budget(width, height, 1, style, "video frame")  # our overlay canvas, one frame
        canvas = Image.new("RGBA", (width, height), (0, 0, 0, 0))
        draw_label(canvas, text, style, second)
        canvas.save(work / "label.png")
        ffmpeg.run(
            "-i", "in.mp4", "-i", "label.png",
            "-filter_complex", f"[0:v:0][1:v]overlay=0:0:enable='lt(t,{seconds:g})'[v]",
            "-map", "[v]", "-map", "0:a?", "-map_metadata", "0",
            "-c:v", "libx264", "-preset", "veryfast", "-crf", "18", "-pix_fmt", "yuv420p",
            "-c:a", "copy", "-movflags", "+faststart", "out.mp4",
            cwd=work,
        )  # fmt: skip
        return (work / "out.mp4").read_bytes()
