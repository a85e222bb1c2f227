"""The rollout engine: batched multi-turn agent episodes, the depth grid by forking, sharded resumable output.

Used by evaluation (stages 02–04) and by GRPO training (its ``rollout_func``), so training and evaluation
episodes cannot drift apart.

Depth grid from one pass: each (problem, sample) runs once with budget T_max. Whenever it completes its T-th
search for a grid budget T < T_max, a *fork* copies the context, appends the no-searches-left notice and samples
a forced answer; T = 0 forks at the start. An episode that ends (answer or invalid) before reaching T searches
counts unchanged for that T. Because the prompt never states the budget, the budget-T result is the same policy
conditioned on the same prefix as a separate budget-T run (tests/test_rollout.py checks the distributions).
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
import time
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable

from passkt.protocol import ANSWERED, NOTICE, build_prompt, information, parse_turn, split_turn
from passkt.scoring import score_answer
from passkt.search import SearchTool, format_results


@dataclass(frozen=True)
class SamplingConfig:
    temperature: float = 1.0
    top_p: float = 1.0
    max_turn_tokens: int = 64
    max_total_tokens: int = 1024
    search_k: int = 2  # paragraphs returned per search


class Environment:
    """Prompts, the search tool and scoring for a fixed set of problems; all token ids via one tokenizer."""

    def __init__(self, problems: list[dict], tokenizer, search_k: int = 2):
        self.problems = {p["id"]: p for p in problems}
        self.tok = tokenizer
        self.search_k = search_k
        self.tool = SearchTool(problems)
        self._search_lock = threading.Lock()
        self._prompt_ids: dict[str, list[int]] = {}
        self.notice_ids = tokenizer.encode(NOTICE, add_special_tokens=False)
        self.eos_id = tokenizer.eos_token_id
        self._tokstr: dict[int, str] = {}

    def prompt_ids(self, pid: str) -> list[int]:
        if pid not in self._prompt_ids:
            text = build_prompt(self.tok, self.problems[pid]["question"])
            self._prompt_ids[pid] = self.tok.encode(text, add_special_tokens=False)
        return self._prompt_ids[pid]

    def info_ids(self, pid: str, query: str) -> list[int]:
        with self._search_lock:  # the search tool's LRU cache is shared by parallel sampling workers
            results = self.tool.search(pid, query, self.search_k)
        text = information(format_results(results))
        return self.tok.encode(text, add_special_tokens=False)

    def token_strings(self, ids: list[int]) -> list[str]:
        out = []
        for t in ids:
            s = self._tokstr.get(t)
            if s is None:
                s = self._tokstr[t] = self.tok.decode([t])
            out.append(s)
        return out


@dataclass
class Episode:
    problem_id: str
    sample: int
    budget: int
    ids: list[int]
    segments: list[list] = field(default_factory=list)  # [type, start, end] token offsets into ids
    queries: list[str] = field(default_factory=list)
    done: bool = False
    termination: str = ""
    answer: str | None = None
    generated: int = 0  # model-written tokens in this episode's context (incl. those inherited by a fork)
    inherited: int = 0  # of which were written before the fork (not sampled again)
    is_fork: bool = False

    def add(self, kind: str, ids: list[int]) -> None:
        if ids:
            self.segments.append([kind, len(self.ids), len(self.ids) + len(ids)])
            self.ids.extend(ids)

    def fork(self, budget: int) -> "Episode":
        return Episode(self.problem_id, self.sample, budget, list(self.ids), [list(s) for s in self.segments],
                       list(self.queries), generated=self.generated, inherited=self.generated, is_fork=True)


def _model_turn(env: Environment, ep: Episode, toks: list[int], hit_limit: bool) -> None:
    """Append one generated turn to the episode, split into typed segments, and act on it."""
    eos = env.eos_id
    body = toks[:-1] if toks and toks[-1] == eos else toks
    strs = env.token_strings(body)
    text = "".join(strs)
    turn = parse_turn(text, hit_limit=hit_limit, searches_left=len(ep.queries) < ep.budget)
    # token index of every char span: a token belongs to the segment holding its first character
    starts, pos = [], 0
    for s in strs:
        starts.append(pos)
        pos += len(s)
    spans = split_turn(text)
    j = 0
    for kind, _, b in spans:
        k0 = j
        while j < len(body) and starts[j] < b:
            j += 1
        ep.add(kind, body[k0:j])
    ep.add("eos", toks[len(body):])
    ep.generated += len(toks)
    if turn.action == "search":
        ep.queries.append(turn.content)
    elif turn.action == "answer":
        ep.done, ep.termination, ep.answer = True, ANSWERED, turn.content
        if not toks or toks[-1] != eos:
            ep.add("eos", [eos])  # finished trajectories end with EOS (TRL counts others as truncated)
    else:
        ep.done, ep.termination = True, turn.reason


def start_episodes(env: Environment, jobs: list[tuple[str, int, int]], grid: Iterable[int] | None = None) -> list[Episode]:
    """Fresh episodes for ``jobs`` = [(problem_id, sample, budget)], plus the T = 0 fork when 0 is on the grid."""
    grid_set = set(grid or ())
    out = []
    for pid, sample, budget in jobs:
        ep = Episode(pid, sample, budget, [])
        ep.add("prompt", env.prompt_ids(pid))
        if budget == 0:
            ep.add("notice", env.notice_ids)
        elif 0 in grid_set:
            f = ep.fork(0)
            f.add("notice", env.notice_ids)
            out.append(f)
        out.append(ep)
    return out


def continue_episodes(backend, env: Environment, active: list[Episode], cfg: SamplingConfig,
                      grid: Iterable[int] | None = None, progress=None) -> list[Episode]:
    """Advance episodes turn by turn until all have ended; forks at grid budgets join the batch.

    The backend keeps one row per live episode (``start`` / ``decode`` / ``update``, see passkt.backends), so a
    caching backend encodes every token once; a fork continues its parent's row.
    """
    grid_set = set(grid or ())
    finished: list[Episode] = []
    active = list(active)
    state = backend.start([e.ids for e in active])
    rows = list(range(len(active)))  # the backend row of each active episode
    while active:
        keep, nxt = [], []
        for e, r in zip(active, rows):
            if len(e.ids) >= cfg.max_total_tokens:
                e.done, e.termination = True, "context_overflow"
                finished.append(e)
                if progress is not None:
                    progress.update(1)
            else:
                keep.append(r)
                nxt.append(e)
        if len(nxt) < len(active):
            state = backend.update(state, keep, [e.ids for e in nxt])
            active, rows = nxt, list(range(len(nxt)))
        if not active:
            break
        gens = backend.decode(state, cfg.max_turn_tokens, cfg.temperature, cfg.top_p)
        spawned, keep, nxt = [], [], []
        for r, (ep, g) in enumerate(zip(active, gens)):
            _model_turn(env, ep, g.token_ids, g.hit_limit)
            if not ep.done and ep.queries:
                ep.add("information", env.info_ids(ep.problem_id, ep.queries[-1]))
                s = len(ep.queries)
                if s == ep.budget:
                    ep.add("notice", env.notice_ids)
                elif s in grid_set:
                    f = ep.fork(s)
                    f.add("notice", env.notice_ids)
                    spawned.append((r, f))
            if ep.done:
                finished.append(ep)
                if progress is not None:
                    progress.update(1)
            else:
                keep.append(r)
                nxt.append(ep)
        if nxt:  # continuing episodes get their observations
            state = backend.update(state, keep, [e.ids for e in nxt])
        if spawned:  # then forks copy their parent's row (observation included) and add the notice
            at = {r: j for j, r in enumerate(keep)}
            state = backend.update(state, list(range(len(nxt))) + [at[r] for r, _ in spawned],
                                   [e.ids for e in nxt] + [f.ids for _, f in spawned])
            nxt += [f for _, f in spawned]
        active = nxt
        rows = list(range(len(active)))
    return finished


def run_episodes(backend, env: Environment, jobs: list[tuple[str, int, int]], cfg: SamplingConfig,
                 grid: Iterable[int] | None = None, progress=None, *, workers: int = 1,
                 generator=None) -> list[Episode]:
    """Run ``jobs`` = [(problem_id, sample, budget)] to completion; returns every episode incl. forks.

    With ``grid``, each job's budget is T_max and forks are spawned at the other grid budgets. Jobs run in
    equal batches of at most ``backend.batch_size`` (all at once for backends without one). Each batch samples
    from its own generator, seeded from ``generator`` (torch's global one if None), so the episodes do not depend
    on ``workers``: with more than one, batches run in parallel threads on clones of the backend.
    """
    grid = list(grid) if grid is not None else None
    size = getattr(backend, "batch_size", None) or max(1, len(jobs))
    n_batches = -(-len(jobs) // size)
    bounds = [len(jobs) * i // n_batches for i in range(n_batches + 1)]
    batches = [jobs[a:b] for a, b in zip(bounds, bounds[1:])]
    seeds = batch_seeds(len(batches), generator) if hasattr(backend, "generator") else [None] * len(batches)

    def run(i: int, be) -> list[Episode]:
        if seeds[i] is not None:
            before, be.generator = be.generator, _generator(seeds[i])
        try:
            return continue_episodes(be, env, start_episodes(env, batches[i], grid), cfg, grid, progress)
        finally:
            if seeds[i] is not None:
                be.generator = before

    parts = parallel_map(run, range(len(batches)), backend, workers)
    return [e for part in parts for e in part]


def batch_seeds(n: int, generator=None) -> list[int]:
    import torch

    return torch.randint(0, 2**62, (n,), generator=generator).tolist()


def _generator(seed: int):
    import torch

    return torch.Generator().manual_seed(int(seed))


def parallel_map(fn, items, backend, workers: int = 1) -> list:
    """``[fn(item, backend) for item in items]``, on up to ``workers`` threads when the backend can ``clone``.

    Each thread gets its own clone (own batch state and generator) and torch runs one thread per operation
    meanwhile: on a few CPU cores, two sampling loops overlapping each other's Python and bookkeeping beat one
    loop whose operations are split over the cores (bench/bench_rollout.py).
    """
    items = list(items)
    if workers <= 1 or len(items) <= 1 or not hasattr(backend, "clone"):
        return [fn(it, backend) for it in items]
    from concurrent.futures import ThreadPoolExecutor

    import torch

    local = threading.local()

    def call(it):
        if not hasattr(local, "backend"):
            local.backend = backend.clone()
        return fn(it, local.backend)

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with ThreadPoolExecutor(max_workers=min(workers, len(items))) as pool:
            return list(pool.map(call, items))
    finally:
        torch.set_num_threads(threads)


def grid_records(episodes: list[Episode], grid: list[int]) -> dict[tuple[str, int, int], Episode]:
    """Pick, for every (problem, sample, T in grid), the episode that represents budget T."""
    by_key: dict[tuple[str, int], list[Episode]] = {}
    for e in episodes:
        by_key.setdefault((e.problem_id, e.sample), []).append(e)
    out = {}
    for (pid, s), eps in by_key.items():
        main = next((e for e in eps if not e.is_fork), None)
        forks = {e.budget: e for e in eps if e.is_fork}
        for T in grid:
            ep = forks.get(T)
            if ep is None:
                if main is None or (main.budget != T and len(main.queries) >= T):
                    raise RuntimeError(f"no episode for problem {pid} sample {s} at T={T}")
                ep = main
            out[(pid, s, T)] = ep
    return out


def to_record(env: Environment, ep: Episode, T: int, policy: str, temperature: float, seed: int) -> dict:
    """One trajectory row: identity, typed segments with token offsets and their exact text, outcome."""
    p = env.problems[ep.problem_id]
    score = score_answer(ep.answer, p) if ep.termination == ANSWERED else {"correct": False, "f1": 0.0}
    seg_text = [env.tok.decode(ep.ids[a:b]) for _, a, b in ep.segments]
    return {
        "problem_id": ep.problem_id, "category": p["category"], "policy": policy, "T": T,
        "temperature": float(temperature), "sample": ep.sample, "seed": seed,
        "token_ids": list(ep.ids),
        "seg_type": [k for k, _, _ in ep.segments], "seg_start": [a for _, a, _ in ep.segments],
        "seg_end": [b for _, _, b in ep.segments], "seg_text": seg_text,
        "searches": len(ep.queries), "queries": list(ep.queries), "answer": ep.answer,
        "correct": bool(score["correct"]), "f1": float(score["f1"]),
        "termination": ep.termination, "valid": ep.termination == ANSWERED,
        "n_tokens": len(ep.ids), "n_generated": ep.generated,
    }


# ---------------------------------------------------------------------------------------------------------
# Sharded, resumable evaluation runs
# ---------------------------------------------------------------------------------------------------------

def shard_seed(seed: int, policy: str, temperature: float, shard: int) -> int:
    return (seed * 1_000_003 + zlib.crc32(policy.encode()) + int(round(temperature * 1000)) * 7919 + shard * 104_729) % 2**31


def fingerprint(obj) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:16]


def engine_version() -> str:
    """A hash of the engine's source (this module and the backends): new engine code never resumes old shards,
    because the same seed draws different samples through a different loop."""
    from passkt import backends

    h = hashlib.sha256()
    for mod in (__file__, backends.__file__):
        h.update(Path(mod).read_bytes())
    return h.hexdigest()[:16]


def prepare_dir(out_dir: Path, fp: str) -> None:
    """Keep finished shards only if they were written with the same settings; otherwise start clean."""
    out_dir.mkdir(parents=True, exist_ok=True)
    fp_file = out_dir / "fingerprint.json"
    if fp_file.exists() and json.loads(fp_file.read_text()).get("fingerprint") != fp:
        for f in out_dir.glob("shard-*.parquet"):
            f.unlink()
    fp_file.write_text(json.dumps({"fingerprint": fp}) + "\n")


def write_atomic_parquet(rows: list[dict], path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    tmp = path.with_suffix(f".tmp{os.getpid()}")
    pq.write_table(pa.Table.from_pylist(rows), tmp)
    os.replace(tmp, path)


def sample_policy(backend, env: Environment, problems: list[dict], *, policy: str, out_dir: str | Path, n: int,
                  grid: list[int], temperatures: list[float], cfg: SamplingConfig, seed: int,
                  math_grid: list[int] = (0,), problems_per_shard: int = 8, mode: str = "fork",
                  desc: str | None = None, settings: dict | None = None, workers: int = 1) -> dict:
    """Sample ``n`` episodes per problem at every temperature and depth budget; resumable by shard.

    Math problems are evaluated on ``math_grid`` (T = 0 only in the paper). ``mode='separate'`` runs each T
    independently instead of forking (same distribution; used to check the fork and for benchmarks). Each shard
    samples from its own seed, so ``workers`` > 1 (shards in parallel threads, see :func:`parallel_map`) writes
    the same shards as one worker. Returns throughput numbers for run metadata (``seconds``: wall time).
    """
    import torch
    from tqdm.auto import tqdm

    out_dir = Path(out_dir)
    fp = fingerprint({"policy": policy, "n": n, "grid": grid, "temps": temperatures, "cfg": cfg.__dict__,
                      "seed": seed, "math_grid": list(math_grid), "pps": problems_per_shard, "mode": mode,
                      "ids": [p["id"] for p in problems], "settings": settings, "engine": engine_version(),
                      "backend": type(backend).__name__})
    prepare_dir(out_dir, fp)
    groups = {}
    for p in problems:
        groups.setdefault("math" if p["category"] == "math" else "tool", []).append(p)
    shards = []
    for temp in temperatures:
        for gname in ("tool", "math"):
            ps = groups.get(gname, [])
            g = list(math_grid) if gname == "math" else list(grid)
            for i in range(0, len(ps), problems_per_shard):
                shards.append((temp, gname, g, ps[i : i + problems_per_shard]))
    n_eps = sum(len(ps) * n * len(g) for _, _, g, ps in shards)
    stats = {"episodes": 0, "generated_tokens": 0, "seconds": 0.0, "shards": len(shards), "resumed_shards": 0,
             "workers": workers}
    bar = tqdm(total=n_eps, desc=desc or f"rollouts {policy}", unit="ep")
    todo = []
    for si, (_, _, g, ps) in enumerate(shards):
        if (out_dir / f"shard-{si:05d}.parquet").exists():
            stats["resumed_shards"] += 1
            bar.update(len(ps) * n * len(g))
        else:
            todo.append(si)
    lock = threading.Lock()
    t_start = time.time()

    def run_shard(si: int, be) -> None:
        """One shard, from its own seed only (so shards may run in any order, in parallel, or be resumed)."""
        temp, _, g, ps = shards[si]
        s_seed = shard_seed(seed, policy, temp, si)
        gen = _generator(s_seed)
        if not hasattr(be, "generator"):  # a backend without its own generator samples from torch's global one
            torch.manual_seed(s_seed)
        scfg = SamplingConfig(**{**cfg.__dict__, "temperature": temp})
        eps: list[Episode] = []
        if mode == "fork" or len(g) == 1:
            tmax = max(g)
            jobs = [(p["id"], s, tmax) for p in ps for s in range(n)]
            eps = run_episodes(be, env, jobs, scfg, grid=g if len(g) > 1 else None, generator=gen)
            chosen = grid_records(eps, g)
        else:
            chosen = {}
            for T in g:
                part = run_episodes(be, env, [(p["id"], s, T) for p in ps for s in range(n)], scfg, generator=gen)
                eps += part
                chosen.update({(e.problem_id, e.sample, T): e for e in part})
        rows = [to_record(env, e, T, policy, temp, s_seed) for (pid, s, T), e in sorted(chosen.items())]
        write_atomic_parquet(rows, out_dir / f"shard-{si:05d}.parquet")
        with lock:
            stats["episodes"] += len(rows)
            stats["generated_tokens"] += sum(e.generated - e.inherited for e in eps)
            stats["seconds"] = time.time() - t_start
            bar.update(len(rows))
            bar.set_postfix(ep_s=f"{stats['episodes'] / max(stats['seconds'], 1e-9):.1f}",
                            tok_s=f"{stats['generated_tokens'] / max(stats['seconds'], 1e-9):.0f}")

    parallel_map(run_shard, todo, backend, workers)
    bar.close()
    return stats


def load_rollouts(out_dir: str | Path, columns: list[str] | None = None):
    """All shards of one policy as a pandas DataFrame."""
    import pandas as pd

    files = sorted(Path(out_dir).glob("shard-*.parquet"))
    if not files:
        raise FileNotFoundError(f"no rollout shards in {out_dir}")
    return pd.concat([pd.read_parquet(f, columns=columns) for f in files], ignore_index=True)
