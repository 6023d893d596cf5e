"""The grader's mutation suite: realistic bugs (one list per TODO, in mutants_todo1/2/3/4.py) and correct code
written differently (the same files' VARIANTS), plus submissions that attack the grader itself.

The pieces (Mutant, BodyMutant, Variant, write_submission) are in mutation_kit.py; grader/README.md lists the
mistake catalogue these mutants prove.
"""
from __future__ import annotations

import mutants_todo1
import mutants_todo2
import mutants_todo3
import mutants_todo4
import mutants_todo5
from mutation_kit import INPAINT, LAYER, MODEL, STUDENT_FILES, Mutant, write_submission  # noqa: F401

MUTANTS = [*mutants_todo1.MUTANTS, *mutants_todo2.MUTANTS, *mutants_todo3.MUTANTS, *mutants_todo4.MUTANTS,
           *mutants_todo5.MUTANTS]
VARIANTS = [*mutants_todo1.VARIANTS, *mutants_todo2.VARIANTS, *mutants_todo3.VARIANTS, *mutants_todo4.VARIANTS,
            *mutants_todo5.VARIANTS]
_names = [m.name for m in [*MUTANTS, *VARIANTS]]
assert len(_names) == len(set(_names)), "mutant and variant names must be unique"

# Submissions that attack the grader itself rather than getting an answer wrong.
NOISY_EXIT = Mutant("prints_and_sys_exit", LAYER, "        B, N, C = x.shape\n        h, d_k",
                    "        print('STUDENT NOISE ' * 50)\n        raise SystemExit(3)\n        B, N, C = x.shape\n"
                    "        h, d_k", "TODO1", "SystemExit")
IMPORT_ERROR = Mutant("raises_at_import", MODEL, "IGNORE_INDEX = -100", "raise RuntimeError('broken at import')\n"
                      "IGNORE_INDEX = -100", "TODO2", "cannot be imported")
ENDLESS_LOOP = Mutant("endless_loop", INPAINT, "    for t in range(steps):\n        z, current = model",
                      "    while True:\n        pass\n    for t in range(steps):\n        z, current = model", "TODO3",
                      "did not finish in time")
STEP_BODY = "        logits = self.transformer(z_indices.masked_fill(mask,"  # the first line of inpainting_step's body
HARD_EXIT = Mutant("os_exit_in_step", MODEL, STEP_BODY, "        import os\n        os._exit(7)\n" + STEP_BODY, "TODO3",
                   "")
