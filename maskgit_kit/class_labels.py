"""Class labels of a prepared benchmark (``meta.json``): for class-conditional MaskGIT and the generation classifier.

``maskgit-prepare-data`` writes ``classes`` (the names; id = position) and ``splits.<split>.labels`` (one id per
image in file order) into the benchmark's ``meta.json``. A folder is mapped to its split by where it lies:
``train/`` and ``val/`` are their own splits; ``ground_truth/``, ``masked_image/`` and ``mask64/``, also those of
a named split under ``splits/<name>/``, are the test split (the same 747 images, numbered alike).
"""
from __future__ import annotations

import json
import math
from pathlib import Path

from .images import DataError

TEST_FOLDERS = ("ground_truth", "masked_image", "mask64")


def _meta(root: Path) -> dict:
    path = root / "meta.json"
    try:
        meta = json.loads(path.read_text())
    except FileNotFoundError:
        raise DataError(f"{path}: not found; class labels come from the meta.json that maskgit-prepare-data "
                        "writes (a folder source needs one sub-folder per class)") from None
    except (OSError, json.JSONDecodeError) as exc:
        raise DataError(f"{path}: not readable JSON ({exc})") from None
    if not isinstance(meta, dict):
        raise DataError(f"{path}: expected a JSON object")
    return meta


def locate(folder: str | Path) -> tuple[Path, str]:
    """(benchmark root, split name) of an image folder, from its place in the benchmark layout."""
    folder = Path(folder).resolve()
    if folder.name in ("train", "val"):
        return folder.parent, folder.name
    if folder.name in TEST_FOLDERS:
        up = folder.parent
        if up.parent.name == "splits":  # splits/<name>/masked_image: the test split's images under other masks
            return up.parent.parent, "test"
        return up, "test"
    raise DataError(f"{folder}: cannot tell which split this folder is (expected train/, val/ or a test folder "
                    f"{'/, '.join(TEST_FOLDERS)}/ of a benchmark made by maskgit-prepare-data)")


def class_names(root: str | Path) -> list[str]:
    """The class names of the benchmark at ``root`` (id = position); an error naming meta.json when it has none."""
    root = Path(root)
    classes = _meta(root).get("classes")
    if not isinstance(classes, list) or not classes or not all(isinstance(c, str) for c in classes):
        raise DataError(f"{root / 'meta.json'}: records no classes; prepare the data from Fashion-MNIST, or from a "
                        "folder with one sub-folder of images per class (maskgit-prepare-data folder SRC)")
    return classes


def split_labels(root: str | Path, split: str) -> list[int]:
    """The class id of every image of ``split`` (file order), checked against the class names."""
    root = Path(root)
    classes = class_names(root)
    labels = (_meta(root).get("splits", {}).get(split) or {}).get("labels")
    if not isinstance(labels, list):
        raise DataError(f"{root / 'meta.json'}: the {split} split records no labels; regenerate it with "
                        "maskgit-prepare-data")
    bad = [v for v in labels if not isinstance(v, int) or isinstance(v, bool) or not 0 <= v < len(classes)]
    if bad:
        raise DataError(f"{root / 'meta.json'}: {split} label {bad[0]!r} is not a class id in 0..{len(classes) - 1}")
    return labels


def folder_labels(folder: str | Path, count: int) -> tuple[list[str], list[int]]:
    """(class names, the labels of the first ``count`` images of ``folder``, in file order)."""
    root, split = locate(folder)
    labels = split_labels(root, split)
    if len(labels) < count:
        raise DataError(f"{root / 'meta.json'}: {len(labels)} {split} labels for the {count} images of {folder}; "
                        "regenerate the data with maskgit-prepare-data")
    return class_names(root), labels[:count]


def parse_class(value: str | int, classes: list[str], flag: str = "--class") -> int:
    """A class given by id ("3") or by name ("Dress", any case) -> its id; one error listing the classes otherwise."""
    text = str(value).strip()
    listing = ", ".join(f"{i}={name}" for i, name in enumerate(classes))
    try:
        number = float(text)
    except ValueError:
        number = None
    if number is not None:
        if math.isfinite(number) and number == int(number) and 0 <= int(number) < len(classes):
            return int(number)
        raise DataError(f"{flag} {text}: no such class id; expected 0..{len(classes) - 1} ({listing})")
    matches = [i for i, name in enumerate(classes) if name.lower() == text.lower()]
    if not matches:
        raise DataError(f"{flag} {text!r}: no such class; expected an id or a name: {listing}")
    return matches[0]
