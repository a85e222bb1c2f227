"""Tests of passkt.stats: hierarchical seed x problem bootstrap, zero-inflated beta-binomial, deep-sampling bookkeeping."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import special
from scipy import stats as sps

from passkt.metrics import (
    bootstrap_surface,
    net_boundary_ci,
    pass_at_k,
    pass_surface,
    resample_weights,
    set_difference,
    wilson_interval,
)
from passkt.stats import (
    _histogram,
    _loglik,
    boundary_candidates,
    crossed_bootstrap,
    deep_sampling_summary,
    fit_zibb,
    geometric_interval,
    hierarchical_bootstrap,
    zibb_bootstrap,
    zibb_loglik,
    zibb_pass_at_k,
)

COLS = ["policy", "category", "problem_id", "temperature", "T", "n", "c"]
KS = [1, 2, 4, 8]


def seeded_counts(rng_seed=0, seeds=(0,), shifts=None, P=20, n=8, depths=(0, 2), cats=("bridge", "comparison")):
    """Counts of a shared base and two trained policies per seed; shifts: policy -> per-seed logit shift."""
    rng = np.random.default_rng(rng_seed)
    shifts = shifts or {"rl": [0.5] * len(seeds), "sft": [-0.5] * len(seeds)}
    rows = []
    for cat in cats:
        diff = rng.normal(-0.5, 1.5, P)  # problem logits, shared by every policy and seed
        for T in depths:
            for j in range(P):
                rows.append(("base", cat, f"{cat}-{j}", 0.7, T, n, rng.binomial(n, special.expit(diff[j])), seeds[0]))
            for pol, sh in shifts.items():
                for s, d in zip(seeds, sh):
                    for j in range(P):
                        c = rng.binomial(n, special.expit(diff[j] + d + 0.2 * T))
                        rows.append((pol, cat, f"{cat}-{j}", 0.7, T, n, c, s))
    return pd.DataFrame(rows, columns=COLS + ["seed"])


# ----------------------------------------------------------------------------- hierarchical bootstrap


def test_single_seed_is_the_problem_bootstrap():
    counts = seeded_counts()
    pairs = [("rl", "base"), ("sft", "rl")]
    for frame in (counts, counts.drop(columns="seed")):  # one seed value, or no seed column at all
        h = hierarchical_bootstrap(frame, KS, pairs, n_boot=200, seed=3, ci=0.9)
        b = bootstrap_surface(frame.drop(columns="seed", errors="ignore"), KS, pairs, n_boot=200, seed=3, ci=0.9)
        on = ["policy", "category", "temperature", "T", "k"]
        m = h.points.merge(b.points, on=on, suffixes=("", "_b"))
        assert len(m) == len(b.points) == len(h.points)
        for col in ("pass", "ci_low", "ci_high"):
            np.testing.assert_allclose(m[col], m[f"{col}_b"], atol=1e-12)
        np.testing.assert_allclose(m["ci_low_problems"], m["ci_low"], atol=1e-12)  # one seed: nothing to add
        on = ["a", "b", "category", "temperature", "T", "k"]
        m = h.diffs.merge(b.diffs, on=on, suffixes=("", "_b"))
        assert len(m) == len(b.diffs)
        for col in ("diff", "ci_low", "ci_high", "p"):
            np.testing.assert_allclose(m[col], m[f"{col}_b"], atol=1e-12)
        assert h.points["seed_sd"].isna().all() and (h.points["n_seeds"] == 1).all()
    # boundary shares are the set differences of metrics; the net interval is net_boundary_ci's (same resample)
    rows = counts[(counts["T"] == 2) & (counts["category"] == "bridge")]
    solved = {p: set(g.loc[g["c"] > 0, "problem_id"]) for p, g in rows.groupby("policy")}
    universe = set(rows["problem_id"])
    sd = set_difference(solved["rl"], solved["base"], universe)
    net, lo, hi = net_boundary_ci(solved["rl"], solved["base"], universe, 200, 3, 0.9, category="bridge")
    bnd = h.boundary.set_index(["a", "b", "category", "T", "stat"]).sort_index().loc[("rl", "base", "bridge", 2)]
    assert bnd.loc["gained", "count"] == len(sd["gained"]) and bnd.loc["lost", "count"] == len(sd["lost"])
    assert bnd.loc["net", "count"] == pytest.approx(net)
    assert bnd.loc["net", "count_ci_low"] == pytest.approx(lo) and bnd.loc["net", "count_ci_high"] == pytest.approx(hi)
    assert bnd.loc["gained", "share"] == pytest.approx(len(sd["gained"]) / len(universe))


def test_seeds_shared_base_and_per_seed_table():
    counts = seeded_counts(1, seeds=(11, 12, 13), shifts={"rl": [0.8, 0.0, -0.4], "sft": [0.1, 0.2, 0.3]})
    h = hierarchical_bootstrap(counts, KS, [("rl", "base")], n_boot=100, seed=0)
    assert list(h.seeds) == [11, 12, 13] and h.seed_draws.shape == (100, 3)
    assert np.all(h.seed_draws.sum(axis=1) == 3)
    base = h.points[h.points["policy"] == "base"]
    assert np.allclose(base["seed_sd"], 0.0) and np.allclose(base["seed_min"], base["seed_max"])
    ps = h.per_seed["points"]
    for s in (11, 12, 13):  # per-seed estimates are metrics' surface of that seed's slice (base included)
        one = counts[(counts["seed"] == s) | (counts["policy"] == "base")].drop(columns="seed")
        m = ps[ps["seed"] == s].merge(pass_surface(one, KS), on=["policy", "category", "temperature", "T", "k"])
        assert len(m) == len(ps) // 3
        np.testing.assert_allclose(m["pass_x"], m["pass_y"], atol=1e-12)
    # estimate = mean over seeds; spread columns from the per-seed table
    g = ps.groupby(["policy", "category", "temperature", "T", "k"])["pass"]
    m = h.points.merge(g.agg(["mean", "std", "min", "max"]).reset_index(), on=["policy", "category", "temperature", "T", "k"])
    np.testing.assert_allclose(m["pass"], m["mean"], atol=1e-12)
    np.testing.assert_allclose(m["seed_sd"], m["std"], atol=1e-12)
    np.testing.assert_allclose(m["seed_max"], m["max"], atol=1e-12)
    d = h.diffs.merge(h.points[h.points["policy"] == "rl"], on=["category", "temperature", "T", "k"])
    d = d.merge(base, on=["category", "temperature", "T", "k"], suffixes=("", "_base"))
    np.testing.assert_allclose(d["diff"], d["pass"] - d["pass_base"], atol=1e-12)  # paired and linear
    assert set(h.per_seed["boundary"]["seed"]) == {11, 12, 13}
    nan_base = counts.assign(seed=np.where(counts["policy"] == "base", np.nan, counts["seed"]))  # base: no seed
    h2 = hierarchical_bootstrap(nan_base, KS, [("rl", "base")], n_boot=100, seed=0)
    pd.testing.assert_frame_equal(h2.diffs, h.diffs)
    pd.testing.assert_frame_equal(h2.boundary, h.boundary)
    assert h.reps["points"].shape == (100, len(h.points))
    assert (h.points["ci_low"] <= h.points["pass"] + 1e-12).all() and (h.points["pass"] <= h.points["ci_high"] + 1e-12).all()


def test_seed_effects_widen_the_interval():
    counts = seeded_counts(2, seeds=(0, 1, 2, 3), shifts={"rl": [2.0, -1.5, 1.0, -2.0]}, P=40, depths=(0,), cats=("bridge",))
    h = hierarchical_bootstrap(counts, KS, [("rl", "base")], n_boot=400, seed=1)
    d = h.diffs
    hier, prob = d["ci_high"] - d["ci_low"], d["ci_high_problems"] - d["ci_low_problems"]
    assert np.all(hier > 1.5 * prob), (hier, prob)
    same = seeded_counts(2, seeds=(0, 1, 2, 3), shifts={"rl": [0.5] * 4}, P=40, depths=(0,), cats=("bridge",))
    d2 = hierarchical_bootstrap(same, KS, [("rl", "base")], n_boot=400, seed=1).diffs
    assert np.all((d2["ci_high"] - d2["ci_low"]) < hier)


def test_crossed_bootstrap_coverage():
    """200 simulated seeds x problems data sets (fresh problems and seeds each, 8 seeds): 90% intervals of Pass@1
    cover the population value (mean over the problem and seed distributions) at least 85% of the time, and
    clearly more often than the problem-only interval."""
    rng = np.random.default_rng(7)
    S, P, n, B = 8, 60, 8, 300
    mu, sd_seed, sd_prob = -0.3, 0.5, 1.2
    z = rng.standard_normal((2, 400_000))
    truth = special.expit(mu + sd_seed * z[0] + sd_prob * z[1]).mean()
    V = resample_weights(rng, B, S)
    W = resample_weights(rng, B, P)
    hits = hits_problems = 0
    for _ in range(200):
        p = special.expit(mu + sd_seed * rng.standard_normal((S, 1)) + sd_prob * rng.standard_normal((1, P)))
        x = (rng.binomial(n, p) / n)[:, None, :]
        per_seed, seed_reps, reps, prob_reps = crossed_bootstrap(x, np.ones_like(x, bool), W, V)
        lo, hi = np.quantile(reps[:, 0], [0.05, 0.95])
        hits += lo <= truth <= hi
        lo, hi = np.quantile(prob_reps[:, 0], [0.05, 0.95])
        hits_problems += lo <= truth <= hi
    assert hits >= 170, hits
    assert hits_problems < hits - 15, (hits_problems, hits)  # seeds held fixed: too narrow (72% here)


def test_crossed_bootstrap_shapes_and_missing_problems():
    rng = np.random.default_rng(0)
    x = rng.random((3, 2, 10))
    have = np.ones_like(x, bool)
    have[:, 1, :5] = False  # statistic 1 uses the last 5 problems only
    W, V = resample_weights(rng, 50, 10), resample_weights(rng, 50, 3)
    per_seed, seed_reps, reps, prob_reps = crossed_bootstrap(x, have, W, V)
    assert per_seed.shape == (3, 2) and seed_reps.shape == (50, 3, 2) and reps.shape == prob_reps.shape == (50, 2)
    np.testing.assert_allclose(per_seed[:, 1], x[:, 1, 5:].mean(axis=1))
    ident = crossed_bootstrap(x, have, np.ones((1, 10)), np.ones((1, 3)))[2]
    np.testing.assert_allclose(ident[0], per_seed.mean(axis=0))
    W0 = np.zeros((1, 10))
    W0[0, 0] = 10  # a resample of problem 0 only: statistic 1 has none of its problems
    assert np.isnan(crossed_bootstrap(x, have, W0, np.ones((1, 3)))[2][0, 1])


def test_hierarchical_bad_input():
    counts = seeded_counts(0, seeds=(0, 1))
    with pytest.raises(ValueError, match="lacks seed"):
        hierarchical_bootstrap(counts[~((counts["policy"] == "rl") & (counts["seed"] == 1) & (counts["T"] == 2))], KS)
    with pytest.raises(ValueError, match="shared policy rows repeat"):
        hierarchical_bootstrap(pd.concat([counts, counts[counts["policy"] == "base"].assign(seed=1)]), KS)
    with pytest.raises(ValueError, match="without a 'seed'"):
        hierarchical_bootstrap(counts.assign(seed=np.where(counts["policy"] == "rl", np.nan, counts["seed"])), KS)
    with pytest.raises(ValueError, match="lacks problem"):
        hierarchical_bootstrap(counts[counts["problem_id"] != "bridge-3"].pipe(
            lambda f: pd.concat([f, counts[(counts["problem_id"] == "bridge-3") & (counts["policy"] == "rl")]])),
            KS, [("rl", "base")])
    with pytest.raises(ValueError, match="exceeds n"):
        hierarchical_bootstrap(counts, [1, 16])
    with pytest.raises(ValueError, match="n_boot"):
        hierarchical_bootstrap(counts, KS, n_boot=0)


# ----------------------------------------------------------------------------- zero-inflated beta-binomial


def simulate_zibb(seed, pi0, a, b, P=300, n=64):
    rng = np.random.default_rng(seed)
    p = np.where(rng.random(P) < pi0, 0.0, rng.beta(a, b, P))
    return np.full(P, n), rng.binomial(n, p)


def test_zibb_loglik_and_gradient():
    n, c = simulate_zibb(0, 0.3, 1.0, 2.0, P=40, n=12)
    pi0, a, b = 0.25, 0.8, 1.7
    direct = np.log(pi0 * (c == 0) + (1 - pi0) * sps.betabinom.pmf(c, n, a, b)).sum()
    assert zibb_loglik(pi0, a, b, n, c) == pytest.approx(direct, rel=1e-10)
    assert zibb_loglik(0.0, a, b, n, c) == pytest.approx(sps.betabinom.logpmf(c, n, a, b).sum(), rel=1e-10)
    nu, cu, w, _ = _histogram(n, c)
    x = np.array([special.logit(pi0), np.log(a), np.log(b)])
    _, g = _loglik(*x, nu, cu, w, grad=True)
    for i in range(3):
        e = np.zeros(3)
        e[i] = 1e-6
        fd = (_loglik(*(x + e), nu, cu, w) - _loglik(*(x - e), nu, cu, w)) / 2e-6
        assert g[i] == pytest.approx(fd, rel=1e-5, abs=1e-6)


def test_zibb_recovers_parameters():
    n, c = simulate_zibb(1, 0.3, 1.0, 2.0)
    f = fit_zibb(n, c)
    assert f.identified and f.verdict == "identified" and abs(f.pi0 - 0.3) < 0.06
    assert f.pi0_ci[0] < 0.3 < f.pi0_ci[1] and f.pi0_ci[1] <= f.zero_share + 0.05
    assert abs(np.log(f.a / 1.0)) < np.log(1.4) and abs(np.log(f.b / 2.0)) < np.log(1.4)
    assert f.p_pi0 < 1e-4 and f.n_problems == 300
    ks = np.array([1, 2, 4, 8, 16, 32, 64])
    model = f.pass_at_k(ks)
    unbiased = pass_at_k(n, c, ks).mean(axis=0)
    np.testing.assert_allclose(model, unbiased, atol=0.02)  # the fit reproduces the data where it has data
    assert f.fit_gap == pytest.approx(np.abs(model - unbiased).max())
    big = f.pass_at_k([64, 128, 256, 1024, 10**6])
    assert np.all(np.diff(big) > 0) and big[-1] < 1 - f.pi0 + 1e-6  # monotone, bounded by the solvable share
    lo, hi = f.pass_at_k_range([1024])
    assert lo[0] <= f.pass_at_k([1024])[0] <= hi[0]
    assert zibb_pass_at_k(0.0, 2.0, 3.0, [1])[0] == pytest.approx(0.4)  # Pass@1 = (1 - pi0) a / (a + b)


def test_zibb_no_zero_mass():
    n, c = simulate_zibb(2, 0.0, 2.0, 2.0)
    f = fit_zibb(n, c)
    assert f.pi0_mle < 0.01 and f.pi0_ci[0] == 0.0 and f.pi0_ci[1] < 0.03 and f.verdict != "identified"
    assert f.p_pi0 > 0.05


def test_zibb_not_identified_is_reported():
    n, c = simulate_zibb(0, 0.3, 0.3, 2.0, P=50, n=16)  # beta mass piled near 0: impossible vs hard is ambiguous
    f = fit_zibb(n, c)
    assert not f.identified and f.verdict == "not_identified" and np.isnan(f.pi0) and "not identified" in f.note
    assert f.pi0_ci[0] == 0.0 and f.pi0_ci[1] >= f.zero_share
    assert np.all(np.isnan(f.pass_at_k([1024])))
    lo, hi = f.pass_at_k_range([16, 1024])
    assert np.all(lo <= hi) and hi[1] - lo[1] > 0.1  # the extrapolation is wide open
    z = fit_zibb(np.full(10, 8), np.zeros(10))
    assert not z.identified and np.isnan(z.pi0) and "no problem was ever solved" in z.note


def test_zibb_profile_interval_covers_in_a_small_simulation():
    hits = sum(
        (lambda f: f.pi0_ci[0] <= 0.3 <= f.pi0_ci[1])(fit_zibb(*simulate_zibb(100 + s, 0.3, 1.0, 2.0), ci=0.9, grid=9))
        for s in range(16)
    )
    assert hits >= 13, hits


def test_zibb_interval_excludes_zero_exactly_when_the_boundary_test_rejects():
    """The interval's lower end uses the boundary test's chi-bar-squared cut-off: "0 excluded" (verdict
    identified) and p_pi0 < 1 - ci never disagree, also when p_pi0 lies between the chi-bar and the chi2_1 cut-offs
    (the committed comparison/RL fit had p = 0.045 with an interval reaching 0 before this)."""
    seen = set()
    for s in range(24):
        for ci in (0.9, 0.95):
            f = fit_zibb(*simulate_zibb(200 + s, 0.08, 0.8, 1.5, P=80, n=16), ci=ci, grid=9)
            if not f.identified:
                continue
            assert (f.pi0_ci[0] > 0) == (f.p_pi0 < 1 - ci), (s, ci, f.pi0_ci, f.p_pi0)
            seen.add(f.pi0_ci[0] > 0)
    assert seen == {True, False}  # both sides were exercised


def test_zibb_bootstrap():
    n, c = simulate_zibb(3, 0.3, 1.0, 2.0, P=150)
    res = zibb_bootstrap(n, c, [1, 64, 1024], n_boot=30, seed=0, ci=0.9)
    f = fit_zibb(n, c)
    assert res["pi0"].shape == (30,) and res["pass"].shape == (30, 3)
    assert res["pi0_ci"][0] < f.pi0 < res["pi0_ci"][1]
    assert np.all(res["pass_ci_low"] <= res["pass_ci_high"]) and res["pi0_zero_frac"] == 0.0
    again = zibb_bootstrap(n, c, [1, 64, 1024], n_boot=30, seed=0, ci=0.9)
    np.testing.assert_array_equal(res["pi0"], again["pi0"])


def test_zibb_fit_gap_flags_a_misfit():
    """A histogram the mixture cannot follow (the tiny profile's SFT on comparison at T = 5: many problems solved
    0-3 times in 16, a separate cluster at 12-14): the fit misses Pass@16 by ~0.05 and says so."""
    c = np.repeat(np.arange(17), [11, 12, 7, 4, 3, 3, 1, 2, 0, 0, 1, 0, 3, 1, 2, 0, 0])
    assert fit_zibb(np.full(c.size, 16), c).fit_gap > 0.04
    n, c = simulate_zibb(4, 0.2, 1.0, 1.0, P=100, n=16)
    assert fit_zibb(n, c).fit_gap < 0.03


def test_zibb_bad_input():
    with pytest.raises(ValueError, match="0 <= c <= n"):
        fit_zibb([4, 4], [5, 1])
    with pytest.raises(ValueError, match="one length"):
        fit_zibb([4, 4], [1])
    with pytest.raises(ValueError, match="ci"):
        fit_zibb([4, 4], [1, 0], ci=1.5)


# ----------------------------------------------------------------------------- deep sampling bookkeeping


def _pair_counts():
    spec = {"rl": [3, 0, 2, 0, 5, 0], "base": [0, 0, 4, 1, 0, 2]}
    rows = [(pol, "bridge", f"p{j}", 1.0, 5, 16, c) for pol, cs in spec.items() for j, c in enumerate(cs)]
    rows += [(pol, "bridge", f"p{j}", 1.0, 0, 16, 16) for pol in spec for j in range(6)]  # other T: ignored
    return pd.DataFrame(rows, columns=COLS)


def test_boundary_candidates():
    cand = boundary_candidates(_pair_counts(), "rl", "base", T=5, temperature=1.0)
    assert cand["problem_id"].tolist() == ["p0", "p4", "p3", "p5"]
    assert cand["direction"].tolist() == ["gained", "gained", "lost", "lost"]
    assert cand.set_index("problem_id").loc["p0", "other"] == "base"
    assert cand.set_index("problem_id").loc["p3", "other"] == "rl"
    assert cand["n_other"].eq(16).all() and cand.set_index("problem_id").loc["p4", "c_solver"] == 5
    with pytest.raises(ValueError, match="no counts for policy 'sft'"):
        boundary_candidates(_pair_counts(), "sft", "base", T=5, temperature=1.0)


def test_geometric_interval_is_exact():
    alpha = 0.05
    lo, hi = geometric_interval(None, 100, 0.95)
    assert lo == 0 and hi == pytest.approx(1 - 0.05 ** (1 / 100)) and (1 - hi) ** 100 == pytest.approx(alpha)
    d = 7
    lo, hi = geometric_interval(d, 50, 0.95)
    assert 1 - (1 - lo) ** d == pytest.approx(alpha / 2)  # P(first success <= d | p_low) = alpha/2
    assert (1 - hi) ** (d - 1) == pytest.approx(alpha / 2)  # P(first success >= d | p_high) = alpha/2
    assert geometric_interval(1, 5)[1] == 1.0
    with pytest.raises(ValueError, match="first_success"):
        geometric_interval(60, 50)


def test_deep_sampling_summary():
    cand = boundary_candidates(_pair_counts(), "rl", "base", T=5, temperature=1.0)
    per, summ = deep_sampling_summary(cand, {"p0": 37, "p4": None, "p3": None}, n_deep=200)
    p = per.set_index("problem_id")
    assert p.loc["p0", "solved_at_depth"] and p.loc["p0", "p_hat"] == pytest.approx(1 / 37)
    assert not p.loc["p4", "solved_at_depth"] and p.loc["p4", "p_high"] == pytest.approx(1 - 0.05 ** (1 / 200))
    assert not p.loc["p5", "sampled"] and np.isnan(p.loc["p5", "p_high"])
    s = summ.set_index("direction")
    assert s.loc["gained", "n_candidates"] == 2 and s.loc["gained", "n_solved_at_depth"] == 1
    assert (s.loc["gained", "ci_low"], s.loc["gained", "ci_high"]) == pytest.approx(wilson_interval(1, 2))
    assert s.loc["lost", "n_sampled"] == 1 and s.loc["lost", "n_never"] == 1
    assert s.loc["gained", "median_first_success"] == 37
    per2, _ = deep_sampling_summary(cand, {"p4": None}, n_deep=200, screen_draws=True)
    assert per2.set_index("problem_id").loc["p4", "m"] == 216  # the 16 screening failures added
    with pytest.raises(ValueError, match="not candidates"):
        deep_sampling_summary(cand, {"p2": 3}, n_deep=200)
    with pytest.raises(ValueError, match="first_success"):
        deep_sampling_summary(cand, {"p0": 300}, n_deep=200)
