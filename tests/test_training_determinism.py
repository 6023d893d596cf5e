"""Transformer training reproduces itself: a resumed run equals the uninterrupted one bit for bit (CPU), the token
cache never changes the result, an epoch without a batch is an error, and every numeric flag is checked by
argparse (issue 16)."""
import csv
import shutil

import experiments
import pytest
import torch

import training_transformer
from command_line import inpainting_parser, training_parser

LOSSES = ("train_loss", "val_loss", "val_acc", "lr")


def train_args(setup, ckpt, *extra, cache="cache"):
    d = setup["data"]
    return ["--config", str(setup["config"]), "--train-d-path", str(d / "train"), "--val-d-path", str(d / "val"),
            "--checkpoint-path", str(setup["root"] / ckpt), "--token-cache-dir", str(setup["root"] / cache),
            "--batch-size", "4", "--device", "cpu", "--precision", "fp32", "--epochs", "2", *extra]


def log_losses(folder):
    with (folder / "log.csv").open(newline="") as f:
        return [{k: row[k] for k in ("epoch", *LOSSES)} for row in csv.DictReader(f)]


def assert_same_state(a, b):
    """last.pt of two runs: equal weights, optimizer moments and RNG state, tensor for tensor."""
    sa = torch.load(a / "last.pt", weights_only=True)
    sb = torch.load(b / "last.pt", weights_only=True)
    assert sa["epoch"] == sb["epoch"]
    assert sa["state_dict"].keys() == sb["state_dict"].keys()
    for k in sa["state_dict"]:
        assert torch.equal(sa["state_dict"][k], sb["state_dict"][k]), k
    for pid, st in sa["optimizer"]["state"].items():
        for k, v in st.items():
            assert torch.equal(v, sb["optimizer"]["state"][pid][k]), (pid, k)
    assert torch.equal(sa["rng"]["torch"], sb["rng"]["torch"])
    assert torch.equal(sa["rng"]["shuffle"], sb["rng"]["shuffle"])


def interrupt_at_epoch(monkeypatch, stop):
    """Make train_one_epoch raise KeyboardInterrupt (a Ctrl-C) when it reaches epoch ``stop``."""
    real = training_transformer.TrainTransformer.train_one_epoch

    def train_one_epoch(self, loader, epoch=0):
        if epoch == stop:
            raise KeyboardInterrupt
        return real(self, loader, epoch)

    monkeypatch.setattr(training_transformer.TrainTransformer, "train_one_epoch", train_one_epoch)


def test_resume_reproduces_the_uninterrupted_run(tiny_setup, monkeypatch, capsys):
    root = tiny_setup["root"]
    training_transformer.main(train_args(tiny_setup, "straight"))
    with monkeypatch.context() as m:
        interrupt_at_epoch(m, 2)
        with pytest.raises(KeyboardInterrupt):
            training_transformer.main(train_args(tiny_setup, "resumed"))
    assert torch.load(root / "resumed" / "last.pt", weights_only=True)["epoch"] == 1
    training_transformer.main(train_args(tiny_setup, "resumed", "--resume"))
    assert "note: resuming" not in capsys.readouterr().out  # the same flags: nothing to warn about
    assert log_losses(root / "resumed") == log_losses(root / "straight")
    assert_same_state(root / "resumed", root / "straight")

    # --start-from-epoch 1 redoes epoch 2 from epoch_1.pt: the same epoch 2 again
    shutil.copytree(root / "straight", root / "restarted")
    training_transformer.main(train_args(tiny_setup, "restarted", "--start-from-epoch", "1"))
    assert log_losses(root / "restarted") == log_losses(root / "straight")
    assert_same_state(root / "restarted", root / "straight")


def test_resume_after_the_last_epoch_and_with_other_flags(tiny_setup, capsys):
    root = tiny_setup["root"]
    training_transformer.main(train_args(tiny_setup, "run"))
    with pytest.raises(SystemExit, match=r"already done 2 epochs; --epochs 2 leaves nothing to train"):
        training_transformer.main(train_args(tiny_setup, "run", "--resume"))
    with pytest.raises(SystemExit, match=r"epoch_1.pt: .*already done 1 epochs; --epochs 1 leaves nothing"):
        training_transformer.main(train_args(tiny_setup, "run", "--start-from-epoch", "1", "--epochs", "1"))
    capsys.readouterr()
    training_transformer.main(train_args(tiny_setup, "run", "--resume", "--epochs", "3"))
    assert "--epochs 2 -> 3" in capsys.readouterr().out  # the cosine schedule is stretched: said, not hidden
    assert [r["epoch"] for r in log_losses(root / "run")] == ["1", "2", "3"]


def test_an_older_state_without_the_data_order_still_resumes(tiny_setup, capsys):
    root = tiny_setup["root"]
    training_transformer.main(train_args(tiny_setup, "run", "--epochs", "1"))
    state = torch.load(root / "run" / "last.pt", weights_only=True)
    state["rng"] = state["rng"]["torch"]  # the format before the shuffle generator was saved
    torch.save(state, root / "run" / "last.pt")
    training_transformer.main(train_args(tiny_setup, "run", "--resume", "--epochs", "2"))
    assert "has no data-order state" in capsys.readouterr().out
    assert torch.load(root / "run" / "last.pt", weights_only=True)["epoch"] == 2


def test_the_token_cache_never_changes_the_result(tiny_setup):
    """Cold cache (encoded in this run), warm cache, no cache: the same weights; a fixed seed gives them twice,
    another seed other weights."""
    root = tiny_setup["root"]
    training_transformer.main(train_args(tiny_setup, "cold", "--epochs", "1"))
    assert len(list((root / "cache").glob("*.pt"))) == 2  # train and val tokens were encoded by this run
    training_transformer.main(train_args(tiny_setup, "warm", "--epochs", "1"))
    assert log_losses(root / "warm") == log_losses(root / "cold")
    assert_same_state(root / "warm", root / "cold")
    # the VQGAN encoder is deterministic, so encoding every batch gives the cached tokens and the same run
    training_transformer.main(train_args(tiny_setup, "uncached", "--epochs", "1", "--no-token-cache"))
    assert log_losses(root / "uncached") == log_losses(root / "cold")
    assert_same_state(root / "uncached", root / "cold")
    # under bf16 too: the frozen VQGAN encodes in fp32 inside MaskGit.forward, as the cache does
    training_transformer.main(train_args(tiny_setup, "cold16", "--epochs", "1", "--precision", "bf16"))
    training_transformer.main(train_args(tiny_setup, "uncached16", "--epochs", "1", "--precision", "bf16",
                                         "--no-token-cache"))
    assert log_losses(root / "uncached16") == log_losses(root / "cold16")
    assert_same_state(root / "uncached16", root / "cold16")
    training_transformer.main(train_args(tiny_setup, "seed1", "--epochs", "1", "--seed", "1"))
    first = torch.load(root / "cold" / "last.pt", weights_only=True)["state_dict"]
    other = torch.load(root / "seed1" / "last.pt", weights_only=True)["state_dict"]
    assert not all(torch.equal(first[k], other[k]) for k in first)


@pytest.mark.parametrize("extra,message", [
    (["--batch-size", "16"], r"--batch-size 16: the 8 training images of .*train make no full batch"),
    (["--batch-size", "16", "--no-token-cache"], r"--batch-size 16: the 8 training images of .*train make no full"),
    (["--partial", "0.25"], r"--batch-size 4: the 2 training images of .*train with --partial 0.25 make no full"),
])
def test_an_epoch_without_a_batch_is_an_error(tiny_setup, extra, message):
    with pytest.raises(SystemExit, match=message + r".*use --batch-size \d or less"):
        training_transformer.main(train_args(tiny_setup, "empty", *extra))
    assert not (tiny_setup["root"] / "empty" / "last.pt").exists()  # nothing trained, nothing written


TRAINING_BAD = [
    ("--learning-rate", "-1"), ("--learning-rate", "0"), ("--learning-rate", "nan"), ("--learning-rate", "inf"),
    ("--learning-rate", "fast"), ("--warmup-steps", "-1"), ("--warmup-steps", "1.5"), ("--epochs", "0"),
    ("--batch-size", "0"), ("--batch-size", "-4"), ("--accum-grad", "0"), ("--save-per-epoch", "0"),
    ("--start-from-epoch", "-1"), ("--partial", "0"), ("--partial", "1.5"), ("--partial", "-0.5"),
    ("--partial", "nan"), ("--num-workers", "-1"), ("--seed", "-1"), ("--seed", str(2**64)),
]
INPAINTING_BAD = [
    ("--choice-temperature", "-1"), ("--choice-temperature", "nan"), ("--choice-temperature", "inf"),
    ("--sweet-spot", "0"), ("--total-iter", "0"), ("--total-iter", "-3"), ("--total-iter", "2.5"),
    ("--mask-func", "triangle"), ("--batch-size", "0"), ("--seed", "x"),
]
EXPERIMENTS_BAD = [
    ("--total-iters", "0"), ("--sweet-spots", "-1"), ("--choice-temperature", "nan"), ("--batch-size", "0"),
    ("--limit", "-1"), ("--fid-dims", "100"), ("--mask-funcs", "triangle"), ("--seed", "-2"),
]


def assert_flag_error(parser, flag, value, capsys):
    with pytest.raises(SystemExit) as exc:
        parser.parse_args([flag, value])
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert f"argument {flag}" in err[-1] and value in err[-1], err  # one line, naming the flag and the value


@pytest.mark.parametrize("flag,value", TRAINING_BAD)
def test_training_flags_are_checked_by_argparse(flag, value, capsys):
    assert_flag_error(training_parser(), flag, value, capsys)


@pytest.mark.parametrize("flag,value", INPAINTING_BAD)
def test_inpainting_flags_are_checked_by_argparse(flag, value, capsys):
    assert_flag_error(inpainting_parser(), flag, value, capsys)


@pytest.mark.parametrize("flag,value", EXPERIMENTS_BAD)
def test_experiments_flags_are_checked_by_argparse(flag, value, capsys):
    assert_flag_error(experiments.build_parser(), flag, value, capsys)


def test_good_flag_values_still_parse():
    args = training_parser().parse_args(["--learning-rate", "1e-4", "--warmup-steps", "0", "--epochs", "1",
                                         "--partial", "1", "--start-from-epoch", "0", "--seed", "7"])
    assert (args.learning_rate, args.warmup_steps, args.epochs, args.partial, args.seed) == (1e-4, 0, 1, 1.0, 7)
    assert training_parser().parse_args(["--partial", "0.01"]).partial == 0.01
    args = inpainting_parser().parse_args(["--choice-temperature", "0", "--total-iter", "1", "--sweet-spot", "1",
                                           "--batch-size", "1", "--mask-func", "square"])
    assert (args.choice_temperature, args.total_iter, args.sweet_spot, args.mask_func) == (0.0, 1, 1, "square")
    args = experiments.build_parser().parse_args(["--total-iters", "1", "8", "--limit", "0", "--fid-dims", "64"])
    assert (args.total_iters, args.limit, args.fid_dims) == ([1, 8], 0, 64)
