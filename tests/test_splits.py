"""The named test splits: large-hole masks generated from the ground truth, and scripts that take them by name."""
from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from conftest import REPO, write_images
from maskgit_kit import prepare_data as pd
from maskgit_kit.paths import SPLITS, split_paths

COMMITTED = REPO / "data" / "fashion64"


def ground_truth(root, n=6):
    write_images(root / "ground_truth", n, seed=4, prefix="image_", digits=3)
    return root


@pytest.mark.parametrize("kind,lo,hi", [("box", 0.35, 0.65), ("outpaint-half", 0.5, 0.5),
                                        ("outpaint-border", 0.75, 0.75), ("generation", 1.0, 1.0)])
def test_mask_kinds_cover_what_they_promise(kind, lo, hi):
    for i in range(20):
        cov = pd.mask_coverage(pd.make_kind_mask(kind, 0, i))
        assert lo - 1e-9 <= cov <= hi + 1e-9, (kind, i, cov)
    assert np.array_equal(pd.make_kind_mask(kind, 0, 3), pd.make_kind_mask(kind, 0, 3))  # a function of (seed, i)


def test_box_and_half_masks_vary_per_image():
    for kind in ("box", "outpaint-half"):
        masks = {pd.make_kind_mask(kind, 0, i).tobytes() for i in range(12)}
        assert len(masks) > 2, kind


def test_write_mask_splits_pairs_images_and_masks(tmp_path):
    data = ground_truth(tmp_path)
    stats = pd.write_mask_splits(data, ["box", "generation"])
    assert stats["generation"]["mask_coverage"]["mean"] == 1.0 and stats["box"]["count"] == 6
    for kind in ("box", "generation"):
        images, masks = split_paths(kind, data)
        for i in range(6):
            gt = np.asarray(Image.open(data / "ground_truth" / f"image_{i:03d}.png"))
            img = np.asarray(Image.open(images / f"image_{i:03d}.png"))
            mask = np.asarray(Image.open(masks / f"mask_{i:03d}.png"))
            assert mask.dtype == np.uint8 and set(np.unique(mask)) <= {0, 255}
            assert (img[mask == 0] == 128).all() and (img[mask == 255] == gt[mask == 255]).all()
    meta = json.loads((data / "splits" / "meta.json").read_text())
    assert set(meta["kinds"]) == {"box", "generation"}


def test_write_mask_splits_bad_input_is_one_clear_error(tmp_path):
    with pytest.raises(pd.PrepareError, match="no ground-truth images"):
        pd.write_mask_splits(tmp_path, ["box"])
    data = ground_truth(tmp_path)
    with pytest.raises(pd.PrepareError, match="unknown mask kind"):
        pd.write_mask_splits(data, ["triangle"])
    pd.write_mask_splits(data, ["box"])
    before = sorted(p.name for p in (data / "splits" / "box" / "mask64").iterdir())
    with pytest.raises(pd.PrepareError, match="pass --force"):
        pd.write_mask_splits(data, ["box"])
    assert sorted(p.name for p in (data / "splits" / "box" / "mask64").iterdir()) == before
    assert pd.main(["masks", "--data", str(tmp_path / "nowhere")]) == 1


def test_the_committed_splits_are_what_the_tool_writes(tmp_path):
    """data/fashion64/splits/ is generated (regenerate with `maskgit-prepare-data masks --force`)."""
    for kind in pd.MASK_KINDS:
        images, masks = split_paths(kind, COMMITTED)
        assert len(list(images.glob("image_*.png"))) == len(list((COMMITTED / "ground_truth").glob("*.png")))
        for i in (0, 373, 746):
            got = np.asarray(Image.open(masks / f"mask_{i:03d}.png"))
            assert np.array_equal(got, pd.make_kind_mask(kind, 0, i)), (kind, i)


def test_split_names_resolve_and_unknown_names_are_refused():
    assert split_paths("strokes", COMMITTED) == (COMMITTED / "masked_image", COMMITTED / "mask64")
    assert set(SPLITS) == {"strokes", *pd.MASK_KINDS}
    with pytest.raises(ValueError, match="choose one of strokes"):
        split_paths("holes", COMMITTED)


def test_inpainting_takes_a_split_by_name(monkeypatch):
    import command_line

    args = command_line.inpainting_parser().parse_args(["--split", "box"])
    command_line.check_inpainting_args(args)
    assert args.test_maskedimage_path == str(COMMITTED / "splits" / "box" / "masked_image")
    assert args.test_mask_path == str(COMMITTED / "splits" / "box" / "mask64")
    explicit = command_line.inpainting_parser().parse_args(["--split", "box", "--test-maskedimage-path", "a",
                                                            "--test-mask-path", "b"])
    command_line.check_inpainting_args(explicit)
    assert (explicit.test_maskedimage_path, explicit.test_mask_path) == ("a", "b")
    monkeypatch.setattr(command_line, "DEFAULT_DATA_ROOT", REPO / "nowhere")
    missing = command_line.inpainting_parser().parse_args(["--split", "generation"])
    with pytest.raises(SystemExit, match="maskgit-prepare-data masks"):
        command_line.check_inpainting_args(missing)
