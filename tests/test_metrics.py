"""Tests of passkt.metrics: the estimator, surfaces, paired bootstrap, boundary sets, diagnostics."""

from __future__ import annotations

import itertools
import json
from fractions import Fraction
from math import comb

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from passkt.metrics import (
    bootstrap_p,
    bootstrap_surface,
    boundary,
    category_rng,
    crossover_interval,
    crossover_k,
    crossover_states,
    effect,
    marginal_values,
    mcnemar_exact,
    net_boundary_ci,
    pass_at_k,
    pass_surface,
    resample_weights,
    saturation_depth,
    set_difference,
    shared_pass1_diff,
    summarise,
    wilson_interval,
)

COLS = ["policy", "category", "problem_id", "temperature", "T", "n", "c"]


def make_counts(spec: dict, n: int, temperature: float = 0.7) -> pd.DataFrame:
    """spec: (policy, category, T) -> list of c over problems 0..P-1."""
    rows = [
        (pol, cat, f"{cat}-{j}", temperature, T, n, c)
        for (pol, cat, T), cs in spec.items()
        for j, c in enumerate(cs)
    ]
    return pd.DataFrame(rows, columns=COLS)


def random_counts(
    seed: int, policies=("base", "rl"), cats=("bridge",), depths=(0, 1, 2), P=30, n=8, temps=(0.7,)
):
    rng = np.random.default_rng(seed)
    rows = []
    for cat in cats:
        for pol in policies:
            for temp in temps:
                for T in depths:
                    for j in range(P):
                        rows.append((pol, cat, f"{cat}-{j}", temp, T, n, int(rng.integers(0, n + 1))))
    return pd.DataFrame(rows, columns=COLS)


# ----------------------------------------------------------------------------- pass_at_k


def brute_force(n: int, c: int, k: int) -> float:
    """Share of all k-subsets of n rollouts (the first c successful) that contain a success."""
    subsets = list(itertools.combinations(range(n), k))
    return sum(any(i < c for i in s) for s in subsets) / len(subsets)


@settings(max_examples=150, deadline=None)
@given(st.integers(1, 8).flatmap(lambda n: st.tuples(st.just(n), st.integers(0, n))))
def test_pass_at_k_matches_enumeration(nc):
    n, c = nc
    ks = np.arange(1, n + 1)
    got = pass_at_k(np.array([n]), np.array([c]), ks)[0]
    want = [brute_force(n, c, int(k)) for k in ks]
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-12)


@settings(max_examples=100, deadline=None)
@given(st.integers(1, 300).flatmap(lambda n: st.tuples(st.just(n), st.integers(0, n))))
def test_monotone_in_k_and_pass1_is_c_over_n(nc):
    n, c = nc
    ks = np.arange(1, n + 1)
    got = pass_at_k(n, c, ks)
    assert got.shape == (n,)
    assert np.all(np.diff(got) >= -1e-12)
    assert abs(got[0] - c / n) <= (c + 1) * np.finfo(float).eps  # the product telescopes; ~1 ulp per factor
    assert np.all((got >= 0) & (got <= 1))


def test_matches_exact_rational_for_large_n():
    n = 200
    for c, k in [(1, 1), (3, 50), (17, 100), (150, 40), (5, 196)]:
        exact = 1 - Fraction(comb(n - c, k), comb(n, k))
        assert pass_at_k(n, c, [k])[0] == pytest.approx(float(exact), rel=1e-12, abs=1e-15)


def test_edge_cases_exact_and_shapes():
    n = np.array([[8, 8, 8], [5, 5, 64]])
    c = np.array([[0, 8, 7], [0, 3, 1]])
    out = pass_at_k(n, c, [1, 2, 4])
    assert out.shape == (2, 3, 3)
    assert np.all(out[0, 0] == 0.0) and np.all(out[1, 0] == 0.0)  # c = 0 -> exactly 0
    assert np.all(out[0, 1] == 1.0)  # c = n
    assert out[0, 2, 1] == 1.0 and out[0, 2, 2] == 1.0  # n - c = 1 < k
    assert out[1, 1, 2] == 1.0  # n - c = 2 < 4
    assert out[1, 1, 0] == pytest.approx(0.6)
    assert out[1, 2, 0] == pytest.approx(1 / 64)
    assert pass_at_k(np.array([], dtype=int), np.array([], dtype=int), [1, 2]).shape == (0, 2)


def test_bad_input_errors():
    with pytest.raises(ValueError, match=r"k=9 exceeds n=8"):
        pass_at_k([8, 10], [1, 2], [1, 9])
    with pytest.raises(ValueError, match=r"c=9.*n=8"):
        pass_at_k([8], [9], [1])
    with pytest.raises(ValueError, match="same shape"):
        pass_at_k([8, 8], [1], [1])
    with pytest.raises(ValueError, match="whole numbers"):
        pass_at_k([8.5], [1], [1])
    with pytest.raises(ValueError, match="k must be >= 1"):
        pass_at_k([8], [1], [0, 1])
    assert pass_at_k([8.0], [2.0], [2])[0] == pytest.approx(brute_force(8, 2, 2))  # integral floats are fine


# ----------------------------------------------------------------------------- surface


def test_pass_surface_means_over_problems():
    counts = make_counts({("base", "bridge", 5): [0, 2, 4], ("rl", "bridge", 5): [1, 1, 1]}, n=4)
    s = pass_surface(counts, [1, 4]).set_index(["policy", "k"])
    assert s.loc[("base", 1), "pass"] == pytest.approx((0 + 0.5 + 1) / 3)
    assert s.loc[("base", 4), "pass"] == pytest.approx(2 / 3)
    assert s.loc[("rl", 1), "pass"] == pytest.approx(0.25)
    assert s.loc[("rl", 4), "pass"] == pytest.approx(1.0)
    assert set(s["n_problems"]) == {3}
    assert list(pass_surface(counts, [1]).columns)[:6] == [
        "policy",
        "category",
        "temperature",
        "T",
        "k",
        "pass",
    ]


def test_counts_validation():
    counts = make_counts({("base", "bridge", 5): [0, 2, 5]}, n=4)
    with pytest.raises(ValueError, match=r"c=5 is outside"):
        pass_surface(counts, [1])
    dup = pd.concat([make_counts({("base", "bridge", 5): [1]}, n=4)] * 2)
    with pytest.raises(ValueError, match="duplicate"):
        pass_surface(dup, [1])
    with pytest.raises(ValueError, match="missing column"):
        pass_surface(dup.drop(columns="T"), [1])


# ----------------------------------------------------------------------------- bootstrap


def test_bootstrap_reproducible_and_ci_contains_estimate():
    counts = random_counts(1)
    b1 = bootstrap_surface(counts, [1, 2, 8], [("rl", "base")], n_boot=300, seed=3)
    b2 = bootstrap_surface(counts, [1, 2, 8], [("rl", "base")], n_boot=300, seed=3)
    b3 = bootstrap_surface(counts, [1, 2, 8], [("rl", "base")], n_boot=300, seed=4)
    np.testing.assert_array_equal(b1.point_reps, b2.point_reps)
    pd.testing.assert_frame_equal(b1.diffs, b2.diffs)
    assert not np.array_equal(b1.point_reps, b3.point_reps)
    pts = b1.points
    assert len(pts) == 2 * 3 * 3 and len(b1.diffs) == 3 * 3
    assert np.all((pts["ci_low"] <= pts["pass"]) & (pts["pass"] <= pts["ci_high"]))
    assert np.all(pts["ci_high"] - pts["ci_low"] > 0)
    surf = pass_surface(counts, [1, 2, 8])
    np.testing.assert_allclose(pts["pass"], surf["pass"])  # same ordering and values as the surface
    # replicate means sit near the estimate (bootstrap is centred)
    np.testing.assert_allclose(b1.point_reps.mean(axis=0), pts["pass"], atol=0.03)


def test_pairing_identical_policies_give_exact_zero():
    base = random_counts(2, policies=("base",), cats=("bridge", "comparison"))
    twin = base.assign(policy="twin")
    other = random_counts(9, policies=("rl",), cats=("bridge", "comparison"))
    b = bootstrap_surface(
        pd.concat([base, twin, other]), [1, 4, 8], [("twin", "base"), ("rl", "base")], n_boot=200
    )
    est, reps = b.diff_curve("twin", "base", "bridge", 0.7, 1)
    assert np.all(est == 0) and np.all(reps == 0)
    tw = b.diffs[b.diffs["a"] == "twin"]
    assert np.all(tw["diff"] == 0) and np.all(tw["p"] == 1.0) and np.all(tw["ci_low"] == 0)
    # paired: the rl - base replicates equal the difference of the two policies' replicates
    _, ra = b.curve("rl", "comparison", 0.7, 2)
    _, rb = b.curve("base", "comparison", 0.7, 2)
    _, rd = b.diff_curve("rl", "base", "comparison", 0.7, 2)
    np.testing.assert_allclose(rd, ra - rb, atol=1e-12)


def test_bootstrap_categories_independent_and_pairs_skipped():
    counts = random_counts(5, cats=("bridge", "comparison"))
    full = bootstrap_surface(counts, [1, 8], [("rl", "base"), ("sft", "base")], n_boot=100, seed=0)
    part = bootstrap_surface(
        counts[counts["category"] == "bridge"], [1, 8], [("rl", "base")], n_boot=100, seed=0
    )
    _, r_full = full.curve("rl", "bridge", 0.7, 0)
    _, r_part = part.curve("rl", "bridge", 0.7, 0)
    np.testing.assert_array_equal(r_full, r_part)
    assert set(full.diffs["a"]) == {"rl"}  # sft absent -> skipped
    with pytest.raises(KeyError):
        full.curve("sft", "bridge", 0.7, 0)


def test_bootstrap_missing_problem_in_pair_raises():
    counts = random_counts(6)
    holed = counts.drop(counts.index[(counts["policy"] == "rl") & (counts["problem_id"] == "bridge-7")][:1])
    with pytest.raises(ValueError, match=r"'rl' lacks problem 'bridge-7'"):
        bootstrap_surface(holed, [1], [("rl", "base")], n_boot=10)
    bootstrap_surface(holed, [1], [], n_boot=10)  # points alone are fine


def test_bootstrap_p_values_and_bad_args():
    est = np.array([0.2, -0.1, 0.0, 0.1])
    reps = np.array(
        [[0.3, -0.2, 0.1, 0.0], [0.1, 0.05, -0.1, 0.2], [-0.1, -0.1, 0.0, 0.1], [0.2, -0.3, 0.2, 0.3]]
    )
    np.testing.assert_allclose(bootstrap_p(est, reps), [0.5, 0.5, 1.0, 0.5])  # a replicate at 0 counts
    assert bootstrap_p(np.array([0.5]), np.array([[-1.0], [-1.0]]))[0] == 1.0  # capped
    counts = random_counts(0)
    with pytest.raises(ValueError, match="n_boot"):
        bootstrap_surface(counts, [1], n_boot=0)
    with pytest.raises(ValueError, match="ci"):
        bootstrap_surface(counts, [1], ci=1.5)


def test_resample_weights_rows_sum_to_size():
    w = resample_weights(np.random.default_rng(0), 50, 17)
    assert w.shape == (50, 17) and np.all(w.sum(axis=1) == 17) and np.all(w >= 0)


# ----------------------------------------------------------------------------- boundary and tests


def test_boundary_and_set_difference():
    counts = make_counts(
        {
            ("base", "bridge", 5): [0, 2, 0, 1],
            ("rl", "bridge", 5): [3, 0, 0, 1],
            ("base", "bridge", 0): [1, 1, 1, 1],
        },
        n=4,
    )
    bd = boundary(counts, 5, 0.7)
    assert bd == {"base": {"bridge": {"bridge-1", "bridge-3"}}, "rl": {"bridge": {"bridge-0", "bridge-3"}}}
    assert boundary(counts, 5, 0.3) == {}
    universe = {f"bridge-{j}" for j in range(4)}
    sd = set_difference(bd["rl"]["bridge"], bd["base"]["bridge"], universe)
    assert sd == {"gained": {"bridge-0"}, "lost": {"bridge-1"}, "both": {"bridge-3"}, "neither": {"bridge-2"}}
    with pytest.raises(ValueError, match="outside the universe"):
        set_difference({"x"}, set(), universe)


@pytest.mark.parametrize(
    "b,c,p",
    [
        (5, 1, 14 / 64),
        (1, 5, 14 / 64),
        (9, 1, 22 / 1024),
        (0, 5, 2 / 32),
        (3, 3, 1.0),
        (0, 0, 1.0),
        (1, 0, 1.0),
    ],
)
def test_mcnemar_exact_hand_values(b, c, p):
    assert mcnemar_exact(b, c) == pytest.approx(p, rel=1e-12)


def test_mcnemar_and_wilson_bad_input():
    with pytest.raises(ValueError, match="b must be"):
        mcnemar_exact(-1, 3)
    with pytest.raises(ValueError, match="x must be"):
        wilson_interval(11, 10)
    with pytest.raises(ValueError, match="n must be"):
        wilson_interval(0, 0)


def test_wilson_known_values():
    assert wilson_interval(5, 10) == pytest.approx((0.2366, 0.7634), abs=1e-4)
    assert wilson_interval(0, 10) == pytest.approx((0.0, 0.2775), abs=1e-4)
    lo, hi = wilson_interval(82, 100)
    assert lo < 0.82 < hi and wilson_interval(82, 100, conf=0.99)[0] < lo


def test_net_boundary_ci():
    u = {f"p{j}" for j in range(40)}
    a = {f"p{j}" for j in range(30)}
    b = {f"p{j}" for j in range(4, 32)}
    net, lo, hi = net_boundary_ci(a, b, u, n_boot=500, seed=1)
    assert net == 4 - 2 and lo <= net <= hi and lo < hi
    assert net_boundary_ci(a, a, u, n_boot=50) == (0.0, 0.0, 0.0)


# ----------------------------------------------------------------------------- crossover


KS4 = [1, 2, 4, 8]


@pytest.mark.parametrize(
    "a,b,want",
    [
        ([0.30, 0.50, 0.70, 0.90], [0.40, 0.55, 0.65, 0.80], 4.0),  # b leads, a overtakes at 4 and stays
        ([0.30, 0.60, 0.50, 0.90], [0.40, 0.55, 0.60, 0.80], 8.0),  # brief lead at 2 does not count
        ([0.30, 0.60, 0.90, 0.70], [0.40, 0.50, 0.60, 0.80], np.nan),  # falls back at the end
        ([0.50, 0.60, 0.70, 0.80], [0.40, 0.50, 0.60, 0.70], np.nan),  # a already ahead at k=1
        ([0.40, 0.50, 0.60, 0.70], [0.40, 0.50, 0.60, 0.70], np.nan),  # tie at k=1: no crossover
        ([0.10, 0.20, 0.30, 0.40], [0.40, 0.50, 0.60, 0.70], np.nan),  # never
        ([0.30, 0.50, 0.60, 0.70], [0.40, 0.50, 0.60, 0.70], 2.0),  # reaching (equality) counts
    ],
)
def test_crossover_constructed(a, b, want):
    got = crossover_k(a, b, KS4)
    assert (np.isnan(got) and np.isnan(want)) or got == want


def test_crossover_vectorised_and_interval():
    rng = np.random.default_rng(0)
    a, b = rng.random((200, 4)), rng.random((200, 4))
    rows = np.array([crossover_k(a[i], b[i], KS4) for i in range(200)])
    np.testing.assert_array_equal(crossover_k(a, b, KS4), rows)
    iv = crossover_interval(a, b, KS4)
    states = crossover_states(a, b, KS4)
    assert iv["never_frac"] + iv["already_frac"] + np.mean(~np.isnan(rows)) == pytest.approx(1.0)
    assert iv["never_frac"] == pytest.approx(np.isinf(states).mean()) and iv["never_frac"] > 0.5
    assert iv["ci_high_never"] == 1.0 and iv["ci_high"] == 8  # most random pairs never stay on top: "never"
    # a on top everywhere: "already", the interval at the smallest k, nothing never crosses
    assert crossover_interval(b + 1, b, KS4) == {
        "ci_low": 1.0, "ci_high": 1.0, "ci_high_never": 0.0, "never_frac": 0.0, "already_frac": 1.0
    }
    # b leads at k = 1 and a passes it at k = 4 in 90% of resamples, never in 10%: all resamples count
    base = np.tile([0.5, 0.5, 0.5, 0.5], (100, 1))
    rl = np.tile([0.4, 0.45, 0.55, 0.6], (100, 1))
    rl[:10] = [0.4, 0.45, 0.48, 0.49]
    iv = crossover_interval(rl, base, KS4, ci=0.95)
    assert iv["never_frac"] == pytest.approx(0.1) and iv["ci_low"] == 4 and iv["ci_high_never"] == 1.0
    assert crossover_interval(rl[10:], base[10:], KS4)["ci_high"] == 4  # without the never-crossing ones
    with pytest.raises(ValueError, match="shape"):
        crossover_k([0.1, 0.2], [0.1, 0.2, 0.3], [1, 2])


# ----------------------------------------------------------------------------- marginal values, saturation


def surface_from(curves: dict, k: int = 4) -> pd.DataFrame:
    rows = [(pol, "bridge", 0.7, T, k, v) for pol, curve in curves.items() for T, v in curve.items()]
    return pd.DataFrame(rows, columns=["policy", "category", "temperature", "T", "k", "pass"])


def test_saturation_depth_constructed():
    surf = surface_from(
        {
            "rl": {0: 0.2, 1: 0.5, 2: 0.7, 3: 0.705, 5: 0.708},
            "base": {0: 0.5, 1: 0.4, 2: 0.52},
            "sft": {0: 0.3},
        }
    )
    t = saturation_depth(surf, 4, eps=0.01).set_index("policy")["T_star"]
    assert t["rl"] == 2 and t["base"] == 2 and np.isnan(t["sft"])
    assert saturation_depth(surf, 4, eps=0.001).set_index("policy").loc["rl", "T_star"] == 5
    assert saturation_depth(surf, 4, eps=0.5).set_index("policy").loc["rl", "T_star"] == 1  # 0.708-0.2 >= 0.5
    assert saturation_depth(surf, 4, eps=0.6).set_index("policy").loc["rl", "T_star"] == 0
    with pytest.raises(ValueError, match="k=16"):
        saturation_depth(surf, 16)
    # base's T* = 2 is its last depth: saturation not seen within its grid, censored (">= 2"); rl's 2 is observed
    c = saturation_depth(surf, 4, eps=0.01).set_index("policy")["censored"]
    assert c["base"] == 1 and c["rl"] == 0
    assert saturation_depth(surf, 4, eps=0.001).set_index("policy").loc["rl", "censored"] == 1  # still rising


def test_summarise_t_star_censored_and_its_interval():
    """A curve still rising at the last depth reports T* = last depth as censored in every resample; one flat
    from T = 1 reports T* = 1 uncensored."""
    P = 30
    spec = {("rl", "bridge", 0): [0] * P, ("rl", "bridge", 1): [1] * 15 + [0] * 15, ("rl", "bridge", 2): [1] * P,
            ("base", "bridge", 0): [0] * P, ("base", "bridge", 1): [2] * P, ("base", "bridge", 2): [2] * P}
    spec |= {(pol, "comparison", T): [2] * P for pol in ("rl", "base") for T in (0, 1, 2)}
    s = summarise(make_counts(spec, n=4), [1, 2, 4], 2, 0.7, [("rl", "base")], n_boot=100, seed=0)
    assert s["saturation.bridge.rl.T_star"] == 2 and s["saturation.bridge.rl.T_star.censored"] == 1
    assert s["saturation.bridge.rl.T_star.censored_frac"] == 1.0
    assert s["saturation.bridge.base.T_star"] == 1 and s["saturation.bridge.base.T_star.censored"] == 0
    assert s["saturation.bridge.base.T_star.ci_low"] == s["saturation.bridge.base.T_star.ci_high"] == 1
    assert s["saturation.comparison.rl.T_star"] == 0 and s["saturation.comparison.rl.T_star.censored_frac"] == 0


def test_marginal_values():
    counts = make_counts(
        {("rl", "bridge", 0): [0, 1, 2], ("rl", "bridge", 1): [1, 2, 3], ("rl", "bridge", 3): [2, 4, 4]}, n=4
    )
    mv = marginal_values(counts, [1, 2, 4]).set_index(["T", "k"])
    mean = lambda cs, k: pass_at_k(np.full(len(cs), 4), np.array(cs), [k])[:, 0].mean()  # noqa: E731
    assert mv.loc[(0, 1), "delta_k"] == pytest.approx(mean([0, 1, 2], 2) - mean([0, 1, 2], 1))
    assert mv.loc[(1, 2), "delta_k"] == pytest.approx(mean([1, 2, 3], 3) - mean([1, 2, 3], 2))  # k+1 off-grid
    assert np.isnan(mv.loc[(0, 4), "delta_k"])
    assert mv.loc[(1, 2), "delta_T"] == pytest.approx((mean([2, 4, 4], 2) - mean([1, 2, 3], 2)) / 2)
    assert mv.loc[(0, 1), "delta_T"] == pytest.approx(mean([1, 2, 3], 1) - mean([0, 1, 2], 1))
    assert mv.xs(3, level="T")["delta_T"].isna().all()


# ----------------------------------------------------------------------------- summarise


def tiny_counts() -> pd.DataFrame:
    spec = {}
    rng = np.random.default_rng(11)
    for pol in ("base", "rl"):
        spec[(pol, "math", 0)] = rng.integers(0, 5, 12).tolist()
    for cat in ("comparison", "bridge"):
        for pol in ("base", "sft", "rl"):
            for T in (0, 1, 2):
                spec[(pol, cat, T)] = rng.integers(0, 5, 12).tolist()
    return make_counts(spec, n=4)


PAIRS = [("rl", "base"), ("sft", "base"), ("rl", "sft"), ("bonus", "base")]


def expected_keys() -> set:
    keys = {"meta.n", "meta.T_eval", "meta.temperature", "meta.ci", "meta.k_gap", "meta.n_replicates"}
    spread = (".seed_sd", ".seed_min", ".seed_max", ".n_seeds")
    effect = ("", ".ci_low", ".ci_high", ".p", ".tost_low", ".tost_high")
    pols = {"math": ["base", "rl"], "comparison": ["base", "sft", "rl"], "bridge": ["base", "sft", "rl"]}
    for cat, ps in pols.items():
        keys.add(f"meta.n_problems.{cat}")
        for pol in ps:
            keys |= {f"boundary.{cat}.{pol}.{s}" for s in ("size", "n_problems", "frac", "ci_low", "ci_high")}
            for tag in ("k1", "kmax"):
                keys |= {f"pass.{cat}.{pol}.{tag}{s}" for s in ("", ".ci_low", ".ci_high") + spread}
            keys |= {f"saturation.{cat}.{pol}.{s}" for s in ("T_star", "T_star_k1", "T_star.censored", "T_star.ci_low",
                                                              "T_star.ci_high", "T_star.censored_frac")}
        for a, b in PAIRS:
            if a in ps and b in ps:
                nm = f"{a}_vs_{b}"
                keys |= {
                    f"setdiff.{cat}.{nm}.{s}"
                    for s in (
                        "gained",
                        "lost",
                        "both",
                        "neither",
                        "net",
                        "net_ci_low",
                        "net_ci_high",
                        "mcnemar_p",
                        "net_p",
                        "net_seed_sd",
                        "n_seeds",
                    )
                }
                for tag in ("k1", "kmax"):
                    keys |= {f"passdiff.{cat}.{nm}.{tag}{s}" for s in effect + spread}
                keys |= {f"gapwiden.{cat}.{nm}{s}" for s in effect + (".n_seeds",)}
                keys |= {f"split.{cat}.{nm}{s}" for s in effect + (".n_seeds",)}
                keys |= {f"efficiency.{cat}.{nm}{s}" for s in effect + (".n_shared", ".none_drawn_frac", ".n_seeds")}
                if cat == "bridge":
                    keys |= {f"interaction.{nm}.bridge_minus_comparison{s}" for s in effect + (".n_seeds",)}
                keys |= {f"crossover.{cat}.{nm}.{s}" for s in ("k", "never", "already", "ci_low", "ci_high",
                                                               "ci_high_never", "never_frac", "already_frac")}
    return keys


def test_summarise_keys_and_values():
    counts = tiny_counts()
    s = summarise(counts, [1, 2, 4], T_eval=2, temperature=0.7, pairs=PAIRS, n_boot=200, seed=0)
    assert set(s) == expected_keys()
    assert all(type(v) is float for v in s.values())
    json.dumps(s)
    assert s["meta.n"] == 4 and s["meta.T_eval"] == 2 and s["meta.n_problems.bridge"] == 12
    # math is read at T = 0, others at T_eval
    math_rl = counts[(counts["category"] == "math") & (counts["policy"] == "rl")]
    assert s["boundary.math.rl.size"] == (math_rl["c"] > 0).sum()
    br = counts[(counts["category"] == "bridge") & (counts["T"] == 2)]
    assert s["boundary.bridge.sft.size"] == (br.loc[br["policy"] == "sft", "c"] > 0).sum()
    assert s["pass.bridge.rl.k1"] == pytest.approx(br.loc[br["policy"] == "rl", "c"].mean() / 4)
    assert np.isnan(s["saturation.math.base.T_star"]) and not np.isnan(s["saturation.bridge.rl.T_star"])
    # set difference adds up, and its net interval is the paired pass@n interval scaled by P
    nm = "setdiff.bridge.rl_vs_base"
    assert sum(s[f"{nm}.{p}"] for p in ("gained", "lost", "both", "neither")) == 12
    assert s[f"{nm}.net"] == s[f"{nm}.gained"] - s[f"{nm}.lost"]
    assert s[f"{nm}.net"] == pytest.approx(12 * s["passdiff.bridge.rl_vs_base.kmax"])
    assert s[f"{nm}.net_ci_low"] == pytest.approx(12 * s["passdiff.bridge.rl_vs_base.kmax.ci_low"])
    assert s[f"{nm}.net_ci_high"] == pytest.approx(12 * s["passdiff.bridge.rl_vs_base.kmax.ci_high"])
    pass2 = {
        pol: pass_at_k(np.full(12, 4), br.loc[br["policy"] == pol, "c"].to_numpy(), [2]).mean()
        for pol in ("rl", "base")
    }
    assert s["gapwiden.bridge.rl_vs_base"] == pytest.approx(
        s["passdiff.bridge.rl_vs_base.kmax"] - (pass2["rl"] - pass2["base"])
    )
    # efficiency: the Pass@1 difference on the problems both solve; split = expansion (dPass@kmax) minus it
    c_rl, c_base = (br.loc[br["policy"] == pol, "c"].to_numpy() for pol in ("rl", "base"))
    both = (c_rl > 0) & (c_base > 0)
    assert s["efficiency.bridge.rl_vs_base"] == pytest.approx((c_rl[both] - c_base[both]).mean() / 4)
    assert s["efficiency.bridge.rl_vs_base.n_shared"] == both.sum()
    assert s["split.bridge.rl_vs_base"] == pytest.approx(
        s["passdiff.bridge.rl_vs_base.kmax"] - s["efficiency.bridge.rl_vs_base"]
    )
    assert s["interaction.rl_vs_base.bridge_minus_comparison"] == pytest.approx(
        s["passdiff.bridge.rl_vs_base.kmax"] - s["passdiff.comparison.rl_vs_base.kmax"]
    )
    assert s["meta.ci"] == 0.95 and s["meta.k_gap"] == 2
    for key in ("split.bridge.rl_vs_base", "passdiff.comparison.sft_vs_base.kmax"):  # tost = the 90% interval
        assert s[f"{key}.ci_low"] <= s[f"{key}.tost_low"] <= s[f"{key}.tost_high"] <= s[f"{key}.ci_high"]
    assert summarise(counts, [1, 2, 4], 2, 0.7, PAIRS, n_boot=200, seed=0) == pytest.approx(s, nan_ok=True)


def test_effect_intervals_and_equivalence_on_known_replicates():
    reps = np.linspace(-1.0, 1.0, 2001)  # quantiles are the probabilities mapped onto [-1, 1]
    e = effect("x", 0.1, reps, ci=0.9)
    assert e["x"] == 0.1
    assert (e["x.ci_low"], e["x.ci_high"]) == pytest.approx((-0.9, 0.9))
    assert (e["x.tost_low"], e["x.tost_high"]) == pytest.approx((-0.8, 0.8))  # the (2 ci - 1) = 80% interval
    assert e["x.p"] == 1.0  # 1001 of 2001 replicates <= 0: doubled and capped at 1
    assert effect("z", 0.7, reps + 0.7, ci=0.9)["z.p"] == pytest.approx(2 * 301 / 2001)  # 301 replicates <= 0
    shifted = effect("y", 0.5, reps + 0.5, ci=0.95)
    assert shifted["y.ci_low"] == pytest.approx(-0.45) and shifted["y.tost_high"] == pytest.approx(1.4)


def test_summarise_split_detects_a_crossover_and_not_a_uniform_lead():
    """RL behind at k = 1 but with a wider boundary (a crossover) gives a split interval above 0; RL ahead
    by the same amount at every k gives a split of exactly 0."""
    P = 60
    base = [4] * 30 + [0] * 30  # solved reliably on half the problems: Pass@1 0.5, boundary 0.5
    rl = [2] * 45 + [0] * 15  # solved half the time on 3/4 of them: Pass@1 0.375, boundary 0.75
    counts = make_counts({("base", "bridge", 2): base, ("rl", "bridge", 2): rl,
                          ("base", "comparison", 2): base, ("rl", "comparison", 2): base}, n=4)
    s = summarise(counts, [1, 2, 4], 2, 0.7, [("rl", "base")], n_boot=400, seed=0)
    assert s["passdiff.bridge.rl_vs_base.k1"] == pytest.approx(0.375 - 0.5)
    assert s["efficiency.bridge.rl_vs_base"] == pytest.approx(0.5 - 1.0)  # on the 30 problems both solve
    assert s["split.bridge.rl_vs_base"] == pytest.approx(0.25 + 0.5)
    assert s["split.bridge.rl_vs_base.ci_low"] > 0 and s["split.bridge.rl_vs_base.p"] < 0.05
    assert s["interaction.rl_vs_base.bridge_minus_comparison.ci_low"] > 0
    # comparison: identical policies, every effect exactly 0 with a degenerate interval
    assert s["split.comparison.rl_vs_base"] == 0 and s["split.comparison.rl_vs_base.tost_high"] == 0
    assert s["meta.n_problems.bridge"] == P


def test_shared_pass1_diff_by_hand():
    c_a, c_b, n = np.array([2, 0, 4, 1]), np.array([1, 3, 0, 1]), np.full(4, 4)
    W = np.array([[1, 1, 1, 1], [0, 2, 2, 0], [2, 0, 0, 2], [3, 0, 0, 1]], dtype=float)
    est, reps, shared = shared_pass1_diff(c_a, n, c_b, n, W)
    assert shared.tolist() == [True, False, False, True]  # problems 1 and 2 are solved by one policy only
    assert est == pytest.approx((0.25 + 0.0) / 2)
    assert reps.tolist() == pytest.approx([0.125, 0.0, 0.125, 3 * 0.25 / 4])  # row 2 draws no shared problem: 0
    # a problem the pair lacks (NaN) is never shared; no shared problem at all gives 0 everywhere
    est, reps, shared = shared_pass1_diff([2.0, np.nan], [4.0, np.nan], [1.0, np.nan], [4.0, np.nan], W[:, :2])
    assert est == pytest.approx(0.25) and shared.tolist() == [True, False]
    est, reps, shared = shared_pass1_diff(c_a, n, np.zeros(4), n, W)
    assert est == 0.0 and not reps.any() and not shared.any()


def _correlated_counts() -> tuple[pd.DataFrame, dict]:
    """n = 8: RL far ahead at Pass@1 on 20 shared problems; 10 problems only RL solves and 10 only base solves."""
    rl = [8] * 20 + [1] * 20 + [3] * 10 + [0] * 10
    base = [1] * 20 + [1] * 20 + [0] * 10 + [2] * 10
    return make_counts({("rl", "bridge", 2): rl, ("base", "bridge", 2): base}, n=8), {"rl": rl, "base": base}


def test_summarise_split_is_one_joint_resample():
    """split's replicates are dPass@kmax - efficiency under the SAME problem resample (category_rng(seed, cat)),
    not an efficiency drawn independently."""
    counts, cs = _correlated_counts()
    n_boot, seed, ci = 2000, 0, 0.95
    s = summarise(counts, [1, 2, 4, 8], 2, 0.7, [("rl", "base")], n_boot=n_boot, seed=seed, ci=ci)  # kmax = n
    order = np.argsort([f"bridge-{j}" for j in range(60)])  # the resample's columns: problem ids sorted
    c_rl, c_base = (np.asarray(cs[p])[order] for p in ("rl", "base"))
    n = np.full(60, 8)
    d4 = (pass_at_k(n, c_rl, [8]) - pass_at_k(n, c_base, [8]))[:, 0]
    W = resample_weights(category_rng(seed, "bridge"), n_boot, 60)
    est, e_reps, _ = shared_pass1_diff(c_rl, n, c_base, n, W)
    joint = W @ d4 / 60 - e_reps
    q = [(1 - ci) / 2, (1 + ci) / 2]
    assert [s["split.bridge.rl_vs_base.ci_low"], s["split.bridge.rl_vs_base.ci_high"]] == pytest.approx(
        np.quantile(joint, q)
    )
    W2 = resample_weights(np.random.default_rng(99), n_boot, 60)
    independent = W @ d4 / 60 - shared_pass1_diff(c_rl, n, c_base, n, W2)[1]
    # an independently drawn efficiency gives other quantiles (here by ~0.005, far beyond approx's tolerance above)
    assert not np.quantile(independent, q) == pytest.approx(np.quantile(joint, q))
    assert s["efficiency.bridge.rl_vs_base"] == pytest.approx(est) == pytest.approx(7 / 8 / 2)
    assert s["efficiency.bridge.rl_vs_base.none_drawn_frac"] == 0


def test_summarise_needs_kmax_equal_to_n():
    """The boundary keys read Pass@kmax as the share of problems solved at least once in n: kmax must be n."""
    counts, _ = _correlated_counts()
    with pytest.raises(ValueError, match="kmax = 4 must equal n for every problem"):
        summarise(counts, [1, 2, 4], 2, 0.7, [("rl", "base")], n_boot=10)


def test_summarise_split_without_shared_problems():
    """No problem solved by both: efficiency 0 in the estimate and in every replicate, split = expansion."""
    counts = make_counts({("rl", "bridge", 2): [2] * 6 + [0] * 6, ("base", "bridge", 2): [0] * 6 + [3] * 3 + [0] * 3}, n=4)
    s = summarise(counts, [1, 2, 4], 2, 0.7, [("rl", "base")], n_boot=300, seed=1)
    e, sp, d = "efficiency.bridge.rl_vs_base", "split.bridge.rl_vs_base", "passdiff.bridge.rl_vs_base.kmax"
    assert s[e] == 0 and s[e + ".ci_low"] == s[e + ".ci_high"] == 0 and s[e + ".p"] == 1
    assert s[e + ".n_shared"] == 0 and s[e + ".none_drawn_frac"] == 1
    assert all(s[sp + x] == pytest.approx(s[d + x]) for x in ("", ".ci_low", ".ci_high", ".tost_low", ".tost_high"))


def test_summarise_bad_input():
    counts = tiny_counts()
    with pytest.raises(ValueError, match="kmax/2"):
        summarise(counts, [1, 4], 2, 0.7, PAIRS, n_boot=10)
    with pytest.raises(ValueError, match="temperature=0.3"):
        summarise(counts, [1, 2, 4], 2, 0.3, PAIRS, n_boot=10)
    with pytest.raises(ValueError, match="category 'bridge' at T=5"):
        summarise(counts, [1, 2, 4], 5, 0.7, PAIRS, n_boot=10)
