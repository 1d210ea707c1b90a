"""The image watermark (issue 16, first step): embed -> a platform's attack -> detect, on
photo-like pictures made here; quality (PSNR, SSIM); no detection on unmarked pictures; the
payload code. The attack table over many pictures is benchmarks/bench_watermark.py."""

from __future__ import annotations

import binascii
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st
from PIL import Image
from scipy import ndimage  # type: ignore[import-untyped]
from watermark.attacks import ATTACKS, sample_pictures, synthetic_scene

from labeler.errors import LabelerError
from labeler.watermark import (
    Payload,
    WatermarkCapacityError,
    WatermarkKey,
    content_id_for,
    detect,
    embed,
)
from labeler.watermark.payload import (
    CODED_BITS,
    _list_paths,
    decode_bits,
    decode_list,
    encode_bits,
    list_candidates,
)

KEY = WatermarkKey(b"test-watermark-key-0123456789")
PAYLOAD = Payload(KEY.key_id, content_id_for("ACME-AI", "2026-11-24-0001"))


def psnr(a: Image.Image, b: Image.Image) -> float:
    x, y = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return float(10 * np.log10(255.0**2 / np.mean((x - y) ** 2)))


def ssim(a: Image.Image, b: Image.Image) -> float:
    """Mean SSIM over R, G, B (Wang et al., 7x7 windows, sample covariance: scikit-image's
    defaults), written out so the test needs no scikit-image."""
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    out = []
    for ch in range(3):
        x = np.asarray(a, np.float64)[..., ch]
        y = np.asarray(b, np.float64)[..., ch]
        f = lambda v: ndimage.uniform_filter(v, 7)  # noqa: E731
        norm = 49 / 48
        mx, my = f(x), f(y)
        vx, vy, cxy = (f(x * x) - mx * mx) * norm, (f(y * y) - my * my) * norm, (f(x * y) - mx * my) * norm
        s = ((2 * mx * my + c1) * (2 * cxy + c2)) / ((mx * mx + my * my + c1) * (vx + vy + c2))
        out.append(float(s[3:-3, 3:-3].mean()))
    return float(np.mean(out))


@pytest.fixture(scope="module")
def scene() -> Image.Image:
    return synthetic_scene(11)


@pytest.fixture(scope="module")
def marked(scene: Image.Image) -> Image.Image:
    result = embed(scene, KEY, PAYLOAD)
    assert isinstance(result.picture, Image.Image)
    return result.picture


# ---------------------------------------------------------------- payload code


@given(st.integers(0, 0xFFFF), st.integers(0, (1 << 48) - 1))
def test_payload_round_trips_through_the_code(key_id: int, content_id: int) -> None:
    payload = Payload(key_id, content_id)
    coded = encode_bits(payload)
    assert coded.shape == (CODED_BITS,)
    assert decode_bits(1.0 - 2.0 * coded) == payload


@given(
    st.integers(0, (1 << 64) - 1),
    st.lists(st.integers(0, CODED_BITS - 1), max_size=3, unique=True),
    st.lists(st.integers(0, CODED_BITS - 1), max_size=40, unique=True),
)
def test_the_code_corrects_flips_and_erasures(value: int, flips: list[int], erased: list[int]) -> None:
    payload = Payload.from_int(value)
    soft = 1.0 - 2.0 * encode_bits(payload)
    soft[erased] = 0.0
    soft[flips] *= -1.0
    assert decode_bits(soft) == payload


def test_a_known_key_id_reads_a_fainter_payload() -> None:
    """The detector knows the key it looks with, so the payload's 16 key-id bits are fixed on
    the trellis: more payloads read at the same noise, and a wrong id never reads."""
    rng = np.random.default_rng(5)
    coded = 1.0 - 2.0 * encode_bits(PAYLOAD)
    free = known = 0
    for _ in range(200):
        soft = coded + rng.normal(0.0, 1.3, CODED_BITS)
        free += decode_bits(soft) == PAYLOAD
        known += decode_bits(soft, PAYLOAD.key_id) == PAYLOAD
    assert known > free
    assert decode_bits(coded, PAYLOAD.key_id) == PAYLOAD
    assert decode_bits(coded, PAYLOAD.key_id ^ 1) is None


def test_a_noise_decode_is_rejected_by_the_crc() -> None:
    rng = np.random.default_rng(3)
    decoded = [decode_bits(rng.normal(size=CODED_BITS)) for _ in range(200)]
    assert sum(d is not None for d in decoded) <= 1  # 2^-16 each


LIST_PAYLOAD = Payload(0xBEEF, 0x123456789ABC)


def _checked(bits: np.ndarray, key_id: int) -> Payload | None:
    """The payload of 80 info bits if its CRC-16 (computed here, independently) and key id
    check."""
    word = int("".join(str(int(b)) for b in bits), 2)
    value, crc = word >> 16, word & 0xFFFF
    if binascii.crc_hqx(value.to_bytes(8, "big"), 0xFFFF) != crc or value >> 48 != key_id:
        return None
    return Payload.from_int(value)


def test_the_list_decoder_reads_what_plain_viterbi_misses() -> None:
    coded = 1.0 - 2.0 * encode_bits(LIST_PAYLOAD)
    soft = coded + np.random.default_rng(0).normal(0.0, 1.4, CODED_BITS)
    assert decode_bits(soft, LIST_PAYLOAD.key_id) is None
    assert decode_list(soft, LIST_PAYLOAD.key_id, 64, fixed=False) == LIST_PAYLOAD
    assert decode_list(soft, LIST_PAYLOAD.key_id, 16) == LIST_PAYLOAD
    assert decode_list(soft, LIST_PAYLOAD.key_id ^ 0x0100, 64, fixed=False) is None


def test_the_list_decoder_reads_more_over_many_noisy_codewords() -> None:
    rng = np.random.default_rng(9)
    coded = 1.0 - 2.0 * encode_bits(LIST_PAYLOAD)
    plain = listed = 0
    for _ in range(60):
        soft = coded + rng.normal(0.0, 1.4, CODED_BITS)
        plain += decode_bits(soft, LIST_PAYLOAD.key_id) == LIST_PAYLOAD
        found = decode_list(soft, LIST_PAYLOAD.key_id, 64, fixed=False)
        assert found in (None, LIST_PAYLOAD)
        listed += found == LIST_PAYLOAD
    assert listed > plain + 5


@given(st.integers(0, 2**32 - 1), st.integers(0, 0xFFFF), st.booleans())
def test_list_candidates_always_pass_crc_and_key_id(seed: int, key_id: int, fixed: bool) -> None:
    """On noise or a faint mark, every candidate returned has a valid CRC and the key id asked
    for; on noise, none is expected (16 paths: 2^-12 with the key id fixed, 2^-28 compared)."""
    rng = np.random.default_rng(seed)
    soft = rng.normal(size=CODED_BITS) + 0.3 * (1.0 - 2.0 * encode_bits(Payload(key_id, seed)))
    paths = _list_paths(soft.reshape(-1, 3), key_id if fixed else None, 16)
    assert len(paths) == 16 and len({p.tobytes() for p in paths}) == 16  # distinct paths
    wanted = [p for p in (_checked(bits, key_id) for bits in paths) if p is not None]
    assert list_candidates(soft, key_id, 16, fixed=fixed) == wanted


def test_the_list_decoder_rejects_noise() -> None:
    rng = np.random.default_rng(4)
    for _ in range(100):
        assert decode_list(rng.normal(size=CODED_BITS), 0x1234, 64, fixed=False) is None


@given(st.integers(0, 0xFFFF), st.integers(0, (1 << 48) - 1), st.integers(0, 2**32 - 1))
def test_the_list_decoder_agrees_with_viterbi_at_high_snr(key_id: int, content_id: int, seed: int) -> None:
    payload = Payload(key_id, content_id)
    soft = 1.0 - 2.0 * encode_bits(payload) + np.random.default_rng(seed).normal(0.0, 0.5, CODED_BITS)
    assert decode_bits(soft, key_id) == payload
    assert decode_list(soft, key_id, 8) == payload
    assert decode_list(soft, key_id, 64, fixed=False) == payload
    assert list_candidates(soft, key_id, 8)[0] == payload


def test_payload_and_key_are_checked() -> None:
    with pytest.raises(ValueError):
        Payload(1 << 16, 0)
    with pytest.raises(ValueError):
        Payload(0, 1 << 48)
    with pytest.raises(ValueError):
        WatermarkKey(b"short")
    assert WatermarkKey(b"x" * 16).key_id == WatermarkKey(b"x" * 16).key_id
    assert WatermarkKey(b"x" * 16, key_id=7).key_id == 7
    cid = content_id_for("ACME-AI", "abc")
    assert 0 <= cid < 1 << 48 and cid == content_id_for("ACME-AI", "abc")
    assert cid >> 24 == content_id_for("ACME-AI", "other") >> 24  # the provider half names it


# ---------------------------------------------------------------- quality


def test_quality_psnr_and_ssim(scene: Image.Image, marked: Image.Image) -> None:
    assert marked.size == scene.size and marked.mode == scene.mode
    assert psnr(scene, marked) >= 40.0
    assert ssim(scene, marked) >= 0.98


def test_quality_on_sample_photos() -> None:
    photos = sample_pictures()[:2]
    if not photos:
        pytest.skip("scikit-image's sample photos are not installed")
    for _, photo in photos:
        out = embed(photo, KEY, PAYLOAD).picture
        assert psnr(photo, out) >= 40.0 and ssim(photo, out) >= 0.98


# ---------------------------------------------------------------- robustness


@pytest.mark.parametrize("attack", list(ATTACKS))
def test_the_payload_survives(marked: Image.Image, attack: str) -> None:
    found = detect(ATTACKS[attack](marked), KEY)
    assert found.detected and found.p_value <= 1e-6
    assert found.payload == PAYLOAD
    assert (found.key_id, found.content_id) == (PAYLOAD.key_id, PAYLOAD.content_id)


def test_geometry_is_reported(marked: Image.Image) -> None:
    found = detect(ATTACKS["rescale 0.8x PNG"](marked), KEY)
    assert found.scale == pytest.approx(0.8, abs=0.01)


def test_arrays_and_modes(scene: Image.Image) -> None:
    arr = np.asarray(scene)
    out = embed(arr, KEY, PAYLOAD).picture
    assert isinstance(out, np.ndarray) and out.shape == arr.shape and out.dtype == np.uint8
    assert detect(out, KEY).payload == PAYLOAD
    gray = scene.convert("L")
    assert detect(embed(gray, KEY, PAYLOAD).picture, KEY).payload == PAYLOAD
    rgba = scene.convert("RGBA")
    rgba.putalpha(200)
    out_rgba = embed(rgba, KEY, PAYLOAD).picture
    assert out_rgba.mode == "RGBA" and out_rgba.getchannel("A").getextrema() == (200, 200)


def _reference_budget(img: Image.Image) -> np.ndarray:
    """The SSIM budget written plainly: scipy's uniform filter (mirrored edges) over the 2 x 2
    blocks' means of y and y^2; an odd last row/column takes its neighbour's."""
    from labeler.watermark import image as wm

    y = np.asarray(img.convert("L"), np.float64)
    h, w = y.shape
    e = y[: h // 2 * 2, : w // 2 * 2]
    pool = lambda a: (a[0::2, 0::2] + a[1::2, 0::2] + a[0::2, 1::2] + a[1::2, 1::2]) / 4  # noqa: E731
    mean = ndimage.uniform_filter(pool(e), 4, mode="reflect")
    var = np.maximum(ndimage.uniform_filter(pool(e * e), 4, mode="reflect") - mean * mean, 0)
    budget: np.ndarray = np.pad(2 * var + wm._C2, ((0, h % 2), (0, w % 2)), mode="edge")
    return budget


def _reference_embed(img: Image.Image, strength: float = 1.0) -> tuple[np.ndarray, float, np.ndarray]:
    """The embedder written plainly, on whole float64 arrays (the oracle for the banded,
    in-place one): SSIM budget of 8 x 8 windows per 2 x 2 block (scipy's uniform filter on the
    blocks' means of y and y^2), an odd last row/column takes its neighbour's, gain from the
    mean budget, mask x tile, clipped, rounded, added to R, G, B (or L) and clipped to 0..255."""
    from labeler.watermark import image as wm

    budget = _reference_budget(img)
    h, w = budget.shape[0] * 2 - img.size[1] % 2, budget.shape[1] * 2 - img.size[0] % 2
    gain = min(wm._SSIM_LOSS**0.5, wm.TARGET_RMS / budget.mean() ** 0.5) * strength
    mask = np.repeat(np.repeat(np.sqrt(budget) * gain, 2, axis=0), 2, axis=1)[:h, :w]
    tile = wm._tile(KEY, PAYLOAD).astype(np.float64)
    pattern = np.tile(tile, (-(-h // 128), -(-w // 128)))[:h, :w]
    step = np.rint(np.clip(mask * pattern, -3 * wm.TARGET_RMS, 3 * wm.TARGET_RMS))
    arr = np.asarray(img).astype(np.float64)
    colour = arr if img.mode == "L" else arr[..., :3]
    out = np.clip(colour + (step if img.mode == "L" else step[..., None]), 0, 255)
    mse = np.mean((out - colour) ** 2)
    if img.mode != "L":
        out = np.concatenate([out, arr[..., 3:]], axis=2)
    return out.astype(np.uint8), float(10 * np.log10(255.0**2 / mse)), budget


@given(
    st.integers(128, 300),
    st.integers(128, 300),
    st.sampled_from(["RGB", "RGBA", "L"]),
    st.integers(0, 2**16),
    st.sampled_from([1.0, 2.5]),
)
def test_embedding_matches_the_plain_reference(w: int, h: int, mode: str, seed: int, strength: float) -> None:
    """Bands, 2 x 2 blocks, odd edges, modes and clipping at black and white: the embedder
    writes what the plain whole-array reference writes (a level's rounding may differ where
    float32 and float64 straddle .5), and reports the PSNR of the change it made, exactly."""
    rng = np.random.default_rng(seed)
    base = synthetic_scene(seed, (w, h)).convert(mode)
    arr = np.asarray(base).copy()
    arr[h // 3 : h // 2] = 255  # white and black bands: the change must clip, never wrap
    arr[-(h // 5) :] = rng.integers(0, 4, size=arr[-(h // 5) :].shape)
    img = Image.fromarray(arr, mode)
    from labeler.watermark import image as wm

    want, want_psnr, budget = _reference_embed(img, strength)
    np.testing.assert_allclose(wm._ssim_budget(img), budget, rtol=1e-5, atol=0.02)  # float32 sums
    got = embed(img, KEY, PAYLOAD, strength=strength)
    out = np.asarray(got.picture)
    assert got.picture.mode == mode and out.shape == want.shape
    differ = out.astype(np.int16) - want
    assert np.abs(differ).max() <= 1 and np.count_nonzero(differ) <= max(3, differ.size // 2000)
    x, y = np.asarray(img, np.float64), out.astype(np.float64)
    if mode == "RGBA":
        assert np.array_equal(out[..., 3], arr[..., 3])
        x, y = x[..., :3], y[..., :3]
    assert got.psnr == pytest.approx(10 * np.log10(255.0**2 / np.mean((x - y) ** 2)), abs=1e-9)
    assert got.psnr == pytest.approx(want_psnr, abs=0.05)


@given(
    st.integers(1, 40),
    st.integers(2, 200),
    st.integers(0, 2),
    st.booleans(),
    st.sampled_from([1, 4]),
    st.integers(0, 2**16),
)
def test_compiled_and_numpy_loops_write_the_same_bytes(
    rows: int, w: int, top: int, bottom: bool, stride: int, seed: int
) -> None:
    """The numba loops and the numpy passes (used without the watermark-fast extra) are the
    same function: budget rows for every edge case (0-2 mirrored rows above, 0-1 below), and the
    marked bytes and their squares for grey and RGBX rows, odd widths, any band offset."""
    from labeler.watermark import kernels

    if not kernels.COMPILED:
        pytest.skip("numba (the watermark-fast extra) is not installed")
    rng = np.random.default_rng(seed)
    m = rows + 2 - top + 1 - bottom  # the pooled rows the band's windows read
    assume(m >= top)  # a band has real rows to mirror (a picture is at least 64 blocks high)
    y = rng.integers(0, 256, size=(2 * m, 2 * w), dtype=np.uint8)
    y[:, : w // 2] = 255  # a white part: the budget's floor
    got, want = np.empty((rows, w), np.float32), np.empty((rows, w), np.float32)
    kernels.budget_rows(y, got, top, int(bottom), 58.5225)
    kernels._budget_numpy(y, want, top, int(bottom), 58.5225)
    np.testing.assert_array_equal(got, want)
    r0 = 2 * int(rng.integers(0, 64))  # the band's first row in the picture (even)
    budget = rng.uniform(58, 3000, size=(r0 // 2 + rows + 1, (w + 1) // 2)).astype(np.float32)
    tile = rng.normal(size=(128, 128)).astype(np.float32)
    base = rng.integers(0, 256, size=(2 * rows, w * stride), dtype=np.uint8)
    base[0] = 255  # rows of white and black: the change must clip there
    base[-1] = 0
    a, b = base.copy(), base.copy()
    sq_a = kernels.mark_rows(a, stride, budget, r0, tile, 0.3, 6.9, w)
    sq_b = kernels._mark_numpy(b, stride, budget, r0, tile, 0.3, 6.9, w)
    np.testing.assert_array_equal(a, b)
    assert sq_a == sq_b
    if stride == 4:
        assert np.array_equal(a.reshape(-1, 4)[:, 3], base.reshape(-1, 4)[:, 3])  # the fourth byte


def test_embedding_without_numba_gives_the_same_picture(tmp_path: Path) -> None:
    """Without the watermark-fast extra the numpy passes mark the picture: the same bytes."""
    from labeler.watermark import kernels

    if not kernels.COMPILED:
        pytest.skip("numba (the watermark-fast extra) is not installed")
    picture = synthetic_scene(5, (301, 257))
    picture.save(tmp_path / "in.png")
    code = (
        "import sys; sys.modules['numba'] = None\n"
        "from PIL import Image\n"
        "from labeler.watermark import embed, kernels, WatermarkKey, Payload\n"
        "assert not kernels.COMPILED\n"
        f"key = WatermarkKey({KEY.secret!r}, {KEY.key_id})\n"
        f"payload = Payload({PAYLOAD.key_id}, {PAYLOAD.content_id})\n"
        f"out = embed(Image.open({str(tmp_path / 'in.png')!r}), key, payload)\n"
        f"out.picture.save({str(tmp_path / 'out.png')!r}); print(repr(out.psnr))\n"
    )
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    compiled = embed(picture, KEY, PAYLOAD)
    assert Image.open(tmp_path / "out.png").tobytes() == compiled.picture.tobytes()
    assert float(run.stdout) == compiled.psnr


def test_a_very_wide_picture_has_its_budget() -> None:
    """Wider than 65,536 px, a band is one row of blocks: its windows mirror one row above."""
    from labeler.watermark import image as wm

    img = Image.fromarray(np.random.default_rng(3).integers(0, 256, size=(9, 66_000), dtype=np.uint8), "L")
    np.testing.assert_allclose(wm._ssim_budget(img), _reference_budget(img), rtol=1e-5, atol=0.02)


def test_in_place_changes_the_picture_given(scene: Image.Image) -> None:
    """The label's re-encode marks its own decoded picture without a copy; by default the
    caller's picture is left as it was."""
    before = scene.tobytes()
    copy = embed(scene, KEY, PAYLOAD).picture
    assert copy is not scene and scene.tobytes() == before
    mine = scene.copy()
    same = embed(mine, KEY, PAYLOAD, in_place=True).picture
    assert same is mine and mine.tobytes() == copy.tobytes()
    palette = scene.convert("P")
    marked = embed(palette, KEY, PAYLOAD, in_place=True).picture
    assert marked is not palette and marked.mode == "RGB"  # a mode it can't change in place


def test_compiled_loops_work_where_no_cache_can_be_written(tmp_path: Path) -> None:
    """A read-only install (no __pycache__ beside the module, no numba user cache): numba
    refuses to cache there, so the loops are compiled per process instead of failing."""
    repo = Path(__file__).resolve().parent.parent
    (tmp_path / "__pycache__").write_text("a file: no cache directory can be made here")
    (tmp_path / "loops.py").write_text(
        "from labeler.watermark.kernels import _compiled\n\n@_compiled\ndef plus(x):\n    return x + 1\n"
    )
    nowhere = "/dev/null/cache"  # under a file: not even root can make it
    env = {**os.environ, "NUMBA_CACHE_DIR": nowhere, "XDG_CACHE_HOME": nowhere, "HOME": nowhere}
    env["PYTHONPATH"] = f"{tmp_path}{os.pathsep}{repo}"

    def run(code: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-c", code], env=env, cwd=tmp_path, capture_output=True, text=True
        )

    refused = run("import loops, numba; numba.njit(cache=True)(loops.plus.py_func)")
    assert refused.returncode != 0 and "cannot cache" in refused.stderr  # the situation is real
    works = run("import loops; print(loops.plus(41))")
    assert works.returncode == 0, works.stderr
    assert works.stdout.strip() == "42"


# ---------------------------------------------------------------- false positives


def test_no_detection_on_unmarked_pictures() -> None:
    pictures = [synthetic_scene(s) for s in range(20, 26)] + [p for _, p in sample_pictures()[:3]]
    for picture in pictures:
        found = detect(picture, KEY)
        assert not found.detected and found.p_value > 1e-6 and found.payload is None


def test_another_key_does_not_detect(marked: Image.Image) -> None:
    other = WatermarkKey(b"another-providers-key-0000")
    found = detect(marked, other)
    assert not found.detected and found.payload is None


def test_a_periodic_texture_is_not_a_mark() -> None:
    """A picture that is itself periodic folds coherently; the self-normalised statistic
    must still not call it marked."""
    tile = np.asarray(synthetic_scene(5, (64, 64)))
    texture = Image.fromarray(np.tile(tile, (6, 8, 1)))
    found = detect(texture, KEY)
    assert not found.detected


# ---------------------------------------------------------------- bad input


def test_too_small_and_too_flat_are_typed() -> None:
    with pytest.raises(WatermarkCapacityError) as small:
        embed(synthetic_scene(1, (100, 90)), KEY, PAYLOAD)
    assert small.value.reason == "too small" and isinstance(small.value, LabelerError)
    flat = Image.new("RGB", (400, 300), (128, 128, 128))
    with pytest.raises(WatermarkCapacityError) as flat_err:
        embed(flat, KEY, PAYLOAD)
    assert flat_err.value.reason == "too flat"
    tiny = detect(Image.new("RGB", (20, 20)), KEY)
    assert not tiny.detected and tiny.p_value == 1.0 and tiny.reason
    assert not detect(flat, KEY).detected


@pytest.mark.slow
@pytest.mark.parametrize("seed", range(6))
def test_sweep_synthetic_scenes(seed: int) -> None:
    picture = synthetic_scene(100 + seed, (640, 480))
    out = embed(picture, KEY, PAYLOAD).picture
    for name, attack in ATTACKS.items():
        assert detect(attack(out), KEY).payload == PAYLOAD, name


def test_a_lattice_with_no_point_in_reach_does_not_crash() -> None:
    """Found by the benchmark: a candidate pair of peaks whose every lattice point fell outside
    the autocorrelation window divided by zero (a ZeroDivisionError out of detect)."""
    key = WatermarkKey(b"benchmark-watermark-key-000000")
    picture = embed(synthetic_scene(1002, (768, 512)), key, Payload(key.key_id, 0x5EEDCAFEF00D)).picture
    found = detect(ATTACKS["resize 0.5x"](picture), key)
    assert found.p_value <= 1.0


def test_a_detected_mark_too_faint_for_viterbi_reads_by_the_list(monkeypatch: pytest.MonkeyPatch) -> None:
    """The chain crop 10%, 0.8x, JPEG q50 on the camera man leaves a mark found (p ~ 2e-10) whose
    plain decode fails; the list decode reads it, and without it the payload is unreadable."""
    import labeler.watermark.image as image

    photos = dict(sample_pictures())
    if "camera" not in photos:
        pytest.skip("scikit-image's photos are not installed")
    key = WatermarkKey(b"benchmark-watermark-key-000000")
    payload = Payload(key.key_id, 0x5EED_CAFE_F00D)
    attacked = ATTACKS["chain: crop 10%, 0.8x, jpeg q50"](embed(photos["camera"], key, payload).picture)
    found = detect(attacked, key)
    assert found.detected and found.payload == payload
    monkeypatch.setattr(image, "_read_list", lambda *args: None)
    unread = detect(attacked, key)
    assert unread.detected and unread.payload is None
    assert unread.reason == "mark present, payload unreadable"
