"""TODO4 (the class-conditional extension): realistic bugs (MUTANTS) the grader must catch in TODO4 only (the
extension pool; the core score stays 100), and correct code written differently (VARIANTS) that must earn the whole
extension pool. See mutation_kit.py for the pieces."""
from __future__ import annotations

from mutation_kit import CLASS_COND, INPAINT, BodyMutant, Mutant, Variant  # noqa: F401

NET_CALL = "logits = self.net(torch.cat([ids, classes[:, None]], dim=1))[:, :N, :self.mask_token_id + 1]"
TRAIN_DROP = "drop = self.class_dropout if self.training else 0.0"
GUIDED = "guided = not self.training and self.guidance != 1.0"
COMBINE = "return without + self.guidance * (with_class - without)"
CONDITIONED = "\n        with model.conditioned(labels, scale):"  # the code's, not the docstring's
SCALE = "scale = 1 + (guidance - 1) * ratio if ramp else guidance"
STEPS = ("    steps = total_iter if sweet_spot is None else min(sweet_spot, total_iter)\n"
         "    num_unknown_start = mask.sum(dim=1)\n    z, current = z_indices, mask\n    history = []\n"
         "    for t in range(steps):\n        ratio =")  # guided_decoding's (iterative_decoding has the same start)

MUTANTS = [
    # class_token_ids
    Mutant("class_offset_k", CLASS_COND, "labels + self.first_class_id)", "labels + self.num_codebook_vectors)",
           "TODO4", "K + 1 + c"),
    Mutant("null_id_is_mask_id", CLASS_COND, "torch.full_like(labels, self.null_class_id),",
           "torch.full_like(labels, self.mask_token_id),", "TODO4", "NO_CLASS -> null_class_id"),
    Mutant("dropout_from_global_rng", CLASS_COND, "torch.rand(labels.shape[0], generator=generator)",
           "torch.rand(labels.shape[0])", "TODO4", "not the global RNG"),
    Mutant("dropout_draws_at_p0", CLASS_COND, "if drop_prob > 0:", "if drop_prob >= 0:", "TODO4",
           "draw only when drop_prob > 0"),
    Mutant("dropout_keeps_instead_of_drops", CLASS_COND, "< drop_prob).to(labels.device)",
           ">= drop_prob).to(labels.device)", "TODO4", "drop an image to null_class_id"),
    # forward: the class token and the logits
    Mutant("class_token_prepended", CLASS_COND, NET_CALL,
           NET_CALL.replace("torch.cat([ids, classes[:, None]], dim=1))[:, :N,",
                            "torch.cat([classes[:, None], ids], dim=1))[:, 1:,"),
           "TODO4", "the class token prepended"),
    Mutant("logits_not_sliced", CLASS_COND, NET_CALL, NET_CALL.replace("[:, :N, :self", "[:, :, :self"), "TODO4",
           "drop the class position and the class columns"),
    Mutant("class_columns_kept", CLASS_COND, NET_CALL, NET_CALL.replace(", :self.mask_token_id + 1]", "]"), "TODO4",
           "drop the class position and the class columns"),
    Mutant("labels_ignored", CLASS_COND, "cond = self.class_token_ids(labels, drop, self.generator)",
           "cond = self.class_token_ids(torch.full_like(labels, NO_CLASS), drop, self.generator)", "TODO4",
           "self.labels ignored"),
    # forward: class dropout and guidance
    Mutant("dropout_in_eval_mode", CLASS_COND, TRAIN_DROP, "drop = self.class_dropout", "TODO4",
           "class dropout is for training only"),
    Mutant("no_dropout_in_training", CLASS_COND, TRAIN_DROP, "drop = 0.0", "TODO4",
           "training: class_token_ids(labels, self.class_dropout, self.generator)"),
    Mutant("guidance_inverted", CLASS_COND, COMBINE, "return with_class + self.guidance * (without - with_class)",
           "TODO4", "inverted"),
    Mutant("guidance_in_training", CLASS_COND, GUIDED, "guided = self.guidance != 1.0", "TODO4",
           "guidance is for sampling (eval mode) only"),
    Mutant("two_passes_at_guidance_1", CLASS_COND, GUIDED, "guided = not self.training", "TODO4",
           "no unconditional pass"),
    # guided_decoding
    Mutant("ramp_t_over_T", INPAINT, SCALE, "scale = 1 + (guidance - 1) * t / total_iter if ramp else guidance",
           "TODO4", "(t + 1) / total_iter at step t"),
    Mutant("ramp_always_on", INPAINT, SCALE, "scale = 1 + (guidance - 1) * ratio", "TODO4",
           "scale = guidance at every step when ramp is False"),
    Mutant("scale_not_passed", INPAINT, CONDITIONED, CONDITIONED.replace(", scale)", ")"), "TODO4",
           "scale = guidance at every step"),
    Mutant("decoding_labels_ignored", INPAINT, CONDITIONED, CONDITIONED.replace("(labels,", "(None,"), "TODO4",
           "call each inpainting_step inside"),
    Mutant("guided_sweet_spot_ignored", INPAINT, STEPS, STEPS.replace(
        "total_iter if sweet_spot is None else min(sweet_spot, total_iter)", "total_iter"), "TODO4",
        "stop after sweet_spot steps"),
    Mutant("guided_ratio_off_by_one", INPAINT, "        ratio = (t + 1) / total_iter\n        scale",
           "        ratio = t / total_iter\n        scale", "TODO4", "(t + 1) / T"),
    BodyMutant("conditioned_once_not_per_step", INPAINT, "guided_decoding", '''
model.transformer.labels, model.transformer.guidance = labels, guidance
return iterative_decoding(model, z_indices, mask, total_iter, sweet_spot, generators, **step_kwargs)
''', "TODO4", "unconditioned again"),
]

# The class token's embedding looked up on its own and concatenated to the image tokens' (the net's forward
# written out); guidance as (1 + w) cond - w uncond with w = g - 1, two separate passes.
SPLIT_EMBEDDING_FORWARD = '''
B, N = masked_ids.shape
net = self.net
labels = self.labels
if labels is None:
    labels = [NO_CLASS] * B
labels = torch.as_tensor(labels).long().to(masked_ids.device)
p = self.class_dropout if self.training else 0.0
class_ids = self.class_token_ids(labels, p, self.generator)

def image_logits(cls):
    x = torch.cat([net.tok_emb(masked_ids), net.tok_emb(cls).unsqueeze(1)], dim=1)
    h = net.Token_Prediction(net.blocks(net.drop(net.LN(x + net.pos_emb))))
    out = h @ net.tok_emb.weight.T + net.bias
    return out[:, :N, :self.num_codebook_vectors + 1]

cond = image_logits(class_ids)
if self.training or self.guidance == 1:
    return cond
w = self.guidance - 1.0
uncond = image_logits(torch.full_like(class_ids, self.null_class_id))
return (1 + w) * cond - w * uncond
'''

# Ids by indexing, the draw kept as a "keep" mask.
INDEXED_IDS = '''
labels = torch.as_tensor(labels).long()
ids = labels + self.first_class_id
ids[labels == NO_CLASS] = self.null_class_id
if drop_prob > 0:
    keep = torch.rand(len(labels), generator=generator) >= drop_prob
    ids = torch.where(keep.to(ids.device), ids, torch.full_like(ids, self.null_class_id))
return ids
'''

# A while loop; the scale written per step from the step number; history built from two lists.
WHILE_GUIDED = '''
n0 = mask.long().sum(-1)
last = total_iter if sweet_spot is None else min(total_iter, sweet_spot)
preds, masks = [], []
z, m, t = z_indices, mask, 0
while t < last:
    t += 1
    g_t = 1.0 + (guidance - 1.0) * t / total_iter if ramp else guidance
    with model.conditioned(labels, guidance=g_t):
        z, m = model.inpainting_step(z, m, n0, t / total_iter, generators=generators, **step_kwargs)
    preds.append(z)
    masks.append(m)
return preds[-1], list(zip(preds, masks))
'''

VARIANTS: list[Variant] = [
    Variant("split_embedding_forward", ((CLASS_COND, "forward", SPLIT_EMBEDDING_FORWARD),),
            "the class token's embedding looked up apart and concatenated; (1 + w) cond - w uncond", "TODO4"),
    Variant("indexed_class_ids", ((CLASS_COND, "class_token_ids", INDEXED_IDS),),
            "ids by index assignment, a keep mask", "TODO4"),
    Variant("while_guided", ((INPAINT, "guided_decoding", WHILE_GUIDED),),
            "a while loop, the scale from the step number, history zipped at the end", "TODO4"),
]
