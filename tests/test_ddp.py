"""Transformer training under ``torchrun`` (solutions/distributed_training.py, issue 15): two CPU processes (gloo)
with --batch-size 2 train the weights one process trains with --batch-size 4; only rank 0 writes files; --resume
under torchrun continues the same run; the saved weights load as a plain transformer's."""
from __future__ import annotations

import csv
import os
import subprocess
import sys
import textwrap

import pytest
import torch
import torch.distributed as dist
import yaml
from torch.utils.data import DataLoader

from conftest import REPO
from distributed_training import ShardedShuffle, SharedGradients
from models.config import load_maskgit_config
from models.loading import load_maskgit
from models.Transformer.class_conditional import ClassConditionalTransformer

# The driver every run goes through. Why it patches MaskGit.mask_tokens: the training masks draw from each
# process's own random stream, so two processes draw other masks than one process does for the same images and
# the weights could not be compared; with every token masked the loss, and so the gradients, depend on the data
# and the weights only. (Dropout is 0 in the test's config for the same reason.) It also records, per rank, every
# file written through maskgit_kit.atomic (which all the kit's writes go through).
DRIVER = textwrap.dedent('''
    import atexit, os, sys
    from maskgit_kit import atomic, labtree

    written, replacing = [], atomic.replacing

    def recording(path, *args, **kwargs):
        written.append(str(path))
        return replacing(path, *args, **kwargs)

    atomic.replacing = recording
    record = os.path.join(sys.argv[1], "writes-rank" + os.environ.get("RANK", "single") + ".txt")
    atexit.register(lambda: open(record, "a").write("".join(p + "\\n" for p in written)))
    tree = labtree.activate(sys.argv[2])

    def mask_every_token(self, z_indices, ratio=None, generator=None):
        mask = z_indices >= 0
        return z_indices.masked_fill(mask, self.mask_token_id), mask

    tree.module("models.VQGAN_Transformer").MaskGit.mask_tokens = mask_every_token
    tree.module("training_transformer").main(sys.argv[3:])
''')


@pytest.fixture
def setup(tiny_setup):
    cfg = yaml.safe_load(tiny_setup["config"].read_text())
    cfg["model_param"]["Transformer_param"].update(dropout=0.0, attn_dropout=0.0)
    tiny_setup["config"].write_text(yaml.safe_dump(cfg))
    (tiny_setup["root"] / "driver.py").write_text(DRIVER)
    (tiny_setup["root"] / "writes").mkdir()
    return tiny_setup


def train(setup, folder, batch_size, *extra, nproc=1):
    root, d = setup["root"], setup["data"]
    launcher = ["-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}"] if nproc > 1 else []
    cmd = [sys.executable, *launcher, str(root / "driver.py"), str(root / "writes"), str(REPO / "solutions"),
           "--config", str(setup["config"]), "--train-d-path", str(d / "train"), "--val-d-path", str(d / "val"),
           "--checkpoint-path", str(root / folder), "--token-cache-dir", str(root / "cache"), "--device", "cpu",
           "--precision", "fp32", "--batch-size", str(batch_size), "--warmup-steps", "1", "--learning-rate", "1e-2",
           *extra]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300, cwd=root, env=env)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-5000:]
    return proc.stdout


def weights(folder, name="last.pt"):
    return torch.load(folder / name, weights_only=True)["state_dict"]


def assert_close(a, b):
    """Equal up to float rounding. The all-reduce sums the two halves' gradients in another order than one
    process does, and Adam divides by the gradient's own scale, so a weight whose gradient is near zero can move
    a few 1e-6 apart over two epochs (seen once: 2.9e-6). atol 1e-5 is still a thousandth of one Adam step at
    the test's learning rate (1e-2): ranks that do not share their gradients end 1e-3 and more apart."""
    assert a.keys() == b.keys()
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=1e-4, atol=1e-5, msg=lambda m, k=k: f"{k}: {m}")


def writes(setup, rank):
    path = setup["root"] / "writes" / f"writes-rank{rank}.txt"
    return path.read_text().split() if path.is_file() else []


def log(folder):
    with (folder / "log.csv").open(newline="") as f:
        return list(csv.DictReader(f))


def test_two_processes_train_what_one_process_trains_with_the_same_global_batch(setup):
    root = setup["root"]
    train(setup, "single", 4, "--epochs", "2")  # also encodes the token cache
    out = train(setup, "ddp", 2, "--epochs", "2", nproc=2)
    assert "2 processes x --batch-size 2 = 4 images per step" in out
    for name in ("epoch_1.pt", "last.pt"):
        assert_close(weights(root / "ddp", name), weights(root / "single", name))
    first, ddp = weights(root / "single", "epoch_1.pt"), weights(root / "ddp")
    assert not all(torch.equal(first[k], ddp[k]) for k in first)  # epoch 2 did train
    assert not any(k.startswith("module.") for k in ddp)  # the plain transformer's names, as the loaders expect
    for one, two in zip(log(root / "single"), log(root / "ddp"), strict=True):  # the mean loss of all ranks
        assert abs(float(one["train_loss"]) - float(two["train_loss"])) < 1e-4, (one, two)
        assert one["val_loss"] == two["val_loss"] and one["lr"] == two["lr"]
    assert writes(setup, 1) == []  # rank 1 wrote nothing: no checkpoint, log or cache file
    assert {os.path.basename(p) for p in writes(setup, 0)} == {"best.pt", "last.pt", "epoch_1.pt", "epoch_2.pt",
                                                               "log.csv"}

    # a resume under torchrun (from epoch_1.pt: its weights, optimizer, schedule and data order) redoes epoch 2
    train(setup, "ddp", 2, "--epochs", "2", "--start-from-epoch", "1", nproc=2)
    assert_close(weights(root / "ddp"), weights(root / "single"))
    assert writes(setup, 1) == []
    assert [row["epoch"] for row in log(root / "ddp")] == ["1", "2"]

    # best.pt loads as the shipped loaders load a transformer
    model = load_maskgit(load_maskgit_config(setup["config"]), "cpu", transformer_ckpt=root / "ddp" / "best.pt")
    assert model.transformer.state_dict().keys() == ddp.keys()


@pytest.mark.parametrize("n,batch,world", [(8, 2, 2), (11, 2, 2), (13, 1, 3)])
def test_the_shards_of_a_step_make_up_the_single_process_batch(n, batch, world):
    """Three epochs: the ranks' batches of each step together are the single-process batch (global batch
    ``batch * world``), and the generators end in the single-process generator's state (the next epochs and a
    resume draw the same order)."""
    data = list(range(n))
    single = DataLoader(data, batch_size=batch * world, shuffle=True, drop_last=True,
                        generator=torch.Generator().manual_seed(7))
    ranks = [DataLoader(data, batch_size=batch, drop_last=True, generator=(g := torch.Generator().manual_seed(7)),
                        sampler=ShardedShuffle(n, g, r, world)) for r in range(world)]
    for _ in range(3):
        steps = list(zip(*(list(loader) for loader in ranks), strict=True))
        assert len(steps) == len(single) > 0
        for whole, shards in zip(single, steps, strict=True):
            assert sorted(whole.tolist()) == sorted(torch.cat(shards).tolist())
    for loader in ranks:
        assert torch.equal(loader.generator.get_state(), single.generator.get_state())


def test_the_ddp_wrapper_passes_the_class_labels_through(tiny_setup, tmp_path):
    """``ConditionedBatches`` conditions a class-conditional model by setting ``model.transformer.labels``; on the
    DDP wrapper that must reach the inner transformer (a one-process gloo group is enough to build the wrapper)."""
    cfg = yaml.safe_load(tiny_setup["config"].read_text())
    cfg["model_param"]["Transformer_param"]["num_classes"] = 3
    tiny_setup["config"].write_text(yaml.safe_dump(cfg))
    net = ClassConditionalTransformer(load_maskgit_config(tiny_setup["config"]).transformer, 0.0).eval()
    ids, labels = torch.randint(0, 16, (2, 256)), torch.tensor([0, 2])
    dist.init_process_group("gloo", init_method=f"file://{tmp_path / 'group'}", rank=0, world_size=1)
    try:
        wrapper = SharedGradients(net)
        wrapper.labels = labels
        assert net.labels is labels and "labels" not in vars(wrapper)
        assert wrapper.num_image_tokens == net.num_image_tokens
        with torch.no_grad():
            conditioned = wrapper(ids)
            wrapper.labels = None
            unconditioned = wrapper(ids)
            net.labels = labels
            assert torch.equal(conditioned, net(ids)) and not torch.equal(conditioned, unconditioned)
    finally:
        dist.destroy_process_group()
