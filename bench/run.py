"""Performance benchmark of the reference: ratios measured side by side in one run, on this machine.

    python bench/run.py [--json OUT.json] [--quick]

Sections (``--skip`` leaves some out):
  inpaint   the test split at T = 8: batched reference (fp32 and bf16) vs a per-image loop in the course's
            style (batch 1, one transformer call per image per step, fp32), timed on a fixed subset and
            extrapolated per image; token equality of the two.
  flops     achieved transformer GFLOP/s (FLOPs counted from the config) against measured fp32 / bf16
            matmul peaks of this machine.
  steps     T = 8 vs T = 256 with the same model on a subset.
  training  transformer training images/s: token cache vs VQGAN encoding every batch, bf16 vs fp32.
  grader    wall time of ``pytest grader/ --impl solutions`` and of ``grader/score.py`` (when they exist).
Runs with the shipped checkpoints when present, random weights otherwise (timings do not depend on them).
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import torch
from PIL import Image

os.environ.setdefault("TQDM_DISABLE", "1")  # the training loop's progress bars would drown the report
sys.path.insert(0, str(Path(__file__).resolve().parent))

import measure  # noqa: E402
from measure import REPO  # noqa: E402

import inpainting  # noqa: E402
from utils import tensor_to_image  # noqa: E402

SECTIONS = ("inpaint", "flops", "steps", "training", "grader")
TARGETS = {"batched_speedup": 5.0, "bf16_peak_fraction": 0.40, "t8_vs_t256": 25.0, "token_cache_speedup": 3.0}


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--json", default=None, help="also write the figures to this JSON file")
    p.add_argument("--quick", action="store_true",
                   help="a smoke run: few images, few batches, small matmuls (figures not meaningful)")
    p.add_argument("--config", default=str(REPO / "solutions" / "config" / "MaskGit.yml"), help="MaskGIT config")
    p.add_argument("--data-root", default=str(REPO / "data" / "fashion64"),
                   help="folder with masked_image/, mask64/ and train/")
    p.add_argument("--random-init", action="store_true", help="random weights even if checkpoints exist")
    p.add_argument("--images", type=int, default=None, help="test images for the batched path (default: all)")
    p.add_argument("--per-image-subset", type=int, default=48,
                   help="images run through the per-image loop (timed, then extrapolated per image)")
    p.add_argument("--steps-subset", type=int, default=16, help="images decoded at T = 8 and T = 256")
    p.add_argument("--batch-size", type=int, default=64, help="images per batch (decoding and training)")
    p.add_argument("--train-batches", type=int, default=6, help="timed training batches per configuration")
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    p.add_argument("--skip", nargs="*", choices=SECTIONS, default=[], help="sections to leave out")
    p.add_argument("--grader-timeout", type=float, default=600, help="seconds allowed to each grader command")
    p.add_argument("--seed", type=int, default=0)
    return p


def check_args(args) -> None:
    for flag in ("per_image_subset", "steps_subset", "batch_size", "train_batches"):
        if getattr(args, flag) < 1:
            raise SystemExit(f"--{flag.replace('_', '-')} {getattr(args, flag)}: expected a positive number")
    if args.images is not None and args.images < 1:
        raise SystemExit(f"--images {args.images}: expected a positive number")
    for what in ("masked_image", "mask64"):
        if not (Path(args.data_root) / what).is_dir():
            raise SystemExit(f"--data-root {args.data_root}: no {what}/ folder in it "
                             f"(create the data with `python tools/prepare_data.py`)")
    if args.quick:
        args.images = min(args.images or 8, 8)
        args.per_image_subset = min(args.per_image_subset, 2)
        args.steps_subset = min(args.steps_subset, 2)
        args.batch_size = min(args.batch_size, 4)
        args.train_batches = min(args.train_batches, 2)


def log(msg: str) -> None:
    print(msg, flush=True)


# ----------------------------------------------------------------------------------------------------
# Sections: each returns a dict of figures for the JSON and the table
# ----------------------------------------------------------------------------------------------------
def section_inpaint(model, data, args, ctx) -> dict:
    images, masks, indices = data
    h = model.cfg.vqgan.latent_size
    latent = measure.latent_mask(masks, h)
    res = {"images": len(images), "total_iter": 8, "batch_size": args.batch_size}
    batched = {}
    for prec in ("fp32", "bf16"):
        out = measure.inpaint_batched(model, images, masks, indices, 8, args.seed, prec, args.batch_size)
        batched[prec] = out
        res[f"batched_{prec}_s"] = out.seconds
        res[f"batched_{prec}_s_per_image"] = out.seconds / len(images)
        log(f"  batched {prec}: {out.seconds:.1f} s for {len(images)} images")
    ctx["inpainted"] = batched

    n = min(args.per_image_subset, len(images))
    per = measure.inpaint_per_image(model, images[:n], masks[:n], indices[:n], 8, args.seed)
    res["per_image_subset"] = n
    res["per_image_s"] = per.seconds
    res["per_image_s_per_image"] = per.seconds / n
    res["per_image_extrapolated_s"] = per.seconds / n * len(images)
    log(f"  per-image loop (fp32, batch 1): {per.seconds:.1f} s for {n} images")
    for prec in ("fp32", "bf16"):
        res[f"speedup_{prec}"] = res["per_image_s_per_image"] / res[f"batched_{prec}_s_per_image"]
    res["batched_fp32_vs_per_image"] = measure.token_agreement(batched["fp32"].tokens[:n], per.tokens, latent[:n])
    res["bf16_vs_fp32_decoding"] = measure.token_agreement(batched["bf16"].tokens, batched["fp32"].tokens, latent)
    res["bf16_vs_fp32_one_step"] = measure.single_step_agreement(model, images, masks, args.batch_size)
    diff = (batched["bf16"].images - batched["fp32"].images).abs()
    res["bf16_vs_fp32_mean_abs_pixel_diff"] = float(diff.mean())  # in [-1, 1] units
    return res


def section_flops(model, args, ctx) -> dict:
    n = 512 if args.quick else 2048
    res = {"matmul_n": n, "transformer_gflop_per_image": measure.transformer_flops(model.cfg) / 1e9}
    for prec, dtype in (("fp32", torch.float32), ("bf16", torch.bfloat16)):
        res[f"peak_{prec}_gflops"] = measure.matmul_peak(dtype, n, reps=2 if args.quick else 5)
    for prec in ("fp32", "bf16"):
        fwd = measure.forward_rate(model, args.batch_size, prec, reps=1 if args.quick else 3)
        res[f"forward_{prec}_gflops"] = fwd["gflops"]
        res[f"forward_{prec}_of_own_peak"] = fwd["gflops"] / res[f"peak_{prec}_gflops"]
        res[f"forward_{prec}_of_bf16_peak"] = fwd["gflops"] / res["peak_bf16_gflops"]
        inp = ctx.get("inpaint")
        if inp:  # the whole decoding (encode, sampling, sorting, decode) counted with the transformer's FLOPs only
            flops = measure.transformer_flops(model.cfg) * inp["images"] * inp["total_iter"]
            res[f"decoding_{prec}_gflops"] = flops / inp[f"batched_{prec}_s"] / 1e9
    log(f"  peaks fp32 {res['peak_fp32_gflops']:.0f}, bf16 {res['peak_bf16_gflops']:.0f} GFLOP/s; forward fp32 "
        f"{res['forward_fp32_gflops']:.0f}, bf16 {res['forward_bf16_gflops']:.0f} GFLOP/s")
    return res


def section_steps(model, data, args, ctx) -> dict:
    images, masks, indices = data
    n = min(args.steps_subset, len(images))
    prec = ctx.get("default_precision", "fp32")
    res = {"images": n, "precision": prec}
    for t in (8, 256):
        out = measure.inpaint_batched(model, images[:n], masks[:n], indices[:n], t, args.seed, prec, args.batch_size)
        res[f"t{t}_s"] = out.seconds
        log(f"  T = {t}: {out.seconds:.1f} s for {n} images")
    res["ratio"] = res["t256_s"] / res["t8_s"]
    return res


def section_training(model, args, ctx) -> dict:
    train_dir = Path(args.data_root) / "train"
    images, tokens, cache_s, n_cached = measure.training_loaders(model, train_dir, args.batch_size,
                                                                 args.train_batches, args.seed)
    res = {"batch_size": args.batch_size, "batches": args.train_batches, "cache_build_s": cache_s,
           "cache_build_images_per_s": n_cached / cache_s}
    for name, loader, prec in (("cache_bf16", tokens, "bf16"), ("cache_fp32", tokens, "fp32"),
                               ("encode_bf16", images, "bf16"), ("encode_fp32", images, "fp32")):
        r = measure.training_throughput(model, loader, args.train_batches, prec)
        res[f"{name}_images_per_s"] = r["images_per_s"]
        log(f"  {name}: {r['images_per_s']:.1f} images/s")
    res["cache_speedup_bf16"] = res["cache_bf16_images_per_s"] / res["encode_bf16_images_per_s"]
    res["cache_speedup_fp32"] = res["cache_fp32_images_per_s"] / res["encode_fp32_images_per_s"]
    res["bf16_speedup_cache"] = res["cache_bf16_images_per_s"] / res["cache_fp32_images_per_s"]
    return res


def section_grader(args, ctx) -> dict:
    res = {}
    if (REPO / "grader" / "conftest.py").is_file():
        res["pytest"] = measure.time_command([sys.executable, "-m", "pytest", "grader/", "--impl", "solutions", "-q",
                                              "-p", "no:cacheprovider"], args.grader_timeout)
    else:
        res["pytest"] = {"note": "skipped: grader/conftest.py does not exist yet"}
    score = REPO / "grader" / "score.py"
    inpainted = ctx.get("inpainted", {}).get(ctx.get("default_precision", "fp32"))
    if not score.is_file():
        res["score"] = {"note": "skipped: grader/score.py does not exist yet"}
    elif inpainted is None:
        res["score"] = {"note": "skipped: needs the inpaint section's images"}
    else:
        with tempfile.TemporaryDirectory(prefix="bench-score-") as tmp:
            folder = Path(tmp) / "test_results"
            folder.mkdir()
            for img, i in zip(inpainted.images, ctx["indices"].tolist(), strict=True):
                Image.fromarray(tensor_to_image(img)).save(folder / f"image_{i:03d}.png")
            res["score"] = measure.time_command([sys.executable, str(score), "--predicted-path", str(folder)],
                                                args.grader_timeout)
            res["score"]["images"] = len(inpainted.images)
    for key, r in res.items():
        log(f"  {key}: " + (f"{r['seconds']:.1f} s (rc {r['rc']})" if r.get("seconds") is not None else r["note"]))
    return res


# ----------------------------------------------------------------------------------------------------
# Report
# ----------------------------------------------------------------------------------------------------
def _fmt(x, unit="") -> str:
    if x is None:
        return "-"
    if isinstance(x, float):
        return f"{x:.3g}{unit}" if abs(x) < 100 else f"{x:.0f}{unit}"
    return f"{x}{unit}"


def table_rows(results: dict) -> list[tuple[str, str, str, str]]:
    """(measure, value, target, met) rows of the summary table."""
    rows = []

    def add(name, value, unit="", target=None, higher_is_better=True):
        met = "" if target is None or value is None else ("yes" if (value >= target) == higher_is_better else "NO")
        tgt = "" if target is None else (">= " if higher_is_better else "<= ") + _fmt(target, unit)
        rows.append((name, _fmt(value, unit), tgt, met))

    inp = results.get("inpaint")
    if inp:
        n, sub = inp["images"], inp["per_image_subset"]
        add(f"1 inpaint {n} imgs T=8: batched fp32 vs per-image loop", inp["speedup_fp32"], "x")
        add(f"1 inpaint {n} imgs T=8: batched bf16 vs per-image loop", inp["speedup_bf16"], "x",
            TARGETS["batched_speedup"])
        add("  batched fp32 wall time", inp["batched_fp32_s"], " s")
        add("  batched bf16 wall time", inp["batched_bf16_s"], " s")
        add(f"  per-image loop, {sub} imgs extrapolated to {n}", inp["per_image_extrapolated_s"], " s")
        add(f"  identical images, batched fp32 vs per-image ({sub})",
            inp["batched_fp32_vs_per_image"]["identical_images"])
        add("  identical inpainted tokens, bf16 vs fp32 (8 steps)",
            inp["bf16_vs_fp32_decoding"]["identical_inpainted_tokens"])
        add("  same sampled token, bf16 vs fp32 (one step)", inp["bf16_vs_fp32_one_step"]["sample_agreement"])
    fl = results.get("flops")
    if fl:
        add("2 matmul peak fp32", fl["peak_fp32_gflops"], " GFLOP/s")
        add("2 matmul peak bf16", fl["peak_bf16_gflops"], " GFLOP/s")
        add("2 transformer forward fp32, of fp32 peak", fl["forward_fp32_of_own_peak"])
        add("2 transformer forward bf16, of bf16 peak", fl["forward_bf16_of_own_peak"], "",
            TARGETS["bf16_peak_fraction"])
        if "decoding_bf16_gflops" in fl:
            add("  whole bf16 decoding loop, of bf16 peak", fl["decoding_bf16_gflops"] / fl["peak_bf16_gflops"])
    st = results.get("steps")
    if st:
        add(f"3 T=256 vs T=8 wall time ({st['images']} imgs, {st['precision']})", st["ratio"], "x",
            TARGETS["t8_vs_t256"])
    tr = results.get("training")
    if tr:
        add("4 training, token cache vs encoding (bf16)", tr["cache_speedup_bf16"], "x", TARGETS["token_cache_speedup"])
        add("4 training, token cache vs encoding (fp32)", tr["cache_speedup_fp32"], "x")
        add("4 training, bf16 vs fp32 (token cache)", tr["bf16_speedup_cache"], "x")
        add("  images/s: cache bf16 / cache fp32",
            None, "")
        rows[-1] = (rows[-1][0], f"{tr['cache_bf16_images_per_s']:.1f} / {tr['cache_fp32_images_per_s']:.1f}", "", "")
        add("  images/s: encode bf16 / encode fp32", None)
        rows[-1] = (rows[-1][0], f"{tr['encode_bf16_images_per_s']:.1f} / {tr['encode_fp32_images_per_s']:.1f}", "", "")
    gr = results.get("grader")
    if gr:
        for key, label in (("pytest", "5 pytest grader/ --impl solutions"), ("score", "5 grader/score.py")):
            r = gr.get(key, {})
            if r.get("seconds") is not None:
                add(label + ("" if r.get("rc") == 0 else f" (rc {r['rc']})"), r["seconds"], " s")
            else:
                rows.append((label, "-", "", r.get("note", "")[:60]))
    return rows


def print_report(results: dict) -> None:
    m = results["machine"]
    log("")
    log(f"machine: {m['cpu']}, {m['cores']} cores, torch {m['torch']} ({m['threads']} threads), "
        f"Python {m['python']}; load average {m['load_average']} at start, {results['load_average_end']} at end")
    for note in results["notes"]:
        log(f"note: {note}")
    rows = table_rows(results)
    w = [max(len(r[i]) for r in rows + [("measure", "value", "target", "met")]) for i in range(4)]
    header = ("measure", "value", "target", "met")
    log("  ".join(h.ljust(w[i]) for i, h in enumerate(header)))
    log("  ".join("-" * w[i] for i in range(4)))
    for r in rows:
        log("  ".join(c.ljust(w[i]) if i == 0 else c.rjust(w[i]) for i, c in enumerate(r)))
    log(f"total bench time {results['seconds']:.0f} s")


def write_json(results: dict, path: str) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(results, indent=2, default=str))
    os.replace(tmp, path)


def run(args) -> dict:
    """Run the selected sections; returns every figure (what --json writes)."""
    start = time.perf_counter()
    if args.threads:
        torch.set_num_threads(args.threads)
    results = {"machine": measure.machine_description(), "args": vars(args), "notes": []}
    busy = measure.busy_processes()
    if busy:
        results["notes"].append(f"{len(busy)} other busy process(es) shared the CPU at the start: " + "; ".join(busy))
    if args.quick:
        results["notes"].append("--quick: tiny sizes, the figures are not meaningful")
    model, notes = measure.load_bench_model(args.config, args.random_init, args.seed)
    results["notes"] += notes
    torch.manual_seed(args.seed)
    ctx = {"default_precision": inpainting.build_parser().get_default("precision")}
    data = None
    if {"inpaint", "steps", "grader"} - set(args.skip):
        data = measure.load_test_split(args.data_root, args.images)
        ctx["indices"] = data[2]
    n_all = len(data[0]) if data is not None else 0
    if "inpaint" not in args.skip:
        log(f"[1/5] inpainting {n_all} test images at T = 8")
        results["inpaint"] = ctx["inpaint"] = section_inpaint(model, data, args, ctx)
        results["notes"].append(
            f"per-image loop timed on the first {results['inpaint']['per_image_subset']} images and extrapolated "
            f"per image to {n_all}; both paths read the PNGs beforehand (untimed) and skip the imga/ per-step decodes")
    if "flops" not in args.skip:
        log("[2/5] transformer FLOP rate")
        results["flops"] = section_flops(model, args, ctx)
    if "steps" not in args.skip:
        log("[3/5] T = 8 vs T = 256")
        results["steps"] = section_steps(model, data, args, ctx)
    if "training" not in args.skip:
        log("[4/5] training throughput")
        results["training"] = section_training(model, args, ctx)
    if "grader" not in args.skip:
        log("[5/5] grader and scoring")
        results["grader"] = section_grader(args, ctx)
    busy = measure.busy_processes()
    if busy:
        results["notes"].append(f"{len(busy)} other busy process(es) at the end: " + "; ".join(busy))
    results["load_average_end"] = [round(x, 2) for x in os.getloadavg()]
    results["seconds"] = time.perf_counter() - start
    return results


def main(argv=None) -> dict:
    args = build_parser().parse_args(argv)
    check_args(args)
    results = run(args)
    print_report(results)
    if args.json:
        write_json(results, args.json)
        log(f"wrote {args.json}")
    return results


if __name__ == "__main__":
    main()
