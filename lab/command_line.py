"""The command-line edge of the two course scripts (given code): their flags, checked and resolved once.

``inpainting.py`` and ``training_transformer.py`` parse their flags here; every setting that has a config
default (choice temperature, mask schedule) or a name to look up (device) is resolved here, once, and the
rest of the code receives plain values (``decoding.DecodeSettings``, ``TrainTransformer``'s arguments), never
the parsed flags. Defaults are relative to this folder (the script folder).
"""
from __future__ import annotations

import argparse
import contextlib
import dataclasses
import math
import re
import traceback
from pathlib import Path

import torch

from decoding import DecodeSettings
from hole_fill import PREFILLS
from maskgit_kit.class_labels import class_names, folder_labels, locate, parse_class
from maskgit_kit.paths import SPLITS, split_paths
from models.checkpoint import CheckpointError
from models.config import MaskGitConfig
from models.loading import load_maskgit
from models.VQGAN_Transformer import EXTRA_MASK_FUNCS, MASK_FUNCS, NO_CLASS, MaskGit
from utils import DEFAULT_DATA_ROOT, DataError

HERE = Path(__file__).resolve().parent
PRECISIONS = ("fp32", "bf16")


# Flag types: a bad value is argparse's one-line error naming the flag (exit 2), before any work starts.
def _integer(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None


def _finite(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"expected a finite number, got {text}")
    return value


def positive_int(text: str) -> int:
    value = _integer(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text}")
    return value


def nonnegative_int(text: str) -> int:
    value = _integer(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected an integer >= 0, got {text}")
    return value


def seed_int(text: str) -> int:
    """A seed ``torch.manual_seed`` and ``torch.Generator.manual_seed`` both accept."""
    value = _integer(text)
    if not 0 <= value < 2**63:
        raise argparse.ArgumentTypeError(f"expected a seed from 0 to 2**63 - 1, got {text}")
    return value


def positive_float(text: str) -> float:
    value = _finite(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"expected a number > 0, got {text}")
    return value


def nonnegative_float(text: str) -> float:
    value = _finite(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected a number >= 0, got {text}")
    return value


def fraction(text: str) -> float:
    """A share of the data: 0 < value <= 1."""
    value = _finite(text)
    if not 0 < value <= 1:
        raise argparse.ArgumentTypeError(f"expected a fraction in (0, 1], got {text}")
    return value


def check_mask_func(model: MaskGit, name: str, flag: str) -> None:
    """Fail now, naming ``flag``, when ``model.gamma_func`` does not know the schedule ``name`` (an optional
    extra the student did not write), rather than after part of the work is done."""
    try:
        model.gamma_func(name)(0.5)  # gamma takes a float r
    except (ValueError, NotImplementedError) as exc:
        if str(exc).startswith("TODO"):  # a stub: its own error says what to write
            raise
        reason = str(exc) or f"unknown schedule (gamma_func raised {type(exc).__name__})"
        raise SystemExit(f"{flag} {name}: {reason}") from None


# ----------------------------------------------------------------------------------------------------
# inpainting.py
# ----------------------------------------------------------------------------------------------------
def inpainting_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="inpainting.py", description="MaskGIT inpainting of the test images",
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--config", default=None,
                   help="MaskGIT config (YAML; default: config/MaskGit.yml, or config/MaskGit_class.yml with --class)")
    p.add_argument("--load-transformer-ckpt-path", default=None,
                   help="transformer weights (default: the config's Transformer_CKPT_path)")
    p.add_argument("--vqgan-ckpt", default=None,
                   help="the tokenizer: VQGAN weights the transformer was trained on (default: VQ_CKPT_path)")
    add_split_args(p)
    p.add_argument("--output-dir", default=str(HERE), help="where test_results/, mask_scheduling/, imga/ go")
    p.add_argument("--total-iter", type=positive_int, default=8, help="T: steps of the mask schedule")
    p.add_argument("--sweet-spot", type=positive_int, default=None, help="stop after this many steps (default: T)")
    p.add_argument("--mask-func", choices=MASK_FUNCS + EXTRA_MASK_FUNCS, default=None,
                   help=f"mask schedule (default: the config's gamma_type); {', '.join(EXTRA_MASK_FUNCS)} are "
                        f"optional extras of gamma_func")
    p.add_argument("--choice-temperature", type=nonnegative_float, default=None,
                   help="confidence noise (default: config's)")
    p.add_argument("--sampling", choices=("argmax", "categorical"), default="argmax",
                   help="ids for masked tokens: the most likely one, or sampled from softmax(logits) as in "
                        "MaskGIT (argmax scored better FID with the shipped CPU-trained checkpoint)")
    p.add_argument("--composite", action="store_true", help="copy the known pixels from the input")
    p.add_argument("--prefill", choices=PREFILLS, default="laplace",
                   help="smooth the holes before tokenizing (none: the course's gray paint as given)")
    p.add_argument("--save-steps", action=argparse.BooleanOptionalAction, default=True,
                   help="write imga/ (decodes every step)")
    add_class_args(p)
    p.add_argument("--batch-size", type=positive_int, default=64, help="images decoded together")
    p.add_argument("--precision", choices=PRECISIONS, default="fp32")
    p.add_argument("--device", default="auto", help="auto, cpu or cuda")
    p.add_argument("--seed", type=seed_int, default=0)
    p.add_argument("--random-init", action="store_true", help="untrained transformer (smoke tests only)")
    return p


def add_class_args(p: argparse.ArgumentParser) -> None:
    """Class-conditional decoding (TODO4): the class, and classifier-free guidance."""
    p.add_argument("--class", dest="class_label", default=None, metavar="CLASS",
                   help="condition on a class (class-conditional model): an id or name (e.g. 3 or Dress), 'test' "
                        "(each test image's own class), or 'none' (unconditional, the 'no class' id)")
    p.add_argument("--guidance", type=nonnegative_float, default=1.0,
                   help="classifier-free guidance scale: 1 = plain conditional, 0 = unconditional, > 1 guided")
    p.add_argument("--guidance-ramp", action="store_true",
                   help="ramp the guidance linearly over the steps, 1 + (g - 1) * (t + 1) / T")


def default_config(args: argparse.Namespace) -> str:
    """``--config``, else the class-conditional config when a class is asked for, else config/MaskGit.yml."""
    if getattr(args, "config", None):
        return args.config
    name = "MaskGit_class.yml" if getattr(args, "class_label", None) not in (None, "none") else "MaskGit.yml"
    return str(HERE / "config" / name)


def resolve_labels(args: argparse.Namespace, model: MaskGit, count: int) -> list[int] | None:
    """Each test image's class label for ``--class`` (None: the model is unconditional, or no class asked for);
    one error naming the flag for a class that does not exist or a model that takes none."""
    value = getattr(args, "class_label", None)
    guided = getattr(args, "guidance", 1.0) != 1.0 or getattr(args, "guidance_ramp", False)
    if not getattr(model, "num_classes", 0):
        if value not in (None, "none") or guided:
            flag = f"--class {value}" if value not in (None, "none") else "--guidance"
            raise SystemExit(f"{flag}: the model of {model.cfg.source} is unconditional (num_classes 0); use a "
                             f"class-conditional config, e.g. --config {HERE / 'config' / 'MaskGit_class.yml'}")
        return None
    if value in (None, "none"):
        return [NO_CLASS] * count
    try:
        if value == "test":
            classes, labels = folder_labels(args.test_maskedimage_path, count)
        else:
            classes = class_names(locate(args.test_maskedimage_path)[0])
            labels = [parse_class(value, classes)] * count
    except DataError as exc:
        raise SystemExit(str(exc) if str(exc).startswith("--class") else f"--class {value}: {exc}") from None
    if len(classes) != model.num_classes:
        raise SystemExit(f"--class {value}: the data has {len(classes)} classes, the model {model.num_classes}")
    return labels


def add_split_args(p: argparse.ArgumentParser) -> None:
    """The test split by name, or its two folders by path (paths win)."""
    p.add_argument("--split", choices=list(SPLITS), default="strokes",
                   help="named test split: " + "; ".join(f"{k}: {v}" for k, v in SPLITS.items()).replace("%", "%%"))
    p.add_argument("--test-maskedimage-path", default=None, help="masked test images (default: the split's)")
    p.add_argument("--test-mask-path", default=None, help="test masks, 0 = hole (default: the split's)")


def resolve_split(args: argparse.Namespace) -> None:
    """Fill the test folders from ``--split`` where no path was given; a split not generated yet is one error."""
    images, masks = split_paths(args.split, DEFAULT_DATA_ROOT)
    given = args.test_maskedimage_path is not None and args.test_mask_path is not None
    args.test_maskedimage_path = args.test_maskedimage_path or str(images)
    args.test_mask_path = args.test_mask_path or str(masks)
    if not given and not Path(args.test_maskedimage_path).is_dir():
        raise SystemExit(f"--split {args.split}: {args.test_maskedimage_path} not found; generate the large-hole "
                         f"splits with `maskgit-prepare-data masks` (or pass --test-maskedimage-path)")


def check_inpainting_args(args: argparse.Namespace) -> None:
    """The checks that involve more than one flag (each flag's own range is its argparse type's)."""
    resolve_split(args)
    if args.sweet_spot is not None and not 1 <= args.sweet_spot <= args.total_iter:
        raise SystemExit(f"--sweet-spot {args.sweet_spot}: expected a number of steps from 1 to "
                         f"--total-iter ({args.total_iter})")


def with_mask_func(cfg: MaskGitConfig, mask_func: str | None) -> MaskGitConfig:
    """``cfg`` with the schedule of ``--mask-func`` (None: the config's own)."""
    return cfg if mask_func is None else dataclasses.replace(cfg, mask_func=mask_func)


def decode_settings(args: argparse.Namespace, cfg: MaskGitConfig) -> DecodeSettings:
    """The decoding settings of inpainting.py's flags, the config's defaults filled in."""
    temperature = cfg.choice_temperature if args.choice_temperature is None else args.choice_temperature
    return DecodeSettings(choice_temperature=float(temperature), total_iter=args.total_iter,
                          sweet_spot=args.sweet_spot, sample=args.sampling == "categorical", prefill=args.prefill,
                          precision=args.precision, composite=args.composite, save_steps=args.save_steps,
                          seed=args.seed, guidance=float(getattr(args, "guidance", 1.0)),
                          guidance_ramp=bool(getattr(args, "guidance_ramp", False)))


def inpainting_model(args: argparse.Namespace, cfg: MaskGitConfig, device: torch.device) -> MaskGit:
    """The MaskGit to inpaint with: the config's (or ``--load-transformer-ckpt-path``'s) transformer weights,
    random ones with ``--random-init``; its schedule checked against ``gamma_func``."""
    ckpt = None if args.random_init else args.load_transformer_ckpt_path or cfg.transformer_ckpt_path
    if ckpt is not None and not Path(ckpt).is_file():
        raise CheckpointError(f"{ckpt}: transformer checkpoint not found; train one with "
                              f"`python training_transformer.py` or pass --load-transformer-ckpt-path")
    model = load_maskgit(cfg, device, transformer_ckpt=ckpt)
    check_mask_func(model, model.mask_func, "--mask-func" if args.mask_func else f"{cfg.source}: gamma_type")
    return model


# ----------------------------------------------------------------------------------------------------
# training_transformer.py
# ----------------------------------------------------------------------------------------------------
def training_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="training_transformer.py",
                                description="Train MaskGIT's bidirectional transformer on VQGAN tokens",
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--config", default=str(HERE / "config" / "MaskGit.yml"), help="MaskGIT config (YAML)")
    p.add_argument("--vqgan-ckpt", default=None,
                   help="the tokenizer to train on: VQGAN weights (default: the config's VQ_CKPT_path), recorded in "
                        "every checkpoint written")
    p.add_argument("--train-d-path", default=str(DEFAULT_DATA_ROOT / "train"), help="training images")
    p.add_argument("--val-d-path", default=str(DEFAULT_DATA_ROOT / "val"), help="validation images")
    p.add_argument("--checkpoint-path", default=str(HERE / "transformer_checkpoints"),
                   help="folder for epoch_N.pt / last.pt (training states), best.pt (weights) and log.csv")
    p.add_argument("--device", default="auto", help="auto, cpu or cuda")
    p.add_argument("--batch-size", type=positive_int, default=64)
    p.add_argument("--accum-grad", type=positive_int, default=1, help="batches per optimizer step")
    p.add_argument("--epochs", type=positive_int, default=10)
    p.add_argument("--learning-rate", type=positive_float, default=4e-4)
    p.add_argument("--warmup-steps", type=nonnegative_int, default=200, help="optimizer steps of linear warm-up")
    p.add_argument("--save-per-epoch", type=positive_int, default=1, help="write epoch_N.pt every N epochs")
    p.add_argument("--start-from-epoch", type=nonnegative_int, default=0, help="resume from checkpoint-path/epoch_N.pt")
    p.add_argument("--resume", action="store_true", help="resume from checkpoint-path/last.pt")
    p.add_argument("--init-from", default=None,
                   help="start a new run from these transformer weights (e.g. ../checkpoints/transformer.pt)")
    p.add_argument("--overwrite", action="store_true", help="start over even if checkpoint-path holds a run")
    p.add_argument("--partial", type=fraction, default=1.0, help="fraction of the data to use")
    p.add_argument("--num-workers", type=nonnegative_int, default=0, help="data-loader workers (image mode only)")
    p.add_argument("--token-cache", action=argparse.BooleanOptionalAction, default=True,
                   help="encode the images once and train on cached token ids")
    p.add_argument("--token-cache-dir", default=str(DEFAULT_DATA_ROOT / "token_cache"))
    p.add_argument("--precision", choices=PRECISIONS, default="bf16",
                   help="bf16 autocast roughly doubles CPU throughput")
    p.add_argument("--seed", type=seed_int, default=0)
    return p


@contextlib.contextmanager
def todo_stubs_as_errors():
    """Run a script's ``main``: a TODO stub it reaches ends the script with one line naming the TODO and where.

    Why: a student who runs a script before finishing a TODO should read which TODO, not a traceback through the
    given code. (The grader calls ``main`` directly, so it still sees the stub's ``NotImplementedError``.)"""
    try:
        yield
    except NotImplementedError as exc:
        match = re.match(r"(TODO\d+): (\w+)", str(exc))
        if match is None:
            raise
        todo, function = match.groups()
        frames = traceback.extract_tb(exc.__traceback__)
        where = f" (raised at {Path(frames[-1].filename).name}:{frames[-1].lineno})" if frames else ""
        raise SystemExit(f"error: {todo} is not implemented yet: {function}{where}; "
                         f"implement it, then check it with `pytest grader/ --todo {todo}`") from None
