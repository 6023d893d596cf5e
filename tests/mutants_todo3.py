"""TODO3: realistic bugs (MUTANTS) the grader must catch in TODO3 only, and correct code written differently
(VARIANTS) that must score 100. See mutation_kit.py for the pieces."""
from __future__ import annotations

from mutation_kit import INPAINT, LAYER, MODEL, TRAIN, BodyMutant, Mutant, Variant  # noqa: F401

CONF_NOISE = "confidence = confidence + choice_temperature * (1 - ratio) * gumbel_noise(confidence, generators)"
ID_SAMPLING = "pred = (log_probs + gumbel_noise(log_probs, generators)).argmax(dim=-1)"

# The course's template: a step written for one image (logits[0], mask.sum().item()). Right for B = 1, so it keeps
# every rule's points and loses only the batching check.
ONE_IMAGE_STEP = '''
logits = self.transformer(z_indices.masked_fill(mask, self.mask_token_id))[0].float()  # (N, K+1): image 0
logits[:, self.mask_token_id] = -math.inf
log_probs = logits.log_softmax(dim=-1)
if sample:
    pred = (log_probs + gumbel_noise(log_probs[None], generators)[0]).argmax(dim=-1)
else:
    pred = log_probs.argmax(dim=-1)
z_pred = torch.where(mask, pred[None], z_indices)
confidence = log_probs.gather(-1, pred[:, None]).squeeze(-1)
t = choice_temperature * (1 - ratio)
if t > 0:
    confidence = confidence + t * gumbel_noise(confidence[None], generators)[0]
confidence = torch.where(mask[0], confidence, torch.full_like(confidence, math.inf))
unknown = mask.sum().item()
mask_len = math.floor(num_unknown_start.sum().item() * float(self.gamma(ratio)))
mask_len = max(1, min(unknown - 1, mask_len))
if ratio >= 1 or unknown == 0:
    mask_len = 0
new_mask = torch.zeros_like(mask)
new_mask[0, confidence.argsort()[:mask_len]] = True
return z_pred, new_mask
'''

MUTANTS = [
    Mutant("known_tokens_overwritten", MODEL, "z_pred = torch.where(mask, pred, z_indices)", "z_pred = pred",
           "TODO3", "known (unmasked) tokens in z_pred"),
    Mutant("count_from_current_in_step", MODEL, "num_unknown_start.to(torch.float64)", "unknown.to(torch.float64)",
           "TODO3", "you used the current count"),
    # (inpainting.py's guided_decoding, TODO4, has the same loop: the old texts name iterative_decoding's lines)
    Mutant("count_from_current_in_loop", INPAINT, "model.inpainting_step(z, current, num_unknown_start, (t + 1)",
           "model.inpainting_step(z, current, current.sum(dim=1), (t + 1)", "TODO3", "num_unknown_start at step"),
    Mutant("ratio_off_by_one", INPAINT, "num_unknown_start, (t + 1) / total_iter,",
           "num_unknown_start, t / total_iter,", "TODO3", "(t + 1) / T"),
    Mutant("images_saved_out_of_order", INPAINT, "for b, i in enumerate(indices.tolist()):",
           "for b, i in enumerate(indices.tolist()[::-1]):", "TODO3", "known pixels of test_results"),
    # the mask token
    Mutant("argmax_over_k_plus_1", MODEL, "logits[..., self.mask_token_id] = -math.inf", "pass", "TODO3",
           "an argmax over all K + 1 classes predicts the mask token"),
    # inputs and randomness
    Mutant("step_writes_into_its_input", MODEL, "z_pred = torch.where(mask, pred, z_indices)",
           "z_pred = z_indices\n        z_pred[mask] = pred[mask]", "TODO3", "edited in place: z_indices"),
    Mutant("random_when_not_sampling", MODEL, "pred = log_probs.argmax(dim=-1)",
           "pred = (log_probs + gumbel_noise(log_probs)).argmax(dim=-1)", "TODO3",
           "the step draws random numbers from the global RNG"),
    Mutant("noise_without_generators", MODEL, "gumbel_noise(confidence, generators)", "gumbel_noise(confidence)",
           "TODO3", "generators=None (the global RNG)"),
    Mutant("exponential_noise", MODEL, "gumbel_noise(confidence, generators)",
           "torch.empty_like(confidence).exponential_()", "TODO3", "calls for: the ids"),
    # the confidence rule
    Mutant("no_annealing", MODEL, CONF_NOISE, CONF_NOISE.replace(" * (1 - ratio)", ""), "TODO3", "no annealing"),
    Mutant("annealing_the_wrong_way", MODEL, CONF_NOISE, CONF_NOISE.replace("(1 - ratio)", "ratio"), "TODO3",
           "annealing the wrong way"),
    Mutant("annealing_with_gamma", MODEL, CONF_NOISE,
           CONF_NOISE.replace("(1 - ratio)", "float(self.gamma(ratio))"), "TODO3",
           "annealing with gamma(ratio)"),
    Mutant("probability_confidence", MODEL, "confidence = log_probs.gather(-1, pred[..., None]).squeeze(-1)",
           "confidence = log_probs.exp().gather(-1, pred[..., None]).squeeze(-1)", "TODO3",
           "probability instead of log-probability"),
    Mutant("max_logprob_confidence", MODEL, "confidence = log_probs.gather(-1, pred[..., None]).squeeze(-1)",
           "confidence = log_probs.max(dim=-1).values", "TODO3", "the maximum log-probability"),
    Mutant("noise_subtracted", MODEL, CONF_NOISE, CONF_NOISE.replace("confidence + ", "confidence - "), "TODO3",
           "noise subtracted"),
    Mutant("temperature_on_id_sampling", MODEL, ID_SAMPLING,
           ID_SAMPLING.replace("log_probs + ", "log_probs + choice_temperature * (1 - ratio) * "), "TODO3",
           "the choice temperature applied to the id sampling", edits=((CONF_NOISE, "pass"),)),
    Mutant("gumbel_on_probabilities", MODEL, ID_SAMPLING,  # over the K codes (with the mask id it predicts K)
           "probs = log_probs[..., :self.mask_token_id].exp()\n"
           "            pred = (probs + gumbel_noise(probs, generators)).argmax(dim=-1)",
           "TODO3", "Gumbel noise added to probabilities"),
    # the count
    Mutant("no_clamp_to_one", MODEL, "torch.maximum(torch.ones_like(mask_len), torch.minimum(unknown - 1, mask_len))",
           "torch.minimum(unknown - 1, mask_len)", "TODO3", "at least 1 stays masked"),
    Mutant("no_clamp_to_unknown", MODEL,
           "torch.maximum(torch.ones_like(mask_len), torch.minimum(unknown - 1, mask_len))",
           "torch.maximum(torch.ones_like(mask_len), mask_len)", "TODO3", "at least 1 is revealed every step"),
    Mutant("ceil_instead_of_floor", MODEL, "mask_len = torch.floor(", "mask_len = torch.ceil(", "TODO3",
           "rounded up (ceil)"),
    Mutant("round_instead_of_floor", MODEL, "mask_len = torch.floor(", "mask_len = torch.round(", "TODO3",
           "rounded to the nearest"),
    Mutant("n0_summed_over_batch", MODEL, "num_unknown_start.to(torch.float64)", "num_unknown_start.sum().double()",
           "TODO3", "as if N0 were summed over the batch"),
    BodyMutant("one_image_step", MODEL, "inpainting_step", ONE_IMAGE_STEP, "TODO3", "batch of 3 vs alone"),
    # the loop
    Mutant("loop_writes_input_tokens_back", INPAINT,
           "generators=generators, **step_kwargs)\n        history.append((z, current))\n",
           "generators=generators, **step_kwargs)\n        history.append((z, current))\n"
           "        z = torch.where(current, z, z_indices)\n",
           "TODO3", "that step's z_pred"),
    Mutant("sweet_spot_ratio", INPAINT, "num_unknown_start, (t + 1) / total_iter,",
           "num_unknown_start, (t + 1) / steps,", "TODO3",
           "the ratio still divides by total_iter"),
]

# A per-image step, course style: a Python loop over the batch, .item() counts, topk, one generator per image.
PER_IMAGE_STEP = '''
z_pred, new_mask = z_indices.clone(), torch.zeros_like(mask)
for b in range(z_indices.shape[0]):
    g = None if generators is None else generators[b:b + 1]
    logits = self.transformer(z_indices[b:b + 1].masked_fill(mask[b:b + 1], self.mask_token_id))[0]
    probs = torch.softmax(logits[:, :self.num_codebook_vectors].float(), dim=-1)
    log_p = torch.log(probs)
    if sample:
        ids = torch.argmax(log_p + gumbel_noise(log_p[None], g)[0], dim=-1)
    else:
        ids = torch.argmax(probs, dim=-1)
    z_pred[b][mask[b]] = ids[mask[b]]
    conf = torch.take_along_dim(log_p, ids[:, None], dim=-1)[:, 0]
    temperature = choice_temperature * (1.0 - ratio)
    if temperature > 0:
        conf = conf + temperature * gumbel_noise(conf[None], g)[0]
    conf[~mask[b]] = float("inf")
    unknown = int(mask[b].sum().item())
    n = int(math.floor(float(num_unknown_start[b].item()) * float(self.gamma(ratio))))
    n = max(1, min(unknown - 1, n))
    if ratio >= 1 or unknown == 0:
        n = 0
    if n > 0:
        new_mask[b, torch.topk(conf, n, largest=False).indices] = True
return z_pred, new_mask
'''

# In place on its own tensors (no clone of the inputs is needed: it never writes into them), sort + scatter.
IN_PLACE_STEP = '''
logits = self.transformer(torch.where(mask, self.mask_token_id, z_indices))
logits[..., self.mask_token_id] = -math.inf
log_probs = logits.float().log_softmax(-1)
pred = log_probs.argmax(-1) if not sample else (log_probs + gumbel_noise(log_probs, generators)).argmax(-1)
pred[~mask] = z_indices[~mask]
confidence = log_probs.gather(-1, pred.unsqueeze(-1)).squeeze_(-1)
if choice_temperature * (1 - ratio) > 0:
    confidence.add_(gumbel_noise(confidence, generators), alpha=choice_temperature * (1 - ratio))
confidence.masked_fill_(~mask, math.inf)
unknown = mask.sum(-1)
mask_len = (num_unknown_start * float(self.gamma(ratio))).floor().long()
mask_len.clamp_(max=unknown - 1).clamp_(min=1)
if ratio >= 1:
    mask_len.zero_()
mask_len[unknown == 0] = 0
order = confidence.sort(dim=-1, stable=True).indices
new_mask = torch.zeros_like(mask)
new_mask.scatter_(1, order, torch.arange(mask.shape[1]).expand_as(order) < mask_len[:, None])
return pred, new_mask
'''

WHILE_LOOP = '''
n0 = mask.long().sum(-1)
last = total_iter if sweet_spot is None else min(total_iter, sweet_spot)
preds, masks = [], []
z, m, t = z_indices, mask, 0
while t < last:
    t += 1
    z, m = model.inpainting_step(z, m, n0, t / total_iter, generators=generators, **step_kwargs)
    preds.append(z)
    masks.append(m)
return preds[-1], list(zip(preds, masks))
'''

# Batched, the count taken with math on floats, the least confident found with topk (largest=False).
TOPK_STEP = '''
logits = self.transformer(z_indices.masked_fill(mask, self.mask_token_id))[..., :self.num_codebook_vectors]
log_probs = torch.log_softmax(logits.float(), dim=-1)
pred = (log_probs + gumbel_noise(log_probs, generators)).argmax(-1) if sample else log_probs.argmax(-1)
z_pred = torch.where(mask, pred, z_indices)
confidence = torch.gather(log_probs, 2, pred.unsqueeze(2)).squeeze(2)
scale = choice_temperature * (1.0 - ratio)
if scale > 0:
    confidence = confidence + scale * gumbel_noise(confidence, generators)
confidence = torch.where(mask, confidence, torch.full_like(confidence, float("inf")))
unknown = mask.sum(dim=1)
g = float(self.gamma(ratio))
mask_len = torch.tensor([0 if ratio >= 1 or u == 0 else max(1, min(u - 1, math.floor(n * g)))
                         for n, u in zip(num_unknown_start.tolist(), unknown.tolist(), strict=True)])
new_mask = torch.zeros_like(mask)
k = int(mask_len.max()) if len(mask_len) else 0
if k > 0:
    lowest = confidence.topk(k, dim=1, largest=False).indices  # (B, k), least confident first
    new_mask.scatter_(1, lowest, torch.arange(k)[None, :] < mask_len[:, None])
return z_pred, new_mask
'''

VARIANTS: list[Variant] = [
    Variant("topk_step", ((MODEL, "inpainting_step", TOPK_STEP),),
            "batched topk(largest=False) + scatter, logits sliced to K, counts in Python floats", "TODO3"),
    Variant("per_image_step", ((MODEL, "inpainting_step", PER_IMAGE_STEP),),
            "a Python loop over the batch, .item() counts, softmax then log, topk", "TODO3"),
    Variant("in_place_step", ((MODEL, "inpainting_step", IN_PLACE_STEP),),
            "in-place ops on its own tensors, sort + scatter", "TODO3"),
    Variant("while_loop", ((INPAINT, "iterative_decoding", WHILE_LOOP),),
            "a while loop building lists, history zipped at the end", "TODO3"),
]
