"""The paper's seven claims: each one's decision rule, fixed in advance, written right above its ``Claim``.

Input everywhere is one FLAT ``stats: dict[str, float]`` merged from the pipeline's metrics files (key names
are the contract, see ``metrics.summarise`` and ``mechanism.flat_stats``). Every rule tests the effect its
claim states, not a significance label:

- an effect is read with :func:`read_effect`: the estimate, its two-sided (1 - alpha) interval and its TOST
  interval (the (1 - 2 alpha) interval: equivalence within a margin m at level alpha holds exactly when it lies
  inside (-m, m));
- alpha = 1 - ``meta.ci``: the level the pipeline's intervals were computed at (05's ``ci``); the mechanism
  statistics (06) must have been computed at the same level (``meta.mechanism_ci``), or the claims that read
  them are not evaluated;
- "the interval contains 0" is never read as "no effect": no effect needs equivalence within the margin;
- each margin is a constant next to its rule, fixed before any of our numbers existed, in the units of the
  statistic (Pass is a share of problems; nats per token for surprisal).

Verdicts are computed, never typed: ``decide(stats)`` is a pure function that returns ``not evaluated``
(naming the key) when a statistic it needs is missing or NaN.

Uncertainty included: training seeds (the SFT and GRPO replicates), problems and rollouts, by the two-level
paired bootstrap of :func:`passkt.metrics.summarise` (its intervals are in the plain keys; ``{key}.n_seeds``
says how many replicates a statistic rests on, 1 = one training run: problems and rollouts only; the mechanism
statistics the rules read pool every replicate too: :func:`passkt.mechanism.combine_replicates`). :func:`read_effect` still prefers an interval under
``{key}.hier.*`` where stats carry one, and :func:`uncertainty_level` says which level a verdict rests on.

Pair convention: ``{a}_vs_{b}``; ``setdiff...gained`` = |B(a) minus B(b)|, ``lost`` = |B(b) minus B(a)|;
``passdiff`` = Pass(a) - Pass(b). At kmax = n, Pass@kmax is the boundary share, so passdiff.{cat}.{pair}.kmax
is the paired boundary difference (net / problems) and its interval.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Callable, Mapping

SUPPORTED = "supported"
CONTRADICTED = "contradicted"
INCONCLUSIVE = "inconclusive"
NOT_EVALUATED = "not evaluated"
VERDICTS = (SUPPORTED, CONTRADICTED, INCONCLUSIVE, NOT_EVALUATED)
# Where the support and the contradiction conditions of a rule both hold (an effect significantly different from 0
# but shown smaller than its margin, or a part significant in one test and equivalent in another), the rule says
# "contradicted": an effect shown smaller than the margin fixed in advance is not the effect the claim states.
PRECEDENCE = "Where both the support and a contradiction condition hold, contradicted."

CATEGORIES = ("math", "comparison", "bridge")
# Our choices where the paper does not say (docs/decisions): the strategy diagnostics are read on bridge (the
# paper's C, where the claims are about); the surprisal probe pools comparison and bridge ("all").
MECH_CAT = "bridge"
PPL_CAT = "all"

Stats = Mapping[str, float]
HIER = ".hier"  # infix of hierarchical (training seeds x problems) intervals, when the stats carry them


# ----------------------------------------------------------------------------- reading statistics


@dataclass(frozen=True)
class Verdict:
    """The outcome of one claim's rule: verdict, our value, its interval (if any) and a one-line why."""

    verdict: str
    value: float | str | None
    interval: tuple[float, float] | None
    explanation: str
    # For an inconclusive verdict whose headline effect is already decided: the part of the rule still open, as
    # (part, estimate, low, high, margin, goal) for :func:`decision_gap` (goal "equivalence": only showing the part
    # inside ±margin decides it, so [low, high] is its TOST interval).
    pending: tuple | None = None


@dataclass(frozen=True)
class Claim:
    """One audited claim: what the paper says, what we compute, and the rule that turns it into a verdict.

    ``paper_evidence`` is a template: "{id}" fields are filled from references/paper_numbers.yaml.
    """

    id: int
    statement: str
    paper_evidence: str
    statistic: str
    rule: str
    keys: tuple[str, ...]
    decide: Callable[[Stats], Verdict]
    short: str = ""  # a few words for the report's summary table
    effect: str = ""  # what the verdict's value (and interval) is: the effect the rule reads first
    margin: float = float("nan")  # the decision margin of that effect (for :func:`decision_gap`)


def first_missing(stats: Stats, keys: tuple[str, ...]) -> str | None:
    """The first key that is absent, None or NaN in stats (None when all are usable)."""
    for k in keys:
        v = stats.get(k)
        if v is None:
            return k
        try:
            if math.isnan(float(v)):
                return k
        except (TypeError, ValueError):
            return k
    return None


def alpha(stats: Stats) -> float:
    """The significance level every rule uses: 1 - the ``ci`` the pipeline's intervals were computed at (rounded
    to 12 digits, so ci = 0.95 gives alpha = 0.05 and not 0.050000000000000044)."""
    return round(1.0 - float(stats["meta.ci"]), 12)


def _n_seeds(stats: Stats, key: str) -> float:
    for k in (key, key.rsplit(".", 1)[0]):
        s = stats.get(f"{k}.n_seeds")
        if s is not None and s == s:
            return float(s)
    return 1.0


def weakest_key(stats: Stats, keys) -> str:
    """Of a claim's statistics, the one resting on the fewest training replicates (its first, on a tie)."""
    keys = [k for k in keys if not k.startswith("meta.")]
    return min(keys, key=lambda k: _n_seeds(stats, k))


def uncertainty_level(stats: Stats, key: str) -> str:
    """Which sources of variation the interval of ``key`` includes."""
    if first_missing(stats, (f"{key}{HIER}.ci_low",)) is None:
        return "training seeds, problems and rollouts"
    for k in (key, key.rsplit(".", 1)[0]):  # the effect's own key, or its set-difference prefix
        s = stats.get(f"{k}.n_seeds")
        if s is not None and s == s and float(s) > 1:
            return f"training seeds ({int(s)} replicates, two-level bootstrap), problems and rollouts"
    return "problems and rollouts (one training run)"


@dataclass(frozen=True)
class Effect:
    """One effect: estimate, (1 - alpha) interval and TOST (1 - 2 alpha) interval."""

    name: str
    estimate: float
    low: float
    high: float
    tost_low: float
    tost_high: float

    @property
    def above_zero(self) -> bool:
        return self.low > 0

    @property
    def below_zero(self) -> bool:
        return self.high < 0

    def equivalent(self, margin: float) -> bool:
        """Two one-sided tests at alpha: the effect lies within (-margin, margin)."""
        return -margin < self.tost_low and self.tost_high < margin

    def not_below(self, margin: float) -> bool:
        """One-sided test at alpha: the effect is above -margin (non-inferiority)."""
        return self.tost_low > -margin

    def not_above(self, margin: float) -> bool:
        """One-sided test at alpha: the effect is below +margin (non-superiority)."""
        return self.tost_high < margin

    def text(self) -> str:
        return f"{fmt_number(self.estimate, True)} {fmt_interval(self.low, self.high, True)}"


EFFECT_PARTS = (".ci_low", ".ci_high", ".tost_low", ".tost_high")


def effect_keys(*keys: str) -> tuple[str, ...]:
    """The keys :func:`read_effect` needs for each effect (the per-run ones; hierarchical ones are optional)."""
    return tuple(x for k in keys for x in (k, *(k + p for p in EFFECT_PARTS)))


def read_effect(stats: Stats, key: str, name: str | None = None) -> Effect:
    """The effect under ``key``; intervals from ``{key}.hier.*`` when present (seeds x problems)."""
    src = key + HIER if first_missing(stats, tuple(key + HIER + p for p in EFFECT_PARTS)) is None else key
    lo, hi, t_lo, t_hi = (float(stats[src + p]) for p in EFFECT_PARTS)
    return Effect(name or key, float(stats[key]), lo, hi, t_lo, t_hi)


def _guarded(keys: tuple[str, ...], rule: Callable[[Stats], Verdict]) -> Callable[[Stats], Verdict]:
    """Wrap a rule: a missing/NaN key gives 'not evaluated' naming it; so does a mechanism statistic computed at
    another interval level than the pass statistics."""

    def decide(stats: Stats) -> Verdict:
        missing = first_missing(stats, keys)
        if missing is not None:
            return Verdict(NOT_EVALUATED, None, None, f"missing or NaN statistic: {missing}")
        if "meta.mechanism_ci" in keys and float(stats["meta.mechanism_ci"]) != float(stats["meta.ci"]):
            return Verdict(
                NOT_EVALUATED,
                None,
                None,
                f"intervals at two levels: meta.ci = {stats['meta.ci']}, meta.mechanism_ci = {stats['meta.mechanism_ci']}",
            )
        return rule(stats)

    return decide


def fmt_number(x: float | None, signed: bool = False) -> str:
    """Short human number: integers as such, |x| >= 10 with one decimal, else three decimals."""
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "NaN"
    x = float(x)
    if x == int(x) and abs(x) < 1e6:
        return f"{int(x):+d}" if signed else f"{int(x)}"
    spec = ".1f" if abs(x) >= 10 else ".3f"
    return format(x, ("+" if signed else "") + spec)


def fmt_interval(low: float, high: float, signed: bool = False) -> str:
    return f"[{fmt_number(low, signed)}, {fmt_number(high, signed)}]"


def fmt_p(p: float) -> str:
    """``p=0.0123``; a bootstrap p of 0 as what it means, below the bootstrap's resolution (no resample on the other
    side of 0), never ``p=0``. Exact tests (McNemar, sign-flip) never give 0."""
    return "p<2/n_boot (no resample crossed 0)" if float(p) == 0 else f"p={float(p):.3g}"


def _verdict(verdict: str, e: Effect, why: str) -> Verdict:
    return Verdict(verdict, e.estimate, (e.low, e.high), why)


# ----------------------------------------------------------------------------- claim 1

# The paper's split: expansion = the boundary difference (Pass@kmax), efficiency = the Pass@1 difference on the
# problems both policies solve. The metric separates them where the two differ: split = expansion - efficiency,
# both from one problem resample per replicate (paired). RL ahead by the same amount on both is a uniform gain,
# not a failure of the metric.
MARGIN_SPLIT = 0.05  # Pass units: a split smaller than 5 points of Pass is not a separation worth the name


def _split_key(cat: str) -> str:
    return f"split.{cat}.rl_vs_base"


C1_KEYS = ("meta.ci",) + tuple(
    x for cat in CATEGORIES for x in effect_keys(_split_key(cat)) + (_split_key(cat) + ".p",)
)


def separates_expansion_from_efficiency(stats: Stats) -> Verdict:
    a = alpha(stats)
    per_cat = {cat: read_effect(stats, _split_key(cat), cat) for cat in CATEGORIES}
    bonferroni = a / len(CATEGORIES)  # "in some category": three tries
    separated = [
        cat
        for cat, e in per_cat.items()
        if float(stats[_split_key(cat) + ".p"]) < bonferroni and abs(e.estimate) > MARGIN_SPLIT
    ]
    why = "; ".join(
        f"{cat}: expansion - efficiency = {e.text()} ({fmt_p(stats[_split_key(cat) + '.p'])})" for cat, e in per_cat.items()
    )
    headline = per_cat["bridge"]
    if separated:
        return _verdict(SUPPORTED, headline, f"expansion and efficiency differ on {', '.join(separated)}: {why}")
    if all(e.equivalent(MARGIN_SPLIT) for e in per_cat.values()):
        return _verdict(CONTRADICTED, headline, f"equivalent within ±{MARGIN_SPLIT} in every category: {why}")
    return _verdict(INCONCLUSIVE, headline, f"neither a separation nor equivalence: {why}")


CLAIM_1 = Claim(
    1,
    "Pass@(k,T) separates capability expansion from efficiency gains.",
    "C at T=5: base ahead at k=1 ({pass1.bridge.base} vs RL {pass1.bridge.rl}), RL ahead at k=64 "
    "({pass64.bridge.rl} vs {pass64.bridge.base}); order flips near k {crossover.bridge.rl_vs_base}.",
    "Per category (T=T_eval; math T=0): split = expansion - efficiency, expansion = Pass@kmax(RL) - Pass@kmax(base) "
    "(the boundary difference), efficiency = Pass@1(RL) - Pass@1(base) averaged over the problems both solve at "
    "least once; one paired bootstrap over problems for both parts, interval and p.",
    f"Margin {MARGIN_SPLIT} (Pass). Supported if in some category the split has p < alpha/3 (Bonferroni over the "
    f"three categories) and its estimate exceeds {MARGIN_SPLIT} in size (the point estimate, not the interval, is "
    f"held to the margin; e.g. a crossover); contradicted if the split is equivalent to 0 within ±{MARGIN_SPLIT} (TOST at alpha) in every "
    "category; otherwise inconclusive. RL ahead by the same amount in both is a split of 0, not a contradiction by "
    "itself.",
    C1_KEYS,
    _guarded(C1_KEYS, separates_expansion_from_efficiency),
    short="Pass@(k,T) separates expansion from efficiency",
    effect="split = expansion - efficiency, bridge, RL vs base (Pass)",
    margin=MARGIN_SPLIT,
)


# ----------------------------------------------------------------------------- claim 2

# "RL's curve rises above base's and the gap widens instead of closing": RL above base at kmax, and the gap's
# change from k_gap = min(8, kmax/2) to kmax is shown not to close by more than a small margin (Yue et al.'s
# pattern is a closing gap). A significantly widening gap is reported but not required.
MARGIN_GAP = 0.02  # Pass units: a gap closing by less than 2 points between k_gap and kmax counts as not closing
MARGIN_RISE = 0.05  # Pass units: RL within ±5 points of base at kmax is "on top of", not "above"

C2_BOUNDARY, C2_GAP = "passdiff.bridge.rl_vs_base.kmax", "gapwiden.bridge.rl_vs_base"
C2_KEYS = ("meta.ci",) + effect_keys(C2_BOUNDARY, C2_GAP) + ("meta.k_gap",)


def bridge_gap_widens(stats: Stats) -> Verdict:
    d, g = read_effect(stats, C2_BOUNDARY, "dPass@kmax"), read_effect(stats, C2_GAP, "gap change")
    why = (
        f"bridge dPass@kmax {d.text()}; gap change from k={fmt_number(stats['meta.k_gap'])} to kmax {g.text()}"
        f" ({'widening' if g.above_zero else 'closing' if g.below_zero else 'no significant change'})"
    )
    if d.below_zero or g.high < -MARGIN_GAP or d.equivalent(MARGIN_RISE):
        return _verdict(CONTRADICTED, d, f"RL not above base, or the gap closes: {why}")
    if d.above_zero and g.not_below(MARGIN_GAP):
        return _verdict(SUPPORTED, d, f"RL above base and the gap is not closing: {why}")
    return _verdict(INCONCLUSIVE, d, why)


CLAIM_2 = Claim(
    2,
    "On C (bridge), RL's Pass@(k,T) curve rises above base's as k grows and the gap widens instead of closing.",
    "C at k=64, T=5: RL {pass64.bridge.rl} vs base {pass64.bridge.base}, gap still widening; boundary "
    "{setdiff.bridge.rl_vs_base} (net {net.bridge.rl_vs_base} of 100).",
    "dPass@kmax = Pass@(kmax,T) RL - base on bridge; gap change = dPass at kmax minus at k_gap = min(8, kmax/2); "
    "both paired bootstrap intervals.",
    f"Margins {MARGIN_GAP} (gap change) and {MARGIN_RISE} (dPass@kmax), Pass units. Supported if the dPass@kmax "
    f"interval lies above 0 and the gap change is shown above -{MARGIN_GAP} (one-sided at alpha); contradicted if "
    f"the dPass@kmax interval lies below 0, the gap-change interval lies below -{MARGIN_GAP} (closing), or dPass@kmax "
    f"is equivalent to 0 within ±{MARGIN_RISE}; otherwise inconclusive. {PRECEDENCE}",
    C2_KEYS,
    _guarded(C2_KEYS, bridge_gap_widens),
    short="On bridge, RL rises above base and the gap widens",
    effect="dPass@kmax, bridge, RL - base (Pass)",
    margin=MARGIN_RISE,
)


# ----------------------------------------------------------------------------- claim 3

# "Specific to compositional tasks": RL's boundary gain is larger on bridge than on comparison (an interaction,
# not two separate significance labels) and RL is inert on math (equivalence, not "n.s.").
MARGIN_TASK = 0.05  # Pass units: for the interaction and for "inert on math"

C3_INTERACTION, C3_MATH = "interaction.rl_vs_base.bridge_minus_comparison", "passdiff.math.rl_vs_base.kmax"
C3_COMPARISON = "passdiff.comparison.rl_vs_base.kmax"
C3_KEYS = ("meta.ci",) + effect_keys(C3_INTERACTION, C3_MATH, C3_COMPARISON, C2_BOUNDARY)


def specific_to_compositional(stats: Stats) -> Verdict:
    i = read_effect(stats, C3_INTERACTION, "interaction")
    m = read_effect(stats, C3_MATH, "math")
    c, b = read_effect(stats, C3_COMPARISON), read_effect(stats, C2_BOUNDARY)
    math_inert = m.equivalent(MARGIN_TASK)
    math_moves = m.low > MARGIN_TASK or m.high < -MARGIN_TASK
    why = (
        f"dPass@kmax bridge {b.text()} minus comparison {c.text()} = {i.text()}; math {m.text()} "
        f"({'equivalent within ±' + str(MARGIN_TASK) if math_inert else 'not shown inert'})"
    )
    if i.below_zero or i.equivalent(MARGIN_TASK) or math_moves:
        return _verdict(CONTRADICTED, i, f"no bridge-specific gain, or RL moves math: {why}")
    if i.above_zero and math_inert:
        return _verdict(SUPPORTED, i, f"bridge gains more than comparison and math is inert: {why}")
    pending = None
    if i.above_zero:  # only "math is inert" is open, and only its equivalence would decide the claim
        pending = ("math, RL - base (its TOST interval)", m.estimate, m.tost_low, m.tost_high, MARGIN_TASK,
                   "equivalence")
    return Verdict(INCONCLUSIVE, i.estimate, (i.low, i.high), why, pending)


CLAIM_3 = Claim(
    3,
    "The expansion is specific to compositional tasks: on A (math) RL is inert; on B (comparison) it behaves "
    "as prior work.",
    "Boundaries base vs RL: A {boundary.math.base} vs {boundary.math.rl} ({setdiff.math.rl_vs_base}); "
    "B {boundary.comparison.base} vs {boundary.comparison.rl} ({setdiff.comparison.rl_vs_base}); "
    "C {boundary.bridge.base} vs {boundary.bridge.rl} ({setdiff.bridge.rl_vs_base}).",
    "Interaction = (RL - base on bridge) - (RL - base on comparison) at kmax, bootstrap interval (categories "
    "resampled independently, policies paired); RL - base on math at kmax with its TOST interval.",
    f"Margin {MARGIN_TASK} (Pass). Supported if the interaction interval lies above 0 and math is equivalent to 0 "
    f"within ±{MARGIN_TASK} (TOST at alpha); contradicted if the interaction interval lies below 0, the "
    f"interaction is equivalent to 0 within ±{MARGIN_TASK}, or math's interval lies entirely beyond ±"
    f"{MARGIN_TASK}; otherwise inconclusive. {PRECEDENCE}",
    C3_KEYS,
    _guarded(C3_KEYS, specific_to_compositional),
    short="The expansion is specific to compositional tasks",
    effect="interaction: dPass@kmax bridge - comparison, RL vs base (Pass)",
    margin=MARGIN_TASK,
)


# ----------------------------------------------------------------------------- claim 4

# "SFT shrinks the boundary on C; RL vs SFT is lopsided": two paired boundary comparisons, each tested on the net
# set difference (gained - lost): with several training replicates by its two-level interval (replicates, then
# problems: a replicate that happens to be better everywhere is seed variation, not evidence), with one by the exact
# McNemar test on the discordant problems (net_p); "SFT does not shrink it" is shown by equivalence of the boundary
# difference, whose interval resamples replicates, then problems. (Amended after the committed run's results were
# known: the rule first read the sign-flip p of the per-problem net summed over replicates with several replicates
# too, which treats the replicates as fixed; no verdict of the committed or reseeded runs depends on the change.)
MARGIN_BOUNDARY = 0.05  # share of problems: boundaries within ±5% of the problems are "the same size"

SETDIFF_PARTS = ("gained", "lost", "net", "net_ci_low", "net_ci_high", "n_seeds", "net_p", "mcnemar_p")
NET_TEST = ("with several training replicates its two-level (1 - alpha) interval excludes 0; with one, exact "
            "McNemar p < alpha")
C4_SFT, C4_RVS = "setdiff.bridge.sft_vs_base", "setdiff.bridge.rl_vs_sft"
C4_SFT_PASS, C4_RVS_PASS = "passdiff.bridge.sft_vs_base.kmax", "passdiff.bridge.rl_vs_sft.kmax"
C4_KEYS = (
    ("meta.ci",)
    + tuple(f"{p}.{s}" for p in (C4_SFT, C4_RVS) for s in SETDIFF_PARTS)
    + effect_keys(C4_SFT_PASS, C4_RVS_PASS)
)


def _direction(stats: Stats, prefix: str) -> int:
    """+1: a's boundary significantly larger (net = gained - lost > 0), -1: smaller, 0: neither. With several
    training replicates, significant = the net's two-level (1 - alpha) interval (replicates, then problems) excludes
    0; with one, the exact McNemar p (``net_p``) < alpha."""
    net = float(stats[prefix + ".net"])
    if net == 0:
        return 0
    if float(stats[prefix + ".n_seeds"]) > 1:
        lo, hi = float(stats[prefix + ".net_ci_low"]), float(stats[prefix + ".net_ci_high"])
        return 1 if lo > 0 else -1 if hi < 0 else 0
    if float(stats[prefix + ".net_p"]) >= alpha(stats):
        return 0
    return 1 if net > 0 else -1


def _setdiff_text(stats: Stats, prefix: str) -> str:
    several = float(stats[prefix + ".n_seeds"]) > 1
    test = (f"net {fmt_number(stats[prefix + '.net'], True)} "
            f"{fmt_interval(stats[prefix + '.net_ci_low'], stats[prefix + '.net_ci_high'], True)}; descriptive: "
            if several else "")
    return (
        f"+{fmt_number(stats[prefix + '.gained'])}/-{fmt_number(stats[prefix + '.lost'])} ({test}sign-flip "
        f"{fmt_p(stats[prefix + '.net_p'])}; McNemar per replicate, median {fmt_p(stats[prefix + '.mcnemar_p'])})"
    )


def sft_shrinks_rl_lopsided(stats: Stats) -> Verdict:
    sft, rvs = _direction(stats, C4_SFT), _direction(stats, C4_RVS)
    d_sft, d_rvs = read_effect(stats, C4_SFT_PASS, "SFT - base"), read_effect(stats, C4_RVS_PASS, "RL - SFT")
    why = (
        f"SFT vs base {_setdiff_text(stats, C4_SFT)}, boundary difference {d_sft.text()}; RL vs SFT "
        f"{_setdiff_text(stats, C4_RVS)}, {d_rvs.text()}"
    )
    if sft == 1 or rvs == -1 or d_sft.equivalent(MARGIN_BOUNDARY) or d_rvs.equivalent(MARGIN_BOUNDARY):
        return _verdict(CONTRADICTED, d_sft, f"a part is reversed or shown equivalent: {why}")
    if sft == -1 and rvs == 1:
        return _verdict(SUPPORTED, d_sft, f"SFT shrinks and RL vs SFT is lopsided: {why}")
    return _verdict(INCONCLUSIVE, d_sft, f"not both parts significant: {why}")


CLAIM_4 = Claim(
    4,
    "Under matched data SFT shrinks the boundary on C; the RL vs SFT set difference is lopsided.",
    "C boundaries: SFT {boundary.bridge.sft} vs base {boundary.bridge.base} ({setdiff.bridge.sft_vs_base}); "
    "RL vs SFT {setdiff.bridge.rl_vs_sft}.",
    "Boundary set differences on bridge: SFT vs base and RL vs SFT, gained / lost (means over training "
    "replicates) with net = gained - lost and its two-level interval (replicates, then problems; one replicate: "
    "the exact McNemar p), and the "
    "paired boundary difference (Pass@kmax at kmax = n) with its intervals.",
    f"Margin {MARGIN_BOUNDARY} (share of problems). Supported if SFT loses more than it gains vs base (net < 0 "
    f"significant: {NET_TEST}) AND RL gains more than it loses vs SFT (net > 0, the same test); contradicted if either is "
    f"significant in the opposite direction or either boundary difference is equivalent to 0 within "
    f"±{MARGIN_BOUNDARY} (TOST); otherwise inconclusive. {PRECEDENCE} (The net test was amended after the "
    "committed run's results were known: it read the sign-flip p of the per-problem net summed over replicates, "
    "which treats the replicates as fixed; no verdict depended on it.)",
    C4_KEYS,
    _guarded(C4_KEYS, sft_shrinks_rl_lopsided),
    short="SFT shrinks the bridge boundary; RL vs SFT lopsided",
    effect="dPass@kmax (boundary difference), bridge, SFT - base (share of problems)",
    margin=MARGIN_BOUNDARY,
)


# ----------------------------------------------------------------------------- claim 5

# "RL reweights the base strategy distribution, SFT replaces it": novelty is measured against a null (base's
# held-out half against its reference half: what sampling alone makes "novel" at this n), diversity as the
# paired difference in unique strategies per sample.
MARGIN_STRATEGY = 0.05  # share of episodes (novelty) and of samples (unique strategies / n)

C5_NOV = f"novelty_excess.{MECH_CAT}.%s.frac"
C5_DIV = f"diversity_diff.{MECH_CAT}.%s_vs_base.share"
C5_KEYS = (
    ("meta.ci",) + effect_keys(C5_NOV % "rl", C5_NOV % "sft", C5_DIV % "rl", C5_DIV % "sft") + ("meta.mechanism_ci",)
)


def rl_reweights_sft_replaces(stats: Stats) -> Verdict:
    nov_rl, nov_sft = read_effect(stats, C5_NOV % "rl", "RL"), read_effect(stats, C5_NOV % "sft", "SFT")
    div_rl, div_sft = read_effect(stats, C5_DIV % "rl", "RL"), read_effect(stats, C5_DIV % "sft", "SFT")
    m = MARGIN_STRATEGY
    why = (
        f"novelty beyond base's own held-out half: RL {nov_rl.text()}, SFT {nov_sft.text()}; unique strategies "
        f"per sample minus base's: RL {div_rl.text()}, SFT {div_sft.text()}"
    )
    if nov_rl.low > m or div_rl.high < -m or nov_sft.not_above(m) or div_sft.not_below(m):
        return _verdict(CONTRADICTED, nov_rl, f"RL replaces or collapses, or SFT does not: {why}")
    if nov_rl.not_above(m) and div_rl.not_below(m) and nov_sft.above_zero and div_sft.below_zero:
        return _verdict(SUPPORTED, nov_rl, f"RL reweights, SFT replaces: {why}")
    return _verdict(INCONCLUSIVE, nov_rl, why)


CLAIM_5 = Claim(
    5,
    "RL reweights the base strategy distribution (low novelty vs base, diversity kept); SFT replaces it.",
    "Unique query sequences per problem: base {unique.base}, RL {unique.rl}, SFT {unique.sft}; novelty vs base: "
    "SFT {novelty.sft}, RL {novelty.rl} (novelty or overlap: ambiguous in the sources).",
    f"On {MECH_CAT} (our choice): novelty excess = share of a policy's episodes whose query sequence is not in base's "
    "reference half minus the same share for base's held-out half (paired); diversity difference = unique "
    "sequences per sample, policy minus base (paired); each the mean over training replicates, its interval from "
    "the two-level bootstrap (replicates, then problems).",
    f"Margin {MARGIN_STRATEGY} (share). Supported if RL's novelty excess is shown below +{MARGIN_STRATEGY} and RL's "
    f"diversity difference above -{MARGIN_STRATEGY} (one-sided tests at alpha), SFT's novelty excess interval lies "
    f"above 0 and SFT's diversity difference interval below 0; contradicted if RL's novelty excess interval lies "
    f"above +{MARGIN_STRATEGY}, RL's diversity difference interval below -{MARGIN_STRATEGY}, SFT's novelty excess is "
    f"shown below +{MARGIN_STRATEGY}, or SFT's diversity difference shown above -{MARGIN_STRATEGY}; otherwise "
    f"inconclusive. {PRECEDENCE}",
    C5_KEYS,
    _guarded(C5_KEYS, rl_reweights_sft_replaces),
    short="RL reweights base's strategies, SFT replaces them",
    effect="novelty excess of RL over base's held-out half, bridge (share of episodes)",
    margin=MARGIN_STRATEGY,
)


# ----------------------------------------------------------------------------- claim 6

# "The gain concentrates on integrating retrieved information": reasoning minus query surprisal on RL's successes
# is dominated by token type (queries copy names, tags are easy), so the rule compares it with the same contrast
# on base's own successes (a difference in differences), with tag tokens excluded.
MARGIN_SURPRISAL = 0.05  # nats per token

C6_DID = f"ppl_did.{PPL_CAT}.rl_vs_base.nats"
C6_KEYS = (
    ("meta.ci",)
    + effect_keys(C6_DID)
    + tuple(f"ppl_did.{PPL_CAT}.{p}.gap.nats" for p in ("rl", "base"))
    + ("meta.mechanism_ci",)
)


def gain_in_integration(stats: Stats) -> Verdict:
    d = read_effect(stats, C6_DID, "difference in differences")
    why = (
        f"(reasoning - query) nats/token under the base model, tags excluded: RL's successes "
        f"{fmt_number(stats[f'ppl_did.{PPL_CAT}.rl.gap.nats'], True)}, base's successes "
        f"{fmt_number(stats[f'ppl_did.{PPL_CAT}.base.gap.nats'], True)}; difference {d.text()}"
    )
    if d.below_zero or d.equivalent(MARGIN_SURPRISAL):
        return _verdict(CONTRADICTED, d, f"no excess reasoning surprisal: {why}")
    if d.above_zero:
        return _verdict(SUPPORTED, d, f"RL's reasoning is more surprising to base than its queries, beyond base's own: {why}")
    return _verdict(INCONCLUSIVE, d, why)


CLAIM_6 = Claim(
    6,
    "RL's gain concentrates on integrating retrieved information (reasoning perplexity > query perplexity).",
    "Base-model perplexity of RL's successful trajectories: query {ppl.rl.query} ({nats.rl.query} nats/token) vs "
    "reasoning {ppl.rl.reasoning} ({nats.rl.reasoning} nats/token).",
    f"Difference in differences ({PPL_CAT}: comparison and bridge pooled, our choice): [reasoning - query] "
    "base-model nats/token on RL's successes minus the same on base's successes, tag tokens excluded; the mean "
    "over training replicates, its interval from the two-level bootstrap (replicates, then one paired resample of "
    "problems).",
    f"Margin {MARGIN_SURPRISAL} nats/token. Supported if the interval lies above 0; contradicted if it lies below 0 "
    f"or the difference is equivalent to 0 within ±{MARGIN_SURPRISAL} (TOST); otherwise inconclusive. {PRECEDENCE}",
    C6_KEYS,
    _guarded(C6_KEYS, gain_in_integration),
    short="RL's gain is in integrating retrieved information",
    effect="surprisal difference in differences, RL vs base (nats/token)",
    margin=MARGIN_SURPRISAL,
)


# ----------------------------------------------------------------------------- claim 7

# "An explicit exploration bonus is not needed": plain RL expands on its own, and the bonus run is not shown
# better than plain RL (paired: the net set difference of their boundaries, two-level bootstrap, and the paired
# Pass@kmax difference). The comparison with the bonus run rests on the replicates that trained one.
MARGIN_BONUS = 0.05  # Pass units: the bonus adding less than 5 points of Pass@kmax counts as not needed

C7_PLAIN, C7_VS_BONUS = "setdiff.bridge.rl_vs_base", "setdiff.bridge.rl_vs_rl_bonus"
C7_PASS = "passdiff.bridge.rl_vs_rl_bonus.kmax"
C7_KEYS = (
    ("meta.ci",)
    + tuple(f"{p}.{s}" for p in (C7_PLAIN, C7_VS_BONUS) for s in SETDIFF_PARTS)
    + effect_keys(C7_PASS)
)


def bonus_not_needed(stats: Stats) -> Verdict:
    plain, vs_bonus = _direction(stats, C7_PLAIN), _direction(stats, C7_VS_BONUS)
    d = read_effect(stats, C7_PASS, "plain - bonus")
    why = (
        f"plain RL vs base {_setdiff_text(stats, C7_PLAIN)}; plain RL vs RL + bonus {_setdiff_text(stats, C7_VS_BONUS)}, "
        f"dPass@kmax (plain - bonus) {d.text()}"
    )
    if plain == 1 and vs_bonus != -1 and d.not_below(MARGIN_BONUS):
        return _verdict(SUPPORTED, d, f"plain RL expands and the bonus adds less than {MARGIN_BONUS}: {why}")
    if plain != 1 and (vs_bonus == -1 or d.below_zero):
        return _verdict(CONTRADICTED, d, f"only the bonus run is ahead: {why}")
    pending = None
    if plain == 1 and vs_bonus != -1:  # only "plain - bonus shown above -margin" is open: its one-sided bound
        pending = ("plain - bonus (its one-sided bound)", d.estimate, d.tost_low, d.tost_high, MARGIN_BONUS, "above")
    return Verdict(INCONCLUSIVE, d.estimate, (d.low, d.high), why, pending)


CLAIM_7 = Claim(
    7,
    "An explicit exploration bonus is not needed for the expansion.",
    "C: RL + bonus {pass64.bridge.rl_bonus} (net {net.bridge.rl_bonus_vs_base}) vs plain RL {pass64.bridge.rl} "
    "(net {net.bridge.rl_vs_base}).",
    "Bridge boundaries: plain RL vs base and plain RL vs RL + bonus (net set difference with its two-level "
    "interval; one replicate: exact McNemar p) and their paired Pass@kmax "
    "difference (plain - bonus). Both runs use the same reward scaling (see the report's settings).",
    f"Margin {MARGIN_BONUS} (Pass). Supported if plain RL's boundary is larger than base's (net > 0 significant: "
    f"{NET_TEST}), RL + bonus is not significantly larger than plain RL (the same test), and plain - bonus is shown "
    f"above -{MARGIN_BONUS} (one-sided at alpha); contradicted if plain RL does not expand significantly while "
    "RL + bonus is significantly ahead of it (the net test, or the paired interval below 0); otherwise inconclusive. "
    "(The net test was amended after the committed run's results were known, as claim 4's.)",
    C7_KEYS,
    _guarded(C7_KEYS, bonus_not_needed),
    short="No exploration bonus needed",
    effect="dPass@kmax, bridge, plain RL - RL + bonus (Pass)",
    margin=MARGIN_BONUS,
)


# ----------------------------------------------------------------------------- the registry

CLAIMS: tuple[Claim, ...] = (CLAIM_1, CLAIM_2, CLAIM_3, CLAIM_4, CLAIM_5, CLAIM_6, CLAIM_7)


_FIELD = re.compile(r"\{([^{}]+)\}")


def fill_evidence(template: str, paper: Mapping[str, str]) -> str:
    """A claim's evidence text with each "{id}" replaced by the paper's number; KeyError names an unknown id."""
    return _FIELD.sub(lambda m: paper[m.group(1)], template)


def decision_gap(value, low, high, margin: float, part: str = "", goal: str = "either") -> str:
    """For an inconclusive verdict: how wide its interval is against what a decision needs, and roughly how much
    more data would give it. Interval widths shrink as 1/sqrt(size), so the factor is (half-width / target)^2,
    applied to the problems per category and to the training replicates alike (a rough guide: the estimate may
    move). ``part`` names the effect when it is not the verdict's headline one. ``goal``:

    - ``"either"``: an effect is shown when the interval leaves 0 (half-width below |estimate|), no effect when it
      fits inside ±margin (half-width below margin - |estimate|); the easier of the two sets the target;
    - ``"equivalence"``: only fitting inside ±margin decides (``[low, high]`` is the TOST interval); the binding
      side is the one towards the estimate's sign;
    - ``"below"``: only a one-sided bound under +margin decides (``high`` is that bound; the half-width is
      ``high - estimate`` and the target ``margin - estimate``, signed);
    - ``"above"``: the mirror, a one-sided bound over -margin (``low`` is that bound; half-width
      ``estimate - low``, target ``margin + estimate``).
    """
    try:
        est, lo, hi, m = float(value), float(low), float(high), float(margin)
    except (TypeError, ValueError):
        return ""
    if not all(math.isfinite(x) for x in (est, lo, hi, m)):
        return ""
    if goal == "below":
        h, target = hi - est, m - est
    elif goal == "above":
        h, target = est - lo, m + est
    elif goal == "equivalence":
        h, target = (hi - est, m - est) if est >= 0 else (est - lo, m + est)
    else:
        h, target = (hi - lo) / 2, max(abs(est), m - abs(est))
    head = (f"{part}: " if part else "") + f"interval half-width {h:.3g} against the margin {m:g} (estimate {est:+.3g})"
    if h <= 0:
        return head + ": the interval has no width (every resample gives the same value); more data of this kind "\
                      "would not change it"
    if target <= 0:
        if goal in ("below", "above", "equivalence"):
            return head + ": the estimate is at or beyond the margin, so more data would not bound it inside; it " \
                          "could instead show the effect beyond the margin, which the rule reads the other way"
        return head + ": the estimate sits on the margin; more data alone would not decide it"
    f = (h / target) ** 2
    if f <= 1:
        return (head + f": this interval is already narrow enough (below {target:.3g}); the verdict waits on another "
                "part of the rule (see why)")
    return (head + f"; a decision needs a half-width below {target:.3g}: about {f:.1f}x the problems per category "
            "and training replicates (interval width ~ 1/sqrt(size))")


def evaluate(stats: Stats, claims: tuple[Claim, ...] = CLAIMS, paper: Mapping[str, str] | None = None) -> list[dict]:
    """One row per claim for the claims table: the claim's texts plus its verdict, value, interval and why.

    paper: id -> display text of the paper's numbers (``paper_numbers.display``) to fill the evidence templates.
    """
    rows = []
    for c in claims:
        v = c.decide(stats)
        level = uncertainty_level(stats, weakest_key(stats, c.keys))  # e.g. claim 7: the bonus run's replicates
        rows.append(
            {
                "id": c.id,
                "short": c.short,
                "statement": c.statement,
                "effect": c.effect,
                "paper_evidence": fill_evidence(c.paper_evidence, paper) if paper is not None else c.paper_evidence,
                "statistic": c.statistic,
                "rule": c.rule,
                "keys": list(c.keys),
                "verdict": v.verdict,
                "value": v.value,
                "ci_low": v.interval[0] if v.interval else None,
                "ci_high": v.interval[1] if v.interval else None,
                "explanation": v.explanation,
                "uncertainty": level if v.verdict != NOT_EVALUATED else "",
                "decision_gap": "" if v.verdict != INCONCLUSIVE else (
                    decision_gap(*v.pending[1:5], part=v.pending[0], goal=v.pending[5]) if v.pending else
                    decision_gap(v.value, *(v.interval or (None, None)), c.margin)),
            }
        )
    return rows
