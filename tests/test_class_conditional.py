"""Class-conditional MaskGIT's given plumbing (issue 15): the class token's place in the transformer, starting from
an unconditional checkpoint, labelled training batches, and the --class / --guidance flags of inpainting.py.

The TODO4 functions themselves are graded (grader/test_todo4_*.py, proved by tests/mutants_todo4.py)."""
import dataclasses
import json

import numpy as np
import pytest
import torch
import yaml
from PIL import Image

import inpainting
import training_transformer
from conftest import TINY_TRANSFORMER
from models.checkpoint import CheckpointError, save_model_checkpoint
from models.config import ConfigError, load_maskgit_config
from models.loading import load_maskgit
from models.Transformer.class_conditional import NO_CLASS, ClassConditionalTransformer, expand_unconditional_state
from models.Transformer.transformer import BidirectionalTransformer
from token_cache import build_loaders

CLASSES = ["circle", "square", "star"]


def conditional_config(setup, num_classes=3, dropout=0.25):
    """The tiny setup's config with a class token (written beside it)."""
    data = yaml.safe_load(setup["config"].read_text())
    data["model_param"]["Transformer_param"] = {**TINY_TRANSFORMER, "num_classes": num_classes}
    data["model_param"]["class_dropout"] = dropout
    data["model_param"]["Transformer_CKPT_path"] = "transformer_class.pt"
    path = setup["config"].with_name("MaskGit_class.yml")
    path.write_text(yaml.safe_dump(data))
    return path


def label_data(setup):
    """meta.json with classes and labels for the tiny setup's train/val/test images."""
    meta = {"classes": CLASSES, "splits": {"train": {"count": 8, "labels": [0, 1, 2, 0, 1, 2, 0, 1]},
                                           "val": {"count": 4, "labels": [2, 1, 0, 2]},
                                           "test": {"count": 5, "labels": [1, 0, 2, 2, 1]}}}
    (setup["data"] / "meta.json").write_text(json.dumps(meta))
    return meta


def test_class_token_grows_the_sequence_and_the_vocabulary():
    cfg = dataclasses.replace(load_maskgit_config_stub(), num_classes=3)
    net = BidirectionalTransformer(cfg)
    K, N = cfg.num_codebook_vectors, cfg.num_image_tokens
    assert net.tok_emb.weight.shape[0] == K + 1 + 3 + 1 and net.pos_emb.shape[0] == N + 1
    assert net(torch.randint(0, K, (2, N + 1))).shape == (2, N + 1, K + 5)
    with pytest.raises(ValueError, match="257 tokens per image"):
        net(torch.randint(0, K, (2, N)))
    wrapped = ClassConditionalTransformer(cfg).eval()
    assert (wrapped.first_class_id, wrapped.null_class_id) == (K + 1, K + 4)
    assert wrapped(torch.randint(0, K + 1, (2, N))).shape == (2, N, K + 1)


def load_maskgit_config_stub():
    from models.config import TransformerConfig
    return TransformerConfig(**{**TINY_TRANSFORMER, "dropout": 0.0, "attn_dropout": 0.0})


def test_unconditional_weights_grow_into_a_conditional_model():
    cfg = load_maskgit_config_stub()
    torch.manual_seed(0)
    plain = BidirectionalTransformer(cfg)
    grown = ClassConditionalTransformer(dataclasses.replace(cfg, num_classes=3))
    fresh = {k: v.clone() for k, v in grown.state_dict().items()}
    grown.load_state_dict(expand_unconditional_state(plain.state_dict(), grown))
    K, N = cfg.num_codebook_vectors, cfg.num_image_tokens
    net, old = grown.net, plain
    assert torch.equal(net.tok_emb.weight[:K + 1], old.tok_emb.weight)
    assert torch.equal(net.tok_emb.weight[K + 1:], fresh["net.tok_emb.weight"][K + 1:])  # the class rows start fresh
    assert torch.equal(net.pos_emb[:N], old.pos_emb) and torch.equal(net.bias[:N, :K + 1], old.bias)
    blocks = {k: v for k, v in old.state_dict().items() if k.startswith(("blocks.", "Token_Prediction.", "LN."))}
    assert blocks and all(torch.equal(net.state_dict()[k], v) for k, v in blocks.items())
    other = BidirectionalTransformer(dataclasses.replace(cfg, dim=16, num_heads=2, hidden_dim=32))
    with pytest.raises(ValueError, match="do not fit"):
        expand_unconditional_state(other.state_dict(), grown)


def test_init_from_an_unconditional_checkpoint_only_when_asked(tiny_setup):
    cfg = load_maskgit_config(conditional_config(tiny_setup))
    ckpt = tiny_setup["root"] / "transformer.pt"  # unconditional
    model = load_maskgit(cfg, "cpu", transformer_ckpt=ckpt, grow_classes=True)
    assert model.num_classes == 3
    with pytest.raises(CheckpointError, match="transformer.pt"):  # inpainting never grows one silently
        load_maskgit(cfg, "cpu", transformer_ckpt=ckpt)


def test_config_rejects_bad_class_settings(tiny_setup):
    path = conditional_config(tiny_setup)
    data = yaml.safe_load(path.read_text())
    for key, value, match in (("num_classes", -1, "num_classes must be >= 0"), ("class_dropout", 1.0, "class_dropout")):
        bad = json.loads(json.dumps(data))
        if key == "num_classes":
            bad["model_param"]["Transformer_param"]["num_classes"] = value
        else:
            bad["model_param"]["class_dropout"] = value
        path.write_text(yaml.safe_dump(bad))
        with pytest.raises(ConfigError, match=match):
            load_maskgit_config(path)


def test_conditioned_checks_labels_and_restores_the_state(tiny_setup):
    model = load_maskgit(load_maskgit_config(conditional_config(tiny_setup)), "cpu")
    with pytest.raises(ValueError, match="class label 3 out of range"):
        with model.conditioned(torch.tensor([0, 3])):
            pass
    with model.conditioned(torch.tensor([0, NO_CLASS]), guidance=2.5):
        assert model.transformer.labels.tolist() == [0, NO_CLASS] and model.transformer.guidance == 2.5
    assert model.transformer.labels is None and model.transformer.guidance == 1.0
    plain = load_maskgit(tiny_setup["cfg"], "cpu")
    with pytest.raises(ValueError, match="unconditional"):
        with plain.conditioned(torch.tensor([0])):
            pass


@pytest.mark.parametrize("token_cache", [True, False])
def test_labelled_batches_are_the_unlabelled_ones_with_their_labels(tiny_setup, token_cache):
    meta = label_data(tiny_setup)
    d = tiny_setup["data"]
    cond = load_maskgit(load_maskgit_config(conditional_config(tiny_setup)), "cpu")
    plain = load_maskgit(tiny_setup["cfg"], "cpu")
    kw = dict(batch_size=2, token_cache=token_cache, cache_dir=tiny_setup["root"] / "tc", seed=5)
    train_c, val_c = build_loaders(cond, "cpu", d / "train", d / "val", **kw)
    train_p, _ = build_loaders(plain, "cpu", d / "train", d / "val", **kw)
    # each image (or its token row) in file order, to tell which image a batch row is
    if token_cache:
        rows = list(train_p.dataset.tensors[0].long())
    else:
        rows = [train_p.dataset[i] for i in range(len(train_p.dataset))]
    seen, expected = [], []
    for a, b in zip(train_c, train_p, strict=True):
        assert torch.equal(a, b)  # the same batches, in the same order
        seen += cond.transformer.labels.tolist()
        for row in a:  # the labels handed out are those of the images in the batch
            (i,) = [i for i, r in enumerate(rows) if torch.equal(r, row)]
            expected.append(meta["splits"]["train"]["labels"][i])
    assert cond.transformer.labels is None  # reset after the epoch
    assert seen == expected and len(seen) == 8
    batches = iter(val_c)
    next(batches)
    assert cond.transformer.labels.tolist() == meta["splits"]["val"]["labels"][:2]  # validation: in file order


def test_training_a_conditional_model_resumes_bit_for_bit(tiny_setup, monkeypatch):
    label_data(tiny_setup)
    config = conditional_config(tiny_setup)
    d, root = tiny_setup["data"], tiny_setup["root"]

    def args(ckpt, *extra):
        init = () if "--resume" in extra else ("--init-from", str(root / "transformer.pt"))
        return ["--config", str(config), "--train-d-path", str(d / "train"), "--val-d-path", str(d / "val"),
                "--checkpoint-path", str(root / ckpt), "--token-cache-dir", str(root / "tc"), "--batch-size", "4",
                "--device", "cpu", "--precision", "fp32", "--epochs", "2", *init, *extra]

    training_transformer.main(args("straight"))
    real = training_transformer.TrainTransformer.train_one_epoch

    def stop_at_two(self, loader, epoch=0):
        if epoch == 2:
            raise KeyboardInterrupt
        return real(self, loader, epoch)

    with monkeypatch.context() as m:
        m.setattr(training_transformer.TrainTransformer, "train_one_epoch", stop_at_two)
        with pytest.raises(KeyboardInterrupt):
            training_transformer.main(args("resumed"))
    training_transformer.main(args("resumed", "--resume"))
    a = torch.load(root / "straight" / "last.pt", weights_only=True)["state_dict"]
    b = torch.load(root / "resumed" / "last.pt", weights_only=True)["state_dict"]
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert a["net.tok_emb.weight"].shape[0] == 16 + 1 + 3 + 1
    # the trained checkpoint loads as a class-conditional model
    load_maskgit(load_maskgit_config(config), "cpu", transformer_ckpt=root / "straight" / "best.pt")


def test_training_without_labels_is_one_clear_error(tiny_setup, capsys):
    d, root = tiny_setup["data"], tiny_setup["root"]
    config = conditional_config(tiny_setup)
    with pytest.raises(SystemExit, match=r"meta.json: not found"):
        training_transformer.main(["--config", str(config), "--train-d-path", str(d / "train"), "--val-d-path",
                                   str(d / "val"), "--checkpoint-path", str(root / "c"), "--token-cache-dir",
                                   str(root / "tc"), "--batch-size", "4", "--device", "cpu", "--precision", "fp32",
                                   "--epochs", "1"])


def write_conditional_checkpoint(setup):
    cfg = load_maskgit_config(conditional_config(setup))
    torch.manual_seed(1)
    model = ClassConditionalTransformer(cfg.transformer)
    save_model_checkpoint(setup["root"] / "transformer_class.pt", "transformer", cfg.transformer, model)
    return setup["root"] / "config" / "MaskGit_class.yml"


def inpaint(setup, out, *extra):
    d = setup["data"]
    inpainting.main(["--test-maskedimage-path", str(d / "masked_image"), "--test-mask-path", str(d / "mask64"),
                     "--output-dir", str(setup["root"] / out), "--device", "cpu", "--total-iter", "3", *extra])
    return {p.name: np.asarray(Image.open(p)) for p in sorted((setup["root"] / out / "test_results").glob("*.png"))}


def test_inpainting_with_a_class_and_guidance_does_not_depend_on_the_batch(tiny_setup, monkeypatch):
    meta = label_data(tiny_setup)
    config = write_conditional_checkpoint(tiny_setup)
    calls = []
    real = inpainting.guided_decoding

    def recording(model, z, mask, labels, total_iter, guidance, ramp, *args, **kwargs):
        calls.append((labels.tolist(), guidance, ramp))
        return real(model, z, mask, labels, total_iter, guidance, ramp, *args, **kwargs)

    monkeypatch.setattr(inpainting, "guided_decoding", recording)
    flags = ("--config", str(config), "--class", "test", "--guidance", "3", "--guidance-ramp")
    one = inpaint(tiny_setup, "b1", *flags, "--batch-size", "1")
    five = inpaint(tiny_setup, "b5", *flags, "--batch-size", "5")
    assert len(one) == 5 and all(np.array_equal(one[k], five[k]) for k in one)
    test_labels = meta["splits"]["test"]["labels"]
    # batch 5, padded to a multiple of the thread count by repeating the last image
    assert calls[-1][0][:5] == test_labels and set(calls[-1][0][5:]) <= {test_labels[-1]}
    assert calls[-1][1:] == (3.0, True)
    assert [c[0][0] for c in calls[:5]] == test_labels  # batch 1: each image its own class
    calls.clear()
    inpaint(tiny_setup, "star", "--config", str(config), "--class", "star", "--guidance", "3")
    assert calls and all(set(c[0]) == {2} and c[1:] == (3.0, False) for c in calls)  # star = class 2, for all
    # and the class reaches the logits
    model = load_maskgit(load_maskgit_config(config), "cpu",
                         transformer_ckpt=tiny_setup["root"] / "transformer_class.pt")
    ids = torch.randint(0, 16, (2, 256))
    with model.conditioned(torch.tensor([0, 0])):
        a = model.transformer(ids)
    with model.conditioned(torch.tensor([2, 2])):
        b = model.transformer(ids)
    assert not torch.allclose(a, b)
    settings = json.loads((tiny_setup["root"] / "b1" / "test_results.json").read_text())
    assert settings["class_label"] == "test" and settings["guidance"] == 3.0


@pytest.mark.parametrize("flags, match", [
    (("--class", "7"), "no such class id"),
    (("--class", "Hat"), "no such class"),
    (("--guidance", "2"), None),  # on the unconditional config: checked below
])
def test_bad_class_flags_are_one_clear_error(tiny_setup, flags, match):
    label_data(tiny_setup)
    config = write_conditional_checkpoint(tiny_setup)
    if match is None:
        with pytest.raises(SystemExit, match=r"--guidance: the model of .*MaskGit.yml is unconditional"):
            inpaint(tiny_setup, "x", "--config", str(tiny_setup["config"]), "--load-transformer-ckpt-path",
                    str(tiny_setup["root"] / "transformer.pt"), *flags)
        return
    with pytest.raises(SystemExit, match=match):
        inpaint(tiny_setup, "x", "--config", str(config), *flags)
    assert not (tiny_setup["root"] / "x" / "test_results").exists() or not any(
        (tiny_setup["root"] / "x" / "test_results").iterdir())


@pytest.mark.parametrize("value", ["nan", "inf", "-1", "x"])
def test_guidance_must_be_a_finite_number(value, capsys):
    with pytest.raises(SystemExit):
        inpainting.main(["--guidance", value])
    assert "--guidance" in capsys.readouterr().err
