"""Contracts between params.yaml, the notebooks' parameters cells, dvc.yaml, the profiles and the pins."""

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from passkt.config import check_type, parameters_cell, stage_params
from passkt.support import NOTEBOOK as SWEEP_NOTEBOOK

ROOT = Path(__file__).resolve().parents[1]
DVC = yaml.safe_load((ROOT / "dvc.yaml").read_text())
PARAMS = yaml.safe_load((ROOT / "params.yaml").read_text())
NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
STAGES = [p.stem for p in NOTEBOOKS if p.stem != SWEEP_NOTEBOOK]  # 08 is the sweep's (tests/test_sweep.py)
PROFILES = {"tiny": ROOT / "params.yaml", "paper": ROOT / "configs/paper.yaml", "smoke": ROOT / "configs/smoke.yaml",
            "quick": ROOT / "configs/quick.yaml"}
PROFILE_NAME = {"quick": "tiny"}  # quick runs the tiny world and base model (`study: quick` names its settings)
REPLICATED = ("03_sft", "04_grpo")


def spec(stage: str) -> dict:
    """A stage's definition (a foreach stage: its template)."""
    s = DVC["stages"][stage]
    return s.get("do", s)


def cell_of(stage: str) -> dict:
    """The notebook's parameters, without ``replicate`` (the runner's --replicate, not a params.yaml key)."""
    cell = parameters_cell(ROOT / "notebooks" / f"{stage}.ipynb")
    cell.pop("replicate", None)
    return cell


def test_every_notebook_is_a_stage_and_back():
    """One stage per notebook, plus the module stages (publish: copies the results into git), last."""
    from passkt.integrity import MODULE_STAGES

    assert STAGES, "no notebooks found"
    assert sorted(set(DVC["stages"]) - set(MODULE_STAGES)) == STAGES
    assert list(DVC["stages"])[-len(MODULE_STAGES):] == list(MODULE_STAGES)
    for stage, module in MODULE_STAGES.items():
        assert DVC["stages"][stage]["cmd"] == f"python -m {module}"


@pytest.mark.parametrize("stage", STAGES)
def test_stage_runs_the_runner_on_its_notebook(stage):
    s = spec(stage)
    outs = [o if isinstance(o, str) else next(iter(o)) for o in s["outs"]]
    assert f"notebooks/{stage}.ipynb" in s["deps"]
    if stage in REPLICATED:  # one unit per training replicate, each owning its replicate's folders
        assert DVC["stages"][stage]["foreach"] == "${replicates}"
        assert s["cmd"] == f"python -m passkt.run {stage} --replicate ${{item}}"
        assert sorted(outs) == sorted([f"data/{stage}/r${{item}}", f"figures/{stage}/r${{item}}"])
        assert "replicate" in parameters_cell(ROOT / "notebooks" / f"{stage}.ipynb")
    else:
        assert s["cmd"] == f"python -m passkt.run {stage}"
        assert sorted(outs) == sorted([f"data/{stage}", f"figures/{stage}"])


@pytest.mark.parametrize("stage", STAGES)
def test_dvc_params_match_the_parameters_cell(stage):
    cell = cell_of(stage)
    shared = {k for k in PARAMS if not k[:2].isdigit()}
    declared = set(spec(stage)["params"])
    expected = {stage} | (set(cell) & shared)
    assert declared == expected, f"{stage}: dvc params {sorted(declared)} vs needed {sorted(expected)}"


@pytest.mark.parametrize("profile", sorted(PROFILES))
@pytest.mark.parametrize("stage", STAGES)
def test_every_profile_validates_against_the_notebooks(profile, stage):
    params = yaml.safe_load(PROFILES[profile].read_text())
    cell = cell_of(stage)
    resolved = stage_params(params, stage, cell)  # raises on unknown / missing / mistyped keys
    assert set(resolved) == set(cell)
    assert resolved["profile"] == PROFILE_NAME.get(profile, profile)
    assert isinstance(params["replicates"], list) and params["replicates"] and params["replicates"][0] == 0


@pytest.mark.parametrize("profile", sorted(PROFILES))
def test_sampling_dicts_are_complete(profile):
    from passkt.evaluate import SamplingSettings

    params = yaml.safe_load(PROFILES[profile].read_text())
    s = SamplingSettings.from_dict(params["sampling"])
    assert set(params["sampling"]) == set(SamplingSettings.__dataclass_fields__)
    assert s.n >= 1 and max(s.T_grid) >= 1 and s.math_T_grid == [0]


def test_profiles_share_one_key_set():
    keys = {name: {k: sorted(v) if isinstance(v, dict) else None for k, v in yaml.safe_load(p.read_text()).items()}
            for name, p in PROFILES.items()}
    assert keys["paper"] == keys["tiny"] == keys["smoke"] == keys["quick"]


@pytest.mark.parametrize("nb", NOTEBOOKS, ids=lambda p: p.name)
def test_notebooks_are_stripped_and_use_python3(nb):
    data = json.loads(nb.read_text())
    assert data["metadata"]["kernelspec"]["name"] == "python3"
    for c in data["cells"]:
        if c["cell_type"] == "code":
            assert c.get("outputs") == [] and c.get("execution_count") is None, f"{nb.name} has outputs"
    assert data["cells"][0]["cell_type"] == "markdown" and data["cells"][0]["source"]


def test_no_two_stages_own_overlapping_outputs():
    outs = []
    for s in DVC["stages"].values():
        if "foreach" in s:  # expand the units as dvc.lock names them
            for r in PARAMS["replicates"]:
                outs += [(o if isinstance(o, str) else next(iter(o))).replace("${item}", str(r)) for o in s["do"]["outs"]]
            continue
        outs += [o if isinstance(o, str) else next(iter(o)) for o in s["outs"]]
    for a in outs:
        for b in outs:
            if a != b:
                assert not (a + "/").startswith(b + "/"), (a, b)
    assert len(outs) == len(set(outs))


def test_check_type_accepts_int_for_float_and_rejects_bool_for_int():
    check_type("s", "k", 3, 1.0)
    with pytest.raises(ValueError):
        check_type("s", "k", True, 1)
    with pytest.raises(ValueError):
        check_type("s", "k", "1", 1)


def _pins(path: Path) -> dict:
    out = {}
    for line in path.read_text().splitlines():
        line = line.strip().lstrip("- ").strip()
        m = re.fullmatch(r"([A-Za-z0-9_.\-]+)==([^\s#]+)", line)
        if m:
            out[m.group(1).lower()] = m.group(2)
    return out


def test_environment_yml_carries_the_pip_pins():
    pip = {**_pins(ROOT / "requirements.txt"), **_pins(ROOT / "requirements-dev.txt")}
    conda = _pins(ROOT / "environment.yml")
    assert pip["torch"] == "2.13.0"
    assert conda == pip
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    assert "python=3.11" in env["dependencies"]


def _readme_commands() -> list[str]:
    """The commands of the README's "The two commands" code block (comments dropped)."""
    m = re.search(r"^## The two commands\n+```bash\n(.*?)^```", (ROOT / "README.md").read_text(), re.M | re.S)
    assert m, "README.md has no bash block under '## The two commands'"
    return [c for line in m.group(1).splitlines() if (c := line.split("#")[0].strip())]


def _readme_test_command() -> str:
    cmds = _readme_commands()
    tests = [c for c in cmds if "test" in shlex.split(c)[-1]]
    assert len(cmds) == 2 and len(tests) == 1, cmds
    return tests[0]


def test_ci_runs_the_readme_test_command():
    cmds = _readme_commands()
    assert "make reproduce" in cmds
    ci = (ROOT / ".ci" / "run").read_text()
    executed = [c for line in ci.splitlines() if (c := line.split(" #")[0].strip()) and not c.startswith("#")]
    assert _readme_test_command() in executed, executed
    assert "set -euo pipefail" in executed  # a failing command fails CI


@pytest.mark.skipif(shutil.which("make") is None, reason="make not installed")
@pytest.mark.parametrize("target,marker", [(None, None), ("test-slow", "slow"), ("test-gpu", "gpu")])
def test_make_test_targets_run_pytest_and_fail_on_no_tests(tmp_path, target, marker):
    """The target the README names (and the marked ones) run pytest, pass its exit status on, and turn exit 5
    ("no tests collected") into a failure: checked with a stand-in for the virtualenv's python."""
    cmd = shlex.split(_readme_test_command()) if target is None else ["make", target]
    assert cmd[0] == "make" and len(cmd) == 2, cmd
    venv, argv = tmp_path / "venv", tmp_path / "argv"
    (venv / "bin").mkdir(parents=True)
    (venv / "bin" / "python").write_text(f'#!/bin/sh\necho "$@" > {argv}\nexit "$FAKE_RC"\n')
    (venv / "bin" / "python").chmod(0o755)
    (venv / ".installed").touch()
    for rc, ok in ((0, True), (1, False), (5, False)):
        r = subprocess.run(["make", "-s", "-C", str(ROOT), f"VENV={venv}", "-o", f"{venv}/.installed", cmd[1]],
                           env={**os.environ, "FAKE_RC": str(rc)}, capture_output=True, text=True)
        assert (r.returncode == 0) == ok, (rc, r.returncode, r.stderr)
        assert argv.read_text().split() == ["-m", "pytest"] + (["-m", marker] if marker else [])
        argv.unlink()
    assert "collected no tests" in r.stderr


@pytest.mark.skipif(shutil.which("git") is None, reason="git not installed")
def test_dvc_sees_the_pipeline_in_a_fresh_git_copy(tmp_path):
    """dag, status and a dry run in a fresh copy.

    DVC 3.67 cannot dry-run a whole pipeline whose intermediate outputs do not exist yet (it hashes the missing
    dependency: treeverse/dvc#9021), so the dry run covers the first stage and `status` the rest.
    """
    dst = tmp_path / "repo"
    shutil.copytree(ROOT, dst, ignore=shutil.ignore_patterns(".venv", ".git", "data", "figures", "cache", "tmp",
                                                              "__pycache__", "*.egg-info", ".hypothesis", ".pytest_cache"))
    subprocess.run(["git", "init", "-q"], cwd=dst, check=True)
    dvc = str(Path(sys.executable).parent / "dvc")

    def run(*args):
        r = subprocess.run([dvc, *args], cwd=dst, capture_output=True, text=True)
        assert r.returncode == 0, (args, r.stderr[-2000:])
        return r.stdout

    dag = run("dag", "--md")
    status = run("status")
    for stage in STAGES:
        units = [f"{stage}@{r}" for r in PARAMS["replicates"]] if stage in REPLICATED else [stage]
        assert all(u in dag and f"{u}:" in status for u in units), (stage, status[:2000])
    assert "python -m passkt.run 00_data_prep" in run("repro", "--dry", "00_data_prep")
    assert not (dst / "data" / "00_data_prep").exists()  # a dry run computes nothing


@pytest.mark.parametrize("bad", [0, -1, 1.5, "2"])
def test_sampling_workers_must_be_a_positive_integer(bad):
    from passkt.evaluate import SamplingSettings

    with pytest.raises(ValueError, match="sampling.workers"):
        SamplingSettings.from_dict({"workers": bad})


def test_paper_dry_run_runs_the_root_pipelines_commands_in_order():
    """tools/paper_dry_run.py runs what `dvc repro` runs, in dvc.yaml's order: not notebook 08 (the sweep's), which
    has no section in the paper profile (it once did, and the dry run on the GPU failed there)."""
    from smoke_pipeline import load_tool

    dry = load_tool("paper_dry_run")
    want = []
    for stage in DVC["stages"].values():
        if "foreach" in stage:
            want += [stage["do"]["cmd"].replace("${item}", str(r)) for r in PARAMS["replicates"]]
        else:
            want.append(stage["cmd"])
    got = [f"python -m passkt.run {' '.join(cmd)}" for cmd in dry.stages(PARAMS)] + ["python -m passkt.publish"]
    assert got == want
