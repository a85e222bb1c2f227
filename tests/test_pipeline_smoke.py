"""The whole pipeline on the smoke profile, through DVC and the real runner, in a temporary copy of the repo.

Asserts on the files each stage writes (not on notebook output text). Budget: a few minutes on 2 CPU cores.
"""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


@pytest.fixture(scope="module")
def smoke_repo(tmp_path_factory):
    dst = tmp_path_factory.mktemp("smoke") / "repo"
    shutil.copytree(ROOT, dst, ignore=shutil.ignore_patterns(".venv", ".git", "data", "figures", "__pycache__", "cache",
                                                              "tmp", "*.egg-info", ".hypothesis", ".pytest_cache"))
    shutil.copy(ROOT / "configs" / "smoke.yaml", dst / "params.yaml")
    for cmd in (["git", "init", "-q"], ["git", "add", "-A"],
                ["git", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "smoke"]):
        subprocess.run(cmd, cwd=dst, check=True)
    env = {"PATH": f"{BIN}:/usr/bin:/bin", "HF_HUB_OFFLINE": "1", "HOME": str(dst), "TOKENIZERS_PARALLELISM": "false"}
    r = subprocess.run([str(BIN / "dvc"), "repro"], cwd=dst, capture_output=True, text=True, env=env, timeout=900)
    assert r.returncode == 0, (r.stdout[-3000:], r.stderr[-3000:])
    return dst


def stages():
    return list(yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"])


@pytest.mark.parametrize("stage", stages())
def test_every_stage_ran_with_metadata(smoke_repo, stage):
    meta = json.loads((smoke_repo / "data" / stage / "run_meta.json").read_text())
    assert meta["stage"] == stage and meta["profile"] == "smoke" and meta["wall_s"] > 0
    assert meta["git"]["commit"] and meta["packages"]["torch"].startswith("2.13")
    assert (smoke_repo / "data" / stage / f"{stage}.executed.ipynb").exists()
    figs = list((smoke_repo / "figures" / stage).glob("*.png"))
    assert figs, f"{stage} wrote no figure"
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


def test_second_repro_is_a_noop(smoke_repo):
    r = subprocess.run([str(BIN / "dvc"), "status"], cwd=smoke_repo, capture_output=True, text=True,
                       env={"PATH": f"{BIN}:/usr/bin:/bin", "HOME": str(smoke_repo)})
    assert r.returncode == 0 and "changed" not in r.stdout, r.stdout
