"""A cached result can never be stale, leaked or silently wrong.

Scores are derived when rollouts are read, shard fingerprints cover the sampling path's whole import closure, the
problems and the model weights, dvc.yaml's library deps equal each notebook's import closure, training runs reuse
only their own checkpoints, and a real SIGKILL of a sampling or training process loses nothing finished and reads
nothing half-written.
"""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import torch
from smoke_pipeline import load_tool

from passkt import evaluate, integrity, models, prep, rollout, sampling
from passkt.backends import ScriptedBackend

ROOT = Path(__file__).resolve().parents[1]
CFG = rollout.SamplingConfig(temperature=1.0, max_turn_tokens=64, max_total_tokens=2000, search_k=1)
KW = dict(policy="rand", n=4, grid=[0, 1, 2], temperatures=[1.0], cfg=CFG, seed=7, problems_per_shard=2)


def _agent(problems):
    """Searches at random, then answers the gold answer or a wrong one at random (torch's RNG: seeded per shard)."""
    gold = {p["question"]: p["answer"] for p in problems}

    def script(ctx: str) -> str:
        if "No searches remain" not in ctx and torch.rand(()) < 0.6:
            return f"<search>query {int(torch.randint(0, 3, ()))}</search>"
        right = next(a for q, a in gold.items() if q in ctx)
        return f"<answer>{right if torch.rand(()) < 0.5 else 'nothing'}</answer>"

    return script


def _sample(env, problems, out, **kw):
    return rollout.sample_policy(ScriptedBackend(env.tok, _agent(problems)), env, problems, out_dir=out, **{**KW, **kw})


# ------------------------------------------------------------------------------------ 1. derived scores


def test_shards_hold_no_score_and_a_scorer_change_rescores_without_resampling(tmp_path, small_tok, eval_set, monkeypatch):
    env = rollout.Environment(eval_set, small_tok, search_k=1)
    _sample(env, eval_set, tmp_path)
    raw = rollout.load_rollouts(tmp_path)
    assert not {"correct", "f1"} & set(raw.columns)
    with pytest.raises(ValueError, match="load_scored"):
        rollout.load_rollouts(tmp_path, columns=["problem_id", "correct"])
    before = evaluate.load_scored(tmp_path, eval_set)
    assert before.correct.any() and (before.correct <= before.valid).all()
    monkeypatch.setattr(evaluate, "score_answer", lambda pred, p: {"correct": False, "f1": 0.0})
    after = evaluate.load_scored(tmp_path, eval_set)  # the same shards, scored by the changed scorer
    assert not after.correct.any()
    # ...and the sampling fingerprint did not move: a rerun resumes every shard
    assert _sample(env, eval_set, tmp_path)["resumed_shards"] == len(list(tmp_path.glob("shard-*.parquet")))


def test_score_frame_matches_the_scorer_row_by_row(small_tok, eval_set):
    from passkt.scoring import score_answer

    df = pd.DataFrame([
        {"problem_id": p["id"], "answer": a, "termination": t}
        for p in eval_set[:6] for a, t in ((p["answer"], "answered"), ("nonsense", "answered"),
                                            (p["answer"], "turn_too_long"), (None, "no_action"))
    ])
    out = evaluate.score_frame(df, eval_set)
    for r in out.itertuples():
        want = r.termination == "answered" and score_answer(r.answer, {p["id"]: p for p in eval_set}[r.problem_id])["correct"]
        assert r.correct == want
    with pytest.raises(KeyError, match="not in the problem set"):
        evaluate.score_frame(df.assign(problem_id="nope"), eval_set)


# ------------------------------------------------------------------------------------- 2. fingerprints


def test_sampling_closure_is_derived_and_excludes_the_scorer():
    mods = integrity.code_version(integrity.SAMPLING_ROOTS)["modules"]
    for m in ("passkt.rollout", "passkt.backends", "passkt.search", "passkt.protocol", "passkt.models"):
        assert m in mods
    assert "passkt.scoring" not in mods  # scores are derived, so a scorer change never resamples
    assert "passkt.scoring" in integrity.closure(["passkt.evaluate"])


def test_closure_sees_lazy_and_from_imports(tmp_path):
    src = "from passkt import rollout\n\ndef f():\n    from passkt.scoring import score_answer\n    import passkt.search\n"
    assert integrity.imports_of_source(src) == {"passkt.rollout", "passkt.scoring", "passkt.search"}


def test_a_change_in_any_sampling_module_discards_the_shards(tmp_path, small_tok, eval_set, monkeypatch, capsys):
    env = rollout.Environment(eval_set, small_tok, search_k=1)
    _sample(env, eval_set, tmp_path)
    search_file = integrity.module_file("passkt.search")
    real = Path.read_bytes

    def edited(self):  # search.py as if one line had changed
        data = real(self)
        return data + b"\n# edited\n" if self == search_file else data

    monkeypatch.setattr(Path, "read_bytes", edited)
    assert _sample(env, eval_set, tmp_path)["resumed_shards"] == 0
    assert "discarding" in capsys.readouterr().out


def test_problem_content_is_in_the_fingerprint(tmp_path, small_tok, eval_set, capsys):
    env = rollout.Environment(eval_set, small_tok, search_k=1)
    _sample(env, eval_set, tmp_path)
    changed = [dict(p) for p in eval_set]
    changed[3] = {**changed[3], "texts": [t + " Edited." for t in changed[3]["texts"]]}  # same ids, new corpus
    env2 = rollout.Environment(changed, small_tok, search_k=1)
    assert _sample(env2, changed, tmp_path)["resumed_shards"] == 0
    assert "problems" in capsys.readouterr().out


def test_model_weights_are_in_the_fingerprint(tmp_path, small_tok, eval_set):
    from transformers import AutoModelForCausalLM

    cfg = models.tiny_config(small_tok, 16, 1, 2, 1, 32, 1024)
    torch.manual_seed(0)
    m = AutoModelForCausalLM.from_config(cfg)
    m.save_pretrained(tmp_path / "m")
    small_tok.save_pretrained(tmp_path / "m")
    s = {"n": 2, "T_grid": [0], "math_T_grid": [0], "temperatures": [1.0], "max_turn_tokens": 6,
         "max_total_tokens": 400, "search_k": 1, "problems_per_shard": 1}
    probs = [p for p in eval_set if p["category"] == "math"][:2]
    first = sampling.sample_eval(tmp_path / "m", "base", probs, tmp_path / "r", s, 0)
    assert first["resumed_shards"] == 0
    assert sampling.sample_eval(tmp_path / "m", "base", probs, tmp_path / "r", s, 0)["resumed_shards"] == first["shards"]
    with torch.no_grad():
        m.lm_head.weight[0, 0] += 1e-3  # one weight in the last file changes
    m.save_pretrained(tmp_path / "m")
    assert sampling.sample_eval(tmp_path / "m", "base", probs, tmp_path / "r", s, 0)["resumed_shards"] == 0


# ---------------------------------------------------------------------------------------- 3. DVC deps


def test_dvc_deps_contain_each_notebooks_import_closure():
    bad = {s: d for s, d in integrity.check_dvc_deps(ROOT).items() if d["missing"] or d["extra"]}
    assert not bad, f"dvc.yaml deps drifted from the import closures (run `python -m passkt.integrity deps --write`): {bad}"
    # the cases the review found, by name
    assert {"lib/passkt/search.py", "lib/passkt/models.py"} <= set(integrity.stage_lib_deps(ROOT, "02_base_rollouts"))
    assert {"lib/passkt/evaluate.py", "lib/passkt/metrics.py"} <= set(integrity.stage_lib_deps(ROOT, "06_mechanism"))
    assert "lib/passkt/scoring.py" in integrity.stage_lib_deps(ROOT, "05_pass_at_k")


def test_dvc_deps_writer_round_trips(tmp_path):
    import shutil

    import yaml

    for d in ("notebooks",):
        shutil.copytree(ROOT / d, tmp_path / d)
    spec = yaml.safe_load((ROOT / "dvc.yaml").read_text())
    spec["stages"]["02_base_rollouts"]["deps"] = [d for d in spec["stages"]["02_base_rollouts"]["deps"]
                                                   if d != "lib/passkt/search.py"]
    (tmp_path / "dvc.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))
    assert integrity.check_dvc_deps(tmp_path)["02_base_rollouts"]["missing"] == ["lib/passkt/search.py"]
    assert integrity.write_dvc_deps(tmp_path)
    assert all(not d["missing"] and not d["extra"] for d in integrity.check_dvc_deps(tmp_path).values())
    assert yaml.safe_load((tmp_path / "dvc.yaml").read_text())["stages"]["02_base_rollouts"]["outs"]


# ------------------------------------------------------------------------------- 7. damaged and killed


def test_truncated_or_corrupted_shard_is_named_and_resampled(tmp_path, small_tok, eval_set, capsys):
    env = rollout.Environment(eval_set, small_tok, search_k=1)
    _sample(env, eval_set, tmp_path / "ref")
    _sample(env, eval_set, tmp_path / "x")
    shards = sorted((tmp_path / "x").glob("shard-*.parquet"))
    data = shards[1].read_bytes()
    shards[1].write_bytes(data[: len(data) // 2])  # cut short: no footer
    shards[2].write_bytes(b"PAR1" + b"\0" * 64)  # garbage
    (tmp_path / "x" / "shard-00003.tmp999").write_bytes(data[:100])  # a killed writer's leftover
    with pytest.raises(ValueError, match="shard-00001.parquet"):
        rollout.load_rollouts(tmp_path / "x")  # never read
    stats = _sample(env, eval_set, tmp_path / "x")
    out = capsys.readouterr().out
    assert "resampling shard-00001.parquet" in out and "resampling shard-00002.parquet" in out
    assert stats["resumed_shards"] == len(shards) - 2
    assert not list((tmp_path / "x").glob("*.tmp*"))
    pd.testing.assert_frame_equal(rollout.load_rollouts(tmp_path / "ref"), rollout.load_rollouts(tmp_path / "x"))


def test_unfinished_run_is_never_read(tmp_path, small_tok, eval_set):
    env = rollout.Environment(eval_set, small_tok, search_k=1)
    _sample(env, eval_set, tmp_path)
    (tmp_path / rollout.MANIFEST).unlink()
    with pytest.raises(ValueError, match="unfinished"):
        rollout.load_rollouts(tmp_path)
    _sample(env, eval_set, tmp_path)
    next(iter(sorted(tmp_path.glob("shard-*.parquet")))).unlink()
    with pytest.raises(ValueError, match="missing"):
        rollout.load_rollouts(tmp_path)


@pytest.fixture(scope="module")
def kill_work(tmp_path_factory):
    """problems.json + a saved tiny random model for tests/kill_driver.py."""
    from transformers import AutoModelForCausalLM

    from passkt import protocol

    work = tmp_path_factory.mktemp("kill")
    sets, texts = prep.build_synthetic(1, [120, 60, 60], 30, 8, 4, 6)
    probs = sets["train"][:4]
    tok = models.build_tokenizer(texts + [p["question"] for v in sets.values() for p in v]
                                 + [protocol.SYSTEM_PROMPT, protocol.NOTICE], 400)
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(models.tiny_config(tok, 32, 1, 2, 1, 64, 2048))
    model.save_pretrained(work / "base")
    tok.save_pretrained(work / "base")
    (work / "problems.json").write_text(json.dumps(probs))
    (work / "eval.json").write_text(json.dumps(sets["eval_comparison"] + sets["eval_bridge"] + sets["eval_math"]))
    return work


def _driver(mode, work, slow=0.0, kill_when=None, timeout=300):
    """Run the driver; with ``kill_when(out_dir)``, SIGKILL it as soon as that returns True."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false", "OMP_NUM_THREADS": "1"}
    p = subprocess.Popen([sys.executable, str(ROOT / "tests" / "kill_driver.py"), mode, str(work), "--slow", str(slow)],
                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    t0 = time.time()
    if kill_when is not None:
        while p.poll() is None and not kill_when(work / "out"):
            if time.time() - t0 > timeout:
                p.kill()
                pytest.fail(f"{mode}: the kill condition never came true")
            time.sleep(0.02)
        killed = p.poll() is None
        if killed:
            os.kill(p.pid, signal.SIGKILL)
        out = p.communicate()[0]
        assert killed, f"{mode} finished before it could be killed:\n{out[-2000:]}"
        assert p.returncode == -signal.SIGKILL
        return out
    out = p.communicate(timeout=timeout)[0]
    assert p.returncode == 0 and "DONE" in out, out[-3000:]
    return out


def _fresh(work, name):
    import shutil

    d = work.parent / f"{work.name}-{name}"
    if d.exists():
        shutil.rmtree(d)
    d.mkdir()
    shutil.copytree(work / "base", d / "base")
    for f in ("problems.json", "eval.json"):
        shutil.copy(work / f, d / f)
    return d


def _state(model_dir):
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(model_dir).state_dict()


def test_sigkill_mid_sampling_loses_nothing_and_equals_an_uninterrupted_run(kill_work):
    ref, run = _fresh(kill_work, "s-ref"), _fresh(kill_work, "s-run")
    _driver("sample", ref)
    n_shards = len(list((ref / "out").glob("shard-*.parquet")))
    _driver("sample", run, slow=0.02, kill_when=lambda d: len(list(d.glob("shard-*.parquet"))) >= 2)
    done = sorted((run / "out").glob("shard-*.parquet"))
    assert 2 <= len(done) < n_shards
    stamps = {f.name: f.stat().st_mtime_ns for f in done}
    out = _driver("sample", run)
    assert all((run / "out" / f).stat().st_mtime_ns == t for f, t in stamps.items()), "a finished shard was redone"
    assert "resampling" not in out  # nothing finished was judged damaged
    pd.testing.assert_frame_equal(rollout.load_rollouts(ref / "out"), rollout.load_rollouts(run / "out"))


@pytest.mark.parametrize("mode", ["sft", "grpo"])
def test_sigkill_mid_training_resumes_from_its_checkpoint_to_the_same_model(kill_work, mode):
    ref, run = _fresh(kill_work, f"{mode}-ref"), _fresh(kill_work, f"{mode}-run")
    _driver(mode, ref)

    def model_dir(d):
        return d if mode == "sft" else d / "model"

    def has_checkpoint(d):
        ck = d / "checkpoints"
        return ck.exists() and any((c / "trainer_state.json").exists() for c in ck.glob("checkpoint-*"))

    _driver(mode, run, slow=0.3, kill_when=has_checkpoint)
    assert not (run / "out" / integrity.DONE_FILE).exists()
    out = _driver(mode, run)
    assert "discarding" not in out  # its own checkpoint, resumed
    res = json.loads((run / "out" / integrity.DONE_FILE).read_text())["result"]
    assert res["resumed_from"], "the rerun did not resume from the checkpoint"
    a, b = _state(model_dir(ref / "out")), _state(model_dir(run / "out"))
    assert a.keys() == b.keys()
    diff = {k: (a[k] - b[k]).abs().max().item() for k in a if not torch.equal(a[k], b[k])}
    assert not diff, f"resumed {mode} model differs from the uninterrupted one: {diff}"
    base = _state(kill_work / "base")
    assert any(not torch.equal(base[k], a[k]) for k in a), "training moved no weight: the comparison proves nothing"
    # a finished unit is reused, not retrained; a changed setting would discard it (fingerprint)
    again = _driver(mode, run)
    assert json.loads((run / "out" / integrity.DONE_FILE).read_text())["result"]["resumed_from"] == res["resumed_from"]
    assert "DONE" in again


def test_stale_checkpoints_of_another_run_are_discarded(tmp_path, capsys):
    d = tmp_path / "checkpoints"
    (d / "checkpoint-3").mkdir(parents=True)
    assert integrity.claim_checkpoints(d, "aaa")  # of unknown origin: discarded
    (d / "checkpoint-2").mkdir()
    assert integrity.claim_checkpoints(d, "bbb")  # written under "aaa": discarded
    assert not list(d.glob("checkpoint-*")) and capsys.readouterr().out.count("discarding") == 2
    (d / "checkpoint-1").mkdir()
    assert not integrity.claim_checkpoints(d, "bbb")  # its own: kept
    assert (d / "checkpoint-1").exists()


def test_readme_results_are_generated_from_the_run_behind_dvc_lock():
    assert (ROOT / "results" / "verdicts.json").exists(), "results/ (the publish stage's git-tracked output) missing"
    r = subprocess.run([sys.executable, str(ROOT / "tools" / "readme_results.py"), "--check"], capture_output=True,
                       text=True)
    assert r.returncode == 0, r.stdout + r.stderr


def test_a_saved_seed_run_on_another_base_model_is_listed_never_compared(tmp_path, monkeypatch):
    """The reseed comparison (docs/results.md, README) pairs the committed run only with saved runs whose stages
    02-07 used the committed base model (its hash in dvc.lock); a run on an older base model is named as stale."""
    import shutil

    rr = load_tool("readme_results", "readme_results_t")
    for rel in ("dvc.lock", "params.yaml", "results/headline.json", "results/figures/07_claims_audit/claims.csv"):
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(ROOT / rel, tmp_path / rel)
    current = rr.base_model_hash(tmp_path / "dvc.lock")
    assert current and current.endswith(".dir")
    for seed, base in ((5, current), (6, "0" * 32 + ".dir")):
        d = tmp_path / "docs/data" / f"seed_{seed}"
        d.mkdir(parents=True)
        shutil.copy(ROOT / "results/headline.json", d / "headline.json")
        shutil.copy(ROOT / "results/figures/07_claims_audit/claims.csv", d / "claims.csv")
        (d / "run.json").write_text(json.dumps({"seed": seed, "commit": f"{seed}" * 40, "base_model": base}))
    monkeypatch.setattr(rr, "ROOT", tmp_path)
    assert set(rr.seed_runs()) == {0, 5}
    block = rr.seeds_block()
    assert "seed 5: ours" in block and "seed 6: ours" not in block and "Not compared: seed 6 (commit 6666666)" in block
    line = rr.seeds_line()
    assert "seed 6" not in line.split("Not compared")[0] and "Not compared: seed 6" in line


def test_a_seed_run_on_a_retrained_committed_base_model_is_compared_once_identified(tmp_path, monkeypatch):
    """A base model retrained from scratch has another DVC folder hash (the folder holds its run's times). A run on it
    is compared only once ``seed_runs.py identify`` has established that retraining as the committed model, for the
    model dvc.lock names now; identify refuses a retraining whose seeds, inputs, bands, loss curve or weights on disk
    do not hold up."""
    import hashlib
    import shutil

    rr = load_tool("readme_results", "readme_results_w")
    sr = load_tool("seed_runs", "seed_runs_w")
    files = ("dvc.lock", "params.yaml", "results/headline.json", "results/figures/07_claims_audit/claims.csv",
             "results/metrics/sanity_bands.json", "results/plots/pretrain_loss.csv")
    for root in (tmp_path / "main", tmp_path / "retrained"):
        for rel in files:
            (root / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(ROOT / rel, root / rel)
    run = tmp_path / "retrained"
    (run / "data/02_base_rollouts").mkdir(parents=True)
    shutil.copy(ROOT / "results/metrics/sanity_bands.json", run / "data/02_base_rollouts/sanity_bands.json")
    (run / "figures/01_base_model").mkdir(parents=True)
    shutil.copy(ROOT / "results/plots/pretrain_loss.csv", run / "figures/01_base_model/pretrain_loss.csv")
    weights_file = run / "data/01_base_model/model/model.safetensors"
    weights_file.parent.mkdir(parents=True)
    weights_file.write_bytes(b"the weights")
    (run / "data/01_base_model/run_meta.json").write_text(json.dumps({"git": {"commit": "c" * 40}}))
    lock = run / "dvc.lock"
    folder = "1" * 32 + ".dir"
    lock.write_text(lock.read_text().replace(rr.base_model_hash(lock), folder))  # the model and what stage 02 read
    cache = run / ".dvc/cache/files/md5/11" / folder[2:]
    cache.parent.mkdir(parents=True)
    cache.write_text(json.dumps([{"md5": hashlib.md5(b"the weights").hexdigest(), "relpath": "model/model.safetensors"},
                                 {"md5": "f" * 32, "relpath": "run_meta.json"}]))
    main = tmp_path / "main"
    monkeypatch.setattr(rr, "ROOT", main)
    monkeypatch.setattr(sr, "ROOT", main)
    monkeypatch.setattr(rr, "BASE_MODEL_ID", main / "docs/data/base_model_id.json")
    weights = rr.weights_md5(run / "data/01_base_model")
    d = main / "docs/data/seed_7"
    d.mkdir(parents=True)
    shutil.copy(ROOT / "results/headline.json", d / "headline.json")
    shutil.copy(ROOT / "results/figures/07_claims_audit/claims.csv", d / "claims.csv")
    (d / "run.json").write_text(json.dumps({"seed": 7, "commit": "7" * 40, "base_model": folder,
                                            "base_model_weights": weights}))
    assert set(rr.seed_runs()) == {0}  # not yet established: another base model

    def refused(why, path, good, bad):
        path.write_bytes(bad)
        with pytest.raises(SystemExit, match=why):
            sr.identify(run)
        path.write_bytes(good)

    bands = run / "data/02_base_rollouts/sanity_bands.json"
    refused("sanity bands are not", bands, bands.read_bytes(), bands.read_bytes().replace(b"0.", b"1.", 1))
    curve = run / "figures/01_base_model/pretrain_loss.csv"
    refused("loss curve is not", curve, curve.read_bytes(), curve.read_bytes()[:-40] + b"\n")
    refused("weights are not the ones its dvc.lock names", weights_file, b"the weights", b"other weights")
    refused("02_base_rollouts ran with other code", lock, lock.read_bytes(),
            lock.read_bytes().replace(b"path: lib/passkt/rollout.py\n      hash: md5\n      md5: ",
                                      b"path: lib/passkt/rollout.py\n      hash: md5\n      md5: 0", 1))
    params = run / "params.yaml"
    refused(r"base model: seed$", params, params.read_bytes(),
            params.read_bytes().replace(b"\nseed: 0", b"\nseed: 3"))
    manifest = cache.read_bytes()
    cache.unlink()
    with pytest.raises(SystemExit, match="DVC cache does not hold"):
        sr.identify(run)
    cache.write_bytes(manifest)
    assert not (main / "docs/data/base_model_id.json").exists()

    sr.identify(run)
    known = json.loads((main / "docs/data/base_model_id.json").read_text())
    assert known["weights_md5"] == weights and known["lock_md5"] == rr.base_model_hash(main / "dvc.lock")
    assert known["retrained_folder_md5"] == folder and not known["weights_checked_against_committed_folder"]
    assert set(rr.seed_runs()) == {0, 7} and "seed 7: ours" in rr.seeds_block()
    (d / "run.json").write_text(json.dumps({"seed": 7, "commit": "7" * 40, "base_model": folder}))  # older format
    assert set(rr.seed_runs()) == {0, 7}
    known["lock_md5"] = "2" * 32 + ".dir"  # established for a model dvc.lock no longer names
    (main / "docs/data/base_model_id.json").write_text(json.dumps(known))
    assert set(rr.seed_runs()) == {0}


def test_fingerprints_hash_content_never_a_preview():
    """A datasets Column (or a numpy array) is hashed element by element: its str() is a 5-row preview."""
    import datasets
    import numpy as np

    a = datasets.Dataset.from_dict({"x": [[i, i + 1] for i in range(20)]})
    b = datasets.Dataset.from_dict({"x": [[i, i + 1] for i in range(19)] + [[0, 0]]})  # only the last row differs
    assert integrity.fingerprint(a["x"]) != integrity.fingerprint(b["x"])
    assert integrity.fingerprint(a["x"][:10]) != integrity.fingerprint(a["x"])
    assert integrity.fingerprint(np.arange(2000)) != integrity.fingerprint(np.r_[np.arange(1999), 0])
    with pytest.raises(TypeError, match="cannot fingerprint"):
        integrity.fingerprint({"model": object()})


def test_sft_run_is_redone_when_a_late_demo_changes(tmp_path, small_tok, small_sets):
    """The SFT unit's fingerprint sees every demonstration, not the first few."""
    from transformers import AutoModelForCausalLM

    from passkt import sft

    torch.manual_seed(0)
    AutoModelForCausalLM.from_config(models.tiny_config(small_tok, 16, 1, 2, 1, 32, 2048)).save_pretrained(tmp_path / "b")
    small_tok.save_pretrained(tmp_path / "b")
    train = small_sets[0]["train"][:8]
    demos = sft.expert_demos(train, small_tok, search_k=1)
    s = sft.SFTSettings(epochs=1, lr=1e-3, batch_size=8, logging_steps=1, warmup_ratio=0.0)
    first = sft.train_sft(tmp_path / "b", sft.sft_dataset(demos, small_tok), tmp_path / "o", s)
    assert sft.train_sft(tmp_path / "b", sft.sft_dataset(demos, small_tok), tmp_path / "o", s).get("reused")
    changed = demos[:-1] + [demos[0]]  # the eighth demonstration replaced
    again = sft.train_sft(tmp_path / "b", sft.sft_dataset(changed, small_tok), tmp_path / "o", s)
    assert not again.get("reused") and again["fingerprint"] != first["fingerprint"]


def test_a_base_model_trial_never_enters_the_table_of_committed_settings(tmp_path, monkeypatch):
    """tools/base_seed_bands.py --epochs E: a sizing trial is saved under base_trials/, and neither the seed files
    the table reads nor the table itself is touched."""
    bsb = load_tool("base_seed_bands", "base_seed_bands_t")
    bands = {"bands": [{"band": "x", "ok": True, "value": 0.5, "low": 0, "high": 1}]}
    monkeypatch.setattr(bsb, "OUT", tmp_path)
    monkeypatch.setattr(bsb, "run_seed", lambda s, **kw: {"base_seed": s, "bands": bands, "wall_s": 60.0, **kw})
    wrote = []
    monkeypatch.setattr(bsb, "write_block", lambda: wrote.append(1))
    assert bsb.main(["1", "--epochs", "18"]) == 0
    assert [p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*.json")] == [
        "base_trials/base_seed_1_epochs18.json"]
    assert not list(tmp_path.glob("base_seed_*.json")) and not wrote
    assert bsb.main(["1"]) == 0  # the committed settings: the seed file and the table
    assert (tmp_path / "base_seed_1.json").exists() and wrote


def test_trial_tables_follow_the_order_the_trials_were_saved(tmp_path, monkeypatch):
    """tools/base_seed_bands.trials: the trial tables read in the order the trials were saved (``saved_at``),
    not in name order; a file without the field comes last."""
    bsb = load_tool("base_seed_bands", "base_seed_bands_o")
    (tmp_path / "base_trials").mkdir()
    monkeypatch.setattr(bsb, "OUT", tmp_path)
    saved = {"base_seed_1_zeta.json": "2026-11-25T10:00:00Z", "base_seed_1_alpha.json": "2026-11-26T09:00:00Z",
             "base_seed_0_beta.json": None}
    for name, at in saved.items():
        (tmp_path / "base_trials" / name).write_text(json.dumps({"saved_at": at} if at else {}))
    assert [f.name for f, _ in bsb.trials()] == list(saved)


def test_the_committed_seed_files_describe_the_run_behind_dvc_lock():
    """Each docs/data/base_seed_<s>.json records the stage 00-02 inputs it ran with; they are those dvc.lock
    records (base_seed aside), or the README flags the seed as stale (this fails when they drift apart)."""
    bsb = load_tool("base_seed_bands", "base_seed_bands_l")
    locked = bsb.locked_inputs()
    assert locked["deps"] and "00_data_prep" in locked["params"] and "base_seed" not in locked["params"]
    for f in sorted((ROOT / "docs/data").glob("base_seed_*.json")):
        assert bsb.stale_reason(json.loads(f.read_text())) is None, f.name


def test_the_base_seed_tables_in_docs_are_generated_from_the_saved_runs():
    render = load_tool("readme_results", "readme_results_c").render
    bsb = load_tool("base_seed_bands", "base_seed_bands_c")
    text = (ROOT / "docs" / "base_model.md").read_text()
    assert render(text, bsb.BLOCKS) == text, "docs/base_model.md is stale: run python tools/base_seed_bands.py --report"
    assert {name for name, _ in bsb.BLOCKS} == {"base_seeds", "base_trials", "math_diagnosis"}


def test_a_design_trial_sets_only_keys_params_yaml_has_and_is_saved_under_its_name(tmp_path, monkeypatch):
    """--set KEY=VALUE --name NAME: a typo in a key is an error (never the committed settings under a trial's name),
    a trial needs a name, and it is saved as base_seed_<s>_<name>.json with its overrides."""
    bsb = load_tool("base_seed_bands", "base_seed_bands_s")
    params = {"01_base_model": {"epochs": 12.0}, "00_data_prep": {"n_pretrain": 9000, "n_pretrain_math": None}}
    out = bsb.apply_sets(params, bsb.parse_sets(["00_data_prep.n_pretrain_math=9000", "01_base_model.epochs=18"]))
    assert out["00_data_prep"]["n_pretrain_math"] == 9000 and out["01_base_model"]["epochs"] == 18
    for bad in (["00_data_prep.n_pretrain_maths=1"], ["0_data_prep.n_pretrain=1"], ["nokey"]):
        with pytest.raises(SystemExit):
            bsb.apply_sets(params, bsb.parse_sets(bad))
    with pytest.raises(SystemExit, match="--name"):
        bsb.main(["1", "--set", "01_base_model.epochs=18"])
    with pytest.raises(SystemExit, match="committed settings under a trial's name"):
        bsb.main(["1", "--name", "oops"])
    bands = {"bands": [{"band": "x", "ok": True, "value": 0.5, "low": 0, "high": 1}]}
    monkeypatch.setattr(bsb, "OUT", tmp_path)
    monkeypatch.setattr(bsb, "run_seed", lambda s, **kw: {"base_seed": s, "bands": bands, "wall_s": 60.0,
                                                          "overrides": kw["sets"]})
    monkeypatch.setattr(bsb, "write_block", lambda: pytest.fail("a trial touched the committed table"))
    assert bsb.main(["2", "--set", "00_data_prep.n_pretrain_math=9000", "--name", "math9000"]) == 0
    saved = json.loads((tmp_path / "base_trials/base_seed_2_math9000.json").read_text())
    assert saved["name"] == "math9000" and saved["overrides"] == {"00_data_prep.n_pretrain_math": 9000}
    assert bsb.main(["2", "--epochs", "18", "--set", "00_data_prep.n_pretrain_math=9000", "--name", "both"]) == 0
    both = json.loads((tmp_path / "base_trials/base_seed_2_both.json").read_text())["overrides"]
    assert both == {"01_base_model.epochs": 18.0, "00_data_prep.n_pretrain_math": 9000}  # the label names both


def test_the_math_diagnosis_reads_operands_and_the_first_steps_result(tmp_path):
    """tools/base_seed_bands.math_diagnosis: per template, Pass@1, episodes without an `a op b = c` step, operands
    copied from the question, and the first step's result right."""
    import pandas as pd

    bsb = load_tool("base_seed_bands", "base_seed_bands_d")
    (tmp_path / "00_data_prep/problems").mkdir(parents=True)
    (tmp_path / "02_base_rollouts/rollouts").mkdir(parents=True)
    meta = lambda t, ops, operands: json.dumps({"template": t, "math": {"ops": ops, "operands": operands}})  # noqa: E731
    pd.DataFrame({"id": ["m1", "m2"], "answer": ["15", "6"],
                  "meta": [meta("math_add", ["+"], [4, 11]), meta("math_mul_add", ["*", "+"], [2, 2, 2])]}).to_parquet(
        tmp_path / "00_data_prep/problems/eval_math.parquet")
    pool = [meta("math_add_sub", ["+", "-"], [4, 11, 3])] * 2 + [meta("math_add", ["+"], [5, 5]), "{}"]  # 4 + 11: twice
    pd.DataFrame({"category": ["math"] * 3 + ["bridge"], "meta": pool}).to_parquet(
        tmp_path / "00_data_prep/problems/pretrain.parquet")
    eps = [("m1", "15", ["p", "<think>4 + 11 = 15.</think>", "<answer>15</answer>"]),  # right
           ("m1", "25", ["p", "<think>4 + 11 = 25.</think>", "<answer>25</answer>"]),  # copied, result wrong
           ("m1", "9", ["p", "<think>4 + 5 = 9.</think>", "<answer>9</answer>"]),  # operand wrong
           ("m1", "44", ["p", "<think>4 * 11 = 44.</think>", "<answer>44</answer>"]),  # operator wrong
           ("m1", "15", ["p", "<answer>15</answer>"]),  # no step, right
           ("m2", "6", ["p", "<think>2 * 2 = 4. 4 + 2 = 6.</think>", "<answer>6</answer>"])]
    pd.DataFrame({"problem_id": [e[0] for e in eps], "category": "math", "answer": [e[1] for e in eps],
                  "seg_text": [e[2] for e in eps]}).to_parquet(tmp_path / "02_base_rollouts/rollouts/shard-00000.parquet")
    d = bsb.math_diagnosis(tmp_path)
    t = d["templates"]
    assert t["math_add"] == {"episodes": 5, "pass_at_1": 0.4, "no_step": 0.2, "step_copied": 0.5,
                             "first_result_right": 0.5}
    assert t["all"]["episodes"] == 6 and t["all"]["pass_at_1"] == 0.5 and t["math_mul_add"]["first_result_right"] == 1.0
    by = {b["exposures"]: (b["problems"], b["pass_at_1"]) for b in d["by_exposure"]}
    assert by["0"] == (1, 1.0) and by["1-5"] == (1, 0.4) and by["11+"] == (0, None)  # m2's 2 * 2: never; m1's: twice


def test_adopting_a_trial_needs_the_committed_params_and_names_every_changed_dependency(tmp_path, monkeypatch):
    """tools/base_seed_bands.py --adopt NAME: a trial's runs become the committed settings' seed files only when
    params.yaml holds the trial's setting for what stages 00-02 read, and every file those stages depend on that
    changed since the trial's commit (uncommitted changes included) is accepted by name. The adopted file records
    the stage inputs it describes, so any later change makes it stale; the replaced run stays for older trials."""
    import yaml

    bsb = load_tool("base_seed_bands", "base_seed_bands_a")

    def git(*a):
        return subprocess.run(["git", *a], cwd=tmp_path, check=True, capture_output=True, text=True).stdout.strip()

    def write(params: dict, code: str) -> None:
        (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
        (tmp_path / "lib.py").write_text(code)

    def commit(params: dict, code: str) -> str:
        write(params, code)
        git("add", ".")
        git("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "x")
        return git("rev-parse", "HEAD")

    stage = {"deps": ["lib.py", "data/x"], "params": ["base_seed", "00_data_prep", "01_base_model"]}
    (tmp_path / "dvc.yaml").write_text(yaml.safe_dump({"stages": {s: stage for s in bsb.STAGES}}))
    git("init", "-q")
    before = {"base_seed": 0, "00_data_prep": {"n_math": None}, "01_base_model": {"epochs": 12.0, "w": {0: 0.5}}}
    after = {**before, "00_data_prep": {"n_math": 9}}
    trial_commit = commit(before, "a = 1\n")
    out = tmp_path / "docs"
    (out / "base_trials").mkdir(parents=True)
    trial = {"base_seed": 1, "epochs": 12.0, "commit": trial_commit, "overrides": {"00_data_prep.n_math": 9},
             "threads": 1, "bands": {"bands": []}}
    (out / "base_trials" / "base_seed_1_m9.json").write_text(json.dumps(trial))
    monkeypatch.setattr(bsb, "ROOT", tmp_path)
    monkeypatch.setattr(bsb, "OUT", out)
    with pytest.raises(SystemExit, match="differs from params.yaml"):
        bsb.adopt("m9", [1], [])  # params.yaml has not taken the trial's setting
    commit(after, "a = 1\n")
    with pytest.raises(SystemExit, match="no trial run"):
        bsb.adopt("m9", [2], [])
    with pytest.raises(SystemExit, match="base seed 0 is the committed run"):
        bsb.adopt("m9", [0, 1], [])
    (out / "base_seed_1.json").write_text(json.dumps({"base_seed": 1, "bands": {"bands": ["old"]}}))
    assert bsb.adopt("m9", [1], []) == [out / "base_seed_1.json"]
    saved = json.loads((out / "base_seed_1.json").read_text())
    assert saved["changed_since_trial"] == [] and bsb.stale_reason(saved, bsb.stage_inputs()) is None
    sup = json.loads((out / "superseded" / "base_seed_1_m9.json").read_text())  # the replaced run stays
    assert sup["bands"] == {"bands": ["old"]} and sup["trials_before"] == ["base_seed_1_m9.json"]
    assert bsb.baseline(trial, "base_seed_1_m9.json") == ("committed before m9", {"bands": ["old"]})
    assert bsb.baseline({**trial, "name": "later"}, "base_seed_1_later.json") == ("committed", saved["bands"])
    assert bsb.pin_baselines() == [out / "base_trials" / "base_seed_1_m9.json"]  # pinned: later adoptions don't move it
    pinned = json.loads((out / "base_trials" / "base_seed_1_m9.json").read_text())
    assert bsb.baseline(pinned, "base_seed_1_m9.json") == ("committed before m9", {"bands": ["old"]})
    (out / "superseded" / "base_seed_1_m9.json").unlink()
    assert bsb.baseline(pinned, "base_seed_1_m9.json") == ("committed before m9", {"bands": ["old"]})
    assert bsb.pin_baselines() == []
    trial = pinned
    write(after, "a = 2\n")  # uncommitted: still seen
    with pytest.raises(SystemExit, match=r"changed since the trial's commit .*\['lib.py'\]"):
        bsb.adopt("m9", [1], [])
    assert bsb.stale_reason(saved, bsb.stage_inputs()) == "changed since its run: lib.py"
    bsb.adopt("m9", [1], ["lib.py"])
    saved = json.loads((out / "base_seed_1.json").read_text())
    assert saved["changed_since_trial"] == ["lib.py"] and saved["adopted_from"] == "docs/base_trials/base_seed_1_m9.json"
    assert not (out / "superseded" / "base_seed_1_m9.json").exists()  # re-adopting the same trial supersedes nothing
    assert bsb.stale_reason(saved, bsb.stage_inputs()) is None  # the accepted change is part of what it describes; a later one is not
    write({**before, "00_data_prep": {"n_math": 10}}, "a = 3\n")
    assert bsb.stale_reason(saved, bsb.stage_inputs()) == "changed since its run: 00_data_prep, lib.py"
    assert bsb.stale_reason({"bands": {}}, bsb.stage_inputs()) == "its inputs were not recorded"
    write(after, "a = 2\n")
    (out / "base_trials" / "base_seed_1_m9.json").write_text(json.dumps({**trial, "dirty": True}))
    with pytest.raises(SystemExit, match="uncommitted changes"):
        bsb.adopt("m9", [1], ["lib.py"])
    # a seed file saved before runs recorded their inputs gets those of its commit
    (out / "base_seed_2.json").write_text(json.dumps({"base_seed": 2, "commit": trial_commit, "bands": {"bands": []}}))
    assert bsb.record_inputs([2]) == [out / "base_seed_2.json"]
    rec = json.loads((out / "base_seed_2.json").read_text())
    assert rec["stage_inputs"]["params"]["00_data_prep"] == {"n_math": None}
    assert bsb.stale_reason(rec, bsb.stage_inputs()) == "changed since its run: 00_data_prep, lib.py"


def test_a_timed_fresh_clone_run_is_saved_with_its_stages_and_the_whole_command(tmp_path, monkeypatch):
    """tools/seed_runs.py save-fresh: the per-stage wall times of the run and `/usr/bin/time`'s elapsed time of the
    whole `make reproduce`; the generated table in docs/wall_times.md lists both."""
    sr, rr = load_tool("seed_runs", "seed_runs_f"), load_tool("readme_results", "readme_results_f")
    assert sr._elapsed_s("\tElapsed (wall clock) time (h:mm:ss or m:ss): 1:02:03\n") == 3723.0
    assert sr._elapsed_s("\tElapsed (wall clock) time (h:mm:ss or m:ss): 4:05.50\n") == 245.5
    run = tmp_path / "run"
    (run / "results/run_meta").mkdir(parents=True)
    (run / "params.yaml").write_text("profile: tiny\n")
    for stage, s in (("01_base_model", 1800.0), ("04_grpo.r1", 600.0), ("07_claims_audit", 5.0)):
        meta = {"wall_s": s, "git": {"commit": "f" * 40, "dirty": False}}
        (run / f"results/run_meta/{stage}.json").write_text(json.dumps(meta))
    log = tmp_path / "time.log"
    log.write_text("Running stage...\n")
    monkeypatch.setattr(sr, "OUT", tmp_path / "docs/data")
    with pytest.raises(SystemExit, match="Elapsed"):
        sr.save_fresh(run, log)
    log.write_text("\tElapsed (wall clock) time (h:mm:ss or m:ss): 41:00\n\tExit status: 2\n")
    with pytest.raises(SystemExit, match="status 0"):
        sr.save_fresh(run, log)  # a failed run is not a timing
    log.write_text("\tElapsed (wall clock) time (h:mm:ss or m:ss): 41:00\n\tExit status: 0\n")
    saved = json.loads((sr.save_fresh(run, log, ["a test run, 75 s"]) / "run.json").read_text())
    assert saved["make_reproduce_s"] == 2460.0 and saved["wall_s"]["04_grpo.r1"] == 600.0
    monkeypatch.setattr(rr, "ROOT", tmp_path)
    block = rr.fresh_block()
    assert "| 01_base_model | 30.0 min |" in block and "| **stages** | **40.1 min** |" in block
    assert block.index("01_base_model") < block.index("04_grpo (replicate 1)") < block.index("07_claims_audit")
    assert "**41.0 min**" in block and "Besides it on the machine: a test run, 75 s." in block
    # units side by side (tools/repro_lanes.py): each unit's span and threads, the sum and the elapsed span apart
    spans = {"01_base_model": ("10:00", "10:30", 2), "04_grpo.r1": ("10:30", "10:40", 1),
             "07_claims_audit": ("10:35", "10:45", 1)}
    for stage, (a, b, threads) in spans.items():
        meta = json.loads((run / f"results/run_meta/{stage}.json").read_text())
        meta.update(start=f"2026-11-27T{a}:00+00:00", end=f"2026-11-27T{b}:00+00:00",
                    device={"cpu_count": 2, "torch_threads": threads, "cuda": False})
        (run / f"results/run_meta/{stage}.json").write_text(json.dumps(meta))
    saved = json.loads((sr.save_fresh(run, log, cpu="Some CPU @ 2.0GHz") / "run.json").read_text())
    assert saved["threads"] == {"01_base_model": 2, "04_grpo.r1": 1, "07_claims_audit": 1}
    assert saved["cpu"] == "Some CPU @ 2.0GHz"
    monkeypatch.setattr(sr, "cpu_model", lambda: "This machine's CPU")
    assert json.loads((sr.save_fresh(run, log) / "run.json").read_text())["cpu"] == "This machine's CPU"
    saved = json.loads((sr.save_fresh(run, log, cpu="Some CPU @ 2.0GHz") / "run.json").read_text())
    block = rr.fresh_block()
    assert "Machine: 2 CPU cores (Some CPU @ 2.0GHz), 1 torch threads" in block, block
    assert "| 04_grpo (replicate 1) | 10.0 min | 1 | 30.0 min – 40.0 min |" in block, block
    assert "| **stages, one after another (sum)** | **40.1 min** |" in block
    assert "| **stages, first start to last end** | **45.0 min** |" in block
    (tmp_path / "docs/data/fresh_clone/previous.json").write_text(json.dumps(  # the run it replaced, for comparison
        {"commit": "e" * 40, "wall_s": {"01_base_model": 1700.0, "04_grpo.r1": 900.0, "07_claims_audit": 4.0},
         "make_reproduce_s": 2700.0}))
    block = rr.fresh_block()
    assert "previous run (`eeeeeee`) |" in block, block
    assert "| 04_grpo (replicate 1) | 10.0 min | 1 | 30.0 min – 40.0 min | 15.0 min |" in block, block
    assert "| **stages 02-04, first start to last end** | **10.0 min** | | | **15.0 min** (sum) |" in block, block
    assert "| **`make reproduce`** (virtual environment, stages, README) | **41.0 min** | | | **45.0 min** |" in block
    assert "| **stages, first start to last end** | **45.0 min** | | | **43.4 min** (sum) |" in block  # no spans
    prev = json.loads((tmp_path / "docs/data/fresh_clone/previous.json").read_text())
    prev["span"] = {k: ["2026-11-27T09:00:00+00:00", "2026-11-27T09:50:00+00:00"] for k in prev["wall_s"]}
    (tmp_path / "docs/data/fresh_clone/previous.json").write_text(json.dumps(prev))
    block = rr.fresh_block()  # the previous run's own span, not its sum, once it recorded one
    assert "| **stages, first start to last end** | **45.0 min** | | | **50.0 min** |" in block, block


def test_a_fresh_clone_is_compared_with_the_committed_results_file_by_file(tmp_path, monkeypatch):
    """save-fresh records which of the fresh clone's result files are byte for byte the committed ones (times and
    commits left out), keeps the run it replaces as previous.json, and the generated block says what differed."""
    sr, rr = load_tool("seed_runs", "seed_runs_c"), load_tool("readme_results", "readme_results_c")
    committed, run = tmp_path / "committed", tmp_path / "run"
    for root, verdict in ((committed, "supported"), (run, "supported")):
        (root / "results/run_meta").mkdir(parents=True)
        (root / "results/notebooks").mkdir()
        (root / "results/verdicts.json").write_text(json.dumps({"claims": {"1": {"verdict": verdict}}}))
        (root / "results/report.md").write_text(f"report of {root.name}")  # differs
        (root / "results/notebooks/07.ipynb").write_text(f"executed at {root.name}")  # times: left out
        (root / "results/run_meta/07_claims_audit.json").write_text(json.dumps(
            {"wall_s": 5.0, "git": {"commit": "a" * 40, "dirty": False}}))
    (committed / "results/headline.json").write_text("{}")  # only committed
    (run / "params.yaml").write_text("profile: tiny\n")
    monkeypatch.setattr(sr, "ROOT", committed)
    c = sr.compare_results(run)
    assert (c["same"], c["differ"], c["only_in_run"], c["only_committed"]) == (1, ["report.md"], [], ["headline.json"])
    log = tmp_path / "time.log"
    log.write_text("\tElapsed (wall clock) time (h:mm:ss or m:ss): 1:00\n\tExit status: 0\n")
    monkeypatch.setattr(sr, "OUT", tmp_path / "docs/data")
    out = tmp_path / "docs/data/fresh_clone"
    out.mkdir(parents=True)
    (out / "run.json").write_text(json.dumps({"commit": "e" * 40, "wall_s": {}}))
    saved = json.loads((sr.save_fresh(run, log) / "run.json").read_text())
    assert json.loads((out / "previous.json").read_text())["commit"] == "e" * 40  # the run it replaced
    assert saved["results_vs_committed"]["differ"] == ["report.md"]
    monkeypatch.setattr(rr, "ROOT", tmp_path)
    block = rr.fresh_block()
    assert "1 of 2 files byte for byte the same; differ: `report.md`; only committed: `headline.json`" in block, block
    assert "What it computed" not in block  # no outcome files in this layout: nothing more to say
    sr.save_fresh(run, log)  # the same run saved again replaces nothing
    assert json.loads((out / "previous.json").read_text())["commit"] == "e" * 40
    # a run that computed other numbers (another CPU kind, say): what it computed against the committed run
    d = "bridge.rl_vs_base.dpass_kmax"
    for root, (verdict, ok, diff, loss) in ((committed, ("supported", True, 0.12, 0.228)),
                                            (run, ("inconclusive", False, 0.08, 0.255))):
        (root / "results/metrics").mkdir(exist_ok=True)
        (root / "results/plots").mkdir(exist_ok=True)
        (root / "results/verdicts.json").write_text(json.dumps({"claims": {"1": {"verdict": verdict},
                                                                           "2": {"verdict": "contradicted"}}}))
        (root / "results/metrics/sanity_bands.json").write_text(json.dumps({"bands": [{"ok": True}, {"ok": ok}]}))
        (root / "results/headline.json").write_text(json.dumps({d: diff, d + ".ci_low": diff - 0.05,
                                                                d + ".ci_high": diff + 0.05}))
        (root / "results/plots/pretrain_loss.csv").write_text(f"step,epoch,loss\n20,0.1,6.4\n40,0.2,{loss}\n")
    saved = json.loads((sr.save_fresh(run, log) / "run.json").read_text())
    assert saved["outcome"]["verdicts"] == {"1": "inconclusive", "2": "contradicted"}
    assert saved["committed_outcome"]["bands_met"] == [2, 2] and saved["outcome"]["last_pretrain_loss"] == 0.255
    block = rr.fresh_block()
    assert ("last logged pretraining loss 0.255 (committed 0.228); sanity bands met 1 of 2 (committed 2); bridge "
            "RL − base Pass@kmax +0.080 [+0.030, +0.130] (committed +0.120 [+0.070, +0.170]); verdicts the same for "
            "1 of 2 claims, moved: claim 1: supported → inconclusive.") in block, block
    assert "\n\nWhat it computed" in block  # its own paragraph
    # the same verdicts, and many files differing: counted, not listed
    (run / "results/verdicts.json").write_bytes((committed / "results/verdicts.json").read_bytes())
    for i in range(9):
        for root in (committed, run):
            (root / f"results/t{i}.txt").write_text(f"{root.name} {i}")
    sr.save_fresh(run, log)
    block = rr.fresh_block()
    # report, bands, headline, loss curve and the nine new files
    assert "13 differ (listed in `docs/data/fresh_clone/run.json`)" in block and "`t0.txt`" not in block, block
    assert "verdicts the same for every claim." in block, block
    # only the GRPO step times differ: listed with their column, no outcome line
    saved = json.loads((out / "run.json").read_text())
    saved["results_vs_committed"]["differ"] = [f"figures/04_grpo/r{i}/training_curves.csv" for i in range(9)]
    saved["results_vs_committed"]["differ_columns"] = {k: ["step_seconds"] for k in saved["results_vs_committed"]["differ"]}
    (out / "run.json").write_text(json.dumps(saved))
    block = rr.fresh_block()
    assert "`figures/04_grpo/r8/training_curves.csv` (column `step_seconds` only)" in block, block
    assert "What it computed" not in block


def test_base_seed_bands_keeps_the_pretraining_loss_curve(tmp_path):
    bsb = load_tool("base_seed_bands", "bsb_curve")
    assert bsb.loss_curve(tmp_path) is None  # a run without stage 01's figure data
    f = tmp_path / "figures" / "01_base_model" / "pretrain_loss.csv"
    f.parent.mkdir(parents=True)
    f.write_text("step,epoch,loss,learning_rate\n20,0.06,6.4,0.0003\n40,0.12,5.5,0.0006\n")
    assert bsb.loss_curve(tmp_path) == {"step": [20, 40], "loss": [6.4, 5.5], "learning_rate": [0.0003, 0.0006]}
