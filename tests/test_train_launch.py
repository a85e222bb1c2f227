"""Stage 04's training entry point under ``accelerate launch`` (the paper profile's multi-process GRPO), on CPU.

A copy of the smoke pipeline's repository (``smoke_repo``) loses its replicate-0 ``rl`` run; the runner executes the
notebook with ``launcher`` = :data:`LAUNCHER`, so the notebook launches ``passkt.train`` in two CPU processes (gloo),
one process group per run, and must then find each run finished by the launcher rather than train it again.
"""

import json
import shutil
import subprocess
import sys

import pytest
from smoke_pipeline import env

from passkt import train

# `accelerate launch --cpu --num_processes 2` starts ONE process unless MPI is installed (accelerate's multi-CPU
# launcher is mpirun); its torchrun path with ACCELERATE_USE_CPU=true starts two gloo processes on the CPU.
LAUNCHER = ("env ACCELERATE_USE_CPU=true accelerate launch --multi_gpu --num_processes 2 --num_machines 1 "
            "--main_process_port 29513 --mixed_precision no --dynamo_backend no")


@pytest.fixture(scope="module")
def launched(smoke_repo, tmp_path_factory):
    repo = tmp_path_factory.mktemp("launch") / "repo"
    shutil.copytree(smoke_repo, repo, ignore=shutil.ignore_patterns(".git", ".dvc", "__pycache__"))
    run_dir = repo / "data" / "04_grpo" / "r0" / "rl"
    before = json.loads((repo / "data" / "04_grpo" / "r0" / "train_result.json").read_text())["rl"]
    shutil.rmtree(run_dir)
    r = subprocess.run([sys.executable, "-m", "passkt.run", "04_grpo", "--replicate", "0", "--quiet",
                        "--set", f"launcher={LAUNCHER}"], cwd=repo, capture_output=True, text=True,
                       env={**env(repo, repo / "lib"), "OMP_NUM_THREADS": "1"}, timeout=1200)
    assert r.returncode == 0, (r.stdout[-3000:], r.stderr[-3000:])
    return repo, run_dir, before, r.stdout


def test_two_process_grpo_trains_the_run_and_the_notebook_reads_it(launched):
    repo, run_dir, before, stdout = launched
    launched_with = json.loads((repo / "data" / "04_grpo" / "r0" / "launch_params.json").read_text())
    assert launched_with["replicate"] == 0 and launched_with["grpo"]["epochs"] == 1  # the notebook's parameters
    result = json.loads((repo / "data" / "04_grpo" / "r0" / "train_result.json").read_text())
    rl = result["rl"]
    assert rl["processes"] == 2 and rl["steps"] == before["steps"] > 0  # same schedule as one process
    assert rl["reused"] and result["rl_bonus"]["reused"]  # the notebook found both finished: it did not train
    assert (run_dir / "model" / "config.json").exists() and not (run_dir / "checkpoints").exists()
    log = (run_dir / "train_log.csv").read_text().splitlines()
    assert len(log) == 1 + rl["steps"]  # one header, one row per step: only the main process writes the log
    assert any((repo / "data" / "04_grpo" / "r0" / "rollouts").glob("shard-*.parquet"))


def test_train_entry_point_rejects_an_unknown_run_and_missing_arguments(smoke_repo, capsys, monkeypatch):
    monkeypatch.chdir(smoke_repo)
    assert train.main(["04_grpo", "--replicate", "0", "--run", "nope", "--params", "params.yaml"]) == 2
    assert "--run 'nope': replicate 0 trains ['rl', 'rl_bonus']" in capsys.readouterr().err
    assert train.main([]) == 2
    assert "pass --params-json FILE, or a stage and --replicate I" in capsys.readouterr().err
    with pytest.raises(ValueError, match=r"parameters \['sampling', 'grpo'"):
        train.launch("true", {"seed": 0, "replicate": 0}, smoke_repo)
