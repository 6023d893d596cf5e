"""Every command's --help renders: argparse formats help strings with %, so a stray "%" in one (a split's
description said "about 50 %") crashed `experiments.py --help` with a TypeError."""
import importlib

import experiments
import pytest

from command_line import inpainting_parser, training_parser
from conftest import tool

for sibling in ("eval_vqgan", "vqgan_training"):  # the scripts train_vqgan imports, loaded first as it expects
    tool(sibling)

PARSERS = {
    "training_transformer.py": training_parser,
    "inpainting.py": inpainting_parser,
    "experiments.py": experiments.build_parser,
    **{f"tools/{name}.py": (lambda name=name: tool(name).build_parser())
       for name in ("batch_grade", "eval_vqgan", "similarity", "train_vqgan", "train_classifier")},
    **{f"maskgit_kit.{mod}": (lambda mod=mod: importlib.import_module(f"maskgit_kit.{mod}").build_parser())
       for mod in ("prepare_data", "scoring.score", "scoring.baselines", "scoring.leaderboard", "scoring.compare",
                   "scoring.classifier")},
}


@pytest.mark.parametrize("name", sorted(PARSERS))
def test_help_renders(name):
    text = PARSERS[name]().format_help()
    assert "usage:" in text and "--help" in text
