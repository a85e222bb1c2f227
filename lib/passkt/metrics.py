"""Pass@(k,T) statistics: estimator, surfaces, paired bootstrap, capability boundary, diagnostics.

Input is a *counts* frame, one row per (policy, category, problem_id, temperature, T) with integer
columns ``n`` (rollouts) and ``c`` (successes among them). Everything here is a pure function of
that frame; nothing reads params.yaml or the environment.

Definitions (the paper names these diagnostics but leaves the formulas open; these are ours):

- Pass@(k,T) of one problem: the unbiased Codex estimator 1 - C(n-c,k)/C(n,k), computed in the
  stable product form 1 - prod_{i=n-c+1}^{n} (1 - k/i). Dataset score = mean over problems.
- Marginal value of one more sample: Delta_k(k,T) = Pass@(k+1,T) - Pass@(k,T). It needs k+1 <= n,
  so it is NaN at k = n.
- Marginal value of one more round, per round: Delta_T(k,T) = [Pass@(k,T') - Pass@(k,T)] / (T' - T),
  where T' is the next budget on the grid (NaN at the largest T).
- Saturation depth T*(k): the smallest grid T such that for every larger grid T',
  Pass@(k,T') - Pass@(k,T) < eps (default eps = 0.01). NaN when a curve has fewer than two depths
  (there is nothing to saturate against, e.g. math which is evaluated at T = 0 only).
- Capability boundary B_T(pi): problems with c > 0, i.e. solved at least once in n rollouts at T.
- Crossover k of curve a over curve b: the smallest grid k at which a >= b and a stays >= b for all
  larger grid k. NaN if that never happens, and also NaN if a >= b already at the smallest k: a
  crossover means b led first (ties at the smallest k count as "a already level", hence NaN).

Uncertainty: a paired bootstrap over problems. Within each category the problems are resampled
with one (n_boot x P) index matrix shared by every policy, temperature and depth, so differences
between policies are paired. Intervals are percentile intervals; the p-value of a difference is the
share of resampled differences on the other side of 0 from the estimate (0 itself counts as the
other side), doubled and capped at 1 (an estimate of exactly 0 gets p = 1).
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from scipy import stats

KEYS = ("policy", "category", "problem_id", "temperature", "T")
COLUMNS = KEYS + ("n", "c")
GROUP = ("policy", "category", "temperature", "T")


# ----------------------------------------------------------------------------- the estimator


def _as_int_array(x, name: str) -> np.ndarray:
    """Return x as an int64 array; raise if any value is not a whole number."""
    a = np.asarray(x)
    if a.dtype.kind in "iu":
        return a.astype(np.int64)
    if (
        a.dtype.kind == "b"
        or a.dtype.kind not in "f"
        or not np.all(np.isfinite(a))
        or np.any(a != np.round(a))
    ):
        raise ValueError(
            f"{name} must hold whole numbers, got dtype {a.dtype} with values like {a.ravel()[:3]}"
        )
    return a.astype(np.int64)


def _check_ks(k) -> np.ndarray:
    """Validate a k grid: a non-empty 1-D array of integers >= 1 (a scalar becomes length 1)."""
    ks = _as_int_array(np.atleast_1d(k), "k")
    if ks.ndim != 1 or ks.size == 0:
        raise ValueError(f"k must be a non-empty 1-D array, got shape {ks.shape}")
    if np.any(ks < 1):
        raise ValueError(f"k must be >= 1, got k={ks[ks < 1][0]}")
    return ks


def pass_at_k(n, c, k) -> np.ndarray:
    """Unbiased pass@k per problem, 1 - C(n-c,k)/C(n,k), as 1 - prod_{i=n-c+1}^{n} (1 - k/i).

    n, c: integer arrays of the same shape (...); k: 1-D integer array (a scalar counts as [k]).
    Returns float64 of shape (..., len(k)). Exact edge cases: c = 0 gives 0, n - c < k gives 1.
    Pass@1 telescopes to c/n; in floating point it matches to about one ulp per factor (<= c eps).
    For each distinct n one (n+1, K) table of the running product is built (c = 0..n), so the cost
    is one cumprod per distinct n plus a gather, whatever the number of problems.
    """
    n, c, ks = _as_int_array(n, "n"), _as_int_array(c, "c"), _check_ks(k)
    if n.shape != c.shape:
        raise ValueError(f"n and c must have the same shape, got {n.shape} and {c.shape}")
    out = np.empty(n.shape + (ks.size,), dtype=np.float64)
    if n.size == 0:
        return out
    if np.any(n < 1):
        raise ValueError(f"n must be >= 1, got n={n[n < 1].ravel()[0]}")
    if np.any((c < 0) | (c > n)):
        bad = (c < 0) | (c > n)
        raise ValueError(f"c must lie in [0, n], got c={c[bad].ravel()[0]} with n={n[bad].ravel()[0]}")
    if ks.max() > n.min():
        raise ValueError(f"k={ks.max()} exceeds n={n.min()} rollouts; pass@k needs k <= n")
    for n_u in np.unique(n):
        i = np.arange(n_u, 0, -1, dtype=np.float64)[:, None]  # n, n-1, ..., 1
        table = np.ones((n_u + 1, ks.size))
        table[1:] = np.cumprod(1.0 - ks[None, :] / i, axis=0)  # row c = prod over the top c values of i
        sel = n == n_u
        out[sel] = 1.0 - table[c[sel]]
    return out


# ----------------------------------------------------------------------------- counts and surfaces


def check_counts(counts: pd.DataFrame) -> pd.DataFrame:
    """Validate a counts frame (columns, whole numbers, 0 <= c <= n, unique keys) and return it."""
    missing = [col for col in COLUMNS if col not in counts.columns]
    if missing:
        raise ValueError(f"counts is missing column(s) {missing}; needs {list(COLUMNS)}")
    n, c = _as_int_array(counts["n"].to_numpy(), "n"), _as_int_array(counts["c"].to_numpy(), "c")
    if np.any((c < 0) | (c > n)):
        row = counts.index[(c < 0) | (c > n)][0]
        raise ValueError(f"counts row {row}: c={counts.at[row, 'c']} is outside [0, n={counts.at[row, 'n']}]")
    keys = list(KEYS) + (["replicate"] if "replicate" in counts.columns else [])
    dup = counts.duplicated(keys)
    if dup.any():
        key = counts.loc[dup.to_numpy(), keys].iloc[0].to_dict()
        raise ValueError(f"counts has duplicate rows for key {key}")
    return counts


def _problem_matrix(counts: pd.DataFrame, ks: np.ndarray) -> tuple[pd.DataFrame, np.ndarray]:
    """Per-problem pass matrix: (key columns frame, float array rows x len(ks))."""
    check_counts(counts)
    keys = counts[list(KEYS)].reset_index(drop=True)
    return keys, pass_at_k(counts["n"].to_numpy(), counts["c"].to_numpy(), ks)


def pass_surface(counts: pd.DataFrame, ks) -> pd.DataFrame:
    """Mean Pass@(k,T) over problems for every (policy, category, temperature, T, k).

    Long frame with columns policy, category, temperature, T, k, pass, n_problems.
    """
    ks = _check_ks(ks)
    keys, mat = _problem_matrix(counts, ks)
    wide = pd.DataFrame(mat, columns=ks).groupby([keys[g] for g in GROUP], sort=True)
    means = wide.mean()  # with training replicates: the mean over replicates and problems (balanced replicates)
    sizes = keys.groupby(list(GROUP), sort=True)["problem_id"].nunique()
    out = means.index.to_frame(index=False).loc[np.repeat(np.arange(len(means)), ks.size)]
    out = out.reset_index(drop=True)
    out["k"] = np.tile(ks, len(means))
    out["pass"] = means.to_numpy().ravel()
    out["n_problems"] = np.repeat(sizes.to_numpy(), ks.size)
    return out


# ----------------------------------------------------------------------------- paired bootstrap


def _rng_for(seed: int, category: str) -> np.random.Generator:
    """One generator per (seed, category): a category's resample does not depend on the others."""
    return np.random.default_rng([seed, zlib.crc32(str(category).encode())])


def category_rng(seed: int, category: str) -> np.random.Generator:
    """The generator :func:`bootstrap_surface` resamples ``category``'s problems with (for paired statistics)."""
    return _rng_for(seed, category)


def resample_weights(rng: np.random.Generator, n_boot: int, n_items: int) -> np.ndarray:
    """(n_boot x n_items) multiplicities of a with-replacement resample drawn as an index matrix."""
    idx = rng.integers(0, n_items, size=(n_boot, n_items))
    flat = idx + n_items * np.arange(n_boot)[:, None]
    return np.bincount(flat.ravel(), minlength=n_boot * n_items).reshape(n_boot, n_items).astype(np.float64)


def _percentiles(reps: np.ndarray, ci: float) -> tuple[np.ndarray, np.ndarray]:
    """Percentile interval along axis 0 (NaN replicates ignored)."""
    q = [(1 - ci) / 2, (1 + ci) / 2]
    lo, hi = (np.nanquantile if np.isnan(reps).any() else np.quantile)(reps, q, axis=0)
    return lo, hi


def effect(key: str, estimate: float, reps: np.ndarray, ci: float) -> dict[str, float]:
    """Flat keys of one effect from its bootstrap replicates: ``key`` (the estimate), ``.ci_low``/``.ci_high``
    (the two-sided ``ci`` percentile interval), ``.p`` (:func:`bootstrap_p`) and ``.tost_low``/``.tost_high``:
    the (2 ci - 1) interval, i.e. quantiles (1 - ci, ci). Equivalence within a margin m at level alpha = 1 - ci
    (two one-sided tests) holds exactly when -m < tost_low and tost_high < m; the margin belongs to the rule
    that reads the effect, not to this function."""
    reps = np.asarray(reps, dtype=np.float64).reshape(-1, 1)
    lo, hi = _percentiles(reps, ci)
    t_lo, t_hi = _percentiles(reps, 2 * ci - 1)
    return {
        key: float(estimate),
        f"{key}.ci_low": float(lo[0]),
        f"{key}.ci_high": float(hi[0]),
        f"{key}.p": float(bootstrap_p(np.array([estimate]), reps)[0]),
        f"{key}.tost_low": float(t_lo[0]),
        f"{key}.tost_high": float(t_hi[0]),
    }


def bootstrap_p(estimate: np.ndarray, reps: np.ndarray) -> np.ndarray:
    """Two-sided bootstrap p: 2 x share of replicates on the other side of 0 (0 included), capped at 1."""
    est = np.asarray(estimate, dtype=np.float64)
    other = np.where(est > 0, reps <= 0, reps >= 0)
    p = np.minimum(1.0, 2.0 * other.mean(axis=0))
    return np.where(est == 0, 1.0, p)


def _category_cube(keys: pd.DataFrame, mat: np.ndarray):
    """Arrange one category's rows as (groups, problems, k) with NaN where a group lacks a problem."""
    pos, pids = pd.factorize(keys["problem_id"], sort=True)
    by = keys.groupby(["policy", "temperature", "T"], sort=True)
    gcode, groups = by.ngroup().to_numpy(), by.size().index.to_frame(index=False)
    cube = np.full((len(groups), len(pids), mat.shape[1]), np.nan)
    cube[gcode, pos] = mat
    return groups, np.asarray(pids), cube


def _where(frame: pd.DataFrame, where: dict) -> np.ndarray:
    """Rows of ``frame`` matching every (column, value) of ``where`` (temperature compared float-tolerantly)."""
    mask = np.ones(len(frame), dtype=bool)
    for col, val in where.items():
        mask &= np.isclose(frame[col], val) if col == "temperature" else (frame[col] == val).to_numpy()
    return mask


@dataclass(frozen=True)
class BootstrapSurface:
    """Estimates, percentile intervals and raw replicates of a paired bootstrap.

    points: policy, category, temperature, T, k, pass, se, ci_low, ci_high.
    diffs: a, b, category, temperature, T, k, diff, se, ci_low, ci_high, p   (diff = a - b).
    point_reps / diff_reps: (n_boot x rows) replicates, column j belongs to row j of the frame.
    resamples: category -> (problem ids in column order, the (n_boot x P) weights every replicate of that
    category was drawn with), for statistics that must share the resample (paired with the ones here).
    """

    ks: np.ndarray
    points: pd.DataFrame
    diffs: pd.DataFrame
    point_reps: np.ndarray
    diff_reps: np.ndarray
    resamples: dict = field(default_factory=dict)

    def _columns(self, frame: pd.DataFrame, where: dict) -> np.ndarray:
        cols = np.flatnonzero(_where(frame, where))
        if cols.size != self.ks.size:
            raise KeyError(f"no bootstrap curve for {where}")
        return cols[np.argsort(frame["k"].to_numpy()[cols])]

    def curve(self, policy: str, category: str, temperature: float, T: int) -> tuple[np.ndarray, np.ndarray]:
        """(estimate over ks, replicates n_boot x len(ks)) of one policy's pass curve."""
        cols = self._columns(
            self.points, dict(policy=policy, category=category, temperature=temperature, T=T)
        )
        return self.points["pass"].to_numpy()[cols], self.point_reps[:, cols]

    def diff_curve(
        self, a: str, b: str, category: str, temperature: float, T: int
    ) -> tuple[np.ndarray, np.ndarray]:
        """(estimate over ks, replicates n_boot x len(ks)) of the paired difference a - b."""
        cols = self._columns(self.diffs, dict(a=a, b=b, category=category, temperature=temperature, T=T))
        return self.diffs["diff"].to_numpy()[cols], self.diff_reps[:, cols]


def _resampled_means(W: np.ndarray, values: np.ndarray, have: np.ndarray) -> np.ndarray:
    """Replicate means (n_boot x G*K) of values (G, P, K) over the problems each group has (G, P)."""
    G, P, K = values.shape
    num = W @ np.nan_to_num(values).transpose(1, 0, 2).reshape(P, G * K)
    with np.errstate(invalid="ignore", divide="ignore"):  # a resample may miss all of a group's problems
        return (num.reshape(-1, G, K) / (W @ have.T)[:, :, None]).reshape(-1, G * K)


def _matched_groups(groups: pd.DataFrame, have: np.ndarray, pids: np.ndarray, a: str, b: str, cat: str):
    """Group indices of a and b at their shared (temperature, T) points; raise if problems differ."""
    ga, gb = (groups.loc[groups["policy"] == pol].reset_index() for pol in (a, b))
    m = ga.merge(gb, on=["temperature", "T"])
    ia, ib = m["index_x"].to_numpy(), m["index_y"].to_numpy()
    odd = have[ia] != have[ib]
    if odd.any():
        h, p = np.argwhere(odd)[0]
        who = b if have[ia[h], p] else a
        raise ValueError(
            f"pair ({a}, {b}) in category {cat!r} at temperature={m['temperature'][h]}, T={m['T'][h]}: "
            f"policy {who!r} lacks problem {pids[p]!r}"
        )
    return ia, ib, m[["temperature", "T"]]


def _finish(frames: list, reps: list, value: str, ci: float, n_boot: int) -> tuple[pd.DataFrame, np.ndarray]:
    """Concatenate per-category frames and replicates; add se, percentile interval and (diffs) p."""
    lead = ["a", "b"] if value == "diff" else ["policy"]
    cols = lead + ["category", "temperature", "T", "k", value, "se", "ci_low", "ci_high"]
    if not frames:
        return pd.DataFrame(columns=cols + (["p"] if value == "diff" else [])), np.empty((n_boot, 0))
    frame, rep = pd.concat(frames, ignore_index=True), np.concatenate(reps, axis=1)
    frame["se"] = np.nanstd(rep, axis=0, ddof=1) if n_boot > 1 else np.nan
    frame["ci_low"], frame["ci_high"] = _percentiles(rep, ci)
    if value == "diff":
        frame["p"] = bootstrap_p(frame["diff"].to_numpy(), rep)
    return frame, rep


def bootstrap_surface(
    counts: pd.DataFrame, ks, pairs=(), n_boot: int = 1000, seed: int = 0, ci: float = 0.95
) -> BootstrapSurface:
    """Paired bootstrap over problems of every Pass@(k,T) point and of policy differences.

    Within each category one index matrix (n_boot x P) resamples problems for all policies,
    temperatures and depths. pairs: (a, b) policy names; a pair is skipped in a category where
    either policy is absent and compared on the (temperature, T) points both have; a problem present
    for one policy and missing for the other raises. Returns a :class:`BootstrapSurface`.
    """
    ks = _check_ks(ks)
    if int(n_boot) != n_boot or n_boot < 1:
        raise ValueError(f"n_boot must be a positive integer, got {n_boot}")
    if not 0 < ci < 1:
        raise ValueError(f"ci must lie in (0, 1), got {ci}")
    n_boot, K = int(n_boot), ks.size
    keys, mat = _problem_matrix(counts, ks)
    pt_frames, pt_reps, df_frames, df_reps, resamples = [], [], [], [], {}
    for cat in sorted(keys["category"].unique()):
        sel = (keys["category"] == cat).to_numpy()
        groups, pids, cube = _category_cube(keys[sel], mat[sel])  # cube: (G, P, K)
        W = resample_weights(_rng_for(seed, cat), n_boot, len(pids))
        resamples[cat] = pids, W
        have = ~np.isnan(cube[:, :, 0])
        frame = groups.loc[np.repeat(groups.index, K)].reset_index(drop=True)
        frame.insert(1, "category", cat)
        frame["k"], frame["pass"] = np.tile(ks, len(groups)), np.nanmean(cube, axis=1).ravel()
        pt_frames.append(frame)
        pt_reps.append(_resampled_means(W, cube, have))
        for a, b in pairs:
            if not ((groups["policy"] == a).any() and (groups["policy"] == b).any()):
                continue
            ia, ib, where = _matched_groups(groups, have, pids, a, b, cat)
            d = np.where(have[ia][:, :, None], cube[ia] - cube[ib], np.nan)  # paired per-problem differences
            frame = where.loc[np.repeat(where.index, K)].reset_index(drop=True)
            frame.insert(0, "a", a)
            frame.insert(1, "b", b)
            frame.insert(2, "category", cat)
            frame["k"], frame["diff"] = np.tile(ks, len(ia)), np.nanmean(d, axis=1).ravel()
            df_frames.append(frame)
            df_reps.append(_resampled_means(W, d, have[ia]))
    points, point_reps = _finish(pt_frames, pt_reps, "pass", ci, n_boot)
    diffs, diff_reps = _finish(df_frames, df_reps, "diff", ci, n_boot)
    return BootstrapSurface(ks, points, diffs, point_reps, diff_reps, resamples)


# ----------------------------------------------------------------------------- training replicates

SHARED = ("base",)  # policies evaluated once and shared by every training replicate (the base model is given)


def with_replicates(counts: pd.DataFrame) -> pd.DataFrame:
    """The counts frame with a ``replicate`` column (one replicate, 0, where it has none)."""
    return counts if "replicate" in counts.columns else counts.assign(replicate=0)


def replicate_sets(counts: pd.DataFrame) -> dict[str, tuple]:
    """Policy -> the training replicates it has (a shared policy: None, it enters every replicate)."""
    c = with_replicates(counts)
    return {pol: None if pol in SHARED else tuple(sorted(int(r) for r in g["replicate"].unique()))
            for pol, g in c.groupby("policy", sort=True)}


def all_replicates(sets: dict) -> tuple:
    """Every training replicate any policy of ``sets`` (:func:`replicate_sets`) has; (0,) if only shared ones."""
    return tuple(sorted({r for v in sets.values() if v for r in v})) or (0,)


def pair_replicates(sets: dict, a: str, b: str) -> tuple | None:
    """The replicates a comparison of a and b rests on: those both have (a shared policy has all)."""
    ra, rb = sets[a], sets[b]
    if ra is None or rb is None:
        return rb if ra is None else ra
    return tuple(sorted(set(ra) & set(rb)))


@dataclass(frozen=True)
class ReplicateSurface(BootstrapSurface):
    """A :class:`BootstrapSurface` whose replicates resample training seeds, then problems (two levels).

    Built by :func:`replicate_surface`: every curve rests on its policy's replicates, every difference on the
    replicates both policies have; ``hier`` maps each such replicate set to its
    :class:`passkt.stats.HierarchicalBootstrap` (per-seed tables, seed draws). Within a set every seed and policy
    see the same drawn problems; the problem draw of a category is the same in every set (same seed).
    """

    hier: dict = field(default_factory=dict)

    def for_pair(self, sets: dict, a: str, b: str):
        return self.hier[pair_replicates(sets, a, b)]


def replicate_surface(counts: pd.DataFrame, ks, pairs=(), n_boot: int = 1000, seed: int = 0,
                      ci: float = 0.95) -> ReplicateSurface:
    """Two-level paired bootstrap (training seeds, then problems) of every curve point and policy difference.

    Estimates are means over replicates of the per-replicate mean over problems; intervals resample replicates
    and problems (:func:`passkt.stats.hierarchical_bootstrap`); with one replicate everything equals
    :func:`bootstrap_surface`. Extra columns: seed_sd, seed_min, seed_max, n_seeds, ci_low_problems,
    ci_high_problems (the interval with the seeds held fixed).
    """
    from passkt import stats as st

    c = with_replicates(counts)
    sets = replicate_sets(c)
    full = all_replicates(sets)
    need: dict[tuple, tuple[list, list]] = {}
    for pol, r in sets.items():
        need.setdefault(r or full, ([], []))[0].append(pol)
    for a, b in pairs:
        if a in sets and b in sets:
            need.setdefault(pair_replicates(sets, a, b) or full, ([], []))[1].append((a, b))
    hier, pt, pr, dfs, dr = {}, [], [], [], []
    for rset, (pols, prs) in sorted(need.items()):
        keep = (c["policy"].isin(SHARED) | c["replicate"].isin(rset)).to_numpy()
        use = c[keep & c["policy"].isin(set(pols) | {x for ab in prs for x in ab}).to_numpy()]
        covers = {q for q, r in sets.items() if r is None or set(rset) <= set(r)}  # policies that have every replicate
        use = use[use["policy"].isin(covers)]
        hb = st.hierarchical_bootstrap(use, ks, prs, n_boot=n_boot, seed=seed, ci=ci, seed_col="replicate",
                                       shared=SHARED)
        hier[rset] = hb
        sel = hb.points["policy"].isin(pols).to_numpy()
        pt.append(hb.points[sel])
        pr.append(hb.reps["points"][:, sel])
        if len(hb.diffs):
            dfs.append(hb.diffs)
            dr.append(hb.reps["diffs"])
    points = pd.concat(pt, ignore_index=True)
    point_reps = np.concatenate(pr, axis=1)
    diffs = pd.concat(dfs, ignore_index=True) if dfs else pd.DataFrame(
        columns=["a", "b", "category", "temperature", "T", "k", "diff", "p", "ci_low", "ci_high"])
    diff_reps = np.concatenate(dr, axis=1) if dr else np.empty((int(n_boot), 0))
    with np.errstate(invalid="ignore"):
        points["se"] = np.nanstd(point_reps, axis=0, ddof=1) if n_boot > 1 else np.nan
        diffs["se"] = np.nanstd(diff_reps, axis=0, ddof=1) if n_boot > 1 and len(diffs) else np.nan
    first = next(iter(hier.values()))
    return ReplicateSurface(np.sort(_check_ks(ks)), points, diffs, point_reps, diff_reps, first.resamples, hier)


# ----------------------------------------------------------------------------- capability boundary


def _at(counts: pd.DataFrame, T: int, temperature: float) -> pd.DataFrame:
    """Rows of counts at depth T and (float-tolerant) temperature."""
    return counts[(counts["T"] == T).to_numpy() & np.isclose(counts["temperature"], temperature)]


def boundary(counts: pd.DataFrame, T: int, temperature: float) -> dict[str, dict[str, set]]:
    """Capability boundary: policy -> category -> set of problem_ids with c > 0 at (T, temperature).

    A (policy, category) with rows but no solved problem maps to an empty set; one without rows at
    (T, temperature) is absent.
    """
    rows = _at(check_counts(counts), T, temperature)
    out: dict[str, dict[str, set]] = {}
    for (pol, cat), g in rows.groupby(["policy", "category"], sort=True):
        out.setdefault(pol, {})[cat] = set(g.loc[g["c"] > 0, "problem_id"])
    return out


def set_difference(solved_a: set, solved_b: set, universe: set) -> dict[str, set]:
    """Split the universe into gained (a only), lost (b only), both and neither."""
    extra = (set(solved_a) | set(solved_b)) - set(universe)
    if extra:
        raise ValueError(
            f"solved sets contain problem(s) outside the universe, e.g. {sorted(map(str, extra))[:3]}"
        )
    a, b, u = set(solved_a), set(solved_b), set(universe)
    return {"gained": a - b, "lost": b - a, "both": a & b, "neither": u - a - b}


def mcnemar_exact(b: int, c: int) -> float:
    """Two-sided exact McNemar p-value on the discordant counts b, c: 2 P(X <= min) for Bin(b+c, 1/2)."""
    for name, v in (("b", b), ("c", c)):
        if int(v) != v or v < 0:
            raise ValueError(f"mcnemar_exact: {name} must be a non-negative integer, got {v}")
    b, c = int(b), int(c)
    if b + c == 0:
        return 1.0
    return float(min(1.0, 2.0 * stats.binom.cdf(min(b, c), b + c, 0.5)))


def sign_flip_p(m) -> float:
    """Exact two-sided sign-flip (randomisation) p of sum(m) for integer per-problem values m: P(|sum s_i m_i| >=
    |sum m_i|) with independent fair signs s_i (the null that the two policies are exchangeable on every problem).

    For a boundary comparison m_i = sum over replicates of (gained - lost) on problem i; with one replicate
    m_i is in {-1, 0, 1} and this is the exact McNemar test (:func:`mcnemar_exact`) on the discordant problems.
    Computed exactly by convolution over the integer support (at most 2 * sum|m| + 1 points)."""
    m = np.asarray(m)
    if m.size and (np.any(m != np.round(m))):
        raise ValueError("sign_flip_p: per-problem values must be integers (sums over replicates of -1/0/1)")
    a = np.abs(m[m != 0]).astype(int)
    if a.size == 0:
        return 1.0
    total = int(a.sum())
    dist = np.zeros(2 * total + 1)
    dist[total] = 1.0
    for v in a:
        dist = 0.5 * (np.roll(dist, v) + np.roll(dist, -v))  # the support never wraps: |partial sum| <= total
    obs = abs(int(m.sum()))
    support = np.arange(-total, total + 1)
    return float(min(1.0, dist[np.abs(support) >= obs].sum()))


def wilson_interval(x: int, n: int, conf: float = 0.95) -> tuple[float, float]:
    """Wilson score interval for a binomial proportion x/n."""
    if int(n) != n or n < 1:
        raise ValueError(f"wilson_interval: n must be a positive integer, got {n}")
    if int(x) != x or not 0 <= x <= n:
        raise ValueError(f"wilson_interval: x must be an integer in [0, n={n}], got {x}")
    if not 0 < conf < 1:
        raise ValueError(f"wilson_interval: conf must lie in (0, 1), got {conf}")
    z = stats.norm.ppf((1 + conf) / 2)
    p, z2n = x / n, z * z / n
    centre = (p + z2n / 2) / (1 + z2n)
    half = z * np.sqrt(p * (1 - p) / n + z2n / (4 * n)) / (1 + z2n)
    return float(max(0.0, centre - half)), float(min(1.0, centre + half))


def net_boundary_ci(
    solved_a: set,
    solved_b: set,
    universe: set,
    n_boot: int = 1000,
    seed: int = 0,
    ci: float = 0.95,
    category: str = "",
) -> tuple[float, float, float]:
    """(net, ci_low, ci_high) of gained - lost, bootstrapping problems of the universe.

    With the category name, the resample is the one :func:`bootstrap_surface` draws for that
    category with the same seed (problems in sorted order), so the interval is paired with it.
    """
    u = sorted(universe)
    if not u:
        return 0.0, float("nan"), float("nan")
    set_difference(solved_a, solved_b, universe)  # validates membership
    d = np.array([(p in solved_a) - (p in solved_b) for p in u], dtype=np.float64)
    reps = resample_weights(_rng_for(seed, category), int(n_boot), d.size) @ d
    lo, hi = _percentiles(reps[:, None], ci)
    return float(d.sum()), float(lo[0]), float(hi[0])


def shared_pass1_diff(c_a, n_a, c_b, n_b, W: np.ndarray) -> tuple[float, np.ndarray, np.ndarray]:
    """Efficiency: mean over the problems both policies solve at least once (c > 0 for both) of Pass@1(a) -
    Pass@1(b) = c_a/n_a - c_b/n_b, and its replicates under the problem resample W (n_boot x P, columns aligned
    with the per-problem arrays; NaN counts mark problems the pair lacks and are never shared).

    The shared set is fixed on the full sample; a replicate re-weights its members by W, so with the W of
    :func:`bootstrap_surface` the replicates are paired with its Pass@k differences. With no shared problem the
    efficiency is 0 (no problem on which the two can be compared), and so is a replicate that draws none of the
    shared problems (0 counts as the other side of any estimate, so this can only raise the bootstrap p).
    Returns (estimate, replicates (n_boot,), shared mask (P,)).
    """
    c_a, n_a, c_b, n_b = (np.asarray(x, dtype=np.float64) for x in (c_a, n_a, c_b, n_b))
    shared = (c_a > 0) & (c_b > 0)
    d = np.where(shared, c_a / np.where(shared, n_a, 1.0) - c_b / np.where(shared, n_b, 1.0), 0.0)
    w = W[:, shared].sum(axis=1)
    reps = np.divide(W @ d, w, out=np.zeros(len(W)), where=w > 0)
    return (float(d[shared].mean()) if shared.any() else 0.0), reps, shared


# ----------------------------------------------------------------------------- crossover


def crossover_k(curve_a, curve_b, ks) -> float | np.ndarray:
    """Smallest grid k from which a >= b for every larger k, provided b led at the smallest k.

    curve_a, curve_b: (..., K) arrays on the grid ks (sorted ascending). Returns a float for 1-D
    input, else an array of shape (...). NaN if a never stays on top, or if a >= b at the smallest k.
    """
    ks = _check_ks(ks)
    a, b = np.asarray(curve_a, dtype=np.float64), np.asarray(curve_b, dtype=np.float64)
    if a.shape != b.shape or a.shape[-1] != ks.size:
        raise ValueError(f"curves must share shape (..., {ks.size}), got {a.shape} and {b.shape}")
    if np.any(np.diff(ks) <= 0):
        raise ValueError(f"ks must be strictly increasing, got {ks.tolist()}")
    ge = a >= b
    stays = np.flip(np.logical_and.accumulate(np.flip(ge, -1), axis=-1), -1)  # a >= b from here on
    first = np.argmax(stays, axis=-1)
    ok = stays[..., -1] & ~ge[..., 0]
    out = np.where(ok, ks[first].astype(np.float64), np.nan)
    return float(out) if out.ndim == 0 else out


def crossover_states(curve_a, curve_b, ks) -> np.ndarray:
    """Every curve pair placed on one ordered scale: ks[0] where a is level or ahead from the smallest k on
    (no crossover needed), the crossover k where b led first, +inf where a never stays on top within the grid."""
    ks = _check_ks(ks)
    a, b = np.asarray(curve_a, dtype=np.float64), np.asarray(curve_b, dtype=np.float64)
    cross = np.atleast_1d(crossover_k(a, b, ks))
    ge = np.atleast_2d(a >= b)
    stays = np.logical_and.reduce(ge, axis=-1)
    return np.where(np.isnan(cross), np.where(stays, float(ks[0]), np.inf), cross)


def crossover_interval(reps_a, reps_b, ks, ci: float = 0.95) -> dict[str, float]:
    """Interval of the crossover over ALL resamples (:func:`crossover_states`: "already on top" counts as the
    smallest k, "never within the grid" as beyond the largest), by the inverted-CDF percentile so the ends are
    grid values. ci_high_never = 1 when the upper end is "never within k <= max(ks)" (ci_high is then max(ks));
    never_frac / already_frac: shares of resamples that never cross / are on top from the smallest k."""
    ks = _check_ks(ks)
    states = crossover_states(reps_a, reps_b, ks)
    lo, hi = np.quantile(states, [(1 - ci) / 2, (1 + ci) / 2], method="inverted_cdf")
    never = bool(np.isinf(hi))
    return {
        "ci_low": float(ks.max()) if np.isinf(lo) else float(lo),
        "ci_high": float(ks.max()) if never else float(hi),
        "ci_high_never": float(never),
        "never_frac": float(np.isinf(states).mean()),
        "already_frac": float((states == ks[0]).mean()),  # a crossover is never at ks[0]: b must lead there
    }


# ----------------------------------------------------------------------------- marginal values, saturation


def marginal_values(counts: pd.DataFrame, ks) -> pd.DataFrame:
    """Pass surface with delta_k (one more sample) and delta_T (one more round, per round) columns.

    delta_k is computed from the counts at k+1 directly (not from the next grid k); it is NaN where
    k+1 exceeds the smallest n in the data.
    """
    ks = _check_ks(ks)
    n_min = int(_as_int_array(counts["n"].to_numpy(), "n").min()) if len(counts) else 0
    nxt = ks[ks + 1 <= n_min] + 1
    grid = np.union1d(ks, nxt)
    full = pass_surface(counts, grid)
    surf = full[np.isin(full["k"], ks)].reset_index(drop=True)
    up = full[np.isin(full["k"], nxt)].assign(k=lambda f: f["k"] - 1)[list(GROUP) + ["k", "pass"]]
    surf = surf.merge(up.rename(columns={"pass": "pass_next"}), on=list(GROUP) + ["k"], how="left")
    surf["delta_k"] = surf.pop("pass_next") - surf["pass"]
    surf = surf.sort_values(["policy", "category", "temperature", "k", "T"], ignore_index=True)
    line = surf.groupby(["policy", "category", "temperature", "k"], sort=False)
    surf["delta_T"] = (line["pass"].shift(-1) - surf["pass"]) / (line["T"].shift(-1) - surf["T"])
    return surf.sort_values(list(GROUP) + ["k"], ignore_index=True)


def saturation_depth(surface_df: pd.DataFrame, k: int, eps: float = 0.01) -> pd.DataFrame:
    """T*(k) per (policy, category, temperature): smallest T with all later gains < eps.

    surface_df: output of :func:`pass_surface`. Returns columns policy, category, temperature, T_star
    (NaN for curves with fewer than two depths) and censored (1 where T* is the curve's last depth: "≥ T*").
    """
    sub = surface_df[surface_df["k"] == k]
    if sub.empty:
        raise ValueError(
            f"saturation_depth: k={k} is not in the surface (ks: {sorted(surface_df['k'].unique())})"
        )
    grid = sub.pivot_table(
        index=["policy", "category", "temperature"], columns="T", values="pass", aggfunc="first"
    )
    Ts, p = grid.columns.to_numpy(), grid.to_numpy()
    out = grid.index.to_frame(index=False)
    out["T_star"] = t_star_of_curves(p, Ts, eps)
    last = np.array([Ts[np.flatnonzero(~np.isnan(row))[-1]] if (~np.isnan(row)).any() else np.nan for row in p])
    out["censored"] = (out["T_star"].to_numpy() == last).astype(float)
    return out


def t_star_of_curves(curves, Ts, eps: float = 0.01) -> np.ndarray:
    """T* of each row of ``curves`` (rows x len(Ts), NaN where a depth is missing): the smallest grid T after
    which no later grid T gains eps or more. NaN with fewer than two depths. T* = the last depth is censored:
    saturation was not observed within the grid (the curve may still be rising), read it as ">= that T"."""
    p = np.atleast_2d(np.asarray(curves, dtype=np.float64))
    Ts = np.asarray(Ts)
    have = ~np.isnan(p)
    later_max = np.flip(np.maximum.accumulate(np.flip(np.where(have, p, -np.inf), 1), axis=1), 1)
    later_max = np.concatenate([later_max[:, 1:], np.full((len(p), 1), -np.inf)], axis=1)  # max over T' > T
    ok = have & (later_max - p < eps)
    return np.where(ok.any(axis=1) & (have.sum(axis=1) >= 2), Ts[np.argmax(ok, axis=1)].astype(float), np.nan)


# ----------------------------------------------------------------------------- the flat summary


def _t_star_interval(boot_T, pol, cat, temperature, imax, eps, ci, prefix, nan) -> dict[str, float]:
    """T*'s censoring and bootstrap interval from the resampled pass-vs-T curves at kmax."""
    keys = ("T_star.censored", "T_star.ci_low", "T_star.ci_high", "T_star.censored_frac")
    if nan or boot_T is None:
        return {f"{prefix}.{k}": float("nan") for k in keys}
    pts = boot_T.points
    sel = (pts["policy"] == pol) & (pts["category"] == cat) & np.isclose(pts["temperature"], temperature)
    Ts = np.sort(pts.loc[sel, "T"].unique())
    est = np.array([boot_T.curve(pol, cat, temperature, int(T))[0][imax] for T in Ts])
    reps = np.stack([boot_T.curve(pol, cat, temperature, int(T))[1][:, imax] for T in Ts], axis=1)
    t_est, t_reps = t_star_of_curves(est, Ts, eps)[0], t_star_of_curves(reps, Ts, eps)
    lo, hi = np.quantile(t_reps, [(1 - ci) / 2, (1 + ci) / 2], method="inverted_cdf")
    return {
        f"{prefix}.T_star.censored": float(t_est == Ts[-1]),
        f"{prefix}.T_star.ci_low": float(lo),
        f"{prefix}.T_star.ci_high": float(hi),
        f"{prefix}.T_star.censored_frac": float(np.mean(t_reps == Ts[-1])),
    }


def summarise(
    counts: pd.DataFrame,
    ks,
    T_eval: int,
    temperature: float,
    pairs,
    n_boot: int = 1000,
    seed: int = 0,
    ci: float = 0.95,
    eps: float = 0.01,
) -> dict[str, float]:
    """Flat dict of python floats for the claims audit (key names are a contract, see below).

    Keys (kmax = max(ks); k_gap = min(8, kmax/2); "math" is evaluated at T = 0, every other category at
    T_eval; "[effect]" = the estimate with .ci_low, .ci_high, .p, .tost_low, .tost_high, see :func:`effect`):
    boundary.{cat}.{pol}.{size,n_problems,frac,ci_low,ci_high};
    setdiff.{cat}.{a}_vs_{b}.{gained,lost,both,neither,net,net_ci_low,net_ci_high,mcnemar_p};
    pass.{cat}.{pol}.{k1,kmax}[.ci_low|.ci_high]; passdiff.{cat}.{a}_vs_{b}.{k1,kmax} [effect];
    gapwiden.{cat}.{a}_vs_{b} [effect] (diff at kmax minus diff at k_gap);
    efficiency.{cat}.{a}_vs_{b} [effect] (the Pass@1 difference, c/n, averaged over the problems both policies
    solve at least once; see :func:`shared_pass1_diff`), with .n_shared (how many) and .none_drawn_frac (share of
    resamples that drew none of them: efficiency 0 there); expansion is passdiff.{cat}.{a}_vs_{b}.kmax;
    split.{cat}.{a}_vs_{b} [effect] (expansion minus efficiency; one problem resample per replicate for both, so
    the interval is paired);
    interaction.{a}_vs_{b}.bridge_minus_comparison [effect] (diff at kmax on bridge minus on comparison; the
    two categories are resampled independently, each paired across policies);
    crossover.{cat}.{a}_vs_{b}.{k,never,already,ci_low,ci_high,ci_high_never,never_frac,already_frac} (k NaN when
    the estimate has no crossover: never = 1 if RL never stays on top, already = 1 if on top from k = 1; the
    interval is over all resamples, see :func:`crossover_interval`);
    saturation.{cat}.{pol}.{T_star,T_star_k1,T_star.censored,T_star.ci_low,T_star.ci_high,T_star.censored_frac}
    (at kmax; censored = 1: ">= T_star", saturation not reached within the T grid; the interval is the
    inverted-CDF percentile interval of T* over the problem resamples of the pass statistics);
    meta.{n,T_eval,temperature,ci,k_gap,n_replicates}, meta.n_problems.{cat}.

    Training replicates (a ``replicate`` column; none = one replicate): every statistic is the mean over the
    replicates of its per-replicate value and every interval resamples replicates, then problems
    (:func:`replicate_surface`); a pair rests on the replicates both policies have. Extra keys: pass and passdiff
    ``.seed_sd``, ``.seed_min``, ``.seed_max``, ``.n_seeds`` (between-replicate spread); ``.n_seeds`` on gapwiden,
    efficiency, split and interaction; setdiff ``.net_p`` (exact sign-flip test of the per-problem net summed over
    replicates; one replicate: exact McNemar), ``.net_seed_sd``, ``.n_seeds``, and ``.mcnemar_p`` (the median of
    the per-replicate McNemar p, descriptive); set-difference counts are means over replicates. boundary
    ``.ci_low``/``.ci_high`` are the interval of Pass@kmax (= the boundary share, kmax = n).
    """
    ks = np.sort(_check_ks(ks))
    kmax = int(ks.max())
    k_gap = min(8, kmax // 2)
    if 1 not in ks or kmax % 2 or k_gap not in ks:
        raise ValueError(f"summarise: ks must contain 1, kmax and k_gap = min(8, kmax/2), got {ks.tolist()}")
    counts = check_counts(with_replicates(counts))
    warm = counts[np.isclose(counts["temperature"], temperature)]
    if warm.empty:
        raise ValueError(f"summarise: no counts at temperature={temperature}")
    if set(warm["n"].unique()) != {kmax}:  # Pass@kmax is the boundary share only at kmax = n for every problem
        raise ValueError(f"summarise: kmax = {kmax} must equal n for every problem (rollouts per problem: "
                         f"{sorted(int(v) for v in warm['n'].unique())})")
    cats = sorted(warm["category"].unique())
    depth = {cat: 0 if cat == "math" else int(T_eval) for cat in cats}
    ev = warm[(warm["T"] == warm["category"].map(depth)).to_numpy()]
    for cat in cats:
        if not (ev["category"] == cat).any():
            raise ValueError(f"summarise: no counts for category {cat!r} at T={depth[cat]}")
    sets = replicate_sets(ev)
    boot = replicate_surface(ev, ks, pairs, n_boot=n_boot, seed=seed, ci=ci)
    sat_k = saturation_depth(pass_surface(warm, ks), kmax, eps)
    deep = warm[(warm["category"] != "math").to_numpy()]
    boot_T = replicate_surface(deep, ks, (), n_boot=n_boot, seed=seed, ci=ci) if len(deep) else None
    sat_1 = saturation_depth(pass_surface(warm, ks), 1, eps)
    i1, imax, igap = (int(np.flatnonzero(ks == k)[0]) for k in (1, kmax, k_gap))
    n_values = ev["n"].unique()
    all_reps = all_replicates(sets)

    out: dict[str, float] = {
        "meta.n": float(n_values[0]) if len(n_values) == 1 else float("nan"),
        "meta.T_eval": float(T_eval),
        "meta.temperature": float(temperature),
        "meta.ci": float(ci),
        "meta.k_gap": float(k_gap),
        "meta.n_replicates": float(len(all_reps)),
    }

    def spread(key: str, frame: pd.DataFrame, where: dict, k: int | None = None) -> dict[str, float]:
        """Between-replicate spread of one statistic (SD, min, max over training seeds; SD NaN with one)."""
        row = frame[_where(frame, {**where, **({"k": k} if k is not None else {})})].iloc[0]
        return {f"{key}.seed_sd": float(row["seed_sd"]), f"{key}.seed_min": float(row["seed_min"]),
                f"{key}.seed_max": float(row["seed_max"]), f"{key}.n_seeds": float(row["n_seeds"])}

    def rows_of(rows: pd.DataFrame, pol: str, r: int) -> pd.DataFrame:
        g = rows[rows["policy"] == pol]
        return g if sets[pol] is None else g[g["replicate"] == r]

    at_kmax: dict[tuple[str, str], tuple[float, np.ndarray]] = {}  # (cat, pair) -> diff at kmax and its replicates
    for cat in cats:
        rows = ev[ev["category"] == cat]
        universe = set(rows["problem_id"])
        pids, W = boot.resamples[cat]  # the resample of every Pass statistic of this category
        out[f"meta.n_problems.{cat}"] = float(len(universe))
        solved = {pol: {r: set(rows_of(rows, pol, r).query("c > 0")["problem_id"]) for r in (sets[pol] or all_reps)}
                  for pol in sorted(rows["policy"].unique())}
        for pol, by_rep in solved.items():
            m = int(rows_of(rows, pol, next(iter(by_rep)))["problem_id"].nunique())
            est, reps = boot.curve(pol, cat, temperature, depth[cat])  # Pass@kmax (kmax = n) = the boundary share
            lo, hi = _percentiles(reps, ci)
            pre = f"boundary.{cat}.{pol}"
            size = float(np.mean([len(v) for v in by_rep.values()]))
            out.update({f"{pre}.size": size, f"{pre}.n_problems": float(m), f"{pre}.frac": size / m,
                        f"{pre}.ci_low": float(lo[imax]), f"{pre}.ci_high": float(hi[imax])})
            where = dict(policy=pol, category=cat, temperature=temperature, T=depth[cat])
            for tag, i in (("k1", i1), ("kmax", imax)):
                out.update(
                    {
                        f"pass.{cat}.{pol}.{tag}": float(est[i]),
                        f"pass.{cat}.{pol}.{tag}.ci_low": float(lo[i]),
                        f"pass.{cat}.{pol}.{tag}.ci_high": float(hi[i]),
                        **spread(f"pass.{cat}.{pol}.{tag}", boot.points, where, int(ks[i])),
                    }
                )
            t_k = sat_k.loc[(sat_k["policy"] == pol) & (sat_k["category"] == cat), "T_star"]
            t_1 = sat_1.loc[(sat_1["policy"] == pol) & (sat_1["category"] == cat), "T_star"]
            nan = cat == "math" or t_k.empty
            out[f"saturation.{cat}.{pol}.T_star"] = float("nan") if nan else float(t_k.iloc[0])
            out[f"saturation.{cat}.{pol}.T_star_k1"] = float("nan") if nan else float(t_1.iloc[0])
            out.update(_t_star_interval(boot_T, pol, cat, temperature, imax, eps, ci, f"saturation.{cat}.{pol}", nan))
        for a, b in pairs:
            if a not in solved or b not in solved:
                continue
            name = f"{a}_vs_{b}"
            reps_ab = pair_replicates(sets, a, b) or all_reps
            hb = boot.for_pair(sets, a, b) if pair_replicates(sets, a, b) else next(iter(boot.hier.values()))
            sds = [set_difference(solved[a][r if sets[a] else all_reps[0]], solved[b][r if sets[b] else all_reps[0]],
                                  universe) for r in reps_ab]
            pre = f"setdiff.{cat}.{name}"
            out.update({f"{pre}.{part}": float(np.mean([len(sd[part]) for sd in sds])) for part in sds[0]})
            net = hb.boundary[_where(hb.boundary, dict(a=a, b=b, category=cat, temperature=temperature, T=depth[cat],
                                                         stat="net"))].iloc[0]
            out.update(
                {
                    f"{pre}.net": float(net["count"]),
                    f"{pre}.net_ci_low": float(net["count_ci_low"]),
                    f"{pre}.net_ci_high": float(net["count_ci_high"]),
                    # exact sign-flip test of the per-problem net summed over replicates (one replicate: McNemar)
                    f"{pre}.net_p": sign_flip_p(np.sum([[(u in sd["gained"]) - (u in sd["lost"]) for u in sorted(universe)]
                                                        for sd in sds], axis=0)),
                    f"{pre}.net_seed_sd": float(net["seed_sd"] * net["n_problems"]),
                    f"{pre}.n_seeds": float(len(reps_ab)),
                    # descriptive: the median over replicates of each replicate's exact McNemar p
                    f"{pre}.mcnemar_p": float(np.median([mcnemar_exact(len(sd["gained"]), len(sd["lost"])) for sd in sds])),
                }
            )
            dest, dreps = boot.diff_curve(a, b, cat, temperature, depth[cat])
            where = dict(a=a, b=b, category=cat, temperature=temperature, T=depth[cat])
            for tag, i in (("k1", i1), ("kmax", imax)):
                out.update(effect(f"passdiff.{cat}.{name}.{tag}", dest[i], dreps[:, i], ci))
                out.update(spread(f"passdiff.{cat}.{name}.{tag}", boot.diffs, where, int(ks[i])))
            out.update(effect(f"gapwiden.{cat}.{name}", dest[imax] - dest[igap], dreps[:, imax] - dreps[:, igap], ci))
            # efficiency per replicate under the same problem draw W, combined with the pair's seed draws
            e_est, e_reps, n_shared, none = [], [], [], []
            for r in reps_ab:
                ra, rb = rows_of(rows, a, r), rows_of(rows, b, r)
                c_a, n_a, c_b, n_b = (g.set_index("problem_id")[v].reindex(pids) for g in (ra, rb) for v in ("c", "n"))
                e, er, shared = shared_pass1_diff(c_a, n_a, c_b, n_b, W)
                e_est.append(e), e_reps.append(er), n_shared.append(shared.sum())
                none.append(np.mean(W[:, shared].sum(axis=1) == 0))
            assert [int(s) for s in hb.seeds] == list(reps_ab)  # the seed draws' columns are these replicates, in order
            e_mean = float(np.mean(e_est))
            e_rep = (hb.seed_draws * np.stack(e_reps, axis=1)).sum(axis=1) / len(reps_ab)
            out.update(effect(f"efficiency.{cat}.{name}", e_mean, e_rep, ci))
            out[f"efficiency.{cat}.{name}.n_shared"] = float(np.mean(n_shared))
            out[f"efficiency.{cat}.{name}.none_drawn_frac"] = float(np.mean(none))
            out.update(effect(f"split.{cat}.{name}", dest[imax] - e_mean, dreps[:, imax] - e_rep, ci))
            for key in ("gapwiden", "efficiency", "split"):
                out[f"{key}.{cat}.{name}.n_seeds"] = float(len(reps_ab))
            at_kmax[cat, name] = float(dest[imax]), dreps[:, imax]
            pair_surf = BootstrapSurface(boot.ks, hb.points, hb.diffs, hb.reps["points"], hb.reps["diffs"])
            ea, ra_ = pair_surf.curve(a, cat, temperature, depth[cat])  # both curves on the pair's replicates
            eb, rb_ = pair_surf.curve(b, cat, temperature, depth[cat])
            xo = crossover_interval(ra_, rb_, ks, ci)
            state = float(crossover_states(ea, eb, ks)[0])
            out.update(
                {
                    f"crossover.{cat}.{name}.k": crossover_k(ea, eb, ks),
                    f"crossover.{cat}.{name}.never": float(np.isinf(state)),
                    f"crossover.{cat}.{name}.already": float(state == ks[0]),
                    **{f"crossover.{cat}.{name}.{key}": v for key, v in xo.items()},
                }
            )
    for (cat, name), (est, reps) in sorted(at_kmax.items()):
        if cat == "bridge" and ("comparison", name) in at_kmax:
            est_c, reps_c = at_kmax["comparison", name]
            out.update(effect(f"interaction.{name}.bridge_minus_comparison", est - est_c, reps - reps_c, ci))
            out[f"interaction.{name}.bridge_minus_comparison.n_seeds"] = out[f"passdiff.bridge.{name}.kmax.n_seeds"]
    return {key: float(v) for key, v in out.items()}


BOUNDARY_COLUMNS = ("gained", "lost", "both", "neither", "net", "net_ci_low", "net_ci_high", "mcnemar_p")


def boundary_table(stats: dict, pairs, categories=("math", "comparison", "bridge")) -> pd.DataFrame:
    """The set-difference table (one row per category and pair) from ``summarise``'s flat ``setdiff.*`` keys."""
    rows = []
    for cat in categories:
        for a, b in pairs:
            key = f"setdiff.{cat}.{a}_vs_{b}"
            if f"{key}.gained" in stats:
                rows.append({"category": cat, "pair": f"{a} vs {b}", **{x: stats[f"{key}.{x}"] for x in BOUNDARY_COLUMNS}})
    return pd.DataFrame(rows, columns=["category", "pair", *BOUNDARY_COLUMNS])



def replicate_table(boot: ReplicateSurface, T_eval: int, temperature: float, ks) -> pd.DataFrame:
    """Per training replicate: each policy's Pass@k and each pair's difference at the headline point (math at
    T = 0), k in ``ks`` — the per-seed numbers behind every mean and two-level interval (columns: replicate,
    statistic, category, k, value, ci_low, ci_high; the interval resamples problems within the replicate)."""
    rows = []
    for hb in boot.hier.values():
        for kind in ("points", "diffs"):
            f = hb.per_seed[kind]
            if f.empty:
                continue
            at = np.where(f["category"] == "math", 0, int(T_eval))
            f = f[(f["T"].to_numpy() == at) & np.isclose(f["temperature"].astype(float), temperature) & f["k"].isin(list(ks))]
            val = "pass" if kind == "points" else "diff"
            name = f["policy"] if kind == "points" else f["a"] + " - " + f["b"]
            rows.append(pd.DataFrame({"replicate": f["seed"].to_numpy(), "statistic": name.to_numpy(),
                                      "category": f["category"].to_numpy(), "k": f["k"].to_numpy(),
                                      "value": f[val].to_numpy(), "ci_low": f["ci_low"].to_numpy(),
                                      "ci_high": f["ci_high"].to_numpy()}))
    out = pd.concat(rows, ignore_index=True).drop_duplicates(["replicate", "statistic", "category", "k"])
    return out.sort_values(["category", "statistic", "k", "replicate"]).reset_index(drop=True)
