"""Experiments for the report: mask schedule x total iterations T x sweet spot, each scored.

    python experiments.py                       # from this folder: the full sweep (about 30 min on a 2-core CPU)
    python experiments.py --mask-funcs cosine --total-iters 8 --limit 100   # a quick look
    python experiments.py --split generation --class test none --guidance 1 2 --out experiments/generation

For every (schedule, T) the test images are decoded once; the prediction after step S (the "sweet
spot", S <= T) is scored for every requested S, with and without pixel compositing, using the kit's
scoring code (FID with pytorch-fid and its 95 % half-sampling interval, KID, PSNR/SSIM with scikit-image).
A class-conditional model (``--config config/MaskGit_class.yml``) decodes through ``guided_decoding`` (TODO4) for
every ``--class`` mode (``test``: each image's own class, ``none``: unconditional, or one class by id or name) and
every ``--guidance`` scale; conditioned rows also get the accuracy of the kit's Fashion-MNIST classifier on the
outputs (``--classifier``; the column stays empty, with a note, when its checkpoint is absent). The
``generation`` split hides every pixel: its rows are generation from nothing (compositing does not apply).
Writes into ``--out``:
  results.csv          one row per (class mode, guidance, schedule, T, S, composite): fid, fid_lo, fid_hi, kid,
                       psnr, ssim, psnr_hole, ssim_hole, accuracy, seconds (decoding time of the run)
  results.md           the same rows as a Markdown table (for the report or README)
  gamma_curves.png     the requested mask schedules gamma(r)
  fid_vs_T.png         FID against T per schedule (the paper's sweet-spot curve), with the FIDs given as
                       ``--reference biharmonic=36.16`` drawn as dotted lines to compare against, and the
                       real-vs-real floor (``--floor``); one panel per (class mode, guidance) of the sweep
  decoding_steps.png   masked input, the image after each step, output and ground truth for a few images
                       (generation: the all-gray input, each step, the output)
  class_grid.png       class-conditional models: ``--class-grid`` generated samples per class, a row per class
Finished (schedule, T) runs are cached in results.jsonl, so an interrupted sweep resumes where it stopped.
Every requested schedule is checked against ``gamma_func`` before the sweep starts: the default sweep needs
only the three required ones (cosine, linear, square).
"""
from __future__ import annotations

import argparse
import csv
import hashlib
import json
import time
from dataclasses import dataclass
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
    resolve_labels,
    resolve_split,
    seed_int,
)
from decoding import DecodeSettings, decode_tokens, keep_freed_memory, pad_batch, tokenize_masked
from hole_fill import PREFILLS
from inpainting import guided_decoding, iterative_decoding
from maskgit_kit.class_labels import class_names, locate
from maskgit_kit.paths import CHECKPOINTS
from models.config import load_maskgit_config, with_tokenizer
from models.loading import load_maskgit
from models.sampling import image_generators
from models.VQGAN_Transformer import EXTRA_MASK_FUNCS, MASK_FUNCS, NO_CLASS, MaskGit
from utils import DEFAULT_DATA_ROOT, DataError, LoadTestData, resolve_device

HERE = Path(__file__).resolve().parent

# maskgit_kit.scoring.uncertainty.REAL_VS_REAL_FID / _N (imported only by sweep(), with the rest of the scoring)
REAL_VS_REAL_FID, REAL_VS_REAL_N = 29.9, 747
FLOOR_LABEL = "real vs real (two disjoint sets of {n} test images)"

CLASS_FIELDS = ("class_mode", "guidance", "guidance_ramp")
METRIC_FIELDS = ("fid", "fid_lo", "fid_hi", "kid", "kid_std", "psnr", "ssim", "psnr_hole", "ssim_hole", "n")
ACCURACY_FIELDS = ("accuracy", "accuracy_lo", "accuracy_hi")
CSV_FIELDS = ("mask_func", "total_iter", "sweet_spot", "composite", "prefill", "precision", *CLASS_FIELDS,
              *METRIC_FIELDS, *ACCURACY_FIELDS, "seconds")


@dataclass(frozen=True)
class Condition:
    """One class mode of the sweep at one guidance scale: what a class-conditional model decodes with."""

    mode: str                   # "none" (unconditional: also every row of an unconditional model), "test", a name
    labels: list[int] | None    # one label per image (NO_CLASS for none); None: the model takes no labels
    guidance: float = 1.0
    ramp: bool = False

    @property
    def conditioned(self) -> bool:
        return self.labels is not None and any(v != NO_CLASS for v in self.labels)

    @property
    def title(self) -> str:
        if not self.conditioned:
            return "unconditional" if self.labels is not None else ""
        ramp = ", ramped" if self.ramp else ""
        return f"class {self.mode}, guidance {self.guidance:g}{ramp}"


def conditions(args, model: MaskGit, count: int) -> list[Condition]:
    """Every (class mode, guidance) of the flags, checked now (an unknown class, a class or guidance for an
    unconditional model: one error naming the flag). Unconditional decoding does not depend on the guidance
    (both halves of the guided logits are the "no class" ones), so "none" is decoded once, at guidance 1."""
    out = []
    for mode in dict.fromkeys(args.class_modes):
        for g in dict.fromkeys(args.guidance):
            one = argparse.Namespace(class_label=mode, guidance=g, guidance_ramp=args.guidance_ramp,
                                     test_maskedimage_path=args.test_maskedimage_path)
            labels = resolve_labels(one, model, count)
            if labels is None or all(v == NO_CLASS for v in labels):
                cond = Condition("none", labels)
            else:
                name = mode if mode == "test" else _class_name(args, labels[0])
                cond = Condition(name, labels, float(g), bool(args.guidance_ramp))
            if cond not in out:
                out.append(cond)
    return out


def _class_name(args, label: int) -> str:
    try:
        return class_names(locate(args.test_maskedimage_path)[0])[label]
    except (DataError, IndexError):
        return str(label)


def run_key(args, mask_func: str, total_iter: int, temperature: float, ckpt_digest: str,
            cond: Condition | None = None, classifier_digest: str = "none") -> str:
    """Everything a (schedule, T) result depends on, so a cached row is never reused for other settings."""
    cond = cond or Condition("none", None)
    labels = hashlib.sha1(json.dumps(cond.labels).encode()).hexdigest()[:12]
    return json.dumps([mask_func, total_iter, sorted(args.sweet_spots or []), args.composite, args.seed,
                       args.sampling, temperature, args.prefill, args.precision, args.limit,
                       args.fid_dims, ckpt_digest, str(Path(args.test_maskedimage_path).resolve()),
                       str(Path(args.test_mask_path).resolve()), str(Path(args.config).resolve()),
                       cond.mode, labels, cond.guidance, cond.ramp, args.uncertainty, classifier_digest])


def to_uint8(x: torch.Tensor) -> np.ndarray:
    """(B, 3, H, W) in [-1, 1] -> uint8 (B, H, W, 3)."""
    return x.clamp(-1, 1).add(1).mul(127.5).round().byte().permute(0, 2, 3, 1).cpu().numpy()


def decode_settings(args, temperature: float, total_iter: int, cond: Condition) -> DecodeSettings:
    return DecodeSettings(choice_temperature=float(temperature), total_iter=total_iter,
                          sample=args.sampling == "categorical", prefill=args.prefill, precision=args.precision,
                          save_steps=False, seed=args.seed, guidance=cond.guidance, guidance_ramp=cond.ramp)


def tokens_of(model: MaskGit, images, pixel_masks, prefill: str):
    """``tokenize_masked``, except for a batch with every pixel hidden (generation): every token is masked and
    its ids are ignored, so the (slow, there pointless) hole prefill and the encoder are skipped."""
    if pixel_masks.any():
        return tokenize_masked(model, images, pixel_masks, prefill)
    z = torch.zeros(images.shape[0], model.num_image_tokens, dtype=torch.int64, device=images.device)
    return z, torch.ones_like(z, dtype=torch.bool)


@torch.no_grad()
def decode_sweet_spots(model: MaskGit, loader, total_iter: int, spots: list[int], args, temperature: float, device,
                       cond: Condition | None = None, tokens: dict | None = None):
    """Inpaint every image with T = total_iter (through ``decoding.decode_tokens``: ``guided_decoding`` with the
    condition's labels for a class-conditional model); return {S: (raw uint8, composited uint8)} for each S.

    ``tokens``: a dict kept across the runs of a sweep, batch number -> (token ids, token mask): the tokens of the
    masked images do not depend on the schedule, T or the class, and the hole prefill before encoding is slow for
    large holes (about 2 s per image of the box split on 2 CPU cores), so each batch is tokenized once."""
    cond = cond or Condition("none", None)
    settings = decode_settings(args, temperature, total_iter, cond)
    out = {s: ([], []) for s in spots}
    done = 0  # the loader is not shuffled: the labels follow the images by position
    tokens = {} if tokens is None else tokens
    for b, (images, pixel_masks, indices) in enumerate(tqdm(loader, desc=f"{model.mask_func} T={total_iter}",
                                                            leave=False)):
        images, pixel_masks = images.to(device), pixel_masks.to(device)
        n = images.shape[0]
        labels = None if cond.labels is None else cond.labels[done:done + n]
        done += n
        # the same pixels at any batch size
        padded, padded_masks, indices, _, labels = pad_batch(images, pixel_masks, indices, labels or [NO_CLASS] * n)
        if b not in tokens:
            tokens[b] = tokens_of(model, padded, padded_masks, args.prefill)
        z, mask = tokens[b]
        _, history = decode_tokens(model, z, mask, image_generators(indices, args.seed), settings,
                                   iterative_decoding, max(spots), torch.tensor(labels), guided_decoding)
        for s in spots:
            pred = model.decode_to_image(history[s - 1][0])[:n]
            out[s][0].append(to_uint8(pred))
            out[s][1].append(to_uint8(pixel_masks * images + (1 - pixel_masks) * pred))
    return {s: (np.concatenate(a), np.concatenate(b)) for s, (a, b) in out.items()}


def hides_everything(dataset) -> bool:
    """True when every mask hides the whole image (the generation split): compositing then changes nothing."""
    return all(not bool(mask.any()) for _, mask, _ in DataLoader(dataset, batch_size=256))


class Accuracy:
    """The kit's Fashion-MNIST classifier on conditioned outputs (``maskgit_kit.scoring.classifier``), loaded on
    first use; ``None`` columns and one note when its checkpoint (or the module) is absent."""

    def __init__(self, path: str | Path, device):
        self.path, self.device, self.model, self.note = Path(path), device, None, None
        if not self.path.is_file():
            self.note = f"no classifier checkpoint at {self.path}: the accuracy column is left empty"
        else:
            try:
                from maskgit_kit.scoring import classifier  # noqa: F401
            except ImportError as exc:
                self.note = f"no classifier module ({exc}): the accuracy column is left empty"

    @property
    def digest(self) -> str:
        return "none" if self.note else hashlib.sha1(self.path.read_bytes()).hexdigest()[:12]

    def __call__(self, images: np.ndarray, cond: Condition) -> dict:
        empty = dict.fromkeys(ACCURACY_FIELDS)
        if self.note or not cond.conditioned:
            return empty
        from maskgit_kit.scoring.classifier import class_accuracy, load_classifier
        if self.model is None:
            self.model = load_classifier(self.path, device=self.device)
        result = class_accuracy(self.model, images, np.asarray(cond.labels[:len(images)]))
        ci = result.get("ci95")
        lo, hi = (ci if isinstance(ci, (list, tuple)) and len(ci) == 2 else (None, None))
        return {"accuracy": float(result["accuracy"]), "accuracy_lo": lo, "accuracy_hi": hi}


def uncertainty_fields(metrics: dict) -> dict:
    """FID's interval and KID out of ``score_images``' result (None where it skipped them: too few images)."""
    ci, kid = metrics.get("fid_ci"), metrics.get("kid") or {}
    return {"fid_lo": ci[0] if ci else None, "fid_hi": ci[1] if ci else None,
            "kid": kid.get("mean"), "kid_std": kid.get("std")}


def sweep(args) -> list[dict]:
    from maskgit_kit.scoring.fid import InceptionFeatures
    from maskgit_kit.scoring.scorer import Reference, prepare_reference, score_images
    from maskgit_kit.scoring.uncertainty import UncertaintySettings

    cfg = with_tokenizer(load_maskgit_config(args.config), args.vqgan_ckpt)
    device = resolve_device(args.device)
    ckpt = None if args.random_init else args.load_transformer_ckpt_path or cfg.transformer_ckpt_path
    torch.manual_seed(args.seed)  # --random-init: the same random weights every run
    model = load_maskgit(cfg, device, transformer_ckpt=ckpt)
    for mask_func in args.mask_funcs:  # an optional schedule the student did not write fails now, not after the sweep
        check_mask_func(model, mask_func, "--mask-funcs")
    temperature = cfg.choice_temperature if args.choice_temperature is None else args.choice_temperature
    # both checkpoints decide the images: a re-trained VQGAN decoder must not be served the old rows
    weights = Path(ckpt).read_bytes() if ckpt else f"random seed {args.seed}".encode()
    tokenizer = Path(cfg.vqgan_ckpt_path).read_bytes() + (Path(cfg.titok_ckpt_path).read_bytes()
                                                           if cfg.titok_ckpt_path else b"")
    digest = hashlib.sha1(weights + tokenizer).hexdigest()[:12]

    dataset = LoadTestData(args.test_maskedimage_path, args.test_mask_path)
    if args.limit:
        dataset = Subset(dataset, range(min(args.limit, len(dataset))))
    conds = conditions(args, model, len(dataset))  # a bad --class or --guidance fails before any work
    generation = hides_everything(dataset)
    composite = "off" if generation else args.composite
    if generation and args.composite != "off":
        print("note: every pixel is hidden (generation): compositing changes nothing, only raw rows are scored")
    accuracy = Accuracy(args.classifier, device)
    if accuracy.note and any(c.conditioned for c in conds):
        print(f"note: {accuracy.note}")
    loader = DataLoader(dataset, batch_size=args.batch_size, shuffle=False)
    features = InceptionFeatures(dims=args.fid_dims)
    ref = prepare_reference(args.gt_path, args.mask_path, features, HERE.parent / ".cache" / "fid_stats")
    if args.limit:  # score against the same subset of the ground truth (FID on few images is biased upward)
        n = len(dataset)
        ref = Reference(ref.gt_dir, ref.mask_dir, ref.bench, ref.images[:n], ref.holes[:n],
                        _subset_stats(features, ref.images[:n]), ref.key, False, ref.seconds)
    uncertainty = UncertaintySettings(replicates=args.fid_replicates) if args.uncertainty else None

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    cache_path = out / "results.jsonl"
    done = {}
    if cache_path.is_file():
        for line in cache_path.read_text().splitlines():
            entry = json.loads(line)
            done[entry["key"]] = entry["rows"]

    rows, tokens = [], {}
    combos = [(c, m, t) for c in conds for m in args.mask_funcs for t in args.total_iters]
    for cond, mask_func, total_iter in tqdm(combos, desc="sweep"):
        key = run_key(args, mask_func, total_iter, temperature, digest, cond, accuracy.digest)
        if key not in done:
            model.mask_func = mask_func
            spots = sorted({s for s in (args.sweet_spots or [total_iter]) if s <= total_iter} | {total_iter})
            start = time.perf_counter()
            decoded = decode_sweet_spots(model, loader, total_iter, spots, args, temperature, device, cond, tokens)
            seconds = time.perf_counter() - start
            new_rows = []
            for s, (raw, composited) in decoded.items():
                for comp, pred in (("off", raw), ("on", composited)):
                    if composite not in ("both", comp):
                        continue
                    metrics = score_images(pred, ref, features, uncertainty=uncertainty)
                    new_rows.append({"mask_func": mask_func, "total_iter": total_iter, "sweet_spot": s,
                                     "composite": comp, "prefill": args.prefill, "precision": args.precision,
                                     "class_mode": cond.mode, "guidance": cond.guidance,
                                     "guidance_ramp": cond.ramp, **dict.fromkeys(METRIC_FIELDS),
                                     **{k: metrics[k] for k in METRIC_FIELDS if k in metrics},
                                     **uncertainty_fields(metrics), **accuracy(pred, cond),
                                     "seconds": round(seconds, 2)})
            with cache_path.open("a") as f:  # one complete line per finished run: safe to interrupt
                f.write(json.dumps({"key": key, "rows": new_rows}) + "\n")
            done[key] = new_rows
        rows.extend(done[key])
    write_csv(out / "results.csv", rows)
    write_markdown(out / "results.md", rows)
    plot_gamma_curves(model, out / "gamma_curves.png", args.mask_funcs)
    plot_fid_vs_t(rows, out / "fid_vs_T.png", args.reference, args.floor or None, args.floor_images)
    plot_decoding_steps(model, dataset, ref, args, temperature, device, out / "decoding_steps.png", cond=conds[0],
                        generation=generation)
    if model.num_classes and args.class_grid:
        grid_cond = next((c for c in conds if c.conditioned), Condition("test", [], args.guidance[0],
                                                                        args.guidance_ramp))
        plot_class_grid(model, _grid_names(args, model.num_classes), args, temperature, device,
                        out / "class_grid.png", grid_cond, samples=args.class_grid)
    return rows


def _grid_names(args, count: int) -> list[str]:
    try:
        names = class_names(locate(args.test_maskedimage_path)[0])
    except DataError:
        names = []
    return names if len(names) == count else [f"class {i}" for i in range(count)]


def _subset_stats(features, images):
    from maskgit_kit.scoring.fid import statistics
    return statistics(features(images), keep_features=True)  # KID needs the features


def write_csv(path: Path, rows: list[dict]) -> None:
    tmp = path.with_suffix(".tmp")
    with tmp.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=CSV_FIELDS, extrasaction="ignore")
        writer.writeheader()
        for r in rows:
            writer.writerow({k: (round(v, 4) if isinstance(v, float) else v) for k, v in r.items()})
    tmp.replace(path)


def _num(value, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def write_markdown(path: Path, rows: list[dict]) -> None:
    """The rows as a Markdown table, composited runs after the raw ones, then by class mode, guidance, schedule, T."""
    lines = ["| schedule | T | sweet spot | composite | precision | class | guidance | FID | FID 95 % | KID x 1000 | "
             "PSNR | SSIM | PSNR hole | SSIM hole | accuracy |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    order = {m: i for i, m in enumerate(MASK_FUNCS + EXTRA_MASK_FUNCS)}
    for r in sorted(rows, key=lambda r: (r["composite"], r.get("class_mode", "none"), r.get("guidance", 1.0),
                                         r.get("guidance_ramp", False), order.get(r["mask_func"], 99),
                                         r["total_iter"], r["sweet_spot"])):
        ci = (f"{r['fid_lo']:.1f}-{r['fid_hi']:.1f}" if r.get("fid_lo") is not None else "-")
        kid = _num(None if r.get("kid") is None else 1000 * r["kid"], ".2f")
        guidance = f"{r.get('guidance', 1.0):g}{' ramp' if r.get('guidance_ramp') else ''}"
        lines.append(f"| {r['mask_func']} | {r['total_iter']} | {r['sweet_spot']} | {r['composite']} | "
                     f"{r.get('precision', '?')} | {r.get('class_mode', 'none')} | {guidance} | "
                     f"{r['fid']:.1f} | {ci} | {kid} | {r['psnr']:.2f} | {r['ssim']:.3f} | {r['psnr_hole']:.2f} | "
                     f"{r['ssim_hole']:.3f} | {_num(r.get('accuracy'), '.3f')} |")
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


def panel_title(row: dict) -> str:
    """The fid_vs_T.png panel of a row: its class mode and guidance ("unconditional" for class mode none)."""
    mode = row.get("class_mode", "none")
    if mode == "none":
        return "unconditional"
    return f"class {mode}, guidance {row.get('guidance', 1.0):g}{', ramped' if row.get('guidance_ramp') else ''}"


def plot_fid_vs_t(rows: list[dict], path: Path, references: list[tuple[str, float]] = (),
                  floor: float | None = None, floor_images: int = REAL_VS_REAL_N) -> dict[str, list[str]]:
    """FID against T, a solid line per schedule (dashed: composited), a dotted one per reference (a baseline's FID
    does not depend on T) and a dash-dotted one at ``floor`` (real vs real). One panel per (class mode, guidance)
    when the rows have several. Returns {panel title: legend labels in drawing order} ("" for a single panel)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    titles = list(dict.fromkeys(panel_title(r) for r in rows)) or ["unconditional"]
    single = len(titles) == 1
    fig, axes = plt.subplots(1, len(titles), figsize=(5 if single else 4 * len(titles), 3.5), sharey=True,
                             squeeze=False)
    labels = {}
    for ax, title in zip(axes[0], titles, strict=True):
        panel = [r for r in rows if panel_title(r) == title]
        for i, mode in enumerate(dict.fromkeys(r["mask_func"] for r in panel)):
            for composite, style in (("off", "-"), ("on", "--")):
                pts = sorted((r["total_iter"], r["fid"]) for r in panel if r["mask_func"] == mode
                             and r["composite"] == composite and r["sweet_spot"] == r["total_iter"])
                if pts:
                    ax.plot([p[0] for p in pts], [p[1] for p in pts], style, marker="o", color=f"C{i}",
                            label=f"{mode}{' (composited)' if composite == 'on' else ''}")
        for j, (label, fid) in enumerate(references):
            ax.axhline(fid, linestyle=":", color=f"{0.2 + 0.25 * (j % 3):.2f}", label=f"{label} ({fid:.1f})")
        if floor is not None:
            ax.axhline(floor, linestyle="-.", color="k", linewidth=0.8, label=FLOOR_LABEL.format(n=floor_images))
        ax.set_xlabel("total iterations T")
        if not single:
            ax.set_title(title, fontsize=8)
        ax.legend(fontsize=6)
        labels["" if single else title] = [line.get_label() for line in ax.get_lines()]
    axes[0, 0].set_ylabel("FID (lower is better)")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return labels


def _show(axes, cols, titles, row_labels=None, fontsize=6):
    for i in range(axes.shape[0]):
        for j, col in enumerate(cols):
            ax = axes[i, j]
            ax.imshow(col[i])
            ax.set_xticks([])
            ax.set_yticks([])
            if i == 0 and titles:
                ax.set_title(titles[j], fontsize=fontsize)
        if row_labels:
            axes[i, 0].set_ylabel(row_labels[i], fontsize=fontsize, rotation=0, ha="right", va="center")


@torch.no_grad()
def plot_decoding_steps(model: MaskGit, dataset, ref, args, temperature: float, device, path: Path,
                        n_images: int = 4, cond: Condition | None = None, generation: bool = False) -> None:
    """Rows: test images; columns: masked input, the image after each step (cosine, T = 8; tokens still
    masked after the step drawn gray, so the holes visibly fill in), the composited output, ground truth.
    Generation (every pixel hidden): the all-gray input, each step and the output only."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cond = cond or Condition("none", None)
    total_iter = 8
    model.mask_func = "cosine"
    n_images = min(n_images, len(dataset))
    items = [dataset[i] for i in range(n_images)]
    images = torch.stack([it[0] for it in items]).to(device)
    pixel_masks = torch.stack([it[1] for it in items]).to(device)
    indices = [it[2] for it in items]
    labels = torch.tensor(cond.labels[:n_images] if cond.labels is not None else [NO_CLASS] * n_images)
    h = model.cfg.token_grid  # None: TiTok's 1D tokens are no place in the image, nothing is grayed
    z, mask = tokens_of(model, images, pixel_masks, args.prefill)
    _, history = decode_tokens(model, z, mask, image_generators(indices, args.seed),
                               decode_settings(args, temperature, total_iter, cond), iterative_decoding,
                               labels=labels, guided_decoding=guided_decoding)
    side = images.shape[-1]
    steps = []
    for zs, still_masked in history:
        img = model.decode_to_image(zs)
        if h is not None:
            gray = F.interpolate(still_masked.view(-1, 1, h, h).float(), size=(side, side), mode="nearest")
            img = img * (1 - gray)  # 0 = mid-gray in [-1, 1]
        steps.append(to_uint8(img))
    final = model.decode_to_image(history[-1][0])
    cols = [to_uint8(images)] + steps
    titles = ["all masked" if generation else "masked"] + [f"step {t + 1}" for t in range(total_iter - 1)]
    titles.append(f"step {total_iter} = output")
    if not generation:
        cols += [to_uint8(pixel_masks * images + (1 - pixel_masks) * final), ref.images[:n_images]]
        titles += ["composited", "ground truth"]
    fig, axes = plt.subplots(n_images, len(cols), figsize=(len(cols) * 0.9, n_images * 0.95 + 0.2), squeeze=False)
    _show(axes, cols, titles)
    if cond.title:
        fig.suptitle(cond.title, fontsize=7)
    fig.tight_layout(pad=0.2, rect=(0, 0, 1, 0.96 if cond.title else 1))
    fig.savefig(path, dpi=150)
    plt.close(fig)


@torch.no_grad()
def generate(model: MaskGit, labels: list[int], settings: DecodeSettings, device, batch_size: int = 64,
             first_index: int = 0) -> np.ndarray:
    """uint8 (len(labels), H, W, 3): images generated from nothing (every token masked), image i seeded with index
    ``first_index + i``, through ``decode_tokens`` (``guided_decoding`` for a class-conditional model)."""
    out = []
    n_tokens = model.num_image_tokens
    for s in range(0, len(labels), batch_size):
        part = labels[s:s + batch_size]
        n = len(part)
        dummy = torch.zeros(n, 1, 1, 1, device=device)
        _, _, indices, _, padded = pad_batch(dummy, dummy, range(first_index + s, first_index + s + n), part)
        z = torch.zeros(len(indices), n_tokens, dtype=torch.int64, device=device)
        mask = torch.ones_like(z, dtype=torch.bool)
        z_final, _ = decode_tokens(model, z, mask, image_generators(indices, settings.seed), settings,
                                   iterative_decoding, labels=torch.tensor(padded), guided_decoding=guided_decoding)
        out.append(to_uint8(model.decode_to_image(z_final[:n])))
    return np.concatenate(out)


def plot_class_grid(model: MaskGit, names: list[str], args, temperature: float, device, path: Path,
                    cond: Condition, samples: int = 10, total_iter: int = 8) -> np.ndarray:
    """``samples`` images generated per class (a row per class, labelled with its name), T = 8 with the first
    schedule of the sweep and the condition's guidance. Returns the images, (classes, samples, H, W, 3)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    model.mask_func = args.mask_funcs[0]
    labels = [c for c in range(len(names)) for _ in range(samples)]
    images = generate(model, labels, decode_settings(args, temperature, total_iter, cond), device, args.batch_size)
    grid = images.reshape(len(names), samples, *images.shape[1:])
    fig, axes = plt.subplots(len(names), samples, figsize=(samples * 0.8 + 1.2, len(names) * 0.8 + 0.3),
                             squeeze=False)
    _show(axes, [grid[:, j] for j in range(samples)], None, names, fontsize=7)
    fig.suptitle(f"generated per class: {model.mask_func}, T = {total_iter}, guidance {cond.guidance:g}"
                 f"{' (ramped)' if cond.ramp else ''}", fontsize=8)
    fig.tight_layout(pad=0.2, rect=(0, 0, 1, 1 - 0.3 / (len(names) * 0.8 + 0.3)))
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return grid


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
    p.add_argument("--config", default=None,
                   help="MaskGIT config (default: config/MaskGit.yml, or config/MaskGit_class.yml with a --class "
                        "other than none)")
    p.add_argument("--load-transformer-ckpt-path", default=None, help="default: the config's")
    p.add_argument("--random-init", action="store_true", help="untrained transformer (smoke tests only)")
    p.add_argument("--vqgan-ckpt", default=None, help="the tokenizer the transformer was trained on (default: the "
                                                      "config's VQ_CKPT_path)")
    p.add_argument("--mask-funcs", nargs="+", choices=MASK_FUNCS + EXTRA_MASK_FUNCS, default=list(MASK_FUNCS),
                   help=f"schedules to sweep; {', '.join(EXTRA_MASK_FUNCS)} are optional extras of gamma_func")
    p.add_argument("--total-iters", nargs="+", type=positive_int, default=[1, 2, 4, 8, 12, 16])
    p.add_argument("--sweet-spots", nargs="+", type=positive_int, default=None,
                   help="also score the prediction after these steps (each run always scores S = T)")
    add_split_args(p)
    # as command_line.add_class_args, but --class and --guidance take lists: the sweep runs each of them
    p.add_argument("--class", dest="class_modes", nargs="+", default=["none"], metavar="CLASS",
                   help="class modes to sweep (class-conditional model): 'test' (each image's own class), 'none' "
                        "(unconditional), or a class id or name (e.g. 3 or Dress) for every image")
    p.add_argument("--guidance", nargs="+", type=nonnegative_float, default=[1.0],
                   help="classifier-free guidance scales to sweep: 1 = plain conditional, 0 = unconditional")
    p.add_argument("--guidance-ramp", action="store_true",
                   help="ramp the guidance linearly over the steps, 1 + (g - 1) * (t + 1) / T")
    p.add_argument("--classifier", default=str(CHECKPOINTS / "classifier.pt"),
                   help="Fashion-MNIST classifier for the accuracy of conditioned outputs (skipped when absent)")
    p.add_argument("--class-grid", type=nonnegative_int, default=10,
                   help="class_grid.png: samples per class (class-conditional model; 0 = no grid)")
    p.add_argument("--gt-path", default=str(DEFAULT_DATA_ROOT / "ground_truth"))
    p.add_argument("--mask-path", default=None, help="masks for the hole metrics (default: the test masks)")
    p.add_argument("--out", default=str(HERE / "experiments"))
    p.add_argument("--composite", choices=("off", "on", "both"), default="both",
                   help="score the raw decoder output, the output with the known pixels copied in, or both")
    p.add_argument("--reference", nargs="+", type=reference_fid, default=[], metavar="LABEL=FID",
                   help="FIDs to draw as horizontal lines in fid_vs_T.png (maskgit-baselines prints them)")
    p.add_argument("--floor", type=nonnegative_float, default=REAL_VS_REAL_FID,
                   help=f"FID of real vs real images drawn in fid_vs_T.png as "
                        f"'{FLOOR_LABEL.format(n=REAL_VS_REAL_N)}' (0 = none); FID grows as the sets shrink: "
                        f"measure it at your --limit (200 images: 76.2)")
    p.add_argument("--floor-images", type=positive_int, default=REAL_VS_REAL_N,
                   help="how many images per set the --floor was measured with (for its label)")
    p.add_argument("--limit", type=nonnegative_int, default=0, help="only the first N test images (0 = all)")
    # the feature sizes of pytorch-fid's InceptionV3 (maskgit_kit.scoring.fid.FID_DIMS, imported only by sweep())
    p.add_argument("--fid-dims", type=int, choices=(64, 192, 768, 2048), default=2048)
    p.add_argument("--uncertainty", action=argparse.BooleanOptionalAction, default=True,
                   help="also FID's 95 %% interval (half-sampling) and KID (maskgit_kit.scoring.uncertainty)")
    p.add_argument("--fid-replicates", type=positive_int, default=200, help="half-samples of the FID interval")
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
    if args.config is None:
        wants_class = any(m != "none" for m in args.class_modes)
        args.config = str(HERE / "config" / ("MaskGit_class.yml" if wants_class else "MaskGit.yml"))
    args.mask_path = args.mask_path or args.test_mask_path
    keep_freed_memory()  # as inpainting.py does: about 2x faster decoding on a small CPU
    rows = sweep(args)
    print(f"{'class':>10} {'g':>4} {'schedule':8} {'T':>3} {'S':>3} {'comp':>4} {'FID':>7} {'KID':>7} {'PSNR':>6} "
          f"{'SSIM':>6} {'PSNR hole':>9} {'acc':>5} {'s':>6}")
    for r in rows:
        kid = "-" if r.get("kid") is None else f"{r['kid']:.4f}"
        print(f"{r['class_mode'][:10]:>10} {r['guidance']:4g} {r['mask_func']:8} {r['total_iter']:>3} "
              f"{r['sweet_spot']:>3} {r['composite']:>4} {r['fid']:7.2f} {kid:>7} {r['psnr']:6.2f} {r['ssim']:6.3f} "
              f"{r['psnr_hole']:9.2f} {_num(r['accuracy'], '5.3f'):>5} {r['seconds']:6.1f}")
    print(f"wrote {args.out}/results.csv and figures")


if __name__ == "__main__":
    main()
