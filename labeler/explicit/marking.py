"""The invisible watermark, wired in: written in the visible label's re-encode, read from pixels.

Why here: the mark changes pixels, so it rides the one re-encode the visible label already
costs (:func:`~.image.render_visible_label`'s ``mark`` pass) instead of adding a second loss.
Its payload links the picture to the signed record (docs/watermark.md, "Where the mark is
written and read"): 16 bits of key id, 24 bits of the provider code's hash, 24 bits of the
ProduceID's hash, so a verifier holding the key names the producer after metadata is gone.

The watermark wing (``labeler.watermark``: numpy, scipy) is optional, so it is loaded by name
in :func:`wing`, the one place that knows it may be missing: without it, labelling works and
says the mark is unavailable; only an explicit ``watermark=True`` raises.
"""

from __future__ import annotations

import functools
import importlib
from collections.abc import Sequence
from dataclasses import dataclass
from types import ModuleType
from typing import TYPE_CHECKING, Any, Literal

from ..errors import LabelerError
from ..formats import detect
from ..markkey import MarkKey, WatermarkUnavailableError
from .image import decode_picture, render_visible_label
from .styles import VisibleStyle

if TYPE_CHECKING:
    from PIL import Image

    from ..policy import LabelPolicy

__all__ = [
    "MarkOutcome",
    "label_picture",
    "label_video",
    "mark_compressed_sound",
    "mark_sound",
    "read_mark",
    "wing",
]

_EXTRA = "install the 'watermark' extra (pip install 'aigc-labeler[watermark]')"
_NO_KEY = "the policy has no watermark key: set key_file (the key is derived from it) or watermark_key_file"

MarkStatus = Literal["marked", "off", "unavailable", "too small", "too flat", "too short"]


@functools.cache
def wing() -> ModuleType | None:
    """The watermark wing, or None when its extra (numpy, scipy) is not installed."""
    try:
        return importlib.import_module("labeler.watermark")
    except ImportError:
        return None


@functools.lru_cache(maxsize=16)
def _wing_key(secret: bytes) -> Any:
    w = wing()
    assert w is not None
    return w.WatermarkKey(secret)


@dataclass(frozen=True)
class MarkOutcome:
    """What happened to the invisible mark of one picture. ``status``: ``marked``; ``off``
    (not asked for, or no visible label drawn); ``unavailable`` (no extra, no key, or a GIF /
    CMYK picture); ``too small`` / ``too flat`` (labelled without the mark)."""

    status: MarkStatus
    detail: str = ""
    key_id: int | None = None
    content_id: int | None = None
    psnr: float | None = None

    @property
    def marked(self) -> bool:
        return self.status == "marked"

    @property
    def refused(self) -> bool:
        """The content can't hold the mark (too small, too flat, too short): labelled without it."""
        return self.status in ("too small", "too flat", "too short")

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"status": self.status, "detail": self.detail}
        if self.marked:
            out.update(key_id=self.key_id, content_id=f"{self.content_id:012x}")
            out["psnr"] = round(self.psnr or 0, 2)
        return out


OFF = MarkOutcome("off")
#: a video's mark is stronger than a picture's: every platform re-encodes video with H.264, which
#: drops low-amplitude detail more than JPEG does (2.5x: frames >= 37 dB PSNR; found again after
#: CRF 23 and 28 re-encodes and a downscale to 480x270, docs/watermark.md)
_VIDEO_STRENGTH = 2.5


def _mark_key(policy: LabelPolicy, required: bool) -> tuple[Any, MarkKey] | MarkOutcome:
    """The wing's key for ``policy``, or why there is none (raising if ``required``)."""
    key = MarkKey.for_policy(policy)
    w = wing()
    why = _EXTRA if w is None else _NO_KEY if key is None else ""
    if why:
        if required:
            raise WatermarkUnavailableError(f"watermark=True, but {why}")
        return MarkOutcome("unavailable", why)
    assert key is not None
    return _wing_key(key.secret), key


def label_picture(
    data: bytes, policy: LabelPolicy, produce_id: str, *, visible: bool, watermark: bool | None
) -> tuple[bytes, MarkOutcome]:
    """The picture with its visible label (if ``visible``) and the invisible mark (if
    ``watermark``, default ``policy.watermark`` where a visible label is drawn), in one
    re-encode. ``watermark=True`` without the extra or a key raises
    :class:`~labeler.markkey.WatermarkUnavailableError`; a picture too small or too flat is
    labelled without the mark, and the outcome says so."""
    want = (policy.watermark and visible) if watermark is None else watermark
    text = policy.label_text if visible else None
    second = policy.filing_line if visible else None
    found = _mark_key(policy, required=watermark is True) if want else OFF
    if isinstance(found, MarkOutcome):
        out = render_visible_label(data, text, policy.visible, second) if visible else data
        return out, found
    w, (wkey, key) = wing(), found
    assert w is not None
    payload = w.Payload(wkey.key_id, w.content_id_for(key.producer, produce_id))
    outcomes: list[MarkOutcome] = []

    def mark(img: Image.Image) -> Image.Image:
        try:
            embedded = w.embed(img, wkey, payload, in_place=True)
        except w.WatermarkCapacityError as exc:
            outcomes.append(MarkOutcome(exc.reason, str(exc)))
            return img
        outcomes.append(MarkOutcome("marked", "", payload.key_id, payload.content_id, embedded.psnr))
        return embedded.picture  # type: ignore[no-any-return]

    out = render_visible_label(data, text, policy.visible, second, mark=mark)
    if not outcomes:
        return out, MarkOutcome("unavailable", "a GIF or CMYK picture can't hold the mark")
    return out, outcomes[0]


def mark_sound(
    data: bytes, policy: LabelPolicy, produce_id: str, *, visible: bool, watermark: bool | None
) -> tuple[bytes, MarkOutcome]:
    """A 16-bit PCM WAV with the invisible audio mark (if ``watermark``, default
    ``policy.watermark`` where the rhythm label is added), samples changed in place; the
    rhythm label and the record are added after it. Audio too short or silent is labelled
    without the mark, and the outcome says so."""
    want = (policy.watermark and visible) if watermark is None else watermark
    found = _mark_key(policy, required=watermark is True) if want else OFF
    if isinstance(found, MarkOutcome):
        return data, found
    w, (wkey, key) = wing(), found
    assert w is not None
    payload = w.Payload(wkey.key_id, w.content_id_for(key.producer, produce_id))
    try:
        marked = w.embed_wav(data, wkey, payload)
    except w.WatermarkCapacityError as exc:
        return data, MarkOutcome(exc.reason, str(exc))
    except (ValueError, EOFError) as exc:  # not 16-bit PCM, or a header wave can't read
        return data, MarkOutcome("unavailable", f"this WAV can't hold the mark: {exc}")
    return marked, MarkOutcome("marked", "", payload.key_id, payload.content_id)


def label_video(
    data: bytes, policy: LabelPolicy, produce_id: str, *, watermark: bool | None
) -> tuple[bytes, MarkOutcome]:
    """An MP4 with its opening-frames label and (if ``watermark``, default ``policy.watermark``)
    the invisible mark in every frame, in the one re-encode the label already costs. Frames too
    flat to hold it stay as they are; a video whose frames can't be piped (rotated, no frame
    rate) gets the label alone, and the outcome says why."""
    from .video import FramesNotPipedError, add_video_label

    text, style, second = policy.label_text, policy.visible, policy.filing_line
    want = policy.watermark if watermark is None else watermark
    found = _mark_key(policy, required=watermark is True) if want else OFF
    if isinstance(found, MarkOutcome):
        return add_video_label(data, text, style, second), found
    from PIL import Image

    w, (wkey, key) = wing(), found
    assert w is not None
    payload = w.Payload(wkey.key_id, w.content_id_for(key.producer, produce_id))
    marked: list[float] = []  #: each marked frame's PSNR
    refused: list[str] = []

    def mark(frame: bytes, width: int, height: int) -> bytes:
        picture = Image.frombytes("RGB", (width, height), frame)
        try:
            embedded = w.embed(picture, wkey, payload, strength=_VIDEO_STRENGTH, in_place=True)
        except w.WatermarkCapacityError as exc:
            refused.append(exc.reason)
            return frame
        marked.append(embedded.psnr)
        return picture.tobytes()

    try:
        out = add_video_label(data, text, style, second, mark=mark)
    except FramesNotPipedError as exc:
        return add_video_label(data, text, style, second), MarkOutcome("unavailable", str(exc))
    if not marked:
        return out, MarkOutcome(refused[0] if refused else "too short", "no frame could hold the mark")  # type: ignore[arg-type]
    psnr = min(marked)
    detail = f"{len(marked)} of {len(marked) + len(refused)} frames marked"
    return out, MarkOutcome("marked", detail, payload.key_id, payload.content_id, psnr)


def mark_compressed_sound(
    data: bytes,
    media_format: str,
    policy: LabelPolicy,
    produce_id: str,
    *,
    visible: bool,
    watermark: bool | None,
) -> tuple[bytes, MarkOutcome]:
    """MP3, FLAC or Ogg audio with the invisible mark and (``visible``) the rhythm label, both in
    one ffmpeg re-encode (decoded to 16-bit PCM, marked, the rhythm added, encoded again with the
    same codec and tags). Without a mark to write, only the rhythm (or nothing). Raises
    :class:`~labeler.errors.ToolNotFoundError` without ffmpeg, as the rhythm label does."""
    from .audio import add_rhythm_label, reencode_audio

    outcomes: list[MarkOutcome] = []

    def change(wav: bytes) -> bytes:
        marked, outcome = mark_sound(wav, policy, produce_id, visible=visible, watermark=watermark)
        outcomes.append(outcome)
        return add_rhythm_label(marked, policy.audio) if visible else marked

    want = (policy.watermark and visible) if watermark is None else watermark
    if not want and not visible:
        return data, OFF
    out = reencode_audio(data, media_format, change)
    return out, outcomes[0]


def read_mark(
    data: bytes,
    keys: Sequence[MarkKey],
    *,
    record_ids: tuple[str, str] | None = None,
    style: VisibleStyle | None = None,
    sound: bool = False,
    video: bool = False,
) -> dict[str, Any]:
    """Look for the mark of any of ``keys`` in a picture (``sound``: in a WAV's samples). Never
    raises on content. The p-value is Bonferroni-corrected for the number of keys tried (docs/watermark.md).
    ``record_ids`` (ContentProducer, ProduceID) of a readable label: is the mark that record's?"""
    w = wing()
    if w is None:
        return {"detected": False, "reason": f"watermark detection unavailable: {_EXTRA}"}
    if not keys:
        return {"detected": False, "reason": "no watermark key given"}
    if sound:
        detector = w.detect_wav
        subject: Any = data
        if data[:4] != b"RIFF":  # MP3, FLAC, Ogg: the samples as ffmpeg decodes them
            from .audio import decoded_wav

            try:
                subject = decoded_wav(data, detect(data).name)
            except LabelerError as exc:
                return {"detected": False, "reason": f"cannot decode the audio: {exc}"}
    elif video:  # frames from the first 3 s, read together (watermark.detect_frames)
        from .video import sample_frames

        try:
            width, height, frames = sample_frames(data)
        except LabelerError as exc:
            return {"detected": False, "reason": f"cannot decode the video: {exc}"}
        if not frames:
            return {"detected": False, "reason": "no video frame decoded"}
        import numpy as np

        pictures = [np.frombuffer(f, np.uint8).reshape(height, width, 3) for f in frames]

        def detector(_: Any, wkey: Any, threshold: float) -> Any:
            return w.detect_frames(pictures, wkey, threshold=threshold)

        subject = None
    else:
        detector = w.detect
        try:
            subject = decode_picture(data, style or VisibleStyle())
        except LabelerError as exc:
            return {"detected": False, "reason": f"cannot decode the picture: {exc}"}
    threshold = float(w.DEFAULT_THRESHOLD)
    best: tuple[Any, MarkKey] | None = None
    for key in keys:
        try:
            found = detector(subject, _wing_key(key.secret), threshold=threshold / len(keys))
        except (ValueError, OSError, MemoryError, EOFError) as exc:  # a mode Pillow can't convert, ...
            what = "samples" if sound else "pixels"
            return {"detected": False, "reason": f"cannot read the {what}: {exc}"}
        if best is None or found.p_value < best[0].p_value:
            best = (found, key)
    assert best is not None
    found, key = best
    out: dict[str, Any] = {
        "detected": bool(found.detected),
        "p_value": min(1.0, float(found.p_value) * len(keys)),
        "threshold": threshold,
        "z": round(float(found.z), 2),
        "key_id": found.key_id,
        "content_id": None if found.content_id is None else f"{found.content_id:012x}",
        "producer": None,
        "produce_id_hash": None,
        "matches_record": None,
        "reason": found.reason,
    }
    if found.payload is not None:
        provider_hash = found.content_id >> 24
        out["produce_id_hash"] = f"{found.content_id & 0xFFFFFF:06x}"
        if provider_hash == w.content_id_for(key.producer, "") >> 24:
            out["producer"] = key.producer  # named by the key file, matched by its hash
        if record_ids is not None:
            out["matches_record"] = found.content_id == w.content_id_for(*record_ids)
    return out
