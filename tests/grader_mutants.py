"""Buggy variants of the reference solution: the bugs students commonly make (grader/README.md lists them).

Each mutant is one text replacement in one student file of solutions/; ``write_submission`` writes the four
student files, with the bug, into a folder that ``tools/batch_grade.py`` grades like a student submission.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
SOLUTIONS = REPO / "solutions"
STUDENT_FILES = ("models/Transformer/modules/layer.py", "models/VQGAN_Transformer.py", "training_transformer.py",
                 "inpainting.py")
LAYER, MODEL, TRAIN, INPAINT = STUDENT_FILES


@dataclass(frozen=True)
class Mutant:
    name: str
    file: str
    old: str
    new: str
    todo: str      # the TODO whose checks must fail (all others keep full points)
    message: str   # text the feedback of a failed check must contain
    times: int = 1  # how often ``old`` occurs (all occurrences are replaced)


MUTANTS = [
    Mutant("no_sqrt_dk_scale", LAYER, "scores = (q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(d_k))",
           "scores = q @ k.transpose(-2, -1)", "TODO1", "no 1/sqrt(d_k) scale"),
    Mutant("causal_mask", LAYER, "attn = self.attn_drop(scores.softmax(dim=-1))",
           "attn = self.attn_drop(scores.masked_fill(scores.new_ones(N, N).triu(1).bool(), float('-inf'))"
           ".softmax(dim=-1))", "TODO1", "causal mask"),
    Mutant("softmax_wrong_axis", LAYER, "scores.softmax(dim=-1)", "scores.softmax(dim=-2)", "TODO1",
           "softmax over the queries"),
    Mutant("heads_mixed", LAYER, "out = out.transpose(1, 2).reshape(B, N, C)", "out = out.reshape(B, N, C)",
           "TODO1", "heads merged without transposing"),
    Mutant("no_head_split", LAYER, ".view(B, N, h, d_k).transpose(1, 2)", ".view(B, N, 1, C).transpose(1, 2)", "TODO1",
           "heads do not mix", times=3),
    Mutant("gamma_linear_returns_r", MODEL, '"linear": lambda r: 1 - r,', '"linear": lambda r: r,', "TODO2",
           "linear: gamma(r) = 1 - r"),
    Mutant("inverted_training_mask", MODEL, "mask = (rank < num_masked[:, None])",
           "mask = (rank >= num_masked[:, None])", "TODO2", "you mask the tokens you should keep"),
    Mutant("mask_id_is_code_0", MODEL, "return z_indices.masked_fill(mask, self.mask_token_id), mask",
           "return z_indices.masked_fill(mask, 0), mask", "TODO2", "the mask token id 16"),
    Mutant("loss_on_unmasked_tokens", MODEL, "target = z_indices.masked_fill(~mask, IGNORE_INDEX)",
           "target = z_indices.masked_fill(mask, IGNORE_INDEX)", "TODO2", "target at masked positions"),
    Mutant("optimizer_steps_every_batch", TRAIN, "if (i + 1) % k == 0:", "if True:", "TODO2",
           "optimizer steps with accum_grad=3"),
    Mutant("eval_in_train_mode", TRAIN, "self.model.eval()", "self.model.train()", "TODO2",
           "model mode during eval_one_epoch"),
    Mutant("known_tokens_overwritten", MODEL, "z_pred = torch.where(mask, pred, z_indices)", "z_pred = pred",
           "TODO3", "known (unmasked) tokens in z_pred"),
    Mutant("count_from_current_in_step", MODEL, "num_unknown_start.to(torch.float64)", "unknown.to(torch.float64)",
           "TODO3", "you used the current count"),
    Mutant("count_from_current_in_loop", INPAINT, "model.inpainting_step(z, current, num_unknown_start,",
           "model.inpainting_step(z, current, current.sum(dim=1),", "TODO3", "num_unknown_start at step"),
    Mutant("ratio_off_by_one", INPAINT, "(t + 1) / total_iter,", "t / total_iter,", "TODO3", "(t + 1) / T"),
    Mutant("images_saved_out_of_order", INPAINT, "for b, i in enumerate(indices.tolist()):",
           "for b, i in enumerate(indices.tolist()[::-1]):", "TODO3", "known pixels of test_results"),
]

# Submissions that attack the grader itself rather than getting an answer wrong.
NOISY_EXIT = Mutant("prints_and_sys_exit", LAYER, "        B, N, C = x.shape\n        h, d_k",
                    "        print('STUDENT NOISE ' * 50)\n        raise SystemExit(3)\n        B, N, C = x.shape\n"
                    "        h, d_k", "TODO1", "SystemExit")
IMPORT_ERROR = Mutant("raises_at_import", MODEL, "IGNORE_INDEX = -100", "raise RuntimeError('broken at import')\n"
                      "IGNORE_INDEX = -100", "TODO2", "cannot be imported")
ENDLESS_LOOP = Mutant("endless_loop", INPAINT, "    steps = total_iter if sweet_spot",
                      "    while True:\n        pass\n    steps = total_iter if sweet_spot", "TODO3",
                      "did not finish in time")
HARD_EXIT = Mutant("os_exit_in_step", MODEL, "        temperature = self.choice_temperature if",
                   "        import os\n        os._exit(7)\n        temperature = self.choice_temperature if",
                   "TODO3", "")


def write_submission(dest: Path, mutant: Mutant | None = None) -> Path:
    """The four student files of solutions/ under ``dest``, with ``mutant`` applied (None: unchanged)."""
    for rel in STUDENT_FILES:
        text = (SOLUTIONS / rel).read_text()
        if mutant is not None and mutant.file == rel:
            count = text.count(mutant.old)
            if count != mutant.times:
                raise AssertionError(f"mutant {mutant.name}: {mutant.old!r} occurs {count} times in solutions/{rel}, "
                                     f"not {mutant.times}"
                                     " (the reference changed: update tests/grader_mutants.py)")
            text = text.replace(mutant.old, mutant.new)
        (dest / rel).parent.mkdir(parents=True, exist_ok=True)
        (dest / rel).write_text(text)
    return dest
