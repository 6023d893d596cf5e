"""The learning-rate schedule of transformer training (given code): linear warm-up, then cosine decay."""
from __future__ import annotations

import math


def warmup_cosine(step: int, warmup_steps: int, total_steps: int) -> float:
    """Learning-rate multiplier at optimizer step ``step`` (0-based): linear warm-up to 1 over ``warmup_steps``,
    then cosine decay to 0.1 at ``total_steps`` (post-LN blocks need the warm-up). Use it with ``LambdaLR``."""
    if warmup_steps < 1 or total_steps < 1:
        raise ValueError(f"warmup_cosine: expected warmup_steps >= 1 and total_steps >= 1, got {warmup_steps} and "
                         f"{total_steps}")
    if step < warmup_steps:
        return (step + 1) / warmup_steps
    progress = min(1.0, (step - warmup_steps) / max(1, total_steps - warmup_steps))
    return 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * progress))
