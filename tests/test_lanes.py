"""tools/repro_lanes.py: independent DVC units side by side, with the outputs of a plain `dvc repro`."""

import hashlib
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
import yaml
from smoke_pipeline import ROOT, copy_repo, env, load_tool
from test_grpo import problems as _problems
from test_grpo import tok as _tok

problems, tok = _problems, _tok  # test_grpo's fixtures, shared

lanes = load_tool("repro_lanes")


def _has_amx() -> bool:
    """Whether this CPU has AMX bf16 tiles (``/proc/cpuinfo``): there bf16 matrix products take other kernels."""
    try:
        with open("/proc/cpuinfo") as f:
            return "amx_bf16" in f.read()
    except OSError:
        return False


def test_units_expand_the_replicates_and_wait_only_for_what_they_read():
    graph = lanes.units(ROOT)
    reps = yaml.safe_load((ROOT / "params.yaml").read_text())["replicates"]
    assert {f"03_sft@{r}" for r in reps} | {f"04_grpo@{r}" for r in reps} <= set(graph)
    assert "03_sft" not in graph and f"04_grpo@{reps[-1]}" in graph
    ups = lanes.upstream(graph)
    head = {"00_data_prep", "01_base_model"}
    for u in ["02_base_rollouts"] + [f"{s}@{r}" for s in ("03_sft", "04_grpo") for r in reps]:
        assert ups[u] == head, (u, ups[u])  # these can run side by side once the base model exists
    trained = {f"{s}@{r}" for s in ("03_sft", "04_grpo") for r in reps}
    assert trained | {"02_base_rollouts"} <= ups["05_pass_at_k"] and trained <= ups["06_mechanism"]
    assert "05_pass_at_k" not in ups["06_mechanism"]  # independent of each other
    assert {"05_pass_at_k", "06_mechanism"} <= ups["07_claims_audit"]


def _fake_repo(tmp_path: Path, fail: str | None) -> Path:
    """A dvc.yaml of four units and a fake `dvc` that records each call (and fails for ``fail``)."""
    (tmp_path / "dvc.yaml").write_text(textwrap.dedent("""\
        stages:
          a: {cmd: x, outs: [data/a]}
          b:
            foreach: ${replicates}
            do: {cmd: x, deps: [data/a], outs: ["data/b/r${item}"]}
          c: {cmd: x, deps: [data/b], outs: [data/c]}
        """))
    (tmp_path / "params.yaml").write_text("replicates: [0, 1]\n")
    fake = tmp_path / "fake_dvc"
    fake.write_text(textwrap.dedent(f"""\
        #!{sys.executable}
        import os, sys, time
        args = sys.argv[1:]
        if args[0] == "status":
            print("{{}}")
            sys.exit(0)
        unit = args[-1]
        with open("calls.txt", "a") as f:
            f.write(f"{{unit}} {{os.environ.get('OMP_NUM_THREADS', '-')}}\\n")
        time.sleep(0.3)
        sys.exit(3 if unit == {fail!r} else 0)
        """))
    fake.chmod(0o755)
    return fake


def test_units_start_when_their_inputs_are_done_and_a_plain_repro_checks_the_end(tmp_path, capsys):
    fake = _fake_repo(tmp_path, fail=None)
    assert lanes.run(2, root=tmp_path, dvc=str(fake)) == 0
    calls = [ln.split() for ln in (tmp_path / "calls.txt").read_text().splitlines()]
    order = [u for u, _ in calls]
    assert order[0] == "a" and set(order[1:3]) == {"b@0", "b@1"} and order[3:] == ["c"]
    threads = dict(calls)
    assert threads["a"] == threads["c"] == "-"  # alone: no thread setting, as under plain `dvc repro`
    assert threads["b@0"] == threads["b@1"] == str(max(1, lanes._cpus() // 2))  # side by side: a share each
    assert "all 4 units done with 2 lane(s); `dvc status`: up to date" in capsys.readouterr().out
    (tmp_path / "calls.txt").unlink()
    assert lanes.run(1, root=tmp_path, dvc=str(fake)) == 0  # one lane: plain `dvc repro`, no thread settings
    assert [ln.split()[1] for ln in (tmp_path / "calls.txt").read_text().splitlines()] == ["-"] * 4


def test_a_profile_with_gpu_work_runs_one_unit_at_a_time(tmp_path, capsys):
    assert lanes.gpu_settings(ROOT) == []  # the tiny profile: CPU only
    paper = tmp_path / "paper"
    paper.mkdir()
    (paper / "params.yaml").write_text((ROOT / "configs" / "paper.yaml").read_text())
    found = lanes.gpu_settings(paper)
    assert "sampling.backend: vllm" in found and any(f.startswith("04_grpo.launcher") for f in found), found
    fake = _fake_repo(tmp_path, fail=None)
    with open(tmp_path / "params.yaml", "a") as f:
        f.write("sampling: {device: cuda}\n")
    assert lanes.run(2, root=tmp_path, dvc=str(fake)) == 0
    assert "one unit at a time (sampling.device: cuda" in capsys.readouterr().out
    assert all(ln.endswith(" -") for ln in (tmp_path / "calls.txt").read_text().splitlines())


def test_a_pipeline_it_cannot_expand_is_one_line_naming_the_stage(tmp_path):
    (tmp_path / "params.yaml").write_text("replicates: {a: 1}\n")
    (tmp_path / "dvc.yaml").write_text("stages:\n  s:\n    foreach: ${replicates}\n    do: {cmd: x}\n")
    with pytest.raises(SystemExit, match="stage s: foreach over dict is not supported"):
        lanes.units(tmp_path)
    (tmp_path / "dvc.yaml").write_text("stages:\n  s:\n    foreach: ${nope}\n    do: {cmd: x}\n")
    with pytest.raises(SystemExit, match="stage s: params.yaml has no nope"):
        lanes.units(tmp_path)


def test_a_failed_unit_starts_nothing_after_it_and_exits_1_naming_its_log(tmp_path, capsys):
    fake = _fake_repo(tmp_path, fail="b@1")
    assert lanes.run(2, root=tmp_path, dvc=str(fake)) == 1
    order = [ln.split()[0] for ln in (tmp_path / "calls.txt").read_text().splitlines()]
    assert "c" not in order and {"b@0", "b@1"} <= set(order)
    err = capsys.readouterr().err
    assert "b@1 failed" in err and "not started: c" in err and ".dvc/tmp/lanes" in err


def test_bad_lane_count_is_one_line_naming_it(capsys):
    with pytest.raises(SystemExit):
        lanes.main(["--lanes", "0"])
    assert "--lanes must be at least 1, got 0" in capsys.readouterr().err


def _results(repo: Path) -> dict[str, str]:
    """What a run computed, by file: weights, rollout tables, metrics and verdicts (not times, paths or notebooks).
    A rollout shard's file also carries the fingerprint of its model folder, whose ``training_args.bin`` holds the
    run's absolute output path (another checkout, another fingerprint), so shards compare by their table."""
    import pandas as pd

    files = [f for pattern in ("data/**/*.safetensors", "data/**/*.parquet", "results/verdicts.json",
                               "results/headline.json", "results/metrics/*")
             for f in repo.glob(pattern) if f.is_file()]
    return {str(f.relative_to(repo)): hashlib.md5(pd.read_parquet(f).to_csv().encode() if f.suffix == ".parquet"
                                                  else f.read_bytes()).hexdigest() for f in files}


def _weights(model) -> str:
    return hashlib.md5(b"".join(p.detach().float().numpy().tobytes() for p in model.parameters())).hexdigest()


@pytest.mark.skipif(lanes._cpus() < 2, reason="needs two CPUs to compare one thread with two")
@pytest.mark.xfail(_has_amx(), strict=False,
                   reason="on a CPU with AMX (an Intel Xeon, 2026-11-28) bf16 training differed with the thread count; "
                          "it held on the AMD EPYC machines before (docs/wall_times.md)")
def test_training_steps_are_the_same_with_one_thread_or_two(problems, tok, tmp_path):
    """Why a lane may run a unit with fewer threads: GRPO steps (loss forward in length buckets under bf16, backward,
    update; 64 episodes a step) and pretraining steps (stage 01's bf16 Trainer on 16 packed rows of 512 tokens, the
    tiny profile's batch) at the tiny profile's width end on the same weights, bit for bit, with one torch thread or
    two. (SFT and sampling: the smoke comparison below; the whole tiny study: a fresh clone's run, docs/wall_times.md.)"""
    import warnings

    from test_grpo import _varied_backend
    from transformers import AutoModelForCausalLM

    from passkt import models, pretrain
    from passkt.grpo import GRPOSettings, train_grpo

    torch_threads = torch.get_num_threads()
    cfg = models.tiny_config(tok, hidden=128, layers=2, heads=4, kv_heads=2, intermediate=384, max_positions=1024)
    torch.manual_seed(0)
    AutoModelForCausalLM.from_config(cfg).save_pretrained(tmp_path / "base")
    tok.save_pretrained(tmp_path / "base")
    train = problems[:8]
    s = GRPOSettings(epochs=1, group_size=8, T_train=1, lr=1e-3, max_turn_tokens=48, max_total_tokens=1024,
                     prompts_per_step=8, logprob_buckets=8, autocast_bf16=True)
    texts = [p["question"] + " " + " ".join(p["texts"]) + " " + p["answer"] for p in problems]
    examples = [{"input_ids": ids, "labels": ids} for ids in (tok.encode(t) for t in texts * 40)]
    out = {}
    try:
        for threads in (1, 2):
            torch.set_num_threads(threads)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                backend = _varied_backend(train, tok)
                train_grpo(tmp_path / "base", train, tok, tmp_path / f"g{threads}", s, search_k=1,
                           backend_factory=lambda trainer, b=backend: b)
            torch.manual_seed(0)
            model = AutoModelForCausalLM.from_config(cfg)
            res = pretrain.pretrain_lm(model, tok, examples, tmp_path / f"p{threads}", epochs=1, lr=3e-3,
                                       batch_size=16, max_len=1024, seed=0, pack_len=512, bf16=True)
            assert res["steps"] >= 3, res["steps"]
            out[threads] = (_weights(AutoModelForCausalLM.from_pretrained(tmp_path / f"g{threads}" / "model")),
                            _weights(model))
    finally:
        torch.set_num_threads(torch_threads)
    assert out[1][0] != _weights(AutoModelForCausalLM.from_pretrained(tmp_path / "base"))  # GRPO moved the weights
    assert out[1] == out[2]


@pytest.mark.slow  # a second smoke pipeline (minutes); the driver is opt-in (`make reproduce LANES=N`)
def test_lanes_with_one_thread_each_reproduce_the_plain_dvc_repro_byte_for_byte(smoke_repo, tmp_path):
    """The smoke pipeline run by the driver (two lanes: the training and sampling units with one thread each) gives
    the files the fixture's plain `dvc repro` (every thread) gave: the same weights, rollouts, metrics and verdicts.
    This is what makes the driver a scheduling change only: a thread count that changed the numbers fails here."""
    repo = copy_repo(tmp_path / "repo", ROOT / "configs" / "smoke.yaml")
    r = subprocess.run([sys.executable, "tools/repro_lanes.py", "--lanes", "2"], cwd=repo, capture_output=True,
                       text=True, env=env(repo, repo / "lib"), timeout=1100)
    assert r.returncode == 0, (r.stdout[-3000:], r.stderr[-3000:])
    assert f"({max(1, lanes._cpus() // 2)} thread" in r.stdout, r.stdout  # units did run side by side
    ours, plain = _results(repo), _results(smoke_repo)
    assert len(plain) > 20 and any(k.endswith(".safetensors") for k in plain), sorted(plain)[:5]
    assert ours == plain, sorted(k for k in set(ours) | set(plain) if ours.get(k) != plain.get(k))[:10]
