"""What the hidden checks' judges share (the instructor-only probes): a ``Bad`` observation, a judge that charges
one public check with the first one it meets, and the per-case pairing of the child's and the reference's results.

Generic on purpose: it says how a verdict is formed, never what is expected (that stays with the probes)."""
from __future__ import annotations


class Bad(Exception):
    """An observation that fails the probe (its message says why)."""


def judged(check: str, body):
    """A judge that charges ``check`` with the reason of the first ``Bad`` that ``body(ctx)`` raises."""
    def judge(ctx) -> dict[str, str]:
        try:
            body(ctx)
        except Bad as why:
            return {check: str(why)[:500]}
        return {}
    judge.__name__ = f"judge_{check}"
    return judge


def paired_cases(ctx) -> list[tuple[dict, dict, dict]]:
    """(inputs, the child's result, the reference's) per case of ``ctx.inputs["cases"]``; a missing or failed case
    is ``Bad``."""
    got, want = ctx.observed.get("cases"), ctx.expected.get("cases")
    if not isinstance(got, list) or len(got) != len(ctx.inputs["cases"]):
        raise Bad(str(ctx.observed.get("error") or "no result for every case")[:300])
    out = []
    for case, g, w in zip(ctx.inputs["cases"], got, want, strict=True):
        if not isinstance(g, dict):
            raise Bad("no result")
        if "error" in g:
            raise Bad(str(g["error"])[:300])
        out.append((case, g, w))
    return out
