"""Build the Gradescope autograder: dist/gradescope/ and dist/maskgit-gradescope-<version>.zip.

    python tools/make_gradescope.py                   # or: make gradescope
    python tools/make_gradescope.py --no-calibrate    # skip grading the reference (run_autograder then does it)

The zip is what Gradescope's "Configure Autograder" page takes (zip upload, Ubuntu base image). At its root:

    setup.sh            run once when Gradescope builds the image (network allowed there): Python >= 3.11 and
                        a virtual environment at /autograder/venv with the pinned requirements and this kit
    run_autograder      run per submission: the trusted grader (python -m maskgit_kit.autograder.gradescope)
    requirements-gradescope.txt   exact versions of what the grader imports, from the environment that built it
                        (torch and torchvision as CPU wheels from download.pytorch.org)
    case_names.json     every public check's case names, from grading the reference here with the same limits
    pyproject.toml, README.md, LICENSE, maskgit_kit/   the kit's package (installed editable, no dependencies)
    grader/             the public checks          hidden_checks/   the hidden checks (instructor-only)
    solutions/          the reference               lab/             the base the student files are copied over
                                                                     (generated from solutions/ here)

It holds the reference and the hidden checks: never hand this zip to students (their release is make_release.py).
The folder is built in a staging folder and moved in, then the zip replaces its target (maskgit_kit.atomic): a
failure, a reference that does not earn every point included, leaves the previous build as it was.
"""
from __future__ import annotations

import argparse
import importlib.metadata
import re
import sys
import tempfile
import zipfile
from pathlib import Path

import make_lab  # tools/ is this script's own folder
import make_release

from maskgit_kit import atomic, labtree
from maskgit_kit.autograder import gradescope

REPO = Path(__file__).resolve().parents[1]
TREES = ("maskgit_kit", "grader", "hidden_checks", "solutions")
TOP_FILES = ("pyproject.toml", "LICENSE")
REQUIREMENTS = "requirements-gradescope.txt"
CPU_INDEX = "https://download.pytorch.org/whl/cpu"
# what the grader imports, the trusted side and the confined child together (checked by tests/test_gradescope.py)
PINNED = ("torch", "torchvision", "numpy", "pillow", "pyyaml", "pytest", "pytest-timeout", "tqdm")
CPU_WHEELS = ("torch", "torchvision")
EXECUTABLE = ("setup.sh", "run_autograder")
ZIP_DATE = make_release.ZIP_DATE

SETUP_SH = r"""#!/usr/bin/env bash
# Gradescope runs this once, as root, when it builds the autograder image (network allowed). Afterwards grading
# needs no network: everything is installed in /autograder/venv.
set -euo pipefail
SOURCE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
VENV="${AUTOGRADER_VENV:-/autograder/venv}"
export DEBIAN_FRONTEND=noninteractive
ok() { "$1" -c 'import sys, venv, ensurepip; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; }
PY=""
for cand in python3.13 python3.12 python3.11 python3; do
  if command -v "$cand" >/dev/null && ok "$cand"; then PY="$cand"; break; fi
done
if [ -z "$PY" ]; then
  apt-get update
  apt-get install -y python3 python3-venv python3-pip || true
  for cand in python3 python3.12 python3.11; do
    if command -v "$cand" >/dev/null && ok "$cand"; then PY="$cand"; break; fi
  done
  if [ -z "$PY" ]; then  # Ubuntu 22.04 has Python 3.10; 3.11 is in its universe component
    apt-get install -y python3.11 python3.11-venv
    PY=python3.11
  fi
fi
"$PY" -m venv "$VENV"
"$VENV/bin/python" -m pip install --upgrade pip
"$VENV/bin/python" -m pip install -r "$SOURCE/requirements-gradescope.txt"
"$VENV/bin/python" -m pip install --no-deps -e "$SOURCE"
# the grader loads: a broken install fails the image build here, not every submission later
cd /tmp && "$VENV/bin/python" -c "import torch, torchvision, numpy, PIL, yaml, pytest, pytest_timeout, tqdm"
cd "$SOURCE" && "$VENV/bin/python" -c "import maskgit_kit.autograder.gradescope"
"""

RUN_AUTOGRADER = r"""#!/usr/bin/env bash
# Gradescope runs this per submission: the upload is in $ROOT/submission, the result goes to
# $ROOT/results/results.json (ROOT=/autograder; AUTOGRADER_ROOT overrides it, AUTOGRADER_PYTHON the interpreter).
ROOT="${AUTOGRADER_ROOT:-/autograder}"
SOURCE="$ROOT/source"
PY="${AUTOGRADER_PYTHON:-$ROOT/venv/bin/python}"
[ -x "$PY" ] || PY="$(command -v python3)"
mkdir -p "$ROOT/results"
export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1  # 0.5 vCPU: more threads only wait for each other
# the kit's package from the bundle (the working directory comes first on sys.path with -m)
cd "$SOURCE" && "$PY" -m maskgit_kit.autograder.gradescope --root "$ROOT"
echo "grader exit status $?"
if [ ! -s "$ROOT/results/results.json" ]; then  # the grader could not even start: still a valid result
  cat > "$ROOT/results/results.json" <<'JSON'
{"score": 0.0, "output": "The autograder could not start (not your submission's fault); ask your instructor.",
 "visibility": "visible", "stdout_visibility": "hidden", "tests": []}
JSON
fi
exit 0  # the score is in results.json, whatever happened
"""

README = """# MaskGIT lab: Gradescope autograder (instructor-only)

This bundle holds the reference solutions and the hidden checks: never give it to students.
Built by `make gradescope` (tools/make_gradescope.py) from maskgit-lab-kit {version}; see grader/README.md.
"""


class GradescopeError(Exception):
    """A build problem; the message names the file or the option."""


def pinned_requirements() -> str:
    """Exact versions of what the grader imports, from this environment (CPU wheels for torch and torchvision)."""
    lines = ["# Pinned by tools/make_gradescope.py from the environment that built and calibrated this bundle.",
             f"--extra-index-url {CPU_INDEX}"]
    for name in PINNED:
        try:
            version = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            raise GradescopeError(f"{name}: not installed here; the grader needs it (pip install {name})") from None
        if name in CPU_WHEELS:
            version = re.sub(r"\+.*$", "", version) + "+cpu"
        lines.append(f"{name}=={version}")
    return "\n".join(lines) + "\n"


def plan(repo: Path = REPO) -> dict[str, bytes | Path]:
    """{bundle path: bytes or source file} of everything but case_names.json."""
    version = make_release.kit_version(repo)
    items: dict[str, bytes | Path] = {}
    lab, _, _ = make_lab.generate(repo / "solutions")
    missing = [f for f in labtree.REQUIRED if f not in lab]
    if missing:
        raise GradescopeError(f"{repo / 'solutions'}: the generated lab lacks {', '.join(missing)}")
    items.update({f"lab/{rel}": data for rel, data in lab.items()})
    for tree in TREES:
        found = make_lab.managed_files(repo / tree) if (repo / tree).is_dir() else []
        if not found:
            raise GradescopeError(f"{repo / tree}: missing or empty (the trusted grader needs it)")
        items.update({f"{tree}/{rel}": repo / tree / rel for rel in found})
    for name in TOP_FILES:
        if (repo / name).is_file():
            items[name] = repo / name
        elif name == "pyproject.toml":
            raise GradescopeError(f"{repo / name}: missing (setup.sh installs the kit from it)")
    items["README.md"] = README.format(version=version).encode()
    items[REQUIREMENTS] = pinned_requirements().encode()
    items["setup.sh"] = SETUP_SH.encode()
    items["run_autograder"] = RUN_AUTOGRADER.encode()
    return items


def write_items(items: dict[str, bytes | Path], root: Path) -> None:
    for rel, item in sorted(items.items()):
        dest = root / rel
        dest.parent.mkdir(parents=True, exist_ok=True)
        dest.write_bytes(item.read_bytes() if isinstance(item, Path) else item)
        dest.chmod(0o755 if rel in EXECUTABLE else 0o644)


def write_zip(root: Path, zip_path: Path) -> None:
    """Every file under root at the zip's root (Gradescope wants setup.sh there), sorted, with a fixed date."""
    with zipfile.ZipFile(zip_path, "w") as zf:
        for path in sorted(p for p in root.rglob("*") if p.is_file()):
            rel = path.relative_to(root).as_posix()
            info = zipfile.ZipInfo(rel, ZIP_DATE)
            info.external_attr = (0o100755 if rel in EXECUTABLE else 0o100644) << 16
            info.compress_type = zipfile.ZIP_STORED if path.suffix in make_release.STORED else zipfile.ZIP_DEFLATED
            zf.writestr(info, path.read_bytes())


def calibrate(tree: Path) -> int:
    """Grade the reference with the bundle's own trusted grader and Gradescope limits; write case_names.json."""
    kit = gradescope.Kit(tree)
    with tempfile.TemporaryDirectory(prefix="maskgit-gradescope-calibration-") as tmp:
        names = kit.calibrate(Path(tmp) / "work")
    gradescope.write_case_names(tree, names)
    return len(names)


def check_target(out: Path, zip_path: Path) -> None:
    o = out.resolve()
    if o == REPO or o in REPO.parents or (REPO in o.parents and REPO / "dist" not in [o, *o.parents]):
        raise GradescopeError(f"--out {out}: inside the repository the bundle goes under {REPO / 'dist'}")
    if out.exists() and not out.is_dir():
        raise GradescopeError(f"--out {out}: exists and is not a folder")
    z = zip_path.resolve()
    if o == z or o in z.parents:
        raise GradescopeError(f"--zip {zip_path}: must not lie inside --out {out}")
    if zip_path.exists() and not zip_path.is_file():
        raise GradescopeError(f"--zip {zip_path}: exists and is not a file")


def build(out: Path, zip_path: Path, calibrated: bool = True) -> dict:
    """Write the bundle folder and its zip (both replaced as a whole); returns a summary."""
    out, zip_path = Path(out), Path(zip_path)
    check_target(out, zip_path)
    items = plan()
    cases = None
    with atomic.replacing(zip_path, suffix=".zip") as tmp_zip:
        with atomic.replacing_dirs(out.parent, [out.name]) as staging:
            tree = staging / out.name
            write_items(items, tree)
            if calibrated:
                cases = calibrate(tree)
            write_zip(tree, tmp_zip)
    return {"out": out, "zip": zip_path, "files": len(items) + bool(cases), "cases": cases,
            "zip_bytes": zip_path.stat().st_size}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--out", type=Path, default=REPO / "dist" / "gradescope", help="the bundle folder")
    parser.add_argument("--zip", type=Path, default=None,
                        help="the zip for Gradescope (default: maskgit-gradescope-<version>.zip beside --out)")
    parser.add_argument("--no-calibrate", action="store_true",
                        help="do not grade the reference now (each Gradescope run then grades it first)")
    args = parser.parse_args(argv)
    try:
        zip_path = args.zip or args.out.parent / f"maskgit-gradescope-{make_release.kit_version()}.zip"
        summary = build(args.out, zip_path, calibrated=not args.no_calibrate)
    except (GradescopeError, make_lab.LabError, make_release.ReleaseError, OSError) as e:
        print(f"make_gradescope: error: {e}", file=sys.stderr)
        return 2
    except Exception as e:  # noqa: BLE001 - e.g. trusted.HiddenChecksError: the reference fails here
        print(f"make_gradescope: error: {type(e).__name__}: {e}", file=sys.stderr)
        return 2
    cases = f"{summary['cases']} case names calibrated" if summary["cases"] else "not calibrated"
    print(f"{summary['out']}: {summary['files']} files; {cases}")
    print(f"{summary['zip']}: {summary['zip_bytes'] / 1e6:.1f} MB (for Gradescope's Configure Autograder page)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
