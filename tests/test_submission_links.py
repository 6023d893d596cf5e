"""Result folders made of links to the ground truth are refused by validation, score.py and the leaderboard.

Before: a folder of symbolic links (or hard links) to ``ground_truth/image_*.png`` scored FID 0.00, 20/20
points and rank 1. Now each linked file is one ``SubmissionError`` problem naming it; a folder given *through*
a symbolic link is still accepted, and so is a ground truth made of links (the instructor's data).
"""
from __future__ import annotations

import os
import shutil

import numpy as np
import pytest
from test_score import make_benchmark, noisy, write_folder

from maskgit_kit.scoring import fid as fidmod
from maskgit_kit.scoring import leaderboard, score
from maskgit_kit.scoring.validation import SubmissionError, benchmark_from_ground_truth, load_images

needs_weights = pytest.mark.skipif(not fidmod.weights_path().is_file(),
                                   reason=f"FID Inception weights not at {fidmod.weights_path()} "
                                          "(run python -m maskgit_kit.fid_weights)")


@pytest.fixture
def bench(tmp_path):
    gt, masks, images = make_benchmark(tmp_path / "bench")
    return {"gt": gt, "masks": masks, "images": images, "bench": benchmark_from_ground_truth(gt)}


def symlink_folder(folder, gt, names, relative=False):
    folder.mkdir(parents=True)
    for name in names:
        target = os.path.relpath(gt / name, folder) if relative else gt / name
        (folder / name).symlink_to(target)
    return folder


def hardlink_folder(folder, gt, names):
    folder.mkdir(parents=True)
    for name in names:
        os.link(gt / name, folder / name)
    return folder


def test_symlinks_to_the_ground_truth_are_refused_one_problem_per_file(bench, tmp_path):
    names = bench["bench"].names
    pred = symlink_folder(tmp_path / "pred", bench["gt"], names)
    with pytest.raises(SubmissionError) as err:
        load_images(pred, bench["bench"])
    problems = err.value.problems
    assert len(problems) == len(names)
    assert problems[3] == (f"image_003.png: a symbolic link (to {bench['gt'] / 'image_003.png'}); "
                           f"copy the image into the folder instead")
    # relative links, links inside the folder and dangling links are links too
    rel = symlink_folder(tmp_path / "rel", bench["gt"], names, relative=True)
    (rel / "image_000.png").unlink()
    shutil.copy(bench["gt"] / "image_001.png", rel / "real_001.png")
    (rel / "image_000.png").symlink_to("real_001.png")
    (rel / "real_001.png").rename(rel / ".hidden_001.png")  # now dangling; the hidden file itself is ignored
    with pytest.raises(SubmissionError) as err:
        load_images(rel, bench["bench"])
    assert len(err.value.problems) == len(names)
    assert err.value.problems[0] == "image_000.png: a symbolic link (to real_001.png); copy the image into " \
                                    "the folder instead"


def test_hard_links_are_refused_naming_each_file(bench, tmp_path):
    names = bench["bench"].names
    pred = write_folder(tmp_path / "pred", noisy(bench["images"], 5))
    (pred / "image_004.png").unlink()
    os.link(bench["gt"] / "image_004.png", pred / "image_004.png")
    with pytest.raises(SubmissionError) as err:
        load_images(pred, bench["bench"])
    assert err.value.problems == ["image_004.png: a hard link (2 names for the same file); copy the image into "
                                  "the folder instead"]
    whole = hardlink_folder(tmp_path / "whole", bench["gt"], names)
    with pytest.raises(SubmissionError) as err:
        load_images(whole, bench["bench"])
    assert len(err.value.problems) == len(names) and all("hard link" in p for p in err.value.problems)


def test_copies_a_folder_given_through_a_link_and_a_linked_ground_truth_are_accepted(bench, tmp_path):
    """What must keep working: plain copies, a symlinked path to the folder, a ground truth of links."""
    names = bench["bench"].names
    copies = tmp_path / "copies"
    shutil.copytree(bench["gt"], copies)
    np.testing.assert_array_equal(load_images(copies, bench["bench"]), bench["images"])
    (tmp_path / "via").symlink_to(copies, target_is_directory=True)
    np.testing.assert_array_equal(load_images(tmp_path / "via", bench["bench"]), bench["images"])
    linked_gt = symlink_folder(tmp_path / "linked_gt", bench["gt"], names)
    np.testing.assert_array_equal(load_images(linked_gt, bench["bench"], "ground truth", trusted=True),
                                  bench["images"])


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs on this platform")
def test_a_fifo_is_refused_without_hanging(bench, tmp_path):
    pred = write_folder(tmp_path / "pred", bench["images"])
    (pred / "image_002.png").unlink()
    os.mkfifo(pred / "image_002.png")
    with pytest.raises(SubmissionError) as err:
        load_images(pred, bench["bench"])
    assert err.value.problems == ["image_002.png: not a regular file"]


@pytest.mark.parametrize("kind", ["symlinks", "hardlinks"])
def test_score_cli_refuses_linked_folders_before_loading_the_model(bench, tmp_path, capsys, monkeypatch, kind):
    make = symlink_folder if kind == "symlinks" else hardlink_folder
    pred = make(tmp_path / "pred", bench["gt"], bench["bench"].names)
    monkeypatch.setattr(fidmod.InceptionFeatures, "load", lambda self: pytest.fail("model loaded before validation"))
    rc = score.main(["--predicted-path", str(pred), "--gt-path", str(bench["gt"]), "--mask-path",
                     str(bench["masks"]), "--no-cache"])
    err = capsys.readouterr().err
    assert rc == 1
    assert ("image_000.png: a symbolic link" if kind == "symlinks" else "image_000.png: a hard link") in err
    assert f"{len(bench['bench'].names)} problem(s)" in err


@pytest.fixture(scope="module")
def features():
    f = fidmod.InceptionFeatures(dims=64, precision="fp32", batch_size=16)
    f.load()
    return f


@needs_weights
def test_leaderboard_does_not_rank_linked_folders(bench, tmp_path, features):
    names = bench["bench"].names
    subs = tmp_path / "submissions"
    write_folder(subs / "honest", noisy(bench["images"], 8, seed=1))
    symlink_folder(subs / "linker", bench["gt"], names)
    hardlink_folder(subs / "hardlinker", bench["gt"], names)
    run = leaderboard.build_leaderboard(subs, tmp_path / "out", features, bench["gt"], bench["masks"],
                                        tmp_path / "cache", log=lambda _: None)
    assert [e.name for e in run.ranked] == ["honest"]
    assert run.ranked[0].result["fid"] > 0
    invalid = {e.name: e.problems for e in run.invalid}
    assert set(invalid) == {"linker", "hardlinker"}
    assert all("symbolic link" in p for p in invalid["linker"]) and len(invalid["linker"]) == len(names)
    assert all("hard link" in p for p in invalid["hardlinker"]) and len(invalid["hardlinker"]) == len(names)
    assert "image_000.png: a symbolic link" in (tmp_path / "out" / "leaderboard.md").read_text()
