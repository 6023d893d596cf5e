"""Model hyperparameters: one dataclass per model, read from the YAML files in ``config/``.

Why dataclasses: a mistyped or missing key in a YAML file should fail at load time with the file and
the key named, not deep inside a constructor. The resolved dataclass (``asdict``) is also what every
checkpoint stores, so that a checkpoint that does not fit a config is caught with a clear message.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml


class ConfigError(ValueError):
    """A config file or value is not what the kit expects."""


@dataclass
class VQGANConfig:
    """The image tokenizer: 64x64x3 image -> (H/2^d) x (W/2^d) grid of code ids."""

    image_channels: int = 3
    image_size: int = 64
    channels: list[int] = field(default_factory=lambda: [64, 128, 128])  # one entry per resolution
    num_res_blocks: int = 1           # residual blocks per resolution
    attn_resolutions: list[int] = field(default_factory=list)  # feature-map sizes that get self-attention
    latent_dim: int = 64              # size of one code vector
    num_codebook_vectors: int = 512   # K; the transformer's mask token id is K
    beta: float = 0.25                # commitment loss weight (VQ-VAE)
    l2_normalized_codes: bool = True  # cosine-similarity lookup, guards against codebook collapse

    @property
    def latent_size(self) -> int:
        return self.image_size // 2 ** (len(self.channels) - 1)


@dataclass
class TransformerConfig:
    """The bidirectional transformer over the flattened token grid."""

    num_image_tokens: int = 256
    num_codebook_vectors: int = 512
    dim: int = 256
    n_layers: int = 6
    hidden_dim: int = 512
    num_heads: int = 16
    dropout: float = 0.1
    attn_dropout: float = 0.1
    num_classes: int = 0  # > 0: class-conditional (TODO4), a class token appended after the image tokens


@dataclass
class MaskGitConfig:
    """Everything ``MaskGit`` needs: the tokenizer, the transformer and the decoding defaults."""

    vqgan: VQGANConfig
    transformer: TransformerConfig
    vqgan_config_path: str
    vqgan_ckpt_path: str
    transformer_ckpt_path: str
    num_image_tokens: int = 256
    num_codebook_vectors: int = 512
    choice_temperature: float = 4.5
    mask_func: str = "cosine"  # the mask schedule's name (YAML key ``gamma_type``, as in the course)
    label_smoothing: float = 0.1
    class_dropout: float = 0.1  # class-conditional training: fraction of images trained with the "no class" id
    source: str = ""  # the YAML file this was read from (for error messages)
    # MaskGIT on TiTok's 1D tokens (the TODO5 extension; YAML ``TiTok_Configs`` instead of ``VQ_Configs``): the TiTok
    # config and checkpoint; ``vqgan`` and the ``vqgan_*`` paths are then its teacher's. Empty: the 2D VQGAN.
    titok_config_path: str = ""
    titok_ckpt_path: str = ""

    @property
    def tokenizer_ckpt_path(self) -> str:
        """The file whose ids the transformer models: the TiTok checkpoint, or else the VQGAN checkpoint."""
        return self.titok_ckpt_path or self.vqgan_ckpt_path

    @property
    def token_grid(self) -> int | None:
        """The side of the token grid (16), or None for 1D tokens (TiTok), which have no place in the image."""
        return None if self.titok_ckpt_path else self.vqgan.latent_size


def _read_yaml(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise ConfigError(f"{path}: config file not found")
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML ({exc})") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level, found {type(data).__name__}")
    return data


def _build(cls, values: dict[str, Any], where: str):
    """Instantiate ``cls`` from ``values``, rejecting unknown keys and wrong types with ``where`` named."""
    if not isinstance(values, dict):
        raise ConfigError(f"{where}: expected a mapping, found {type(values).__name__}")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - set(fields))
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {unknown}; expected some of {sorted(fields)}")
    defaults = cls()
    for key, value in values.items():
        expected = type(getattr(defaults, key))
        ok = isinstance(value, expected) and not (expected is int and isinstance(value, bool))
        if expected is float and isinstance(value, int) and not isinstance(value, bool):
            ok = True
        if not ok:
            raise ConfigError(f"{where}: key '{key}' must be {expected.__name__}, found {value!r}")
    obj = cls(**values)
    for key in ("num_codebook_vectors", "num_image_tokens", "dim", "n_layers", "hidden_dim", "num_heads"):
        if hasattr(obj, key) and getattr(obj, key) <= 0:
            raise ConfigError(f"{where}: key '{key}' must be positive, found {getattr(obj, key)}")
    return obj


def load_vqgan_config(path: str | Path) -> VQGANConfig:
    path = Path(path)
    data = _read_yaml(path)
    cfg = _build(VQGANConfig, data.get("model_param", data), str(path))
    if cfg.image_size % 2 ** (len(cfg.channels) - 1):
        raise ConfigError(f"{path}: image_size {cfg.image_size} is not divisible by the downsampling")
    return cfg


def resolve_path(value: str, base: Path) -> str:
    """Paths in a config are relative to the config's folder's parent (the script folder), as in the course."""
    p = Path(value)
    return str(p if p.is_absolute() else (base / p).resolve())


def load_maskgit_config(path: str | Path) -> MaskGitConfig:
    """Read ``config/MaskGit.yml``; paths inside it are resolved relative to the script folder."""
    path = Path(path).resolve()
    data = _read_yaml(path)
    mp = data.get("model_param")
    if not isinstance(mp, dict):
        raise ConfigError(f"{path}: expected a 'model_param' mapping")
    mp = dict(mp)
    script_dir = path.parent.parent
    if "TiTok_Configs" in mp:
        tokenizer = _titok_tokenizer(path, mp.pop("TiTok_Configs"), script_dir, mp.pop("VQ_Configs", None))
    else:
        vq = mp.pop("VQ_Configs", None)
        if not isinstance(vq, dict) or not {"VQ_config_path", "VQ_CKPT_path"} <= set(vq):
            raise ConfigError(f"{path}: model_param.VQ_Configs needs VQ_config_path and VQ_CKPT_path")
        vq_cfg_path = resolve_path(vq["VQ_config_path"], script_dir)
        tokenizer = {"vqgan": load_vqgan_config(vq_cfg_path), "vqgan_config_path": vq_cfg_path,
                     "vqgan_ckpt_path": resolve_path(vq["VQ_CKPT_path"], script_dir)}
    tp = mp.pop("Transformer_param", None)
    transformer = _build(TransformerConfig, tp, f"{path}: model_param.Transformer_param")
    ckpt = mp.pop("Transformer_CKPT_path", "transformer_checkpoints/best.pt")
    top = dataclasses.asdict(_build(_TopLevel, mp, f"{path}: model_param"))
    top["mask_func"] = top.pop("gamma_type")
    codes, tokens, implied_by = tokenizer.pop("implies", None) or (
        tokenizer["vqgan"].num_codebook_vectors, tokenizer["vqgan"].latent_size ** 2,
        f"the VQGAN config {tokenizer['vqgan_config_path']}")
    cfg = MaskGitConfig(
        transformer=transformer,
        transformer_ckpt_path=resolve_path(ckpt, script_dir),
        source=str(path),
        **tokenizer,
        **top,
    )
    for name, a, b in (
        ("num_codebook_vectors", cfg.num_codebook_vectors, codes),
        ("Transformer_param.num_codebook_vectors", transformer.num_codebook_vectors, codes),
        ("num_image_tokens", cfg.num_image_tokens, tokens),
        ("Transformer_param.num_image_tokens", transformer.num_image_tokens, tokens),
    ):
        if a != b:
            raise ConfigError(f"{path}: {name} is {a} but {implied_by} implies {b}")
    if transformer.num_classes < 0:
        raise ConfigError(f"{path}: Transformer_param.num_classes must be >= 0 (0 = unconditional), found "
                          f"{transformer.num_classes}")
    if not 0 <= cfg.class_dropout < 1:
        raise ConfigError(f"{path}: class_dropout must be in [0, 1), found {cfg.class_dropout}")
    if transformer.dim % transformer.num_heads:
        raise ConfigError(f"{path}: dim {transformer.dim} is not divisible by num_heads {transformer.num_heads}")
    return cfg


def _titok_tokenizer(path: Path, titok: Any, script_dir: Path, vq: Any) -> dict:
    """The tokenizer fields of a MaskGIT-on-TiTok config (``TiTok_Configs: {TiTok_config_path, TiTok_CKPT_path}``)."""
    from models.TiTok.config import load_titok_config  # here: models.TiTok imports this module

    if vq is not None:
        raise ConfigError(f"{path}: model_param has both VQ_Configs and TiTok_Configs; a MaskGIT on TiTok tokens "
                          "names its VQGAN in the TiTok config (its teacher)")
    if not isinstance(titok, dict) or not {"TiTok_config_path", "TiTok_CKPT_path"} <= set(titok):
        raise ConfigError(f"{path}: model_param.TiTok_Configs needs TiTok_config_path and TiTok_CKPT_path")
    titok_cfg_path = resolve_path(titok["TiTok_config_path"], script_dir)
    run = load_titok_config(titok_cfg_path)
    return {"vqgan": run.teacher, "vqgan_config_path": run.teacher_config_path,
            "vqgan_ckpt_path": run.teacher_ckpt_path, "titok_config_path": titok_cfg_path,
            "titok_ckpt_path": resolve_path(titok["TiTok_CKPT_path"], script_dir),
            "implies": (run.titok.codebook_size, run.titok.num_latent_tokens, f"the TiTok config {titok_cfg_path}")}


def with_tokenizer(cfg: MaskGitConfig, vqgan_ckpt: str | Path | None) -> MaskGitConfig:
    """``cfg`` with the VQGAN checkpoint of a script's ``--vqgan-ckpt`` flag (None: the config's VQ_CKPT_path).

    Every script that needs the tokenizer takes this flag, so a course that trained its own VQGAN (on its own
    photos) never falls back on the config's Fashion VQGAN by accident. The file must fit the config's VQGAN
    architecture (``VQ_config_path``); ``load_vqgan`` checks that."""
    if vqgan_ckpt is None:
        return cfg
    return dataclasses.replace(cfg, vqgan_ckpt_path=str(Path(vqgan_ckpt).resolve()))


@dataclass
class _TopLevel:
    """The top-level keys of ``model_param`` as the YAML spells them."""

    num_image_tokens: int = 256
    num_codebook_vectors: int = 512
    choice_temperature: float = 4.5
    gamma_type: str = "cosine"
    label_smoothing: float = 0.1
    class_dropout: float = 0.1
