"""Mutation check (tools/mutate.py): the fast tests fail when the science is broken, and pass when it is not."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
from smoke_pipeline import load_tool

ROOT = Path(__file__).resolve().parents[1]
SUBSETS = {  # mutation -> the fast tests that must notice it (seconds each)
    "scorer_false": ["tests/test_scoring.py"],
    "estimator_off_by_one": ["tests/test_metrics.py"],
    "rule_flipped": ["tests/test_claims.py"],
}
mutate = load_tool("mutate")


def _run(mutation: str, tests: list[str]) -> dict:
    r = subprocess.run([sys.executable, str(ROOT / "tools" / "mutate.py"), mutation, *tests],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    return json.loads(r.stdout.splitlines()[-1])


def test_every_mutation_applies_once_to_the_library():
    assert set(SUBSETS) == set(mutate.MUTATIONS)
    for name, (path, old, new) in mutate.MUTATIONS.items():
        assert (ROOT / path).read_text().count(old) == 1, name
        assert old != new
    with pytest.raises(mutate.MutationError, match="occurs 0 times"):
        mutate.replace_once("a < b", "a > b", "a <= b")
    with pytest.raises(mutate.MutationError, match="occurs 2 times"):
        mutate.replace_once("a > b; a > b", "a > b", "a <= b")


def test_unmutated_copy_passes_the_subsets():
    out = _run("none", sorted({t for tests in SUBSETS.values() for t in tests}))
    assert out["collected"] > 0 and out["failed"] == 0 and out["passed"] + out["skipped"] == out["collected"], out


@pytest.mark.parametrize("mutation", sorted(SUBSETS))
def test_the_subset_catches_the_mutation(mutation):
    out = _run(mutation, SUBSETS[mutation])
    assert out["collected"] > 0 and out["failed"] >= 1, out
