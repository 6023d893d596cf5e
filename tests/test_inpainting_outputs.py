"""inpainting.py's outputs: a bad output folder is found before the work, and the batch size changes no pixel."""
from __future__ import annotations

import os

import numpy as np
import pytest
import torch
from PIL import Image
from test_scripts import inpaint_args

import decoding
import inpainting
from conftest import write_test_split
from decoding import DecodeSettings, inpaint_batch
from utils import LoadTestData


@pytest.fixture
def no_work(monkeypatch):
    """Fail the test if inpainting.py gets as far as loading a model."""
    def started(*args, **kwargs):
        raise AssertionError("the work started before the output folder was checked")
    monkeypatch.setattr(inpainting, "inpainting_model", started)


def _link(out, tmp_path):
    (tmp_path / "elsewhere").mkdir()
    out.symlink_to(tmp_path / "elsewhere")
    return "is a symbolic link"


def _file(out, tmp_path):
    out.write_text("not a folder")
    return "is a file, not a folder"


def _results_link(out, tmp_path):
    out.mkdir()
    (tmp_path / "elsewhere").mkdir()
    (out / "test_results").symlink_to(tmp_path / "elsewhere")
    return "test_results is a symbolic link"


def _results_file(out, tmp_path):
    out.mkdir()
    (out / "imga").write_text("x")
    return "imga is a file, expected a folder"


def _settings_folder(out, tmp_path):
    out.mkdir()
    (out / "test_results.json").mkdir()
    return "test_results.json is a folder, expected a file"


def _under_a_file(out, tmp_path):
    out.write_text("x")
    return "is a file, not a folder"


@pytest.mark.parametrize("make", [_link, _file, _results_link, _results_file, _settings_folder, _under_a_file])
def test_a_bad_output_folder_is_one_error_before_the_work(tiny_setup, tmp_path, no_work, make):
    out = tmp_path / "out"
    expected = make(out, tmp_path)
    target = out / "sub" if make is _under_a_file else out
    with pytest.raises(SystemExit) as exc:
        inpainting.main(inpaint_args(tiny_setup, target))
    assert str(exc.value).startswith(f"error: --output-dir {target}: ")
    assert expected in str(exc.value)


@pytest.mark.skipif(os.geteuid() == 0, reason="root may write into any folder")
def test_an_unwritable_output_folder_is_found_before_the_work(tiny_setup, tmp_path, no_work):
    out = tmp_path / "out"
    out.mkdir()
    out.chmod(0o555)
    try:
        with pytest.raises(SystemExit, match=f"--output-dir {out}: {out} is not writable"):
            inpainting.main(inpaint_args(tiny_setup, out))
    finally:
        out.chmod(0o755)


def test_a_good_output_folder_is_still_written(tiny_setup, tmp_path):
    out = tmp_path / "new" / "out"  # made on the way
    inpainting.main(inpaint_args(tiny_setup, out, "--total-iter", "2", "--no-save-steps"))
    assert len(list((out / "test_results").glob("*.png"))) == 5


# ----------------------------------------------------------------------------------------------------
# batch size
# ----------------------------------------------------------------------------------------------------
@pytest.fixture
def seven(tiny_setup):
    """Seven test images (a prime number of them: no batch size but 1 and 7 divides it)."""
    root = tiny_setup["root"] / "seven"
    write_test_split(root, n=7, seed=4)
    return root


def _decode_all(model, data, batch_size: int, **settings) -> torch.Tensor:
    settings = DecodeSettings(choice_temperature=4.5, total_iter=3, **settings)
    outs = []
    for start in range(0, len(data), batch_size):
        items = [data[i] for i in range(start, min(start + batch_size, len(data)))]
        images = torch.stack([it[0] for it in items])
        masks = torch.stack([it[1] for it in items])
        out, steps, _ = inpaint_batch(model, images, masks, [it[2] for it in items], settings,
                                      inpainting.iterative_decoding)
        outs.append(torch.cat([out, *steps], dim=1))
    return torch.cat(outs)


@pytest.mark.parametrize("sample", [False, True])
def test_the_batch_size_changes_no_output_value(tiny_model, seven, sample):
    """The float outputs themselves (before any rounding to uint8) are bit-identical at batch 1, 3 and 7."""
    data = LoadTestData(seven / "masked_image", seven / "mask64")
    whole = _decode_all(tiny_model, data, 7, sample=sample)
    for batch_size in (1, 3):
        assert torch.equal(_decode_all(tiny_model, data, batch_size, sample=sample), whole), batch_size


def test_padding_follows_the_thread_count(monkeypatch):
    cpu = torch.device("cpu")
    monkeypatch.setattr(torch, "get_num_threads", lambda: 4)
    assert [decoding.batch_padding(n, cpu) for n in (1, 2, 3, 4, 5, 8)] == [3, 2, 1, 0, 3, 0]
    monkeypatch.setattr(torch, "get_num_threads", lambda: 1)
    assert [decoding.batch_padding(n, cpu) for n in (1, 2, 3)] == [1, 0, 0]  # one image alone takes another kernel
    assert decoding.batch_padding(0, cpu) == 0


def test_inpainting_png_files_are_byte_identical_at_batch_1_3_and_7(tiny_setup, seven, tmp_path):
    files = {}
    for batch_size in ("1", "3", "7"):
        out = tmp_path / f"b{batch_size}"
        args = inpaint_args(tiny_setup, out, "--total-iter", "3", "--test-maskedimage-path",
                            str(seven / "masked_image"), "--test-mask-path", str(seven / "mask64"))
        args[args.index("--batch-size") + 1] = batch_size
        inpainting.main(args)
        files[batch_size] = {p.relative_to(out): p.read_bytes() for p in sorted(out.rglob("*.png"))}
    assert len(files["7"]) == 3 * 7
    assert files["1"] == files["7"] and files["3"] == files["7"]
    first = np.asarray(Image.open(tmp_path / "b1" / "test_results" / "image_006.png"))
    assert first.shape == (64, 64, 3)
