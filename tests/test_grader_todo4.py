"""The TODO4 extension pool of the public grader, proved on its own (faster than the whole batch of
test_grader_mutations.py, which grades the same mutants with the trusted grader): each bug of mutants_todo4.py
costs extension points, in TODO4 checks whose feedback names it; correct code written differently and the reference
earn the whole pool (the reference also the core 100: the pools are apart); the lab's stubs earn none of it."""
from __future__ import annotations

import mutants_todo4
import pytest
from extension_grading import grade_changes

EXTENSION = 25.0
CHANGES = [*mutants_todo4.MUTANTS, *mutants_todo4.VARIANTS]


@pytest.fixture(scope="module")
def graded(tmp_path_factory) -> dict[str, dict]:
    """Every TODO4 mutant and variant (their TODO4 checks only: that they keep the core 100 is
    test_grader_mutations.py's), the reference and the stubs (all checks), each a fresh lab with its student files."""
    return grade_changes(tmp_path_factory.mktemp("todo4"), "TODO4", CHANGES)


def pools(data: dict) -> tuple[float, float, list[dict]]:
    """(core score, extension score, the extension's tests)."""
    ext = [t for t in data["tests"] if "extension" in t["tags"] and t["tags"][0] == "TODO4"]  # TODO5: its own file
    return data["score"], sum(t["score"] for t in ext), ext


def test_reference_earns_the_core_100_and_the_whole_extension_pool(graded):
    core, ext, tests = pools(graded["reference"])
    assert core == 100 and ext == EXTENSION and sum(t["max_score"] for t in tests) == EXTENSION
    assert all(t["tags"][0] == "TODO4" for t in tests) and tests
    assert "EXTENSION" in graded["reference"]["output"] and "(not in the total)" in graded["reference"]["output"]


def test_lab_stubs_earn_nothing_of_the_extension(graded):
    core, ext, tests = pools(graded["lab_stubs"])
    assert core == 0 and ext == 0
    assert all("TODO4 not implemented yet" in t["output"] for t in tests)
    assert graded["lab_stubs"]["output"].count("TODO4 not implemented yet") == 1


@pytest.mark.parametrize("mutant", mutants_todo4.MUTANTS, ids=[m.name for m in mutants_todo4.MUTANTS])
def test_todo4_bug_costs_extension_points_only_with_a_telling_message(graded, mutant):
    data = graded[mutant.name]
    core, ext, _ = pools(data)
    assert core == 0 and "TODO1" not in data["output"], "--todo TODO4: the core checks are not run here"
    assert ext < EXTENSION, f"{mutant.name} earned the whole extension pool"
    failed = [t for t in data["tests"] if t["status"] == "failed"]
    assert failed and all(t["tags"][0] == "TODO4" for t in failed)
    outputs = [t["output"] for t in failed]
    assert any(mutant.message in o for o in outputs), f"no feedback mentions {mutant.message!r}: {outputs}"
    assert all("see TODO4" in o for o in outputs), outputs


@pytest.mark.parametrize("variant", mutants_todo4.VARIANTS, ids=[v.name for v in mutants_todo4.VARIANTS])
def test_correct_todo4_written_differently_earns_the_whole_pool(graded, variant):
    data = graded[variant.name]
    failed = [f"{t['name']}: {t['output']}" for t in data["tests"] if t["status"] != "passed"]
    assert not failed and pools(data)[1] == EXTENSION, "\n".join(failed)
