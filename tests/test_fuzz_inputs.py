"""Property tests (Hypothesis) of the kit's two readers of untrusted image files.

For every generated input the contract is the same: either one clear error naming each bad file, or a correct
result, never another exception type.

- Scoring validation (``maskgit_kit.scoring.validation.load_images``): result folders whose files have random
  modes (L, LA, RGB, RGBA, P, 1, I;16, F), sizes, truncations, zero or non-image bytes, symbolic and hard
  links, folders in place of files, missing files and extra files with odd (unicode, spaces, hidden) names.
  ``SubmissionError`` must name every file that is certainly wrong; when no error is raised, every image
  equals what was written.
- ``prepare_data.load_square_rgb``: any mode, bit depth, size and format, and broken files; the result is
  uint8 (64, 64, 3) equal to an independent conversion of the written pixels, or ``PrepareError`` naming the file.

Reproducible and fast: ``derandomize=True``, no example database, a fixed number of examples (seconds in all).
"""
from __future__ import annotations

import io
import os
import tempfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image, ImageOps

from maskgit_kit import prepare_data as pd
from maskgit_kit.scoring.validation import SubmissionError, benchmark_from_ground_truth, load_images

FUZZ = settings(max_examples=120, deadline=None, derandomize=True, database=None, print_blob=True,
                suppress_health_check=[HealthCheck.too_slow])
SIZE, N = 8, 3
NAMES = [f"image_{i:03d}.png" for i in range(N)]
MODES = ("L", "LA", "RGB", "RGBA", "P", "1", "I;16", "I", "F")


def pixels(mode: str, h: int, w: int, seed: int, float_range: tuple[float, float] = (0.0, 1.0)) -> np.ndarray:
    """Random pixel data of ``mode`` (the array ``Image.fromarray`` takes for it)."""
    rng = np.random.default_rng(seed)
    if mode == "I;16":
        return rng.integers(0, 65536, (h, w), dtype=np.uint16)
    if mode == "I":
        return rng.integers(0, 65536, (h, w)).astype(np.int32)
    if mode == "F":
        return rng.uniform(*float_range, (h, w)).astype(np.float32)
    channels = {"L": 1, "1": 1, "P": 3, "LA": 2, "RGB": 3, "RGBA": 4}[mode]
    arr = rng.integers(0, 256, (h, w, channels), dtype=np.uint8)
    return arr[..., 0] if channels == 1 else arr


def make_image(mode: str, arr: np.ndarray) -> Image.Image:
    if mode == "1":
        return Image.fromarray(arr).convert("1")
    if mode == "P":
        return Image.fromarray(arr).convert("P")
    return Image.fromarray(arr)


def encode(img: Image.Image, fmt: str) -> bytes:
    buf = io.BytesIO()
    img.save(buf, fmt)
    return buf.getvalue()


def lossless_format(mode: str) -> str:
    return "TIFF" if mode in ("I", "F") else "PNG"  # PNG cannot hold 32-bit integer or float pixels


# ----------------------------------------------------------------------------------------------------
# Scoring validation
# ----------------------------------------------------------------------------------------------------

KINDS = ("good", "good", "good", "mode", "size", "truncated", "zero", "garbage", "symlink", "hardlink",
         "folder", "missing")

file_spec = st.fixed_dictionaries({
    "kind": st.sampled_from(KINDS),
    "mode": st.sampled_from([m for m in MODES if m != "RGB"]),
    "size": st.tuples(st.integers(1, 12), st.integers(1, 12)).filter(lambda s: s != (SIZE, SIZE)),
    "cut": st.floats(0.0, 1.0, exclude_max=True),
    "garbage": st.binary(max_size=64),
    "seed": st.integers(0, 2**16),
})
odd_name = st.text(st.characters(blacklist_categories=("Cs", "Cc"), blacklist_characters="/\\"),
                   min_size=1, max_size=12).filter(lambda s: s not in (".", "..") and len(s.encode()) < 200)


@pytest.fixture(scope="module")
def ground_truth(tmp_path_factory):
    gt = tmp_path_factory.mktemp("fuzz_gt")
    images = [pixels("RGB", SIZE, SIZE, 1000 + i) for i in range(N)]
    for name, img in zip(NAMES, images, strict=True):
        Image.fromarray(img).save(gt / name)
    return gt, benchmark_from_ground_truth(gt)


def write_spec(folder: Path, name: str, spec: dict, gt: Path) -> tuple[str, np.ndarray | None]:
    """Write one file of a result folder; returns (verdict, expected array if it is a good image).

    verdict: "good" must load, "bad" must be named in the error, "either" may load (then correctly) or be named.
    """
    path = folder / name
    good = pixels("RGB", SIZE, SIZE, spec["seed"])
    kind = spec["kind"]
    if kind == "good":
        path.write_bytes(encode(Image.fromarray(good), "PNG"))
        return "good", good
    if kind == "mode":
        mode = spec["mode"]
        path.write_bytes(encode(make_image(mode, pixels(mode, SIZE, SIZE, spec["seed"])), lossless_format(mode)))
        return "bad", None
    if kind == "size":
        h, w = spec["size"]
        path.write_bytes(encode(Image.fromarray(pixels("RGB", h, w, spec["seed"])), "PNG"))
        return "bad", None
    if kind == "truncated":
        data = encode(Image.fromarray(good), "PNG")
        path.write_bytes(data[: int(spec["cut"] * len(data))])
        return "either", good  # cutting only the IEND chunk leaves a complete image
    if kind == "zero":
        path.write_bytes(b"")
        return "bad", None
    if kind == "garbage":
        path.write_bytes(b"\x00NOTIMG" + spec["garbage"])  # no image format's signature
        return "bad", None
    if kind == "symlink":
        path.symlink_to(gt / NAMES[spec["seed"] % N])
        return "bad", None
    if kind == "hardlink":
        other = folder.parent / f"elsewhere_{name}"
        other.write_bytes(encode(Image.fromarray(good), "PNG"))
        os.link(other, path)
        return "bad", None
    if kind == "folder":
        path.mkdir()
        return "bad", None
    return "missing", None


@FUZZ
@given(specs=st.lists(file_spec, min_size=N, max_size=N),
       extras=st.lists(st.tuples(odd_name, st.binary(max_size=16)), max_size=3),
       through_link=st.booleans())
def test_validation_names_every_bad_file_or_loads_exactly(ground_truth, specs, extras, through_link):
    gt, bench = ground_truth
    with tempfile.TemporaryDirectory(prefix="fuzz-") as tmp:
        folder = Path(tmp) / "result"
        folder.mkdir()
        verdicts = {name: write_spec(folder, name, spec, gt) for name, spec in zip(NAMES, specs, strict=True)}
        extra_names = []
        for extra, data in extras:
            if extra in NAMES or (folder / extra).exists():
                continue
            (folder / extra).write_bytes(data)
            if not extra.startswith("."):  # hidden entries are ignored by design
                extra_names.append(extra)
        given_path = folder
        if through_link:  # the folder itself may be given through a symbolic link
            given_path = Path(tmp) / "link"
            given_path.symlink_to(folder, target_is_directory=True)
        try:
            loaded = load_images(given_path, bench)
        except SubmissionError as exc:
            problems = exc.problems
            assert problems and all(isinstance(p, str) and p for p in problems)
            per_file = {p.split(": ", 1)[0] for p in problems if p.split(": ", 1)[0] in NAMES}
            missing = [n for n, (v, _) in verdicts.items() if v == "missing"]
            present = {n for n, (v, _) in verdicts.items() if v != "missing"}
            if not present and not extra_names:
                assert problems[0].startswith("empty folder"), problems
                return
            for name, (verdict, _) in verdicts.items():
                if verdict == "bad":
                    assert name in per_file, (name, problems)
                if verdict == "good":
                    assert name not in per_file, (name, problems)
            if missing:
                assert any(p.startswith(f"missing {len(missing)} file(s)") for p in problems), problems
            else:
                assert not any(p.startswith("missing") for p in problems), problems
            if extra_names:
                line = next(p for p in problems if "unexpected file(s)" in p)
                assert all(e in line for e in extra_names), (extra_names, line)
            # nothing else: one problem per named file, one for the missing, one for the extras
            assert len(problems) == len(per_file) + bool(missing) + bool(extra_names), problems
            return
        assert not extra_names
        assert all(v in ("good", "either") for v, _ in verdicts.values()), verdicts
        for i, name in enumerate(NAMES):
            np.testing.assert_array_equal(loaded[i], verdicts[name][1])


# ----------------------------------------------------------------------------------------------------
# prepare_data: reading and converting any source image
# ----------------------------------------------------------------------------------------------------

def expected_8bit(mode: str, img: Image.Image, arr: np.ndarray) -> np.ndarray:
    """The written pixels as uint8 RGB, computed here independently of prepare_data (alpha over white)."""
    if mode == "I;16" or mode == "I":
        g = np.round(arr.astype(np.float64) * 255 / 65535).astype(np.uint8)
        return np.repeat(g[..., None], 3, axis=2)
    if mode == "F":
        g = np.round(arr.astype(np.float64) * 255).astype(np.uint8)
        return np.repeat(g[..., None], 3, axis=2)
    if mode in ("LA", "RGBA"):
        rgb = arr[..., :-1].astype(np.float64)
        a = arr[..., -1:].astype(np.float64) / 255
        out = rgb * a + 255 * (1 - a)
        out = np.repeat(out, 3, axis=2) if mode == "LA" else out
        return np.round(out).astype(np.uint8)
    return np.asarray(img.convert("RGB"))  # L, 1, P, RGB: the palette / bilevel lookup is PIL's


source_spec = st.fixed_dictionaries({
    "kind": st.sampled_from(("image", "image", "image", "image", "out_of_range", "truncated", "zero", "garbage")),
    "mode": st.sampled_from(MODES),
    "size": st.one_of(st.just((64, 64)), st.tuples(st.integers(1, 90), st.integers(1, 90))),
    "fmt": st.sampled_from(("lossless", "lossless", "BMP", "JPEG", "GIF")),
    "cut": st.floats(0.0, 1.0, exclude_max=True),
    "garbage": st.binary(max_size=64),
    "seed": st.integers(0, 2**16),
    "suffix": st.sampled_from((".png", ".tif", ".jpg", ".bmp", ".gif")),
})


@FUZZ
@given(spec=source_spec)
def test_prepare_converts_faithfully_or_names_the_file(spec):
    mode, (h, w), kind = spec["mode"], spec["size"], spec["kind"]
    with tempfile.TemporaryDirectory(prefix="fuzz-") as tmp:
        path = Path(tmp) / f"src ü {spec['seed']}{spec['suffix']}"
        arr = pixels(mode, h, w, spec["seed"], float_range=(-0.5, 2.0) if kind == "out_of_range" else (0.0, 1.0))
        if kind == "out_of_range":
            mode = "F"
            arr = arr if arr.dtype == np.float32 else pixels("F", h, w, spec["seed"], (-0.5, 2.0))
        img = make_image(mode, arr)
        fmt = lossless_format(mode) if spec["fmt"] == "lossless" or kind == "out_of_range" else spec["fmt"]
        try:
            data = encode(img, fmt)
        except (OSError, ValueError, KeyError):  # this format cannot hold this mode: write it losslessly
            fmt = lossless_format(mode)
            data = encode(img, fmt)
        if kind == "truncated":
            data = data[: int(spec["cut"] * len(data))]
        elif kind == "zero":
            data = b""
        elif kind == "garbage":
            data = b"\x00NOTIMG" + spec["garbage"]
        path.write_bytes(data)
        try:
            out = pd.load_square_rgb(path)
        except pd.PrepareError as exc:
            assert str(exc).startswith(f"{path}: "), str(exc)
            assert kind != "image" or fmt != lossless_format(mode) or mode in ("I", "F"), (spec, str(exc))
            if mode == "F" and kind == "image" and fmt == "TIFF":
                pytest.fail(f"a float image in [0, 1] was refused: {exc}")
            return
        assert kind not in ("zero", "garbage", "out_of_range") or \
            (kind == "out_of_range" and 0 <= arr.min() and arr.max() <= 1), (spec, "accepted a bad file")
        assert out.dtype == np.uint8 and out.shape == (64, 64, 3)
        if kind != "image" or fmt in ("JPEG", "GIF"):
            return  # lossy or palette-reducing formats, and decodable truncations: the shape is the contract
        with Image.open(path) as back:  # what was actually stored (e.g. BMP has no alpha)
            back.load()
            stored_mode = back.mode
            stored = np.asarray(back)
        if stored_mode != mode and not (mode == "1" and stored_mode in ("1", "L", "P")):
            return
        expected = Image.fromarray(expected_8bit(stored_mode, back, stored))
        expected = ImageOps.fit(expected, (64, 64), Image.Resampling.LANCZOS, centering=(0.5, 0.5))
        np.testing.assert_allclose(out.astype(int), np.asarray(expected).astype(int), atol=1,
                                   err_msg=f"{spec}: {stored_mode}")
