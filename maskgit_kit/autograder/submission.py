"""Where a submission keeps its student files (shared by tools/batch_grade.py and tools/similarity.py).

A submission is a folder: a whole lab tree, or only the student files, possibly nested or flattened. A student
file is taken at its lab path, else as the one file of that name anywhere in the folder. The course hands out
``models/Transformer/modules/layers.py`` where the kit has ``layer.py``: ``layers.py`` is accepted the same way
when the submission has no ``layer.py``.
"""
from __future__ import annotations

from pathlib import Path

ALIASES = {"layer.py": ("layers.py",)}  # kit name -> the course's names for the same file


def find_student_file(submission: Path, rel: str) -> Path | None:
    """The submission's copy of student file ``rel`` (None if missing or ambiguous): at its lab path, else the one
    file of that name (one ending in ``rel``'s folders first); then the same for each alias of its name."""
    parent, name = Path(rel).parent, Path(rel).name
    for candidate in (name, *ALIASES.get(name, ())):
        want = (parent / candidate).as_posix()
        exact = submission / want
        if exact.is_file() and not exact.is_symlink():
            return exact
        matches = [p for p in submission.rglob(candidate)
                   if p.is_file() and not p.is_symlink() and "__pycache__" not in p.parts]
        ending = [p for p in matches if p.as_posix().endswith("/" + want)]
        for found in (ending, matches):
            if len(found) == 1:
                return found[0]
    return None
