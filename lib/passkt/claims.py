"""The paper's seven claims, each with a decision rule fixed in advance, and the audit report (stage 07).

Input everywhere is one FLAT ``stats: dict[str, float]`` merged from the pipeline's metrics files (key
names are the contract, e.g. ``passdiff.bridge.rl_vs_base.kmax.ci_low``). Intervals in ``stats`` are
taken to be two-sided (1 - ALPHA) intervals; "CI excludes 0" is how significance is read unless a rule
names a p-value (McNemar for paired boundary membership).

Verdicts are computed, never typed: a claim's ``decide(stats)`` is a pure function that returns
``not evaluated`` (naming the key) when a statistic it needs is missing or NaN. The rules below were
written before any of our numbers existed; changing one is a change to the pre-registration and
should be visible in review.

Pair convention: ``{a}_vs_{b}``; ``setdiff...gained`` = |B(a) minus B(b)|, ``lost`` = |B(b) minus B(a)|,
``net`` = gained - lost; ``passdiff`` = Pass(a) - Pass(b).
"""

from __future__ import annotations

import html
import math
import re
from dataclasses import dataclass
from typing import Callable, Mapping

ALPHA = 0.05  # significance level of every rule; stats' intervals are read as (1 - ALPHA) intervals

SUPPORTED = "supported"
CONTRADICTED = "contradicted"
INCONCLUSIVE = "inconclusive"
NOT_EVALUATED = "not evaluated"
VERDICTS = (SUPPORTED, CONTRADICTED, INCONCLUSIVE, NOT_EVALUATED)

CATEGORIES = ("math", "comparison", "bridge")
MECH_CAT = "bridge"  # category of the strategy diagnostics (diversity, novelty, swap): the paper's C
PPL_CAT = "all"  # perplexity probe pools RL's successful trajectories across categories, as the paper
PAPER_N = 64  # the paper's rollouts per (problem, policy, T); its Pass@(64,5) is our Pass@(kmax, T)

Stats = Mapping[str, float]


# ----------------------------------------------------------------------------- verdicts and claims


@dataclass(frozen=True)
class Verdict:
    """The outcome of one claim's rule: verdict, our value, its interval (if any) and a one-line why."""

    verdict: str
    value: float | str | None
    interval: tuple[float, float] | None
    explanation: str


@dataclass(frozen=True)
class Claim:
    """One audited claim: what the paper says, what we compute, and the rule that turns it into a verdict."""

    id: int
    statement: str
    paper_evidence: str
    statistic: str
    rule: str
    keys: tuple[str, ...]
    decide: Callable[[Stats], Verdict]


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


def _guarded(keys: tuple[str, ...], rule: Callable[[Stats], Verdict]) -> Callable[[Stats], Verdict]:
    """Wrap a rule so that a missing/NaN key gives 'not evaluated' naming that key, before any arithmetic."""

    def decide(stats: Stats) -> Verdict:
        missing = first_missing(stats, keys)
        if missing is not None:
            return Verdict(NOT_EVALUATED, None, None, f"missing or NaN statistic: {missing}")
        return rule(stats)

    return decide


def _ci(stats: Stats, key: str) -> tuple[float, float]:
    return float(stats[key + ".ci_low"]), float(stats[key + ".ci_high"])


def _with_ci(*keys: str) -> tuple[str, ...]:
    return tuple(x for k in keys for x in (k, k + ".ci_low", k + ".ci_high"))


def sig_sign(low: float, high: float) -> int:
    """+1 if the interval lies above 0, -1 if below 0, 0 if it contains 0."""
    return 1 if low > 0 else -1 if high < 0 else 0


def _num(x: float | None, signed: bool = False) -> str:
    """Short human number: integers as such, |x| >= 10 with one decimal, else three decimals."""
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "NaN"
    x = float(x)
    if x == int(x) and abs(x) < 1e6:
        return f"{int(x):+d}" if signed else f"{int(x)}"
    spec = ".1f" if abs(x) >= 10 else ".3f"
    return format(x, ("+" if signed else "") + spec)


def _iv(low: float, high: float, signed: bool = False) -> str:
    return f"[{_num(low, signed)}, {_num(high, signed)}]"


def _p(p: float) -> str:
    return f"p={p:.3g}"


_SIG = {1: "sig. +", -1: "sig. -", 0: "n.s."}


# ----------------------------------------------------------------------------- claim 1


def _k_axis_keys(cat: str) -> tuple[str, ...]:
    base = f"passdiff.{cat}.rl_vs_base"
    return _with_ci(base + ".k1", base + ".kmax")


C1_KEYS = tuple(k for c in CATEGORIES for k in _k_axis_keys(c))


def _rule1(stats: Stats) -> Verdict:
    changes, effects, parts = [], 0, []
    for cat in CATEGORIES:
        key = f"passdiff.{cat}.rl_vs_base"
        s1, sk = sig_sign(*_ci(stats, key + ".k1")), sig_sign(*_ci(stats, key + ".kmax"))
        effects += (s1 != 0) + (sk != 0)
        if s1 != sk:
            changes.append(cat)
        parts.append(
            f"{cat}: k=1 {_num(stats[key + '.k1'], True)} ({_SIG[s1]}) -> kmax {_num(stats[key + '.kmax'], True)} ({_SIG[sk]})"
        )
    value = f"{len(changes)}/{len(CATEGORIES)} categories change"
    why = "; ".join(parts)
    if changes:
        return Verdict(SUPPORTED, value, None, f"k-axis changes the verdict on {', '.join(changes)}: {why}")
    if effects:
        return Verdict(CONTRADICTED, value, None, f"k=1 already tells the kmax story everywhere: {why}")
    return Verdict(INCONCLUSIVE, value, None, f"no significant difference at either k: {why}")


# ----------------------------------------------------------------------------- claim 2 (and 3's parts)


def _expansion_keys(cat: str) -> tuple[str, ...]:
    return _with_ci(f"passdiff.{cat}.rl_vs_base.kmax", f"gapwiden.{cat}.rl_vs_base")


def expansion_sign(stats: Stats, cat: str) -> int:
    """+1: RL above base at kmax (CI > 0) and gap not closing (gapwiden >= 0); -1: RL significantly below
    base at kmax, or the gap significantly closing (gapwiden CI < 0); 0: neither."""
    low, high = _ci(stats, f"passdiff.{cat}.rl_vs_base.kmax")
    gap = float(stats[f"gapwiden.{cat}.rl_vs_base"])
    _, gap_high = _ci(stats, f"gapwiden.{cat}.rl_vs_base")
    if high < 0 or gap_high < 0:
        return -1
    if low > 0 and gap >= 0:
        return 1
    return 0


def _expansion_text(stats: Stats, cat: str) -> str:
    d, g = f"passdiff.{cat}.rl_vs_base.kmax", f"gapwiden.{cat}.rl_vs_base"
    return (
        f"{cat}: dPass@kmax {_num(stats[d], True)} {_iv(*_ci(stats, d), True)}, "
        f"gap change {_num(stats[g], True)} {_iv(*_ci(stats, g), True)}"
    )


C2_KEYS = _expansion_keys("bridge")


def _rule2(stats: Stats) -> Verdict:
    s = expansion_sign(stats, "bridge")
    key = "passdiff.bridge.rl_vs_base.kmax"
    verdict = {1: SUPPORTED, -1: CONTRADICTED, 0: INCONCLUSIVE}[s]
    tail = {
        1: "RL significantly above base and the gap is not closing",
        -1: "RL significantly below base, or the gap significantly closing",
        0: "difference not significant or gap shrinking without significance",
    }[s]
    return Verdict(verdict, float(stats[key]), _ci(stats, key), f"{_expansion_text(stats, 'bridge')}: {tail}")


# ----------------------------------------------------------------------------- claim 3

C3_KEYS = (
    _with_ci("passdiff.math.rl_vs_base.kmax") + _expansion_keys("comparison") + _expansion_keys("bridge")
)


def _rule3(stats: Stats) -> Verdict:
    m = "passdiff.math.rl_vs_base.kmax"
    math_sig = sig_sign(*_ci(stats, m))
    comp, bridge = expansion_sign(stats, "comparison"), expansion_sign(stats, "bridge")
    value = (
        f"math {_num(stats[m], True)}, comparison {_num(stats['passdiff.comparison.rl_vs_base.kmax'], True)}, "
        f"bridge {_num(stats['passdiff.bridge.rl_vs_base.kmax'], True)}"
    )
    why = (
        f"math dPass@kmax {_num(stats[m], True)} {_iv(*_ci(stats, m), True)} ({_SIG[math_sig]}); "
        f"{_expansion_text(stats, 'comparison')}; {_expansion_text(stats, 'bridge')}"
    )
    if math_sig != 0:
        return Verdict(CONTRADICTED, value, None, f"RL not inert on math: {why}")
    if comp == 1:
        return Verdict(CONTRADICTED, value, None, f"comparison expands too, not specific: {why}")
    if bridge == -1:
        return Verdict(CONTRADICTED, value, None, f"no bridge expansion: {why}")
    if bridge == 1:
        return Verdict(SUPPORTED, value, None, f"math inert, only bridge expands: {why}")
    return Verdict(INCONCLUSIVE, value, None, f"bridge expansion not significant: {why}")


# ----------------------------------------------------------------------------- claim 4

_SFT, _RVS = "setdiff.bridge.sft_vs_base", "setdiff.bridge.rl_vs_sft"
C4_KEYS = tuple(
    f"{_SFT}.{s}" for s in ("net", "net_ci_low", "net_ci_high", "gained", "lost", "mcnemar_p")
) + tuple(f"{_RVS}.{s}" for s in ("gained", "lost", "mcnemar_p"))


def _rule4(stats: Stats) -> Verdict:
    net, p_sft = float(stats[f"{_SFT}.net"]), float(stats[f"{_SFT}.mcnemar_p"])
    gain, loss = float(stats[f"{_RVS}.gained"]), float(stats[f"{_RVS}.lost"])
    p_rvs = float(stats[f"{_RVS}.mcnemar_p"])
    shrink = 1 if (net < 0 and p_sft < ALPHA) else -1 if (net > 0 and p_sft < ALPHA) else 0
    lopsided = 1 if (gain > loss and p_rvs < ALPHA) else -1 if (gain < loss and p_rvs < ALPHA) else 0
    why = (
        f"SFT vs base +{_num(stats[f'{_SFT}.gained'])}/-{_num(stats[f'{_SFT}.lost'])} (net {_num(net, True)}, "
        f"McNemar {_p(p_sft)}); RL vs SFT {_num(gain)}/{_num(loss)} (McNemar {_p(p_rvs)})"
    )
    interval = (float(stats[f"{_SFT}.net_ci_low"]), float(stats[f"{_SFT}.net_ci_high"]))
    if shrink == 1 and lopsided == 1:
        return Verdict(SUPPORTED, net, interval, f"SFT shrinks and RL vs SFT lopsided: {why}")
    if shrink == -1 or lopsided == -1:
        return Verdict(CONTRADICTED, net, interval, f"a part is significantly reversed: {why}")
    return Verdict(INCONCLUSIVE, net, interval, f"not both parts significant: {why}")


# ----------------------------------------------------------------------------- claim 5

_NOV = f"novelty.{MECH_CAT}.%s.frac"
_DIV = f"diversity.{MECH_CAT}.%s.unique"
C5_KEYS = _with_ci(_NOV % "rl", _NOV % "sft", _DIV % "base", _DIV % "rl", _DIV % "sft")


def _below(stats: Stats, a: str, b: str) -> bool:
    """a's interval lies entirely below b's (non-overlapping CIs: a conservative test of a < b)."""
    return _ci(stats, a)[1] < _ci(stats, b)[0]


def _rule5(stats: Stats) -> Verdict:
    nrl, nsft = _NOV % "rl", _NOV % "sft"
    dbase, drl, dsft = _DIV % "base", _DIV % "rl", _DIV % "sft"
    novelty_low = _below(stats, nrl, nsft)
    rl_kept = not _below(stats, drl, dbase)
    sft_collapse = _below(stats, dsft, dbase)
    why = (
        f"novelty RL {_num(stats[nrl])} {_iv(*_ci(stats, nrl))} vs SFT {_num(stats[nsft])} {_iv(*_ci(stats, nsft))}; "
        f"unique/problem base {_num(stats[dbase])} {_iv(*_ci(stats, dbase))}, RL {_num(stats[drl])} "
        f"{_iv(*_ci(stats, drl))}, SFT {_num(stats[dsft])} {_iv(*_ci(stats, dsft))}"
    )
    value, interval = float(stats[nrl]), _ci(stats, nrl)
    if novelty_low and rl_kept and sft_collapse:
        return Verdict(SUPPORTED, value, interval, f"RL reweights, SFT replaces: {why}")
    if _below(stats, nsft, nrl) or not rl_kept or _below(stats, dbase, dsft):
        return Verdict(CONTRADICTED, value, interval, f"a part is significantly reversed: {why}")
    return Verdict(INCONCLUSIVE, value, interval, f"intervals overlap: {why}")


# ----------------------------------------------------------------------------- claim 6

_PPL = f"ppl.{PPL_CAT}.rl"
C6_KEYS = _with_ci(f"{_PPL}.reasoning_minus_query.nats") + (f"{_PPL}.query.nats", f"{_PPL}.reasoning.nats")


def _rule6(stats: Stats) -> Verdict:
    key = f"{_PPL}.reasoning_minus_query.nats"
    d, (low, high) = float(stats[key]), _ci(stats, key)
    why = (
        f"base-model nats/token on RL successes: reasoning {_num(stats[f'{_PPL}.reasoning.nats'])} vs query "
        f"{_num(stats[f'{_PPL}.query.nats'])}, difference {_num(d, True)} {_iv(low, high, True)}"
    )
    verdict = {1: SUPPORTED, -1: CONTRADICTED, 0: INCONCLUSIVE}[sig_sign(low, high)]
    return Verdict(verdict, d, (low, high), why)


# ----------------------------------------------------------------------------- claim 7

_PLAIN, _BONUS = "setdiff.bridge.rl_vs_base", "setdiff.bridge.rl_bonus_vs_base"
C7_KEYS = tuple(f"{p}.{s}" for p in (_PLAIN, _BONUS) for s in ("net", "mcnemar_p"))


def _expands(stats: Stats, prefix: str) -> bool:
    return float(stats[prefix + ".net"]) > 0 and float(stats[prefix + ".mcnemar_p"]) < ALPHA


def _rule7(stats: Stats) -> Verdict:
    plain, bonus = float(stats[f"{_PLAIN}.net"]), float(stats[f"{_BONUS}.net"])
    why = (
        f"net boundary gain vs base on bridge: plain RL {_num(plain, True)} (McNemar {_p(stats[f'{_PLAIN}.mcnemar_p'])}), "
        f"RL+bonus {_num(bonus, True)} (McNemar {_p(stats[f'{_BONUS}.mcnemar_p'])})"
    )
    value = plain - bonus
    if _expands(stats, _PLAIN) and plain >= bonus:
        return Verdict(
            SUPPORTED, value, None, f"plain RL expands on its own and the bonus adds nothing: {why}"
        )
    if _expands(stats, _BONUS) and not _expands(stats, _PLAIN):
        return Verdict(CONTRADICTED, value, None, f"only the bonus run expands significantly: {why}")
    return Verdict(INCONCLUSIVE, value, None, why)


# ----------------------------------------------------------------------------- the registry

CLAIMS: tuple[Claim, ...] = (
    Claim(
        1,
        "Pass@(k,T) separates capability expansion from efficiency gains.",
        "C at T=5: base ahead at k=1 (0.363 vs RL 0.335), RL ahead at k=64 (0.81 vs 0.77); order flips near k≈4.",
        "Pass(RL) - Pass(base) at k=1 and at k=kmax (T=T_eval) on math, comparison and bridge, each with its CI.",
        "For each category classify each difference as sig. +, sig. - or n.s. (CI vs 0). Supported if in at least "
        "one category the k=1 and kmax classes differ (an efficiency gain that is not an expansion, or the "
        "reverse); contradicted if they agree everywhere and at least one is significant (k=1 already tells the "
        "story); inconclusive if nothing is significant.",
        C1_KEYS,
        _guarded(C1_KEYS, _rule1),
    ),
    Claim(
        2,
        "On C (bridge), RL's Pass@(k,T) curve rises above base's as k grows and the gap widens instead of closing.",
        "C at k=64, T=5: RL 0.81 vs base 0.77, gap still widening; boundary +5/-1 (net +4 of 100).",
        "dPass@kmax = Pass@(kmax,T) RL - base on bridge (CI); gap change = dPass at kmax minus at kmax/2 (CI).",
        "Supported if the dPass@kmax CI lies above 0 and gap change >= 0; contradicted if the dPass@kmax CI lies "
        "below 0 or the gap-change CI lies below 0 (the gap is significantly closing, Yue et al.'s pattern); "
        "otherwise inconclusive.",
        C2_KEYS,
        _guarded(C2_KEYS, _rule2),
    ),
    Claim(
        3,
        "The expansion is specific to compositional tasks: on A (math) RL is inert; on B (comparison) it behaves "
        "as prior work.",
        "Boundaries base vs RL: A 84 vs 84 (+3/-3); B 82 vs 86 (+5/-1); C 77 vs 81 (+5/-1).",
        "dPass@kmax RL - base on math (CI), and claim 2's expansion test on comparison and on bridge.",
        "Supported if the math CI contains 0, bridge passes claim 2's test and comparison does not; "
        "contradicted if the math CI excludes 0, or comparison passes claim 2's test, or bridge fails it "
        "significantly; otherwise inconclusive.",
        C3_KEYS,
        _guarded(C3_KEYS, _rule3),
    ),
    Claim(
        4,
        "Under matched data SFT shrinks the boundary on C; the RL vs SFT set difference is lopsided.",
        "C boundaries: SFT 73 vs base 77 (+3/-7); RL vs SFT 9 / 1.",
        "Boundary set differences on bridge: SFT vs base net (CI, McNemar p); RL vs SFT gained / lost (McNemar p).",
        f"Supported if SFT vs base net < 0 with McNemar p < {ALPHA} AND RL vs SFT gained > lost with McNemar "
        f"p < {ALPHA}; contradicted if either is significant in the opposite direction; otherwise inconclusive.",
        C4_KEYS,
        _guarded(C4_KEYS, _rule4),
    ),
    Claim(
        5,
        "RL reweights the base strategy distribution (low novelty vs base, diversity kept); SFT replaces it.",
        "Unique query sequences per problem: base 40.1, RL 45.5, SFT 14.7; novelty vs base: SFT 97.7%, RL 83.9% "
        "(novelty or overlap: ambiguous in the sources).",
        f"On {MECH_CAT}: share of query sequences never seen in base's samples (novelty) for RL and SFT; mean "
        "unique query sequences per problem for base, RL, SFT; each with its CI.",
        "Supported if RL's novelty CI lies below SFT's, RL's diversity CI does not lie below base's, and SFT's "
        "diversity CI lies below base's; contradicted if SFT's novelty CI lies below RL's, RL's diversity CI "
        "lies below base's, or SFT's diversity CI lies above base's; otherwise inconclusive.",
        C5_KEYS,
        _guarded(C5_KEYS, _rule5),
    ),
    Claim(
        6,
        "RL's gain concentrates on integrating retrieved information (reasoning perplexity > query perplexity).",
        "Base-model perplexity of RL's successful trajectories: query 2.07 (0.73 nats/token) vs reasoning 3.08 "
        "(1.12 nats/token).",
        f"Base-model nats/token on RL's successful trajectories ({PPL_CAT}), reasoning minus query tokens (CI).",
        "Supported if the CI of reasoning minus query lies above 0; contradicted if it lies below 0; "
        "otherwise inconclusive.",
        C6_KEYS,
        _guarded(C6_KEYS, _rule6),
    ),
    Claim(
        7,
        "An explicit exploration bonus is not needed for the expansion.",
        "C: RL + bonus 0.78 (net +1) vs plain RL 0.81 (net +4).",
        "Net boundary gain vs base on bridge for plain RL and for RL + bonus (McNemar p each); value = plain - bonus.",
        f"Supported if plain RL's net > 0 with McNemar p < {ALPHA} and plain net >= bonus net; contradicted if "
        f"RL + bonus expands significantly (net > 0, p < {ALPHA}) while plain RL does not; otherwise inconclusive "
        "(incl. plain RL expanding but the bonus adding more).",
        C7_KEYS,
        _guarded(C7_KEYS, _rule7),
    ),
)


def evaluate(stats: Stats, claims: tuple[Claim, ...] = CLAIMS) -> list[dict]:
    """One row per claim for the claims table: the claim's texts plus its verdict, value, interval and why."""
    rows = []
    for c in claims:
        v = c.decide(stats)
        rows.append(
            {
                "id": c.id,
                "statement": c.statement,
                "paper_evidence": c.paper_evidence,
                "statistic": c.statistic,
                "rule": c.rule,
                "keys": list(c.keys),
                "verdict": v.verdict,
                "value": v.value,
                "ci_low": v.interval[0] if v.interval else None,
                "ci_high": v.interval[1] if v.interval else None,
                "explanation": v.explanation,
            }
        )
    return rows


# ----------------------------------------------------------------------------- reported numbers


@dataclass(frozen=True)
class Reported:
    """One number the paper reports and how ours is read from stats.

    kind: "boundary" (keys[0] = boundary prefix; ours = size / n_problems), "setdiff" (keys[0] = setdiff
    prefix; ours = +gained / -lost), "value" (ours = stats[keys[0]] with its CI), "exp" (ours =
    exp(stats[keys[0]]), CI exponentiated), "ratio" (ours = keys[0] / keys[1]). Extra keys of "value"
    rows are shown alongside. ``at`` says where ours is measured; "{n}" / "{T}" are filled from meta.
    """

    quantity: str
    paper: str
    paper_value: float | None
    kind: str
    keys: tuple[str, ...]
    at: str
    how: str


def _boundary(cat: str, pol: str, size: int) -> Reported:
    return Reported(
        f"boundary size, {cat}, {pol}",
        f"{size}/100",
        size / 100,
        "boundary",
        (f"boundary.{cat}.{pol}",),
        "n={n}, T=0" if cat == "math" else "n={n}, T={T}",
        "solved at least once in n rollouts, as a fraction (CI of the fraction)",
    )


def _setdiff(cat: str, pair: str, paper: str, net: int) -> Reported:
    return Reported(
        f"set difference, {cat}, {pair}",
        paper,
        net,
        "setdiff",
        (f"setdiff.{cat}.{pair}",),
        "n={n}",
        "+|B(a) minus B(b)| / -|B(b) minus B(a)|; net with CI and McNemar p",
    )


def _value(quantity: str, paper: str, pv: float | None, key: str, at: str, how: str, *extra: str) -> Reported:
    return Reported(quantity, paper, pv, "value", (key, *extra), at, how)


_PASS_KMAX = "Pass@(kmax, T): paper's k=64; ours at k = our n"
REPORTED: tuple[Reported, ...] = (
    _boundary("math", "base", 84),
    _boundary("math", "rl", 84),
    _boundary("comparison", "base", 82),
    _boundary("comparison", "rl", 86),
    _boundary("comparison", "sft", 85),
    _boundary("bridge", "base", 77),
    _boundary("bridge", "rl", 81),
    _boundary("bridge", "sft", 73),
    _setdiff("math", "rl_vs_base", "+3 / -3", 0),
    _setdiff("comparison", "rl_vs_base", "+5 / -1", 4),
    _setdiff("bridge", "rl_vs_base", "+5 / -1", 4),
    _setdiff("bridge", "sft_vs_base", "+3 / -7", -4),
    _setdiff("bridge", "rl_vs_sft", "9 / 1", 8),
    *(
        _value(
            f"Pass@(64,5), {cat}, {pol}", f"{v:.2f}", v, f"pass.{cat}.{pol}.kmax", "k={n}, T={T}", _PASS_KMAX
        )
        for cat, pol, v in (
            ("comparison", "base", 0.82),
            ("comparison", "rl", 0.86),
            ("comparison", "sft", 0.85),
            ("bridge", "base", 0.77),
            ("bridge", "rl", 0.81),
            ("bridge", "sft", 0.73),
        )
    ),
    _value("Pass@(1,5), bridge, base", "0.363", 0.363, "pass.bridge.base.k1", "k=1, T={T}", "Pass@(1, T)"),
    _value("Pass@(1,5), bridge, rl", "0.335", 0.335, "pass.bridge.rl.k1", "k=1, T={T}", "Pass@(1, T)"),
    _value(
        "crossover k, bridge, RL vs base",
        "≈4",
        4.0,
        "crossover.bridge.rl_vs_base.k",
        "T={T}",
        "smallest k where RL's curve passes base's (with its CI)",
        "crossover.bridge.rl_vs_base.nan_frac",
    ),
    *(
        _value(
            f"saturation depth T*, {cat}, {pol}",
            "2",
            2.0,
            f"saturation.{cat}.{pol}.T_star",
            "k={n}",
            "depth beyond which more rounds stop helping (at kmax; T* at k=1 alongside)",
            f"saturation.{cat}.{pol}.T_star_k1",
        )
        for cat in ("comparison", "bridge")
        for pol in ("base", "sft", "rl")
    ),
    Reported(
        "perplexity, RL successes, query tokens",
        "2.07",
        2.07,
        "exp",
        (f"{_PPL}.query.nats",),
        "base model",
        "exp(mean base-model nats/token)",
    ),
    Reported(
        "perplexity, RL successes, reasoning tokens",
        "3.08",
        3.08,
        "exp",
        (f"{_PPL}.reasoning.nats",),
        "base model",
        "exp(mean base-model nats/token)",
    ),
    _value(
        "nats/token, RL successes, query", "0.73", 0.73, f"{_PPL}.query.nats", "base model", "mean nats/token"
    ),
    _value(
        "nats/token, RL successes, reasoning",
        "1.12",
        1.12,
        f"{_PPL}.reasoning.nats",
        "base model",
        "mean nats/token",
    ),
    *(
        _value(
            f"unique query sequences per problem, {pol}",
            str(v),
            v,
            _DIV % pol,
            "n={n} samples",
            "mean over problems (grows with n: compare at equal n only)",
        )
        for pol, v in (("base", 40.1), ("rl", 45.5), ("sft", 14.7))
    ),
    Reported(
        "diversity ratio base / SFT",
        "~2.7-3x",
        2.7,
        "ratio",
        (_DIV % "base", _DIV % "sft"),
        "n={n} samples",
        "unique per problem, base / SFT",
    ),
    _value(
        "novelty of query sequences vs base, SFT",
        "97.7%",
        0.977,
        _NOV % "sft",
        "n={n} samples",
        "share of SFT's query sequences never in base's samples",
        f"overlap.{MECH_CAT}.sft.frac",
    ),
    _value(
        "novelty of query sequences vs base, RL",
        "83.9% (novelty or overlap?)",
        0.839,
        _NOV % "rl",
        "n={n} samples",
        "share of RL's query sequences never in base's samples",
        f"overlap.{MECH_CAT}.rl.frac",
    ),
    _value(
        "swap: share of RL's gain from the search plan",
        "~half",
        0.5,
        f"swap.{MECH_CAT}.share_plan",
        "T={T}",
        "cross-policy swap (see mechanism)",
    ),
    _value(
        "swap: share of RL's gain from the reasoning",
        "~half",
        0.5,
        f"swap.{MECH_CAT}.share_reasoning",
        "T={T}",
        "cross-policy swap (see mechanism)",
    ),
    _value(
        "ablation Pass@(64,5), bridge, RL + bonus",
        "0.78",
        0.78,
        "pass.bridge.rl_bonus.kmax",
        "k={n}, T={T}",
        _PASS_KMAX,
    ),
    _value(
        "ablation Pass@(64,5), bridge, plain RL",
        "0.81",
        0.81,
        "pass.bridge.rl.kmax",
        "k={n}, T={T}",
        _PASS_KMAX,
    ),
    _value(
        "ablation net boundary gain, RL + bonus vs base",
        "+1",
        1.0,
        "setdiff.bridge.rl_bonus_vs_base.net",
        "n={n}",
        "gained - lost vs base",
        "setdiff.bridge.rl_bonus_vs_base.mcnemar_p",
    ),
    _value(
        "ablation net boundary gain, plain RL vs base",
        "+4",
        4.0,
        "setdiff.bridge.rl_vs_base.net",
        "n={n}",
        "gained - lost vs base",
        "setdiff.bridge.rl_vs_base.mcnemar_p",
    ),
)


def _at(template: str, stats: Stats) -> str:
    """Fill "{n}" and "{T}" from meta (or "?"), so a reader sees our k / n next to the paper's 64."""

    def meta(key: str) -> str:
        return "?" if first_missing(stats, (key,)) else _num(float(stats[key]))

    return template.replace("{n}", meta("meta.n")).replace("{T}", meta("meta.T_eval"))


def _opt_ci(
    stats: Stats, key: str, low: str = ".ci_low", high: str = ".ci_high"
) -> tuple[float, float] | None:
    if first_missing(stats, (key + low, key + high)):
        return None
    return float(stats[key + low]), float(stats[key + high])


def _label(key: str) -> str:
    """Short name of an alongside statistic: its last component ("T_star_k1"), or its family for ".frac"."""
    parts = key.split(".")
    return parts[0] if parts[-1] == "frac" else parts[-1]


def _read(r: Reported, stats: Stats) -> tuple[float, str, tuple[float, float] | None, str]:
    """Our value, its display text, interval and raw/alongside text; raises KeyError naming a missing key."""

    def need(*keys: str) -> None:
        missing = first_missing(stats, keys)
        if missing:
            raise KeyError(missing)

    k = r.keys[0]
    if r.kind == "boundary":
        need(k + ".size", k + ".n_problems")
        size, n = float(stats[k + ".size"]), float(stats[k + ".n_problems"])
        frac = size / n if n else float("nan")
        return frac, _num(frac), _opt_ci(stats, k), f"{_num(size)}/{_num(n)}"
    if r.kind == "setdiff":
        need(k + ".gained", k + ".lost", k + ".net")
        gain, loss, net = (float(stats[f"{k}.{s}"]) for s in ("gained", "lost", "net"))
        text = f"+{_num(gain)} / -{_num(loss)}"
        ci = _opt_ci(stats, k, ".net_ci_low", ".net_ci_high")
        raw = f"net {_num(net, True)}" + (
            f", McNemar {_p(stats[k + '.mcnemar_p'])}"
            if not first_missing(stats, (k + ".mcnemar_p",))
            else ""
        )
        return net, text, ci, raw
    if r.kind == "ratio":
        need(*r.keys)
        v = float(stats[r.keys[0]]) / float(stats[r.keys[1]])
        return v, f"{_num(v)}x", None, f"{_num(stats[r.keys[0]])} / {_num(stats[r.keys[1]])}"
    need(k)
    if r.kind == "exp":
        ci = _opt_ci(stats, k)
        v = math.exp(float(stats[k]))
        return v, _num(v), (math.exp(ci[0]), math.exp(ci[1])) if ci else None, f"{_num(stats[k])} nats/token"
    v = float(stats[k])
    text = _num(v, signed=k.endswith(".net"))
    extra = [f"{_label(e)} = {_num(stats[e])}" for e in r.keys[1:] if not first_missing(stats, (e,))]
    return v, text, _opt_ci(stats, k), "; ".join(extra)


def compare_reported(stats: Stats, reported: tuple[Reported, ...] = REPORTED) -> list[dict]:
    """One row per paper number: the paper's value next to ours (with interval, raw counts and where measured)."""
    rows = []
    for r in reported:
        row = {
            "quantity": r.quantity,
            "paper": r.paper,
            "paper_value": r.paper_value,
            "at": _at(r.at, stats),
            "how": r.how,
            "keys": list(r.keys),
        }
        try:
            v, text, ci, raw = _read(r, stats)
            inside = None if ci is None or r.paper_value is None else ci[0] <= r.paper_value <= ci[1]
            row.update(
                ours=v,
                ours_text=text,
                ci_low=ci[0] if ci else None,
                ci_high=ci[1] if ci else None,
                raw=raw,
                paper_in_ci=inside,
            )
        except KeyError as e:
            row.update(
                ours=None,
                ours_text=f"not available (missing {e.args[0]})",
                ci_low=None,
                ci_high=None,
                raw="",
                paper_in_ci=None,
            )
        rows.append(row)
    return rows


# ----------------------------------------------------------------------------- rendering


def _cell(x: object) -> str:
    """Markdown table cell text: backslash-escape the characters our converter (and GitHub) treat specially."""
    s = "" if x is None else str(x)
    s = s.replace("\\", "\\\\").replace("|", "\\|").replace("*", "\\*")
    return " ".join(s.split())


def _value_text(v: float | str | None) -> str:
    if v is None:
        return "–"
    return v if isinstance(v, str) else _num(v, False)


def _interval_text(low: float | None, high: float | None) -> str:
    return "–" if low is None or high is None else _iv(low, high)


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    return lines + ["| " + " | ".join(r) + " |" for r in rows]


def render_markdown(
    claim_rows: list[dict],
    reported_rows: list[dict],
    profile: str,
    settings: dict,
    figures: list[tuple[str, str]],
) -> str:
    """The audit report as markdown: header (profile, settings), claims table, reported numbers, figures."""
    out = [
        "# Claims audit: Pass@(k,T) reproduction of arXiv 2604.14877",
        "",
        f"Produced by profile **{_cell(profile)}**. Verdicts are computed by the rules below (fixed in advance, "
        f"alpha = {ALPHA}); intervals are the pipeline's (1 - alpha) intervals.",
        "",
        "## Settings",
        "",
        *_table(["setting", "value"], [[_cell(k), _cell(v)] for k, v in settings.items()]),
        "",
        "## Claims",
        "",
        *_table(
            [
                "#",
                "Claim",
                "Paper evidence",
                "Statistic",
                "Rule (fixed in advance)",
                "Ours",
                "Interval",
                "Verdict",
                "Why",
            ],
            [
                [
                    str(r["id"]),
                    _cell(r["statement"]),
                    _cell(r["paper_evidence"]),
                    _cell(r["statistic"]),
                    _cell(r["rule"]),
                    _cell(_value_text(r["value"])),
                    _interval_text(r["ci_low"], r["ci_high"]),
                    f"**{r['verdict']}**",
                    _cell(r["explanation"]),
                ]
                for r in claim_rows
            ],
        ),
        "",
        "## Reported numbers",
        "",
        f"The paper uses n = {PAPER_N} rollouts and 100 problems per category. Boundary sizes are compared as "
        "fractions (ours = size / n_problems, raw counts alongside); where our n differs, the paper's "
        "Pass@(64, T) is our Pass@(kmax, T) and diversity counts are at our n (column 'Ours at').",
        "",
        *_table(
            [
                "Quantity",
                "Paper",
                "Ours",
                "Interval",
                "Paper in our interval",
                "Ours at",
                "Raw / alongside",
                "Computed as",
            ],
            [
                [
                    _cell(r["quantity"]),
                    _cell(r["paper"]),
                    _cell(r["ours_text"]),
                    _interval_text(r["ci_low"], r["ci_high"]),
                    {True: "yes", False: "no", None: "–"}[r["paper_in_ci"]],
                    _cell(r["at"]),
                    _cell(r["raw"]),
                    _cell(r["how"]),
                ]
                for r in reported_rows
            ],
        ),
        "",
    ]
    if figures:
        out += ["## Figures", ""]
        for caption, path in figures:
            out += [f"![{_cell(caption).replace(']', ')')}]({path})", ""]
    return "\n".join(out)


# Placeholders for backslash-escaped characters (Unicode private use area), so they survive table splitting
# and bold matching and come back as literal characters.
_ESC = {"\\": "\ue000", "|": "\ue001", "*": "\ue002"}


def _unescape_md(text: str) -> str:
    return re.sub(r"\\([\\|*])", lambda m: _ESC[m.group(1)], text)


def _inline(text: str) -> str:
    """Escape HTML, then turn **bold** into <strong>; placeholders come back as their characters."""
    s = html.escape(text, quote=True)
    s = re.sub(r"\*\*(.+?)\*\*", r"<strong>\1</strong>", s)
    for ch, ph in _ESC.items():
        s = s.replace(ph, ch)
    return s


def _html_table(lines: list[str]) -> str:
    def cells(line: str) -> list[str]:
        return [c.strip() for c in line.strip().strip("|").split("|")]

    head = "".join(f"<th>{_inline(c)}</th>" for c in cells(lines[0]))
    body = "".join(
        "<tr>" + "".join(f"<td>{_inline(c)}</td>" for c in cells(line)) + "</tr>\n" for line in lines[2:]
    )
    return f"<table>\n<thead><tr>{head}</tr></thead>\n<tbody>\n{body}</tbody>\n</table>"


_IMAGE = re.compile(r"^!\[(.*)\]\((.*)\)$")
_STYLE = (
    "body{font-family:system-ui,sans-serif;margin:2em;max-width:110em}"
    "table{border-collapse:collapse;margin:1em 0;font-size:90%}"
    "th,td{border:1px solid #bbb;padding:4px 6px;vertical-align:top;text-align:left}"
    "th{background:#eee}img{max-width:48em}"
)


def render_html(markdown_text: str, title: str = "Claims audit") -> str:
    """A standalone HTML page from the markdown render_markdown emits (headers, paragraphs, pipe tables,
    images, bold). Not a general markdown converter: anything else is shown as escaped paragraph text."""
    lines = [_unescape_md(line) for line in markdown_text.splitlines()]
    blocks, i = [], 0
    while i < len(lines):
        line = lines[i].strip()
        if not line:
            i += 1
        elif line.startswith("#"):
            level = min(len(line) - len(line.lstrip("#")), 6)
            blocks.append(f"<h{level}>{_inline(line[level:].strip())}</h{level}>")
            i += 1
        elif line.startswith("|"):
            j = i
            while j < len(lines) and lines[j].strip().startswith("|"):
                j += 1
            blocks.append(_html_table([x.strip() for x in lines[i:j]]))
            i = j
        elif _IMAGE.match(line):
            alt, src = _IMAGE.match(line).groups()
            alt_h, src_h = _inline(alt), html.escape(src, quote=True)
            blocks.append(
                f'<figure><img src="{src_h}" alt="{alt_h}"><figcaption>{alt_h}</figcaption></figure>'
            )
            i += 1
        else:
            j = i
            while j < len(lines) and lines[j].strip() and not lines[j].strip().startswith(("#", "|", "![")):
                j += 1
            blocks.append("<p>" + _inline(" ".join(x.strip() for x in lines[i:j])) + "</p>")
            i = j
    body = "\n".join(blocks)
    return (
        f'<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n<title>{html.escape(title)}</title>\n'
        f"<style>{_STYLE}</style>\n</head>\n<body>\n{body}\n</body>\n</html>\n"
    )


def verdicts_json(claim_rows: list[dict]) -> dict:
    """For `dvc metrics`: claim id -> {verdict, value} (NaN/non-finite as null) and a count per verdict."""

    def clean(v: float | str | None) -> float | str | None:
        if isinstance(v, (int, float)):
            return float(v) if math.isfinite(v) else None
        return v

    claims = {str(r["id"]): {"verdict": r["verdict"], "value": clean(r["value"])} for r in claim_rows}
    counts = {v.replace(" ", "_"): sum(r["verdict"] == v for r in claim_rows) for v in VERDICTS}
    return {"claims": claims, "counts": counts}
