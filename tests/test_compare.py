"""maskgit-compare: the paired comparison of two result folders on the same test images.

A stand-in feature extractor (pooled pixels) replaces Inception so that each test takes about a second; the
statistics are the same code whatever the features are.
"""
from __future__ import annotations

import json
import shutil

import pytest
from test_score import PixelFeatures, make_benchmark, noisy, write_folder

from maskgit_kit.scoring import compare


@pytest.fixture
def bench(tmp_path):
    gt, masks, images = make_benchmark(tmp_path / "bench", n=40)
    return {"gt": gt, "masks": masks, "images": images, "root": tmp_path}


def run(bench, a, b, replicates=300):
    return compare.run_compare(a, b, bench["gt"], bench["masks"], PixelFeatures(), bench["root"] / "cache",
                               settings=compare.UncertaintySettings(replicates=replicates))


def test_detects_a_real_difference_in_both_directions(bench):
    good = write_folder(bench["root"] / "good", noisy(bench["images"], 4, seed=1))
    bad = write_folder(bench["root"] / "bad", noisy(bench["images"], 70, seed=2))
    ab = run(bench, good, bad)
    assert ab["fid"]["a"] < ab["fid"]["b"] and ab["fid"]["significant"] and ab["fid"]["ci"][1] < 0
    assert ab["fid"]["p_value"] < 0.05 and ab["kid"]["difference"] < 0
    assert ab["verdict"] == "A better than B (significant at 5 %)"
    ba = run(bench, bad, good)
    assert ba["verdict"] == "B better than A (significant at 5 %)"
    assert ba["fid"]["difference"] == pytest.approx(-ab["fid"]["difference"])


def test_identical_folders_show_no_difference(bench):
    a = write_folder(bench["root"] / "a", noisy(bench["images"], 20, seed=3))
    b = shutil.copytree(a, bench["root"] / "b")
    out = run(bench, a, b)
    for metric in ("fid", "kid"):
        assert out[metric]["difference"] == 0 and out[metric]["p_value"] == 1.0 and not out[metric]["significant"]
    assert out["verdict"] == "no significant difference (at 5 %)"
    text = compare.format_comparison(out)
    assert "A - B +0.00" in text and "p = 1.000" in text and "verdict: no significant difference" in text


def test_cli_prints_and_writes_json_and_rejects_a_bad_folder_first(bench, tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(compare, "make_features", lambda args: PixelFeatures())
    a = write_folder(tmp_path / "a", noisy(bench["images"], 4, seed=1))
    b = write_folder(tmp_path / "b", noisy(bench["images"], 70, seed=2))
    common = ["--gt-path", str(bench["gt"]), "--mask-path", str(bench["masks"]), "--cache-dir", str(tmp_path / "c")]
    rc = compare.main([str(a), str(b), *common, "--replicates", "100", "--json", str(tmp_path / "cmp.json")])
    text = capsys.readouterr().out
    assert rc == 0 and "verdict: A better than B (significant at 5 %)" in text
    saved = json.loads((tmp_path / "cmp.json").read_text())
    assert saved["fid"]["replicates"] == 100 and saved["verdict"] in text and saved["n"] == 40
    (b / "image_007.png").unlink()
    monkeypatch.setattr(PixelFeatures, "__call__", lambda self, images: pytest.fail("features before validation"))
    rc = compare.main([str(a), str(b), *common])
    assert rc == 1 and "image_007.png" in capsys.readouterr().err
    with pytest.raises(SystemExit, match="--replicates 3"):
        compare.main([str(a), str(a), *common, "--replicates", "3"])
    with pytest.raises(SystemExit, match="--seed -1: expected a non-negative integer"):
        compare.main([str(a), str(a), *common, "--seed", "-1"])
