"""Mutation check: break the library on purpose in a copy of the repository and count the tests that notice.

    python tools/mutate.py MUTATION [TEST ...]     (MUTATION: one of MUTATIONS, or "none" for the unmutated copy)

Copies lib/, tests/, notebooks/, configs/, references/ and the top-level files the tests read (never .venv, .git, data,
figures) to a temporary folder, applies the mutation there (a textual replace that must match exactly once), and
runs pytest on TEST (default: tests/) in the copy with PYTHONPATH on the copy's lib/, after checking in a
subprocess that the mutated module is imported from the copy and not from the installed (editable) package. Prints
one JSON line: {"mutation", "tests", "collected", "failed", "passed", "skipped", "seconds"} ("failed" counts
errors too). Exit status 0 when pytest ran (whatever it found), 2 when the check could not be made.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
COPY_DIRS = ("lib", "tests", "notebooks", "configs", "references")
COPY_FILES = ("pyproject.toml", "params.yaml", "dvc.yaml", "README.md", "Makefile", "requirements.txt",
              "requirements-dev.txt", "environment.yml", ".ci/run")

# name -> (file, text, replacement): each a deliberate error in the science
MUTATIONS = {
    # scoring.score_answer never says correct
    "scorer_false": (
        "lib/passkt/scoring.py",
        "def score_answer(pred: str | None, problem: dict) -> dict:\n",
        "def score_answer(pred, problem):\n"
        '    return {**_score_answer(pred, problem), "correct": False}\n\n\n'
        "def _score_answer(pred: str | None, problem: dict) -> dict:\n",
    ),
    # the Pass@k estimator with k - 1 in place of k: 1 - C(n-c, k-1) / C(n, k-1)
    "estimator_off_by_one": (
        "lib/passkt/metrics.py",
        "np.cumprod(1.0 - ks[None, :] / i, axis=0)",
        "np.cumprod(1.0 - (ks[None, :] - 1) / i, axis=0)",
    ),
    # claim 1's "|split| larger than the margin" turned round
    "rule_flipped": (
        "lib/passkt/claims.py",
        "and abs(e.estimate) > MARGIN_SPLIT",
        "and abs(e.estimate) < MARGIN_SPLIT",
    ),
}


class MutationError(RuntimeError):
    pass


def replace_once(text: str, old: str, new: str, where: str = "") -> str:
    """``text`` with ``old`` replaced by ``new``; an error unless ``old`` occurs exactly once."""
    n = text.count(old)
    if n != 1:
        raise MutationError(f"{where}: the text to mutate occurs {n} times (must be exactly once): {old!r}")
    return text.replace(old, new)


def copy_repo(dst: Path) -> None:
    ignore = shutil.ignore_patterns("__pycache__", "*.egg-info", ".pytest_cache", ".ipynb_checkpoints")
    for d in COPY_DIRS:
        shutil.copytree(ROOT / d, dst / d, ignore=ignore)
    for f in COPY_FILES:
        if (ROOT / f).exists():
            (dst / f).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / f, dst / f)


def _module(path: str) -> str:
    return path.removeprefix("lib/").removesuffix(".py").replace("/", ".")


def run(mutation: str, tests: list[str]) -> dict:
    if mutation != "none" and mutation not in MUTATIONS:
        raise MutationError(f"unknown mutation {mutation!r}: one of none, {', '.join(MUTATIONS)}")
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix=f"passkt-mutant-{mutation}-") as tmp:
        dst = Path(tmp)
        copy_repo(dst)
        path = MUTATIONS[mutation][0] if mutation != "none" else "lib/passkt/claims.py"
        if mutation != "none":
            _, old, new = MUTATIONS[mutation]
            f = dst / path
            f.write_text(replace_once(f.read_text(), old, new, path))
        env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(dst / "lib"), os.environ.get("PYTHONPATH", "")]),
               "PYTHONDONTWRITEBYTECODE": "1"}
        probe = subprocess.run([sys.executable, "-c", f"import {_module(path)} as m; print(m.__file__)"],
                               cwd=dst, env=env, capture_output=True, text=True)
        imported = Path(probe.stdout.strip() or "?").resolve()
        if probe.returncode or imported != (dst / path).resolve():
            raise MutationError(f"{_module(path)} is imported from {imported}, not the copy {dst / path}: "
                                f"{probe.stderr[-500:]}")
        report = dst / "junit.xml"
        r = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", f"--junitxml={report}",
                            "--ignore=tests/test_mutations.py", *tests],  # no mutation runs inside a mutant
                           cwd=dst, env=env, capture_output=True, text=True)
        if r.returncode not in (0, 1) or not report.exists():  # 2-5: interrupted, internal error, usage, nothing run
            raise MutationError(f"pytest exited {r.returncode} in the copy:\n{(r.stdout + r.stderr)[-3000:]}")
        suites = ET.parse(report).getroot()
        suites = [suites] if suites.tag == "testsuite" else list(suites)
        count = {k: sum(int(s.get(k, 0)) for s in suites) for k in ("tests", "failures", "errors", "skipped")}
    failed = count["failures"] + count["errors"]
    return {"mutation": mutation, "tests": tests, "collected": count["tests"], "failed": failed,
            "passed": count["tests"] - failed - count["skipped"], "skipped": count["skipped"],
            "seconds": round(time.perf_counter() - t0, 1)}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("mutation", help=f"none | {' | '.join(MUTATIONS)}")
    ap.add_argument("tests", nargs="*", default=["tests"], help="test files or node ids (default: tests)")
    args = ap.parse_args(argv)
    try:
        out = run(args.mutation, args.tests)
    except MutationError as e:
        print(f"mutate.py: {e}", file=sys.stderr)
        return 2
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
