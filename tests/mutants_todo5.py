"""TODO5 (the TiTok 1D tokenizer extension): realistic bugs (MUTANTS) the grader must catch in TODO5 only (the
extension pool; the core score stays 100), and correct code written differently (VARIANTS) that must earn all of
TODO5's points. See mutation_kit.py for the pieces."""
from __future__ import annotations

from mutation_kit import TITOK, BodyMutant, Mutant, Variant

LATENTS = "latents = (self.latent_tokens + self.latent_pos).unsqueeze(0).expand(B, -1, -1)"
ENCODER_SEQ = "torch.cat([patch_tokens + self.patch_pos, latents], dim=1)"
KEEP = "return h[:, P:]"
GRID = "grid = (self.mask_token + self.grid_pos).unsqueeze(0).expand(B, -1, -1)"
DECODER_SEQ = "return torch.cat([grid, latents + self.decoder_latent_pos], dim=1)"
LOGITS = "logits = grid_out.transpose(1, 2).reshape(B, C, G, G)"
CE = "return F.cross_entropy(logits.float(), codes), logits"


def m(name: str, old: str, new: str, message: str) -> Mutant:
    return Mutant(name, TITOK, old, new, "TODO5", message)


MUTANTS = [
    # encode_latents
    m("latents_from_patch_positions", KEEP, "return h[:, :self.num_latent_tokens]",
      "the first K positions (the patch positions"),
    m("encoder_legacy_reshape", KEEP, "return h[:, P:].transpose(1, 2).reshape(B, -1, W)", "the legacy reshape"),
    m("encoder_without_latent_pos", LATENTS, LATENTS.replace("(self.latent_tokens + self.latent_pos)",
                                                             "self.latent_tokens"), "without latent_pos"),
    m("encoder_without_patch_pos", ENCODER_SEQ, "torch.cat([patch_tokens, latents], dim=1)", "without patch_pos"),
    m("encoder_adds_in_place", ENCODER_SEQ, "torch.cat([patch_tokens.add_(self.patch_pos), latents], dim=1)",
      "patch_tokens modified"),
    # decoder_input
    m("decoder_latents_without_positions", DECODER_SEQ, "return torch.cat([grid, latents], dim=1)",
      "the latents without their positions"),
    m("decoder_legacy_reshape", DECODER_SEQ,
      DECODER_SEQ.replace("latents + self", "latents.reshape(B, W, K).transpose(1, 2) + self"), "the legacy reshape"),
    m("mask_token_without_grid_pos", GRID, "grid = self.mask_token.expand(B, self.grid ** 2, -1)",
      "the mask token without the grid positions"),
    m("mask_token_not_repeated", GRID, "grid = (self.mask_token + self.grid_pos[:1]).unsqueeze(0).expand(B, -1, -1)",
      "repeated at the G * G grid positions"),
    m("decoder_latents_first", DECODER_SEQ, "return torch.cat([latents + self.decoder_latent_pos, grid], dim=1)",
      "the latents first"),
    m("decoder_adds_in_place", DECODER_SEQ, DECODER_SEQ.replace("latents + self.decoder_latent_pos",
                                                                "latents.add_(self.decoder_latent_pos)"),
      "latents modified"),
    # proxy_code_loss: the logits' layout
    m("logits_channels_last", LOGITS, "logits = grid_out.reshape(B, G, G, C)", "class axis second"),
    m("logits_legacy_reshape", LOGITS, "logits = grid_out.reshape(B, C, G, G)", "without a transpose"),
    m("logits_grid_transposed", LOGITS, LOGITS + ".transpose(2, 3)", "the G axes transposed"),
    m("logits_transposed_in_place", LOGITS, LOGITS.replace(".transpose(1, 2)", ".transpose_(1, 2)"),
      "grid_out modified"),
    # proxy_code_loss: the cross-entropy
    m("ce_on_grid_out_straight", CE, "return F.cross_entropy(grid_out.float(), codes.flatten(1)), logits",
      "class axis second"),
    m("ce_over_the_last_axis", CE, "return F.cross_entropy(logits.float().reshape(-1, G), codes.reshape(-1)), logits",
      "class axis second"),
    m("ce_summed", CE, CE.replace("codes)", "codes, reduction=\"sum\")"), "the sum over all positions"),
    m("ce_label_smoothing", CE, CE.replace("codes)", "codes, label_smoothing=0.1)"), "no label smoothing"),
    m("ce_in_bfloat16", CE, CE.replace("logits.float()", "logits"), "float32"),
    BodyMutant("ce_mean_per_image_summed", TITOK, "proxy_code_loss", '''
B, N, C = grid_out.shape
G = codes.shape[-1]
logits = grid_out.transpose(1, 2).reshape(B, C, G, G)
per_image = F.cross_entropy(logits.float(), codes, reduction="none").mean(dim=(1, 2))
return per_image.sum(), logits
''', "TODO5", "the sum of the images' means"),
]

# The sequence written into a preallocated tensor, the latents first (the encoder's blocks do not care where the
# latents sit; the slice follows them); only K from the model.
PREALLOCATED_ENCODER = '''
n_img, n_patch, width = patch_tokens.shape
k = self.num_latent_tokens
seq = patch_tokens.new_empty(n_img, k + n_patch, width)
seq[:, :k] = self.latent_tokens + self.latent_pos
seq[:, k:] = patch_tokens + self.patch_pos
return self.encoder_blocks(seq)[:, :k]
'''

# repeat instead of expand, the positions broadcast after the repeat.
REPEATED_DECODER_INPUT = '''
mask = self.mask_token.repeat(latents.shape[0], self.grid * self.grid, 1) + self.grid_pos
return torch.cat((mask, latents + self.decoder_latent_pos[None]), 1)
'''

# permute + unflatten for the logits; the cross-entropy of the flat (B * G * G, K_codes) rows.
FLAT_LOSS = '''
g = self.grid
logits = grid_out.permute(0, 2, 1).unflatten(2, (g, g))
loss = F.cross_entropy(grid_out.reshape(-1, grid_out.shape[-1]).float(), codes.reshape(-1))
return loss, logits
'''

# einsum-free but explicit: the log-softmax gathered at the codes, averaged by hand.
MANUAL_LOSS = '''
b = grid_out.shape[0]
logits = torch.stack([grid_out[:, :, c].reshape(b, self.grid, self.grid) for c in range(grid_out.shape[-1])], 1)
logp = torch.log_softmax(logits.float(), dim=1)
return -logp.gather(1, codes.unsqueeze(1)).mean(), logits
'''

VARIANTS: list[Variant] = [
    Variant("preallocated_latents_first", ((TITOK, "encode_latents", PREALLOCATED_ENCODER),
                                           (TITOK, "decoder_input", REPEATED_DECODER_INPUT),
                                           (TITOK, "proxy_code_loss", FLAT_LOSS)),
            "a preallocated sequence with the latents first; repeat; a flat cross-entropy", "TODO5"),
    Variant("manual_log_softmax", ((TITOK, "proxy_code_loss", MANUAL_LOSS),),
            "logits stacked per code, the log-softmax gathered and averaged by hand", "TODO5"),
]
