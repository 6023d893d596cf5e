"""TODO2: realistic bugs (MUTANTS) the grader must catch in TODO2 only, and correct code written differently
(VARIANTS) that must score 100. See mutation_kit.py for the pieces."""
from __future__ import annotations

from mutation_kit import INPAINT, LAYER, MODEL, TRAIN, BodyMutant, Mutant, Variant  # noqa: F401

MUTANTS = [
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
]

VARIANTS: list[Variant] = []
