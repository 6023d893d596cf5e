"""The submission format, checked before any scoring work.

A result folder must hold exactly the ground truth's file names (``image_000.png`` ... ``image_{n-1}.png``),
each an RGB image of the benchmark's size. Every problem is collected and reported in one error, so a
student fixes everything in one go instead of one file per run.

Links: the folder itself may be given through a symbolic link (or below one): its path is used as given. But
each image in a result folder must be a regular file of its own: a symbolic link (wherever it points) and a
hard link (a file with more than one name, ``st_nlink > 1``) are refused, naming the file, since either lets a
folder "contain" the ground truth without any inpainting (FID 0). The check is made on the opened file
(``O_NOFOLLOW``, then ``fstat``), so a file swapped for a link between check and read is caught too. The
ground truth and masks are the instructor's data and are read as they are (``trusted=True``), links included
(git-annex and DVC checkouts are symlinks).
"""
from __future__ import annotations

import os
import re
import stat
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..images import DataError, list_images, read_image

IMAGE_NAME = re.compile(r"image_(\d+)\.png")


class SubmissionError(ValueError):
    """A result folder does not have the expected files; ``problems`` lists each one."""

    def __init__(self, folder: str | Path, problems: list[str]):
        self.folder = Path(folder)
        self.problems = list(problems)
        lines = "\n".join(f"  - {p}" for p in self.problems)
        super().__init__(f"{self.folder}: {len(self.problems)} problem(s):\n{lines}")

    @property
    def summary(self) -> str:
        """One line for tables: the first problem and how many more."""
        more = f" (+{len(self.problems) - 1} more)" if len(self.problems) > 1 else ""
        return self.problems[0] + more


@dataclass(frozen=True)
class Benchmark:
    """The file names a result folder must have, and their size: taken from the ground truth folder."""

    names: tuple[str, ...]
    size: int

    @property
    def n(self) -> int:
        return len(self.names)


def _ranges(names: list[str]) -> list[str]:
    """``image_004.png``, ``image_005.png``, ``image_006.png`` -> ``image_004.png .. image_006.png (3 files)``.

    Keeps a message for a half-empty folder readable while still naming every file.
    """
    out: list[str] = []
    run: list[tuple[int, str]] = []

    def flush():
        if len(run) >= 3:
            out.append(f"{run[0][1]} .. {run[-1][1]} ({len(run)} files)")
        else:
            out.extend(name for _, name in run)
        run.clear()

    for name in names:
        m = IMAGE_NAME.fullmatch(name)
        idx = int(m.group(1)) if m else None
        if run and (idx is None or idx != run[-1][0] + 1):
            flush()
        if idx is None:
            out.append(name)
        else:
            run.append((idx, name))
    flush()
    return out


def benchmark_from_ground_truth(gt_dir: str | Path) -> Benchmark:
    """Read the expected names and image size from the ground truth folder (which must be well formed)."""
    gt_dir = Path(gt_dir)
    try:
        files = list_images(gt_dir, "ground truth images")
    except DataError as exc:
        raise SubmissionError(gt_dir, [str(exc)]) from None
    names = [p.name for p in files]
    expected = [f"image_{i:03d}.png" for i in range(len(names))]
    if names != expected:
        odd = sorted(set(names) ^ set(expected))
        raise SubmissionError(gt_dir, [f"ground truth names must be image_000.png .. image_{len(names) - 1:03d}"
                                       f".png; unexpected or missing: {', '.join(_ranges(odd))}"])
    try:
        first = read_image(files[0], "RGB", size=_size_of(files[0]))
    except DataError as exc:
        raise SubmissionError(gt_dir, [str(exc)]) from None
    return Benchmark(tuple(names), first.shape[0])


def _size_of(path: Path) -> int:
    from PIL import Image

    with Image.open(path) as img:
        w, h = img.size
    if w != h:
        raise SubmissionError(path.parent, [f"{path.name}: ground truth images must be square, found {w}x{h}"])
    return w


def read_submission_file(path: Path) -> bytes:
    """The bytes of one result image, refusing anything but a regular file with a single name.

    Raises ``DataError`` with the reason (symbolic link and its target, hard link, not a regular file,
    unreadable) and the remedy. FIFOs and devices are opened non-blocking, so they cannot hang the check.
    """
    def refuse_link():
        try:
            target = os.readlink(path)
        except OSError:
            target = "?"
        return DataError(f"{path}: a symbolic link (to {target}); copy the image into the folder instead")

    if os.path.islink(path):
        raise refuse_link()
    flags = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0)
    try:
        fd = os.open(path, flags)
    except OSError as exc:
        if os.path.islink(path):  # swapped for a link since the check above: ELOOP from O_NOFOLLOW
            raise refuse_link() from None
        raise DataError(f"{path}: cannot be opened ({type(exc).__name__}: {exc.strerror or exc})") from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):  # checked on the descriptor: a folder cannot even be fdopen'ed
            raise DataError(f"{path}: not a regular file")
    except BaseException:
        os.close(fd)
        raise
    with os.fdopen(fd, "rb") as f:
        if st.st_nlink != 1:
            raise DataError(f"{path}: a hard link ({st.st_nlink} names for the same file); copy the image into "
                            f"the folder instead")
        try:
            return f.read()
        except OSError as exc:
            raise DataError(f"{path}: unreadable ({type(exc).__name__}: {exc.strerror or exc})") from None


def load_images(folder: str | Path, bench: Benchmark, what: str = "result", trusted: bool = False) -> np.ndarray:
    """All images of a result folder as uint8 (N, H, W, 3), in ``bench.names`` order.

    Raises ``SubmissionError`` listing every missing, extra, unreadable, wrong-size or wrong-mode file, and
    (unless ``trusted``: the instructor's own ground truth) every symbolic or hard link, see the module doc.
    Hidden entries (``.DS_Store``, ``.ipynb_checkpoints``) are ignored.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise SubmissionError(folder, [f"{what} folder not found"])
    present = sorted(p.name for p in folder.iterdir() if not p.name.startswith("."))
    if not present:
        raise SubmissionError(folder, [f"empty folder: expected {bench.n} files "
                                       f"{bench.names[0]} .. {bench.names[-1]}"])
    expected = set(bench.names)
    problems = []
    missing = [n for n in bench.names if n not in set(present)]
    if missing:
        problems.append(f"missing {len(missing)} file(s): {', '.join(_ranges(missing))}")
    extra = [n for n in present if n not in expected]
    if extra:
        problems.append(f"{len(extra)} unexpected file(s) (expected only {bench.names[0]} .. {bench.names[-1]}): "
                        f"{', '.join(extra)}")
    images = np.zeros((bench.n, bench.size, bench.size, 3), np.uint8)
    skip = set(missing)
    for i, name in enumerate(bench.names):
        path = folder / name
        if name in skip:
            continue
        try:
            if trusted:
                if not path.is_file():
                    raise DataError(f"{path}: not a regular file")
                images[i] = read_image(path, "RGB", bench.size)
            else:
                images[i] = read_image(path, "RGB", bench.size, data=read_submission_file(path))
        except DataError as exc:
            problems.append(f"{name}: {str(exc).removeprefix(f'{path}: ')}")
    if problems:
        raise SubmissionError(folder, problems)
    return images


def load_holes(mask_dir: str | Path, bench: Benchmark) -> np.ndarray:
    """Hole maps, bool (N, H, W), True = hole (mask pixel < 128, i.e. 0 in the benchmark's 0/255 masks).

    ``mask_{i}.png`` belongs to ``image_{i}.png``; the threshold is the one the data loader uses, so the
    metrics' hole is exactly the region the model had to fill.
    """
    mask_dir = Path(mask_dir)
    if not mask_dir.is_dir():
        raise SubmissionError(mask_dir, ["mask folder not found"])
    holes = np.zeros((bench.n, bench.size, bench.size), bool)
    problems = []
    for i, name in enumerate(bench.names):
        path = mask_dir / name.replace("image_", "mask_", 1)
        if not path.is_file():
            problems.append(f"{path.name}: missing (mask for {name})")
            continue
        try:
            holes[i] = read_image(path, "L", bench.size) < 128
        except DataError as exc:
            problems.append(f"{path.name}: {str(exc).removeprefix(f'{path}: ')}")
    if problems:
        raise SubmissionError(mask_dir, problems)
    return holes
