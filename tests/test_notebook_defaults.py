"""A reader's "Run all": every notebook's parameters cell holds the default (tiny) profile, and runs as it stands.

The defaults are params.yaml's values (the runner injects params.yaml anyway, so pipeline results do not depend on
them). Executing a notebook with its defaults needs its inputs; here they are the smoke pipeline's outputs (the
session's `smoke_repo`), copied first, since a notebook writes its stage's outputs in place:

- 05_pass_at_k, 06_mechanism, 07_claims_audit (analysis of cached artifacts) run in one copy, in that order (07
  reads the metrics of 05 and 06): about 45 s together on 2 cores.
- 00_data_prep, 02_base_rollouts and 03_sft run each in a fresh copy (10-15 s each, measured): with the tiny
  defaults 00 builds the tiny world, 02 and 03 sample (and 03 fine-tunes) with the tiny settings (n = 16 rollouts,
  two temperatures, budgets to T = 8) on the smoke problems and models.
- 01_base_model (pretrains the tiny architecture for 12 epochs on the smoke pool, ~40 s) and 04_grpo (below,
  ~4.5 min) are marked slow.
- 04_grpo's defaults take 16 prompts per GRPO step, more than the smoke profile's 8 training problems (TRL then
  stops with "max_steps must be set to a positive value"); its test first runs 00_data_prep with its defaults, so
  GRPO trains on the tiny profile's 200 training problems (with the smoke base model).
The smoke sampling grid (T = 0, 1, 2, 5; temperature 1.0) holds every default budget and temperature that the
analysis notebooks read (T_eval = band_T = demo_budget = 5, temperature 1.0), so no default had to change.
A value outside the sampled grid is an error that names the parameter, never a silent fallback.
"""

import shutil
import subprocess
import sys
import time

import numpy as np
import pytest
import yaml
from smoke_pipeline import ROOT, env

from passkt.config import ConfigError, parameters_cell, require_in, stage_params
from passkt.support import NOTEBOOK as SWEEP_NOTEBOOK

STAGES = sorted(p.stem for p in (ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb") if p.stem != SWEEP_NOTEBOOK)  # 08: test_sweep
ANALYSIS = ["05_pass_at_k", "06_mechanism", "07_claims_audit"]  # in this order: 07 reads the metrics of 05 and 06
SLOW = ["01_base_model", "04_grpo"]
TRAINING = [s for s in STAGES if s not in ANALYSIS + SLOW]
RUN_FIRST = {"04_grpo": ["00_data_prep"]}  # see the module docstring
KERNEL_ENV = {"MPLBACKEND": "Agg", "TQDM_MININTERVAL": "5", "PYTHONHASHSEED": "0"}


def _copy(smoke_repo, dst):
    shutil.copytree(smoke_repo, dst, ignore=shutil.ignore_patterns(".git", ".dvc", "__pycache__"))
    return dst


def _run_defaults(repo, stage, timeout=900) -> float:
    """Execute notebooks/<stage>.ipynb in ``repo`` with papermill and no parameters; returns the wall time."""
    t0 = time.time()
    r = subprocess.run([sys.executable, "-m", "papermill", f"notebooks/{stage}.ipynb", str(repo / f"{stage}.out.ipynb"),
                        "--cwd", str(repo), "-k", "python3", "--no-progress-bar"],
                       cwd=repo, capture_output=True, text=True, env={**env(repo, repo / "lib"), **KERNEL_ENV},
                       timeout=timeout)
    assert r.returncode == 0, f"{stage} failed with its defaults:\n{r.stderr[-3000:]}"
    return time.time() - t0


@pytest.mark.parametrize("stage", STAGES)
def test_parameters_cell_holds_the_default_profile(stage):
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    cell = parameters_cell(ROOT / "notebooks" / f"{stage}.ipynb")
    if "replicate" in cell:  # a replicated stage: its default is the first replicate (the runner passes --replicate)
        assert cell.pop("replicate") == params["replicates"][0], f"{stage}: default replicate is not the first"
    assert cell == stage_params(params, stage, cell), f"{stage}: parameters cell differs from params.yaml"


def test_require_in_names_the_parameter_value_and_grid():
    assert require_in("T_eval", 5, [0, 1, 5]) == 5
    with pytest.raises(ConfigError, match=r"'T_eval' = 4 is not in the grid \[0, 1, 5\]"):
        require_in("T_eval", 4, [0, 1, 5])
    with pytest.raises(ConfigError, match=r"'T_eval' = 4 is not in the grid \[0, 1, 5\]"):
        require_in("T_eval", 4, np.array([0, 1, 5]))


@pytest.fixture(scope="module")
def analysis_repo(smoke_repo, tmp_path_factory):
    return _copy(smoke_repo, tmp_path_factory.mktemp("defaults") / "repo")


@pytest.mark.parametrize("stage", ANALYSIS)
def test_analysis_notebook_runs_with_its_defaults(analysis_repo, stage):
    _run_defaults(analysis_repo, stage)
    assert list((analysis_repo / "figures" / stage).glob("*.png"))


def _fresh_run(smoke_repo, tmp_path, stage):
    repo = _copy(smoke_repo, tmp_path / "repo")
    for first in RUN_FIRST.get(stage, []):
        _run_defaults(repo, first)
    _run_defaults(repo, stage, timeout=3600)
    assert list((repo / "figures" / stage).rglob("*.png"))  # a replicated stage: in figures/<stage>/r0/


@pytest.mark.parametrize("stage", TRAINING)
def test_training_notebook_runs_with_its_defaults(smoke_repo, tmp_path, stage):
    _fresh_run(smoke_repo, tmp_path, stage)


@pytest.mark.slow
@pytest.mark.parametrize("stage", SLOW)
def test_slow_notebook_runs_with_its_defaults(smoke_repo, tmp_path, stage):
    _fresh_run(smoke_repo, tmp_path, stage)


def test_an_out_of_grid_budget_fails_naming_the_parameter(smoke_repo, tmp_path):
    repo = _copy(smoke_repo, tmp_path / "repo")
    r = subprocess.run([sys.executable, "-m", "passkt.run", "05_pass_at_k", "--set", "T_eval=4", "--quiet"], cwd=repo,
                       capture_output=True, text=True, env=env(repo, repo / "lib"), timeout=600)
    assert r.returncode == 1
    assert "ConfigError: parameter 'T_eval' = 4 is not in the grid [0, 1, 2, 5]" in r.stderr, r.stderr[-2000:]
