"""Points per check: the one place that says what each check is worth (100 in total).

A check is one ``test_*`` function of ``grader/test_*.py``. A parametrized check's points are shared evenly
between its cases (``test_attention_output_shape`` has 4 cases worth 1 point each).
"""
from __future__ import annotations

TODOS = {
    "TODO1": "attention: MultiHeadAttention.forward (models/Transformer/modules/layer.py)",
    "TODO2": "masking and training: encode_to_z, gamma_func, mask_tokens, forward (models/VQGAN_Transformer.py); "
             "configure_optimizers, train_one_epoch, eval_one_epoch (training_transformer.py)",
    "TODO3": "iterative decoding: inpainting_step (models/VQGAN_Transformer.py), iterative_decoding (inpainting.py)",
}

# check name: (TODO, points, the function to look at when it fails)
CHECKS: dict[str, tuple[str, int, str]] = {
    # TODO1 -- 30 points
    "test_attention_output_shape": ("TODO1", 4, "MultiHeadAttention.forward"),
    "test_attention_matches_reference": ("TODO1", 9, "MultiHeadAttention.forward"),
    "test_attention_is_bidirectional": ("TODO1", 4, "MultiHeadAttention.forward"),
    "test_attention_heads_use_own_slices": ("TODO1", 5, "MultiHeadAttention.forward"),
    "test_attention_dropout_on_weights_in_train_only": ("TODO1", 4, "MultiHeadAttention.forward"),
    "test_attention_uses_no_builtin_attention": ("TODO1", 4, "MultiHeadAttention.forward"),
    # TODO2, model -- 20 points
    "test_gamma_values": ("TODO2", 6, "MaskGit.gamma_func"),
    "test_gamma_monotone_and_in_range": ("TODO2", 3, "MaskGit.gamma_func"),
    "test_gamma_unknown_mode_raises": ("TODO2", 1, "MaskGit.gamma_func"),
    "test_encode_to_z": ("TODO2", 2, "MaskGit.encode_to_z"),
    "test_mask_tokens_counts": ("TODO2", 3, "MaskGit.mask_tokens"),
    "test_mask_tokens_values": ("TODO2", 2, "MaskGit.mask_tokens"),
    "test_forward_logits_and_targets": ("TODO2", 3, "MaskGit.forward"),
    # TODO2, training -- 15 points
    "test_configure_optimizers": ("TODO2", 3, "TrainTransformer.configure_optimizers"),
    "test_train_one_epoch_lowers_loss": ("TODO2", 4, "TrainTransformer.train_one_epoch"),
    "test_train_one_epoch_accumulates_gradients": ("TODO2", 4, "TrainTransformer.train_one_epoch"),
    "test_eval_one_epoch_changes_no_weights": ("TODO2", 2, "TrainTransformer.eval_one_epoch"),
    "test_eval_one_epoch_returns_loss_and_accuracy": ("TODO2", 2, "TrainTransformer.eval_one_epoch"),
    # TODO3 -- 35 points
    "test_step_keeps_known_tokens": ("TODO3", 4, "MaskGit.inpainting_step"),
    "test_step_reveals_only_masked": ("TODO3", 3, "MaskGit.inpainting_step"),
    "test_step_keeps_scheduled_count_masked": ("TODO3", 5, "MaskGit.inpainting_step"),
    "test_step_counts_from_original_unknown": ("TODO3", 4, "MaskGit.inpainting_step"),
    "test_step_zero_temperature_reveals_most_confident": ("TODO3", 4, "MaskGit.inpainting_step"),
    "test_loop_schedule_and_arguments": ("TODO3", 4, "iterative_decoding"),
    "test_loop_fills_every_token": ("TODO3", 3, "iterative_decoding"),
    "test_loop_sweet_spot_stops_early": ("TODO3", 3, "iterative_decoding"),
    "test_loop_batched_equals_per_image": ("TODO3", 3, "iterative_decoding"),
    "test_run_saves_images_in_test_order": ("TODO3", 2, "iterative_decoding and inpainting.run"),
}

TOTAL = 100
assert sum(points for _, points, _ in CHECKS.values()) == TOTAL, "autograder/points.py: points must add up to 100"
assert all(todo in TODOS for todo, _, _ in CHECKS.values()), "maskgit_kit/autograder/points.py: unknown TODO in CHECKS"


def points_by_todo() -> dict[str, int]:
    totals = dict.fromkeys(TODOS, 0)
    for todo, points, _ in CHECKS.values():
        totals[todo] += points
    return totals
