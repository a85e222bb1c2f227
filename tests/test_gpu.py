"""GPU paths (`make test-gpu`, docs/testing.md): what `make test` cannot reach on a CPU-only machine.

The transformers backend on CUDA (bfloat16 and float32) against a float32 forward pass on the CPU, turn after turn,
on a tiny random model built here; a sampling run through it; the vLLM backend when vllm is installed. Every test
skips, naming why, where there is no CUDA device or no vllm package.
"""

import copy
import math
import os
import random

import pytest
import torch

from passkt import models, rollout
from passkt.backends import HFBackend, HFGenerateBackend, ScriptedBackend

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device (torch.cuda.is_available() is False)"),
]
# largest logit error allowed vs float32 on the CPU; bfloat16 on the CPU is ~5e-3 off on this model (logit std ~0.23)
TOL = {torch.float32: 1e-3, torch.bfloat16: 3e-2}
MARGIN = 0.1  # a greedy token is compared only where the CPU's top two logits are this far apart


@pytest.fixture(scope="module")
def cpu_model(small_tok):
    from transformers import AutoModelForCausalLM

    torch.manual_seed(0)
    cfg = models.tiny_config(small_tok, 128, 2, 2, 1, 256, 1024)  # head_dim 64 (vLLM kernels), grouped-query heads
    return AutoModelForCausalLM.from_config(cfg).eval()


def _on(model, dtype, device="cuda"):
    return copy.deepcopy(model).to(device, dtype)


def _contexts(tok, n=6, seed=0):
    rng = random.Random(seed)
    return [[rng.randrange(len(tok) - 1) for _ in range(rng.randint(5, 40))] for _ in range(n)]


def _reference(model, rows):
    """Next-token logits of the float32 CPU model on each whole context."""
    with torch.no_grad():
        return torch.stack([model(input_ids=torch.tensor([r])).logits[0, -1] for r in rows])


def _clear_argmax(ref):
    """Rows whose greedy token is clear of rounding: (row, token)."""
    top = ref.topk(2)
    return [(r, int(top.indices[r, 0])) for r in range(len(ref)) if top.values[r, 0] - top.values[r, 1] > MARGIN]


def check_turns_match_cpu(cpu_model, tok, dtype, path, device="cuda"):
    """HFBackend on ``device``: after start, decode (forks, dropped rows) and update, every row's cached logits are
    the CPU model's on the row's whole context."""
    be = HFBackend(_on(cpu_model, dtype, device), tok)
    assert be.device.type == device and be.dtype == dtype
    if path == "transformers":
        be._decoder = None
    rng = random.Random(1)
    rows = _contexts(tok) * 2  # the n samples of a problem share their prompt
    state = be.start(rows)
    for _turn in range(3):
        got = torch.stack([state.logits[state.order[r]] for r in range(len(rows))]).float().cpu()
        torch.testing.assert_close(got, _reference(cpu_model, rows), atol=TOL[dtype], rtol=0)
        gens = be.decode(state, 8, 1.0, 1.0)
        keep = [i for i in range(len(rows)) if i % 4] + [1]  # drop some rows, fork one
        rows = [rows[i] + gens[i].token_ids + [rng.randrange(len(tok) - 1) for _ in range(rng.randint(1, 6))]
                for i in keep]
        state = be.update(state, keep, rows)


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float32], ids=["bf16", "fp32"])
@pytest.mark.parametrize("path", ["layers", "transformers"])
def test_hf_backend_on_cuda_matches_cpu_logits(cpu_model, small_tok, dtype, path):
    check_turns_match_cpu(cpu_model, small_tok, dtype, path)


def check_generate_greedy(cpu_model, tok, device="cuda"):
    rows = _contexts(tok, 16)
    clear = _clear_argmax(_reference(cpu_model, rows))
    assert clear, "no context has a clear greedy token: the comparison would be empty"
    gens = HFGenerateBackend(_on(cpu_model, torch.bfloat16, device), tok).generate(rows, 6, 0.0, 1.0)
    assert all(1 <= len(g.token_ids) <= 6 for g in gens)
    assert [gens[r].token_ids[0] for r, _ in clear] == [t for _, t in clear]


def test_hf_generate_backend_on_cuda_greedy_matches_cpu(cpu_model, small_tok):
    check_generate_greedy(cpu_model, small_tok)


def check_sampling_run(cpu_model, tok, problems, device="cuda"):
    """Episodes through the engine as the pipeline runs them: per-batch seeded generators, forks on a T grid."""
    env = rollout.Environment(problems[:3], tok, search_k=1)
    be = HFBackend(_on(cpu_model, torch.bfloat16, device), tok, batch_size=4)
    jobs = [(p["id"], s, 2) for p in problems[:3] for s in range(2)]
    cfg = rollout.SamplingConfig(temperature=1.0, max_turn_tokens=16, max_total_tokens=700, search_k=1)
    eps = rollout.run_episodes(be, env, jobs, cfg, grid=[0, 1, 2], generator=torch.Generator().manual_seed(0))
    assert {(e.problem_id, e.sample) for e in eps if not e.is_fork} == {(p, s) for p, s, _ in jobs}
    assert {(e.problem_id, e.sample) for e in eps if e.budget == 0} == {(p, s) for p, s, _ in jobs}  # forks at T=0
    assert all(e.done and e.termination and e.generated > 0 for e in eps)


def test_sampling_run_on_cuda(cpu_model, small_tok, eval_set):
    check_sampling_run(cpu_model, small_tok, eval_set)


def test_vllm_backend_generates(cpu_model, small_tok, tmp_path):
    pytest.importorskip("vllm", reason="the vllm package is not installed (GPU machines only: pip install vllm)")
    from passkt.backends import VLLMBackend

    os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")  # engine in this process: CUDA is initialised here
    cpu_model.save_pretrained(tmp_path / "model")
    small_tok.save_pretrained(tmp_path / "model")
    be = VLLMBackend(str(tmp_path / "model"), small_tok, seed=0, dtype="float32", max_model_len=1024,
                     gpu_memory_utilization=0.3, enforce_eager=True)
    rows = _contexts(small_tok, 16)
    clear = _clear_argmax(_reference(cpu_model, rows))
    greedy = be.generate(rows, 6, 0.0, 1.0)
    assert len(greedy) == len(rows) and clear
    assert [greedy[r].token_ids[0] for r, _ in clear] == [t for _, t in clear]
    for g in greedy + be.generate(rows, 6, 1.0, 0.95):
        assert 1 <= len(g.token_ids) <= 6 and (not g.hit_limit or len(g.token_ids) == 6)


# --------------------------------------------------------------------------------------------------------------
# Training on the GPU: SFT (LoRA, bf16, activation checkpointing) and GRPO steps, on a randomly initialised
# Qwen2-architecture model of a few hundred million parameters (the paper profile's code paths at small scale).
# --------------------------------------------------------------------------------------------------------------

def _random_qwen2(tok, path, layers=24):
    """A random Qwen2 of ~260M parameters (hidden 1024, 16 heads / 2 KV heads, MLP 2816) saved like a hub model."""
    from transformers import AutoModelForCausalLM

    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(models.tiny_config(tok, 1024, layers, 16, 2, 2816, 2048))
    assert models.n_params(model) > 2e8
    model.save_pretrained(path)
    tok.save_pretrained(path)
    return path


def _weights(path):
    from safetensors.torch import load_file

    return {k: v for f in sorted(path.glob("*.safetensors")) for k, v in load_file(f).items()}


def test_sft_lora_bf16_checkpointed_on_cuda(small_tok, tmp_path):
    import datasets

    from passkt import sft

    base = _random_qwen2(small_tok, tmp_path / "base")
    rng = random.Random(0)
    rows = []
    for _ in range(16):
        ids = [rng.randrange(len(small_tok) - 1) for _ in range(200)]
        rows.append({"input_ids": ids, "labels": [-100] * 100 + ids[100:]})  # loss on the second half only
    s = sft.SFTSettings(epochs=2.0, lr=1e-3, batch_size=4, grad_accum=2, max_len=256, lora=True, device="cuda",
                        bf16=True, gradient_checkpointing=True, logging_steps=1, save_steps=1000)
    torch.cuda.reset_peak_memory_stats()
    res = sft.train_sft(base, datasets.Dataset.from_list(rows), tmp_path / "sft", s)
    assert res["steps"] == 4 and all(math.isfinite(r["loss"]) for r in res["log"])
    assert torch.cuda.max_memory_allocated() > 2e8  # the model trained on the GPU (bf16 weights: ~0.5 GB)
    after, before = _weights(tmp_path / "sft"), _weights(base)
    assert not (tmp_path / "sft" / "adapter_config.json").exists()  # LoRA merged into a plain model
    assert {v.dtype for v in after.values()} == {torch.bfloat16}  # saved in bf16
    assert any(not torch.equal(before[k].to(torch.bfloat16), after[k]) for k in before)


def test_grpo_steps_bf16_checkpointed_on_cuda(small_sets, small_tok, tmp_path):
    import warnings

    from passkt import grpo

    sets, _ = small_sets
    train = sets["train"][:4]
    base = _random_qwen2(small_tok, tmp_path / "base")
    s = grpo.GRPOSettings(epochs=1, group_size=4, T_train=1, lr=1e-5, bf16=True, gradient_checkpointing=True,
                          max_turn_tokens=16, max_total_tokens=512, prompts_per_step=2, save_steps=10,
                          save_total_limit=1)
    torch.cuda.reset_peak_memory_stats()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = grpo.train_grpo(base, train, small_tok, tmp_path / "grpo", s, search_k=1)  # the HF engine, live model
    assert res["steps"] == 2 and res["rollout_episodes"] == 16 and res["processes"] == 1
    assert torch.cuda.max_memory_allocated() > 2e8
    assert len((tmp_path / "grpo" / "train_log.csv").read_text().splitlines()) == 3

    # a random model is never right, so every advantage is 0: scripted episodes with mixed rewards move the weights
    by_q = {p["question"]: p for p in train}
    turn = iter(range(10**6))

    def script(ctx):
        p = next(v for q, v in by_q.items() if f"Question: {q}" in ctx)
        if "<information>" not in ctx.split("<|im_start|>assistant\n")[-1]:
            return f"<think>look</think><search>{p['question'][:20]}</search>"
        return f"<answer>{p['answer'] if next(turn) % 3 == 0 else 'nothing'}</answer>"

    scripted = ScriptedBackend(small_tok, script)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = grpo.train_grpo(base, train, small_tok, tmp_path / "grpo2", s, search_k=1,
                              backend_factory=lambda trainer: scripted)
    assert res["steps"] == 2
    after, before = _weights(tmp_path / "grpo2" / "model"), _weights(base)
    assert any(not torch.equal(before[k].float(), after[k].float()) for k in before), "no parameter moved"
