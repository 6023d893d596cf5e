"""The pieces of the grader's mutation suite: a buggy or a differently written submission, built from solutions/.

- ``Mutant``: text replacements in one student file of solutions/ (``old`` -> ``new``, plus ``edits``); the bug
  must cost points in its own TODO only, with feedback containing ``message`` (a TODO4 bug: the extension pool
  only, the core score untouched).
- ``BodyMutant``: one TODO's whole solution block rewritten (course-style buggy code); same promise.
- ``Variant``: correct code written differently from the reference (one or more blocks rewritten); it must score
  exactly 100 (and the whole extension pool).
A block is named as its solution marker names it: ``# BEGIN SOLUTION TODO2: mask_tokens: ...`` -> "mask_tokens".
Bodies are written without indentation; the block's own indentation is applied.
"""
from __future__ import annotations

import re
import textwrap
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
SOLUTIONS = REPO / "solutions"
STUDENT_FILES = ("models/Transformer/modules/layer.py", "models/VQGAN_Transformer.py", "training_transformer.py",
                 "inpainting.py")
LAYER, MODEL, TRAIN, INPAINT = STUDENT_FILES
CLASS_COND = "models/Transformer/class_conditional.py"  # TODO4, the extension (a student file too)
TITOK = "models/TiTok/titok.py"  # TODO5, the 1D tokenizer extension (a student file too)
SUBMITTED = (*STUDENT_FILES, CLASS_COND, TITOK)  # what a submission holds
BEGIN = re.compile(r"^(\s*)# BEGIN SOLUTION (TODO\d+)(?: \([^)]*\))?: ([^:]+):")


@dataclass(frozen=True)
class Mutant:
    name: str
    file: str
    old: str
    new: str
    todo: str      # the TODO whose checks must fail (all others keep full points)
    message: str   # text the feedback of a failed check must contain
    times: int = 1  # how often ``old`` occurs (all occurrences are replaced)
    edits: tuple[tuple[str, str], ...] = ()  # further (old, new) replacements in the same file, each exactly once

    def apply(self, files: dict[str, str]) -> None:
        text = files[self.file]
        for old, new, times in [(self.old, self.new, self.times), *((o, n, 1) for o, n in self.edits)]:
            count = text.count(old)
            if count != times:
                raise AssertionError(f"mutant {self.name}: {old!r} occurs {count} times in solutions/{self.file}, "
                                     f"not {times} (the reference changed: update the mutant)")
            text = text.replace(old, new)
        files[self.file] = text


def replace_block(text: str, file: str, block: str, body: str) -> str:
    """``text`` with the solution block named ``block`` replaced by ``body`` (markers kept)."""
    lines = text.splitlines(keepends=True)
    for i, line in enumerate(lines):
        m = BEGIN.match(line)
        if m and m.group(3).strip() == block:
            end = next(j for j in range(i + 1, len(lines)) if lines[j].strip() == "# END SOLUTION")
            indent = m.group(1)
            new = textwrap.indent(textwrap.dedent(body).strip("\n") + "\n", indent)
            return "".join(lines[: i + 1]) + new + "".join(lines[end:])
    raise AssertionError(f"no solution block named {block!r} in solutions/{file}")


@dataclass(frozen=True)
class BodyMutant:
    name: str
    file: str
    block: str
    body: str
    todo: str
    message: str

    def apply(self, files: dict[str, str]) -> None:
        files[self.file] = replace_block(files[self.file], self.file, self.block, self.body)


@dataclass(frozen=True)
class Variant:
    """Correct code written differently; ``bodies``: (file, block, body) triples."""
    name: str
    bodies: tuple[tuple[str, str, str], ...]
    note: str = ""
    todo: str = field(default="")  # the TODO it exercises (documentation only)

    def apply(self, files: dict[str, str]) -> None:
        for file, block, body in self.bodies:
            files[file] = replace_block(files[file], file, block, body)


def write_submission(dest: Path, change=None) -> Path:
    """The student files of solutions/ (TODO1-5) under ``dest``, with ``change`` (a Mutant, BodyMutant or Variant)
    applied (None: the reference unchanged)."""
    files = {rel: (SOLUTIONS / rel).read_text() for rel in SUBMITTED}
    if change is not None:
        change.apply(files)
    for rel, text in files.items():
        compile(text, str(dest / rel), "exec")  # a mutant must be a bug, not a syntax error
        (dest / rel).parent.mkdir(parents=True, exist_ok=True)
        (dest / rel).write_text(text)
    return dest
