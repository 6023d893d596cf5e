"""Grade mutants and variants with the trusted grader and compare the hidden checks' charges with the public
checks' failures (for tests/test_hidden_checks.py and for developing hidden checks by hand).

    python tests/hidden_harness.py [--todo TODO2] [NAME ...]

prints, per submission, the public checks that failed, the checks the hidden forms charged, and any charge
without a public failure (a violation of "the public grader predicts the hidden score").
"""
from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

from grader_mutants import MUTANTS, VARIANTS, write_submission

from maskgit_kit.autograder import trusted
from maskgit_kit.autograder.todos import load as load_catalogue
from maskgit_kit.labtree import STUDENT_FILES

REPO = Path(__file__).resolve().parent.parent


class Harness:
    def __init__(self, base: Path = REPO / "lab"):
        self.base = base
        self.catalogue = load_catalogue()
        self.hidden = trusted.load_hidden(catalogue=self.catalogue)
        self.reference = trusted.Reference(REPO / "solutions")
        self.root = Path(tempfile.mkdtemp(prefix="hidden-harness-"))
        self.names = trusted.calibrate(self.reference, base, self.root / "calibration", self.hidden, self.catalogue,
                                       {r: REPO / "solutions" / r for r in STUDENT_FILES})

    def grade(self, name: str, change=None, stub: bool = False) -> trusted.Grade:
        src = self.root / "subs" / name
        if not stub:
            write_submission(src, change)
        files = {} if stub else {rel: src / rel for rel in STUDENT_FILES}
        return trusted.grade_submission(files, base=self.base, work=self.root / "work" / name, hidden=self.hidden,
                                        reference=self.reference, catalogue=self.catalogue, case_names=self.names)


def compare(grade: trusted.Grade) -> tuple[set[str], set[str]]:
    """(checks that failed in the public run, checks charged by a hidden form)."""
    charged = {c for p in grade.probes for c in p.charged}
    public_failed = {c.check for c in grade.cases if not c.passed and c.check not in charged}
    public_failed |= {c.check for c in grade.cases
                      if not c.passed and not c.output.startswith("failed the hidden form")}
    return public_failed, charged


def main(argv=None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("names", nargs="*")
    ap.add_argument("--todo", default=None)
    args = ap.parse_args(argv)
    h = Harness()
    pool = [m for m in [*MUTANTS, *VARIANTS] if (not args.names or m.name in args.names)
            and (args.todo is None or getattr(m, "todo", "") == args.todo)]
    bad = 0
    for m in [None, *pool]:
        name = "reference" if m is None else m.name
        g = h.grade(name, m)
        public_failed, charged = compare(g)
        extra = charged - public_failed
        bad += bool(extra)
        kind = "variant" if m in VARIANTS or m is None else "mutant"
        print(f"{name:<45} {kind:<8} score {g.score:6.2f}  public-failed {sorted(public_failed)}  "
              f"hidden-charged {sorted(charged)}" + (f"  VIOLATION {sorted(extra)}" if extra else ""))
    g = h.grade("lab_stubs", stub=True)
    uncharged = sorted(set(h.catalogue.checks) - compare(g)[1])
    print(f"{'lab_stubs':<45} stub     score {g.score:6.2f}  uncharged {uncharged}")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
