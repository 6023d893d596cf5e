"""TODO3: realistic bugs (MUTANTS) the grader must catch in TODO3 only, and correct code written differently
(VARIANTS) that must score 100. See mutation_kit.py for the pieces."""
from __future__ import annotations

from mutation_kit import INPAINT, LAYER, MODEL, TRAIN, BodyMutant, Mutant, Variant  # noqa: F401

MUTANTS = [
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

VARIANTS: list[Variant] = []
