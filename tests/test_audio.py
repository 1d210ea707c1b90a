"""The audio rhythm label, measured from the samples it leaves (stdlib ``wave`` reads them)."""

from __future__ import annotations

import contextlib
import itertools
import math
import subprocess
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from media import FFMPEG, needs_ffmpeg, sine_wav, wav_samples

from labeler import LabelPolicy, Status, TrustStore, verify
from labeler.errors import LabelerError, UnsupportedFormatError
from labeler.explicit.audio import (
    PATTERN,
    RhythmStyle,
    add_rhythm_label,
    add_rhythm_label_to,
    find_rhythm_label,
    rhythm_segments,
)
from labeler.labeling import label_content


def _tones(samples: list[int], rate: int) -> list[tuple[bool, float]]:
    return rhythm_segments([s / 32768 for s in samples], rate)


def test_short_long_short_short_at_the_start_with_morse_timing() -> None:
    style = RhythmStyle(unit_ms=80, pause_ms=200)
    out = add_rhythm_label(sine_wav(1.0), style)
    samples, rate = wav_samples(out)
    label = samples[: round(rate * style.seconds)]
    runs = _tones(label, rate)
    tones = [round(d, 2) for loud, d in runs if loud]
    gaps = [round(d, 2) for loud, d in runs if not loud]
    assert tones == [0.08, 0.24, 0.08, 0.08]  # short, long, short, short
    assert gaps == [0.08, 0.24, 0.08]  # inside A, between A and I, inside I
    # then the pause, then the original recording unchanged
    original, _ = wav_samples(sine_wav(1.0))
    start = round(rate * (style.seconds + style.pause_ms / 1000))
    assert samples[start:] == original
    assert not any(samples[round(rate * style.seconds) : start])


def test_tone_pitch_and_level_follow_the_style() -> None:
    style = RhythmStyle(frequency=1500, level_dbfs=-6)
    samples, rate = wav_samples(add_rhythm_label(sine_wav(0.2, rate=16000), style))
    unit = round(rate * style.unit_ms / 1000)
    long_tone = samples[2 * unit : 5 * unit]  # the long tone, ramps included
    crossings = sum(1 for a, b in itertools.pairwise(long_tone) if a < 0 <= b)
    assert abs(crossings / (len(long_tone) / rate) - 1500) < 20
    peak = max(abs(s) for s in long_tone) / 32767
    assert abs(20 * math.log10(peak) - -6) < 0.2


@pytest.mark.parametrize("position", ["start", "end", "both"])
def test_position_is_found_again(position: str) -> None:
    out = add_rhythm_label(sine_wav(0.5), RhythmStyle(position=position))  # type: ignore[arg-type]
    assert find_rhythm_label(out) == position
    assert find_rhythm_label(sine_wav(0.5)) is None


@pytest.mark.parametrize("width", [1, 2, 3])
@pytest.mark.parametrize("channels", [1, 2])
def test_every_pcm_width_and_channel_count(width: int, channels: int) -> None:
    src = sine_wav(0.3, rate=8000, channels=channels, width=width)
    out = add_rhythm_label(src, RhythmStyle(position="end"))
    assert find_rhythm_label(out) == "end"
    assert len(out) > len(src)


def test_label_length_matches_the_pattern() -> None:
    style = RhythmStyle(unit_ms=100)
    assert style.seconds == pytest.approx(sum(a + b for a, b in PATTERN) * 0.1)


@pytest.mark.parametrize(
    "kwargs", [{"frequency": 20}, {"level_dbfs": 3}, {"unit_ms": 5}, {"position": "middle"}]
)
def test_bad_styles_are_refused(kwargs: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        RhythmStyle(**kwargs)  # type: ignore[arg-type]


def test_non_pcm_wav_is_unsupported() -> None:
    data = bytearray(sine_wav(0.1))
    data[20:22] = (0x55).to_bytes(2, "little")  # MPEG Layer 3 in WAV
    with pytest.raises(UnsupportedFormatError):
        add_rhythm_label(bytes(data))


@settings(max_examples=200, deadline=None)
@given(cut=st.integers(0, 5000), flip=st.integers(0, 5000), bits=st.integers(1, 255))
def test_broken_wav_raises_only_typed_errors(cut: int, flip: int, bits: int) -> None:
    data = bytearray(sine_wav(0.05, rate=8000)[: max(1, cut)])
    data[flip % len(data)] ^= bits
    for op in (add_rhythm_label, find_rhythm_label):
        with contextlib.suppress(LabelerError):
            op(bytes(data))


def test_label_content_adds_rhythm_then_the_signed_record(policy: LabelPolicy, trust: TrustStore) -> None:
    out = label_content(sine_wav(0.5), policy)
    verdict = verify(out, trust)
    assert verdict.status is Status.VERIFIED and verdict.explicit_label
    assert find_rhythm_label(out) == "start"


def test_rhythm_alone_reads_as_suspected(policy: LabelPolicy) -> None:
    verdict = verify(add_rhythm_label(sine_wav(0.5)))
    assert verdict.status is Status.NO_LABEL and verdict.notice == "suspected"


@needs_ffmpeg
@pytest.mark.parametrize(("name", "suffix"), [("mp3", ".mp3"), ("flac", ".flac"), ("ogg", ".ogg")])
def test_compressed_audio_is_reencoded_with_the_rhythm(
    name: str, suffix: str, media: dict[str, bytes], tmp_path: Path
) -> None:
    source = {"mp3": "mp3", "flac": "flac", "ogg": "ogg-vorbis"}[name]
    out = add_rhythm_label_to(media[source], name)
    assert FFMPEG is not None
    (tmp_path / f"x{suffix}").write_bytes(out)
    subprocess.run(
        [FFMPEG, "-v", "error", "-i", f"x{suffix}", "-ac", "1", "back.wav"], cwd=tmp_path, check=True
    )
    assert find_rhythm_label((tmp_path / "back.wav").read_bytes()) == "start"


def test_compressed_audio_without_ffmpeg_is_a_clear_error_and_verify_still_answers(
    media: dict[str, bytes], monkeypatch: pytest.MonkeyPatch
) -> None:
    from labeler.errors import ToolNotFoundError

    if "mp3" not in media:
        pytest.skip("needs ffmpeg to make the sample")
    monkeypatch.setenv("LABELER_FFMPEG", "/nonexistent/ffmpeg")
    with pytest.raises(ToolNotFoundError, match="apt-get install ffmpeg"):
        add_rhythm_label_to(media["mp3"], "mp3")
    verdict = verify(media["mp3"], decode_audio=True)  # verify never raises on content
    assert verdict.status is Status.NO_LABEL and not verdict.explicit_label


def test_a_huge_declared_sample_rate_is_refused_not_allocated() -> None:
    """Found by fuzz/run: the label's length follows the header's rate, so the rate is bounded."""
    data = bytearray(sine_wav(0.05, rate=8000))
    data[24:28] = (0xFFFFFFF0).to_bytes(4, "little")  # fmt chunk: sample rate
    with pytest.raises(LabelerError, match="sample rate"):
        add_rhythm_label(bytes(data))


@pytest.mark.parametrize("position", ["start", "end", "both"])
def test_adding_the_rhythm_twice_changes_nothing(position: str) -> None:
    style = RhythmStyle(position=position)  # type: ignore[arg-type]
    once = add_rhythm_label(sine_wav(0.3), style)
    assert add_rhythm_label(once, style) == once
    if position != "both":  # the other side is still added when asked for
        assert find_rhythm_label(add_rhythm_label(once, RhythmStyle(position="both"))) == "both"


@needs_ffmpeg
@pytest.mark.slow
def test_verify_hears_the_rhythm_in_compressed_audio_even_without_tags(
    policy: LabelPolicy, trust: TrustStore, media: dict[str, bytes], tmp_path: Path
) -> None:
    """A platform that transcodes uploads loses the tags; the rhythm survives and, with
    ``decode_audio``, makes the verdict "suspected" (Measures Art. 6 case 3)."""
    labelled = label_content(media["mp3"], policy)  # rhythm + signed record
    assert verify(labelled, trust).explicit_label is False  # not listened to by default
    heard = verify(labelled, trust, decode_audio=True)
    assert heard.status is Status.VERIFIED and heard.explicit_label
    assert FFMPEG is not None
    (tmp_path / "in.mp3").write_bytes(labelled)
    for target in ("stripped.mp3", "stripped.ogg", "stripped.flac"):  # tags gone, codec changed
        subprocess.run(
            [FFMPEG, "-v", "error", "-i", "in.mp3", "-map_metadata", "-1", target], cwd=tmp_path, check=True
        )
        verdict = verify((tmp_path / target).read_bytes(), trust, decode_audio=True)
        assert verdict.status is Status.NO_LABEL and verdict.notice == "suspected", target
    plain = verify(media["mp3"], trust, decode_audio=True)
    assert plain.notice == "none" and not plain.explicit_label


@needs_ffmpeg
def test_decoding_untrusted_audio_never_guesses_a_playlist_demuxer(tmp_path: Path) -> None:
    """An "MP3" (ID3 magic) whose body is a playlist naming another file: decoded as MP3 only."""
    secret = tmp_path / "secret.wav"
    secret.write_bytes(add_rhythm_label(sine_wav(0.5)))  # would read as "suspected" if opened
    playlist = b"ID3\x04\x00\x00\x00\x00\x00\x00#EXTM3U\n#EXTINF:1,\n" + str(secret).encode() + b"\n"
    verdict = verify(playlist, decode_audio=True)
    assert not verdict.explicit_label and verdict.notice == "none"
