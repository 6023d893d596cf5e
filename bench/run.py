"""Performance benchmark of the reference: ratios measured side by side in one run, on this machine.

    python bench/run.py [--json OUT.json] [--quick]

Sections (``--skip`` leaves some out):
  inpaint   the test split at T = 8: batched reference (fp32 and bf16) vs a per-image loop in the course's
            style (batch 1, one transformer call per image per step, fp32), timed on a fixed subset and
            extrapolated per image; token equality of the two.
  flops     achieved transformer GFLOP/s (FLOPs counted from the config) against measured fp32 / bf16
            matmul peaks of this machine.
  steps     T = 8 vs T = 256 with the same model on a subset.
  generation  generation from nothing (every token masked) at T = 8 vs T = 256 with the same model,
            interleaved batch by batch (the paper: 8 to 12 parallel steps instead of 256 autoregressive ones).
  training  transformer training images/s: token cache vs VQGAN encoding every batch, bf16 vs fp32.
  grader    wall time of ``pytest grader/ --impl solutions`` and of the scoring command (``maskgit-score``).
Runs with the shipped checkpoints when present, random weights otherwise (timings do not depend on them).
Every ratio is given by wall time and by CPU time of this process: when other jobs share the cores, the
methods compared are interleaved so that they see the same load, and CPU time is the steadier figure.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TQDM_DISABLE", "1")  # before torch imports tqdm: the loops' bars would drown the report

import torch  # noqa: E402
from PIL import Image  # noqa: E402

import measure  # noqa: E402  (bench/ is this script's own folder)
from maskgit_kit import atomic  # noqa: E402
from maskgit_kit.images import tensor_to_image  # noqa: E402
from measure import REFERENCE, REPO  # noqa: E402

decoding = REFERENCE.module("decoding")
command_line = REFERENCE.module("command_line")

SECTIONS = ("inpaint", "flops", "steps", "generation", "training", "grader")
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
    p.add_argument("--steps-subset", type=int, default=8, help="images decoded at T = 8 and T = 256")
    p.add_argument("--generation-images", type=int, default=8, help="images generated at T = 8 and T = 256")
    p.add_argument("--batch-size", type=int, default=64, help="images per batch (decoding and training)")
    p.add_argument("--train-batches", type=int, default=4, help="timed training batches per configuration")
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    p.add_argument("--skip", nargs="*", choices=SECTIONS, default=[], help="sections to leave out")
    p.add_argument("--grader-timeout", type=float, default=600, help="seconds allowed to each grader command")
    p.add_argument("--seed", type=int, default=0)
    return p


def check_args(args) -> None:
    for flag in ("per_image_subset", "steps_subset", "generation_images", "batch_size", "train_batches"):
        if getattr(args, flag) < 1:
            raise SystemExit(f"--{flag.replace('_', '-')} {getattr(args, flag)}: expected a positive number")
    if args.images is not None and args.images < 1:
        raise SystemExit(f"--images {args.images}: expected a positive number")
    for what in ("masked_image", "mask64"):
        if not (Path(args.data_root) / what).is_dir():
            raise SystemExit(f"--data-root {args.data_root}: no {what}/ folder in it "
                             f"(create the data with `maskgit-prepare-data`)")
    if args.quick:
        args.images = min(args.images or 8, 8)
        args.per_image_subset = min(args.per_image_subset, 2)
        args.steps_subset = min(args.steps_subset, 2)
        args.generation_images = min(args.generation_images, 2)
        args.batch_size = min(args.batch_size, 4)
        args.train_batches = min(args.train_batches, 2)


def log(msg: str) -> None:
    print(msg, flush=True)


# ----------------------------------------------------------------------------------------------------
# Sections: each returns a dict of figures for the JSON and the table
# ----------------------------------------------------------------------------------------------------
def _times(t: measure.Timing) -> dict:
    return {"wall_s": t.wall, "cpu_s": t.cpu}


def _ratio(a: measure.Timing, b: measure.Timing) -> dict:
    """a / b by wall time and by CPU time."""
    return {"wall": a.wall / b.wall, "cpu": a.cpu / max(b.cpu, 1e-9)}


def section_inpaint(model, data, args, ctx) -> dict:
    """Batched fp32, batched bf16 and the per-image loop, interleaved batch by batch so that all three see
    the same background load; the per-image loop runs on ``--per-image-subset`` images spread evenly."""
    images, masks, indices = data
    n, bs = len(images), args.batch_size
    latent = decoding.latent_mask(masks, model.cfg.vqgan.latent_size)
    k = min(args.per_image_subset, n)
    chosen = sorted(set(torch.linspace(0, n - 1, k).round().long().tolist()))
    for prec in ("fp32", "bf16"):  # untimed warm-up: one-off kernel set-up
        measure.inpaint_batched(model, images[:2], masks[:2], indices[:2], 8, args.seed, prec, bs)
    times = {name: measure.Timing() for name in ("fp32", "bf16", "per_image")}
    outs = {"fp32": [], "bf16": [], "per_image": []}
    for s in range(0, n, bs):
        part = slice(s, s + bs)
        for prec in ("fp32", "bf16"):
            out = measure.inpaint_batched(model, images[part], masks[part], indices[part], 8, args.seed, prec, bs)
            times[prec] += out.time
            outs[prec].append(out)
        mine = [i for i in chosen if s <= i < s + bs]
        if mine:
            out = measure.inpaint_per_image(model, images[mine], masks[mine], indices[mine], 8, args.seed)
            times["per_image"] += out.time
            outs["per_image"].append(out)
        log(f"  {min(s + bs, n)}/{n} images: batched fp32 {times['fp32'].wall:.0f} s, bf16 {times['bf16'].wall:.0f} s;"
            f" per-image loop {times['per_image'].wall:.0f} s for {sum(len(o.tokens) for o in outs['per_image'])}")
    tokens = {name: torch.cat([o.tokens for o in v]) for name, v in outs.items()}
    ctx["inpainted"] = {prec: torch.cat([o.images for o in outs[prec]]) for prec in ("fp32", "bf16")}
    res = {"images": n, "total_iter": 8, "batch_size": bs, "per_image_images": len(chosen),
           "per_image_indices": [int(indices[i]) for i in chosen]}
    for name, t in times.items():
        res[name] = _times(t)
    per_image = measure.Timing(times["per_image"].wall / len(chosen), times["per_image"].cpu / len(chosen))
    res["per_image_extrapolated"] = {"wall_s": per_image.wall * n, "cpu_s": per_image.cpu * n}
    for prec in ("fp32", "bf16"):
        batched = measure.Timing(times[prec].wall / n, times[prec].cpu / n)
        res[f"speedup_{prec}"] = _ratio(per_image, batched)
    res["batched_fp32_vs_per_image"] = measure.token_agreement(tokens["fp32"][chosen], tokens["per_image"],
                                                               latent[chosen])
    res["bf16_vs_fp32_decoding"] = measure.token_agreement(tokens["bf16"], tokens["fp32"], latent)
    res["bf16_vs_fp32_one_step"] = measure.single_step_agreement(model, images, masks, bs)
    diff = (ctx["inpainted"]["bf16"] - ctx["inpainted"]["fp32"]).abs()
    res["bf16_vs_fp32_mean_abs_pixel_diff"] = float(diff.mean())  # in [-1, 1] units, whole images
    return res


def section_flops(model, args, ctx) -> dict:
    n = 512 if args.quick else 2048
    per_image = measure.transformer_flops(model.cfg)
    res = {"matmul_n": n, "transformer_gflop_per_image": per_image / 1e9, "batch_size": args.batch_size}
    for prec, dtype in (("fp32", torch.float32), ("bf16", torch.bfloat16)):
        res[f"peak_{prec}"] = measure.matmul_peak(dtype, n, reps=2 if args.quick else 5)
    for prec in ("fp32", "bf16"):
        fwd = measure.forward_rate(model, args.batch_size, prec, reps=1 if args.quick else 3)
        res[f"forward_{prec}"] = fwd
        for kind in ("wall", "cpu"):
            res[f"forward_{prec}_of_{prec}_peak_{kind}"] = fwd[kind] / res[f"peak_{prec}"][kind]
            res[f"forward_{prec}_of_bf16_peak_{kind}"] = fwd[kind] / res["peak_bf16"][kind]
        inp = ctx.get("inpaint")
        if inp:  # the whole decoding loop (encode, sampling, sorting, decode) credited with the transformer FLOPs only
            t = measure.Timing(inp[prec]["wall_s"], inp[prec]["cpu_s"])
            res[f"decoding_{prec}"] = measure.rate(per_image * inp["images"] * inp["total_iter"], t)
    log(f"  matmul peaks: fp32 {res['peak_fp32']['wall']:.0f}, bf16 {res['peak_bf16']['wall']:.0f} GFLOP/s; forward "
        f"fp32 {res['forward_fp32']['wall']:.0f}, bf16 {res['forward_bf16']['wall']:.0f} GFLOP/s (wall)")
    return res


def section_steps(model, data, args, ctx) -> dict:
    """T = 8 and T = 256 on the same images, interleaved in groups of ``--batch-size``."""
    images, masks, indices = data
    n = min(args.steps_subset, len(images))
    prec = ctx.get("default_precision", "fp32")
    times = {8: measure.Timing(), 256: measure.Timing()}
    for s in range(0, n, args.batch_size):
        part = slice(s, min(s + args.batch_size, n))
        for t in (8, 256):
            out = measure.inpaint_batched(model, images[part], masks[part], indices[part], t, args.seed, prec,
                                          args.batch_size)
            times[t] += out.time
    log(f"  {n} images: T = 8 {times[8].wall:.1f} s, T = 256 {times[256].wall:.1f} s")
    return {"images": n, "precision": prec, "t8": _times(times[8]), "t256": _times(times[256]),
            "ratio": _ratio(times[256], times[8])}


def section_generation(model, args, ctx) -> dict:
    """Generation (every token masked) at T = 8 and T = 256 with the same model, the two interleaved batch by
    batch so that both see the same background load; one untimed warm-up image first."""
    n, bs = args.generation_images, args.batch_size
    prec = ctx.get("default_precision", "fp32")
    measure.generate_batched(model, 1, 8, args.seed, prec, bs)
    times = {8: measure.Timing(), 256: measure.Timing()}
    tokens = {8: [], 256: []}
    for s in range(0, n, bs):
        m = min(bs, n - s)
        for t in (8, 256):
            out = measure.generate_batched(model, m, t, args.seed, prec, bs)
            times[t] += out.time
            tokens[t].append(out.tokens)
    log(f"  {n} images generated: T = 8 {times[8].wall:.1f} s, T = 256 {times[256].wall:.1f} s "
        f"({times[256].wall / times[8].wall:.1f}x)")
    return {"images": n, "precision": prec, "batch_size": bs, "class_conditional": bool(model.num_classes),
            "t8": _times(times[8]), "t256": _times(times[256]), "ratio": _ratio(times[256], times[8]),
            "per_image_t8": {"wall_s": times[8].wall / n, "cpu_s": times[8].cpu / n},
            "per_image_t256": {"wall_s": times[256].wall / n, "cpu_s": times[256].cpu / n},
            "step_ratio": 256 / 8}


def training_images_dir(data_root: str | Path) -> Path:
    """train/ when it exists; otherwise the committed ground_truth/ (throughput does not depend on which images,
    and a clean clone has no train/ until `make data`)."""
    root = Path(data_root)
    return root / "train" if (root / "train").is_dir() else root / "ground_truth"


def section_training(model, args, ctx) -> dict:
    train_dir = training_images_dir(args.data_root)
    if train_dir.name != "train":
        log(f"  no {Path(args.data_root) / 'train'} (run `make data` for it): timing on the images of {train_dir}")
    images, tokens, cache_t, n_cached = measure.training_loaders(model, train_dir, args.batch_size,
                                                                 args.train_batches, args.seed)
    configs = {"cache_bf16": (tokens, "bf16"), "cache_fp32": (tokens, "fp32"),
               "encode_bf16": (images, "bf16"), "encode_fp32": (images, "fp32")}
    times = measure.training_throughput(model, configs, args.train_batches)
    n = args.train_batches * args.batch_size
    res = {"batch_size": args.batch_size, "batches": args.train_batches, "cache_build": _times(cache_t),
           "cache_build_images": n_cached, "images_dir": str(train_dir)}
    for name, t in times.items():
        res[name] = {"images_per_s": n / t.wall, "images_per_cpu_s": n / max(t.cpu, 1e-9), **_times(t)}
        log(f"  {name}: {n / t.wall:.1f} images/s")
    res["cache_speedup_bf16"] = _ratio(times["encode_bf16"], times["cache_bf16"])
    res["cache_speedup_fp32"] = _ratio(times["encode_fp32"], times["cache_fp32"])
    res["bf16_speedup_cache"] = _ratio(times["cache_fp32"], times["cache_bf16"])
    return res


def section_grader(args, ctx) -> dict:
    res = {}
    if (REPO / "grader" / "conftest.py").is_file():
        res["pytest"] = measure.time_command([sys.executable, "-m", "pytest", "grader/", "--impl", "solutions", "-q",
                                              "-p", "no:cacheprovider"], args.grader_timeout)
    else:
        res["pytest"] = {"note": "skipped: grader/conftest.py does not exist yet"}
    inpainted = ctx.get("inpainted")
    full = len(measure.LoadTestData(Path(args.data_root) / "masked_image", Path(args.data_root) / "mask64"))
    if inpainted is None:
        res["score"] = {"note": "skipped: needs the inpaint section's images"}
    elif len(ctx["indices"]) != full:
        res["score"] = {"note": f"skipped: scoring needs all {full} test images (ran --images {len(ctx['indices'])})"}
    else:
        # The default precision's images time the scoring; the other precision's FID shows what bf16 changes.
        default = ctx.get("default_precision", "fp32")
        for prec in [default] + [p for p in ("fp32", "bf16") if p != default]:
            key = "score" if prec == default else f"score_{prec}"
            with tempfile.TemporaryDirectory(prefix="bench-score-") as tmp:
                folder = Path(tmp) / "test_results"
                folder.mkdir()
                for img, i in zip(inpainted[prec], ctx["indices"].tolist(), strict=True):
                    Image.fromarray(tensor_to_image(img)).save(folder / f"image_{i:03d}.png")
                res[key] = measure.time_command([sys.executable, "-m", "maskgit_kit.scoring.score",
                                                 "--predicted-path", str(folder),
                                                 "--json", str(Path(tmp) / "score.json")], args.grader_timeout)
                res[key]["precision"] = prec
                if (Path(tmp) / "score.json").is_file():
                    res[key]["scores"] = json.loads((Path(tmp) / "score.json").read_text())
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


def _fid(score: dict):
    """The FID out of a score.py JSON, wherever it keeps it."""
    scores = score.get("scores") or {}
    for key in ("fid", "FID"):
        if isinstance(scores.get(key), (int, float)):
            return float(scores[key])
        for v in scores.values():
            if isinstance(v, dict) and isinstance(v.get(key), (int, float)):
                return float(v[key])
    return None


def table_rows(results: dict) -> list[tuple[str, str, str, str, str]]:
    """(measure, by wall time, by CPU time, target, met) rows of the summary table."""
    rows = []

    def add(name, value, unit="", target=None):
        """``value``: a number, or {"wall": .., "cpu": ..}; ``met`` is judged on both."""
        wall, cpu = (value.get("wall"), value.get("cpu")) if isinstance(value, dict) else (value, None)
        met = ""
        if target is not None:
            met = "/".join("-" if v is None else ("yes" if v >= target else "NO") for v in (wall, cpu))
        rows.append((name, _fmt(wall, unit), _fmt(cpu, unit), "" if target is None else ">= " + _fmt(target, unit),
                     met))

    inp = results.get("inpaint")
    if inp:
        n, sub = inp["images"], inp["per_image_images"]
        add(f"1 inpaint {n} imgs T=8: batched fp32 vs per-image loop", inp["speedup_fp32"], "x")
        add(f"1 inpaint {n} imgs T=8: batched bf16 vs per-image loop", inp["speedup_bf16"], "x",
            TARGETS["batched_speedup"])
        add("  batched fp32, s", {"wall": inp["fp32"]["wall_s"], "cpu": inp["fp32"]["cpu_s"]})
        add("  batched bf16, s", {"wall": inp["bf16"]["wall_s"], "cpu": inp["bf16"]["cpu_s"]})
        add(f"  per-image loop, s ({sub} imgs timed, x {n}/{sub})",
            {"wall": inp["per_image_extrapolated"]["wall_s"], "cpu": inp["per_image_extrapolated"]["cpu_s"]})
        add(f"  identical images: batched fp32 vs per-image ({sub})",
            inp["batched_fp32_vs_per_image"]["identical_images"])
        add("  identical inpainted tokens: bf16 vs fp32 (8 steps)",
            inp["bf16_vs_fp32_decoding"]["identical_inpainted_tokens"])
        add("  same sampled token: bf16 vs fp32 (one step)", inp["bf16_vs_fp32_one_step"]["sample_agreement"])
    fl = results.get("flops")
    if fl:
        add("2 matmul peak fp32, GFLOP/s (CPU: per core-second)", fl["peak_fp32"])
        add("2 matmul peak bf16, GFLOP/s", fl["peak_bf16"])
        add(f"2 transformer forward fp32 (batch {fl['batch_size']}), GFLOP/s", fl["forward_fp32"])
        add(f"2 transformer forward bf16 (batch {fl['batch_size']}), GFLOP/s", fl["forward_bf16"])
        add("2 forward fp32 / fp32 peak", {k: fl[f"forward_fp32_of_fp32_peak_{k}"] for k in ("wall", "cpu")})
        add("2 forward bf16 / bf16 peak", {k: fl[f"forward_bf16_of_bf16_peak_{k}"] for k in ("wall", "cpu")}, "",
            TARGETS["bf16_peak_fraction"])
        if "decoding_bf16" in fl:
            add("  whole bf16 decoding loop / bf16 peak",
                {k: fl["decoding_bf16"][k] / fl["peak_bf16"][k] for k in ("wall", "cpu")})
    st = results.get("steps")
    if st:
        add(f"3 T=256 vs T=8 ({st['images']} imgs, {st['precision']})", st["ratio"], "x", TARGETS["t8_vs_t256"])
    ge = results.get("generation")
    if ge:
        add(f"6 generation T=256 vs T=8 ({ge['images']} imgs, all tokens masked, {ge['precision']})", ge["ratio"],
            "x", TARGETS["t8_vs_t256"])
        add("  generation T=8, s per image", {"wall": ge["per_image_t8"]["wall_s"], "cpu": ge["per_image_t8"]["cpu_s"]})
        add("  generation T=256, s per image",
            {"wall": ge["per_image_t256"]["wall_s"], "cpu": ge["per_image_t256"]["cpu_s"]})
    tr = results.get("training")
    if tr:
        add("4 training: token cache vs encoding (bf16)", tr["cache_speedup_bf16"], "x", TARGETS["token_cache_speedup"])
        add("4 training: token cache vs encoding (fp32)", tr["cache_speedup_fp32"], "x")
        add("4 training: bf16 vs fp32 (token cache)", tr["bf16_speedup_cache"], "x")
        for name in ("cache_bf16", "cache_fp32", "encode_bf16", "encode_fp32"):
            add(f"  {name.replace('_', ' ')}: images/s (CPU: per core-second)",
                {"wall": tr[name]["images_per_s"], "cpu": tr[name]["images_per_cpu_s"]})
    gr = results.get("grader")
    if gr:
        labels = {"pytest": "5 pytest grader/ --impl solutions, s", "score": "5 maskgit-score (747 imgs), s",
                  "score_bf16": "  score.py on the bf16 images, s", "score_fp32": "  score.py on the fp32 images, s"}
        for key, r in gr.items():
            label = labels.get(key, key)
            if r.get("seconds") is not None:
                add(label + ("" if r.get("rc") == 0 else f" (rc {r['rc']})"), {"wall": r["seconds"],
                                                                                 "cpu": r.get("cpu_seconds")})
                fid = _fid(r)
                if fid is not None:
                    add(f"  FID of the {r.get('precision', '?')} images", fid)
            else:
                rows.append((label, "-", "-", "", r.get("note", "")[:70]))
    return rows


def print_report(results: dict) -> None:
    m = results["machine"]
    log("")
    log(f"machine: {m['cpu']}, {m['cores']} cores, torch {m['torch']} ({m['threads']} threads), "
        f"Python {m['python']}; load average {m['load_average']} at start, {results['load_average_end']} at end")
    for note in results["notes"]:
        log(f"note: {note}")
    header = ("measure", "wall time", "CPU time", "target", "met")
    rows = table_rows(results)
    w = [max(len(r[i]) for r in rows + [header]) for i in range(len(header))]
    log("  ".join(h.ljust(w[i]) for i, h in enumerate(header)))
    log("  ".join("-" * w[i] for i in range(len(header))))
    for r in rows:
        log("  ".join(c.ljust(w[i]) if i == 0 else c.rjust(w[i]) for i, c in enumerate(r)))
    log("wall time: what a user waits; CPU time: this process's CPU seconds (all threads), which other jobs on "
        f"the same cores inflate less. Total bench time {results['seconds']:.0f} s.")


def write_json(results: dict, path: str) -> None:
    atomic.write_json(path, results, default=str, allow_nan=True)


def run(args) -> dict:
    """Run the selected sections; returns every figure (what --json writes)."""
    start = time.perf_counter()
    if args.threads:
        torch.set_num_threads(args.threads)
    decoding.keep_freed_memory()  # as inpainting.py's main does; the per-image loop runs with it too
    results = {"machine": measure.machine_description(), "args": vars(args), "notes": []}
    busy = measure.busy_processes()
    if busy:
        results["notes"].append(f"{len(busy)} other busy process(es) shared the CPU at the start: " + "; ".join(busy))
    if args.quick:
        results["notes"].append("--quick: tiny sizes, the figures are not meaningful")
    model, notes = measure.load_bench_model(args.config, args.random_init, args.seed)
    results["notes"] += notes
    torch.manual_seed(args.seed)
    ctx = {"default_precision": command_line.inpainting_parser().get_default("precision")}
    data = None
    if {"inpaint", "steps", "grader"} - set(args.skip):
        data = measure.load_test_split(args.data_root, args.images)
        ctx["indices"] = data[2]
    n_all = len(data[0]) if data is not None else 0
    if "inpaint" not in args.skip:
        log(f"[1/5] inpainting {n_all} test images at T = 8")
        results["inpaint"] = ctx["inpaint"] = section_inpaint(model, data, args, ctx)
        results["notes"].append(
            f"per-image loop timed on {results['inpaint']['per_image_images']} images spread over the split, "
            f"interleaved batch by batch with the batched runs, and extrapolated per image to {n_all}; all paths "
            f"read the PNGs beforehand (untimed) and skip the imga/ per-step decodes")
    if "flops" not in args.skip:
        log("[2/5] transformer FLOP rate")
        results["flops"] = section_flops(model, args, ctx)
    if "steps" not in args.skip:
        log("[3/5] T = 8 vs T = 256")
        results["steps"] = section_steps(model, data, args, ctx)
    if "generation" not in args.skip:
        log("[3b/5] generation: T = 8 vs T = 256")
        results["generation"] = section_generation(model, args, ctx)
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
