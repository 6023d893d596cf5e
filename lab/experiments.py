"""Experiments for the report: mask schedule x total iterations T x sweet spot, each scored.

    python experiments.py                       # from this folder: the full sweep (about 30 min on a 2-core CPU)
    python experiments.py --mask-funcs cosine --total-iters 8 --limit 100   # a quick look

For every (schedule, T) the test images are decoded once; the prediction after step S (the "sweet
spot", S <= T) is scored for every requested S, with and without pixel compositing, using the kit's
scoring code (FID with pytorch-fid, PSNR/SSIM with scikit-image). Writes into ``--out``:
  results.csv          one row per (schedule, T, S, composite): fid, psnr, ssim, psnr_hole, ssim_hole
  results.md           the same rows as a Markdown table (for the report or README)
  gamma_curves.png     the requested mask schedules gamma(r)
  fid_vs_T.png         FID against T per schedule (the paper's sweet-spot curve), with the FIDs given as
                       ``--reference biharmonic=36.16`` drawn as dotted lines to compare against
  decoding_steps.png   masked input, the image after each step, output and ground truth for a few images
Finished (schedule, T) runs are cached in results.jsonl, so an interrupted sweep resumes where it stopped.
Every requested schedule is checked against ``gamma_func`` before the sweep starts: the default sweep needs
only the three required ones (cosine, linear, square).
"""
from __future__ import annotations

import argparse
import csv
import hashlib
import json
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, Subset
from tqdm import tqdm

from command_line import (
    add_split_args,
    check_mask_func,
    nonnegative_float,
    nonnegative_int,
    positive_int,
    resolve_split,
    seed_int,
)
from decoding import keep_freed_memory, pad_batch, precision_context, tokenize_masked
from hole_fill import PREFILLS
from inpainting import iterative_decoding
from models.config import load_maskgit_config, with_tokenizer
from models.loading import load_maskgit
from models.sampling import image_generators
from models.VQGAN_Transformer import EXTRA_MASK_FUNCS, MASK_FUNCS, MaskGit
from utils import DEFAULT_DATA_ROOT, LoadTestData, resolve_device

HERE = Path(__file__).resolve().parent

METRIC_FIELDS = ("fid", "psnr", "ssim", "psnr_hole", "ssim_hole", "n")
CSV_FIELDS = ("mask_func", "total_iter", "sweet_spot", "composite", "prefill", "precision", *METRIC_FIELDS)


def run_key(args, mask_func: str, total_iter: int, temperature: float, ckpt_digest: str) -> str:
    """Everything a (schedule, T) result depends on, so a cached row is never reused for other settings."""
    return json.dumps([mask_func, total_iter, sorted(args.sweet_spots or []), args.composite, args.seed,
                       args.sampling, temperature, args.prefill, args.precision, args.limit,
                       args.fid_dims, ckpt_digest, str(Path(args.test_maskedimage_path).resolve()),
                       str(Path(args.test_mask_path).resolve())])


def to_uint8(x: torch.Tensor) -> np.ndarray:
    """(B, 3, H, W) in [-1, 1] -> uint8 (B, H, W, 3)."""
    return x.clamp(-1, 1).add(1).mul(127.5).round().byte().permute(0, 2, 3, 1).cpu().numpy()


@torch.no_grad()
def decode_sweet_spots(model: MaskGit, loader, total_iter: int, spots: list[int], args, temperature: float, device):
    """Inpaint every image with T = total_iter; return {S: (raw uint8, composited uint8)} for each S."""
    out = {s: ([], []) for s in spots}
    for images, pixel_masks, indices in tqdm(loader, desc=f"{model.mask_func} T={total_iter}", leave=False):
        images, pixel_masks = images.to(device), pixel_masks.to(device)
        n = images.shape[0]
        padded, padded_masks, indices, _ = pad_batch(images, pixel_masks, indices)  # the same pixels at any batch size
        z, mask = tokenize_masked(model, padded, padded_masks, args.prefill)
        with precision_context(device, args.precision):
            _, history = iterative_decoding(model, z, mask, total_iter, max(spots),
                                            generators=image_generators(indices, args.seed),
                                            choice_temperature=temperature,
                                            sample=args.sampling == "categorical")
        for s in spots:
            pred = model.decode_to_image(history[s - 1][0])[:n]
            out[s][0].append(to_uint8(pred))
            out[s][1].append(to_uint8(pixel_masks * images + (1 - pixel_masks) * pred))
    return {s: (np.concatenate(a), np.concatenate(b)) for s, (a, b) in out.items()}


def sweep(args) -> list[dict]:
    from maskgit_kit.scoring.fid import InceptionFeatures
    from maskgit_kit.scoring.scorer import Reference, prepare_reference, score_images

    cfg = with_tokenizer(load_maskgit_config(args.config), args.vqgan_ckpt)
    device = resolve_device(args.device)
    ckpt = args.load_transformer_ckpt_path or cfg.transformer_ckpt_path
    model = load_maskgit(cfg, device, transformer_ckpt=ckpt)
    for mask_func in args.mask_funcs:  # an optional schedule the student did not write fails now, not after the sweep
        check_mask_func(model, mask_func, "--mask-funcs")
    temperature = cfg.choice_temperature if args.choice_temperature is None else args.choice_temperature
    # both checkpoints decide the images: a re-trained VQGAN decoder must not be served the old rows
    digest = hashlib.sha1(Path(ckpt).read_bytes() + Path(cfg.vqgan_ckpt_path).read_bytes()).hexdigest()[:12]

    dataset = LoadTestData(args.test_maskedimage_path, args.test_mask_path)
    if args.limit:
        dataset = Subset(dataset, range(min(args.limit, len(dataset))))
    loader = DataLoader(dataset, batch_size=args.batch_size, shuffle=False)
    features = InceptionFeatures(dims=args.fid_dims)
    ref = prepare_reference(args.gt_path, args.mask_path, features, HERE.parent / ".cache" / "fid_stats")
    if args.limit:  # score against the same subset of the ground truth (FID on few images is biased upward)
        n = len(dataset)
        ref = Reference(ref.gt_dir, ref.mask_dir, ref.bench, ref.images[:n], ref.holes[:n],
                        _subset_stats(features, ref.images[:n]), ref.key, False, ref.seconds)

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    cache_path = out / "results.jsonl"
    done = {}
    if cache_path.is_file():
        for line in cache_path.read_text().splitlines():
            entry = json.loads(line)
            done[entry["key"]] = entry["rows"]

    rows = []
    combos = [(m, t) for m in args.mask_funcs for t in args.total_iters]
    for mask_func, total_iter in tqdm(combos, desc="sweep"):
        key = run_key(args, mask_func, total_iter, temperature, digest)
        if key not in done:
            model.mask_func = mask_func
            spots = sorted({s for s in (args.sweet_spots or [total_iter]) if s <= total_iter} | {total_iter})
            decoded = decode_sweet_spots(model, loader, total_iter, spots, args, temperature, device)
            new_rows = []
            for s, (raw, composited) in decoded.items():
                for composite, pred in (("off", raw), ("on", composited)):
                    if args.composite not in ("both", composite):
                        continue
                    metrics = score_images(pred, ref, features)
                    new_rows.append({"mask_func": mask_func, "total_iter": total_iter, "sweet_spot": s,
                                     "composite": composite, "prefill": args.prefill,
                                     "precision": args.precision, **{k: metrics[k] for k in METRIC_FIELDS}})
            with cache_path.open("a") as f:  # one complete line per finished run: safe to interrupt
                f.write(json.dumps({"key": key, "rows": new_rows}) + "\n")
            done[key] = new_rows
        rows.extend(done[key])
    write_csv(out / "results.csv", rows)
    write_markdown(out / "results.md", rows)
    plot_gamma_curves(model, out / "gamma_curves.png", args.mask_funcs)
    plot_fid_vs_t(rows, out / "fid_vs_T.png", args.reference)
    plot_decoding_steps(model, dataset, ref, args, temperature, device, out / "decoding_steps.png")
    return rows


def _subset_stats(features, images):
    from maskgit_kit.scoring.fid import statistics
    return statistics(features(images))


def write_csv(path: Path, rows: list[dict]) -> None:
    tmp = path.with_suffix(".tmp")
    with tmp.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=CSV_FIELDS)
        writer.writeheader()
        for r in rows:
            writer.writerow({k: (round(v, 4) if isinstance(v, float) else v) for k, v in r.items()})
    tmp.replace(path)


def write_markdown(path: Path, rows: list[dict]) -> None:
    """The rows as a Markdown table, composited runs after the raw ones, then by schedule and T."""
    lines = ["| schedule | T | sweet spot | composite | precision | FID | PSNR | SSIM | PSNR hole | SSIM hole |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    order = {m: i for i, m in enumerate(MASK_FUNCS + EXTRA_MASK_FUNCS)}
    for r in sorted(rows, key=lambda r: (r["composite"], order.get(r["mask_func"], 99), r["total_iter"],
                                         r["sweet_spot"])):
        lines.append(f"| {r['mask_func']} | {r['total_iter']} | {r['sweet_spot']} | {r['composite']} | "
                     f"{r.get('precision', '?')} | "
                     f"{r['fid']:.1f} | {r['psnr']:.2f} | {r['ssim']:.3f} | {r['psnr_hole']:.2f} | "
                     f"{r['ssim_hole']:.3f} |")
    tmp = path.with_suffix(".tmp")
    tmp.write_text("\n".join(lines) + "\n")
    tmp.replace(path)


def plot_gamma_curves(model: MaskGit, path: Path, modes=MASK_FUNCS) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    r = torch.linspace(0, 1, 201)
    fig, ax = plt.subplots(figsize=(5, 3.5))
    for mode in dict.fromkeys(modes):
        gamma = model.gamma_func(mode)  # takes a float r (the contract): one call per point
        ax.plot(r.numpy(), [float(gamma(x)) for x in r.tolist()], label=mode)
    ax.set_xlabel("ratio r = (t + 1) / T")
    ax.set_ylabel("gamma(r): fraction still masked")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def plot_fid_vs_t(rows: list[dict], path: Path, references: list[tuple[str, float]] = ()) -> list[str]:
    """FID against T, a solid line per schedule (dashed: composited) and a dotted one per reference
    (a baseline's FID does not depend on T). Returns the legend labels, in drawing order."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 3.5))
    for i, mode in enumerate(dict.fromkeys(r["mask_func"] for r in rows)):
        for composite, style in (("off", "-"), ("on", "--")):
            pts = sorted((r["total_iter"], r["fid"]) for r in rows if r["mask_func"] == mode
                         and r["composite"] == composite and r["sweet_spot"] == r["total_iter"])
            if pts:
                ax.plot([p[0] for p in pts], [p[1] for p in pts], style, marker="o", color=f"C{i}",
                        label=f"{mode}{' (composited)' if composite == 'on' else ''}")
    for j, (label, fid) in enumerate(references):
        ax.axhline(fid, linestyle=":", color=f"{0.2 + 0.25 * (j % 3):.2f}", label=f"{label} ({fid:.1f})")
    ax.set_xlabel("total iterations T")
    ax.set_ylabel("FID (lower is better)")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return [line.get_label() for line in ax.get_lines()]


@torch.no_grad()
def plot_decoding_steps(model: MaskGit, dataset, ref, args, temperature: float, device, path: Path,
                        n_images: int = 4) -> None:
    """Rows: test images; columns: masked input, the image after each step (cosine, T = 8; tokens still
    masked after the step drawn gray, so the holes visibly fill in), the composited output, ground truth."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    total_iter = 8
    model.mask_func = "cosine"
    n_images = min(n_images, len(dataset))
    items = [dataset[i] for i in range(n_images)]
    images = torch.stack([it[0] for it in items]).to(device)
    pixel_masks = torch.stack([it[1] for it in items]).to(device)
    indices = [it[2] for it in items]
    h = model.cfg.vqgan.latent_size
    z, mask = tokenize_masked(model, images, pixel_masks, args.prefill)
    _, history = iterative_decoding(model, z, mask, total_iter, generators=image_generators(indices, args.seed),
                                    choice_temperature=temperature, sample=args.sampling == "categorical")
    side = images.shape[-1]
    steps = []
    for zs, still_masked in history:
        img = model.decode_to_image(zs)
        gray = F.interpolate(still_masked.view(-1, 1, h, h).float(), size=(side, side), mode="nearest")
        steps.append(to_uint8(img * (1 - gray)))  # 0 = mid-gray in [-1, 1]
    final = model.decode_to_image(history[-1][0])
    composited = to_uint8(pixel_masks * images + (1 - pixel_masks) * final)
    cols = [to_uint8(images)] + steps + [composited, ref.images[:n_images]]
    titles = (["masked"] + [f"step {t + 1}" for t in range(total_iter - 1)] + [f"step {total_iter} = output",
              "composited", "ground truth"])
    fig, axes = plt.subplots(n_images, len(cols), figsize=(len(cols) * 0.9, n_images * 0.95),
                             squeeze=False)
    for i in range(n_images):
        for j, col in enumerate(cols):
            ax = axes[i, j]
            ax.imshow(col[i])
            ax.set_xticks([])
            ax.set_yticks([])
            if i == 0:
                ax.set_title(titles[j], fontsize=6)
    fig.tight_layout(pad=0.2)
    fig.savefig(path, dpi=150)
    plt.close(fig)


def reference_fid(text: str) -> tuple[str, float]:
    """``LABEL=FID`` (e.g. ``biharmonic=36.16``) for ``--reference``."""
    label, _, value = text.rpartition("=")
    try:
        if label:
            return label, float(value)
    except ValueError:
        pass
    raise argparse.ArgumentTypeError(f"expected LABEL=FID such as biharmonic=36.16, got {text!r}")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description="Sweep mask schedule x T x sweet spot and score each",
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--config", default=str(HERE / "config" / "MaskGit.yml"))
    p.add_argument("--load-transformer-ckpt-path", default=None, help="default: the config's")
    p.add_argument("--vqgan-ckpt", default=None, help="the tokenizer the transformer was trained on (default: the "
                                                      "config's VQ_CKPT_path)")
    p.add_argument("--mask-funcs", nargs="+", choices=MASK_FUNCS + EXTRA_MASK_FUNCS, default=list(MASK_FUNCS),
                   help=f"schedules to sweep; {', '.join(EXTRA_MASK_FUNCS)} are optional extras of gamma_func")
    p.add_argument("--total-iters", nargs="+", type=positive_int, default=[1, 2, 4, 8, 12, 16])
    p.add_argument("--sweet-spots", nargs="+", type=positive_int, default=None,
                   help="also score the prediction after these steps (each run always scores S = T)")
    add_split_args(p)
    p.add_argument("--gt-path", default=str(DEFAULT_DATA_ROOT / "ground_truth"))
    p.add_argument("--mask-path", default=None, help="masks for the hole metrics (default: the test masks)")
    p.add_argument("--out", default=str(HERE / "experiments"))
    p.add_argument("--composite", choices=("off", "on", "both"), default="both",
                   help="score the raw decoder output, the output with the known pixels copied in, or both")
    p.add_argument("--reference", nargs="+", type=reference_fid, default=[], metavar="LABEL=FID",
                   help="FIDs to draw as horizontal lines in fid_vs_T.png (maskgit-baselines prints them)")
    p.add_argument("--limit", type=nonnegative_int, default=0, help="only the first N test images (0 = all)")
    # the feature sizes of pytorch-fid's InceptionV3 (maskgit_kit.scoring.fid.FID_DIMS, imported only by sweep())
    p.add_argument("--fid-dims", type=int, choices=(64, 192, 768, 2048), default=2048)
    p.add_argument("--choice-temperature", type=nonnegative_float, default=None,
                   help="confidence noise (default: config's)")
    p.add_argument("--sampling", choices=("argmax", "categorical"), default="argmax")
    p.add_argument("--prefill", choices=PREFILLS, default="laplace", help="hole fill before tokenizing")
    p.add_argument("--batch-size", type=positive_int, default=64)
    p.add_argument("--precision", choices=("fp32", "bf16"), default="fp32")
    p.add_argument("--device", default="auto")
    p.add_argument("--seed", type=seed_int, default=0)
    return p


def main(argv=None) -> None:
    args = build_parser().parse_args(argv)
    resolve_split(args)
    args.mask_path = args.mask_path or args.test_mask_path
    keep_freed_memory()  # as inpainting.py does: about 2x faster decoding on a small CPU
    rows = sweep(args)
    print(f"{'schedule':8} {'T':>3} {'S':>3} {'comp':>4} {'FID':>7} {'PSNR':>6} {'SSIM':>6} {'PSNR hole':>9}")
    for r in rows:
        print(f"{r['mask_func']:8} {r['total_iter']:>3} {r['sweet_spot']:>3} {r['composite']:>4} {r['fid']:7.2f} "
              f"{r['psnr']:6.2f} {r['ssim']:6.3f} {r['psnr_hole']:9.2f}")
    print(f"wrote {args.out}/results.csv and figures")


if __name__ == "__main__":
    main()
