"""Mechanism analyses (stage 06): where does RL's gain come from?

Three analyses at one evaluation point (T_eval, temperature), on rollout frames as written by
``rollout.sample_policy`` (one per policy: "base", "sft", "rl", maybe "rl_bonus"):

1. Perplexity probe (:func:`segment_surprisal`, :func:`perplexity_summary`). The BASE model scores each
   trajectory; next-token negative log-likelihood (nats) is summed per segment kind: "query" = tokens of the
   ``<search>...</search>`` segments, "reasoning" = tokens of the think/stray-text segments and of the
   ``<answer>...</answer>`` segment. Prompt, retrieved information, the notice and EOS are not scored (the
   policy did not write them). Protocol tags are scored unless ``exclude_tags`` (a sensitivity check: tags
   are easy to predict and weigh more in short query segments). The paper scores RL's *successful*
   trajectories: callers pass ``episodes_at(..., correct_only=True)``.
   Mean nats/token of a group = sum of nats / sum of tokens (token-weighted); perplexity = exp(nats/token).
   Tag tokens are always also summed apart (``*_notag_*`` columns), so :func:`surprisal_did` can compare
   reasoning with query tokens without them: a difference in differences, RL's successes minus base's own
   successes, (reasoning - query) nats/token, paired on one resample of problems. The plain reasoning - query
   contrast on RL alone mixes what RL changed with token type (queries copy names from the question).

2. Strategy diversity (:func:`diversity`). An episode's strategy is the tuple of its normalised queries
   (:func:`normalize_query`: lowercase, collapsed whitespace); an episode that never searched has the empty
   strategy (); every episode counts, valid or not. Per problem: ``unique`` = number of distinct strategies
   among the policy's n episodes (n must be the same for every policy and problem: unique counts grow with n).
   ``novelty`` (episode-weighted, the headline) = share of the policy's episodes whose strategy never occurs
   among base's episodes of the same problem, pooled over problems; ``overlap`` = 1 - novelty.
   ``novelty_unique`` (the unique-sequence-weighted variant; the paper's wording fits either) = share of the
   policy's distinct (problem, strategy) pairs that base never produced. Base's novelty is 0 by definition.
   A null for novelty: base's episodes of a problem are split by sample order into a reference half (even
   positions) and a held-out half (odd positions). ``novelty_half`` = share of a policy's episodes whose strategy
   is not in base's reference half; for base itself the held-out half is scored, so base's ``novelty_half`` is
   what sampling noise alone gives at this n. ``novelty_excess`` = novelty_half(policy) - novelty_half(base),
   paired on one resample: "novel" means more than base is novel against itself. ``unique_share`` = unique / n
   (scale-free) and ``unique_share_diff`` = unique_share(policy) - unique_share(base), paired.

3. Cross-policy swap (:func:`swap_experiment`, :func:`swap_summary`); protocol in swap_experiment's docstring.
   :func:`swap_diagonal_check`: the diagonal (a policy's plans with its own reasoning) against its own Pass@1.

Uncertainty: percentile bootstrap over problems (``metrics.resample_weights``); within a category one
resample is shared by all policies in diversity and by all (plan, reasoner) cells in the swap (paired).
:func:`flat_stats` turns the summaries into the flat keys the claims audit reads.
"""

from __future__ import annotations

import math
import re
import zlib

import numpy as np
import pandas as pd

from passkt.detok import decode_offsets
from passkt.metrics import bootstrap_p, resample_weights
from passkt.rollout import Environment, Episode, SamplingConfig, continue_episodes
from passkt.scoring import score_answer

ALL = "all"  # the pooled category
QUERY_TYPES = ("query",)
REASONING_TYPES = ("reasoning", "answer")
_TAG_RE = re.compile(r"</?(?:think|search|answer|information)>")


def _tost_interval(reps: np.ndarray, ci: float) -> tuple[float, float]:
    """The (2 ci - 1) percentile interval: equivalence within a margin m at level 1 - ci when it lies in (-m, m)
    (two one-sided tests; see ``metrics.effect``)."""
    return _interval(reps, 2 * ci - 1)


def _rng(seed: int, tag: str) -> np.random.Generator:
    """One generator per (seed, analysis, category): results do not depend on evaluation order."""
    return np.random.default_rng([int(seed), zlib.crc32(tag.encode())])


def _interval(reps: np.ndarray, ci: float) -> tuple[float, float]:
    """Percentile interval of 1-D replicates, ignoring NaN (NaN, NaN if none are finite)."""
    reps = np.asarray(reps, dtype=np.float64)
    reps = reps[np.isfinite(reps)]
    if reps.size == 0:
        return float("nan"), float("nan")
    lo, hi = np.quantile(reps, [(1 - ci) / 2, (1 + ci) / 2])
    return float(lo), float(hi)


def _ratio(num: np.ndarray, den: np.ndarray, W: np.ndarray) -> tuple[float, np.ndarray]:
    """(sum num / sum den, its bootstrap replicates) for per-problem arrays num, den and weights W."""
    with np.errstate(invalid="ignore", divide="ignore"):
        est = num.sum() / den.sum() if den.sum() > 0 else float("nan")
        return float(est), (W @ num) / (W @ den)


def seed_draws(seed: int, tag: str, n_boot: int, n_seeds: int) -> np.ndarray:
    """(n_boot, n_seeds) training replicates drawn with replacement, one row per resample: the outer level of the
    two-level bootstrap (the inner level, the problems, is each analysis's shared weight matrix)."""
    return _rng(seed, f"seeds:{tag}").integers(0, n_seeds, size=(int(n_boot), int(n_seeds)))


def combine_replicates(per_rep: list[tuple[float, np.ndarray]], draws: np.ndarray) -> tuple[float, np.ndarray]:
    """Two-level paired bootstrap of a statistic computed per training replicate on one shared problem resample.

    ``per_rep[r]`` is replicate r's (estimate, resamples over problems), every replicate resampled with the same
    weight matrix. The estimate is the mean over replicates; resample b is the mean, over the replicates drawn in
    ``draws[b]``, of their resample b (the same problems for every drawn replicate and every policy). With one
    replicate this is that replicate's own bootstrap."""
    est = float(np.mean([e for e, _ in per_rep]))
    R = np.stack([np.asarray(r, dtype=np.float64) for _, r in per_rep])  # (S, B)
    if draws.shape != (R.shape[1], R.shape[0]):
        raise ValueError(f"combine_replicates: draws {draws.shape} do not match {R.shape[0]} replicates x "
                         f"{R.shape[1]} resamples")
    return est, R[draws, np.arange(R.shape[1])[:, None]].mean(axis=1)


def episodes_at(df: pd.DataFrame, T: int, temperature: float, correct_only: bool = False) -> pd.DataFrame:
    """Rows of a rollout frame at depth budget T and temperature (optionally only correct episodes).

    Math problems are evaluated at T = 0 only, so at T_eval > 0 they drop out here.
    """
    sel = (df["T"] == T).to_numpy() & np.isclose(df["temperature"].to_numpy(dtype=float), temperature)
    if not sel.any():
        raise ValueError(
            f"no rollouts at T={T}, temperature={temperature}; have T={sorted(df['T'].unique())}, "
            f"temperature={sorted(df['temperature'].unique())}"
        )
    out = df[sel]
    if correct_only:
        out = out[out["correct"].astype(bool)]
    return out.reset_index(drop=True)


# ----------------------------------------------------------------------------- 1. perplexity probe


def _tag_tokens(tokenizer, ids, cache: dict) -> np.ndarray:
    """Boolean mask over ``ids``: True where a token's text overlaps a protocol tag such as <search>.

    Text decoded as a whole (:func:`passkt.detok.decode_offsets`); tokens that write characters together (they
    share a start) have the text of their group, up to the next start.
    """
    text, starts = decode_offsets(tokenizer, ids, cache)
    starts = np.asarray(starts, dtype=int)
    ends = np.append(starts, len(text))[np.searchsorted(starts, starts, side="right")]
    mask = np.zeros(len(ids), dtype=bool)
    for m in _TAG_RE.finditer(text):
        mask |= (starts < m.end()) & (ends > m.start())
    return mask


def token_kinds(record, tokenizer=None, exclude_tags: bool = False, cache: dict | None = None) -> np.ndarray:
    """Per-token code of one record: 1 = query, 2 = reasoning (incl. answer), 0 = not scored.

    The first token is never scored (nothing predicts it). With ``exclude_tags`` (needs ``tokenizer``),
    tokens that overlap a protocol tag are not scored either.
    """
    if exclude_tags and tokenizer is None:
        raise ValueError("exclude_tags=True needs the tokenizer that wrote token_ids")
    cache = {} if cache is None else cache
    ids = record["token_ids"]
    kinds = np.zeros(len(ids), dtype=np.int8)
    for typ, a, b in zip(record["seg_type"], record["seg_start"], record["seg_end"], strict=True):
        code = 1 if typ in QUERY_TYPES else 2 if typ in REASONING_TYPES else 0
        if code == 0:
            continue
        kinds[a:b] = code
        if exclude_tags:
            kinds[a:b][_tag_tokens(tokenizer, list(ids[a:b]), cache)] = 0
    kinds[:1] = 0
    return kinds


def _batch_nll(
    model, seqs: list[list[int]], kinds: list[np.ndarray], device, chunk: int = 4096
) -> np.ndarray:
    """(len(seqs), 4) summed NLL of query / reasoning / query-tag / reasoning-tag tokens (codes 1-4) for one padded
    batch (right padding).

    Logits are computed only at scored positions: decoder hidden state at t-1 -> output head -> NLL of token t.
    """
    import torch
    import torch.nn.functional as F

    width = max(len(s) for s in seqs)
    ids = torch.zeros((len(seqs), width), dtype=torch.long)
    mask = torch.zeros((len(seqs), width), dtype=torch.long)
    for r, s in enumerate(seqs):
        ids[r, : len(s)] = torch.as_tensor(np.asarray(s, dtype=np.int64))
        mask[r, : len(s)] = 1
    rows, pos = np.nonzero(np.stack([np.pad(k, (0, width - len(k))) for k in kinds]))
    out = np.zeros((len(seqs), 4))
    if rows.size == 0:
        return out
    hidden = model.get_decoder()(input_ids=ids.to(device), attention_mask=mask.to(device)).last_hidden_state
    head = model.get_output_embeddings()
    r_t, p_t = torch.as_tensor(rows, device=hidden.device), torch.as_tensor(pos, device=hidden.device)
    target = ids.to(hidden.device)[r_t, p_t]
    nll = torch.empty(rows.size, dtype=torch.float64)
    for s in range(0, rows.size, chunk):
        logits = head(hidden[r_t[s : s + chunk], p_t[s : s + chunk] - 1]).float()
        nll[s : s + chunk] = F.cross_entropy(logits, target[s : s + chunk], reduction="none").double().cpu()
    codes = np.stack([np.pad(k, (0, width - len(k))) for k in kinds])[rows, pos]
    np.add.at(out, (rows, codes.astype(int) - 1), nll.numpy())
    return out


def segment_surprisal(
    model,
    records_df: pd.DataFrame,
    batch_size: int,
    device=None,
    tokenizer=None,
    exclude_tags: bool = False,
    progress: bool = True,
) -> pd.DataFrame:
    """Score every episode's token_ids under ``model`` (the base model) and sum NLL per segment kind.

    Padded batches of length-sorted episodes, ``torch.no_grad``, NLL in nats. Returns one row per episode:
    problem_id, category, policy, T, temperature, sample, correct, query_nats, query_tokens, reasoning_nats,
    reasoning_tokens (same order as ``records_df``; tags included unless ``exclude_tags``) and, given the
    tokenizer, query_notag_nats, query_notag_tokens, reasoning_notag_nats, reasoning_notag_tokens (tags never
    included; NaN without the tokenizer).
    """
    import torch
    from tqdm.auto import tqdm

    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    device = device or next(model.parameters()).device
    recs = records_df.reset_index(drop=True)
    cache: dict = {}
    seqs = [list(map(int, x)) for x in recs["token_ids"]]
    if exclude_tags and tokenizer is None:
        raise ValueError("exclude_tags=True needs the tokenizer that wrote token_ids")
    kinds = []  # codes: 1 query, 2 reasoning, 3 a query's tag token, 4 a reasoning segment's tag token
    for r in recs.to_dict("records"):
        full = token_kinds(r, None, False, cache)
        if tokenizer is not None:
            bare = token_kinds(r, tokenizer, True, cache)
            full = np.where((full > 0) & (bare == 0), full + 2, full).astype(np.int8)
        kinds.append(full)
    for i, (s, k) in enumerate(zip(seqs, kinds, strict=True)):
        if len(s) != len(k):
            raise ValueError(f"record {i}: segments end at {len(k)} but token_ids has {len(s)} tokens")
    nats = np.zeros((len(seqs), 4))
    order = sorted(range(len(seqs)), key=lambda i: len(seqs[i]))
    was_training = model.training
    model.eval()
    with torch.no_grad():
        for s in tqdm(range(0, len(order), batch_size), desc="surprisal", unit="batch", disable=not progress):
            idx = order[s : s + batch_size]
            nats[idx] = _batch_nll(model, [seqs[i] for i in idx], [kinds[i] for i in idx], device)
    if was_training:
        model.train()
    cols = [
        c for c in ("problem_id", "category", "policy", "T", "temperature", "sample", "correct") if c in recs
    ]
    out = recs[cols].copy()
    tokens = np.array([[(k == code).sum() for code in (1, 2, 3, 4)] for k in kinds], dtype=np.int64).reshape(-1, 4)
    keep_tags = 0 if exclude_tags else 1
    for i, seg in enumerate(("query", "reasoning")):
        out[f"{seg}_nats"] = nats[:, i] + keep_tags * nats[:, i + 2]
        out[f"{seg}_tokens"] = tokens[:, i] + keep_tags * tokens[:, i + 2]
        out[f"{seg}_notag_nats"] = nats[:, i] if tokenizer is not None else np.nan
        out[f"{seg}_notag_tokens"] = tokens[:, i] if tokenizer is not None else np.nan
    return out


def _by_category(df: pd.DataFrame):
    """(category, rows) for every category present, then ("all", every row)."""
    for cat in sorted(df["category"].unique()):
        yield cat, df[df["category"] == cat]
    yield ALL, df


PPL_COLUMNS = [
    "category",
    "policy",
    "segment",
    "nats",
    "nats_ci_low",
    "nats_ci_high",
    "ppl",
    "ppl_ci_low",
    "ppl_ci_high",
    "tokens",
    "n_episodes",
    "n_problems",
]


def perplexity_summary(
    per_episode: pd.DataFrame, n_boot: int = 1000, seed: int = 0, ci: float = 0.95
) -> pd.DataFrame:
    """Mean nats/token and perplexity per (category incl. "all", policy, segment), bootstrap CIs over problems.

    Segments: "query", "reasoning" and "reasoning_minus_query" (difference of nats/token, paired on the same
    resample; its ppl columns are NaN). Each policy resamples the problems it has episodes for. Columns:
    category, policy, segment, nats, nats_ci_low, nats_ci_high, ppl, ppl_ci_low, ppl_ci_high, tokens,
    n_episodes, n_problems.
    """
    rows = []
    for cat, sub in _by_category(per_episode):
        for pol, g in sub.groupby("policy", sort=True):
            per = g.groupby("problem_id", sort=True)[
                ["query_nats", "query_tokens", "reasoning_nats", "reasoning_tokens"]
            ].sum()
            W = resample_weights(_rng(seed, f"ppl:{cat}:{pol}"), int(n_boot), len(per))
            res = {
                seg: _ratio(per[f"{seg}_nats"].to_numpy(float), per[f"{seg}_tokens"].to_numpy(float), W)
                for seg in ("query", "reasoning")
            }
            res["reasoning_minus_query"] = (
                res["reasoning"][0] - res["query"][0],
                res["reasoning"][1] - res["query"][1],
            )
            for seg, (est, reps) in res.items():
                lo, hi = _interval(reps, ci)
                is_diff = seg == "reasoning_minus_query"
                tokens = np.nan if is_diff else float(per[f"{seg}_tokens"].sum())
                rows.append(
                    {
                        "category": cat,
                        "policy": pol,
                        "segment": seg,
                        "nats": est,
                        "nats_ci_low": lo,
                        "nats_ci_high": hi,
                        "ppl": np.nan if is_diff else math.exp(est) if np.isfinite(est) else np.nan,
                        "ppl_ci_low": np.nan if is_diff else math.exp(lo) if np.isfinite(lo) else np.nan,
                        "ppl_ci_high": np.nan if is_diff else math.exp(hi) if np.isfinite(hi) else np.nan,
                        "tokens": tokens,
                        "n_episodes": len(g),
                        "n_problems": len(per),
                    }
                )
    return pd.DataFrame(rows, columns=PPL_COLUMNS)


DID_COLUMNS = [
    "category",
    "a",
    "b",
    *(f"{n}{s}" for n in ("gap_a", "gap_b") for s in ("", "_ci_low", "_ci_high")),
    *(f"did{s}" for s in ("", "_ci_low", "_ci_high", "_tost_low", "_tost_high", "_p")),
    "n_problems",
    "n_seeds",
    "did_per_replicate",  # each training replicate's own did, ";"-separated in replicate order
]


def _notag_gap(rows: pd.DataFrame, pids: np.ndarray, W: np.ndarray) -> tuple[float, np.ndarray]:
    """(reasoning - query) base-model nats/token, tags excluded, over ``rows`` (problems ``pids``, resampled by W)."""
    per = rows.groupby("problem_id")[list(NOTAG)].sum().reindex(pids, fill_value=0.0)
    q = _ratio(per["query_notag_nats"].to_numpy(float), per["query_notag_tokens"].to_numpy(float), W)
    r = _ratio(per["reasoning_notag_nats"].to_numpy(float), per["reasoning_notag_tokens"].to_numpy(float), W)
    return r[0] - q[0], r[1] - q[1]


NOTAG = ("query_notag_nats", "query_notag_tokens", "reasoning_notag_nats", "reasoning_notag_tokens")


def surprisal_did(
    per_episode: pd.DataFrame, a: str = "rl", b: str = "base", n_boot: int = 1000, seed: int = 0, ci: float = 0.95,
    replicates=None,
) -> pd.DataFrame:
    """Difference in differences of base-model surprisal, tags excluded, per category incl. "all".

    gap(p) = reasoning nats/token - query nats/token over policy p's scored episodes (``*_notag_*`` columns of
    :func:`segment_surprisal`: tag tokens never count); did = gap(a) - gap(b). Both policies are resampled with
    one index matrix over the union of their problems (a problem one policy has no episode for adds nothing to
    that policy's sums), so the difference is paired. With a ``replicate`` column, policy a's episodes come from
    several training replicates (b, the base model, is shared): gap(a) and did are the means over replicates and
    their intervals come from the two-level bootstrap (:func:`combine_replicates`: replicates, then the same
    problems for every replicate and for b). did carries a percentile interval, a TOST interval
    (:func:`_tost_interval`), a bootstrap p and ``n_seeds``. Empty when either policy is absent. ``replicates``:
    the training replicates expected; one without a scored episode of policy a is an error, never a silent drop.
    """
    need = list(NOTAG)
    if not set(need) <= set(per_episode.columns) or per_episode[need].isna().any().any():
        raise ValueError("surprisal_did needs the *_notag_* columns (segment_surprisal with the tokenizer)")
    rows = []
    if not {a, b} <= set(per_episode["policy"]):
        return pd.DataFrame(rows, columns=DID_COLUMNS)
    pe = per_episode[per_episode["policy"].isin([a, b])].reset_index(drop=True)
    pe = pe.assign(_rep=pe["replicate"] if "replicate" in pe else 0)
    reps_a = sorted(pe.loc[pe["policy"] == a, "_rep"].unique())
    if replicates is not None and set(reps_a) != set(replicates):
        missing = sorted(set(replicates) - set(reps_a))
        raise ValueError(f"surprisal_did: policy {a!r} has no scored episode in training replicate(s) {missing} "
                         f"(expected {sorted(replicates)})")
    for cat, sub in _by_category(pe):
        pids = np.array(sorted(sub["problem_id"].unique()))
        W = resample_weights(_rng(seed, f"did:{cat}"), int(n_boot), len(pids))
        gap_b = _notag_gap(sub[sub["policy"] == b], pids, W)
        per_a = [_notag_gap(sub[(sub["policy"] == a) & (sub["_rep"] == r)], pids, W) for r in reps_a]
        draws = seed_draws(seed, f"did:{cat}", int(n_boot), len(reps_a))
        gap_a = combine_replicates(per_a, draws)
        did, did_reps = combine_replicates([(g[0] - gap_b[0], g[1] - gap_b[1]) for g in per_a], draws)
        row = {"category": cat, "a": a, "b": b, "did": did, "n_problems": len(pids), "n_seeds": len(reps_a)}
        for name, (est, reps) in (("gap_a", gap_a), ("gap_b", gap_b)):
            row[name] = est
            row[f"{name}_ci_low"], row[f"{name}_ci_high"] = _interval(reps, ci)
        row["did_ci_low"], row["did_ci_high"] = _interval(did_reps, ci)
        row["did_tost_low"], row["did_tost_high"] = _tost_interval(did_reps, ci)
        finite = did_reps[np.isfinite(did_reps)]
        row["did_p"] = float(bootstrap_p(np.array([did]), finite[:, None])[0]) if finite.size else float("nan")
        row["did_per_replicate"] = ";".join(repr(float(g[0] - gap_b[0])) for g in per_a)
        rows.append(row)
    return pd.DataFrame(rows, columns=DID_COLUMNS)


# ----------------------------------------------------------------------------- 2. strategy diversity


def normalize_query(q: str) -> str:
    """Lowercase and collapse whitespace (the unit of 'the same query')."""
    return " ".join(str(q).lower().split())


def strategy(queries) -> tuple[str, ...]:
    """An episode's strategy: its tuple of normalised queries (() when it never searched)."""
    return tuple(normalize_query(q) for q in (queries if queries is not None else ()))


def _strategies(df: pd.DataFrame, policy: str) -> dict[tuple[str, str], list[tuple]]:
    """(category, problem_id) -> list of episode strategies of one policy."""
    out: dict[tuple[str, str], list[tuple]] = {}
    if "sample" in df:  # sample order fixes base's reference / held-out halves
        df = df.sort_values(["problem_id", "sample"], kind="stable")
    for cat, pid, qs in zip(df["category"], df["problem_id"], df["queries"], strict=True):
        out.setdefault((cat, pid), []).append(strategy(qs))
    if not out:
        raise ValueError(f"diversity: policy {policy!r} has no episodes")
    return out


def _check_same_n(strats: dict[str, dict], base: str) -> int:
    """Every policy must have the same problems as base and the same number of episodes n for each."""
    ref = strats[base]
    n = len(next(iter(ref.values())))
    for pol, s in strats.items():
        if set(s) != set(ref):
            odd = sorted(set(s) ^ set(ref))[0]
            raise ValueError(
                f"diversity: policy {pol!r} and {base!r} differ on problem {odd[1]!r} ({odd[0]})"
            )
        for key, eps in s.items():
            if len(eps) != n:
                raise ValueError(
                    f"diversity: policy {pol!r} has {len(eps)} episodes for problem {key[1]!r}, "
                    f"expected n={n} for every policy and problem"
                )
    return n


def _half_novelty(per_problem: np.ndarray, n: int, W: np.ndarray) -> tuple[float, np.ndarray]:
    """Novelty against base's reference half (columns 4, 5 of diversity's per-problem counts); NaN when n < 2."""
    if n < 2:
        return float("nan"), np.full(W.shape[0], np.nan)
    return _ratio(per_problem[:, 4], per_problem[:, 5], W)


def _split_replicates(dfs_by_policy: dict[str, pd.DataFrame], base: str,
                      replicates=None) -> tuple[dict[tuple[str, int], pd.DataFrame], list]:
    """(policy, replicate) -> frame, and the training replicates: a frame of a trained policy with a ``replicate``
    column is split by it (base, sampled once, is replicate -1). Every trained policy must have the same ones, and
    those of ``replicates`` when given."""
    frames, sets = {}, {}
    for pol, df in dfs_by_policy.items():
        if pol != base and "replicate" in df:
            for r, g in df.groupby("replicate", sort=True):
                frames[(pol, int(r))] = g
            sets[pol] = sorted(int(r) for r in df["replicate"].unique())
        else:
            frames[(pol, -1 if pol == base else 0)] = df
            if pol != base:
                sets[pol] = [0]
    if len({tuple(s) for s in sets.values()}) > 1 or (replicates is not None and any(
            s != sorted(replicates) for s in sets.values())):
        raise ValueError(f"diversity: the trained policies have different training replicates: {sets}"
                         + (f" (expected {sorted(replicates)})" if replicates is not None else ""))
    return frames, next(iter(sets.values()), [0])


def diversity(
    dfs_by_policy: dict[str, pd.DataFrame],
    n_boot: int = 1000,
    seed: int = 0,
    ci: float = 0.95,
    base: str = "base",
    replicates=None,
) -> pd.DataFrame:
    """Unique strategies per problem, novelty / overlap vs base, per (category incl. "all", policy).

    Frames must already be at one (T, temperature) (see :func:`episodes_at`); definitions in the module
    docstring. Columns: category, policy, n_problems, n_per_problem, n_seeds, unique(+_ci_low/_ci_high),
    novelty(+ci), overlap(+ci), novelty_unique(+ci), unique_share(+ci), novelty_half(+ci) and, paired against
    base on one resample, unique_share_diff and novelty_excess (each +ci, +_tost_low/_tost_high, +_p, and
    +_per_replicate: each training replicate's own value, ";"-separated).
    novelty_half and novelty_excess are NaN when n < 2 (no held-out half). A trained policy's frame with a
    ``replicate`` column holds several training replicates: its statistics are the means over replicates, with
    intervals from the two-level bootstrap (:func:`combine_replicates`: replicates, then the same problems for
    every replicate and for base; one replicate draw per category, shared by every policy); ``replicates``, when
    given, are the ones every trained policy must have.
    """
    if base not in dfs_by_policy:
        raise ValueError(
            f"diversity: the reference policy {base!r} is missing (have {sorted(dfs_by_policy)})"
        )
    frames, replicates = _split_replicates(dfs_by_policy, base, replicates)
    label = {k: k[0] if k[1] <= 0 and len(replicates) == 1 else f"{k[0]} (replicate {k[1]})" for k in frames}
    strats = {k: _strategies(df, label[k]) for k, df in frames.items()}
    bkey = (base, -1)
    n = _check_same_n({label[k]: s for k, s in strats.items()}, label[bkey])
    keys = sorted(strats[bkey])
    per = {}  # (policy, replicate) -> (P, 6): unique, novel episodes, novel unique, episodes, novel vs half, scored
    for k, s in strats.items():
        m = []
        for key in keys:
            seen, ref = set(strats[bkey][key]), set(strats[bkey][key][0::2])
            scored = strats[bkey][key][1::2] if k == bkey else s[key]
            uniq = set(s[key])
            m.append(
                [len(uniq), sum(x not in seen for x in s[key]), len(uniq - seen), len(s[key]),
                 sum(x not in ref for x in scored), len(scored)]
            )
        per[k] = np.array(m, dtype=np.float64)
    cats = np.array([c for c, _ in keys])
    rows = []
    for cat in [*sorted(set(cats)), ALL]:
        sel = np.ones(len(keys), bool) if cat == ALL else cats == cat
        W = resample_weights(_rng(seed, f"div:{cat}"), int(n_boot), int(sel.sum()))  # shared: paired
        draws = seed_draws(seed, f"div:{cat}", int(n_boot), len(replicates))  # shared by every policy
        ones = np.ones(int(sel.sum()))
        base_share, base_half = _ratio(per[bkey][sel, 0] / n, ones, W), _half_novelty(per[bkey][sel], n, W)
        for pol in sorted({k[0] for k in per}):
            reps_of = [k for k in sorted(per) if k[0] == pol]
            one = []
            for k in reps_of:
                u, nov_e, nov_u, eps = per[k][sel, :4].T
                stats = {"unique": _ratio(u, ones, W), "novelty": _ratio(nov_e, eps, W)}
                stats["overlap"] = (1 - stats["novelty"][0], 1 - stats["novelty"][1])
                stats["novelty_unique"] = _ratio(nov_u, u, W)
                stats["unique_share"] = _ratio(u / n, ones, W)
                stats["novelty_half"] = _half_novelty(per[k][sel], n, W)
                stats["unique_share_diff"] = tuple(x - y for x, y in zip(stats["unique_share"], base_share, strict=True))
                stats["novelty_excess"] = tuple(x - y for x, y in zip(stats["novelty_half"], base_half, strict=True))
                one.append(stats)
            combined = one[0] if len(one) == 1 else {
                name: combine_replicates([s[name] for s in one], draws) for name in one[0]}
            row = {"category": cat, "policy": pol, "n_problems": int(sel.sum()), "n_per_problem": n,
                   "n_seeds": len(one)}
            for name, (est, reps) in combined.items():
                row[name] = est
                row[f"{name}_ci_low"], row[f"{name}_ci_high"] = _interval(reps, ci)
            for name in ("unique_share_diff", "novelty_excess"):
                est, reps = combined[name]
                row[f"{name}_tost_low"], row[f"{name}_tost_high"] = _tost_interval(reps, ci)
                finite = reps[np.isfinite(reps)]
                row[f"{name}_p"] = (
                    float(bootstrap_p(np.array([est]), finite[:, None])[0]) if finite.size else float("nan")
                )
                row[f"{name}_per_replicate"] = ";".join(repr(float(s[name][0])) for s in one)
            rows.append(row)
    return pd.DataFrame(rows)


# ----------------------------------------------------------------------------- 3. cross-policy swap


def select_plans(df: pd.DataFrame, max_plans_per_problem: int, seed: int, policy: str) -> pd.DataFrame:
    """Up to m episodes per problem (a seeded random subset, kept in sample order). Episodes that never searched
    are plans too (the empty plan): dropping them would replay only the policy's searching episodes and bias the
    swap toward plans that search."""
    if max_plans_per_problem < 1:
        raise ValueError(f"max_plans_per_problem must be >= 1, got {max_plans_per_problem}")
    have = df.assign(queries=df["queries"].map(lambda q: [] if q is None else list(q)))
    out = []
    for pid, g in have.sort_values(["problem_id", "sample"]).groupby("problem_id", sort=True):
        if len(g) > max_plans_per_problem:
            pick = _rng(seed, f"plans:{policy}:{pid}").choice(len(g), max_plans_per_problem, replace=False)
            g = g.iloc[np.sort(pick)]
        out.append(g)
    cols = ["problem_id", "category", "sample", "queries"]
    return pd.concat(out, ignore_index=True)[cols] if out else pd.DataFrame(columns=cols)


def replay_episode(env: Environment, problem_id: str, queries, sample: int) -> Episode:
    """An episode whose searches are already done: prompt, each "<search>q</search>" + its retrieved
    information (rebuilt by ``env.info_ids``, so identical to what the plan's author saw), then the notice. The
    empty plan gives prompt + notice, exactly a budget-0 episode of the engine."""
    queries = [str(q) for q in (queries if queries is not None else ())]
    ep = Episode(problem_id, sample, budget=len(queries), ids=[])
    ep.add("prompt", env.prompt_ids(problem_id))
    for q in queries:
        ep.add("query", env.tok.encode(f"<search>{q}</search>", add_special_tokens=False))
        ep.add("information", env.info_ids(problem_id, q))
        ep.queries.append(q)
    ep.add("notice", env.notice_ids)
    return ep


def swap_experiment(
    plans_df_by_policy: dict[str, pd.DataFrame],
    reasoners: dict,
    env: Environment,
    cfg: SamplingConfig,
    max_plans_per_problem: int,
    seed: int,
    progress: bool = True,
) -> pd.DataFrame:
    """Replay each plan policy's search plans with each reasoner's reasoning; one row per replay.

    Protocol. Inputs are the plan policies' rollouts at T_eval and the evaluation temperature
    (``episodes_at``). For each problem and plan policy p, up to m = ``max_plans_per_problem`` of p's
    episodes are chosen (seeded random subset); the plan is its query sequence (empty when it never searched).
    Only problems where every plan policy has at least one plan are used, so all cells share one problem
    set. A replay's context is the prompt, then for each query "<search>q</search>" followed by the
    environment's information for it, then the notice that no searches remain (the plan author's own
    reasoning text is dropped: only the plan is transplanted). The reasoner r continues once with sampling
    ``cfg`` (budget = len(plan), so it must answer; a search is invalid); success = exact match of its
    answer. Every reasoner replays the same plans. The torch seed is set per reasoner from ``seed``.

    Columns: problem_id, category, plan_policy, plan_sample, n_queries, reasoner, answer, termination, correct.
    """
    import torch
    from tqdm.auto import tqdm

    if not plans_df_by_policy or not reasoners:
        raise ValueError("swap_experiment needs at least one plan policy and one reasoner")
    plans = {
        p: select_plans(df, max_plans_per_problem, seed, p) for p, df in sorted(plans_df_by_policy.items())
    }
    common = set.intersection(*(set(d["problem_id"]) for d in plans.values())) if plans else set()
    table = pd.concat([d.assign(plan_policy=p) for p, d in plans.items()], ignore_index=True)
    table = table[table["problem_id"].isin(common)].reset_index(drop=True)
    rows = []
    for name, backend in sorted(reasoners.items()):
        torch.manual_seed(int(_rng(seed, f"swap:{name}").integers(2**31)))
        eps = [replay_episode(env, r.problem_id, r.queries, i) for i, r in enumerate(table.itertuples())]
        bar = tqdm(total=len(eps), desc=f"swap reasoner={name}", unit="ep", disable=not progress)
        done = continue_episodes(backend, env, eps, cfg, progress=bar)
        bar.close()
        for ep in sorted(done, key=lambda e: e.sample):
            plan = table.iloc[ep.sample]
            ok = (
                ep.termination == "answered"
                and score_answer(ep.answer, env.problems[ep.problem_id])["correct"]
            )
            rows.append(
                {
                    "problem_id": ep.problem_id,
                    "category": plan["category"],
                    "plan_policy": plan["plan_policy"],
                    "plan_sample": int(plan["sample"]),
                    "n_queries": len(ep.queries),
                    "reasoner": name,
                    "answer": ep.answer,
                    "termination": ep.termination,
                    "correct": bool(ok),
                }
            )
    return pd.DataFrame(
        rows,
        columns=[
            "problem_id",
            "category",
            "plan_policy",
            "plan_sample",
            "n_queries",
            "reasoner",
            "answer",
            "termination",
            "correct",
        ],
    )


def shapley_components(s_bb, s_rb, s_br, s_rr) -> tuple[np.ndarray, np.ndarray]:
    """RL's gain S(rl,rl) - S(base,base) split into two absolute parts (Shapley average over the order of the
    swaps; S(plan, reasoner)): plan = ½[(S(rl,base) - S(base,base)) + (S(rl,rl) - S(base,rl))], reasoning =
    ½[(S(base,rl) - S(base,base)) + (S(rl,rl) - S(rl,base))]; plan + reasoning = the gain. No ratio: the gain can
    be near 0. Works elementwise on arrays of replicates."""
    s_bb, s_rb, s_br, s_rr = (np.asarray(x, dtype=np.float64) for x in (s_bb, s_rb, s_br, s_rr))
    return 0.5 * ((s_rb - s_bb) + (s_rr - s_br)), 0.5 * ((s_br - s_bb) + (s_rr - s_rb))


def swap_summary(
    replays: pd.DataFrame,
    n_boot: int = 1000,
    seed: int = 0,
    ci: float = 0.95,
    base: str = "base",
    rl: str = "rl",
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(grid, components) from :func:`swap_experiment`'s rows, per category incl. "all".

    grid: category, plan_policy, reasoner, success, success_ci_low, success_ci_high, n_problems, n_replays;
    success = mean over problems of the problem's success rate over its replayed plans.
    components: category, plan_effect(+ci), reasoning_effect(+ci), gain(+ci) with gain = S(rl,rl) - S(base,base)
    = plan_effect + reasoning_effect (:func:`shapley_components`).
    One bootstrap resample of problems per category is shared by all cells (paired).
    """
    grid_rows, share_rows = [], []
    grid_cols = [
        "category",
        "plan_policy",
        "reasoner",
        "success",
        "success_ci_low",
        "success_ci_high",
        "n_problems",
        "n_replays",
    ]
    share_cols = (
        ["category"]
        + [f"{n}{s}" for n in ("plan_effect", "reasoning_effect", "gain") for s in ("", "_ci_low", "_ci_high")]
        + ["n_problems"]
    )
    if replays.empty:
        return pd.DataFrame(grid_rows, columns=grid_cols), pd.DataFrame(share_rows, columns=share_cols)
    rate = (
        replays.groupby(["category", "problem_id", "plan_policy", "reasoner"])["correct"]
        .mean()
        .unstack(["plan_policy", "reasoner"])
    )
    count = (
        replays.groupby(["category", "problem_id", "plan_policy", "reasoner"])
        .size()
        .unstack(["plan_policy", "reasoner"])
    )
    cats = rate.index.get_level_values("category")
    for cat in [*sorted(set(cats)), ALL]:
        sub = rate if cat == ALL else rate[cats == cat]
        sub = sub.dropna()  # problems every cell has
        W = resample_weights(_rng(seed, f"swap:{cat}"), int(n_boot), len(sub))
        ones = np.ones(len(sub))
        cells = {}
        for col in sub.columns:
            est, reps = _ratio(sub[col].to_numpy(float), ones, W)
            cells[col] = (est, reps)
            lo, hi = _interval(reps, ci)
            n_rep = count.loc[sub.index, col].sum()
            grid_rows.append(
                {
                    "category": cat,
                    "plan_policy": col[0],
                    "reasoner": col[1],
                    "success": est,
                    "success_ci_low": lo,
                    "success_ci_high": hi,
                    "n_problems": len(sub),
                    "n_replays": int(n_rep),
                }
            )
        need = [(base, base), (rl, base), (base, rl), (rl, rl)]
        if not all(c in cells for c in need):
            continue
        (e_bb, r_bb), (e_rb, r_rb), (e_br, r_br), (e_rr, r_rr) = (cells[c] for c in need)
        plan, reasoning = (float(x) for x in shapley_components(e_bb, e_rb, e_br, e_rr))
        plan_reps, reasoning_reps = shapley_components(r_bb, r_rb, r_br, r_rr)
        row = {"category": cat, "plan_effect": plan, "reasoning_effect": reasoning, "gain": e_rr - e_bb}
        for name, reps in (
            ("plan_effect", plan_reps),
            ("reasoning_effect", reasoning_reps),
            ("gain", r_rr - r_bb),
        ):
            row[f"{name}_ci_low"], row[f"{name}_ci_high"] = _interval(reps, ci)
        row["n_problems"] = len(sub)
        share_rows.append(row)
    return pd.DataFrame(grid_rows, columns=grid_cols), pd.DataFrame(share_rows, columns=share_cols)


def swap_diagonal_check(
    replays: pd.DataFrame, dfs: dict[str, pd.DataFrame], n_boot: int = 1000, seed: int = 0, ci: float = 0.95
) -> pd.DataFrame:
    """Does the replay reproduce a policy? For each policy p that is both a plan policy and a reasoner, the diagonal
    cell (p's plans, p's reasoning) against p's own Pass@1 on the same problems.

    dfs: p -> p's rollouts at the swap's evaluation point (``episodes_at``, the frames the plans came from). Per
    problem: replay = mean success of p's replays of p's plans, own = mean ``correct`` over all of p's episodes;
    diff = mean over the replayed problems of replay - own, with a percentile bootstrap over problems. The replay
    drops the plan author's reasoning text, so a difference is possible in principle; ``flagged`` = the interval
    excludes 0 (the replay does not reproduce the policy: look at the protocol before reading the swap). No flag
    is not a proof of equality.
    Columns: policy, replay, own, diff, diff_ci_low, diff_ci_high, n_problems, flagged.
    """
    cols = ["policy", "replay", "own", "diff", "diff_ci_low", "diff_ci_high", "n_problems", "flagged"]
    rows = []
    diag = replays[replays["plan_policy"] == replays["reasoner"]]
    for pol, g in diag.groupby("plan_policy", sort=True):
        if pol not in dfs:
            raise ValueError(f"swap_diagonal_check: no rollouts for policy {pol!r} (have {sorted(dfs)})")
        replay = g.groupby("problem_id")["correct"].mean()
        own = dfs[pol].groupby("problem_id")["correct"].mean().reindex(replay.index)
        if own.isna().any():
            raise ValueError(f"swap_diagonal_check: policy {pol!r} has no rollouts for problem {own.index[own.isna()][0]!r}")
        d = replay.to_numpy(float) - own.to_numpy(float)
        W = resample_weights(_rng(seed, f"swap_diagonal:{pol}"), int(n_boot), d.size)
        lo, hi = _interval(W @ d / d.size, ci)
        row = {"policy": pol, "replay": replay.mean(), "own": own.mean(), "diff": d.mean(), "diff_ci_low": lo}
        rows.append(row | {"diff_ci_high": hi, "n_problems": d.size, "flagged": bool(lo > 0 or hi < 0)})
    return pd.DataFrame(rows, columns=cols)


# ----------------------------------------------------------------------------- 4. the flat summary


def _with_ci(out: dict, key: str, row, col: str) -> None:
    out[key] = float(row[col])
    out[f"{key}.ci_low"] = float(row[f"{col}_ci_low"])
    out[f"{key}.ci_high"] = float(row[f"{col}_ci_high"])


def _effect(out: dict, key: str, row, col: str) -> None:
    """An effect's flat keys (as ``metrics.effect``): estimate, .ci_low/.ci_high, .tost_low/.tost_high, .p."""
    _with_ci(out, key, row, col)
    out[f"{key}.tost_low"] = float(row[f"{col}_tost_low"])
    out[f"{key}.tost_high"] = float(row[f"{col}_tost_high"])
    out[f"{key}.p"] = float(row[f"{col}_p"])
    if row.get("n_seeds") == row.get("n_seeds") and row.get("n_seeds") is not None:  # training replicates behind it
        out[f"{key}.n_seeds"] = float(row["n_seeds"])
    per_rep = row.get(f"{col}_per_replicate")
    if isinstance(per_rep, str) and per_rep:  # each replicate's own value: the between-seed spread, as metrics'
        vals = np.array([float(x) for x in per_rep.split(";")])
        out[f"{key}.seed_sd"] = float(vals.std(ddof=1)) if vals.size > 1 else float("nan")
        out[f"{key}.seed_min"], out[f"{key}.seed_max"] = float(vals.min()), float(vals.max())


def flat_stats(
    ppl: pd.DataFrame | None = None,
    div: pd.DataFrame | None = None,
    swap_grid: pd.DataFrame | None = None,
    swap_shares: pd.DataFrame | None = None,
    did: pd.DataFrame | None = None,
    ci: float | None = None,
    swap_diagonal: pd.DataFrame | None = None,
) -> dict[str, float]:
    """Flat dict of python floats for the claims audit (key names are a contract).

    ppl.{cat}.{pol}.{query,reasoning}.{nats,ppl}[.ci_low|.ci_high]; ppl.{cat}.{pol}.reasoning_minus_query.nats[+ci];
    diversity.{cat}.{pol}.unique[+ci]; novelty.{cat}.{pol}.frac[+ci]; overlap.{cat}.{pol}.frac[+ci];
    diversity.{cat}.{pol}.unique_share[+ci]; novelty_half.{cat}.{pol}.frac[+ci];
    diversity_diff.{cat}.{pol}_vs_base.share [effect]; novelty_excess.{cat}.{pol}.frac [effect] (policy's
    novelty against base's reference half minus base's held-out half's); ppl_did.{cat}.{a}_vs_{b}.nats [effect]
    and ppl_did.{cat}.{pol}.gap.nats[+ci] (tags excluded); swap.{cat}.{plan_effect,reasoning_effect,gain}[+ci];
    swap.{cat}.plan_{p}.reason_{r}.success; swap.diagonal.{pol}.{diff,ci_low,ci_high} (replay minus own Pass@1,
    :func:`swap_diagonal_check`); meta.mechanism_ci (the ``ci`` the
    intervals were computed at). "[effect]" = +ci, .tost_low/.tost_high, .p, and where the frame says so .n_seeds
    (training replicates behind it) and .seed_sd/.seed_min/.seed_max (over the replicates' own values). Any input
    may be None (its keys are then absent).
    """
    out: dict[str, float] = {} if ci is None else {"meta.mechanism_ci": float(ci)}
    for row in [] if ppl is None else ppl.to_dict("records"):
        pre = f"ppl.{row['category']}.{row['policy']}.{row['segment']}"
        _with_ci(out, f"{pre}.nats", row, "nats")
        if row["segment"] != "reasoning_minus_query":
            _with_ci(out, f"{pre}.ppl", row, "ppl")
    for row in [] if div is None else div.to_dict("records"):
        cat, pol = row["category"], row["policy"]
        _with_ci(out, f"diversity.{cat}.{pol}.unique", row, "unique")
        _with_ci(out, f"novelty.{cat}.{pol}.frac", row, "novelty")
        _with_ci(out, f"overlap.{cat}.{pol}.frac", row, "overlap")
        if "unique_share" in row:
            _with_ci(out, f"diversity.{cat}.{pol}.unique_share", row, "unique_share")
            _with_ci(out, f"novelty_half.{cat}.{pol}.frac", row, "novelty_half")
        if "unique_share" in row and pol != "base":  # base against itself is 0 by construction
            _effect(out, f"diversity_diff.{cat}.{pol}_vs_base.share", row, "unique_share_diff")
            _effect(out, f"novelty_excess.{cat}.{pol}.frac", row, "novelty_excess")
    for row in [] if did is None else did.to_dict("records"):
        cat, a, b = row["category"], row["a"], row["b"]
        _effect(out, f"ppl_did.{cat}.{a}_vs_{b}.nats", row, "did")
        _with_ci(out, f"ppl_did.{cat}.{a}.gap.nats", row, "gap_a")
        _with_ci(out, f"ppl_did.{cat}.{b}.gap.nats", row, "gap_b")
        if row.get("n_seeds") == row.get("n_seeds") and row.get("n_seeds") is not None:  # both gaps enter the did
            for pol in (a, b):
                out[f"ppl_did.{cat}.{pol}.gap.nats.n_seeds"] = float(row["n_seeds"])
    for row in [] if swap_shares is None else swap_shares.to_dict("records"):
        for part in ("plan_effect", "reasoning_effect", "gain"):
            _with_ci(out, f"swap.{row['category']}.{part}", row, part)
    for row in [] if swap_grid is None else swap_grid.to_dict("records"):
        out[f"swap.{row['category']}.plan_{row['plan_policy']}.reason_{row['reasoner']}.success"] = float(
            row["success"]
        )
    for row in [] if swap_diagonal is None else swap_diagonal.to_dict("records"):
        pre = f"swap.diagonal.{row['policy']}"
        out |= {f"{pre}.diff": float(row["diff"]), f"{pre}.ci_low": float(row["diff_ci_low"]),
                f"{pre}.ci_high": float(row["diff_ci_high"])}
    return out


def surprisal_by_policy(model, dfs: dict[str, pd.DataFrame], batch_size: int, tokenizer=None,
                        correct_only: bool = True, exclude_tags: bool = False) -> pd.DataFrame | None:
    """``segment_surprisal`` of every policy's episodes (successful ones if ``correct_only``), one frame.

    None when no policy has an episode to score (the perplexity keys are then absent)."""
    scored = []
    for d in dfs.values():
        sel = d[d.correct] if correct_only else d
        if len(sel):
            scored.append(segment_surprisal(model, sel, batch_size, tokenizer=tokenizer, exclude_tags=exclude_tags))
    return pd.concat(scored, ignore_index=True) if scored else None

