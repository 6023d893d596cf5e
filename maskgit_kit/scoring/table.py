"""Plain-text and Markdown tables and number formatting, shared by score, baselines and leaderboard."""
from __future__ import annotations

import math
from typing import Any, Sequence

# (key in a result dict, column header, format)
METRIC_COLUMNS = (("fid", "FID", ".2f"), ("psnr", "PSNR", ".2f"), ("ssim", "SSIM", ".4f"),
                  ("psnr_hole", "PSNR hole", ".2f"), ("ssim_hole", "SSIM hole", ".4f"), ("points", "points", "d"))


def interval_cell(result: dict[str, Any], spec: str = ".2f") -> str:
    """``lo .. hi`` of a result's FID interval, ``-`` when it was not computed."""
    ci = result.get("fid_ci")
    return f"{ci[0]:{spec}} .. {ci[1]:{spec}}" if ci else "-"


def kid_cell(result: dict[str, Any]) -> str:
    """KID x 1000 as ``mean +- std``, ``-`` when it was not computed."""
    kid = result.get("kid")
    return f"{1000 * kid['mean']:.2f} +- {1000 * kid['std']:.2f}" if kid else "-"


def fmt(value: Any, spec: str = "") -> str:
    """``value`` formatted with ``spec``; ``-`` for None/NaN (a metric that does not apply)."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return format(value, spec)


def text_table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """Columns padded to their widest cell; first column left-aligned, the others right-aligned."""
    widths = [max(len(str(c)) for c in col) for col in zip(headers, *rows, strict=True)]

    def line(cells):
        return "  ".join(str(c).ljust(w) if i == 0 else str(c).rjust(w)
                         for i, (c, w) in enumerate(zip(cells, widths, strict=True))).rstrip()

    rule = "  ".join("-" * w for w in widths)
    return "\n".join([line(headers), rule, *(line(r) for r in rows)])


def markdown_table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """A GitHub-flavoured Markdown table (``|`` inside cells escaped)."""
    def esc(c):
        return str(c).replace("|", "\\|").replace("\n", " ")

    out = ["| " + " | ".join(esc(h) for h in headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    out += ["| " + " | ".join(esc(c) for c in r) + " |" for r in rows]
    return "\n".join(out)

