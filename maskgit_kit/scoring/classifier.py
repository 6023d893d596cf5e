"""The generation classifier: how often a generated image is recognised as the class it was conditioned on.

A small CNN trained on the benchmark's train split (``tools/train_classifier.py``; shipped as
``checkpoints/classifier.pt``). Its accuracy on the real test images is the ceiling a generator can reach on
this measure: a conditional sample "recognised" as often as the real images are is as class-faithful as this
classifier can tell. Usage::

    maskgit-classify --predicted-path lab/test_results --class test     # image i conditioned on test image i's class
    maskgit-classify --predicted-path gen_dress --class Dress --json out.json

The checkpoint is a plain dict (``kind``, ``config``, ``classes``, ``image_size``, ``state_dict``, ``meta``),
loaded with ``torch.load(weights_only=True)``.
"""
from __future__ import annotations

import argparse
import math
import sys
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from ..atomic import write_json
from ..class_labels import class_names, folder_labels, locate, parse_class
from ..images import DataError
from ..paths import CHECKPOINTS, DEFAULT_GT_PATH
from .validation import IMAGE_NAME, Benchmark, SubmissionError, load_images

DEFAULT_CLASSIFIER = CHECKPOINTS / "classifier.pt"
KIND = "generation-classifier"


@dataclass(frozen=True)
class ClassifierConfig:
    """The CNN's shape: three 3x3 conv blocks (each conv, batch norm, ReLU, 2x2 max pool), then a linear layer."""

    channels: tuple[int, ...] = (16, 32, 64)
    num_classes: int = 10
    image_size: int = 64
    downsample: int = 2  # Fashion-MNIST is 28x28 upscaled to 64: averaging 2x2 first loses nothing, costs 4x less
    dropout: float = 0.2

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ClassifierConfig:
        known = {k: data[k] for k in cls.__dataclass_fields__ if k in data}
        unknown = sorted(set(data) - set(known))
        if unknown:
            raise ValueError(f"unknown classifier config keys: {', '.join(unknown)}")
        if "channels" in known:
            known["channels"] = tuple(int(c) for c in known["channels"])
        return cls(**known)


class SmallCNN(nn.Module):
    """uint8-range RGB images in [-1, 1], float (N, 3, S, S) -> class logits (N, num_classes)."""

    def __init__(self, cfg: ClassifierConfig):
        super().__init__()
        self.cfg = cfg
        layers: list[nn.Module] = [nn.AvgPool2d(cfg.downsample)] if cfg.downsample > 1 else []
        in_ch, side = 3, cfg.image_size // max(cfg.downsample, 1)
        for ch in cfg.channels:
            layers += [nn.Conv2d(in_ch, ch, 3, padding=1, bias=False), nn.BatchNorm2d(ch), nn.ReLU(inplace=True),
                       nn.MaxPool2d(2)]
            in_ch, side = ch, side // 2
        self.features = nn.Sequential(*layers)
        self.head = nn.Sequential(nn.Flatten(), nn.Dropout(cfg.dropout),
                                  nn.Linear(in_ch * side * side, cfg.num_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))  # (N, num_classes)


def to_input(images_uint8: np.ndarray | torch.Tensor) -> torch.Tensor:
    """uint8 (N, H, W, 3) -> float (N, 3, H, W) in [-1, 1], the kit's image range."""
    x = torch.as_tensor(images_uint8)
    return x.permute(0, 3, 1, 2).float().div(127.5).sub(1.0)


def make_checkpoint(model: SmallCNN, classes: list[str], meta: dict[str, Any]) -> dict[str, Any]:
    cfg = asdict(model.cfg)
    cfg["channels"] = list(cfg["channels"])
    return {"kind": KIND, "config": cfg, "classes": list(classes), "image_size": model.cfg.image_size,
            "state_dict": {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}, "meta": meta}


def load_classifier(path: str | Path | None = None, device: str | torch.device = "cpu",
                    classes: list[str] | None = None) -> SmallCNN:
    """The classifier of ``path`` (default ``checkpoints/classifier.pt``) in eval mode, its class names on
    ``model.classes``. ``classes``: the benchmark's class names, which must be the checkpoint's. Every problem
    is one ``DataError`` naming the file."""
    path = Path(path) if path is not None else DEFAULT_CLASSIFIER
    if not path.is_file():
        raise DataError(f"{path}: classifier checkpoint not found (train one with tools/train_classifier.py)")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - a truncated zip, a pickle with objects, random bytes: all unusable
        raise DataError(f"{path}: not a readable classifier checkpoint ({type(exc).__name__}: {exc})") from None
    if not isinstance(ckpt, dict) or ckpt.get("kind") != KIND:
        found = ckpt.get("kind") if isinstance(ckpt, dict) else type(ckpt).__name__
        raise DataError(f"{path}: not a generation-classifier checkpoint (kind {found!r}, expected {KIND!r})")
    missing = [k for k in ("config", "classes", "image_size", "state_dict") if k not in ckpt]
    if missing:
        raise DataError(f"{path}: classifier checkpoint lacks {', '.join(missing)}")
    try:
        cfg = ClassifierConfig.from_dict(ckpt["config"])
    except (TypeError, ValueError) as exc:
        raise DataError(f"{path}: bad classifier config ({exc})") from None
    stored = list(ckpt["classes"])
    if len(stored) != cfg.num_classes or ckpt["image_size"] != cfg.image_size:
        raise DataError(f"{path}: inconsistent checkpoint: {len(stored)} class names and image size "
                        f"{ckpt['image_size']} for a config of {cfg.num_classes} classes at {cfg.image_size}")
    if classes is not None and list(classes) != stored:
        raise DataError(f"{path}: trained on the classes {stored}, but the benchmark has {list(classes)}; "
                        "train a classifier on this benchmark (tools/train_classifier.py)")
    model = SmallCNN(cfg)
    try:
        model.load_state_dict(ckpt["state_dict"])
    except (RuntimeError, TypeError, AttributeError) as exc:
        raise DataError(f"{path}: weights do not fit the recorded config ({str(exc).splitlines()[0]})") from None
    model.classes = stored
    model.source = path
    return model.to(device).eval()


@torch.no_grad()
def predict(model: SmallCNN, images_uint8: np.ndarray, batch_size: int = 256) -> np.ndarray:
    """The predicted class of each image: uint8 (N, H, W, 3) -> int64 (N,)."""
    images_uint8 = np.asarray(images_uint8)
    size = model.cfg.image_size
    if images_uint8.dtype != np.uint8 or images_uint8.ndim != 4 or images_uint8.shape[1:] != (size, size, 3):
        raise ValueError(f"expected uint8 images of shape (N, {size}, {size}, 3), got {images_uint8.dtype} "
                         f"{images_uint8.shape}")
    model.eval()
    device = next(model.parameters()).device
    out = [model(to_input(images_uint8[i:i + batch_size]).to(device)).argmax(1).cpu()
           for i in range(0, len(images_uint8), batch_size)]
    return torch.cat(out).numpy().astype(np.int64) if out else np.zeros(0, np.int64)


def wilson_interval(hits: int, n: int, z: float = 1.959964) -> tuple[float, float]:
    """The Wilson score interval of a binomial proportion (95 % for the default z)."""
    if n == 0:
        return (0.0, 1.0)
    p = hits / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return (max(0.0, centre - half), min(1.0, centre + half))


def class_accuracy(model: SmallCNN, images_uint8: np.ndarray, labels) -> dict[str, Any]:
    """How often each image is recognised as its label: ``accuracy``, ``n``, ``ci95`` (Wilson), ``per_class``
    (name -> accuracy, n) over the classes that occur, and ``predictions``."""
    labels = np.asarray(labels, dtype=np.int64)
    if labels.shape != (len(images_uint8),):
        raise ValueError(f"{len(labels)} labels for {len(images_uint8)} images")
    names = getattr(model, "classes", [str(i) for i in range(model.cfg.num_classes)])
    if labels.size and (labels.min() < 0 or labels.max() >= len(names)):
        raise ValueError(f"labels must be class ids in 0..{len(names) - 1}")
    pred = predict(model, images_uint8)
    hit = pred == labels
    per_class = {names[c]: {"accuracy": float(hit[labels == c].mean()), "n": int((labels == c).sum())}
                 for c in np.unique(labels)}
    n = int(len(labels))
    return {"accuracy": float(hit.mean()) if n else float("nan"), "n": n,
            "ci95": list(wilson_interval(int(hit.sum()), n)), "per_class": per_class, "predictions": pred.tolist()}


def folder_benchmark(folder: str | Path, size: int) -> Benchmark:
    """The names a generated folder must hold: ``image_000.png`` up to its highest-numbered ``image_*.png``."""
    folder = Path(folder)
    if not folder.is_dir():
        raise SubmissionError(folder, ["folder not found"])
    indices = [int(m.group(1)) for p in folder.iterdir() if (m := IMAGE_NAME.fullmatch(p.name))]
    if not indices:
        raise SubmissionError(folder, ["no image_000.png .. files (the names inpainting.py writes)"])
    return Benchmark(tuple(f"image_{i:03d}.png" for i in range(max(indices) + 1)), size)


def classify_folder(folder: str | Path, class_spec: str, model: SmallCNN | None = None,
                    gt_dir: str | Path = DEFAULT_GT_PATH) -> dict[str, Any]:
    """``class_accuracy`` of the images of a results folder, read with the submission checks (no links).

    ``class_spec``: ``test`` (image i was conditioned on test image i's class, the labels of ``gt_dir``'s split)
    or one class for every image, by id or name. Raises ``SubmissionError`` for a malformed folder and
    ``DataError`` for an unknown class or a classifier trained on other classes.
    """
    classes = class_names(locate(gt_dir)[0])
    model = model or load_classifier(classes=classes)
    if list(getattr(model, "classes", classes)) != classes:
        raise DataError(f"{getattr(model, 'source', 'classifier')}: trained on other classes than {classes}")
    if class_spec != "test":
        label = parse_class(class_spec, classes)  # an unknown class fails before any image is read
    bench = folder_benchmark(folder, model.cfg.image_size)
    images = load_images(folder, bench, what="generated")
    if class_spec == "test":
        _, labels = folder_labels(gt_dir, bench.n)
    else:
        labels = [label] * bench.n
    result = class_accuracy(model, images, labels)
    return {"predicted_path": str(folder), "class": class_spec, "classifier": str(getattr(model, "source", "")),
            **result}


def format_result(result: dict[str, Any]) -> str:
    lo, hi = result["ci95"]
    lines = [f"{result['n']} images in {result['predicted_path']} (class {result['class']})",
             f"recognised as their class: {100 * result['accuracy']:.1f} %  (95 % interval {100 * lo:.1f} .. "
             f"{100 * hi:.1f} %, Wilson)"]
    if len(result["per_class"]) > 1:
        lines += [f"  {name:<12} {100 * v['accuracy']:5.1f} %  (n = {v['n']})"
                  for name, v in result["per_class"].items()]
    lines.append("ceiling: the classifier's own accuracy on the real test images (checkpoints/README.md)")
    return "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--predicted-path", type=Path, required=True,
                        help="folder of generated images image_000.png .. (e.g. test_results)")
    parser.add_argument("--class", dest="class_spec", required=True, metavar="CLASS",
                        help="the conditioning class: 'test' (image i had test image i's class), or an id or name "
                             "for every image (e.g. 3 or Dress)")
    parser.add_argument("--classifier", type=Path, default=DEFAULT_CLASSIFIER, help="classifier checkpoint")
    parser.add_argument("--gt-path", type=Path, default=DEFAULT_GT_PATH,
                        help="a test folder of the benchmark (its meta.json gives the class names and test labels)")
    parser.add_argument("--json", type=Path, default=None, help="also write the numbers to this JSON file")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        model = load_classifier(args.classifier, classes=class_names(locate(args.gt_path)[0]))
        result = classify_folder(args.predicted_path, args.class_spec, model, args.gt_path)
    except (SubmissionError, DataError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(format_result(result))
    if args.json is not None:
        existed = args.json.exists()
        write_json(args.json, result)
        print(f"{'replaced' if existed else 'wrote'} {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
