"""Training replicates: folders, seeds, the runner's --replicate, and the two-level statistics of summarise."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from passkt import metrics
from passkt.config import ConfigError
from passkt.paths import Paths, replicate_seed
from passkt.run import resolve

ROOT = Paths.at(".").root
PAIRS = [("rl", "base"), ("sft", "base"), ("rl_bonus", "base"), ("rl", "rl_bonus")]
KS = [1, 2, 4, 8]


def test_replicated_stages_resolve_to_their_replicate_folder():
    p = Paths(ROOT, 2)
    assert p.data("03_sft") == ROOT / "data/03_sft/r2" and p.figures("04_grpo") == ROOT / "figures/04_grpo/r2"
    assert p.rollouts("rl") == ROOT / "data/04_grpo/r2/rollouts" and p.sft_model == ROOT / "data/03_sft/r2/model"
    assert p.data("02_base_rollouts") == ROOT / "data/02_base_rollouts"  # the base model's rollouts are shared
    assert p.rollouts("base") == Paths(ROOT).rollouts("base")
    assert Paths(ROOT).with_replicate(1) == Paths(ROOT, 1)


def test_replicate_seeds_are_disjoint_across_master_seeds():
    s0, s1 = ({replicate_seed(m, r) for r in range(3)} for m in (0, 1))
    assert s0 == {0, 1, 2} and s1 == {1000, 1001, 1002}
    with pytest.raises(ValueError, match="replicate 1000"):
        replicate_seed(0, 1000)


def test_runner_requires_a_listed_replicate_for_replicated_stages_only():
    assert resolve(ROOT, "03_sft", "params.yaml", [], replicate=1)["replicate"] == 1
    with pytest.raises(ConfigError, match="pass --replicate"):
        resolve(ROOT, "04_grpo", "params.yaml", [])
    with pytest.raises(ConfigError, match="not in params 'replicates'"):
        resolve(ROOT, "03_sft", "params.yaml", [], replicate=7)
    with pytest.raises(ConfigError, match="is not replicated"):
        resolve(ROOT, "05_pass_at_k", "params.yaml", [], replicate=0)


def _counts(shift: dict[int, float], P: int = 30, n: int = 8, seed: int = 3, bonus_reps=None) -> pd.DataFrame:
    """base shared (replicate -1); sft and rl in replicates 0-2 with success rates moved by ``shift[r]``;
    rl_bonus in replicate 0 only, unshifted (as the smoke profile trains it), or in the replicates ``bonus_reps``,
    moved like the others."""
    rng = np.random.default_rng(seed)
    rows = []
    for cat in ("comparison", "bridge"):
        p = rng.beta(0.6, 2.0, P)
        bonus = [("rl_bonus", 0, 0.05)] if bonus_reps is None else [("rl_bonus", r, 0.05 + shift[r]) for r in bonus_reps]
        plan = [("base", -1, 0.0)] + [(pol, r, shift[r]) for pol in ("sft", "rl") for r in shift] + bonus
        for pol, r, d in plan:
            q = np.clip(p + d + (0.1 if pol == "rl" else 0.0), 0, 1)
            for i, c in enumerate(rng.binomial(n, q)):
                rows.append(dict(policy=pol, category=cat, problem_id=f"{cat}{i}", temperature=1.0, T=5, n=n, c=int(c),
                                 replicate=r))
    return pd.DataFrame(rows)


def test_one_replicate_gives_the_single_level_statistics():
    c = _counts({0: 0.0})
    c = c[c.replicate <= 0]
    with_col = metrics.summarise(c, KS, 5, 1.0, PAIRS, n_boot=300, seed=1)
    without = metrics.summarise(c.drop(columns="replicate"), KS, 5, 1.0, PAIRS, n_boot=300, seed=1)
    assert with_col == pytest.approx(without, nan_ok=True)
    surf = metrics.bootstrap_surface(c.drop(columns="replicate"), KS, PAIRS, n_boot=300, seed=1)
    d = surf.diffs.query("a == 'rl' and b == 'base' and category == 'bridge' and k == 8").iloc[0]
    key = "passdiff.bridge.rl_vs_base.kmax"
    assert (with_col[key], with_col[key + ".ci_low"], with_col[key + ".ci_high"]) == pytest.approx(
        (d["diff"], d["ci_low"], d["ci_high"]))
    assert with_col["meta.n_replicates"] == 1 and np.isnan(with_col[key + ".seed_sd"])


def test_replicates_average_and_their_spread_widens_the_interval():
    shift = {0: -0.15, 1: 0.0, 2: 0.15}
    c = _counts(shift)
    s = metrics.summarise(c, KS, 5, 1.0, PAIRS, n_boot=500, seed=1)
    key = "passdiff.bridge.rl_vs_base.kmax"
    per = [metrics.summarise(c[(c.replicate == r) | (c.policy == "base")], KS, 5, 1.0, PAIRS[:2], n_boot=50, seed=1)[key]
           for r in shift]
    assert s[key] == pytest.approx(np.mean(per))  # the mean over replicates of each replicate's own difference
    assert s[key + ".seed_sd"] == pytest.approx(np.std(per, ddof=1))
    assert (s[key + ".seed_min"], s[key + ".seed_max"]) == pytest.approx((min(per), max(per)))
    assert s[key + ".n_seeds"] == 3 and s["meta.n_replicates"] == 3
    # the two-level interval is wider than the one with the replicates held fixed
    boot = metrics.replicate_surface(c[c["T"] == 5], KS, PAIRS, n_boot=500, seed=1)
    row = boot.diffs.query("a == 'rl' and b == 'base' and category == 'bridge' and k == 8").iloc[0]
    assert row["ci_high"] - row["ci_low"] > row["ci_high_problems"] - row["ci_low_problems"]
    # boundary counts are means over replicates; net and its interval come from the two-level bootstrap
    sd = "setdiff.bridge.rl_vs_base"
    assert s[sd + ".net"] == pytest.approx(30 * s[key])
    assert s[sd + ".net_ci_low"] == pytest.approx(30 * s[key + ".ci_low"])
    assert s[sd + ".gained"] - s[sd + ".lost"] == pytest.approx(s[sd + ".net"])


def test_a_policy_with_fewer_replicates_is_compared_on_the_replicates_both_have():
    c = _counts({0: 0.0, 1: 0.1, 2: 0.2})
    s = metrics.summarise(c, KS, 5, 1.0, PAIRS, n_boot=300, seed=1)
    key = "passdiff.bridge.rl_vs_rl_bonus.kmax"
    assert s[key + ".n_seeds"] == 1 and s["passdiff.bridge.rl_vs_base.kmax.n_seeds"] == 3
    only0 = c[c.replicate <= 0]
    s0 = metrics.summarise(only0, KS, 5, 1.0, PAIRS, n_boot=300, seed=1)
    assert (s[key], s[key + ".ci_low"], s[key + ".ci_high"]) == pytest.approx((s0[key], s0[key + ".ci_low"], s0[key + ".ci_high"]))
    table = metrics.replicate_table(metrics.replicate_surface(c[c["T"] == 5], KS, PAIRS, n_boot=50, seed=1), 5, 1.0, (1, 8))
    rl = table.query("statistic == 'rl' and category == 'bridge' and k == 8")
    assert sorted(rl.replicate) == [0, 1, 2]
    assert table.query("statistic == 'rl_bonus'")["replicate"].unique().tolist() == [0]


def test_a_bonus_run_in_every_replicate_is_compared_seed_by_seed():
    """The default profile trains the exploration-bonus run in every replicate: plain - bonus is then the mean over
    replicates of each replicate's own difference, and its interval resamples the training seeds too."""
    shift = {0: -0.1, 1: 0.0, 2: 0.1}
    c = _counts(shift, bonus_reps=(0, 1, 2))
    s = metrics.summarise(c, KS, 5, 1.0, PAIRS, n_boot=400, seed=1)
    key = "passdiff.bridge.rl_vs_rl_bonus.kmax"
    per = [metrics.summarise(c[c.replicate == r], KS, 5, 1.0, [("rl", "rl_bonus")], n_boot=50, seed=1)[key]
           for r in shift]
    assert s[key + ".n_seeds"] == 3 and s[key] == pytest.approx(np.mean(per))
    assert s[key + ".seed_sd"] == pytest.approx(np.std(per, ddof=1))
    from passkt import claims
    assert claims.uncertainty_level(s, key).startswith("training seeds (3 replicates")
    one = metrics.summarise(c[(c.policy != "rl_bonus") | (c.replicate == 0)], KS, 5, 1.0, PAIRS, n_boot=400, seed=1)
    assert claims.uncertainty_level(one, key) == "problems and rollouts (one training run)"


def test_a_trained_policy_missing_a_replicate_is_an_error():
    c = _counts({0: 0.0, 1: 0.0})
    c = c[~((c.policy == "rl") & (c.replicate == 1) & (c.category == "bridge"))]
    with pytest.raises(ValueError, match="lacks seed"):
        metrics.summarise(c, KS, 5, 1.0, PAIRS, n_boot=50, seed=1)


def test_sign_flip_p_is_exact_mcnemar_for_one_replicate():
    for b, c in [(4, 0), (5, 0), (8, 2), (12, 4), (3, 3), (0, 0), (10, 1), (0, 7)]:
        m = np.array([1] * b + [-1] * c + [0] * 20)
        assert metrics.sign_flip_p(m) == pytest.approx(metrics.mcnemar_exact(b, c))
    # several replicates: per-problem nets in -S..S; brute force over all sign patterns of the nonzero ones
    m = np.array([3, 2, -1, 0, 1, 2, -3, 1])
    nz = m[m != 0]
    signs = np.array(np.meshgrid(*[[-1, 1]] * nz.size)).reshape(nz.size, -1).T
    brute = np.mean(np.abs(signs @ np.abs(nz)) >= abs(m.sum()))
    assert metrics.sign_flip_p(m) == pytest.approx(brute)
    with pytest.raises(ValueError, match="integers"):
        metrics.sign_flip_p(np.array([0.5, 1.0]))


def test_replicated_statistics_combine_the_per_replicate_ones():
    shift = {0: -0.1, 1: 0.0, 2: 0.1}
    c = _counts(shift, seed=5)
    s = metrics.summarise(c, KS, 5, 1.0, PAIRS, n_boot=300, seed=1)
    per = {r: metrics.summarise(c[(c.replicate == r) | (c.policy == "base")], KS, 5, 1.0, PAIRS[:2], n_boot=50, seed=1)
           for r in shift}
    for key in ("efficiency.bridge.rl_vs_base", "gapwiden.bridge.rl_vs_base", "split.comparison.sft_vs_base",
                "setdiff.bridge.rl_vs_base.gained", "setdiff.bridge.rl_vs_base.lost", "pass.bridge.rl.k1"):
        assert s[key] == pytest.approx(np.mean([per[r][key] for r in shift])), key
    # the test of a boundary difference: exact sign flips of the per-problem net summed over replicates
    br = c[(c.category == "bridge") & (c["T"] == 5)]
    base = br[br.policy == "base"].set_index("problem_id")["c"] > 0
    net = sum((br[(br.policy == "rl") & (br.replicate == r)].set_index("problem_id")["c"] > 0).astype(int)
              - base.astype(int) for r in shift)
    assert s["setdiff.bridge.rl_vs_base.net_p"] == pytest.approx(metrics.sign_flip_p(net.to_numpy()))


def test_a_crossover_rests_on_the_replicates_both_policies_have():
    c = _counts({0: 0.0, 1: 0.3, 2: 0.3})
    s = metrics.summarise(c, KS, 5, 1.0, PAIRS, n_boot=300, seed=1)
    s0 = metrics.summarise(c[c.replicate <= 0], KS, 5, 1.0, PAIRS, n_boot=300, seed=1)
    for part in ("k", "never", "already", "ci_low", "ci_high", "never_frac", "already_frac"):
        key = f"crossover.bridge.rl_vs_rl_bonus.{part}"
        assert s[key] == pytest.approx(s0[key], nan_ok=True), key


def test_pass_surface_counts_problems_not_replicate_rows():
    c = _counts({0: 0.0, 1: 0.1})
    surf = metrics.pass_surface(c, KS)
    assert set(surf["n_problems"]) == {30}


def test_the_boundary_mass_refuses_pooled_replicates():
    from passkt import deep

    with pytest.raises(ValueError, match="one replicate"):
        deep.zibb_fits(_counts({0: 0.0, 1: 0.1}), ["rl"], 5, 1.0, 0.95)
