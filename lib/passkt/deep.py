"""Beyond the paper: the capability boundary at depth -- deep sampling of boundary problems and the boundary mass.

A problem one policy solved at least once in n rollouts and the other never did is a *boundary candidate*. With
n = 16 (tiny) or 64 (paper), "never" may only mean "rarely". Two complementary looks:

- **Deep sampling** (:func:`deep_sample`, stage 06): the policy that never solved a candidate draws up to
  ``n_deep`` more rollouts, in rounds of at least ``chunk`` per open problem (all open problems batched together), and
  stops at the first success. Each round samples from its own stream, seeded from (seed, ``DEEP_TAG``, policy,
  round), distinct from the evaluation shards' streams, and its outcome is saved atomically with a fingerprint of
  everything it depends on; a rerun resumes after the last matching round, and files of other code, settings,
  problems or weights are discarded (logged), never reused. Summaries: :func:`passkt.stats.deep_sampling_summary`.
- **Boundary mass** (:func:`zibb_fits`, stages 05 and 06): a zero-inflated beta-binomial fit per policy and
  category gives the share of problems with success probability exactly 0 (pi0, with its profile-likelihood
  interval and verdict) and Pass@k extrapolated far beyond n (:func:`passkt.stats.fit_zibb`).
"""

from __future__ import annotations

import json
import time
import zlib
from pathlib import Path

import numpy as np
import pandas as pd

from passkt import integrity, rollout, stats
from passkt.scoring import score_answer

DEEP_TAG = "deep-boundary"  # mixed into every deep-sampling seed: never the evaluation shards' streams
K_FAR = 1024  # the far k of the boundary-mass extrapolation (Pass@1024, as Yue et al.'s largest k)
PAIRS = (("rl", "base"), ("sft", "base"))  # (a, b) pairs deep-sampled in both directions


# ------------------------------------------------------------------------------------------- candidates


def candidates(counts: pd.DataFrame, pairs, T: int, temperature: float,
               categories=("bridge", "comparison")) -> pd.DataFrame:
    """:func:`passkt.stats.boundary_candidates` for every pair (a, b), both directions, in ``categories``;
    a ``pair`` column ("a_vs_b") first. "gained": a solved, b never (b is deep-sampled); "lost": the reverse."""
    frames = []
    for a, b in pairs:
        x = stats.boundary_candidates(counts, a, b, T, temperature)
        x = x[x["category"].isin(categories)]
        x.insert(0, "pair", f"{a}_vs_{b}")
        frames.append(x)
    return pd.concat(frames, ignore_index=True)


# ------------------------------------------------------------------------------------------- the sampler


def round_seed(seed: int, policy: str, rnd: int) -> int:
    """The seed of deep-sampling round ``rnd`` for ``policy``: a function of (seed, DEEP_TAG, policy, round)."""
    return (int(seed) * 1_000_003 + zlib.crc32(f"{DEEP_TAG}/{policy}/{int(rnd)}".encode())) % 2**62


def _log(msg: str) -> None:
    print(f"[deep] {msg}", flush=True)


def round_draws(n_problems: int, n_open: int, used: int, n_deep: int, chunk: int) -> int:
    """Draws per open problem in the next round: ``chunk``, or more when few problems are still open, so every round
    samples about chunk x n_problems episodes (one batch costs about as much whatever its size on a small model);
    never beyond n_deep in all. Every open problem has used the same number of draws, so one number serves all."""
    return int(min(int(n_deep) - int(used), max(int(chunk), -(-int(chunk) * int(n_problems) // max(int(n_open), 1)))))


def _load_rounds(out_dir: Path, fp: str, pids: list[str], n_deep: int, chunk: int) -> tuple[dict, list[str], int, int]:
    """Replay the saved rounds of fingerprint ``fp`` in order; delete every file from the first that does not fit.
    Returns (first success so far, open problems, rounds done, draws used per open problem)."""
    first: dict[str, int | None] = {p: None for p in pids}
    open_, done, used = list(pids), 0, 0
    files = sorted(out_dir.glob("round-*.json"))
    for i, f in enumerate(files):
        try:
            rec = json.loads(f.read_text())
        except ValueError:
            rec = {}
        m = round_draws(len(pids), len(open_), used, n_deep, chunk) if open_ and used < n_deep else 0
        why = ("written with other code, settings, problems or weights" if rec.get("fingerprint") != fp
               else "out of sequence" if (rec.get("round") != done or rec.get("open") != open_ or m == 0
                                          or rec.get("draws") != [used, used + m])
               else None)
        if why is not None:
            _log(f"discarding {len(files) - i} round file(s) in {out_dir} from {f.name}: {why}")
            for g in files[i:]:
                g.unlink()
            break
        hits = {p: int(d) for p, d in rec["first"].items()}
        first.update(hits)
        open_ = [p for p in open_ if p not in hits]
        done, used = done + 1, used + m
    return first, open_, done, used


def deep_sample(backend, env: rollout.Environment, problem_ids, *, policy: str, T: int, cfg: rollout.SamplingConfig,
                seed: int, n_deep: int, chunk: int, out_dir: str | Path, settings: dict | None = None,
                workers: int = 1) -> dict:
    """Sample ``policy`` on each problem at budget T until its first success, at most ``n_deep`` draws per problem.

    Returns {"first": problem_id -> 1-based deep draw of the first success (None: all n_deep draws failed),
    "draws": problem_id -> draws used, "episodes": episodes sampled by this call, "seconds", "resumed_rounds"}.
    Each round gives every still-open problem its next :func:`round_draws` draws (``chunk`` at first, more once
    few problems are open), all open problems in one :func:`passkt.rollout.run_episodes` call on the generator
    of :func:`round_seed`; a problem's first success is
    its lowest successful draw in the first round that has one (draws are independent, so this is the
    geometric outcome of drawing one at a time). Correct = answered and exact match under the current scorer.
    Round files (``round-0000.json`` ...) carry a fingerprint of the model (``settings``), the problems, T, the
    sampling config, seed, n_deep, chunk, the engine's and scorer's code and this module's source.
    """
    import torch
    from tqdm.auto import tqdm

    if int(n_deep) != n_deep or n_deep < 1 or int(chunk) != chunk or chunk < 1:
        raise ValueError(f"deep_sample: n_deep and chunk must be positive integers, got {n_deep}, {chunk}")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    for f in out_dir.glob("round-*.json.tmp*"):
        f.unlink()
    pids = list(dict.fromkeys(problem_ids))
    why = {"policy": policy, "T": int(T), "cfg": dict(cfg.__dict__), "seed": int(seed), "n_deep": int(n_deep),
           "chunk": int(chunk), "problems": integrity.fingerprint([env.problems[p] for p in pids]),
           "settings": settings, "engine": rollout.engine_version()["hash"], "scorer": integrity.scorer_version(),
           "deep": integrity.digest(Path(__file__)), "search_k": env.search_k, "backend": type(backend).__name__,
           "batch_size": getattr(backend, "batch_size", None), "device": str(getattr(backend, "device", "cpu"))}
    fp = integrity.fingerprint(why)
    first, open_, done, used = _load_rounds(out_dir, fp, pids, n_deep, chunk)
    resumed, episodes, t0 = done, 0, time.time()
    bar = tqdm(total=int(n_deep), initial=used, desc=f"deep sampling {policy}", unit="draw")
    while used < int(n_deep) and open_:
        lo, m = used, round_draws(len(pids), len(open_), used, n_deep, chunk)
        jobs = [(p, lo + j, int(T)) for p in open_ for j in range(m)]
        s = round_seed(seed, policy, done)
        if not hasattr(backend, "generator"):  # a backend without its own generator samples from torch's global one
            torch.manual_seed(s % 2**63)
        if hasattr(backend, "reseed"):  # vLLM: per-request seeds from the round's seed (a resumed round redraws)
            backend.reseed(s % 2**31)
        eps = rollout.run_episodes(backend, env, jobs, cfg, generator=torch.Generator().manual_seed(s),
                                   workers=workers)
        hits: dict[str, int] = {}
        for e in eps:
            if e.termination == rollout.ANSWERED and score_answer(e.answer, env.problems[e.problem_id])["correct"]:
                hits[e.problem_id] = min(hits.get(e.problem_id, e.sample + 1), e.sample + 1)
        integrity.write_json_atomic({"fingerprint": fp, "round": done, "open": open_, "draws": [lo, lo + m],
                                     "first": hits}, out_dir / f"round-{done:04d}.json")
        episodes += len(eps)
        first.update(hits)
        open_ = [p for p in open_ if p not in hits]
        done, used = done + 1, used + m
        bar.update(m)
        bar.set_postfix(open=len(open_))
    bar.close()
    draws = {p: (first[p] if first[p] is not None else used) for p in pids}
    return {"first": first, "draws": draws, "episodes": episodes, "seconds": time.time() - t0,
            "resumed_rounds": resumed}


def deep_boundary(cands: pd.DataFrame, model_dirs: dict, problems: list[dict], sampling: dict, *, T: int,
                  temperature: float, seed: int, n_deep: int, chunk: int, out_dir: str | Path) -> dict:
    """Deep-sample every failing policy (column ``other`` of :func:`candidates`) on its candidate problems.

    Each (policy, problem) is sampled once, whichever pairs share it (base is the failing policy of every "gained"
    row). model_dirs: policy -> saved model folder. Output: out_dir/<policy>/round-*.json. Returns
    {policy: :func:`deep_sample`'s result}. With vLLM each policy samples in its own process (one engine each).
    """
    from passkt.sampling import SamplingSettings, in_own_process, isolate

    s = SamplingSettings.from_dict(sampling)
    by_id = {p["id"]: p for p in problems}
    out = {}
    for pol, g in cands.groupby("other", sort=True):
        pids = sorted(set(g["problem_id"]))
        args = (pol, str(model_dirs[pol]), [by_id[p] for p in pids], sampling)
        kw = dict(T=T, temperature=temperature, seed=seed, n_deep=n_deep, chunk=chunk, out_dir=str(out_dir))
        out[pol] = in_own_process(_deep_policy, *args, **kw) if isolate(s, None) else _deep_policy(*args, **kw)
        _log(f"{pol}: {len(pids)} problems, {out[pol]['episodes']} episodes in {out[pol]['seconds']:.1f} s "
             f"({out[pol]['resumed_rounds']} rounds resumed), "
             f"{sum(v is not None for v in out[pol]['first'].values())} solved at depth")
    return out


def _deep_policy(pol: str, model_dir: str, problems: list[dict], sampling: dict, *, T: int, temperature: float,
                 seed: int, n_deep: int, chunk: int, out_dir: str) -> dict:
    """One failing policy's deep sampling (:func:`deep_sample`) with its own backend, torn down at the end."""
    from passkt import models
    from passkt.sampling import SamplingSettings, close_backend, make_backend

    s = SamplingSettings.from_dict(sampling)
    model, tok = models.load_policy(model_dir, device=s.device) if s.backend == "hf" else (None, None)
    if tok is None:
        from transformers import AutoTokenizer

        tok = AutoTokenizer.from_pretrained(model_dir)
    env = rollout.Environment(problems, tok, search_k=s.search_k)
    # a backend seeded once (vLLM) gets a deep-sampling seed too, never the evaluation's
    backend = make_backend(model, tok, s, model_dir, round_seed(seed, pol, -1) % 2**31)
    try:
        return deep_sample(backend, env, [p["id"] for p in problems], policy=pol, T=T, cfg=s.config(temperature),
                           seed=seed, n_deep=n_deep, chunk=chunk, out_dir=Path(out_dir) / pol,
                           settings={"model": models.model_fingerprint(model_dir)}, workers=s.workers)
    finally:
        close_backend(backend)


def deep_summary(cands: pd.DataFrame, results: dict, n_deep: int, ci: float) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Per problem and per (pair, direction, category): :func:`passkt.stats.deep_sampling_summary` for each pair."""
    pers, summs = [], []
    for pair, g in cands.groupby("pair", sort=False):
        g = g.drop(columns="pair").reset_index(drop=True)
        oc = {r.problem_id: results[r.other]["first"][r.problem_id] for r in g.itertuples()
              if r.problem_id in results.get(r.other, {}).get("first", {})}
        per, summ = stats.deep_sampling_summary(g, oc, n_deep, conf=ci)
        pers.append(per.assign(pair=pair))
        summs.append(summ.assign(pair=pair))
    if not pers:  # no candidate at all: the per-problem columns all the same
        per, summ = stats.deep_sampling_summary(cands.drop(columns="pair"), {}, n_deep, conf=ci)
        pers, summs = [per.assign(pair=pd.Series(dtype=str))], [summ]
    return pd.concat(pers, ignore_index=True), pd.concat(summs, ignore_index=True)


def deep_flat(summ: pd.DataFrame, pairs, n_deep: int, categories=("bridge", "comparison")) -> dict:
    """Flat metrics ``deep.<category>.<a>_vs_<b>.<gained|lost>.<key>``: candidates, sampled, solved_at_depth, never
    (always, 0 where a cell has no candidate); solved_share, ci_low, ci_high, median_first_success,
    max_p_high_never where defined; and ``deep.n_deep``."""
    out: dict[str, float] = {"deep.n_deep": int(n_deep)}
    idx = {(r.pair, r.direction, r.category): r for r in summ.itertuples()} if len(summ) else {}
    for a, b in pairs:
        for direction in ("gained", "lost"):
            for cat in categories:
                key = f"deep.{cat}.{a}_vs_{b}.{direction}"
                r = idx.get((f"{a}_vs_{b}", direction, cat))
                out[f"{key}.candidates"] = int(r.n_candidates) if r is not None else 0
                out[f"{key}.sampled"] = int(r.n_sampled) if r is not None else 0
                out[f"{key}.solved_at_depth"] = int(r.n_solved_at_depth) if r is not None else 0
                out[f"{key}.never"] = int(r.n_never) if r is not None else 0
                if r is None:
                    continue
                for col in ("solved_share", "ci_low", "ci_high", "median_first_success", "max_p_high_never"):
                    v = float(getattr(r, col))
                    if np.isfinite(v):
                        out[f"{key}.{col}"] = v
    return out


# ------------------------------------------------------------------------------------------- boundary mass


def zibb_fits(counts: pd.DataFrame, policies, T_eval: int, temperature: float, ci: float) -> dict:
    """{(policy, category): :class:`passkt.stats.ZIBBFit`} on the per-problem counts at T_eval (math at T = 0) and
    ``temperature``."""
    out = {}
    for (pol, cat), g in counts[counts["policy"].isin(policies)].groupby(["policy", "category"], sort=True):
        T = 0 if cat == "math" else T_eval
        sel = g[(g["T"] == T).to_numpy() & np.isclose(g["temperature"], temperature)]
        if sel["problem_id"].duplicated().any():  # e.g. several training replicates: fit one of them
            raise ValueError(f"zibb_fits: policy {pol!r} ({cat}) has several rows per problem; pass one replicate")
        if len(sel):
            out[(pol, cat)] = stats.fit_zibb(sel["n"].to_numpy(), sel["c"].to_numpy(), ci=ci)
    return out


def zibb_table(fits: dict, T_eval: int, k_far: int = K_FAR) -> pd.DataFrame:
    """One row per fit: pi0 (NaN unless identified), its interval and verdict, and Pass@k_far extrapolated (the
    point at the MLE where identified; the range over the pi0 interval always)."""
    rows = []
    for (pol, cat), f in sorted(fits.items(), key=lambda kv: (kv[0][1], kv[0][0])):
        lo, hi = f.pass_at_k_range([k_far])
        rows.append({"category": cat, "policy": pol, "T": 0 if cat == "math" else T_eval, "n_problems": f.n_problems,
                     "zero_share": f.zero_share, "pi0": f.pi0, "pi0_mle": f.pi0_mle, "pi0_ci_low": f.pi0_ci[0],
                     "pi0_ci_high": f.pi0_ci[1], "identified": bool(f.identified), "verdict": f.verdict,
                     "p_pi0": f.p_pi0, "fit_gap": f.fit_gap, "k_far": int(k_far),
                     "pass_far": float(f.pass_at_k([k_far])[0]), "pass_far_low": float(lo[0]),
                     "pass_far_high": float(hi[0]), "note": f.note})
    return pd.DataFrame(rows)


def zibb_flat(table: pd.DataFrame) -> dict:
    """Flat metrics ``zibb.<category>.<policy>.<key>``: pi0 (identified only), pi0_mle, pi0_ci_low, pi0_ci_high,
    identified (1/0), excludes_zero (1/0: the interval excludes 0, verdict "identified"), zero_share, fit_gap,
    pass<k> (identified only), pass<k>_low, pass<k>_high (the range compatible with the data)."""
    out: dict[str, float] = {}
    for r in table.itertuples():
        key, k = f"zibb.{r.category}.{r.policy}", int(r.k_far)
        vals = {"pi0_mle": r.pi0_mle, "pi0_ci_low": r.pi0_ci_low, "pi0_ci_high": r.pi0_ci_high,
                "identified": int(r.identified), "excludes_zero": int(r.verdict == "identified"),
                "zero_share": r.zero_share, "fit_gap": r.fit_gap, f"pass{k}_low": r.pass_far_low,
                f"pass{k}_high": r.pass_far_high}
        if r.identified:
            vals.update({"pi0": r.pi0, f"pass{k}": r.pass_far})
        out.update({f"{key}.{n}": (float(v) if not isinstance(v, int) else v) for n, v in vals.items()
                    if isinstance(v, int) or np.isfinite(v)})
    return out


def zibb_curves(fits: dict, category: str, ks) -> pd.DataFrame:
    """Extrapolated Pass@k per policy for ``category``: pass (NaN unless identified), low/high (the range)."""
    frames = []
    for (pol, cat), f in sorted(fits.items()):
        if cat != category:
            continue
        lo, hi = f.pass_at_k_range(ks)
        frames.append(pd.DataFrame({"policy": pol, "k": np.asarray(ks), "pass": f.pass_at_k(ks), "low": lo,
                                    "high": hi, "identified": f.identified}))
    return pd.concat(frames, ignore_index=True)


def boundary_depth_data(counts: pd.DataFrame, fits: dict, deep_per: pd.DataFrame, n_deep: int,
                        category: str = "bridge", k_far: int = K_FAR) -> pd.DataFrame:
    """The numbers of :func:`passkt.plotting_audit.boundary_depth` for ``category``: per policy, Pass@k measured at
    k = 1, 2, 4, ..., n (kind "measured"); the ZIBB extrapolation from n to k_far ("zibb": pass at the MLE, NaN
    unless identified; low / high the range over the pi0 interval); and, for a policy deep-sampled on its
    candidates, the share of problems solved at least once within n or at depth ("deep_lower_bound", at
    k = n + n_deep: the other problems got no extra draws, so it bounds the share from below)."""
    from passkt.evaluate import k_grid
    from passkt.metrics import pass_at_k

    sub = counts[counts.category == category]
    n = int(sub.n.min())
    ks_far = np.unique(np.geomspace(n, k_far, 16).round().astype(int))
    rows = []
    for pol in sorted(set(sub.policy)):
        g = sub[sub.policy == pol]
        for k in k_grid(n):
            rows.append({"policy": pol, "kind": "measured", "k": k, "pass": float(np.mean(pass_at_k(
                g.n.to_numpy(), g.c.to_numpy(), k))), "low": np.nan, "high": np.nan, "identified": np.nan})
        f = fits.get((pol, category))
        if f is not None:
            lo, hi = f.pass_at_k_range(ks_far)
            rows += [{"policy": pol, "kind": "zibb", "k": int(k), "pass": m, "low": a, "high": b,
                      "identified": float(f.identified)} for k, m, a, b in zip(ks_far, f.pass_at_k(ks_far), lo, hi)]
        d = deep_per[(deep_per.other == pol) & (deep_per.category == category)] if len(deep_per) else deep_per
        if len(d):
            solved = set(g.problem_id[g.c > 0]) | set(d.problem_id[d.solved_at_depth.astype(bool)])
            rows.append({"policy": pol, "kind": "deep_lower_bound", "k": n + int(n_deep),
                         "pass": len(solved) / g.problem_id.nunique(), "low": np.nan, "high": np.nan,
                         "identified": np.nan})
    return pd.DataFrame(rows)
