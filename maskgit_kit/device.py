"""The compute device, chosen once at the command-line edge and passed on as a ``torch.device``."""
from __future__ import annotations


def resolve_device(name: str = "auto"):
    """``auto`` -> CUDA when available, else CPU; ``cuda`` without a GPU is a clear error."""
    import torch

    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise SystemExit("--device cuda: no CUDA device is available (use --device cpu or auto)")
    if name != "cpu" and not name.startswith("cuda"):
        raise SystemExit(f"--device {name}: expected auto, cpu or cuda")
    return torch.device(name)
