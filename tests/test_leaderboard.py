"""The leaderboard on a generated class: ranking, invalid submissions, the score cache, the outputs."""
from __future__ import annotations

import csv
import json
import shutil
from html.parser import HTMLParser

import numpy as np
import pytest
from PIL import Image
from test_score import PixelFeatures, make_benchmark, noisy, write_folder

from maskgit_kit.scoring import fid as fidmod
from maskgit_kit.scoring import leaderboard

pytestmark = pytest.mark.skipif(not fidmod.weights_path().is_file(),
                                reason=f"FID Inception weights not at {fidmod.weights_path()} "
                                       "(run python -m maskgit_kit.fid_weights); no downloads in unit tests")


@pytest.fixture(scope="module")
def features():
    f = fidmod.InceptionFeatures(dims=64, precision="fp32", batch_size=16)
    f.load()
    return f


@pytest.fixture
def klass(tmp_path):
    """ground truth + a class: alice (exact copy), bob (a little noise), carol (more), and broken ones."""
    gt, masks, images = make_benchmark(tmp_path / "bench")
    subs = tmp_path / "submissions"
    write_folder(subs / "alice", images)
    write_folder(subs / "bob", noisy(images, 8, seed=1))
    write_folder(subs / "carol", noisy(images, 30, seed=2))
    dave = write_folder(subs / "dave", images)  # missing one file, another the wrong size
    (dave / "image_007.png").unlink()
    Image.fromarray(np.zeros((64, 64, 3), np.uint8)).save(dave / "image_002.png")
    (subs / "erin").mkdir()                         # empty folder
    (subs / "frank.zip").write_bytes(b"PK")         # a stray file, not a folder
    return {"gt": gt, "masks": masks, "images": images, "subs": subs, "root": tmp_path}


def build(klass, features, out="out", **kw):
    logs = []
    run = leaderboard.build_leaderboard(klass["subs"], klass["root"] / out, features, klass["gt"], klass["masks"],
                                        klass["root"] / "cache", log=logs.append, **kw)
    return run, logs


class _Collect(HTMLParser):
    def __init__(self):
        super().__init__()
        self.text, self.images = [], []

    def handle_data(self, data):
        self.text.append(data)

    def handle_starttag(self, tag, attrs):
        if tag == "img":
            self.images.append(dict(attrs)["src"])


def test_ranks_by_fid_lists_broken_submissions_and_writes_every_output(klass, features):
    run, _ = build(klass, features)
    assert [e.name for e in run.ranked] == ["alice", "bob", "carol"]
    assert [e.rank for e in run.ranked] == [1, 2, 3]
    assert run.ranked[0].result["fid"] == pytest.approx(0, abs=1e-6)
    assert run.ranked[0].result["fid"] < run.ranked[1].result["fid"] < run.ranked[2].result["fid"]
    invalid = {e.name: " ".join(e.problems) for e in run.invalid}
    assert set(invalid) == {"dave", "erin", "frank.zip"}
    assert "image_007.png" in invalid["dave"] and "image_002.png: expected 32x32 pixels" in invalid["dave"]
    assert "empty folder" in invalid["erin"] and "not a folder" in invalid["frank.zip"]

    out = klass["root"] / "out"
    rows = list(csv.DictReader((out / "leaderboard.csv").open()))
    assert [(r["rank"], r["student"], r["status"]) for r in rows] == [
        ("1", "alice", "ranked"), ("2", "bob", "ranked"), ("3", "carol", "ranked"),
        ("", "dave", "invalid"), ("", "erin", "invalid"), ("", "frank.zip", "invalid")]
    assert "image_007.png" in rows[3]["reason"]

    md = (out / "leaderboard.md").read_text()
    assert md.index("alice") < md.index("bob") < md.index("carol") < md.index("Invalid submissions") < md.index("dave")

    board = json.loads((out / "leaderboard.json").read_text())
    assert [s["student"] for s in board["students"]] == ["alice", "bob", "carol"]
    fid_entry = board["students"][1]["leaderboard"][0]
    assert fid_entry == {"name": "FID", "value": round(run.ranked[1].result["fid"], 4), "order": "asc"}
    assert {e["name"]: e["order"] for e in board["students"][0]["leaderboard"]} == \
        {"FID": "asc", "PSNR": "desc", "SSIM": "desc", "Points": "desc"}
    assert {i["student"] for i in board["invalid"]} == {"dave", "erin", "frank.zip"}

    page = _Collect()
    page.feed((out / "leaderboard.html").read_text())
    text = " ".join(page.text)
    for name in ("alice", "bob", "carol", "dave", "erin"):
        assert name in text
    # self-contained: every image is an inline PNG (3 students + ground truth strip)
    assert len(page.images) >= 4 and all(src.startswith("data:image/png;base64,") for src in page.images)


def test_rerun_reuses_the_cache_and_rescores_only_changed_submissions(klass, features):
    first, _ = build(klass, features)
    assert sorted(first.scored) == ["alice", "bob", "carol"] and first.reused == []
    second, logs = build(klass, features)
    assert second.scored == [] and sorted(second.reused) == ["alice", "bob", "carol"]
    assert [e.result["fid"] for e in second.ranked] == [e.result["fid"] for e in first.ranked]
    assert any("0 to score, 3 cached" in line for line in logs)
    # bob uploads again and hank arrives: only those two are scored. gina's folder is byte-identical to
    # alice's, so her score comes from the content cache (and ties with alice's).
    Image.fromarray(klass["images"][0]).save(klass["subs"] / "bob" / "image_005.png")
    write_folder(klass["subs"] / "hank", noisy(klass["images"], 15, seed=3))
    shutil.copytree(klass["subs"] / "alice", klass["subs"] / "gina")
    third, _ = build(klass, features)
    assert sorted(third.scored) == ["bob", "hank"] and sorted(third.reused) == ["alice", "carol", "gina"]
    assert [(e.name, e.rank) for e in third.ranked][:2] == [("alice", 1), ("gina", 1)]


def test_baselines_are_reference_rows_not_ranked(klass, features):
    base = klass["root"] / "baselines"
    write_folder(base / "gray", noisy(klass["images"], 50, seed=9))
    run, _ = build(klass, features, baselines_dir=base)
    assert [e.name for e in run.ranked] == ["alice", "bob", "carol"]
    board = json.loads((klass["root"] / "out" / "leaderboard.json").read_text())
    assert [b["name"] for b in board["baselines"]] == ["gray"]
    assert "gray (baseline)" in (klass["root"] / "out" / "leaderboard.md").read_text()


def test_worker_processes_give_the_same_scores(klass, features):
    one, _ = build(klass, features, out="one", jobs=1)
    shutil.rmtree(klass["root"] / "cache" / "scores")
    two, _ = build(klass, features, out="two", jobs=2)
    assert sorted(two.scored) == ["alice", "bob", "carol"]
    for a, b in zip(one.ranked, two.ranked, strict=True):
        assert a.name == b.name and a.result["fid"] == pytest.approx(b.result["fid"], rel=1e-6, abs=1e-6)
        assert a.result["ssim"] == b.result["ssim"]


def test_cli_exit_codes(klass, tmp_path, capsys):
    rc = leaderboard.main([str(tmp_path / "nowhere"), "--out", str(tmp_path / "o"), "--gt-path", str(klass["gt"]),
                           "--mask-path", str(klass["masks"]), "--dims", "64"])
    assert rc == 1 and "submissions folder not found" in capsys.readouterr().err
    rc = leaderboard.main([str(klass["subs"]), "--out", str(tmp_path / "o"), "--gt-path", str(klass["gt"]),
                           "--mask-path", str(klass["masks"]), "--dims", "64", "--precision", "fp32",
                           "--cache-dir", str(tmp_path / "c")])
    out = capsys.readouterr().out
    assert rc == 0 and "scored 3, reused 0 from cache, 3 invalid" in out
    assert all((tmp_path / "o" / name).is_file() for name in leaderboard.OUTPUTS)


# ---------------------------------------------------------------------------------------------------
# intervals, KID and statistical ties; saving each score as it finishes; damaged score-cache entries
# (the stand-in pixel features keep these to a second or two)
# ---------------------------------------------------------------------------------------------------

def fast_build(klass, out="out", **kw):
    logs = []
    run = leaderboard.build_leaderboard(klass["subs"], klass["root"] / out, PixelFeatures(), klass["gt"],
                                        klass["masks"], klass["root"] / "cache", log=logs.append, **kw)
    return run, logs


def test_outputs_show_the_interval_kid_and_the_tie_rule(klass):
    run, _ = fast_build(klass)
    for e in run.ranked:
        lo, hi = e.result["fid_ci"]
        assert lo <= e.result["fid"] <= hi and "mean" in e.result["kid"]
    out = klass["root"] / "out"
    md = (out / "leaderboard.md").read_text()
    assert "FID 95 % interval" in md and "KID x 1000" in md and leaderboard.TIE_RULE in md
    assert "FID 29.9 against each other" in md
    board = json.loads((out / "leaderboard.json").read_text())
    assert all(len(s["fid_ci"]) == 2 and "std" in s["kid"] and "tied_with_above" in s for s in board["students"])
    assert board["settings"]["tie_rule"] == leaderboard.TIE_RULE
    rows = list(csv.DictReader((out / "leaderboard.csv").open()))
    assert all(float(r["fid_lo"]) <= float(r["fid"]) <= float(r["fid_hi"]) for r in rows if r["status"] == "ranked")
    assert "FID 95 % interval" in (out / "leaderboard.html").read_text()


def _fake_result(fid, replicates, seed=0):
    return {"fid": fid, "fid_resamples": {"method": "half-sampling", "seed": seed, "n": 100,
                                          "replicates": list(replicates)}}


def test_statistically_tied_students_are_marked_and_told_apart_ones_are_not():
    rng = np.random.default_rng(0)
    noise = rng.normal(0, 1.0, 200)  # resampling noise shared by everyone (the same halves of the images)
    entries = [leaderboard.Entry(name, leaderboard.Path(name), result=_fake_result(fid, reps))
               for name, fid, reps in [
                   ("ann", 30.0, 40 + noise),
                   ("ben", 30.2, 40.2 + noise + rng.normal(0, 1.0, 200)),   # 0.2 apart, noise 1: tied
                   ("cat", 36.0, 46 + noise + rng.normal(0, 0.3, 200)),     # 6 apart: significant
                   ("dan", 36.0, 46 + noise + rng.normal(0, 0.3, 200)),     # exactly equal FID: same rank, tied
               ]]
    leaderboard.rank_entries(entries)
    got = {e.name: (e.rank, e.tied) for e in entries}
    assert got == {"ann": (1, False), "ben": (2, True), "cat": (3, False), "dan": (3, True)}
    assert [leaderboard._rank_cell(e) for e in entries] == ["1", "2 ≈", "3", "3 ≈"]
    # replicates drawn with another seed are not paired: no tie claimed
    assert not leaderboard.tied_with(_fake_result(30.2, 40.2 + noise, seed=1), _fake_result(30.0, 40 + noise))
    assert not leaderboard.tied_with({"fid": 30.2}, _fake_result(30.0, 40 + noise))


def test_each_score_is_saved_as_it_finishes_and_a_rerun_reuses_them(klass, monkeypatch):
    for i in range(4):  # 7 valid folders in all
        write_folder(klass["subs"] / f"extra{i}", noisy(klass["images"], 5 + 3 * i, seed=10 + i))
    real = leaderboard.score_folder
    calls = []

    def stop_after_four(*args, **kwargs):
        if len(calls) == 4:
            raise KeyboardInterrupt  # Ctrl-C during the fifth
        calls.append(args[0])
        return real(*args, **kwargs)

    monkeypatch.setattr(leaderboard, "score_folder", stop_after_four)
    with pytest.raises(KeyboardInterrupt):
        fast_build(klass)
    assert len(list((klass["root"] / "cache" / "scores").glob("*.json"))) == 4
    monkeypatch.setattr(leaderboard, "score_folder", real)
    run, _ = fast_build(klass)
    assert sorted(run.reused) == sorted(p.name for p in calls) and len(run.scored) == 3
    assert len(run.ranked) == 7


@pytest.mark.parametrize("damage,reason", [
    (lambda text: text[: len(text) // 2], "not JSON"),
    (lambda text: "", "not JSON"),
    (lambda text: json.dumps({k: v for k, v in json.loads(text).items() if k != "ssim"}), "missing ssim"),
    (lambda text: json.dumps({k: v for k, v in json.loads(text).items() if k != "kid"}), "missing kid"),
    (lambda text: json.dumps([1, 2]), "missing fid"),
    (lambda text: json.dumps({**json.loads(text), "fid": "low"}), "no numeric FID"),
])
def test_a_damaged_score_cache_entry_is_ignored_with_a_warning_and_rescored(klass, capsys, damage, reason):
    first, _ = fast_build(klass)
    bob = next(e for e in first.entries if e.name == "bob")
    path = klass["root"] / "cache" / "scores" / f"{bob.key}.json"
    path.write_text(damage(path.read_text()))
    capsys.readouterr()
    second, _ = fast_build(klass)
    err = capsys.readouterr().err.strip().splitlines()
    assert second.scored == ["bob"] and sorted(second.reused) == ["alice", "carol"]
    assert len(err) == 1 and err[0].startswith(f"warning: {path}: damaged score-cache entry") and reason in err[0]
    assert json.loads(path.read_text())["fid"] == pytest.approx(bob.result["fid"])  # rewritten whole


def test_no_uncertainty_scores_are_cached_apart(klass):
    run, _ = fast_build(klass, uncertainty=None)
    assert all("fid_ci" not in e.result for e in run.ranked)
    assert "FID 95 % interval" in (klass["root"] / "out" / "leaderboard.md").read_text()  # the column, with "-"
    again, _ = fast_build(klass)  # with the statistics: not served the plain entries
    assert sorted(again.scored) == ["alice", "bob", "carol"] and all("fid_ci" in e.result for e in again.ranked)
