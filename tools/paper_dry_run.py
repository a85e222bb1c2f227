"""Dry run of the paper profile: every stage, through the runner's own entry points, on smoke-sized data.

    python tools/paper_dry_run.py [--device cpu|cuda] [--hidden 64 --layers 2] [--keep DIR]

What it does, in a temporary copy of this repository (nothing here is touched):

1. builds a small *random* Qwen2-architecture model with a tokenizer trained on the fixture texts and saves it like a
   hub snapshot (the stand-in for Qwen2.5-7B-Instruct, which this machine cannot download);
2. writes ``params.yaml`` = ``configs/paper.yaml`` with only the overrides in :func:`dry_params` (each says why):
   the real-format fixtures (HotpotQA distractor, MATH-500) at smoke sizes, that model's path, and what the host
   lacks (no vLLM anywhere here: the transformers engine; on a CPU: no bf16, two CPU processes for GRPO);
3. runs ``python -m passkt.run <stage>`` for 00-07 (03 and 04 once per replicate) and ``python -m passkt.publish``,
   as ``dvc repro`` would (stage 04 launches ``passkt.train`` with the profile's launcher first);
4. prints one line per stage (exit status, seconds, what it produced) and a JSON summary; exit status 1 if any
   stage failed.
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
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = ROOT / "tests" / "fixtures"
IGNORE = shutil.ignore_patterns(".venv", ".git", ".dvc", "data", "figures", "results", "__pycache__", "*.egg-info",
                                ".whl", ".pytest_cache", ".hypothesis")


def build_model(dst: Path, hidden: int, layers: int) -> Path:
    """A random Qwen2 (hidden, layers; 64-dim heads, 2 KV heads) + a BPE tokenizer with the chat template."""
    import torch
    from transformers import AutoModelForCausalLM

    from passkt import models, protocol, sources

    hot = sources.load_hotpotqa(FIXTURES / "hotpot_dev_distractor_sample.json")
    maths = sources.load_math500(FIXTURES / "math500_sample.jsonl")
    texts = [p["question"] + " " + " ".join(p.get("texts", [])) for p in hot + maths]
    tok = models.build_tokenizer(texts + [protocol.SYSTEM_PROMPT, protocol.NOTICE], 600)
    torch.manual_seed(0)
    heads = max(2, hidden // 64)
    cfg = models.tiny_config(tok, hidden, layers, heads, 2 if heads % 2 == 0 else 1, 3 * hidden, 4096)
    model = AutoModelForCausalLM.from_config(cfg)
    model.save_pretrained(dst)
    tok.save_pretrained(dst)
    print(f"random Qwen2: {models.n_params(model):,} parameters, vocabulary {len(tok)} -> {dst}", flush=True)
    return dst


def dry_params(model_dir: Path, device: str) -> dict:
    """configs/paper.yaml with the dry run's overrides (everything not listed is the paper profile's own)."""
    p = yaml.safe_load((ROOT / "configs" / "paper.yaml").read_text())
    cpu = device == "cpu"
    p["00_data_prep"].update(hotpot_path=str(FIXTURES / "hotpot_dev_distractor_sample.json"),  # real format
                             math500_path=str(FIXTURES / "math500_sample.jsonl"), n_train=2, n_eval=2,
                             drop_paragraph_overlap=False)  # 6 HotpotQA records: nothing to replace a dropped one
    p["01_base_model"]["model_id"] = str(model_dir)
    p["sampling"].update(n=4, backend="hf", device=device, batch_size=64, problems_per_shard=2,  # no vLLM here
                         max_turn_tokens=48, math_max_turn_tokens=96, max_total_tokens=1024, max_model_len=0)
    p["03_sft"]["sft"].update(epochs=1.0, batch_size=2, max_len=1024, device=device, bf16=not cpu,
                              save_steps=1000)
    p["03_sft"]["train_check_n"] = 1
    p["04_grpo"]["grpo"].update(epochs=1, prompts_per_step=2, group_size=2, grad_accum=2, use_vllm=False,
                                bf16=not cpu, save_steps=1000)
    p["04_grpo"]["train_check_n"] = 1
    # two gloo processes on a CPU (accelerate's --cpu launcher would start one without MPI); one per GPU on a
    # single-GPU host without DeepSpeed (the paper's configs/accelerate_zero2.yaml needs deepspeed and 8 GPUs)
    p["04_grpo"]["launcher"] = ("env ACCELERATE_USE_CPU=true accelerate launch --multi_gpu --num_processes 2 "
                                "--num_machines 1 --main_process_port 29517 --mixed_precision no --dynamo_backend no"
                                if cpu else "accelerate launch --num_processes 1 --num_machines 1 "
                                "--mixed_precision no --dynamo_backend no")
    p["05_pass_at_k"]["n_boot"] = 200
    p["06_mechanism"].update(n_boot=200, n_deep=16, deep_chunk=8, swap_plans=2)
    p["07_claims_audit"]["n_boot"] = 200
    return p


def stages(params: dict) -> list[list[str]]:
    """The root pipeline's stages in order (``passkt.paths.STAGES``; not notebook 08, which belongs to the support
    sweep's own pipeline), the replicated ones once per replicate."""
    from passkt import paths

    runs = []
    for stage in paths.STAGES:
        if stage in paths.REPLICATED:
            runs += [[stage, "--replicate", str(r)] for r in params["replicates"]]
        else:
            runs.append([stage])
    return runs


def produced(repo: Path, stage: str) -> str:
    d = repo / "data" / stage
    shards = len(list(d.rglob("shard-*.parquet")))
    figs = len(list((repo / "figures" / stage).rglob("*.png")))
    models = len([p for p in d.rglob("config.json") if p.parent.name != "checkpoints"])
    return f"{shards} rollout shards, {models} saved models, {figs} figures"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    ap.add_argument("--hidden", type=int, default=64)
    ap.add_argument("--layers", type=int, default=2)
    ap.add_argument("--keep", type=Path, default=None, help="run in this folder and keep it (default: a temp dir)")
    ap.add_argument("--json", type=Path, default=None, help="also write the summary here")
    args = ap.parse_args(argv)
    work = args.keep or Path(tempfile.mkdtemp(prefix="paper_dry_"))
    repo = work / "repo"
    shutil.copytree(ROOT, repo, ignore=IGNORE)
    model_dir = build_model(work / "random_qwen2", args.hidden, args.layers)
    params = dry_params(model_dir, args.device)
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    pythonpath = os.pathsep.join(p for p in (str(repo / "lib"), os.environ.get("PYTHONPATH", "")) if p)
    env = {**os.environ, "PYTHONPATH": pythonpath, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false",
           "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}  # the launcher's CLI
    summary, ok = [], True
    for cmd in stages(params) + [["publish"]]:
        full = [sys.executable, "-m", "passkt.publish"] if cmd == ["publish"] else \
            [sys.executable, "-m", "passkt.run", *cmd, "--quiet"]
        t0 = time.time()
        r = subprocess.run(full, cwd=repo, env=env, capture_output=True, text=True)
        row = {"stage": " ".join(cmd), "rc": r.returncode, "seconds": round(time.time() - t0, 1)}
        row["produced"] = produced(repo, cmd[0]) if cmd[0] != "publish" else \
            f"{len(list((repo / 'results').rglob('*')))} files in results/"
        summary.append(row)
        print(f"{row['stage']:<26} rc={row['rc']}  {row['seconds']:>7.1f} s  {row['produced']}", flush=True)
        if r.returncode:
            ok = False
            print((r.stdout[-2000:] + r.stderr[-4000:]).strip(), flush=True)
            break
    out = {"device": args.device, "model": {"hidden": args.hidden, "layers": args.layers}, "stages": summary,
           "ok": ok, "work": str(work)}
    print(json.dumps(out))
    if args.json:
        args.json.write_text(json.dumps(out, indent=2) + "\n")
    if args.keep is None and ok:
        shutil.rmtree(work, ignore_errors=True)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
