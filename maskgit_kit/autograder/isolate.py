"""The pytest options of a grader run inside another program (the confined child of ``trusted.py``).

Plugins the grader does not need are skipped: they cost seconds per run (hypothesis loads itself at exit) and
would only add noise to a child's log.
"""
from __future__ import annotations

LEAN = ["-p", "no:cacheprovider", "-p", "no:hypothesispytest", "-p", "no:benchmark", "-p", "no:unraisableexception",
        "-p", "no:threadexception", "--assert=plain"]
