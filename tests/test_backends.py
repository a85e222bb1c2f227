"""The transformers backend's persistent KV cache: every row's next-token logits equal a fresh forward pass.

The engine keeps one cache row per episode across turns (holes masked, finished rows moved out of the forward
pass, forks copied, holes squeezed out). Whatever it does to the cache, the logits it samples from must be those
of the model on the row's whole context; these tests check that on a small random model, turn after turn.
"""

import random

import pandas as pd
import pytest
import torch

from passkt import models, rollout
from passkt.backends import HFBackend, HFGenerateBackend, sample_next


@pytest.fixture(scope="module")
def tiny_model(small_tok):
    torch.manual_seed(0)
    from transformers import AutoModelForCausalLM

    cfg = models.tiny_config(small_tok, 32, 2, 2, 1, 64, 2048)
    return AutoModelForCausalLM.from_config(cfg).eval()


def _full_logits(model, ctx):
    with torch.no_grad():
        return model(input_ids=torch.tensor([ctx])).logits[0, -1]


def _check_rows(model, state, rows):
    assert len(rows) == state.logits.shape[0]
    for r, ctx in enumerate(rows):  # logits are kept in buffer-row order
        torch.testing.assert_close(state.logits[state.order[r]], _full_logits(model, ctx), atol=2e-4, rtol=1e-4)


@pytest.mark.parametrize("path", ["layers", "transformers"])
def test_cached_logits_match_full_forward_across_turns(tiny_model, small_tok, path):
    """Both forward paths: the decoder layers called one by one (Llama family) and transformers' forward pass."""
    rng = random.Random(0)
    be = HFBackend(tiny_model, small_tok)
    assert be._decoder is not None  # a Qwen2 model: the layers are called directly
    if path == "transformers":
        be._decoder = None
    # a third of the vocabulary ends a turn: rows stop at different steps, so rows get reordered mid-turn
    be.finish = set(rng.sample(range(len(small_tok)), len(small_tok) // 3))
    be.squeeze_ratio, be.squeeze_min = 1.0, 0  # squeeze holes whenever there are any
    be.feed_chunk = 4  # observations of unequal length span several feed chunks
    reorders = []
    orig = be._swap
    be._swap = lambda state, a, b: (reorders.append(len(a)), orig(state, a, b))
    vocab = len(small_tok) - 1
    base = [[rng.randrange(vocab) for _ in range(rng.randint(3, 20))] for _ in range(6)]
    rows = [list(base[i % 6]) for i in range(24)]  # shared prompts, as n samples of one problem
    state = be.start(rows)
    _check_rows(tiny_model, state, rows)
    torch.manual_seed(1)
    for _turn in range(5):
        gens = be.decode(state, 12, 1.0, 1.0)
        rows = [r + g.token_ids for r, g in zip(rows, gens)]
        # drop some rows, fork some (repeat an index), append an "observation" of random length to each
        keep = [i for i in range(len(rows)) if rng.random() > 0.2] + [rng.randrange(len(rows)) for _ in range(3)]
        rows = [rows[i] + [rng.randrange(vocab) for _ in range(rng.randint(0, 9))] for i in keep]
        state = be.update(state, keep, rows)
        _check_rows(tiny_model, state, rows)
        # a second update without new tokens (dropping rows, copying one): rows keep their logits
        keep = [i for i in range(len(rows)) if rng.random() > 0.1] + [0]
        rows = [rows[i] for i in keep]
        state = be.update(state, keep, rows)
        _check_rows(tiny_model, state, rows)
    assert reorders, "no row was moved out of the forward pass: the test did not exercise it"
    assert be.squeezes > 0, "holes were never squeezed out: the test did not exercise it"


def test_start_shares_prompts_and_prefixes(tiny_model, small_tok):
    be = HFBackend(tiny_model, small_tok)
    prompt, other = [5, 6, 7, 8], [9, 10, 11]
    rows = [prompt, prompt + [12, 13], other, prompt, other + [14], prompt + [12, 13]]
    state = be.start(rows)
    _check_rows(tiny_model, state, rows)


def test_update_rejects_a_context_that_does_not_extend_the_row(tiny_model, small_tok):
    be = HFBackend(tiny_model, small_tok)
    state = be.start([[5, 6, 7], [8, 9]])
    be.decode(state, 2, 0.0, 1.0)
    with pytest.raises(ValueError, match="does not extend"):
        be.update(state, [0], [[5, 6, 99, 1, 2, 3]])


def test_cached_engine_equals_generate_per_turn_when_greedy(tiny_model, small_tok, eval_set):
    env = rollout.Environment(eval_set, small_tok, search_k=1)
    cfg = rollout.SamplingConfig(temperature=0.0, max_turn_tokens=16, max_total_tokens=400, search_k=1)
    jobs = [(p["id"], 0, 3) for p in eval_set]
    a = rollout.run_episodes(HFBackend(tiny_model, small_tok), env, jobs, cfg, grid=[0, 1, 3])
    b = rollout.run_episodes(HFGenerateBackend(tiny_model, small_tok), env, jobs, cfg, grid=[0, 1, 3])
    key = lambda e: (e.problem_id, e.budget, e.is_fork)  # noqa: E731
    assert {key(e): e.ids for e in a} == {key(e): e.ids for e in b}
    assert {key(e): e.termination for e in a} == {key(e): e.termination for e in b}


def test_sample_next_draws_from_softmax_and_respects_top_p():
    torch.manual_seed(0)
    logits = torch.log(torch.tensor([[0.6, 0.3, 0.1]])).repeat(20000, 1)
    freq = torch.bincount(sample_next(logits, 1.0, 1.0), minlength=3).float() / 20000
    torch.testing.assert_close(freq, torch.tensor([0.6, 0.3, 0.1]), atol=0.015, rtol=0)
    top = sample_next(logits, 1.0, 0.5)  # 0.6 alone reaches the top-p mass
    assert set(top.tolist()) == {0}
    two = torch.bincount(sample_next(logits, 1.0, 0.8), minlength=3).float() / 20000  # {0, 1}, renormalised
    torch.testing.assert_close(two, torch.tensor([2 / 3, 1 / 3, 0.0]), atol=0.015, rtol=0)
    assert sample_next(logits[:2], 0.0, 1.0).tolist() == [0, 0]


def test_cpu_gqa_attention_equals_repeated_heads():
    """Multi-token queries with a mask keep grouped heads grouped (enable_gqa): same output as transformers' SDPA."""
    from transformers.integrations.sdpa_attention import sdpa_attention_forward

    from passkt.backends import _cpu_gqa_attention

    class Layer:
        num_key_value_groups, is_causal = 2, True

    torch.manual_seed(0)
    q, k, v = torch.randn(3, 4, 5, 8), torch.randn(3, 2, 9, 8), torch.randn(3, 2, 9, 8)
    allowed = torch.rand(3, 1, 5, 9) > 0.4
    allowed[..., -1] = True  # every query sees at least one key
    mask = torch.zeros(allowed.shape).masked_fill_(~allowed, torch.finfo(torch.float32).min)
    for L in (5, 1):  # a feed chunk (SDPA with enable_gqa) and a decode step (two matmuls on grouped heads)
        ours, _ = _cpu_gqa_attention(Layer(), q[:, :, :L], k, v, mask[:, :, :L])
        ref, _ = sdpa_attention_forward(Layer(), q[:, :, :L], k, v, mask[:, :, :L])
        assert ours.shape == (3, L, 4, 8)
        torch.testing.assert_close(ours, ref, atol=1e-6, rtol=1e-5)
    per_head = mask[:, :, :1].repeat(1, 4, 1, 1)  # a decode step whose mask differs per head: the general path
    per_head[:, 1, :, 0] = torch.finfo(torch.float32).min
    ours, _ = _cpu_gqa_attention(Layer(), q[:, :, :1], k, v, per_head)
    torch.testing.assert_close(ours, sdpa_attention_forward(Layer(), q[:, :, :1], k, v, per_head)[0], atol=1e-6,
                               rtol=1e-5)


def test_backend_restores_the_models_attention_implementation(tiny_model, small_tok):
    """Through transformers' forward pass the backend switches attention only around its own calls (GRPO trains
    the same model object); calling the layers directly it never touches the model's setting."""
    seen = []
    for direct in (True, False):
        be = HFBackend(tiny_model, small_tok)
        if not direct:
            be._decoder = None
        assert be.attention == "passkt_cpu_gqa" and tiny_model.config._attn_implementation == "sdpa"
        spy = tiny_model.model.layers[0].self_attn.q_proj.register_forward_hook(
            lambda *_: seen.append(tiny_model.config._attn_implementation))
        try:
            be.decode(be.start([[3, 4, 5, 6], [3, 4, 7]]), 4, 1.0, 1.0)
        finally:
            spy.remove()
        assert tiny_model.config._attn_implementation == "sdpa"
    assert set(seen) == {"sdpa", "passkt_cpu_gqa"}  # direct calls leave it alone; transformers' path switches it


def test_attention_switch_is_counted_across_nested_and_parallel_users(tiny_model):
    from passkt.backends import _attention_implementation

    cfg = tiny_model.config
    with _attention_implementation(cfg, "passkt_cpu_gqa"):
        with _attention_implementation(cfg, "passkt_cpu_gqa"):
            assert cfg._attn_implementation == "passkt_cpu_gqa"
        assert cfg._attn_implementation == "passkt_cpu_gqa"  # the outer user is still inside
    assert cfg._attn_implementation == "sdpa"


def test_sample_next_with_a_generator_is_reproducible_and_leaves_the_global_rng_alone():
    logits = torch.randn(64, 10)
    torch.manual_seed(5)
    before = torch.get_rng_state()
    a = sample_next(logits, 1.0, 1.0, torch.Generator().manual_seed(1))
    b = sample_next(logits, 1.0, 1.0, torch.Generator().manual_seed(1))
    assert torch.equal(a, b) and torch.equal(torch.get_rng_state(), before)
    assert not torch.equal(a, sample_next(logits, 1.0, 1.0, torch.Generator().manual_seed(2)))


def test_parallel_workers_sample_exactly_what_one_worker_samples(tiny_model, small_tok, eval_set, tmp_path):
    """Batches (run_episodes) and shards (sample_policy) in threads: the same episodes, bit for bit, as in sequence."""
    env = rollout.Environment(eval_set, small_tok, search_k=1)
    cfg = rollout.SamplingConfig(temperature=1.0, max_turn_tokens=12, max_total_tokens=300, search_k=1)
    be = HFBackend(tiny_model, small_tok, batch_size=8)
    jobs = [(p["id"], s, 2) for p in eval_set[:6] for s in range(4)]  # 3 batches of 8
    runs = []
    for workers in (1, 2, 3):
        torch.manual_seed(11)
        runs.append([(e.problem_id, e.sample, e.budget, e.ids) for e in
                     rollout.run_episodes(be, env, jobs, cfg, grid=[0, 1, 2], workers=workers)])
    assert runs[0] == runs[1] == runs[2]
    assert tiny_model.config._attn_implementation == "sdpa" and torch.get_num_threads() >= 1
    kw = dict(policy="p", n=3, grid=[0, 1, 2], temperatures=[0.7, 1.0], cfg=cfg, seed=4, problems_per_shard=2)
    threads = torch.get_num_threads()
    stats = {w: rollout.sample_policy(be, env, eval_set, out_dir=tmp_path / f"w{w}", workers=w, **kw) for w in (1, 2)}
    assert stats[2]["shards"] > 2 and torch.get_num_threads() == threads
    pd.testing.assert_frame_equal(rollout.load_rollouts(tmp_path / "w1"), rollout.load_rollouts(tmp_path / "w2"))


@pytest.mark.parametrize("kind", ["llama", "mistral", "mistral_windowed"])
def test_other_llama_family_models_call_their_layers_directly(small_tok, kind):
    """Llama and Mistral take the direct path too (same logits as their forward pass). A sliding window is fine
    while contexts fit in it; a longer context is a clear error, not silently different attention."""
    from transformers import AutoModelForCausalLM, LlamaConfig, MistralConfig

    torch.manual_seed(0)
    size = dict(vocab_size=len(small_tok), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=512,
                pad_token_id=small_tok.pad_token_id, attn_implementation="sdpa")
    cfg = LlamaConfig(**size) if kind == "llama" else MistralConfig(
        **size, sliding_window=16 if kind == "mistral_windowed" else None)
    model = AutoModelForCausalLM.from_config(cfg).eval()
    be = HFBackend(model, small_tok)
    assert be._decoder is not None and (be.window is not None) == (kind == "mistral_windowed")
    rows = [[5, 6, 7, 8, 9, 10, 11], [5, 6, 12], [13, 14, 15, 16]]
    state = be.start(rows)
    _check_rows(model, state, rows)
    gens = be.decode(state, 5, 1.0, 1.0)
    rows = [r + g.token_ids + [17, 18] for r, g in zip(rows, gens)]
    _check_rows(model, be.update(state, [0, 1, 2], rows), rows)
    if kind == "mistral_windowed":
        with pytest.raises(ValueError, match="sliding attention window"):
            be.start([list(range(5, 25))])
