"""The measurements behind ``bench/run.py``, one importable function per figure.

Why a separate module: the figures are reused by the smoke test (``tests/test_bench.py``) on tiny configs,
and each one must be measurable on its own while debugging. Every timing runs the reference code in
``solutions/`` itself (``iterative_decoding``, ``MaskGit.inpainting_step``, ``TrainTransformer``), never a
re-implementation, so the figures describe what students and graders actually run.
"""
from __future__ import annotations

import contextlib
import copy
import os
import platform
import resource
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from torch.utils.data import DataLoader

from maskgit_kit import labtree
from maskgit_kit.paths import KIT_ROOT as REPO

REFERENCE = labtree.activate(REPO / "solutions")  # the benchmark times the reference implementation
_inpainting = REFERENCE.module("inpainting")
iterative_decoding, guided_decoding = _inpainting.iterative_decoding, _inpainting.guided_decoding
_decoding = REFERENCE.module("decoding")
precision_context, tokenize_masked = _decoding.precision_context, _decoding.tokenize_masked
DecodeSettings, decode_tokens, pad_batch = _decoding.DecodeSettings, _decoding.decode_tokens, _decoding.pad_batch
image_generators = REFERENCE.module("models.sampling").image_generators
_config = REFERENCE.module("models.config")
MaskGitConfig, load_maskgit_config = _config.MaskGitConfig, _config.load_maskgit_config
_vqgan = REFERENCE.module("models.VQGAN")
VQGAN, load_vqgan = _vqgan.VQGAN, _vqgan.load_vqgan
MaskGit = REFERENCE.module("models.VQGAN_Transformer").MaskGit
load_maskgit = REFERENCE.module("models.loading").load_maskgit
_titok = REFERENCE.module("models.TiTok")
_titok_tokenizer = REFERENCE.module("models.TiTok.tokenizer")
_token_cache = REFERENCE.module("token_cache")
encode_folder, token_loader = _token_cache.encode_folder, _token_cache.token_loader
TrainTransformer = REFERENCE.module("training_transformer").TrainTransformer
_utils = REFERENCE.module("utils")
LoadTestData, LoadTrainData = _utils.LoadTestData, _utils.LoadTrainData


# ----------------------------------------------------------------------------------------------------
# The machine
# ----------------------------------------------------------------------------------------------------
def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def busy_processes(min_cpu: float = 20.0) -> list[str]:
    """Other processes using the CPU now (``ps``): the figures are only comparable within one run when
    something else (e.g. a training job) shares the cores, so the report names them."""
    try:
        out = subprocess.run(["ps", "-eo", "pid,ppid,pcpu,etime,args", "--sort=-pcpu"], capture_output=True,
                             text=True, timeout=10).stdout.splitlines()[1:]
    except (OSError, subprocess.SubprocessError):
        return []
    mine = {os.getpid(), os.getppid()}
    busy = []
    for line in out:
        pid, ppid, pcpu, etime, args = line.split(None, 4)
        if int(pid) in mine or int(ppid) == os.getpid() or float(pcpu) < min_cpu:
            continue
        busy.append(f"pid {pid} {float(pcpu):.0f}% cpu for {etime}: {args[:110]}")
    return busy


def machine_description() -> dict:
    info = {
        "cpu": cpu_model(),
        "cores": os.cpu_count(),
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "mkldnn_bf16": bool(getattr(torch.backends.mkldnn, "is_available", lambda: False)()),
        "load_average": [round(x, 2) for x in os.getloadavg()],
    }
    try:
        flags = Path("/proc/cpuinfo").read_text()
        info["avx512_bf16"] = "avx512_bf16" in flags
        info["amx_bf16"] = "amx_bf16" in flags
    except OSError:
        pass
    return info


# ----------------------------------------------------------------------------------------------------
# Timing helpers
# ----------------------------------------------------------------------------------------------------
@dataclass
class Timing:
    """Wall seconds and CPU seconds of this process (all its threads, user + system).

    Why both: when other jobs share the cores, wall time measures the contention as much as the code;
    CPU time still counts only the work done (and the page faults it causes), so ratios of CPU times
    stay comparable. With one torch thread, CPU time <= wall time.
    """

    wall: float = 0.0
    cpu: float = 0.0

    def __iadd__(self, other: Timing) -> Timing:
        self.wall += other.wall
        self.cpu += other.cpu
        return self


@contextlib.contextmanager
def clock(into: Timing):
    """Add the wall and CPU time of the ``with`` body to ``into``."""
    wall, cpu = time.perf_counter(), time.process_time()
    try:
        yield into
    finally:
        into.wall += time.perf_counter() - wall
        into.cpu += time.process_time() - cpu


def timed(fn, *args, **kwargs):
    """(result, Timing) of one call."""
    t = Timing()
    with clock(t):
        result = fn(*args, **kwargs)
    return result, t


def best_time(fn, reps: int = 3, warmup: int = 1) -> Timing:
    """Shortest wall and shortest CPU time of ``reps`` calls after ``warmup`` untimed ones: the least
    disturbed by other load."""
    for _ in range(warmup):
        fn()
    times = [timed(fn)[1] for _ in range(reps)]
    return Timing(min(t.wall for t in times), min(t.cpu for t in times))


def rate(flops: float, t: Timing) -> dict:
    """GFLOP/s by wall time, and GFLOP per CPU-second (per core busy)."""
    return {"wall": flops / t.wall / 1e9, "cpu": flops / max(t.cpu, 1e-9) / 1e9}


def matmul_peak(dtype: torch.dtype, n: int = 2048, reps: int = 5) -> dict:
    """Measured square-matmul rate (2 n^3 FLOPs per product), the best of ``reps``, by wall and CPU time:
    the machine's practical peak for ``dtype`` with the current thread setting."""
    g = torch.Generator().manual_seed(0)
    a = torch.randn(n, n, generator=g).to(dtype)
    b = torch.randn(n, n, generator=g).to(dtype)
    return rate(2 * n**3, best_time(lambda: torch.mm(a, b), reps=reps, warmup=2))


def transformer_flops(cfg: MaskGitConfig) -> int:
    """Multiply-add FLOPs (2 per MAC) of one ``BidirectionalTransformer`` forward for ONE image, counted
    from the config: the matmuls only (projections, attention products, MLP, token predictor, logits);
    elementwise work (softmax, LayerNorm, GELU) is not counted, as is usual for achieved-FLOP figures."""
    t = cfg.transformer
    n, d, hid, vocab = t.num_image_tokens, t.dim, t.hidden_dim, t.num_codebook_vectors + 1
    per_layer = (2 * n * d * d * 4          # q, k, v and output projections
                 + 2 * n * n * d * 2        # Q K^T and attn V, all heads together
                 + 2 * n * d * hid * 2)     # the MLP's two linears
    head = 2 * n * d * d + 2 * n * d * vocab  # TokenPredictor's linear, logits against tok_emb
    return t.n_layers * per_layer + head


# ----------------------------------------------------------------------------------------------------
# Model and data
# ----------------------------------------------------------------------------------------------------
def load_bench_model(config: str | Path, random_init: bool = False, seed: int = 0) -> tuple[MaskGit, list[str]]:
    """MaskGit of ``config`` with the shipped checkpoints when present, random weights otherwise.

    Returns ``(model, notes)``; the notes say which weights were used (timings do not depend on the
    weights, token agreement between precisions does a little).
    """
    cfg = load_maskgit_config(config)
    torch.manual_seed(seed)
    notes = []
    if cfg.titok_ckpt_path:  # MaskGIT on TiTok's 1D tokens
        return _load_titok_bench_model(cfg, random_init)
    if not random_init and Path(cfg.vqgan_ckpt_path).is_file():
        vqgan = load_vqgan(cfg.vqgan, cfg.vqgan_ckpt_path)
        notes.append(f"VQGAN weights: {cfg.vqgan_ckpt_path}")
    else:
        vqgan = VQGAN(cfg.vqgan)
        why = "--random-init" if random_init else f"{cfg.vqgan_ckpt_path} not found"
        notes.append(f"VQGAN weights: random ({why})")
    model = MaskGit(cfg, vqgan=vqgan)
    if not random_init and Path(cfg.transformer_ckpt_path).is_file():
        model.load_transformer_checkpoint(cfg.transformer_ckpt_path)
        notes.append(f"transformer weights: {cfg.transformer_ckpt_path}")
    else:
        why = "--random-init" if random_init else f"{cfg.transformer_ckpt_path} not found"
        notes.append(f"transformer weights: random ({why})")
    return model.eval(), notes


def _load_titok_bench_model(cfg: MaskGitConfig, random_init: bool) -> tuple[MaskGit, list[str]]:
    """``load_bench_model`` for a MaskGIT-on-TiTok config: the shipped TiTok, teacher and transformer when all are
    present, else random weights (the TiTok and its teacher random together: a trained TiTok needs its teacher)."""
    files = (cfg.vqgan_ckpt_path, cfg.titok_ckpt_path)
    if not random_init and all(Path(f).is_file() for f in files):
        has_transformer = Path(cfg.transformer_ckpt_path).is_file()
        model = load_maskgit(cfg, transformer_ckpt=cfg.transformer_ckpt_path if has_transformer else None)
        notes = [f"TiTok weights: {cfg.titok_ckpt_path} (teacher {cfg.vqgan_ckpt_path})",
                 f"1D transformer weights: {cfg.transformer_ckpt_path if has_transformer else 'random (not found)'}"]
        return model.eval(), notes
    run = _titok.load_titok_config(cfg.titok_config_path)
    tokenizer = _titok_tokenizer.TiTokTokenizer(_titok.TiTok(run.titok), VQGAN(cfg.vqgan))
    why = "--random-init" if random_init else "a checkpoint not found"
    return MaskGit(cfg, vqgan=tokenizer).eval(), [f"TiTok, teacher and 1D transformer weights: random ({why})"]


def load_test_split(data_root: str | Path, limit: int | None = None):
    """All (or the first ``limit``) test images in memory: images (M,3,H,W), pixel masks (M,1,H,W),
    indices (M,). Reading the PNGs is the same for every method compared, so it is done once, untimed."""
    data_root = Path(data_root)
    dataset = LoadTestData(data_root / "masked_image", data_root / "mask64")
    if limit is not None:
        dataset = torch.utils.data.Subset(dataset, range(min(limit, len(dataset))))
    images, masks, indices = [], [], []
    for x, m, i in DataLoader(dataset, batch_size=256, shuffle=False):
        images.append(x)
        masks.append(m)
        indices.append(i)
    return torch.cat(images), torch.cat(masks), torch.cat(indices)


# ----------------------------------------------------------------------------------------------------
# 1 and 3: inpainting, batched vs per image, T = 8 vs T = 256
# ----------------------------------------------------------------------------------------------------
@dataclass
class Inpainted:
    tokens: torch.Tensor   # int64 (M, N), the final token ids
    images: torch.Tensor   # float (M, 3, H, W) in [-1, 1], decoded from ``tokens``
    time: Timing


def inpaint_batched(model: MaskGit, images, pixel_masks, indices, total_iter: int = 8, seed: int = 0,
                    precision: str = "fp32", batch_size: int = 64) -> Inpainted:
    """The reference path: the calls of ``decoding.inpaint_batch`` (encode, latent mask, per-image
    generators, ``iterative_decoding`` under the precision context, decode), ``batch_size`` images at a
    time, without its per-step decodes for imga/ (``--no-save-steps``). Returns the tokens too."""
    device = images.device
    tokens, outs = [], []
    elapsed = Timing()
    with clock(elapsed), torch.inference_mode():
        for s in range(0, len(images), batch_size):
            x, pm, idx = images[s:s + batch_size], pixel_masks[s:s + batch_size], indices[s:s + batch_size]
            z, mask = tokenize_masked(model, x, pm)
            with precision_context(device, precision):
                z_final, _ = iterative_decoding(model, z, mask, total_iter, generators=image_generators(idx, seed),
                                                choice_temperature=model.cfg.choice_temperature,
                                                sample=False)  # argmax, inpainting.py's default
            tokens.append(z_final)
            outs.append(model.decode_to_image(z_final))
    return Inpainted(torch.cat(tokens), torch.cat(outs), elapsed)


def inpaint_per_image(model: MaskGit, images, pixel_masks, indices, total_iter: int = 8, seed: int = 0) -> Inpainted:
    """The course's style: one image at a time (batch 1), one transformer call per image per step, fp32,
    under ``torch.no_grad``; same per-image generators as the batched path, so the tokens must agree."""
    tokens, outs = [], []
    elapsed = Timing()
    with clock(elapsed), torch.no_grad():
        for i in range(len(images)):
            x = images[i:i + 1]
            z, mask = tokenize_masked(model, x, pixel_masks[i:i + 1])
            num_unknown_start = mask.sum(dim=1)
            gens = image_generators(indices[i:i + 1], seed)
            for t in range(total_iter):
                z, mask = model.inpainting_step(z, mask, num_unknown_start, (t + 1) / total_iter,
                                                model.cfg.choice_temperature, sample=False, generators=gens)
            tokens.append(z)
            outs.append(model.decode_to_image(z))
    return Inpainted(torch.cat(tokens), torch.cat(outs), elapsed)


def token_agreement(a: torch.Tensor, b: torch.Tensor, mask: torch.Tensor) -> dict:
    """How far two token outputs agree: identical images, and identical tokens among the inpainted ones."""
    same_tokens = (a == b) & mask
    return {
        "identical_images": float((a == b).all(dim=1).float().mean()),
        "identical_inpainted_tokens": float(same_tokens.sum() / mask.sum().clamp(min=1)),
        "images": int(a.shape[0]),
    }


def generate_batched(model: MaskGit, n: int, total_iter: int = 8, seed: int = 0, precision: str = "fp32",
                     batch_size: int = 64, guidance: float = 1.0) -> Inpainted:
    """Generation from nothing: every token masked, ``n`` images decoded ``batch_size`` at a time through
    ``decoding.decode_tokens`` (``iterative_decoding``, or ``guided_decoding`` for a class-conditional model, image i
    conditioned on class i mod C at ``guidance``), then decoded to pixels. Image i is seeded with index i, as an
    inpainted test image is; batches are padded as ``pad_batch`` pads them."""
    device = next(model.parameters()).device
    settings = DecodeSettings(choice_temperature=model.cfg.choice_temperature, total_iter=total_iter,
                              precision=precision, save_steps=False, seed=seed, guidance=guidance)
    labels = [i % model.num_classes if model.num_classes else -1 for i in range(n)]
    tokens, outs = [], []
    elapsed = Timing()
    with clock(elapsed), torch.inference_mode():
        for s in range(0, n, batch_size):
            m = min(batch_size, n - s)
            dummy = torch.zeros(m, 1, 1, 1, device=device)
            _, _, idx, _, lab = pad_batch(dummy, dummy, range(s, s + m), labels[s:s + m])
            z = torch.zeros(len(idx), model.num_image_tokens, dtype=torch.int64, device=device)
            z_final, _ = decode_tokens(model, z, torch.ones_like(z, dtype=torch.bool), image_generators(idx, seed),
                                       settings, iterative_decoding, labels=torch.tensor(lab),
                                       guided_decoding=guided_decoding)
            tokens.append(z_final[:m])
            outs.append(model.decode_to_image(z_final[:m]))
    return Inpainted(torch.cat(tokens), torch.cat(outs), elapsed)


@torch.inference_mode()
def single_step_agreement(model: MaskGit, images, pixel_masks, batch_size: int = 64) -> dict:
    """bf16 vs fp32 on ONE decoding step from the same input: the direct precision error, before the
    sampler's feedback amplifies any change (a token changed at step 1 changes every later step).

    Compares, at the masked positions: argmax ids, the sampled ids with the same Gumbel noise, and the
    largest |log p| difference of the chosen id.
    """
    argmax_same = sample_same = total = 0
    max_logp = 0.0
    for s in range(0, len(images), batch_size):
        z, mask = tokenize_masked(model, images[s:s + batch_size], pixel_masks[s:s + batch_size])
        inp = z.masked_fill(mask, model.mask_token_id)
        logp = {}
        for prec in ("fp32", "bf16"):
            with precision_context(images.device, prec):
                logits = model.transformer(inp).float()
            logits[..., model.mask_token_id] = -torch.inf
            logp[prec] = logits.log_softmax(-1)
        g = torch.Generator().manual_seed(s)
        noise = -torch.log(-torch.log(torch.rand(logp["fp32"].shape, generator=g).clamp(1e-20, 1 - 1e-7)))
        a32, a16 = logp["fp32"].argmax(-1), logp["bf16"].argmax(-1)
        s32, s16 = (logp["fp32"] + noise).argmax(-1), (logp["bf16"] + noise).argmax(-1)
        argmax_same += int(((a32 == a16) & mask).sum())
        sample_same += int(((s32 == s16) & mask).sum())
        total += int(mask.sum())
        chosen = logp["fp32"].gather(-1, a32[..., None]) - logp["bf16"].gather(-1, a32[..., None])
        max_logp = max(max_logp, float(chosen.squeeze(-1)[mask].abs().max()) if mask.any() else 0.0)
    return {"argmax_agreement": argmax_same / max(1, total), "sample_agreement": sample_same / max(1, total),
            "max_abs_logp_diff": max_logp, "masked_tokens": total}


@torch.inference_mode()
def forward_rate(model: MaskGit, batch_size: int, precision: str, reps: int = 3) -> dict:
    """Achieved rate of the batched transformer forward (the decoding workload: 25 % masked tokens)."""
    g = torch.Generator().manual_seed(0)
    n, k = model.num_image_tokens, model.num_codebook_vectors
    z = torch.randint(0, k, (batch_size, n), generator=g)
    z = z.masked_fill(torch.rand(batch_size, n, generator=g) < 0.25, model.mask_token_id)
    with precision_context(z.device, precision):
        t = best_time(lambda: model.transformer(z), reps=reps)
    return rate(transformer_flops(model.cfg) * batch_size, t)


# ----------------------------------------------------------------------------------------------------
# 4: training throughput
# ----------------------------------------------------------------------------------------------------
class FirstBatches:
    """The first ``n`` batches of a loader, lazily (image loading stays inside the timed loop)."""

    def __init__(self, loader, n: int):
        self.loader, self.n = loader, n

    def __len__(self) -> int:
        return min(self.n, len(self.loader))

    def __iter__(self):
        for i, batch in enumerate(self.loader):
            if i >= self.n:
                return
            yield batch


def make_trainer(model: MaskGit, precision: str, steps: int) -> TrainTransformer:
    """A ``TrainTransformer`` on a fresh copy of the transformer, so that configurations do not interact."""
    model = copy.deepcopy(model)
    return TrainTransformer(model, learning_rate=4e-4, accum_grad=1, epochs=1, steps_per_epoch=steps, warmup_steps=10,
                            label_smoothing=model.cfg.label_smoothing, precision=precision,
                            device=next(model.parameters()).device)


def training_throughput(model: MaskGit, configs: dict, batches: int) -> dict:
    """Training time of ``TrainTransformer.train_one_epoch`` per configuration ``name: (loader, precision)``.

    Interleaved: each round trains every configuration on one batch of its loader, so that all of them
    see the same background load. One untimed warm-up round first. Returns ``{name: Timing}``.
    """
    trainers = {name: make_trainer(model, prec, batches + 1) for name, (_, prec) in configs.items()}
    times = {name: Timing() for name in configs}
    for r in range(batches + 1):
        for name, (loader, _) in configs.items():
            one = FirstBatches(loader, 1)  # a new iterator: a fresh shuffle, one batch
            if r == 0:
                trainers[name].train_one_epoch(one)
            else:
                with clock(times[name]):
                    trainers[name].train_one_epoch(one)
    return times


def training_loaders(model: MaskGit, train_dir: str | Path, batch_size: int, batches: int, seed: int = 0):
    """(image loader, token loader, Timing of building the tokens, images) over the first (batches + 1) * batch_size
    training images: the two modes of ``token_cache.build_loaders`` on the same images."""
    files = LoadTrainData(train_dir)
    needed = (batches + 1) * batch_size
    dataset = LoadTrainData(train_dir, partial=min(1.0, needed / len(files)))
    gen = torch.Generator().manual_seed(seed)
    images = DataLoader(dataset, batch_size=batch_size, shuffle=True, drop_last=True, generator=gen)
    device = next(model.parameters()).device
    tokens, t = timed(encode_folder, model, dataset, device, batch_size)
    return images, token_loader(tokens, batch_size, shuffle=True, seed=seed), t, len(dataset)


# ----------------------------------------------------------------------------------------------------
# 5: grading and scoring as the course staff run them
# ----------------------------------------------------------------------------------------------------
def time_command(cmd: list[str], timeout: float, cwd: Path = REPO) -> dict:
    """Wall time (and the children's CPU time) of a subprocess; on failure the tail of its output is kept."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    try:
        proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"cmd": " ".join(cmd), "seconds": None, "rc": None, "note": f"timed out after {timeout:.0f} s"}
    seconds = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    result = {"cmd": " ".join(cmd), "seconds": seconds, "cpu_seconds": cpu, "rc": proc.returncode,
              "output_tail": (proc.stdout + proc.stderr).strip()[-600:]}
    if proc.returncode != 0:
        result["note"] = "failed: " + (proc.stdout + proc.stderr).strip()[-300:]
    return result
