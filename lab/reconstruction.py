"""Tokenizers side by side: the 2D VQGAN (256 tokens) against TiTok (K 1D tokens) on the test images.

    python reconstruction.py          # from this folder: the VQGAN and the shipped TiTok K = 32 and K = 64
    python reconstruction.py --titok config/TiTok_k32.yml=titok_checkpoints/k32/best.pt --limit 100

Every test image (the ground truth, no holes) is encoded and decoded back by each tokenizer; a TiTok decodes
through its teacher (TiTok's predicted code grid -> the teacher's pixel decoder), so the VQGAN row is the ceiling
of every TiTok row. Per tokenizer:
  proxy_acc    the share of the 16x16 positions where TiTok predicts the teacher's own code id (1 for the VQGAN)
  psnr, ssim   of the reconstruction against the image (scikit-image, the kit's scoring code)
  fid, kid     rFID with its 95 % half-sampling interval, and KID, against the test images (pytorch-fid features)
  encode_ms, decode_ms   time per image, measured in this run, batches of --batch-size, one tokenizer after the
                         other (the ratios compare; absolute times depend on the machine and its load)
Writes into ``--out``: results.csv, results.md (the README's table) and reconstructions.png (image, VQGAN, each
TiTok, for the first --figure-images test images).
"""
from __future__ import annotations

import argparse
import csv
import dataclasses
import io
import time
from pathlib import Path

import numpy as np
import torch

from command_line import positive_int, todo_stubs_as_errors
from maskgit_kit import atomic
from maskgit_kit.paths import CHECKPOINTS
from models.checkpoint import CheckpointError
from models.config import ConfigError, load_vqgan_config
from models.TiTok import load_titok_config
from models.TiTok.tokenizer import load_titok_tokenizer
from models.VQGAN import load_vqgan
from utils import DEFAULT_DATA_ROOT, DataError, resolve_device

HERE = Path(__file__).resolve().parent
FIELDS = ("tokenizer", "tokens", "codebook", "proxy_acc", "psnr", "ssim", "fid", "fid_lo", "fid_hi", "kid",
          "kid_std", "encode_ms", "decode_ms", "n")
DEFAULT_TITOK = [f"config/TiTok_k32.yml={CHECKPOINTS / 'titok_k32.pt'}",
                 f"config/TiTok_k64.yml={CHECKPOINTS / 'titok_k64.pt'}"]


def titok_arg(text: str) -> tuple[str, str]:
    """``CONFIG=CHECKPOINT`` of ``--titok``."""
    config, sep, ckpt = text.partition("=")
    if not sep or not config or not ckpt:
        raise argparse.ArgumentTypeError(f"expected CONFIG=CHECKPOINT (e.g. config/TiTok_k32.yml=titok_k32.pt), "
                                         f"got {text!r}")
    return config, ckpt


class VQGANTokenizer:
    """The 2D VQGAN as a tokenizer with the same three calls as a TiTok one."""

    def __init__(self, vqgan):
        self.vqgan = vqgan

    def encode(self, x):
        return self.vqgan.encode(x)[1].reshape(x.shape[0], -1)

    def decode(self, ids):
        return self.vqgan.decode_indices(ids).clamp(-1, 1)

    def codes(self, ids):
        return ids.reshape(ids.shape[0], -1)


class TiTok1D:
    """A TiTok with its teacher: ids (B, K); its predicted teacher codes (B, 256); pixels via the teacher."""

    def __init__(self, tokenizer):
        self.t = tokenizer

    def encode(self, x):
        return self.t.encode(x)[1]

    def decode(self, ids):
        return self.t.decode_indices(ids)

    def codes(self, ids):
        return self.t.titok.decode_ids(ids).reshape(ids.shape[0], -1)


def to_uint8(x: torch.Tensor) -> np.ndarray:
    return x.clamp(-1, 1).add(1).mul(127.5).round().byte().permute(0, 2, 3, 1).cpu().numpy()


@torch.inference_mode()
def reconstruct(tok, images: np.ndarray, teacher_codes: torch.Tensor | None, batch_size: int, device):
    """(uint8 reconstructions (N, H, W, 3), proxy-code accuracy, encode s, decode s) over ``images``."""
    out, correct, enc_s, dec_s = [], 0, 0.0, 0.0
    for start in range(0, len(images), batch_size):
        x = torch.from_numpy(images[start:start + batch_size]).permute(0, 3, 1, 2).float().div(127.5).sub(1)
        x = x.to(device)
        t0 = time.perf_counter()
        ids = tok.encode(x)
        t1 = time.perf_counter()
        rec = tok.decode(ids)
        t2 = time.perf_counter()
        enc_s, dec_s = enc_s + t1 - t0, dec_s + t2 - t1
        out.append(to_uint8(rec))
        if teacher_codes is not None:
            correct += (tok.codes(ids).cpu() == teacher_codes[start:start + batch_size]).sum().item()
    acc = 1.0 if teacher_codes is None else correct / teacher_codes.numel()
    return np.concatenate(out), acc, enc_s, dec_s


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="reconstruction.py", description="VQGAN vs TiTok reconstructions",
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--vqgan-config", default=str(HERE / "config" / "VQGAN.yml"))
    p.add_argument("--vqgan-ckpt", default=str(CHECKPOINTS / "vqgan.pt"), help="the 2D tokenizer (TiTok's teacher)")
    p.add_argument("--titok", nargs="*", type=titok_arg, default=[titok_arg(t) for t in DEFAULT_TITOK],
                   metavar="CONFIG=CHECKPOINT", help="TiTok tokenizers to compare (none: the VQGAN alone)")
    p.add_argument("--gt-path", default=str(DEFAULT_DATA_ROOT / "ground_truth"), help="the images to reconstruct")
    p.add_argument("--mask-path", default=str(DEFAULT_DATA_ROOT / "mask64"), help="the benchmark's masks (unused "
                   "by the metrics reported here; the scoring code reads them with the ground truth)")
    p.add_argument("--limit", type=positive_int, default=None, help="only the first N test images")
    p.add_argument("--batch-size", type=positive_int, default=64)
    p.add_argument("--figure-images", type=positive_int, default=8)
    p.add_argument("--out", default=str(HERE / "experiments" / "reconstruction"))
    p.add_argument("--device", default="auto")
    return p


def run(args) -> list[dict]:
    from maskgit_kit.scoring.fid import InceptionFeatures
    from maskgit_kit.scoring.scorer import prepare_reference, score_images
    from maskgit_kit.scoring.uncertainty import UncertaintySettings

    device = resolve_device(args.device)
    features = InceptionFeatures(dims=2048)
    ref = prepare_reference(args.gt_path, args.mask_path, features, HERE.parent / ".cache" / "fid_stats")
    images = ref.images if args.limit is None else ref.images[:args.limit]
    if args.limit is not None and args.limit < len(ref.images):  # the same subset: FID on few images is biased up
        from maskgit_kit.scoring.fid import statistics
        ref = dataclasses.replace(ref, images=images, holes=ref.holes[:args.limit],
                                  stats=statistics(features(images), keep_features=True))  # KID needs the features
    vq_cfg = load_vqgan_config(args.vqgan_config)
    vqgan = load_vqgan(vq_cfg, args.vqgan_ckpt, device)
    tokenizers = [(f"VQGAN (2D, {vq_cfg.latent_size}x{vq_cfg.latent_size})", vq_cfg.latent_size ** 2,
                   vq_cfg.num_codebook_vectors, VQGANTokenizer(vqgan))]
    for config, ckpt in args.titok:
        cfg = load_titok_config(config)
        tok, _ = load_titok_tokenizer(cfg, ckpt, device)
        tokenizers.append((f"TiTok K={cfg.titok.num_latent_tokens} ({Path(ckpt).name})", cfg.titok.num_latent_tokens,
                           cfg.titok.codebook_size, TiTok1D(tok)))
    with torch.inference_mode():
        teacher = torch.cat([VQGANTokenizer(vqgan).encode(
            torch.from_numpy(images[s:s + args.batch_size]).permute(0, 3, 1, 2).float().div(127.5).sub(1).to(device)
        ).cpu() for s in range(0, len(images), args.batch_size)])
    rows, recs = [], []
    for name, tokens, codebook, tok in tokenizers:
        rec, acc, enc_s, dec_s = reconstruct(tok, images, None if isinstance(tok, VQGANTokenizer) else teacher,
                                             args.batch_size, device)
        recs.append((name, rec))
        m = score_images(rec, ref, features, uncertainty=UncertaintySettings())
        ci, kid = m.get("fid_ci") or (None, None), m.get("kid") or {}
        rows.append({"tokenizer": name, "tokens": tokens, "codebook": codebook, "proxy_acc": round(acc, 4),
                     "psnr": round(m["psnr"], 2), "ssim": round(m["ssim"], 4), "fid": round(m["fid"], 2),
                     "fid_lo": ci[0] and round(ci[0], 2), "fid_hi": ci[1] and round(ci[1], 2),
                     "kid": kid.get("mean"), "kid_std": kid.get("std"),
                     "encode_ms": round(1000 * enc_s / len(images), 3),
                     "decode_ms": round(1000 * dec_s / len(images), 3), "n": len(images)})
        print(f"{name}: proxy-code acc {acc:.3f}  PSNR {m['psnr']:.2f}  SSIM {m['ssim']:.3f}  rFID {m['fid']:.1f}  "
              f"encode {rows[-1]['encode_ms']} ms + decode {rows[-1]['decode_ms']} ms per image", flush=True)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    write_csv(out / "results.csv", rows)
    atomic.write_text(out / "results.md", markdown(rows))
    plot(out / "reconstructions.png", images[:args.figure_images], recs)
    return rows


def write_csv(path: Path, rows: list[dict]) -> None:
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=FIELDS)
    w.writeheader()
    w.writerows(rows)
    atomic.write_text(path, buf.getvalue())


def markdown(rows: list[dict]) -> str:
    lines = ["| tokenizer | tokens | proxy-code acc | PSNR | SSIM | rFID (95 % interval) | KID x 1e3 | "
             "encode + decode ms / image |", "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        kid = "" if r["kid"] is None else f"{1000 * r['kid']:.1f} +- {1000 * (r['kid_std'] or 0):.1f}"
        ci = "" if r["fid_lo"] is None else f" ({r['fid_lo']:.1f}-{r['fid_hi']:.1f})"
        lines.append(f"| {r['tokenizer']} | {r['tokens']} | {r['proxy_acc']:.3f} | {r['psnr']:.2f} | {r['ssim']:.3f} "
                     f"| {r['fid']:.1f}{ci} | {kid} | {r['encode_ms']:.2f} + {r['decode_ms']:.2f} |")
    return "\n".join(lines) + "\n"


def plot(path: Path, images: np.ndarray, recs: list[tuple[str, np.ndarray]]) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cols = [("image", images)] + [(name.split(" (")[0], rec[:len(images)]) for name, rec in recs]
    fig, axes = plt.subplots(len(cols), len(images), figsize=(len(images) * 0.9, len(cols) * 0.95), squeeze=False)
    for r, (name, imgs) in enumerate(cols):
        for c in range(len(images)):
            ax = axes[r][c]
            ax.imshow(imgs[c])
            ax.set_xticks([]), ax.set_yticks([])
            if c == 0:
                ax.set_ylabel(name, fontsize=6)
    fig.tight_layout(pad=0.2)
    fig.savefig(path, dpi=150)
    plt.close(fig)


def main(argv=None) -> None:
    args = build_parser().parse_args(argv)
    try:
        run(args)
    except (ConfigError, DataError, CheckpointError) as exc:
        raise SystemExit(f"error: {exc}") from None


if __name__ == "__main__":
    with todo_stubs_as_errors():
        main()
