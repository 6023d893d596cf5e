"""TiTok's hyperparameters and its teacher, read from ``config/TiTok_*.yml`` (given code).

A TiTok config names the frozen 2D tokenizer it learns from (the teacher VQGAN: ``teacher.VQ_config_path``,
``teacher.VQ_CKPT_path``) and the TiTok model itself (``TiTok_param``). The teacher's codebook size and token grid
are TiTok's output vocabulary and output grid, so they are checked against the teacher's config when the file is
read; a teacher *checkpoint* is checked against them when it is loaded (``models.TiTok.teacher``).
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

from models.config import ConfigError, VQGANConfig, _build, _read_yaml, load_vqgan_config, resolve_path


@dataclass
class TiTokConfig:
    """A TiTok 1D tokenizer: 64x64 image -> K latent tokens (ids of a ``codebook_size`` codebook) -> the teacher's
    ``teacher_grid`` x ``teacher_grid`` grid of code ids (``teacher_codes`` of them)."""

    image_size: int = 64
    patch_size: int = 4               # the encoder's patch grid: image_size / patch_size per side
    num_latent_tokens: int = 32       # K, the length of the 1D token sequence
    max_latent_tokens: int = 256      # the largest K this config allows (at most the number of patches)
    width: int = 128                  # the ViTs' embedding size
    encoder_layers: int = 4
    decoder_layers: int = 4
    num_heads: int = 4
    mlp_dim: int = 512
    dropout: float = 0.0
    codebook_size: int = 1024         # the latent tokens' codebook
    code_dim: int = 16                # a code vector's size (a low-dimensional codebook, as in TiTok / ViT-VQGAN)
    beta: float = 0.25                # commitment loss weight
    l2_normalized_codes: bool = True  # cosine-similarity lookup, as the kit's VQGAN
    teacher_codes: int = 512          # the teacher VQGAN's codebook size (TiTok's output classes)
    teacher_grid: int = 16            # the teacher's token grid side (TiTok's output grid)

    @property
    def patch_grid(self) -> int:
        return self.image_size // self.patch_size

    @property
    def num_patches(self) -> int:
        return self.patch_grid ** 2


@dataclass
class TiTokRunConfig:
    """A TiTok config file: the model, its teacher's config and checkpoint, and where it came from."""

    titok: TiTokConfig
    teacher: VQGANConfig
    teacher_config_path: str
    teacher_ckpt_path: str
    source: str = ""


def check_titok_config(cfg: TiTokConfig, where: str) -> None:
    """Raise ``ConfigError`` (naming ``where`` and the field) when ``cfg`` is not a buildable TiTok."""
    for key in ("image_size", "patch_size", "num_latent_tokens", "max_latent_tokens", "width", "encoder_layers",
                "decoder_layers", "num_heads", "mlp_dim", "codebook_size", "code_dim", "teacher_codes",
                "teacher_grid"):
        if getattr(cfg, key) <= 0:
            raise ConfigError(f"{where}: key '{key}' must be positive, found {getattr(cfg, key)}")
    if cfg.image_size % cfg.patch_size:
        raise ConfigError(f"{where}: image_size {cfg.image_size} is not divisible by patch_size {cfg.patch_size}")
    if cfg.max_latent_tokens > cfg.num_patches:
        raise ConfigError(f"{where}: max_latent_tokens {cfg.max_latent_tokens} exceeds the {cfg.num_patches} patches "
                          f"(a 1D tokenizer with more tokens than patches compresses nothing)")
    if cfg.num_latent_tokens > cfg.max_latent_tokens:
        raise ConfigError(f"{where}: num_latent_tokens (K) {cfg.num_latent_tokens} exceeds max_latent_tokens "
                          f"{cfg.max_latent_tokens}")
    if cfg.width % cfg.num_heads:
        raise ConfigError(f"{where}: width {cfg.width} is not divisible by num_heads {cfg.num_heads}")
    if not 0 <= cfg.dropout < 1:
        raise ConfigError(f"{where}: dropout must be in [0, 1), found {cfg.dropout}")


def load_titok_config(path: str | Path, num_latent_tokens: int | None = None) -> TiTokRunConfig:
    """Read a TiTok config; paths in it are relative to the script folder (the config folder's parent).

    ``num_latent_tokens``: override K (a script's ``--num-latent-tokens``), checked against ``max_latent_tokens``.
    Raises ``ConfigError`` naming the file and the field: unknown or mistyped keys, K above the maximum, and a
    teacher VQGAN config whose codebook size or token grid differs from ``teacher_codes`` / ``teacher_grid``."""
    path = Path(path).resolve()
    data = _read_yaml(path)
    mp = data.get("model_param")
    if not isinstance(mp, dict):
        raise ConfigError(f"{path}: expected a 'model_param' mapping")
    unknown = sorted(set(mp) - {"teacher", "TiTok_param"})
    if unknown:
        raise ConfigError(f"{path}: model_param: unknown key(s) {unknown}; expected teacher, TiTok_param")
    teacher = mp.get("teacher")
    if not isinstance(teacher, dict) or not {"VQ_config_path", "VQ_CKPT_path"} <= set(teacher):
        raise ConfigError(f"{path}: model_param.teacher needs VQ_config_path and VQ_CKPT_path")
    where = f"{path}: model_param.TiTok_param"
    titok = _build(TiTokConfig, mp.get("TiTok_param"), where)
    if num_latent_tokens is not None:
        titok = dataclasses.replace(titok, num_latent_tokens=num_latent_tokens)
    check_titok_config(titok, where)
    script_dir = path.parent.parent
    vq_cfg_path = resolve_path(teacher["VQ_config_path"], script_dir)
    vqgan = load_vqgan_config(vq_cfg_path)
    for key, mine, theirs in (("teacher_codes", titok.teacher_codes, vqgan.num_codebook_vectors),
                              ("teacher_grid", titok.teacher_grid, vqgan.latent_size),
                              ("image_size", titok.image_size, vqgan.image_size)):
        if mine != theirs:
            raise ConfigError(f"{where}: {key} is {mine} but the teacher's config {vq_cfg_path} implies {theirs}")
    if titok.patch_grid != titok.teacher_grid:
        raise ConfigError(f"{where}: the patch grid {titok.patch_grid}x{titok.patch_grid} (image_size / patch_size) "
                          f"must equal the teacher's grid {titok.teacher_grid}x{titok.teacher_grid}")
    return TiTokRunConfig(titok=titok, teacher=vqgan, teacher_config_path=vq_cfg_path,
                          teacher_ckpt_path=resolve_path(teacher["VQ_CKPT_path"], script_dir), source=str(path))


def with_teacher(cfg: TiTokRunConfig, vqgan_ckpt: str | Path | None) -> TiTokRunConfig:
    """``cfg`` with the teacher checkpoint of a script's ``--vqgan-ckpt`` (None: the config's ``VQ_CKPT_path``)."""
    if vqgan_ckpt is None:
        return cfg
    return dataclasses.replace(cfg, teacher_ckpt_path=str(Path(vqgan_ckpt).resolve()))
