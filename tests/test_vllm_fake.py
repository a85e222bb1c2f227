"""VLLMBackend against a fake ``vllm`` module (no GPU, no vLLM): batching, per-request seeds, logprobs, engine
kwargs from the sampling settings, and teardown. The fake samples from each request's seed and prompt only, as
vLLM does with ``SamplingParams(seed=...)``."""

import random
import sys
import types
import weakref
from dataclasses import dataclass, field

import pytest

from passkt.backends import Generation, VLLMBackend
from passkt.protocol import STOP_STRINGS
from passkt.sampling import SamplingSettings, make_backend

VOCAB = 50


@dataclass
class Logprob:
    logprob: float
    rank: int | None = None
    decoded_token: str | None = None


@dataclass
class CompletionOutput:
    index: int
    text: str
    token_ids: list
    cumulative_logprob: float | None
    logprobs: list | None
    finish_reason: str | None = None


@dataclass
class RequestOutput:
    prompt_token_ids: list
    outputs: list


@dataclass
class SamplingParams:
    temperature: float = 1.0
    top_p: float = 1.0
    max_tokens: int = 16
    stop: list = field(default_factory=list)
    include_stop_str_in_output: bool = False
    logprobs: int | None = None
    seed: int | None = None


def draw(prompt: list[int], sp: SamplingParams) -> tuple[list[int], list[float], str]:
    """What the fake engine samples for one request: a function of its prompt and seed only."""
    rng = random.Random(f"{sp.seed}:{prompt}")
    n = rng.randint(1, sp.max_tokens + 2)
    ids = [rng.randrange(VOCAB) for _ in range(min(n, sp.max_tokens))]
    return ids, [-5 * rng.random() for _ in ids], "length" if n > sp.max_tokens else "stop"


class FakeLLM:
    instances: list = []  # weak references, so a test can see an engine freed

    def __init__(self, model: str, **kwargs):
        self.kwargs = {"model": model, **kwargs}
        self.calls: list[list[SamplingParams]] = []
        self.shut_down = False
        self.llm_engine = types.SimpleNamespace(engine_core=types.SimpleNamespace(shutdown=self._shutdown))
        FakeLLM.instances.append(weakref.ref(self))

    def _shutdown(self):
        self.shut_down = True

    def generate(self, prompts, sampling_params, use_tqdm=True):
        sps = sampling_params if isinstance(sampling_params, list) else [sampling_params] * len(prompts)
        assert len(sps) == len(prompts)
        self.calls.append(sps)
        outs = []
        for p, sp in zip(prompts, sps):
            ids, lps, finish = draw(p["prompt_token_ids"], sp)
            # the sampled token, plus a decoy: with logprobs=0 vLLM may still list another token beside it
            per_tok = None if sp.logprobs is None else [{(t + 1) % VOCAB: Logprob(0.0, 1), t: Logprob(lp, 2)}
                                                          for t, lp in zip(ids, lps)]
            outs.append(RequestOutput(p["prompt_token_ids"], [CompletionOutput(0, "", ids, None, per_tok, finish)]))
        return outs


@pytest.fixture
def fake_vllm(monkeypatch):
    """Installs the fake ``vllm`` (and the modules VLLMBackend imports from it); returns the teardown log."""
    destroyed: list[str] = []
    vllm = types.ModuleType("vllm")
    vllm.LLM, vllm.SamplingParams = FakeLLM, SamplingParams
    inputs = types.ModuleType("vllm.inputs")
    inputs.TokensPrompt = lambda prompt_token_ids: {"prompt_token_ids": prompt_token_ids}
    distributed = types.ModuleType("vllm.distributed")
    parallel_state = types.ModuleType("vllm.distributed.parallel_state")
    parallel_state.destroy_model_parallel = lambda: destroyed.append("model_parallel")
    parallel_state.destroy_distributed_environment = lambda: destroyed.append("distributed_environment")
    vllm.inputs, vllm.distributed, distributed.parallel_state = inputs, distributed, parallel_state
    for name, mod in [("vllm", vllm), ("vllm.inputs", inputs), ("vllm.distributed", distributed),
                      ("vllm.distributed.parallel_state", parallel_state)]:
        monkeypatch.setitem(sys.modules, name, mod)
    FakeLLM.instances = []
    return destroyed


TOK = types.SimpleNamespace(eos_token_id=0)  # the backend needs only the eos id
CONTEXTS = [[1 + i, 2, 3 + i % 4] for i in range(10)]


def test_chunks_of_batch_size_with_per_request_seeds(fake_vllm):
    be = VLLMBackend("m", TOK, seed=5, batch_size=4)
    gens = be.generate(CONTEXTS, 6, 0.7, 0.9)
    assert [len(c) for c in be.llm.calls] == [4, 4, 2]
    sps = [sp for c in be.llm.calls for sp in c]
    assert [sp.seed for sp in sps] == [VLLMBackend.request_seed(5, 0, i) for i in range(len(CONTEXTS))]
    assert all(sp.logprobs is None and sp.stop == list(STOP_STRINGS) and sp.include_stop_str_in_output
               and (sp.temperature, sp.top_p, sp.max_tokens) == (0.7, 0.9, 6) for sp in sps)
    for c, sp, g in zip(CONTEXTS, sps, gens):  # outputs in context order
        ids, _, finish = draw(c, sp)
        assert g.token_ids == ids and g.hit_limit == (finish == "length")
    assert be.calls == 1 and be.generate([], 6, 0.7, 0.9) == [] and be.calls == 2


def test_request_seed_is_deterministic_and_in_range():
    seeds = [VLLMBackend.request_seed(s, c, i) for s in range(3) for c in range(3) for i in range(50)]
    assert all(0 <= x < 2**31 for x in seeds) and len(set(seeds)) == len(seeds)
    assert seeds == [VLLMBackend.request_seed(s, c, i) for s in range(3) for c in range(3) for i in range(50)]


def test_same_draws_across_batching_and_resume(fake_vllm):
    first = VLLMBackend("m", TOK, seed=3, batch_size=4)
    a1, a2 = first.generate(CONTEXTS, 8, 1.0, 1.0), first.generate(CONTEXTS[:7], 8, 1.0, 1.0)
    other = VLLMBackend("m", TOK, seed=3, batch_size=3)  # other batching, same draws
    assert other.generate(CONTEXTS, 8, 1.0, 1.0) == a1
    resumed = VLLMBackend("m", TOK, seed=3, batch_size=256)  # picks up at the second call
    resumed.reseed(3, calls=1)
    assert resumed.generate(CONTEXTS[:7], 8, 1.0, 1.0) == a2
    assert a2 != a1[:7]  # a later call draws afresh
    assert VLLMBackend("m", TOK, seed=4, batch_size=4).generate(CONTEXTS, 8, 1.0, 1.0) != a1
    first.reseed(3)
    assert first.generate(CONTEXTS, 8, 1.0, 1.0) == a1


def test_logprobs_align_with_tokens(fake_vllm):
    be = VLLMBackend("m", TOK, seed=1, batch_size=4, logprobs=True)
    gens = be.generate(CONTEXTS, 5, 1.0, 1.0)
    sps = [sp for c in be.llm.calls for sp in c]
    assert any(g.hit_limit for g in gens) and not all(g.hit_limit for g in gens)
    for c, sp, g in zip(CONTEXTS, sps, gens):
        ids, lps, _ = draw(c, sp)
        assert isinstance(g, Generation) and len(g.logprobs) == len(g.token_ids) and g.logprobs == lps


def test_make_backend_passes_engine_settings(fake_vllm):
    s = SamplingSettings.from_dict({"backend": "vllm", "batch_size": 32, "dtype": "bfloat16", "max_model_len": 4096,
                                    "gpu_memory_utilization": 0.5, "data_parallel_size": 2})
    be = make_backend(None, TOK, s, "/models/x", seed=7)
    assert isinstance(be, VLLMBackend) and be.batch_size == 32 and be.seed == 7
    assert be.llm.kwargs == {"model": "/models/x", "seed": 7, "dtype": "bfloat16", "max_model_len": 4096,
                             "gpu_memory_utilization": 0.5, "data_parallel_size": 2}
    be = make_backend(None, TOK, SamplingSettings.from_dict({"backend": "vllm"}), "/models/x")
    assert be.batch_size == 256  # defaults: vLLM picks the context length; one engine
    assert be.llm.kwargs == {"model": "/models/x", "seed": 0, "dtype": "auto", "gpu_memory_utilization": 0.9}


def test_llm_kwargs_pass_through(fake_vllm):
    be = VLLMBackend("m", TOK, seed=2, batch_size=8, enforce_eager=True, max_model_len=1024)
    assert be.llm.kwargs == {"model": "m", "seed": 2, "enforce_eager": True, "max_model_len": 1024}
    with pytest.raises(ValueError, match="batch_size"):
        VLLMBackend("m", TOK, batch_size=0)


def test_close_destroys_owned_engine(fake_vllm):
    be = VLLMBackend("m", TOK)
    be.close()
    assert be.llm is None and FakeLLM.instances[0]() is None  # freed (its reference cycle collected too)
    assert fake_vllm == ["model_parallel", "distributed_environment"]
    be.close()  # idempotent
    assert len(fake_vllm) == 2
    with pytest.raises(RuntimeError, match="closed"):
        be.generate(CONTEXTS, 4, 1.0, 1.0)


def test_context_manager_closes(fake_vllm):
    with VLLMBackend("m", TOK, batch_size=4) as be:
        engine = weakref.ref(be.llm)
        assert len(be.generate(CONTEXTS, 4, 1.0, 1.0)) == len(CONTEXTS)
    assert be.llm is None and engine() is None and len(fake_vllm) == 2


def test_close_leaves_wrapped_engine_alive(fake_vllm):
    llm = FakeLLM("trl")
    be = VLLMBackend.wrap(llm, TOK, seed=9, batch_size=4)
    assert (be.seed, be.batch_size, be.eos_id, be.calls) == (9, 4, 0, 0)
    gens = be.generate(CONTEXTS, 4, 1.0, 1.0)
    assert [len(c) for c in llm.calls] == [4, 4, 2] and len(gens) == len(CONTEXTS)
    with be:
        pass
    assert be.llm is None and fake_vllm == [] and not llm.shut_down
    assert len(llm.generate([{"prompt_token_ids": [1]}], SamplingParams(seed=1))) == 1  # TRL's engine still works


def test_owned_engine_core_is_shut_down(fake_vllm):
    be = VLLMBackend("m", TOK)
    engine = be.llm
    be.close()
    assert engine.shut_down


@pytest.mark.parametrize("key, value", [("dtype", "int8"), ("max_model_len", -1), ("max_model_len", 1.5),
                                        ("gpu_memory_utilization", 0), ("gpu_memory_utilization", 1.5),
                                        ("gpu_memory_utilization", "0.9"), ("data_parallel_size", 0),
                                        ("data_parallel_size", True)])
def test_from_dict_rejects_bad_engine_settings(key, value):
    with pytest.raises(ValueError, match=rf"sampling\.{key} .*got {value!r}"):
        SamplingSettings.from_dict({"backend": "vllm", key: value})


def test_each_request_stops_at_its_own_token_limit(fake_vllm):
    be = VLLMBackend("m", TOK, seed=1, batch_size=4)
    limits = [3 if i % 2 else 9 for i in range(len(CONTEXTS))]
    gens = be.generate(CONTEXTS, limits, 1.0, 1.0)
    assert [sp.max_tokens for c in be.llm.calls for sp in c] == limits
    assert all(len(g.token_ids) <= lim for g, lim in zip(gens, limits))
    with pytest.raises(ValueError, match="3 token limits for 10 contexts"):
        be.generate(CONTEXTS, [1, 2, 3], 1.0, 1.0)


def test_mixed_batch_gives_math_its_own_limit_through_the_engine(fake_vllm, small_tok, eval_set):
    from passkt.rollout import Environment, SamplingConfig, run_episodes

    one = {}
    for p in eval_set:
        one.setdefault(p["category"], p)
    env = Environment(list(one.values()), small_tok, search_k=1)
    be = VLLMBackend("m", small_tok, seed=1, batch_size=8)
    cfg = SamplingConfig(max_turn_tokens=4, math_max_turn_tokens=11, max_total_tokens=4096, search_k=1)
    run_episodes(be, env, [(p["id"], 0, 2) for p in one.values()], cfg)
    first = be.llm.calls[0]  # the first turn: one request per problem, in job order
    assert [sp.max_tokens for sp in first] == [11 if c == "math" else 4 for c in one]


def test_grpo_training_draws_fresh_seeds_every_step_and_rank(fake_vllm):
    from passkt import grpo

    s = grpo.GRPOSettings(use_vllm=True, seed=5)
    factory = grpo.default_backend_factory(TOK, s)

    def trainer(step, rank):
        return types.SimpleNamespace(vllm_generation=types.SimpleNamespace(llm=FakeLLM(model="m", seed=0)),
                                     accelerator=types.SimpleNamespace(process_index=rank),
                                     state=types.SimpleNamespace(global_step=step))

    seeds = {}
    for step, rank in [(0, 0), (1, 0), (0, 1), (1, 1)]:
        be = factory(trainer(step, rank))
        assert be.logprobs and not be.owns_engine  # GRPO's IS correction reads them; TRL owns the engine
        be.generate(CONTEXTS[:2], 4, 1.0, 1.0)
        seeds[step, rank] = [sp.seed for sp in be.llm.calls[0]]
    assert len({tuple(v) for v in seeds.values()}) == 4  # neither a later step nor another rank repeats draws
    be = factory(trainer(1, 0))  # a resumed run at step 1 draws what step 1 drew
    be.generate(CONTEXTS[:2], 4, 1.0, 1.0)
    assert [sp.seed for sp in be.llm.calls[0]] == seeds[1, 0]
