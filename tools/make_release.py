"""Build the student hand-out: dist/student/ and dist/maskgit-lab-<version>-student.zip.

    python tools/make_release.py                      # or: make release
    python tools/make_release.py --force              # replace an existing release
    python tools/make_release.py --with-transformer   # also hand out checkpoints/transformer.pt

The release holds what a student needs and nothing of the reference:

    README.md            the students' guide (docs/students.md)
    LICENSE              the code licence (when the repository has one)
    pyproject.toml, requirements.txt    `pip install -e .` installs maskgit_kit and its dependencies
    lab/                 generated from solutions/ by make_lab's generate() (stubs in place of the solutions)
    grader/              the public checks (conftest.py, test_*.py, _*.py, README.md)
    maskgit_kit/         the package: scoring command, FID weights, the autograder's machinery
    data/fashion64/      the committed test splits (masked_image/, mask64/, ground_truth/, splits/; LICENSE, README)
    checkpoints/         vqgan.pt, classifier.pt and a short note (the trained transformers and TiTok tokenizers,
                         HANDED_OUT, only with --with-transformer)

Never shipped: solutions/, tests/, bench/, tools/, docs/ (other than the guide), .ci/, generated outputs.
The paths keep the repository's layout, so lab/config's ``../checkpoints/vqgan.pt`` works in the release.

Bad input: an existing non-empty output folder (or zip) is refused unless --force. The whole release is built
and checked in a staging folder beside the target (lab generated in memory first, so an unpaired solution
marker fails with file:line before anything is written), then moved in; the zip is written to a temporary
file and replaces its target only after the folder is in place (maskgit_kit.atomic). A failure leaves the
previous release and zip exactly as they were.

Leak guard: no line of any solution block may appear in any text file of the release. Lines are compared
by ``line_key``: leading/trailing whitespace and a trailing ``# comment`` dropped, then every whitespace
removed (spacing is no disguise); keys shorter than TRIVIAL_CHARS characters (``else:``, ``B, N, C = x.shape``,
``return z_pred, new_mask``) are too short to give a solution away and are not compared.
"""
from __future__ import annotations

import argparse
import ast
import contextlib
import re
import shutil
import sys
import zipfile
from collections import Counter
from pathlib import Path

import make_lab  # tools/ is this script's own folder

from maskgit_kit import atomic, labtree

REPO = Path(__file__).resolve().parents[1]
GUIDE = REPO / "docs" / "students.md"
GRADER_PATTERNS = ("conftest.py", "test_*.py", "_*.py", "README.md")
DATA = Path("data") / "fashion64"
DATA_SPLITS = ("masked_image", "mask64", "ground_truth", "splits")  # splits/: the large-hole test splits
DATA_FILES = ("LICENSE-fashion-mnist.txt", "README.md", "meta.json")
TRIVIAL_CHARS = 22
# the trained models --with-transformer hands out (the solutions' outputs: never by default)
HANDED_OUT = ("transformer.pt", "transformer_class.pt", "titok_k32.pt", "titok_k64.pt", "transformer_titok32.pt",
              "transformer_titok32_class.pt")
TRANSFORMER_FLAG = "--load-transformer-ckpt-path"  # the lab option the checkpoint note gives for transformer.pt
STORED = (".png", ".pt", ".zip", ".gz")  # already compressed: stored in the zip as they are
ZIP_DATE = (1980, 1, 1, 0, 0, 0)  # fixed: the same inputs give the same zip


class ReleaseError(Exception):
    """A release problem; the message names the file or the option."""


def kit_version(root: Path = REPO) -> str:
    """``__version__`` of the maskgit_kit/ that ships (read from its source, not from whichever one is installed)."""
    init = root / "maskgit_kit" / "__init__.py"
    for node in ast.parse(init.read_text(encoding="utf-8")).body:
        if isinstance(node, ast.Assign) and any(getattr(t, "id", None) == "__version__" for t in node.targets):
            return ast.literal_eval(node.value)
    raise ReleaseError(f"{init}: no __version__ = '...'")


def check_pyproject_version(pyproject: Path, version: str) -> None:
    """A static ``[project] version`` must be maskgit_kit.__version__ (the zip is named after the latter)."""
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10: nothing to compare with
        return
    declared = tomllib.loads(pyproject.read_text(encoding="utf-8")).get("project", {}).get("version")
    if declared is not None and declared != version:
        raise ReleaseError(f"{pyproject}: [project] version {declared} differs from maskgit_kit.__version__ "
                           f"{version}")


def default_zip(out: Path, version: str) -> Path:
    return out.parent / f"maskgit-lab-{version}-student.zip"


# ----------------------------------------------------------------------------------------------------
# What ships
# ----------------------------------------------------------------------------------------------------

def checkpoint_note(with_transformer: bool) -> str:
    lines = [
        "# Checkpoints",
        "",
        "- `vqgan.pt`: the given VQGAN tokenizer (a 64x64 image <-> a 16x16 grid of 512 code ids), the config",
        "  `lab/config/VQGAN.yml`. `lab/config/MaskGit.yml` loads it as `../checkpoints/vqgan.pt`; you do not",
        "  train it.",
        "- Your transformer: `cd lab && python training_transformer.py` writes `lab/transformer_checkpoints/best.pt`,",
        "  the weights `python inpainting.py` loads by default.",
        "- `classifier.pt`: a small Fashion-MNIST classifier that measures how often a generated image is",
        "  recognised as its class (`maskgit-classify --predicted-path lab/test_results --class test`).",
    ]
    if with_transformer:
        lines += [
            "- `transformer.pt`: a trained transformer for the CPU config of `lab/config/MaskGit.yml`, handed out",
            "  by your instructor so that you can inpaint before your own training has finished. It runs your",
            "  TODO1-TODO3 code, so use it once the grader passes:",
            "",
            "  ```bash",
            "  cd lab",
            f"  python inpainting.py --sweet-spot 8 {TRANSFORMER_FLAG} ../checkpoints/transformer.pt",
            "  ```",
            "- `transformer_class.pt`: the class-conditional transformer of `lab/config/MaskGit_class.yml` (the TODO4",
            "  extension), for generation once TODO4's checks pass:",
            "",
            "  ```bash",
            "  cd lab",
            "  python inpainting.py --split generation --class test --guidance 2 --config config/MaskGit_class.yml \\",
            f"      {TRANSFORMER_FLAG} ../checkpoints/transformer_class.pt",
            "  ```",
            "- `titok_k32.pt`, `titok_k64.pt`: trained TiTok 1D tokenizers of `lab/config/TiTok_k32.yml` / `_k64.yml`",
            "  (the TODO5 extension), and `transformer_titok32.pt` / `transformer_titok32_class.pt`, MaskGIT on",
            "  their 32 tokens; `lab/config/MaskGit_titok32.yml` reads `lab/titok_checkpoints/best.pt` (your own",
            "  TiTok) unless you copy `titok_k32.pt` there. They run your TODO5 code: use them once its checks pass.",
        ]
    lines += ["", "Both kinds are kit checkpoints: `torch.load(path, weights_only=True)` reads them (no pickled code).",
              ""]
    return "\n".join(lines)


def plan(src: Path, guide: Path, with_transformer: bool) -> tuple[dict[str, bytes | Path], dict]:
    """Everything the release holds, before anything is written: ({release path: bytes or source file}, info).

    The lab is generated in memory (make_lab.generate: markers paired, code compiles, no marker text left), so
    a bad marker raises make_lab.LabError naming file:line here."""
    files, blocks, excluded = make_lab.generate(src)
    missing = [f for f in labtree.REQUIRED if f not in files]
    if missing:
        raise ReleaseError(f"--src {src}: the generated lab lacks {', '.join(missing)} (not a lab-layout tree)")
    if not guide.is_file():
        raise ReleaseError(f"{guide}: the students' guide is missing (it becomes the release's README.md); "
                           "write it or pass --guide")
    if with_transformer and not any(TRANSFORMER_FLAG.encode() in data for data in files.values()):
        raise ReleaseError(f"--src {src}: no lab script defines {TRANSFORMER_FLAG}, the option the checkpoint "
                           "note tells students to use with transformer.pt; update checkpoint_note()")
    items: dict[str, bytes | Path] = {f"lab/{rel}": data for rel, data in files.items()}
    modes = {f"lab/{rel}": Path(src) / rel for rel in files}  # generated files keep their source's mode
    items["README.md"] = guide
    for name in ("LICENSE", "pyproject.toml", "requirements.txt"):
        if (REPO / name).is_file():
            items[name] = REPO / name
        elif name != "LICENSE":
            raise ReleaseError(f"{REPO / name}: missing (the release installs with `pip install -e .`)")
    check_pyproject_version(REPO / "pyproject.toml", kit_version())
    grader = REPO / "grader"
    for rel in make_lab.managed_files(grader):
        if "/" not in rel and any(Path(rel).match(p) for p in GRADER_PATTERNS):
            items[f"grader/{rel}"] = grader / rel
    for rel in make_lab.managed_files(REPO / "maskgit_kit"):
        items[f"maskgit_kit/{rel}"] = REPO / "maskgit_kit" / rel
    for split in DATA_SPLITS:
        found = make_lab.managed_files(REPO / DATA / split)
        if not found:
            raise ReleaseError(f"{REPO / DATA / split}: the committed test split is missing")
        items.update({(DATA / split / rel).as_posix(): REPO / DATA / split / rel for rel in found})
    for name in DATA_FILES:
        if not (REPO / DATA / name).is_file():
            raise ReleaseError(f"{REPO / DATA / name}: missing")
        items[(DATA / name).as_posix()] = REPO / DATA / name
    ckpts = ["vqgan.pt", "classifier.pt"] + (list(HANDED_OUT) if with_transformer else [])
    for name in ckpts:
        if not (REPO / "checkpoints" / name).is_file():
            raise ReleaseError(f"{REPO / 'checkpoints' / name}: missing")
        items[f"checkpoints/{name}"] = REPO / "checkpoints" / name
    items["checkpoints/README.md"] = checkpoint_note(with_transformer).encode("utf-8")
    return items, {"todos": Counter(b.todo for b in blocks), "excluded": excluded, "modes": modes}


# ----------------------------------------------------------------------------------------------------
# The leak guard
# ----------------------------------------------------------------------------------------------------

def line_key(line: str) -> str:
    """The comparison form of a line (module docstring: spacing and a trailing comment do not count)."""
    code = re.sub(r"\s+#.*$", "", line.strip())
    return "".join(code.split())


def solution_lines(src: Path) -> dict[str, str]:
    """{line_key: 'file:line'} of every non-trivial line inside a BEGIN SOLUTION ... END SOLUTION block."""
    src = Path(src)
    found: dict[str, str] = {}
    for rel in make_lab.managed_files(src):
        if not rel.endswith(".py"):
            continue
        inside = False
        for no, line in enumerate((src / rel).read_text(encoding="utf-8").splitlines(), 1):
            m = make_lab.MARKER_RE.match(line)
            if m and m.group(2).startswith("BEGIN SOLUTION"):
                inside = True
            elif m and m.group(2) == "END SOLUTION":
                inside = False
            elif inside and len(key := line_key(line)) >= TRIVIAL_CHARS:
                found.setdefault(key, f"{(src / rel).as_posix()}:{no}")
    return found


def text_of(data: bytes) -> str | None:
    """The text of a UTF-8 text file, or None for binary data."""
    if b"\0" in data:
        return None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return None


def find_leaks(root: Path, secret: dict[str, str]) -> list[str]:
    """'release file:line: copies solution file:line' for each solution line found in a text file under root."""
    leaks = []
    for path in sorted(p for p in Path(root).rglob("*") if p.is_file()):
        text = text_of(path.read_bytes())
        for no, line in enumerate((text or "").splitlines(), 1):
            where = secret.get(line_key(line))
            if where:
                leaks.append(f"{path.relative_to(root).as_posix()}:{no}: copies the solution line {where}")
    return leaks


# ----------------------------------------------------------------------------------------------------
# Writing
# ----------------------------------------------------------------------------------------------------

def write_items(items: dict[str, bytes | Path], modes: dict[str, Path], root: Path) -> None:
    for rel, item in sorted(items.items()):
        dest = root / rel
        dest.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(item, Path):
            shutil.copy(item, dest)
        else:
            dest.write_bytes(item)
            if rel in modes:
                shutil.copymode(modes[rel], dest)


def write_zip(root: Path, zip_path: Path, prefix: str) -> None:
    """Every file under root, as ``prefix/<path>``, sorted, with a fixed date (reproducible)."""
    with zipfile.ZipFile(zip_path, "w") as zf:
        for path in sorted(p for p in root.rglob("*") if p.is_file()):
            info = zipfile.ZipInfo(f"{prefix}/{path.relative_to(root).as_posix()}", ZIP_DATE)
            info.external_attr = (path.stat().st_mode & 0xFFFF) << 16
            info.compress_type = zipfile.ZIP_STORED if path.suffix in STORED else zipfile.ZIP_DEFLATED
            zf.writestr(info, path.read_bytes())


def check_target(out: Path, zip_path: Path | None, src: Path, force: bool) -> None:
    """Refuse a target that would damage the repository, or an existing release without --force."""
    o = out.resolve()
    if o == REPO or o in REPO.parents:
        raise ReleaseError(f"--out {out}: must not be or contain the repository {REPO}")
    if REPO in o.parents and REPO / "dist" not in [o, *o.parents]:
        raise ReleaseError(f"--out {out}: inside the repository a release goes under {REPO / 'dist'}")
    s = src.resolve()
    if o == s or s in o.parents or o in s.parents:
        raise ReleaseError(f"--out {out}: must not be, contain or lie inside --src {src}")
    if out.exists() and not out.is_dir():
        raise ReleaseError(f"--out {out}: exists and is not a folder")
    if not force and out.is_dir() and any(out.iterdir()):
        raise ReleaseError(f"--out {out}: exists and is not empty; pass --force to replace it")
    if zip_path is None:
        return
    z = zip_path.resolve()
    if o == z or o in z.parents:
        raise ReleaseError(f"--zip {zip_path}: must not lie inside --out {out}")
    if zip_path.exists() and not zip_path.is_file():
        raise ReleaseError(f"--zip {zip_path}: exists and is not a file")
    if not force and zip_path.exists():
        raise ReleaseError(f"--zip {zip_path}: exists; pass --force to replace it")


def build(out: Path, zip_path: Path | None, src: Path = REPO / "solutions", guide: Path = GUIDE,
          with_transformer: bool = False, force: bool = False) -> dict:
    """Write the release to ``out`` and the zip to ``zip_path`` (None: no zip), all or nothing; returns a summary.

    Both are staged first: the folder in a temporary folder beside ``out`` (``atomic.replacing_dirs``), the zip
    in a temporary file beside ``zip_path`` (``atomic.replacing``); the folder moves in, then the zip."""
    out, src, guide = Path(out), Path(src), Path(guide)
    version = kit_version()
    if zip_path is not None:
        zip_path = Path(zip_path)
    check_target(out, zip_path, src, force)
    items, info = plan(src, guide, with_transformer)
    secret = solution_lines(src)
    zip_stage = atomic.replacing(zip_path, suffix=".zip") if zip_path else contextlib.nullcontext()
    with zip_stage as tmp_zip:
        with atomic.replacing_dirs(out.parent, [out.name]) as staging:
            tree = staging / out.name
            write_items(items, info["modes"], tree)
            leaks = find_leaks(tree, secret)
            if leaks:
                raise ReleaseError(f"{len(leaks)} line(s) of solution blocks would ship (rewrite them):\n  "
                                   + "\n  ".join(leaks[:20]))
            if tmp_zip is not None:
                write_zip(tree, tmp_zip, zip_path.name.removesuffix(".zip"))
    counts, sizes = Counter(), Counter()
    for rel in items:
        top = rel.split("/")[0] if "/" in rel else "."
        counts[top] += 1
        sizes[top] += (out / rel).stat().st_size
    return {"out": out, "zip": zip_path, "version": version, "files": len(items), "counts": counts, "sizes": sizes,
            "bytes": sum(sizes.values()), "zip_bytes": zip_path.stat().st_size if zip_path else None,
            "todos": info["todos"]}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--out", type=Path, default=REPO / "dist" / "student", help="the release folder")
    parser.add_argument("--zip", type=Path, default=None,
                        help="the zip of it (default: maskgit-lab-<version>-student.zip beside --out)")
    parser.add_argument("--no-zip", action="store_true", help="write the folder only")
    parser.add_argument("--force", action="store_true", help="replace an existing release folder and zip")
    parser.add_argument("--with-transformer", action="store_true",
                        help="also ship checkpoints/transformer.pt (the trained transformer)")
    parser.add_argument("--src", type=Path, default=REPO / "solutions", help="reference tree with markers")
    parser.add_argument("--guide", type=Path, default=GUIDE, help="the students' guide (the release's README.md)")
    args = parser.parse_args(argv)
    try:
        version = kit_version()
        zip_path = None if args.no_zip else (args.zip or default_zip(args.out, version))
        summary = build(args.out, zip_path, args.src, args.guide, args.with_transformer, args.force)
    except (ReleaseError, make_lab.LabError, OSError) as e:
        print(f"make_release: error: {e}", file=sys.stderr)
        return 2
    parts = ", ".join(f"{top} {summary['counts'][top]}" for top in sorted(summary["counts"]))
    print(f"{summary['out']}: {summary['files']} files, {summary['bytes'] / 1e6:.1f} MB ({parts})")
    if summary["zip"] is not None:
        print(f"{summary['zip']}: {summary['zip_bytes'] / 1e6:.1f} MB")
    stubs = ", ".join(f"{k}={v}" for k, v in sorted(summary["todos"].items(), key=lambda kv: int(kv[0][4:])))
    print(f"version {version}; TODO stubs: {stubs or 'none'}; transformer.pt "
          f"{'included' if args.with_transformer else 'not included (--with-transformer adds it)'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
