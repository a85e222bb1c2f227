"""Statistics for decisive evidence on small evaluation sets: training-seed replicates, boundary mass, deep sampling.

Three independent tools, all pure functions of count frames or arrays (nothing reads params or the environment):

1. :func:`hierarchical_bootstrap` -- a paired bootstrap that resamples training seeds AND problems, so that an
   interval includes the seed-to-seed variation a retraining would change, not only the choice of problems.
2. :func:`fit_zibb` -- a zero-inflated beta-binomial fit of per-problem success counts: the share ``pi0`` of
   problems a policy can never solve (the "boundary mass") with a profile-likelihood interval, an explicit
   "not identified" verdict, and Pass@k extrapolated beyond the sampled n.
3. :func:`boundary_candidates` and :func:`deep_sampling_summary` -- bookkeeping for deep sampling of the
   problems one policy solves and the other never does.

The counts frame is the one of :mod:`passkt.metrics` (policy, category, problem_id, temperature, T, n, c),
here with one more column naming the training replicate (``seed`` by default).
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from scipy import optimize, special
from scipy import stats as sps

from passkt.metrics import KEYS, bootstrap_p, category_rng, pass_at_k, resample_weights, wilson_interval

GROUP3 = ("policy", "temperature", "T")


def _check_ks(k) -> np.ndarray:
    """k grid as a non-empty 1-D int64 array of values >= 1."""
    ks = np.atleast_1d(np.asarray(k))
    if ks.ndim != 1 or ks.size == 0 or (ks.dtype.kind not in "iu" and not np.all(ks == np.round(ks))):
        raise ValueError(f"k must be a non-empty 1-D array of whole numbers, got {ks!r}")
    ks = ks.astype(np.int64)
    if np.any(ks < 1):
        raise ValueError(f"k must be >= 1, got k={ks[ks < 1][0]}")
    return ks


def _check_ci(ci: float) -> float:
    if not 0 < ci < 1:
        raise ValueError(f"ci must lie in (0, 1), got {ci}")
    return float(ci)


def _quantiles(reps: np.ndarray, ci: float) -> tuple[np.ndarray, np.ndarray]:
    """Percentile interval along axis 0, NaN replicates ignored (all-NaN columns give NaN)."""
    q = [(1 - ci) / 2, (1 + ci) / 2]
    if not np.isnan(reps).any():
        lo, hi = np.quantile(reps, q, axis=0)
        return lo, hi
    out = np.full((2,) + reps.shape[1:], np.nan)
    ok = ~np.all(np.isnan(reps), axis=0)
    if ok.any():
        out[:, ok] = np.nanquantile(reps[:, ok], q, axis=0)
    return out[0], out[1]


# ============================================================================= 1. hierarchical bootstrap


def seed_rng(seed: int) -> np.random.Generator:
    """Generator of the training-seed draws (one per replicate, shared by every category and policy)."""
    return np.random.default_rng([int(seed), 1, zlib.crc32(b"training-seeds")])


def crossed_bootstrap(
    values: np.ndarray, have: np.ndarray, W: np.ndarray, V: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Core of :func:`hierarchical_bootstrap` on arrays: problem means per seed, then the mean over seeds.

    values: (S, Q, P) per-problem values of Q statistics for S seeds and P problems (anything; NaN where
    ``have`` is False). have: (S, Q, P) bool, which problems enter each statistic. W: (B, P) problem
    multiplicities, V: (B, S) seed multiplicities of B replicates (rows of W sum to P, rows of V to S).
    The statistic of one seed is the W-weighted mean over the problems it has; a replicate's statistic is the
    V-weighted mean over seeds of those (seeds and problems crossed: every drawn seed sees the same drawn
    problems, Owen's "pigeonhole" bootstrap for a seeds x problems design).

    Returns (per_seed (S, Q) full-sample estimates, per_seed_reps (B, S, Q): problem-only replicates of each
    seed, reps (B, Q): seeds-and-problems replicates, problem_reps (B, Q): problems resampled, seeds fixed).
    A replicate that draws none of a statistic's problems is NaN there.
    """
    S, Q, P = values.shape
    x = np.where(have, values, 0.0).transpose(2, 0, 1).reshape(P, S * Q)
    h = have.transpose(2, 0, 1).reshape(P, S * Q).astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        per_seed = (x.sum(axis=0) / h.sum(axis=0)).reshape(S, Q)
        Y = ((W @ x) / (W @ h)).reshape(-1, S, Q)
    drawn = V[:, :, None] > 0
    reps = np.where(drawn, V[:, :, None] * Y, 0.0).sum(axis=1) / S
    reps[np.any(drawn & np.isnan(Y), axis=1)] = np.nan
    return per_seed, Y, reps, Y.mean(axis=1)


@dataclass(frozen=True)
class HierarchicalBootstrap:
    """Result of :func:`hierarchical_bootstrap`.

    points: policy, category, temperature, T, k, pass, <summary columns>.
    diffs: a, b, category, temperature, T, k, diff, p, <summary columns>                (diff = a - b).
    boundary: a, b, category, temperature, T, stat, share, p, count, count_ci_low, count_ci_high, <summary>;
      stat "gained" = solved (c > 0) by a and never by b, "lost" = the reverse, "net" = gained - lost, as
      shares of the pair's problems (count = share x n_problems).
    <summary columns>: ci_low, ci_high (percentile interval, seeds and problems resampled), ci_low_problems,
      ci_high_problems (problems resampled, seeds held fixed: what a single-level bootstrap would say),
      seed_sd (between-seed SD of the per-seed statistic, ddof=1; NaN with one seed), seed_min, seed_max,
      n_seeds, n_problems. The estimate (pass/diff/share) is the mean over seeds of the per-seed statistic.
    per_seed: {"points", "diffs", "boundary"} -> the same keys plus ``seed``, with the per-seed estimate and
      its problem-only percentile interval (ci_low, ci_high) under the same problem draws.
    reps: {"points", "diffs", "boundary"} -> (n_boot x rows) hierarchical replicates, column j = row j.
    seeds: the seed labels in column order of seed_draws; seed_draws: (n_boot x S) multiplicities;
    resamples: category -> (problem ids in column order, (n_boot x P) problem multiplicities).
    """

    ks: np.ndarray
    points: pd.DataFrame
    diffs: pd.DataFrame
    boundary: pd.DataFrame
    per_seed: dict
    reps: dict
    seeds: np.ndarray
    seed_draws: np.ndarray
    resamples: dict = field(default_factory=dict)


def _broadcast_seeds(counts: pd.DataFrame, seed_col: str, shared) -> tuple[pd.DataFrame, np.ndarray]:
    """Give every row a seed: shared policies (one set of rows, seed ignored) are copied to every seed."""
    missing = [c for c in KEYS + ("n", "c") if c not in counts.columns]
    if missing:
        raise ValueError(f"counts is missing column(s) {missing}; needs {list(KEYS) + ['n', 'c']} and {seed_col!r}")
    df = counts.copy()
    if seed_col not in df.columns:
        df[seed_col] = 0
    is_shared = df["policy"].isin(list(shared)).to_numpy()
    own = df.loc[~is_shared]
    if own[seed_col].isna().any():
        pol = own.loc[own[seed_col].isna(), "policy"].iloc[0]
        raise ValueError(f"policy {pol!r} has rows without a {seed_col!r}; list it in shared= if it is not retrained")
    seeds = np.array(sorted(own[seed_col].unique())) if len(own) else np.array([0])
    for (pol, cat, temp, T), g in own.groupby(["policy", "category", "temperature", "T"], sort=True):
        lack = sorted(set(seeds) - set(g[seed_col]))
        if lack:
            raise ValueError(
                f"policy {pol!r} ({cat}, temperature={temp}, T={T}) lacks seed(s) {lack}: every trained policy "
                f"needs every seed ({seeds.tolist()})"
            )
    sh = df.loc[is_shared]
    if len(sh):
        dup = sh.duplicated(list(KEYS))
        if dup.any():
            key = sh.loc[dup.to_numpy(), list(KEYS)].iloc[0].to_dict()
            raise ValueError(f"shared policy rows repeat key {key} (a shared policy is evaluated once)")
        sh = pd.concat([sh.assign(**{seed_col: s}) for s in seeds], ignore_index=True)
    df = pd.concat([own, sh], ignore_index=True)
    dup = df.duplicated([seed_col] + list(KEYS))
    if dup.any():
        key = df.loc[dup.to_numpy(), [seed_col] + list(KEYS)].iloc[0].to_dict()
        raise ValueError(f"counts has duplicate rows for key {key}")
    return df, seeds


def _summary(frame, est_col, per_seed, reps, problem_reps, n_problems, ci, S) -> pd.DataFrame:
    frame = frame.copy()
    frame[est_col] = np.nanmean(per_seed, axis=0) if S else np.nan
    frame["ci_low"], frame["ci_high"] = _quantiles(reps, ci)
    frame["ci_low_problems"], frame["ci_high_problems"] = _quantiles(problem_reps, ci)
    frame["seed_sd"] = per_seed.std(axis=0, ddof=1) if S > 1 else np.nan
    frame["seed_min"], frame["seed_max"] = per_seed.min(axis=0), per_seed.max(axis=0)
    frame["n_seeds"], frame["n_problems"] = S, n_problems
    return frame


def _per_seed_frame(frame, est_col, seeds, per_seed, seed_reps, ci) -> pd.DataFrame:
    S = len(seeds)
    out = pd.concat([frame] * S, ignore_index=True)
    out.insert(0, "seed", np.repeat(seeds, len(frame)))
    out[est_col] = per_seed.ravel()
    lo, hi = _quantiles(seed_reps.reshape(len(seed_reps), -1), ci)
    out["ci_low"], out["ci_high"] = lo, hi
    return out


def hierarchical_bootstrap(
    counts: pd.DataFrame,
    ks,
    pairs=(),
    n_boot: int = 1000,
    seed: int = 0,
    ci: float = 0.95,
    seed_col: str = "seed",
    shared=("base",),
) -> HierarchicalBootstrap:
    """Two-level paired bootstrap over training seeds and problems of Pass@k curves, differences and boundary sets.

    counts: the counts frame of :mod:`passkt.metrics` plus ``seed_col`` naming the training replicate (absent:
    one replicate). Policies in ``shared`` (default the base model) are evaluated once and enter every seed's
    comparison unchanged (their ``seed_col`` is ignored); every other policy needs rows for every seed and
    every (category, temperature, T) it has.
    pairs: (a, b) policy names; compared at the (temperature, T) points both have, in categories where both
    appear; a problem present for one and missing for the other raises.

    Per seed, a statistic is the mean over problems of a per-problem value: Pass@k (unbiased estimator, k <= n),
    the Pass@k difference a - b, and the boundary indicators gained = [c_a > 0 and c_b = 0], lost = [c_a = 0
    and c_b > 0], net = gained - lost. The estimate is the mean of the per-seed statistics over seeds.

    Each of n_boot replicates draws S seeds with replacement (one draw for every category, policy and
    statistic) and, per category, the problems with replacement (the index matrix of
    :func:`passkt.metrics.bootstrap_surface`: :func:`passkt.metrics.category_rng` with the same seed, so with
    one seed the replicates equal bootstrap_surface's); every drawn seed and every policy see the same drawn
    problems (paired; seeds and problems crossed). Percentile intervals at level ``ci``; ``p`` as
    :func:`passkt.metrics.bootstrap_p`.

    Uncertainty captured: which problems were evaluated, which training seeds were run, and the rollout noise
    inside each problem's count (it travels with the problem). Not captured: nothing else varies. With few
    seeds the seed level is coarse (S = 3 gives 10 distinct seed multisets, and the bootstrap variance of a
    mean over S seeds is (S-1)/S of the plug-in one); read seed_sd / seed_min / seed_max next to the interval.
    The crossed (pigeonhole) bootstrap is mildly conservative for the seed x problem interaction.
    """
    ks = _check_ks(ks)
    ci = _check_ci(ci)
    if int(n_boot) != n_boot or n_boot < 1:
        raise ValueError(f"n_boot must be a positive integer, got {n_boot}")
    n_boot, K = int(n_boot), ks.size
    df, seeds = _broadcast_seeds(counts, seed_col, shared)
    S = len(seeds)
    V = resample_weights(seed_rng(seed), n_boot, S)
    mat = pass_at_k(df["n"].to_numpy(), df["c"].to_numpy(), ks)  # validates n, c and k <= n
    solved = (df["c"].to_numpy() > 0).astype(np.float64)
    s_idx = np.searchsorted(seeds, df[seed_col].to_numpy())
    parts = {name: ([], [], [], [], [], []) for name in ("points", "diffs", "boundary")}
    resamples = {}
    for cat in sorted(df["category"].unique()):
        sel = (df["category"] == cat).to_numpy()
        keys = df.loc[sel, list(GROUP3) + ["problem_id"]].reset_index(drop=True)
        pos, pids = pd.factorize(keys["problem_id"], sort=True)
        by = keys.groupby(list(GROUP3), sort=True)
        gcode, groups = by.ngroup().to_numpy(), by.size().index.to_frame(index=False)
        G, P = len(groups), len(pids)
        cube = np.full((S, G, P, K), np.nan)
        cube[s_idx[sel], gcode, pos] = mat[sel]
        sol = np.full((S, G, P), np.nan)
        sol[s_idx[sel], gcode, pos] = solved[sel]
        have = ~np.isnan(sol)
        W = resample_weights(category_rng(seed, cat), n_boot, P)
        resamples[cat] = np.asarray(pids), W
        # the Q statistics of this category: points (G*K), diffs (M*K), boundary (M*3)
        blocks = {"points": (cube.transpose(0, 1, 3, 2).reshape(S, G * K, P),
                             np.repeat(have, K, axis=1))}
        pt = groups.loc[np.repeat(groups.index, K)].reset_index(drop=True)
        pt.insert(1, "category", cat)
        pt["k"] = np.tile(ks, G)
        frames = {"points": pt}
        d_vals, d_have, b_vals, b_have, d_frames, b_frames = [], [], [], [], [], []
        for a, b in pairs:
            ga = groups.loc[groups["policy"] == a].reset_index()
            gb = groups.loc[groups["policy"] == b].reset_index()
            if ga.empty or gb.empty:
                continue
            m = ga.merge(gb, on=["temperature", "T"])
            ia, ib = m["index_x"].to_numpy(), m["index_y"].to_numpy()
            odd = have[:, ia] != have[:, ib]
            if odd.any():
                s, h, p = np.argwhere(odd)[0]
                who = b if have[s, ia[h], p] else a
                raise ValueError(
                    f"pair ({a}, {b}) in category {cat!r} at temperature={m['temperature'][h]}, T={m['T'][h]}, "
                    f"seed {seeds[s]!r}: policy {who!r} lacks problem {pids[p]!r}"
                )
            M = len(m)
            d = (cube[:, ia] - cube[:, ib]).transpose(0, 1, 3, 2).reshape(S, M * K, P)
            d_vals.append(d)
            d_have.append(np.repeat(have[:, ia], K, axis=1))
            sa, sb = np.nan_to_num(sol[:, ia]), np.nan_to_num(sol[:, ib])
            gained, lost = sa * (1 - sb), (1 - sa) * sb
            b_vals.append(np.stack([gained, lost, gained - lost], axis=2).reshape(S, M * 3, P))
            b_have.append(np.repeat(have[:, ia], 3, axis=1))
            base = m[["temperature", "T"]]
            fd = base.loc[np.repeat(base.index, K)].reset_index(drop=True)
            fd.insert(0, "a", a)
            fd.insert(1, "b", b)
            fd.insert(2, "category", cat)
            fd["k"] = np.tile(ks, M)
            d_frames.append(fd)
            fb = base.loc[np.repeat(base.index, 3)].reset_index(drop=True)
            fb.insert(0, "a", a)
            fb.insert(1, "b", b)
            fb.insert(2, "category", cat)
            fb["stat"] = np.tile(["gained", "lost", "net"], M)
            b_frames.append(fb)
        if d_vals:
            blocks["diffs"] = (np.concatenate(d_vals, axis=1), np.concatenate(d_have, axis=1))
            blocks["boundary"] = (np.concatenate(b_vals, axis=1), np.concatenate(b_have, axis=1))
            frames["diffs"] = pd.concat(d_frames, ignore_index=True)
            frames["boundary"] = pd.concat(b_frames, ignore_index=True)
        names = list(blocks)
        sizes = [blocks[nm][0].shape[1] for nm in names]
        values = np.concatenate([blocks[nm][0] for nm in names], axis=1)
        haves = np.concatenate([blocks[nm][1] for nm in names], axis=1)
        per_seed, seed_reps, reps, prob_reps = crossed_bootstrap(values, haves, W, V)
        n_prob = haves.sum(axis=2).max(axis=0)
        for nm, lo, hi in zip(names, np.cumsum([0] + sizes[:-1]), np.cumsum(sizes)):
            acc = parts[nm]
            for lst, arr in zip(acc, (frames[nm], per_seed[:, lo:hi], seed_reps[:, :, lo:hi], reps[:, lo:hi],
                                      prob_reps[:, lo:hi], n_prob[lo:hi])):
                lst.append(arr)

    est_col = {"points": "pass", "diffs": "diff", "boundary": "share"}
    lead = {"points": ["policy"], "diffs": ["a", "b"], "boundary": ["a", "b"]}
    tail = {"points": ["k"], "diffs": ["k"], "boundary": ["stat"]}
    out, per_seed_out, reps_out = {}, {}, {}
    for nm, (fr, ps, sr, rp, pr, npb) in parts.items():
        if not fr:
            cols = lead[nm] + ["category", "temperature", "T"] + tail[nm] + [est_col[nm]]
            out[nm], per_seed_out[nm], reps_out[nm] = pd.DataFrame(columns=cols), pd.DataFrame(
                columns=["seed"] + cols), np.empty((n_boot, 0))
            continue
        frame = pd.concat(fr, ignore_index=True)
        ps, sr, rp, pr, npb = (np.concatenate(x, axis=-1) for x in (ps, sr, rp, pr, npb))
        summ = _summary(frame, est_col[nm], ps, rp, pr, npb, ci, S)
        if nm != "points":
            summ.insert(summ.columns.get_loc(est_col[nm]) + 1, "p", bootstrap_p(summ[est_col[nm]].to_numpy(), rp))
        if nm == "boundary":
            summ["count"] = summ["share"] * npb
            summ["count_ci_low"], summ["count_ci_high"] = summ["ci_low"] * npb, summ["ci_high"] * npb
        out[nm], reps_out[nm] = summ, rp
        per_seed_out[nm] = _per_seed_frame(frame, est_col[nm], seeds, ps, sr, ci)
        if nm == "boundary":
            per_seed_out[nm]["count"] = per_seed_out[nm]["share"] * np.tile(npb, S)
    return HierarchicalBootstrap(
        ks, out["points"], out["diffs"], out["boundary"], per_seed_out, reps_out, seeds, V, resamples
    )


# ============================================================================= 2. zero-inflated beta-binomial

_LOG_AB = (np.log(1e-4), np.log(1e5))  # bounds of log a and log b
_LOGIT = (-30.0, 30.0)  # bounds of logit pi0 (pi0 below 1e-13 reads as 0)


def _histogram(n, c) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Distinct (n, c) pairs, their multiplicities and each problem's pair index (the likelihood's sufficient data)."""
    n, c = np.asarray(n), np.asarray(c)
    if n.shape != c.shape or n.ndim != 1 or n.size == 0:
        raise ValueError(f"n and c must be non-empty 1-D arrays of one length, got shapes {n.shape} and {c.shape}")
    if not (np.all(n == np.round(n)) and np.all(c == np.round(c))):
        raise ValueError("n and c must hold whole numbers")
    n, c = n.astype(np.int64), c.astype(np.int64)
    if np.any(n < 1) or np.any((c < 0) | (c > n)):
        bad = np.flatnonzero((n < 1) | (c < 0) | (c > n))[0]
        raise ValueError(f"problem {bad}: need n >= 1 and 0 <= c <= n, got n={n[bad]}, c={c[bad]}")
    pairs, inv, w = np.unique(np.stack([n, c], axis=1), axis=0, return_inverse=True, return_counts=True)
    return pairs[:, 0].astype(np.float64), pairs[:, 1].astype(np.float64), w.astype(np.float64), inv.ravel()


def _bb_terms(alpha: float, beta: float, nu: np.ndarray, cu: np.ndarray):
    """Beta-binomial log pmf at (nu, cu) and its derivatives with respect to log a and log b."""
    a, b = np.exp(alpha), np.exp(beta)
    lbb = (
        special.gammaln(nu + 1) - special.gammaln(cu + 1) - special.gammaln(nu - cu + 1)
        + special.betaln(cu + a, nu - cu + b) - special.betaln(a, b)
    )
    common = special.digamma(a + b) - special.digamma(nu + a + b)
    da = special.digamma(cu + a) - special.digamma(a) + common
    db = special.digamma(nu - cu + b) - special.digamma(b) + common
    return lbb, a * da, b * db


def _loglik(u: float, alpha: float, beta: float, nu, cu, w, grad: bool = False):
    """ZIBB log-likelihood at logit pi0 = u (u = -inf: plain beta-binomial), log a, log b; optionally its gradient."""
    lp0 = -np.logaddexp(0.0, -u)  # log pi0
    lp1 = -np.logaddexp(0.0, u)  # log (1 - pi0)
    lbb, ga, gb = _bb_terms(alpha, beta, nu, cu)
    zero = cu == 0
    comp = lp1 + lbb
    lj = np.where(zero, np.logaddexp(lp0, comp), comp)
    ll = float(w @ lj)
    if not grad:
        return ll
    r = np.where(zero, np.exp(lp0 - lj), 0.0)  # posterior weight of the point mass
    return ll, np.array([w @ (r - np.exp(lp0)), w @ ((1 - r) * ga), w @ ((1 - r) * gb)])


def zibb_loglik(pi0: float, a: float, b: float, n, c) -> float:
    """Log-likelihood of counts c out of n under pi0 * delta_0 + (1 - pi0) * Beta(a, b) per problem."""
    nu, cu, w, _ = _histogram(n, c)
    u = -np.inf if pi0 <= 0 else (np.inf if pi0 >= 1 else float(special.logit(pi0)))
    return _loglik(u, np.log(a), np.log(b), nu, cu, w)


def zibb_pass_at_k(pi0: float, a: float, b: float, ks) -> np.ndarray:
    """Model Pass@k, E[1 - (1 - p)^k] = (1 - pi0) (1 - B(a, b + k) / B(a, b)), for any k >= 1 (not bounded by n)."""
    ks = _check_ks(ks).astype(np.float64)
    return (1.0 - pi0) * -np.expm1(special.betaln(a, b + ks) - special.betaln(a, b))


def _moment_start(nu, cu, w) -> tuple[float, float]:
    """(log a, log b) from the moments of c/n with the binomial noise taken out (clipped to a sane range)."""
    p = cu / nu
    mu = float(np.clip(w @ p / w.sum(), 1e-3, 1 - 1e-3))
    var = float(w @ (p - mu) ** 2 / w.sum() - mu * (1 - mu) * (w @ (1 / nu)) / w.sum())
    phi = float(np.clip(mu * (1 - mu) / var - 1, 0.2, 1e3)) if var > 0 else 1e3
    return np.log(mu * phi), np.log((1 - mu) * phi)


def _minimise(fun, x0, lo, hi):
    """BFGS on a box: the objective is evaluated at the clipped point and is flat outside the box (scipy's
    L-BFGS-B costs ~25 ms a call in setup here, BFGS ~2 ms for these 2-3 parameter problems)."""
    lo, hi = np.asarray(lo, dtype=np.float64), np.asarray(hi, dtype=np.float64)

    def f(x):
        xc = np.clip(x, lo, hi)
        val, g = fun(xc)
        return val, np.where((x >= lo) & (x <= hi), g, 0.0)

    res = optimize.minimize(f, np.clip(x0, lo, hi), jac=True, method="BFGS", options={"gtol": 1e-6})
    return float(res.fun), np.clip(res.x, lo, hi)


def _fit_full(nu, cu, w, starts) -> tuple[float, np.ndarray]:
    """Best (loglik, (u, log a, log b)) of the optimiser runs from the given starts."""
    best = (-np.inf, None)
    lo, hi = [_LOGIT[0], _LOG_AB[0], _LOG_AB[0]], [_LOGIT[1], _LOG_AB[1], _LOG_AB[1]]
    for x0 in starts:
        fun, x = _minimise(lambda x: tuple(-v for v in _loglik(x[0], x[1], x[2], nu, cu, w, grad=True)), x0, lo, hi)
        if -fun > best[0]:
            best = (-fun, x)
    return best


def _fit_profile(pi0: float, nu, cu, w, start) -> tuple[float, np.ndarray]:
    """Profile log-likelihood at fixed pi0: (max over log a, log b; the maximiser)."""
    u = -np.inf if pi0 <= 0 else float(special.logit(pi0))
    fun, x = _minimise(
        lambda x: (lambda ll, g: (-ll, -g[1:]))(*_loglik(u, x[0], x[1], nu, cu, w, grad=True)),
        start, [_LOG_AB[0]] * 2, [_LOG_AB[1]] * 2,
    )
    return -fun, x


@dataclass(frozen=True)
class ZIBBFit:
    """Maximum-likelihood zero-inflated beta-binomial fit (see :func:`fit_zibb`).

    pi0: boundary mass (share of problems with success probability exactly 0), NaN when not identified;
    pi0_mle: the maximiser whatever the verdict; a, b: Beta parameters of the solvable problems (at the MLE);
    pi0_ci: profile-likelihood interval at level ci; identified: False when that interval spans every value
    from 0 to zero_share (the share of problems with c = 0), i.e. the data cannot tell "all zero-count problems
    are impossible" from "none is"; verdict: "not_identified", "upper_bound" (identified, but the interval
    reaches 0: no evidence of boundary mass, only a bound) or "identified" (the interval excludes 0);
    note: a sentence saying which case holds, with the interval. lr_pi0 / p_pi0: likelihood-ratio
    statistic and chi-bar-squared p-value (0.5 chi2_0 + 0.5 chi2_1) of pi0 = 0; fit_gap: misfit check, the
    largest |model - unbiased estimate| of mean Pass@k over k = 1, 2, 4, ..., min(n) (where the data speak; an
    extrapolation from a model that misses there deserves no trust); loglik: the maximum;
    profile: frame pi0, loglik, a, b of the profile on a grid over [0, zero_share] plus the interval ends.
    """

    pi0: float
    pi0_mle: float
    a: float
    b: float
    pi0_ci: tuple[float, float]
    identified: bool
    verdict: str
    note: str
    zero_share: float
    lr_pi0: float
    p_pi0: float
    fit_gap: float
    loglik: float
    n_problems: int
    ci: float
    profile: pd.DataFrame

    def pass_at_k(self, ks) -> np.ndarray:
        """Extrapolated Pass@k at the MLE (pi0_mle, a, b) for each k (NaN when pi0 is not identified)."""
        out = zibb_pass_at_k(self.pi0_mle, self.a, self.b, ks)
        return out if self.identified else np.full(out.shape, np.nan)

    def pass_at_k_range(self, ks) -> tuple[np.ndarray, np.ndarray]:
        """(min, max) of model Pass@k over the profile points inside the pi0 interval (each with its profiled a, b):
        the range of extrapolations over the pi0 values the data cannot reject at level ci. Defined whether or not
        pi0 is identified. It does not include the uncertainty of (a, b) at a fixed pi0, so it is a range, not a
        confidence interval; ``fit_gap`` says how far the model misses where the data speak."""
        lo, hi = self.pi0_ci
        ok = self.profile[(self.profile["pi0"] >= lo - 1e-9) & (self.profile["pi0"] <= hi + 1e-9)]
        curves = np.stack([zibb_pass_at_k(r.pi0, r.a, r.b, ks) for r in ok.itertuples()])
        return curves.min(axis=0), curves.max(axis=0)


def fit_zibb(n, c, ci: float = 0.95, grid: int = 41) -> ZIBBFit:
    """Fit pi0 * delta_0 + (1 - pi0) * Beta(a, b) to per-problem success counts c out of n by maximum likelihood.

    n, c: 1-D per-problem arrays (n may vary by problem). Each problem's success probability p is drawn from the
    mixture and c ~ Binomial(n, p) given p; problems are independent. The log-likelihood uses betaln / gammaln
    (beta-binomial pmf in logs, logaddexp for the c = 0 mixture), evaluated once per distinct (n, c); the
    optimiser (box-constrained BFGS, analytic gradient, several starts) works on logit pi0, log a, log b.

    Interval: the profile-likelihood interval {pi0: 2 (max loglik - profile loglik(pi0)) <= chi2_1(ci)} (a, b
    re-maximised at each pi0), except at the boundary: it contains 0 exactly when the test of pi0 = 0 (chi-bar-squared,
    0.5 chi2_0 + 0.5 chi2_1, cut-off chi2_1(2 ci - 1)) does not reject at 1 - ci (p_pi0 >= 1 - ci), so the verdict
    and its p-value never disagree; where that test rejects but the chi2_1(ci) cut would still reach 0, the lower
    end is the crossing of the test's cut-off (a one-sided bound at level ci).
    It captures the sampling of problems and of rollouts under the model; not the choice of the Beta family.

    Identification: a problem with c = 0 may have p = 0 or a small p > 0; only the Beta shape, fitted to the
    problems with c > 0 and extrapolated to p near 0, separates the two. When the profile is flat across
    [0, zero_share] (the interval contains both ends), pi0 is reported as NaN with identified = False and
    verdict "not_identified"; use :meth:`ZIBBFit.pass_at_k_range` for the range of extrapolations compatible
    with the data. An interval that reaches 0 but not zero_share gives verdict "upper_bound".

    Cost: a few ms per optimisation (one per distinct (n, c), not per problem), grid + ~20 for the profile.
    """
    ci = _check_ci(ci)
    nu, cu, w, _ = _histogram(n, c)
    P = int(w.sum())
    f0 = float(w[cu == 0].sum() / P)
    la, lb = _moment_start(nu, cu, w)
    thr_drop = sps.chi2.ppf(ci, 1) / 2
    if f0 == 1.0:
        prof = pd.DataFrame({"pi0": [0.0, 1.0], "loglik": [0.0, 0.0], "a": [np.nan] * 2, "b": [np.nan] * 2})
        return ZIBBFit(np.nan, np.nan, np.nan, np.nan, (0.0, 1.0), False, "not_identified",
                       "not identified: no problem was ever solved", 1.0, 0.0, 1.0, 0.0, 0.0, P, ci, prof)
    starts = [np.array([special.logit(q), la, lb]) for q in (1e-4, 0.5 * f0 + 1e-4, 0.95 * f0 + 1e-4)]
    starts += [np.array([special.logit(0.5 * f0 + 1e-4), np.log(0.3), lb])]
    ll_max, x = _fit_full(nu, cu, w, starts)
    # profile on a grid, warm-started from the MLE's (a, b) and then from the neighbour
    rows, start = [], x[1:]
    for q in np.linspace(0.0, f0, grid):
        ll, xy = _fit_profile(q, nu, cu, w, start)
        rows.append((q, ll, *np.exp(xy)))
        start = xy
    prof = pd.DataFrame(rows, columns=["pi0", "loglik", "a", "b"])
    if prof["loglik"].max() > ll_max + 1e-7:  # the full fit missed a better region: restart from there
        r = prof.loc[prof["loglik"].idxmax()]
        ll2, x2 = _fit_full(nu, cu, w, [np.array([special.logit(max(r.pi0, 1e-6)), np.log(r.a), np.log(r.b)])])
        if ll2 > ll_max:
            ll_max, x = ll2, x2
        if prof["loglik"].max() > ll_max:  # MLE on the boundary pi0 = 0 (logit bound) or at a grid point
            ll_max = float(prof["loglik"].max())
            x = np.array([special.logit(max(r.pi0, 1e-13)), np.log(r.a), np.log(r.b)])
    pi0_hat = float(special.expit(x[0]))
    thr = ll_max - thr_drop
    thr_lo = ll_max - sps.chi2.ppf(2 * ci - 1, 1) / 2  # the boundary test's cut-off (chi-bar-squared at 1 - ci)
    ab_hat = x[1:]

    def gap(q, cut=thr):
        return _fit_profile(q, nu, cu, w, ab_hat)[0] - cut

    def edge(inside: float, outside: float, cut: float = thr) -> float:
        """Where the profile crosses the cut-off between a point inside the interval and one outside."""
        try:
            return float(optimize.brentq(gap, min(inside, outside), max(inside, outside), args=(cut,), xtol=1e-5))
        except ValueError:  # optimiser noise put both ends on one side: take the end nearer the cut-off
            return min((inside, outside), key=lambda q: abs(gap(q, cut)))

    ll0, ll_f0 = float(prof["loglik"].iloc[0]), float(prof["loglik"].iloc[-1])
    # 0 is inside unless the boundary test rejects; a lower end away from 0 is the usual chi2_1(ci) crossing, and
    # only where the two cut-offs disagree (0 rejected by the test, not by chi2_1) the crossing of the test's cut
    if ll0 >= thr_lo:
        lo = 0.0
    else:
        lo = edge(pi0_hat, 0.0, thr) if ll0 < thr else edge(pi0_hat, 0.0, thr_lo)
        lo = max(lo, float(np.nextafter(0.0, 1.0)))  # the test rejected pi0 = 0: the interval never reaches it
    hi = edge(pi0_hat, f0) if ll_f0 < thr else edge(f0, 1.0 - 1e-9)
    extra = []
    for q in (lo, hi):
        ll, xy = _fit_profile(q, nu, cu, w, ab_hat)
        extra.append((q, ll, *np.exp(xy)))
    prof = pd.concat([prof, pd.DataFrame(extra, columns=prof.columns)]).sort_values("pi0", ignore_index=True)
    n_min = int(nu.min())
    ks_obs = np.unique(np.append(2 ** np.arange(int(np.log2(n_min)) + 1), n_min))
    observed = w @ pass_at_k(nu.astype(np.int64), cu.astype(np.int64), ks_obs) / P
    fit_gap = float(np.abs(zibb_pass_at_k(pi0_hat, np.exp(x[1]), np.exp(x[2]), ks_obs) - observed).max())
    lr = max(0.0, 2 * (ll_max - ll0))
    p0 = float(0.5 * sps.chi2.sf(lr, 1)) if lr > 0 else 1.0
    identified = f0 == 0.0 or not (lo <= 0.0 and hi >= f0)
    if not identified:
        verdict = "not_identified"
        note = (f"not identified: the profile likelihood is flat over [0, {f0:.3f}] (every share of the zero-count "
                f"problems, from none to all, may be impossible); interval [{lo:.3f}, {hi:.3f}]")
    elif lo <= 0.0:
        verdict = "upper_bound"
        note = (f"bounded above: pi0 <= {hi:.3f} (profile likelihood, {ci:.0%}), 0 not excluded; "
                f"{f0:.3f} of problems have c = 0")
    else:
        verdict = "identified"
        note = (f"identified: pi0 in [{lo:.3f}, {hi:.3f}] (profile likelihood, {ci:.0%}); "
                f"{f0:.3f} of problems have c = 0")
    return ZIBBFit(
        pi0_hat if identified else np.nan, pi0_hat, float(np.exp(x[1])), float(np.exp(x[2])), (float(lo), float(hi)),
        identified, verdict, note, f0, float(lr), p0, fit_gap, float(ll_max), P, ci, prof,
    )


def zibb_bootstrap(n, c, ks, n_boot: int = 200, seed: int = 0, ci: float = 0.95) -> dict:
    """Problem bootstrap of the ZIBB maximum-likelihood fit: refit on n_boot resamples of the problems.

    Returns {"pi0": (n_boot,) replicates of pi0_mle, "pass": (n_boot x len(ks)) replicates of the extrapolated
    Pass@k, "pi0_ci": percentile interval, "pass_ci_low"/"pass_ci_high": (len(ks),), "pi0_zero_frac": share of
    replicates whose pi0 fit is 0 (below 1e-6): many means the boundary matters and the percentile interval of
    pi0 is unreliable near 0 (prefer the profile interval of :func:`fit_zibb`)}. Captures the sampling of
    problems (with their rollouts) and model-free misfit between problems; relies on the fit being identified.
    """
    ci = _check_ci(ci)
    ks = _check_ks(ks)
    nu, cu, w, inv = _histogram(n, c)
    P = inv.size
    W = resample_weights(np.random.default_rng([int(seed), 2, zlib.crc32(b"zibb")]), int(n_boot), P)
    Wh = np.zeros((int(n_boot), nu.size))
    np.add.at(Wh.T, inv, W.T)  # replicate multiplicities of each distinct (n, c)
    f0 = float(w[cu == 0].sum() / P)
    la, lb = _moment_start(nu, cu, w)
    _, x_hat = _fit_full(nu, cu, w, [np.array([special.logit(q), la, lb]) for q in (1e-4, 0.5 * f0 + 1e-4, 0.95 * f0 + 1e-4)])
    pi0s, curves = np.empty(int(n_boot)), np.empty((int(n_boot), ks.size))
    for i, wi in enumerate(Wh):
        keep = wi > 0
        f0 = float(wi[keep & (cu == 0)].sum() / P)
        la, lb = _moment_start(nu[keep], cu[keep], wi[keep])  # two starts: the full-sample MLE and the moments
        _, x = _fit_full(nu[keep], cu[keep], wi[keep], [x_hat, np.array([special.logit(0.5 * f0 + 1e-4), la, lb])])
        pi0s[i] = special.expit(x[0])
        curves[i] = zibb_pass_at_k(pi0s[i], np.exp(x[1]), np.exp(x[2]), ks)
    lo, hi = _quantiles(curves, ci)
    plo, phi = _quantiles(pi0s[:, None], ci)
    return {
        "pi0": pi0s, "pass": curves, "pi0_ci": (float(plo[0]), float(phi[0])),
        "pass_ci_low": lo, "pass_ci_high": hi, "pi0_zero_frac": float(np.mean(pi0s < 1e-6)),
    }


# ============================================================================= 3. deep boundary sampling bookkeeping


def boundary_candidates(
    counts: pd.DataFrame, a: str, b: str, T: int, temperature: float, category: str | None = None
) -> pd.DataFrame:
    """Problems one policy solves within n and the other never does, at one (T, temperature) -- the problems to
    deep-sample with the policy that never solved them.

    counts: a counts frame of :mod:`passkt.metrics` for ONE replicate (select a seed first; duplicate keys
    raise). Returns one row per discordant problem, sorted by direction, category, problem_id: category,
    problem_id, direction ("gained": a solved, b never; "lost": b solved, a never), solver, other (the policy to
    deep-sample), n_solver, c_solver, n_other (its screening draws, all failures). Problems either policy lacks
    are skipped.
    """
    from passkt.metrics import check_counts

    check_counts(counts)
    rows = counts[(counts["T"] == T).to_numpy() & np.isclose(counts["temperature"], temperature)]
    if category is not None:
        rows = rows[rows["category"] == category]
    for pol in (a, b):
        if not (rows["policy"] == pol).any():
            raise ValueError(f"boundary_candidates: no counts for policy {pol!r} at T={T}, temperature={temperature}")
    ra = rows[rows["policy"] == a][["category", "problem_id", "n", "c"]]
    rb = rows[rows["policy"] == b][["category", "problem_id", "n", "c"]]
    m = ra.merge(rb, on=["category", "problem_id"], suffixes=("_a", "_b"))
    gained = m[(m["c_a"] > 0) & (m["c_b"] == 0)]
    lost = m[(m["c_a"] == 0) & (m["c_b"] > 0)]
    cols = ["category", "problem_id", "direction", "solver", "other", "n_solver", "c_solver", "n_other"]
    out = pd.concat(
        [
            pd.DataFrame({"category": gained["category"], "problem_id": gained["problem_id"], "direction": "gained",
                          "solver": a, "other": b, "n_solver": gained["n_a"], "c_solver": gained["c_a"],
                          "n_other": gained["n_b"]}),
            pd.DataFrame({"category": lost["category"], "problem_id": lost["problem_id"], "direction": "lost",
                          "solver": b, "other": a, "n_solver": lost["n_b"], "c_solver": lost["c_b"],
                          "n_other": lost["n_a"]}),
        ],
        ignore_index=True,
    )
    return out[cols].sort_values(["direction", "category", "problem_id"], ignore_index=True)


def geometric_interval(first_success, draws: int, conf: float = 0.95) -> tuple[float, float]:
    """Exact interval for a success probability p from sampling until the first success, at most ``draws`` times.

    first_success: the (1-based) draw of the first success, or None when all ``draws`` failed. Solved at draw d:
    the two-sided equal-tailed interval [1 - (1 - alpha/2)^(1/d), 1 - (alpha/2)^(1/(d-1))] (upper end 1 when
    d = 1) of the geometric distribution, alpha = 1 - conf. Never solved in m = draws: the one-sided upper
    bound [0, 1 - alpha^(1/m)] (rule of three: about 3/m at conf = 0.95).
    """
    if not 0 < conf < 1:
        raise ValueError(f"conf must lie in (0, 1), got {conf}")
    alpha = 1.0 - conf
    if first_success is None:
        if int(draws) != draws or draws < 1:
            raise ValueError(f"draws must be a positive integer, got {draws}")
        return 0.0, float(-np.expm1(np.log(alpha) / draws))
    d = int(first_success)
    if d != first_success or not 1 <= d <= draws:
        raise ValueError(f"first_success must be a whole number in [1, draws={draws}], got {first_success}")
    lo = float(-np.expm1(np.log1p(-alpha / 2) / d))
    hi = 1.0 if d == 1 else float(-np.expm1(np.log(alpha / 2) / (d - 1)))
    return lo, hi


def deep_sampling_summary(
    candidates: pd.DataFrame, outcomes: dict, n_deep: int, conf: float = 0.95, screen_draws: bool = False
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """What deep sampling of the never-solving policy found, per problem and per (direction, category).

    candidates: :func:`boundary_candidates`. outcomes: problem_id -> the (1-based) deep draw of the other
    policy's first success, or None when it failed all n_deep draws; candidates absent from outcomes count as
    not (yet) sampled. Sampling stops at the first success, so a solved problem has a geometric outcome.

    Per problem (the candidate columns plus): sampled, solved_at_depth, first_success (NaN if never),
    draws_used, m (draws the interval uses), p_hat (1 / m for a solved problem, the geometric MLE; 0 when never
    solved), p_low, p_high (:func:`geometric_interval` at conf: for a never-solved problem the one-sided upper
    bound 1 - (1 - conf)^(1/m)).

    By default m counts the deep draws only: the problems were picked BECAUSE the other policy failed all its
    n screening draws, and given that selection only the fresh draws are an unbiased sample (independent
    draws are memoryless). screen_draws=True adds the n_other screening failures (tighter, but below nominal
    coverage for problems chosen by those very failures).

    Summary per (direction, category): n_candidates, n_sampled, n_solved_at_depth, solved_share with its
    Wilson interval at conf (ci_low, ci_high) among the sampled, median_first_success, n_never and
    max_p_high_never (the loosest bound among the never-solved problems: each has p <= that at conf, one by one,
    not jointly). The share captures which candidates happened to be screened out by chance (the ones the other
    policy can solve, only rarely); it treats the candidates as fixed, not as a sample of problems.
    """
    if int(n_deep) != n_deep or n_deep < 1:
        raise ValueError(f"n_deep must be a positive integer, got {n_deep}")
    unknown = set(outcomes) - set(candidates["problem_id"])
    if unknown:
        raise ValueError(f"outcomes name problem(s) that are not candidates, e.g. {sorted(map(str, unknown))[:3]}")
    per = candidates.copy()
    rows = []
    for r in per.itertuples():
        sampled = r.problem_id in outcomes
        fs = outcomes.get(r.problem_id) if sampled else None
        if not sampled:
            rows.append((False, False, np.nan, 0, np.nan, np.nan, np.nan, np.nan))
            continue
        extra = int(r.n_other) if screen_draws else 0
        if fs is None:
            m = n_deep + extra
            lo, hi = geometric_interval(None, m, conf)
            rows.append((True, False, np.nan, n_deep, m, 0.0, lo, hi))
        else:
            lo, hi = geometric_interval(fs, n_deep, conf)  # validates fs in [1, n_deep]
            m = int(fs) + extra
            if extra:
                lo, hi = geometric_interval(m, m, conf)
            rows.append((True, True, float(fs), int(fs), m, 1.0 / m, lo, hi))
    cols = ["sampled", "solved_at_depth", "first_success", "draws_used", "m", "p_hat", "p_low", "p_high"]
    per = pd.concat([per, pd.DataFrame(rows, columns=cols, index=per.index)], axis=1)
    per["sampled"] = per["sampled"].astype(bool)
    per["solved_at_depth"] = per["solved_at_depth"].astype(bool)
    summ = []
    for (direction, cat), g in per.groupby(["direction", "category"], sort=True):
        s = g[g["sampled"]]
        k, ns = int(s["solved_at_depth"].sum()), len(s)
        lo, hi = wilson_interval(k, ns, conf) if ns else (np.nan, np.nan)
        never = s[~s["solved_at_depth"]]
        summ.append({
            "direction": direction, "category": cat, "n_candidates": len(g), "n_sampled": ns,
            "n_solved_at_depth": k, "solved_share": k / ns if ns else np.nan, "ci_low": lo, "ci_high": hi,
            "median_first_success": float(s["first_success"].median()) if k else np.nan,
            "n_never": len(never), "max_p_high_never": float(never["p_high"].max()) if len(never) else np.nan,
        })
    return per, pd.DataFrame(summ)
