"""TODO2: realistic bugs (MUTANTS) the grader must catch in TODO2 only, and correct code written differently
(VARIANTS) that must score 100. See mutation_kit.py for the pieces."""
from __future__ import annotations

from mutation_kit import INPAINT, LAYER, MODEL, TRAIN, BodyMutant, Mutant, Variant  # noqa: F401

CE = ("loss = F.cross_entropy(logits.float().flatten(0, 1), target.flatten(),\n"
      "                                       ignore_index=IGNORE_INDEX, label_smoothing=self.label_smoothing)")

# a minGPT-style configure_optimizers (decay / no-decay groups by module type); ``EXTRA`` names the bare
# parameters put in the no-decay group by hand
MINGPT = '''
decay, no_decay = set(), set()
for mn, m in self.model.transformer.named_modules():
    for pn, p in m.named_parameters(recurse=False):
        fpn = f"{mn}.{pn}" if mn else pn
        if pn.endswith("bias"):
            no_decay.add(fpn)
        elif pn.endswith("weight") and isinstance(m, torch.nn.Linear):
            decay.add(fpn)
        elif pn.endswith("weight") and isinstance(m, (torch.nn.LayerNorm, torch.nn.Embedding)):
            no_decay.add(fpn)
no_decay.update(EXTRA)
params = dict(self.model.transformer.named_parameters())
groups = [{"params": [params[n] for n in sorted(decay)], "weight_decay": 0.045},
          {"params": [params[n] for n in sorted(no_decay)], "weight_decay": 0.0}]
optimizer = torch.optim.AdamW(groups, lr=self.learning_rate, betas=(0.9, 0.96))
scheduler = torch.optim.lr_scheduler.LambdaLR(
    optimizer, lambda step: warmup_cosine(step, self.warmup_steps, self.total_steps))
return optimizer, scheduler
'''

MUTANTS = [
    Mutant("gamma_linear_returns_r", MODEL, '"linear": lambda r: 1 - r,', '"linear": lambda r: r,', "TODO2",
           "linear: gamma(r) = 1 - r"),
    Mutant("gamma_cosine_pi_r", MODEL, '"cosine": lambda r: torch.cos(r * math.pi / 2),',
           '"cosine": lambda r: torch.cos(r * math.pi),', "TODO2", "not cos(pi * r)"),
    Mutant("inverted_training_mask", MODEL, "mask = (rank < num_masked[:, None])",
           "mask = (rank >= num_masked[:, None])", "TODO2", "the inverted training mask"),
    Mutant("mask_count_floor", MODEL, "num_masked = torch.ceil(self.gamma(r) * N)",
           "num_masked = torch.floor(self.gamma(r) * N)", "TODO2", "rounded down"),
    Mutant("mask_id_is_code_0", MODEL, "return z_indices.masked_fill(mask, self.mask_token_id), mask",
           "return z_indices.masked_fill(mask, 0), mask", "TODO2", "the mask token id 16"),
    Mutant("mask_id_is_last_code", MODEL, "return z_indices.masked_fill(mask, self.mask_token_id), mask",
           "return z_indices.masked_fill(mask, self.num_codebook_vectors - 1), mask", "TODO2",
           "would look like a known token"),
    Mutant("mask_tokens_ignores_generator", MODEL, "scores = torch.rand(B, N, generator=generator)",
           "scores = torch.rand(B, N)", "TODO2", "mask_tokens ignores its generator"),
    Mutant("loss_on_unmasked_tokens", MODEL, "target = z_indices.masked_fill(~mask, IGNORE_INDEX)",
           "target = z_indices.masked_fill(mask, IGNORE_INDEX)", "TODO2", "target at masked positions"),
    Mutant("loss_over_all_tokens", MODEL, "target = z_indices.masked_fill(~mask, IGNORE_INDEX)",
           "target = z_indices.clone()", "TODO2", "loss over all tokens"),
    Mutant("logits_transposed_for_ce", MODEL, "logits = self.transformer(masked_indices)\n",
           "logits = self.transformer(masked_indices).transpose(1, 2)\n", "TODO2",
           "cross-entropy over the wrong axis"),
    Mutant("optimizer_includes_vqgan", TRAIN, "optimizer = torch.optim.AdamW(self.model.transformer.parameters(),",
           "optimizer = torch.optim.AdamW(self.model.parameters(),", "TODO2", "not self.model.parameters()"),
    BodyMutant("mingpt_groups_drop_pos_emb", TRAIN, "configure_optimizers", MINGPT.replace("EXTRA", '{"bias"}'),
               "TODO2", "pos_emb left out"),
    Mutant("optimizer_steps_every_batch", TRAIN, "if (i + 1) % k == 0:", "if True:", "TODO2",
           "optimizer steps with accum_grad=3"),
    Mutant("accumulation_off_by_one", TRAIN, "if (i + 1) % k == 0:", "if i % k == 0:", "TODO2",
           "accumulation off by one"),
    Mutant("zero_grad_once_per_epoch", TRAIN,
           "                self.scheduler.step()\n                self.optim.zero_grad(set_to_none=True)\n",
           "                self.scheduler.step()\n", "TODO2", "gradients pile up across steps"),
    Mutant("scheduler_never_stepped", TRAIN, "                self.scheduler.step()\n", "", "TODO2",
           "scheduler never stepped"),
    Mutant("no_label_smoothing", TRAIN, CE + "\n            (loss / k)",
           CE.replace(", label_smoothing=self.label_smoothing", "") + "\n            (loss / k)", "TODO2",
           "no label smoothing"),
    Mutant("ce_wrong_axis_in_loop", TRAIN, CE + "\n            (loss / k)",
           CE.replace("logits.float().flatten(0, 1), target.flatten()", "logits.float(), target")
           + "\n            (loss / k)", "TODO2", "cross-entropy over the wrong axis"),
    Mutant("train_loss_summed", TRAIN, "        return total / max(1, batches)\n        # END SOLUTION\n\n    @torch",
           "        return total\n        # END SOLUTION\n\n    @torch", "TODO2", "summed over batches"),
    Mutant("train_loss_divided_by_k", TRAIN, "            (loss / k).backward()\n",
           "            loss = loss / k\n            loss.backward()\n", "TODO2", "the mean of loss / k"),
    Mutant("train_returns_nothing", TRAIN,
           "        return total / max(1, batches)\n        # END SOLUTION\n\n    @torch",
           "        # END SOLUTION\n\n    @torch", "TODO2", "returns nothing"),
    Mutant("eval_in_train_mode", TRAIN, "self.model.eval()", "self.model.train()", "TODO2",
           "model mode during eval_one_epoch"),
    Mutant("eval_with_gradients", TRAIN, "    @torch.no_grad()\n    def eval_one_epoch",
           "    def eval_one_epoch", "TODO2", "gradient tracking during eval_one_epoch"),
    Mutant("eval_accuracy_all_tokens", TRAIN,
           "correct += (logits.argmax(-1)[masked] == target[masked]).sum().item()\n"
           "            counted += masked.sum().item()",
           "correct += (logits.argmax(-1) == target).sum().item()\n            counted += target.numel()",
           "TODO2", "accuracy over all tokens"),
]

VARIANTS: list[Variant] = [
    Variant("gamma_math_cos_floats", ((MODEL, "gamma_func", '''
if mode == "cosine":
    return lambda r: math.cos(math.pi * r / 2)
elif mode == "linear":
    return lambda r: 1 - r
elif mode == "square":
    return lambda r: 1 - r ** 2
else:
    raise NotImplementedError
'''),), "the course's gamma: math on floats, NotImplementedError for an unknown name", "TODO2"),
    Variant("mingpt_optimizer_groups", ((TRAIN, "configure_optimizers", MINGPT.replace("EXTRA", '{"pos_emb"}')),),
            "minGPT decay / no-decay groups by module type, pos_emb in no-decay", "TODO2"),
    Variant("randperm_masking_per_image", ((MODEL, "mask_tokens", '''
B, N = z_indices.shape
mask = torch.zeros(B, N, dtype=torch.bool, device=z_indices.device)
for b in range(B):
    if ratio is None:
        r = torch.rand(1, generator=generator).item()
    elif isinstance(ratio, torch.Tensor) and ratio.dim() > 0:
        r = ratio[b].item()
    else:
        r = float(ratio)
    count = min(N, max(1, math.ceil(float(self.gamma(r)) * N)))
    mask[b, torch.randperm(N, generator=generator)[:count]] = True
masked_indices = z_indices.clone()
masked_indices[mask] = self.mask_token_id
return masked_indices, mask
'''),), "course style: torch.randperm per image, a float gamma", "TODO2"),
    Variant("training_loop_no_clipping_manual_mean", ((TRAIN, "train_one_epoch", '''
self.model.train()
self.optim.zero_grad()
losses = []
for i, batch in enumerate(tqdm(train_loader)):
    logits, target = self.model(batch.to(self.device))
    loss = F.cross_entropy(logits.reshape(-1, logits.size(-1)).float(), target.reshape(-1),
                           ignore_index=IGNORE_INDEX, label_smoothing=self.label_smoothing)
    (loss / self.accum_grad).backward()
    losses.append(loss.item())
    if (i + 1) % self.accum_grad == 0:
        self.optim.step()
        self.scheduler.step()
        self.optim.zero_grad()
return sum(losses) / len(losses)
'''),), "no clipping, no autocast wrapper, a list of losses averaged by hand", "TODO2"),
    Variant("eval_transposed_ce_decodes_images", ((TRAIN, "eval_one_epoch", '''
self.model.eval()
losses, hits, count = [], 0, 0
for batch in val_loader:
    logits, target = self.model(batch.to(self.device))
    losses.append(F.cross_entropy(logits.float().transpose(1, 2), target, ignore_index=IGNORE_INDEX,
                                  label_smoothing=self.label_smoothing).item())
    pred = logits.argmax(dim=-1)
    keep = target != IGNORE_INDEX
    hits += (pred[keep] == target[keep]).sum().item()
    count += keep.sum().item()
    self.model.decode_to_image(pred.clamp(max=self.model.num_codebook_vectors - 1))  # a sample, as the course shows
return sum(losses) / len(losses), hits / count
'''),), "cross-entropy on (B, K+1, N), decodes a sample of images with the real VQGAN", "TODO2"),
]
