"""Atomic writes: a reader (or the next run) sees the old file or the new one, never half of one.

Every file the kit writes that a later step reads (checkpoints, caches, results, grades, generated folders)
goes through here: the data is written to a temporary name in the target's own folder, then moved over the
target with ``os.replace``; a crash or an exception leaves the previous file in place and no temporary behind.
"""
from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any


def _default_mode(folder: bool = False) -> int:
    umask = os.umask(0)
    os.umask(umask)
    return (0o777 if folder else 0o666) & ~umask  # mkstemp/mkdtemp are owner-only; give what open()/mkdir give


@contextlib.contextmanager
def replacing(path: str | Path, suffix: str = ".tmp") -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on a clean exit it replaces ``path``, on an error it is removed."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=suffix)
    os.close(fd)
    try:
        yield Path(tmp)
        os.chmod(tmp, _default_mode())
        os.replace(tmp, path)
    finally:
        Path(tmp).unlink(missing_ok=True)


def write_text(path: str | Path, text: str) -> None:
    with replacing(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def write_json(path: str | Path, data: Any, **dumps_kwargs) -> None:
    """Strict JSON by default (``allow_nan=False``: a metric that does not apply is null, not NaN)."""
    dumps_kwargs.setdefault("indent", 2)
    dumps_kwargs.setdefault("allow_nan", False)
    write_text(path, json.dumps(data, **dumps_kwargs) + "\n")


def torch_save(obj: Any, path: str | Path) -> None:
    import torch

    with replacing(path) as tmp:
        torch.save(obj, tmp)


def savez(path: str | Path, **arrays) -> None:
    """``numpy.savez`` (no pickled objects: load it with ``allow_pickle=False``)."""
    import numpy as np

    with replacing(path, suffix=".tmp.npz") as tmp:
        np.savez(tmp, **arrays)


def copy_file(src: str | Path, dest: str | Path) -> None:
    with replacing(dest) as tmp:
        shutil.copyfile(src, tmp)


@contextlib.contextmanager
def replacing_dirs(parent: str | Path, names: list[str] | tuple[str, ...]) -> Iterator[Path]:
    """Yield a staging folder inside ``parent``; fill ``staging/NAME`` for each name. On a clean exit each
    ``parent/NAME`` is replaced by its staged copy (the old one removed only after the new one is in place);
    on an error nothing under ``parent`` changes."""
    parent = Path(parent)
    parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".staging-", dir=parent))
    try:
        yield staging
        old = staging / ".old"
        old.mkdir()
        for name in names:
            target, new = parent / name, staging / name
            if not new.exists():
                raise FileNotFoundError(f"{new}: nothing was staged for {name}")
            if target.exists():
                os.replace(target, old / name)
            if new.is_dir():
                new.chmod(_default_mode(folder=True))
            os.replace(new, target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)

