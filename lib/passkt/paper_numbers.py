"""The paper's reported numbers as data (references/paper_numbers.yaml): loading, the paper-vs-ours table, and
the calibration: our claims' rules applied to the paper's own evidence where its counts suffice.

Calibration. The paper reports boundary set differences (gained / lost of 100 problems). Those counts fix each
problem's paired boundary difference (+1 gained, -1 lost, 0 otherwise), which is all that McNemar's test, the
paired boundary difference (= Pass@64 difference, the boundary share at k = n) and its bootstrap need. From them
:func:`paper_stats` builds the same flat statistics the pipeline writes, with the same functions and resampling
(``metrics.effect``, ``metrics.category_rng``), so a claim's rule reads the paper's evidence exactly as it reads
ours. Statistics the paper's reports do not determine (Pass@1 per problem, the gap's change, the RL vs RL +
bonus set difference, anything from the mechanism probes) stay absent: those claims come out "not computable".
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping

import numpy as np
import yaml

from passkt import claims as C
from passkt.metrics import category_rng, effect, mcnemar_exact, resample_weights

KINDS = ("boundary", "setdiff", "value", "exp", "none")
_REQUIRED = ("id", "quantity", "text", "value", "unit", "where", "source", "certainty", "ours")


@dataclass(frozen=True)
class PaperNumber:
    """One number the paper reports and how ours is read from stats.

    ours_kind: "boundary" (ours = size / n_problems), "setdiff" (ours = +gained / -lost), "value" (ours =
    stats[keys[0]] with its interval; further keys shown alongside), "exp" (ours = exp(stats[keys[0]])), "none"
    (not compared). ``ours_at`` says where ours is measured; "{n}" / "{T}" are filled from meta.
    """

    id: str
    quantity: str
    text: str
    value: float | None
    unit: str
    where: str
    source: str
    certainty: str
    ours_kind: str
    ours_keys: tuple[str, ...]
    ours_at: str
    ours_how: str
    counts: dict = field(default_factory=dict)  # gained, lost, n_problems where the paper gives them
    comparable: bool = True  # False: ours is shown next to the paper's but measures another thing (no "in interval")

    @property
    def compared_value(self) -> float | None:
        """The paper's value on our scale: boundary sizes as a share of the paper's problems."""
        if self.value is None or not self.comparable:
            return None
        if self.ours_kind == "boundary":
            return float(self.value) / float(self.counts["n_problems"])
        return float(self.value)


def load(path: str | Path) -> tuple[PaperNumber, ...]:
    """Read and check the numbers file; an error names the entry and the field."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: the paper's numbers file is missing")
    doc = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    out, seen = [], set()
    for i, e in enumerate(doc.get("numbers") or []):
        where = f"{path}: entry {i} ({e.get('id', '?')})"
        missing = [f for f in _REQUIRED if f not in e]
        if missing:
            raise ValueError(f"{where}: missing field(s) {missing}")
        if e["id"] in seen:
            raise ValueError(f"{where}: duplicate id")
        seen.add(e["id"])
        ours = e["ours"]
        if ours.get("kind") not in KINDS:
            raise ValueError(f"{where}: ours.kind must be one of {KINDS}, got {ours.get('kind')!r}")
        counts = {k: e[k] for k in ("gained", "lost", "n_problems") if k in e}
        if ours["kind"] == "boundary" and "n_problems" not in counts:
            raise ValueError(f"{where}: a boundary size needs n_problems")
        if ours["kind"] == "setdiff" and set(counts) != {"gained", "lost", "n_problems"}:
            raise ValueError(f"{where}: a set difference needs gained, lost and n_problems")
        out.append(
            PaperNumber(
                e["id"], e["quantity"], str(e["text"]), None if e["value"] is None else float(e["value"]),
                e["unit"], e["where"], e["source"], e["certainty"], ours["kind"], tuple(ours.get("keys") or ()),
                ours.get("at", ""), ours.get("how", ""), counts, bool(e.get("comparable", True)),
            )
        )
    return tuple(out)


def display(numbers: tuple[PaperNumber, ...]) -> dict[str, str]:
    """id -> the paper's text, for the claims' evidence templates."""
    return {n.id: n.text for n in numbers}


# ----------------------------------------------------------------------------- the paper next to ours


def _at(template: str, stats: Mapping[str, float]) -> str:
    """Fill "{n}" and "{T}" from meta (or "?"), so a reader sees our k / n next to the paper's 64."""

    def meta(key: str) -> str:
        return "?" if C.first_missing(stats, (key,)) else C.fmt_number(float(stats[key]))

    return template.replace("{n}", meta("meta.n")).replace("{T}", meta("meta.T_eval"))


def _optional_interval(stats, key: str, low: str = ".ci_low", high: str = ".ci_high") -> tuple[float, float] | None:
    if C.first_missing(stats, (key + low, key + high)):
        return None
    return float(stats[key + low]), float(stats[key + high])


def _label(key: str) -> str:
    """Short name of an alongside statistic: its last component ("T_star_k1"), or its family for ".frac"."""
    parts = key.split(".")
    return parts[0] if parts[-1] == "frac" else parts[-1]


def _read(n: PaperNumber, stats) -> tuple[float, str, tuple[float, float] | None, str]:
    """Our value, its display text, interval and raw/alongside text; raises KeyError naming a missing key."""

    def need(*keys: str) -> None:
        missing = C.first_missing(stats, keys)
        if missing:
            raise KeyError(missing)

    k = n.ours_keys[0]
    if n.ours_kind == "boundary":
        need(k + ".size", k + ".n_problems")
        size, total = float(stats[k + ".size"]), float(stats[k + ".n_problems"])
        frac = size / total if total else float("nan")
        return frac, C.fmt_number(frac), _optional_interval(stats, k), f"{C.fmt_number(size)}/{C.fmt_number(total)}"
    if n.ours_kind == "setdiff":
        need(k + ".gained", k + ".lost", k + ".net")
        gain, loss, net = (float(stats[f"{k}.{s}"]) for s in ("gained", "lost", "net"))
        ci = _optional_interval(stats, k, ".net_ci_low", ".net_ci_high")
        raw = f"net {C.fmt_number(net, True)}"
        if not C.first_missing(stats, (k + ".mcnemar_p",)):
            raw += f", McNemar {C.fmt_p(stats[k + '.mcnemar_p'])}"
        return net, f"+{C.fmt_number(gain)} / -{C.fmt_number(loss)}", ci, raw
    need(k)
    if n.ours_kind == "exp":
        ci = _optional_interval(stats, k)
        v = math.exp(float(stats[k]))
        return v, C.fmt_number(v), (math.exp(ci[0]), math.exp(ci[1])) if ci else None, f"{C.fmt_number(stats[k])} nats/token"
    v = float(stats[k])
    extra = [f"{_label(e)} = {C.fmt_number(stats[e])}" for e in n.ours_keys[1:] if not C.first_missing(stats, (e,))]
    text = C.fmt_number(v, signed=k.endswith(".net"))
    if not C.first_missing(stats, (k + ".censored",)) and float(stats[k + ".censored"]) == 1:
        text = f"≥ {text} (censored: the last grid value)"
    return v, text, _optional_interval(stats, k), "; ".join(extra)


def compare_reported(stats, numbers: tuple[PaperNumber, ...]) -> list[dict]:
    """One row per paper number: the paper's value (with unit, place, source, certainty) next to ours."""
    rows = []
    for n in numbers:
        row = {
            "id": n.id,
            "quantity": n.quantity,
            "paper": n.text,
            "paper_value": n.compared_value,
            "unit": n.unit,
            "where": n.where,
            "certainty": n.certainty,
            "at": _at(n.ours_at, stats),
            "how": n.ours_how,
            "keys": list(n.ours_keys),
        }
        empty = dict(ours=None, ci_low=None, ci_high=None, raw="", paper_in_ci=None)
        if n.ours_kind == "none":
            row.update(empty, ours_text="not compared")
        else:
            try:
                v, text, ci, raw = _read(n, stats)
                inside = None if ci is None or n.compared_value is None else ci[0] <= n.compared_value <= ci[1]
                row.update(ours=v, ours_text=text, ci_low=ci[0] if ci else None, ci_high=ci[1] if ci else None,
                           raw=raw, paper_in_ci=inside)
            except KeyError as e:
                row.update(empty, ours_text=f"not available (missing {e.args[0]})")
        rows.append(row)
    return rows


# ----------------------------------------------------------------------------- calibration


def paper_stats(numbers: tuple[PaperNumber, ...], n_boot: int, seed: int, ci: float) -> dict[str, float]:
    """Flat statistics (the pipeline's key names) that the paper's boundary set differences determine."""
    out: dict[str, float] = {"meta.ci": float(ci)}
    at_kmax: dict[tuple[str, str], tuple[float, np.ndarray]] = {}
    for n in numbers:
        if n.ours_kind != "setdiff":
            continue
        _, cat, pair = n.id.split(".")
        gain, loss, total = (int(n.counts[k]) for k in ("gained", "lost", "n_problems"))
        per_problem = np.zeros(total)
        per_problem[:gain], per_problem[gain : gain + loss] = 1.0, -1.0
        reps = resample_weights(category_rng(seed, cat), int(n_boot), total) @ per_problem / total
        est = float(per_problem.mean())
        pre = f"setdiff.{cat}.{pair}"
        out.update({f"{pre}.gained": float(gain), f"{pre}.lost": float(loss), f"{pre}.net": float(gain - loss),
                    f"{pre}.mcnemar_p": mcnemar_exact(gain, loss),
                    # the paper trained once: the sign-flip test of one replicate is exact McNemar, and decides
                    f"{pre}.net_p": mcnemar_exact(gain, loss), f"{pre}.n_seeds": 1.0})
        lo, hi = np.quantile(reps * total, [(1 - ci) / 2, (1 + ci) / 2])  # the net's interval over problems
        out.update({f"{pre}.net_ci_low": float(lo), f"{pre}.net_ci_high": float(hi)})
        out.update(effect(f"passdiff.{cat}.{pair}.kmax", est, reps, ci))
        at_kmax[cat, pair] = est, reps
    for (cat, pair), (est, reps) in sorted(at_kmax.items()):
        if cat == "bridge" and ("comparison", pair) in at_kmax:
            est_c, reps_c = at_kmax["comparison", pair]
            out.update(effect(f"interaction.{pair}.bridge_minus_comparison", est - est_c, reps - reps_c, ci))
    return out


def calibrate(
    numbers: tuple[PaperNumber, ...], n_boot: int, seed: int, ci: float, claims: tuple[C.Claim, ...] = C.CLAIMS
) -> dict[int, dict]:
    """claim id -> {verdict, explanation} of our rule on the paper's own evidence ("not computable" where the
    paper's reports do not determine a statistic the rule needs)."""
    stats = paper_stats(numbers, n_boot, seed, ci)
    out = {}
    for c in claims:
        missing = C.first_missing(stats, c.keys)
        if missing is not None:
            out[c.id] = {"verdict": "not computable", "explanation": f"the paper's reports do not give {missing}"}
        else:
            v = c.decide(stats)
            out[c.id] = {"verdict": v.verdict, "explanation": v.explanation}
    return out
