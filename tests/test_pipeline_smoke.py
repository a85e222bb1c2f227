"""The whole pipeline on the smoke profile, through DVC and the real runner, in a temporary copy of the repo.

Asserts on content (tests/pipeline_checks.py): the claims' verdicts and every key their rules read, statistic
ranges and orderings, Pass@k monotone in k from the cached counts, the scorer on known answers, trained models that
load and moved. A test of the tests reruns stage 05 with a broken scorer and requires the checks to fail.
The smoke models are far too small to solve anything, so claim 6 (which scores successful RL trajectories) is
the one claim allowed to be "not evaluated" here; the slow full-pipeline test allows none.
"""

import json
import os
import re
import shutil
import subprocess
import sys

import pipeline_checks as checks
import pytest
import yaml
from smoke_pipeline import BIN, ROOT
from smoke_pipeline import copy_repo as _copy_repo
from smoke_pipeline import env as _env

SMOKE_NOT_EVALUATED = (6,)  # needs RL successes; the smoke models have none

# the `smoke_repo` fixture (one smoke pipeline per session) is in tests/conftest.py


def stages():  # the notebook stages (publish runs a module and writes results/, checked in test_publish_*)
    return [s for s in yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"] if (ROOT / "notebooks" / f"{s}.ipynb").exists()]


@pytest.mark.parametrize("stage", stages())
def test_every_stage_ran_with_metadata(smoke_repo, stage):
    from passkt.paths import REPLICATED, Paths

    reps = yaml.safe_load((smoke_repo / "params.yaml").read_text())["replicates"] if stage in REPLICATED else [0]
    for r in reps:  # a replicated stage: every replicate is its own unit, with its own folders and metadata
        P = Paths(smoke_repo, r)
        meta = json.loads(P.run_meta(stage).read_text())
        assert meta["stage"] == stage and meta["profile"] == "smoke" and meta["wall_s"] > 0
        assert meta["git"]["commit"] and meta["packages"]["torch"].startswith("2.13")
        assert meta["params"].get("replicate", 0) == r
        assert P.executed_notebook(stage).exists()
        figs = list(P.figures(stage).glob("*.png"))
        assert figs, f"{stage} (replicate {r}) wrote no figure"
        for png in figs:  # every figure comes with its PDF and the CSV of the plotted numbers
            assert png.with_suffix(".pdf").exists() and png.with_suffix(".csv").exists()


def test_data_prep_outputs(smoke_repo):
    from passkt import data

    ps = data.load_problems(smoke_repo / "data/00_data_prep/problems")
    assert {p["category"] for p in ps} == {"math", "comparison", "bridge"}
    assert sum(p["split"] == "train" for p in ps) == 8


def test_base_model_loads_like_a_hub_model(smoke_repo):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    d = smoke_repo / "data/01_base_model/model"
    tok = AutoTokenizer.from_pretrained(d)
    model = AutoModelForCausalLM.from_pretrained(d)
    assert model.config.model_type == "qwen2" and tok.chat_template


def test_base_rollouts_cover_the_grid(smoke_repo):
    from passkt.rollout import load_rollouts

    df = load_rollouts(smoke_repo / "data/02_base_rollouts/rollouts")
    tool = df[df.category != "math"]
    assert sorted(tool["T"].unique()) == [0, 1, 2, 5]
    assert set(df[df.category == "math"]["T"]) == {0}
    assert (tool.groupby(["problem_id", "T"]).size() == 4).all()
    bands = json.loads((smoke_repo / "data/02_base_rollouts/sanity_bands.json").read_text())
    assert len(bands["bands"]) == 8


def test_claims_are_decided_from_every_key_their_rules_read(smoke_repo):
    assert checks.check_claims(smoke_repo, allow_not_evaluated=SMOKE_NOT_EVALUATED) == []


def test_metrics_have_sane_ranges_and_a_working_scorer(smoke_repo):
    assert checks.check_metrics(smoke_repo) == []


def test_deep_boundary_sampling_and_boundary_mass(smoke_repo):
    assert checks.check_deep(smoke_repo) == []


def test_pass_at_k_from_the_counts_is_monotone_in_k(smoke_repo):
    assert checks.check_counts(smoke_repo) == []


def test_trained_models_load_and_moved(smoke_repo):
    assert checks.check_models(smoke_repo) == []


def test_a_broken_scorer_fails_the_checks(smoke_repo, tmp_path):
    """The test of the tests: stage 05 rerun with ``score_answer`` always False must fail check_metrics.

    The smoke models solve nothing, so here the broken scorer shows only on known answers (``scorer.*``); that
    stage 05 rescores cached rollouts at read time is tested in tests/test_integrity.py on scripted rollouts."""
    bad = tmp_path / "repo"
    shutil.copytree(smoke_repo, bad, ignore=shutil.ignore_patterns(".git", ".dvc", "__pycache__"))
    f = bad / "lib/passkt/scoring.py"
    src = f.read_text()
    anchor = "    gold, aliases = problem[\"answer\"], problem.get(\"aliases\", ())\n"
    assert src.count(anchor) == 1, "the mutation's anchor moved: update this test"
    f.write_text(src.replace(anchor, anchor + "    return {\"correct\": False, \"f1\": 0.0}\n"))
    r = subprocess.run([sys.executable, "-m", "passkt.run", "05_pass_at_k"], cwd=bad, capture_output=True, text=True,
                       env=_env(bad, bad / "lib"), timeout=600)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    problems = checks.check_metrics(bad)
    assert any("scorer.gold_accept" in p for p in problems), problems


def test_publish_fills_results_that_dvc_metrics_and_plots_read(smoke_repo):
    res = smoke_repo / "results"
    manifest = json.loads((res / "MANIFEST.json").read_text())
    assert {f"notebooks/{s}.ipynb" for s in stages()} <= set(manifest)
    assert (res / "report.html").exists() and (res / "figures" / "05_pass_at_k" / "headline_bridge.png").exists()
    links = re.findall(r"\]\(([^)\s#:]+)", (res / "report.md").read_text())
    assert links and all((res / link).exists() for link in links), [x for x in links if not (res / x).exists()]
    r = subprocess.run([str(BIN / "dvc"), "metrics", "show", "--json"], cwd=smoke_repo, capture_output=True, text=True,
                       env=_env(smoke_repo))
    assert r.returncode == 0 and "headline.json" in r.stdout, r.stderr
    r = subprocess.run([str(BIN / "dvc"), "plots", "show", "-o", "plots_html"], cwd=smoke_repo, capture_output=True,
                       text=True, env=_env(smoke_repo))
    assert r.returncode == 0 and (smoke_repo / "plots_html" / "index.html").exists(), r.stderr
    html = (smoke_repo / "plots_html" / "index.html").read_text()
    assert "pass_at_k_bridge" in html and "grpo_reward" in html


def test_second_repro_is_a_noop(smoke_repo):
    r = subprocess.run([str(BIN / "dvc"), "status", "dvc.yaml"], cwd=smoke_repo, capture_output=True, text=True,
                       env={"PATH": f"{BIN}:/usr/bin:/bin", "HOME": str(smoke_repo)})
    assert r.returncode == 0 and "changed" not in r.stdout, r.stdout


@pytest.mark.slow
def test_full_tiny_pipeline_is_decisive_about_its_own_content(tmp_path):
    """The tiny world and base model end to end at the quick profile's settings (configs/quick.yaml; the base
    model alone takes ~28 min on 2 cores, the rest ~10 min): every claim evaluated, all checks pass. The default
    profile's own run is `make reproduce` (its results are committed and tested by tests/test_results.py)."""
    repo = _copy_repo(tmp_path / "repo", ROOT / "configs" / "quick.yaml")
    r = subprocess.run([str(BIN / "dvc"), "repro"], cwd=repo, capture_output=True, text=True, env=_env(repo),
                       timeout=int(os.environ.get("PASSKT_SLOW_TIMEOUT", 3600)))
    assert r.returncode == 0, (r.stdout[-3000:], r.stderr[-3000:])
    assert checks.check_claims(repo) == []
    assert checks.check_metrics(repo) + checks.check_counts(repo) + checks.check_models(repo) + checks.check_deep(repo) == []
