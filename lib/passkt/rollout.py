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

import json
import os
import threading
import time
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable

from passkt import integrity
from passkt.backends import Generation
from passkt.detok import decode_offsets
from passkt.integrity import fingerprint
from passkt.protocol import ANSWERED, NOTICE, build_prompt, information, parse_turn, split_turn
from passkt.search import SearchTool, format_results


@dataclass(frozen=True)
class SamplingConfig:
    temperature: float = 1.0
    top_p: float = 1.0
    max_turn_tokens: int = 64
    max_total_tokens: int = 1024
    search_k: int = 2  # paragraphs returned per search
    math_max_turn_tokens: int = 0  # per-turn limit of math problems (0: max_turn_tokens); worked solutions run long

    def turn_limit(self, category: str) -> int:
        return self.math_max_turn_tokens if category == "math" and self.math_max_turn_tokens > 0 \
            else self.max_turn_tokens


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

    def decode_offsets(self, ids: list[int]) -> tuple[str, list[int]]:
        """The decoded text of ``ids`` and each token's start in it (:func:`passkt.detok.decode_offsets`)."""
        return decode_offsets(self.tok, ids, self._tokstr)


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
    logps: dict = field(default_factory=dict)  # context position -> sampling log-prob of a model token (vLLM)

    def add(self, kind: str, ids: list[int]) -> None:
        if ids:
            self.segments.append([kind, len(self.ids), len(self.ids) + len(ids)])
            self.ids.extend(ids)

    def fork(self, budget: int) -> "Episode":
        return Episode(self.problem_id, self.sample, budget, list(self.ids), [list(s) for s in self.segments],
                       list(self.queries), generated=self.generated, inherited=self.generated, is_fork=True,
                       logps=dict(self.logps))


def _model_turn(env: Environment, ep: Episode, toks: list[int], hit_limit: bool, logps: list | None = None) -> None:
    """Append one generated turn to the episode, split into typed segments, and act on it."""
    eos = env.eos_id
    if logps is not None:  # the turn's tokens are appended in order from the current end of the context
        ep.logps.update({len(ep.ids) + i: float(lp) for i, lp in enumerate(logps[: len(toks)])})
    body = toks[:-1] if toks and toks[-1] == eos else toks
    # parse the turn decoded as a whole (a character may span tokens); a token belongs to the segment holding
    # its first character, and the last segment also takes tokens that write no text
    text, starts = env.decode_offsets(body)
    turn = parse_turn(text, hit_limit=hit_limit, searches_left=len(ep.queries) < ep.budget)
    spans = split_turn(text) or [("reasoning", 0, 0)]
    j = 0
    for kind, _, b in spans:
        k0 = j
        while j < len(body) and (starts[j] < b or b == len(text)):
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
        limits = [cfg.turn_limit(env.problems[e.problem_id]["category"]) for e in active]
        # one limit per row where the engine takes them (vLLM); else the largest, and rows under a lower one are cut
        per_row = getattr(backend, "row_limits", False) and len(set(limits)) > 1
        gens = backend.decode(state, limits if per_row else max(limits), cfg.temperature, cfg.top_p)
        spawned, keep, nxt = [], [], []
        for r, (ep, g) in enumerate(zip(active, gens)):
            if len(g.token_ids) > limits[r]:  # a row under a lower limit (mixed batch): cut where it would stop
                g = Generation(g.token_ids[: limits[r]], hit_limit=True,
                               logprobs=None if g.logprobs is None else g.logprobs[: limits[r]])
            _model_turn(env, ep, g.token_ids, g.hit_limit, g.logprobs)
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
            before, be.generator = be.generator, _generator(seeds[i], getattr(be, "device", "cpu"))
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


def _generator(seed: int, device="cpu"):
    """A seeded generator on ``device`` (a backend on a GPU samples with a generator on that GPU)."""
    import torch

    return torch.Generator(device=device).manual_seed(int(seed))


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
    """One trajectory row: identity, typed segments with token offsets and their exact text, what the policy wrote.

    No score: correctness is derived from ``answer`` by the current scorer whenever rollouts are read
    (:func:`passkt.evaluate.load_scored`), so a scorer change never needs a resample and never reads a stale score.
    """
    p = env.problems[ep.problem_id]
    seg_text = [env.tok.decode(ep.ids[a:b]) for _, a, b in ep.segments]
    return {
        "problem_id": ep.problem_id, "category": p["category"], "policy": policy, "T": T,
        "temperature": float(temperature), "sample": ep.sample, "seed": seed,
        "token_ids": list(ep.ids),
        "seg_type": [k for k, _, _ in ep.segments], "seg_start": [a for _, a, _ in ep.segments],
        "seg_end": [b for _, _, b in ep.segments], "seg_text": seg_text,
        "searches": len(ep.queries), "queries": list(ep.queries), "answer": ep.answer,
        "termination": ep.termination, "valid": ep.termination == ANSWERED,
        "n_tokens": len(ep.ids), "n_generated": ep.generated,
    }


# ---------------------------------------------------------------------------------------------------------
# Sharded, resumable evaluation runs
# ---------------------------------------------------------------------------------------------------------

def shard_seed(seed: int, policy: str, temperature: float, shard: int) -> int:
    return (seed * 1_000_003 + zlib.crc32(policy.encode()) + int(round(temperature * 1000)) * 7919 + shard * 104_729) % 2**31


def engine_version() -> dict:
    """Digest of the sampling path's source: every ``passkt`` module in the import closure of
    :data:`passkt.integrity.SAMPLING_ROOTS` (derived, not listed). New code never resumes old shards, because the
    same seed draws different samples through a different loop. The scorer is not in that closure by design."""
    return integrity.code_version(integrity.SAMPLING_ROOTS)


def _versions() -> dict:
    """Versions of the packages that draw the samples (same seed, other version: possibly other samples)."""
    from importlib.metadata import PackageNotFoundError, version

    out = {}
    for pkg in ("torch", "transformers", "vllm"):
        try:
            out[pkg] = version(pkg)
        except PackageNotFoundError:
            pass
    return out


def _log(msg: str) -> None:
    print(f"[rollouts] {msg}", flush=True)


def prepare_dir(out_dir: Path, fp: str, why: dict | None = None) -> None:
    """Keep finished shards only if they were written with the same fingerprint; otherwise start clean.

    Leftover temporary files of a killed writer are removed. A changed fingerprint is logged with the keys that
    changed (``why``: the fingerprinted settings), so a discarded resample is never silent.
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    for f in out_dir.glob("shard-*.tmp*"):
        f.unlink()
    fp_file = out_dir / "fingerprint.json"
    old = {}
    if fp_file.exists():
        try:
            old = json.loads(fp_file.read_text())
        except ValueError:
            old = {"fingerprint": "unreadable"}
    shards = sorted(out_dir.glob("shard-*.parquet"))
    if old.get("fingerprint") != fp and shards:
        changed = sorted(k for k in set(why or {}) | set(old.get("settings", {}))
                         if (why or {}).get(k) != old.get("settings", {}).get(k)) or ["fingerprint file"]
        _log(f"discarding {len(shards)} shards in {out_dir}: written with other {', '.join(map(str, changed))}")
        for f in shards:
            f.unlink()
    (out_dir / MANIFEST).unlink(missing_ok=True)
    integrity.write_json_atomic({"fingerprint": fp, "settings": why or {}}, fp_file)


MANIFEST = "manifest.json"
_META_KEY = b"passkt"


def write_atomic_parquet(rows: list[dict], path: Path, meta: dict | None = None) -> None:
    """Write ``rows`` to ``path`` all or nothing: a temporary file, flushed to disk, then renamed.

    ``meta`` (the shard's fingerprint and row count) goes into the parquet footer, so a shard proves by itself
    which settings wrote it; a file cut short has no footer and fails :func:`shard_problem`.
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pa.Table.from_pylist(rows)
    if meta is not None:
        table = table.replace_schema_metadata({**(table.schema.metadata or {}), _META_KEY: json.dumps(meta).encode()})
    tmp = path.with_name(path.name.replace(".parquet", f".tmp{os.getpid()}"))
    pq.write_table(table, tmp)
    with open(tmp, "rb+") as fh:
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def shard_meta(path: Path) -> dict:
    """The passkt metadata of a shard file; raises ``ValueError`` naming the file if it is unreadable."""
    import pyarrow.parquet as pq

    try:
        md = pq.read_metadata(path)
        raw = (md.metadata or {}).get(_META_KEY)
        meta = json.loads(raw) if raw else {}
    except Exception as e:  # pyarrow raises ArrowInvalid / OSError for a truncated or corrupted file
        raise ValueError(f"unreadable rollout shard {path}: {type(e).__name__}: {e}") from e
    meta["_rows"] = md.num_rows
    return meta


def shard_problem(path: Path, fp: str, rows: int) -> str | None:
    """Why the shard at ``path`` cannot be reused for fingerprint ``fp`` with ``rows`` rows (None if it can)."""
    try:
        meta = shard_meta(path)
    except ValueError as e:
        return str(e)
    if meta.get("fingerprint") != fp:
        return f"fingerprint {meta.get('fingerprint')} != {fp}"
    if meta["_rows"] != rows or meta.get("rows") != rows:
        return f"{meta['_rows']} rows, expected {rows}"
    return None


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
    engine = engine_version()
    # Everything a shard depends on: the problems' content (question, corpus, answer), the sampling code, the
    # settings, and what the caller adds in ``settings`` (the model's weights digest).
    why = {"policy": policy, "n": n, "grid": list(grid), "temps": list(temperatures), "cfg": dict(cfg.__dict__),
           "seed": seed, "math_grid": list(math_grid), "pps": problems_per_shard, "mode": mode,
           "problems": fingerprint(problems), "settings": settings, "engine": engine["hash"],
           "search_k": env.search_k, "backend": type(backend).__name__,
           # batches draw their own seeds and a backend's generator lives on its device: both shape the samples
           "batch_size": getattr(backend, "batch_size", None), "device": str(getattr(backend, "device", "cpu")),
           "versions": _versions()}
    fp = fingerprint(why)
    prepare_dir(out_dir, fp, {**why, "engine_modules": engine["modules"]})
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
        f = out_dir / f"shard-{si:05d}.parquet"
        rows = len(ps) * n * len(g)
        why_not = shard_problem(f, fp, rows) if f.exists() else "missing"
        if why_not is None:
            stats["resumed_shards"] += 1
            bar.update(rows)
            continue
        if why_not != "missing":
            _log(f"resampling {f.name}: {why_not}")
            f.unlink()
        todo.append(si)
    for f in out_dir.glob("shard-*.parquet"):  # shards beyond this run's count (e.g. from a larger problem set)
        if int(f.stem.split("-")[1]) >= len(shards):
            _log(f"removing {f.name}: not a shard of this run ({len(shards)} shards)")
            f.unlink()
    lock = threading.Lock()
    t_start = time.time()

    def run_shard(si: int, be) -> None:
        """One shard, from its own seed only (so shards may run in any order, in parallel, or be resumed)."""
        temp, _, g, ps = shards[si]
        s_seed = shard_seed(seed, policy, temp, si)
        gen = _generator(s_seed)
        if not hasattr(be, "generator"):  # a backend without its own generator samples from torch's global one
            torch.manual_seed(s_seed)
        if hasattr(be, "reseed"):  # vLLM: per-request seeds restart from the shard's seed (a resumed shard redraws)
            be.reseed(s_seed)
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
        write_atomic_parquet(rows, out_dir / f"shard-{si:05d}.parquet", {"fingerprint": fp, "rows": len(rows)})
        with lock:
            stats["episodes"] += len(rows)
            stats["generated_tokens"] += sum(e.generated - e.inherited for e in eps)
            stats["seconds"] = time.time() - t_start
            bar.update(len(rows))
            bar.set_postfix(ep_s=f"{stats['episodes'] / max(stats['seconds'], 1e-9):.1f}",
                            tok_s=f"{stats['generated_tokens'] / max(stats['seconds'], 1e-9):.0f}")

    parallel_map(run_shard, todo, backend, workers)
    bar.close()
    # Written last: a folder without a manifest is an unfinished run, and readers refuse it.
    integrity.write_json_atomic({"fingerprint": fp, "shards": {f"shard-{si:05d}.parquet": len(ps) * n * len(g)
                                                      for si, (_, _, g, ps) in enumerate(shards)}}, out_dir / MANIFEST)
    return stats


def check_rollouts(out_dir: str | Path) -> list[Path]:
    """The shard files of a finished sampling run, after checking them against its manifest.

    Raises ``ValueError`` naming the folder or file when the run is unfinished (no manifest), a shard is missing,
    extra, unreadable, written with another fingerprint or of the wrong length: such a folder is never read.
    """
    d = Path(out_dir)
    files = sorted(d.glob("shard-*.parquet"))
    if not files:
        raise FileNotFoundError(f"no rollout shards in {d}")
    try:
        man = json.loads((d / MANIFEST).read_text())
    except (OSError, ValueError) as e:
        raise ValueError(f"unfinished or damaged sampling run in {d}: no readable {MANIFEST} ({e}); rerun its stage") from e
    names = {f.name for f in files}
    if names != set(man["shards"]):
        missing, extra = sorted(set(man["shards"]) - names), sorted(names - set(man["shards"]))
        raise ValueError(f"rollout shards in {d} do not match {MANIFEST}: missing {missing}, extra {extra}")
    for f in files:
        why = shard_problem(f, man["fingerprint"], man["shards"][f.name])
        if why is not None:
            raise ValueError(f"bad rollout shard {f}: {why}; rerun its stage to resample it")
    return files


SCORE_COLUMNS = ("correct", "f1")


def load_rollouts(out_dir: str | Path, columns: list[str] | None = None):
    """All shards of one finished sampling run as a pandas DataFrame (checked by :func:`check_rollouts`).

    Shards hold what the policy wrote, not scores: ask :func:`passkt.evaluate.load_scored` for ``correct``/``f1``.
    """
    import pandas as pd

    if columns is not None and set(columns) & set(SCORE_COLUMNS):
        raise ValueError(f"rollout shards hold no {sorted(set(columns) & set(SCORE_COLUMNS))}: scores are derived "
                         "by the current scorer, use passkt.evaluate.load_scored(out_dir, problems)")
    files = check_rollouts(out_dir)
    return pd.concat([pd.read_parquet(f, columns=columns) for f in files], ignore_index=True)
