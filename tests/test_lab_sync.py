"""lab/ is generated from solutions/: it must be up to date and hold stubs, not solutions."""
import subprocess
import sys

from conftest import REPO


def test_lab_is_up_to_date():
    proc = subprocess.run([sys.executable, str(REPO / "tools" / "make_lab.py"), "--check"],
                          capture_output=True, text=True)
    assert proc.returncode == 0, f"lab/ is stale; run `python tools/make_lab.py`:\n{proc.stdout}{proc.stderr}"


def test_lab_has_a_stub_per_todo_and_no_solution_code():
    files = {
        "TODO1": REPO / "lab" / "models" / "Transformer" / "modules" / "layer.py",
        "TODO2": REPO / "lab" / "models" / "VQGAN_Transformer.py",
        "TODO3": REPO / "lab" / "inpainting.py",
    }
    for todo, path in files.items():
        text = path.read_text()
        assert f'raise NotImplementedError("{todo}:' in text, path
        assert "BEGIN SOLUTION" not in text and "END SOLUTION" not in text
    layer = files["TODO1"].read_text()
    body = layer.split("def forward")[1]
    assert "self.q_proj(x)" not in body and ".softmax(" not in body  # the attention body is gone
    train = (REPO / "lab" / "training_transformer.py").read_text()
    assert 'raise NotImplementedError("TODO2:' in train and "clip_grad_norm_" not in train
    lab_cfg = (REPO / "lab" / "config" / "MaskGit.yml").read_text()
    assert "transformer_checkpoints/best.pt" in lab_cfg and "checkpoints/transformer.pt" not in lab_cfg
