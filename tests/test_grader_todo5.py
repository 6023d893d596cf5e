"""The TODO5 extension checks of the public grader (the TiTok 1D tokenizer), proved on their own: each bug of
mutants_todo5.py costs TODO5 points, in TODO5 checks whose feedback names it; correct code written differently and
the reference earn all of TODO5's points (the reference also the core 100 and the rest of the extension pool: the
pools are apart); the lab's stubs earn none of them."""
from __future__ import annotations

import mutants_todo5
import pytest
from extension_grading import grade_changes

TODO5_POINTS = 20.0
CHANGES = [*mutants_todo5.MUTANTS, *mutants_todo5.VARIANTS]


@pytest.fixture(scope="module")
def graded(tmp_path_factory) -> dict[str, dict]:
    """Every TODO5 mutant and variant (their TODO5 checks only), the reference and the stubs (all checks), each a
    fresh lab with its student files."""
    return grade_changes(tmp_path_factory.mktemp("todo5"), "TODO5", CHANGES)


def todo5(data: dict) -> tuple[float, float, list[dict]]:
    """(core score, TODO5's score, TODO5's tests)."""
    tests = [t for t in data["tests"] if t["tags"][0] == "TODO5"]
    return data["score"], sum(t["score"] for t in tests), tests


def test_todo5_is_in_the_extension_pool_never_in_the_core_100(graded):
    core, score, tests = todo5(graded["reference"])
    assert core == 100 and score == TODO5_POINTS and sum(t["max_score"] for t in tests) == TODO5_POINTS
    assert len(tests) >= 10 and all("extension" in t["tags"] for t in tests)
    ext = sum(t["score"] for t in graded["reference"]["tests"] if "extension" in t["tags"])
    assert ext > TODO5_POINTS  # TODO4's points are in the same pool, beside TODO5's
    output = graded["reference"]["output"]
    assert "TODO5" in output and "1D tokenizer" in output and "(not in the total)" in output


def test_lab_stubs_earn_nothing_of_todo5(graded):
    core, score, tests = todo5(graded["lab_stubs"])
    assert core == 0 and score == 0 and tests
    assert all("TODO5 not implemented yet" in t["output"] for t in tests)
    assert graded["lab_stubs"]["output"].count("TODO5 not implemented yet") == 1


@pytest.mark.parametrize("mutant", mutants_todo5.MUTANTS, ids=[m.name for m in mutants_todo5.MUTANTS])
def test_todo5_bug_costs_todo5_points_only_with_a_telling_message(graded, mutant):
    data = graded[mutant.name]
    core, score, _ = todo5(data)
    assert core == 0 and "TODO1" not in data["output"], "--todo TODO5: the core checks are not run here"
    assert score < TODO5_POINTS, f"{mutant.name} earned all of TODO5's points"
    failed = [t for t in data["tests"] if t["status"] == "failed"]
    assert failed and all(t["tags"][0] == "TODO5" for t in failed)
    outputs = [t["output"] for t in failed]
    assert any(mutant.message in o for o in outputs), f"no feedback mentions {mutant.message!r}: {outputs}"
    assert all("see TODO5" in o for o in outputs), outputs


@pytest.mark.parametrize("variant", mutants_todo5.VARIANTS, ids=[v.name for v in mutants_todo5.VARIANTS])
def test_correct_todo5_written_differently_earns_all_its_points(graded, variant):
    data = graded[variant.name]
    failed = [f"{t['name']}: {t['output']}" for t in data["tests"] if t["status"] != "passed"]
    assert not failed and todo5(data)[1] == TODO5_POINTS, "\n".join(failed)


def test_mutants_and_variants_are_enough():
    assert len(mutants_todo5.MUTANTS) >= 10 and len(mutants_todo5.VARIANTS) >= 2
    assert len({c.name for c in CHANGES}) == len(CHANGES)
