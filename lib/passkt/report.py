"""The claims audit report (stage 07): a one-glance summary table (claim, verdict, our effect with its interval,
the paper's number), a table of contents, one section per claim with the figures and notebook behind it, the
paper's numbers next to ours, settings; the same report as a standalone HTML page; verdicts and headline numbers
for `dvc metrics`.

Pure rendering: the rows come from ``claims.evaluate``, ``paper_numbers.compare_reported`` and
``paper_numbers.calibrate`` (held together in an :class:`Audit`, saved as JSON by stage 07); nothing here
computes a statistic. Links are relative to the folder the report is written to, given by :class:`Links`:
:data:`STAGE_LINKS` for ``figures/07_claims_audit/`` (the stage's output), :data:`RESULTS_LINKS` for the
published copy in ``results/`` (figures in ``results/figures/<stage>/``, executed notebooks in
``results/notebooks/<stage>.ipynb``). Markdown -> HTML is markdown-it-py (CommonMark with tables).
"""

from __future__ import annotations

import dataclasses
import html
import json
import math
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping

from markdown_it import MarkdownIt

from passkt.claims import VERDICTS, fmt_interval, fmt_number

TITLE = "Claims audit: Pass@(k,T) reproduction of arXiv 2604.14877"

# ----------------------------------------------------------------------------- what the report shows

# The key figures (stage 07's ``key_figures``, "<stage>/<file>.png", each with its .pdf and .csv beside it) behind
# each claim; a figure is shown inline under the first claim that names it and linked from the others. Key
# figures no claim names are shown under "Other figures".
CLAIM_FIGURES: dict[int, tuple[str, ...]] = {
    1: ("05_pass_at_k/headline_bridge.png", "05_pass_at_k/pass_curves.png"),
    2: ("05_pass_at_k/headline_bridge.png",),
    3: ("05_pass_at_k/pass_curves.png", "05_pass_at_k/boundary_table.png"),
    4: ("05_pass_at_k/boundary_table.png",),
    5: ("06_mechanism/diversity_novelty.png",),
    6: ("06_mechanism/perplexity_by_segment.png",),
    7: ("05_pass_at_k/headline_bridge.png", "05_pass_at_k/boundary_table.png"),
}
# The stage whose notebook computes each claim's statistics (05: Pass@(k,T) and boundaries; 06: mechanism).
CLAIM_STAGE: dict[int, str] = {1: "05_pass_at_k", 2: "05_pass_at_k", 3: "05_pass_at_k", 4: "05_pass_at_k",
                               5: "06_mechanism", 6: "06_mechanism", 7: "05_pass_at_k"}
CAPTIONS: dict[str, str] = {
    "05_pass_at_k/headline_bridge.png": "Pass@(k, T_eval) on bridge for every policy, with intervals",
    "05_pass_at_k/pass_curves.png": "Pass@(k, T) per category and policy (math at T = 0)",
    "05_pass_at_k/saturation.png": "Pass against the tool budget T (saturation depth)",
    "05_pass_at_k/boundary_table.png": "Boundary set differences per category: problems gained and lost, McNemar",
    "06_mechanism/perplexity_by_segment.png": "Base-model perplexity of query and reasoning tokens in successful "
    "trajectories",
    "06_mechanism/diversity_novelty.png": "Strategy diversity and novelty against base",
    "06_mechanism/swap_grid.png": "Plan / reasoner swap: success of each pairing",
}

VERDICT_CLASS = {v: "verdict-" + v.replace(" ", "-") for v in VERDICTS}
# Verdict colours (text on tint, each pair above 7:1 contrast) plus a mark and the word, so colour is never the
# only cue.
_CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",sans-serif;line-height:1.45;color:#1f2328;margin:0 auto;
 max-width:72em;padding:1.5em 2em 4em}
h1{font-size:1.7em;margin-top:0}h2{border-bottom:1px solid #d0d7de;padding-bottom:.2em;margin-top:2em}
a{color:#0550ae}
.table-wrap{overflow-x:auto;margin:1em 0}table{border-collapse:collapse;font-size:.9em}
th,td{border:1px solid #d0d7de;padding:.35em .6em;vertical-align:top;text-align:left}
table.in-summary td:nth-child(4){white-space:nowrap}
table.in-reported-numbers-next-to-ours{width:100%}
table.in-reported-numbers-next-to-ours td{min-width:5.5em;overflow-wrap:anywhere}
th{background:#f6f8fa}tbody tr:nth-child(even){background:#fbfcfd}
blockquote{margin:1em 0;padding:.2em 1em;border-left:4px solid #d0d7de;color:#424a53}
img{max-width:100%;height:auto;border:1px solid #eaeef2;display:block;margin:.5em 0 .2em}
.verdict{display:inline-block;white-space:nowrap;padding:.05em .5em;border-radius:.8em;font-weight:600;
 border:1px solid currentColor}
.verdict::before{margin-right:.3em}
.verdict-supported{color:#0f5323;background:#dafbe1}.verdict-supported::before{content:"\\2713"}
.verdict-contradicted{color:#8a1c12;background:#ffe1dc}.verdict-contradicted::before{content:"\\2717"}
.verdict-inconclusive{color:#5c3b00;background:#fff1c2}.verdict-inconclusive::before{content:"?"}
.verdict-not-evaluated{color:#32383f;background:#e6e9ed}.verdict-not-evaluated::before{content:"\\2013"}
"""


# ----------------------------------------------------------------------------- the audit and its links


@dataclass(frozen=True)
class Audit:
    """Everything the report shows: rows of ``claims.evaluate`` (``claims``), of ``paper_numbers.compare_reported``
    (``reported``), ``paper_numbers.calibrate`` (``calibration``: claim id -> verdict, explanation), the settings
    table, notes (one paragraph each) and the key figures ("<stage>/<file>.png", with .pdf and .csv beside it)."""

    profile: str
    claims: list[dict]
    reported: list[dict]
    settings: dict
    calibration: dict[int, dict] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    figures: list[str] = field(default_factory=list)
    depth: dict = field(default_factory=dict)  # :func:`depth_rows`: the boundary at depth (beyond the paper)
    study: str = "decisive"  # the settings of stages 02-07: "quick" (configs/quick.yaml) is flagged as not decisive


QUICK_BANNER = (
    "> **Quick profile: these verdicts are not decisive.** They come from the smaller settings of "
    "`configs/quick.yaml` (fewer rollouts per problem, one training replicate), kept for a fast look; the "
    "default study (`params.yaml`) is the one whose verdicts a reviewer should read."
)


def uncertainty_note(stats: dict) -> str:
    """One paragraph: which sources of variation the intervals include (from the stats' own metadata)."""
    s = int(stats.get("meta.n_replicates", 1) or 1)
    if s > 1:
        return (f"Uncertainty included: training seeds ({s} SFT and GRPO replicates from the one base model), problems "
                "and rollouts, by a two-level paired bootstrap (replicates, then problems; every policy sees the same "
                "draw). The exploration-bonus run and the mechanism statistics (stage 06) rest on the replicates "
                "listed per claim (column 'Uncertainty included').")
    return ("Uncertainty included: problems (paired bootstrap) and rollouts, for one training run per policy; "
            "training seeds are not included (column 'Uncertainty included' per claim).")


def save_audit(audit: Audit, path: str | Path) -> None:
    """The audit as JSON (what a later stage renders again with other links)."""
    Path(path).write_text(json.dumps(dataclasses.asdict(audit), indent=1, default=str) + "\n")


def load_audit(path: str | Path) -> Audit:
    d = json.loads(Path(path).read_text())
    d["calibration"] = {int(k): v for k, v in d.get("calibration", {}).items()}
    return Audit(**d)


@dataclass(frozen=True)
class Links:
    """Where the report's links point, relative to the folder the report is written to.

    figures: prefix of "<stage>/<file>" (a figure and its .pdf and .csv); notebooks: a stage's executed notebook,
    "{stage}" filled in."""

    figures: str
    notebooks: str

    def figure(self, rel: str) -> str:
        return self.figures + rel

    def notebook(self, stage: str) -> str:
        return self.notebooks.format(stage=stage)


# The report in figures/07_claims_audit/ (stage 07's output): figures where their stage wrote them, the executed
# notebooks in data/<stage>/.
STAGE_LINKS = Links(figures="../", notebooks="../../notebooks/{stage}.ipynb")  # resolves in figures/ and in results/figures/
# The report published as results/report.{md,html}: results/figures/<stage>/..., results/notebooks/<stage>.ipynb.
RESULTS_LINKS = Links(figures="figures/", notebooks="notebooks/{stage}.ipynb")


# ----------------------------------------------------------------------------- markdown


def _cell(x: object) -> str:
    """Text for markdown (a table cell or a paragraph): one line, with what markdown would read as markup
    backslash-escaped (pipes, emphasis and code marks, a link's "](", an HTML tag's "<"; an underscore only where it
    could open or close emphasis), so the text reads the same on GitHub and in the HTML page."""
    s = " ".join(("" if x is None else str(x)).split())
    s = re.sub(r"([\\|*`~])", r"\\\1", s)
    s = s.replace("](", "]\\(")  # no link: "[text](" is the only bracket markup in running text
    s = re.sub(r"<(?=[A-Za-z/!?])", r"\\<", s)  # no tag or autolink; "p < alpha" stays as written
    s = re.sub(r"&(?=#?\w+;)", r"\\&", s)  # no character reference: "&amp;" stays as written
    return re.sub(r"(?<!\w)_|_(?!\w)", r"\\_", s)


def _value_text(v: float | str | None, signed: bool = False) -> str:
    if v is None:
        return "–"
    return _cell(v) if isinstance(v, str) else fmt_number(v, signed)


def _interval_text(low: float | None, high: float | None, signed: bool = False) -> str:
    return "–" if low is None or high is None else fmt_interval(low, high, signed)


def _effect_text(r: dict) -> str:
    """Our effect with its interval, e.g. "+0.020 [-0.080, +0.120]" ("–" when not evaluated)."""
    if r["value"] is None:
        return "–"
    ci = _interval_text(r["ci_low"], r["ci_high"], True).replace(", ", ",\u00a0")  # the interval never wraps
    return _value_text(r["value"], True) + ("" if ci == "–" else " " + ci)


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    return lines + ["| " + " | ".join(r) + " |" for r in rows] + [""]


def slug(text: str) -> str:
    """A heading's anchor as GitHub makes it (lower case, punctuation other than - and _ dropped, spaces -> -);
    the HTML page gives its headings the same ids, so the contents links work in both."""
    return re.sub(r"[^\w\- ]", "", text.strip().lower()).replace(" ", "-")


def _claim_heading(r: dict) -> str:
    return f"Claim {r['id']}: {r.get('short') or r['statement']}"


def _calibration_text(c: dict | None) -> str:
    return "–" if c is None else f"{c['verdict']}: {c['explanation']}"


def _figure_block(rel: str, links: Links) -> list[str]:
    """A figure inline, its caption, and links to its PDF, the CSV of its numbers and the notebook that made it."""
    caption = CAPTIONS.get(rel, rel)
    base = links.figure(rel)[: -len(".png")] if rel.endswith(".png") else links.figure(rel)
    stage = rel.split("/")[0]
    return [
        f"![{_cell(caption)}]({links.figure(rel)})",
        "",
        f"*{_cell(caption)}* ({_cell(rel)}): [PDF]({base}.pdf) · [numbers (CSV)]({base}.csv) · "
        f"made by notebook [{stage}]({links.notebook(stage)})",
        "",
    ]


def render_markdown(audit: Audit, links: Links = STAGE_LINKS) -> str:
    """The audit report as markdown, every link relative to the folder ``links`` describes."""
    rows, cal = audit.claims, audit.calibration
    counts = ", ".join(f"{sum(r['verdict'] == v for r in rows)} {v}" for v in VERDICTS)
    key = set(audit.figures)
    out = [
        f"# {TITLE}",
        "",
        *([QUICK_BANNER, ""] if audit.study == "quick" else []),
        f"Produced by profile **{_cell(audit.profile)}**"
        + (" (a small synthetic testbed: the numbers describe it, not the paper's model)" if audit.profile != "paper"
           else "")
        + ". Each verdict comes from a rule with its margin fixed in advance; alpha = 1 - the pipeline's interval "
        "level (setting 'ci'). 'No effect' is only ever concluded from an equivalence test against the stated "
        "margin, never from an interval that contains 0.",
        "",
        f"Verdicts: {counts}.",
        "",
        "## Summary",
        "",
        *_table(
            ["#", "Claim", "Verdict", "Our effect [interval]", "What our effect is", "The paper's number",
             "Our rule on the paper's evidence"],
            [
                [
                    f"[{r['id']}](#{slug(_claim_heading(r))})",
                    _cell(r.get("short") or r["statement"]),
                    f"**{r['verdict']}**",
                    _effect_text(r),
                    _cell(r.get("effect", "")),
                    _cell(r["paper_evidence"]),
                    _cell(cal[r["id"]]["verdict"] if r["id"] in cal else "–"),
                ]
                for r in rows
            ],
        ),
        "## Contents",
        "",
        "- [Summary](#summary)",
        *[f"- [{_cell(_claim_heading(r))}](#{slug(_claim_heading(r))})" for r in rows],
        "- [Reported numbers next to ours](#reported-numbers-next-to-ours)",
        *([f"- [{DEPTH_TITLE}](#{slug(DEPTH_TITLE)})"] if audit.depth else []),
        "- [Other figures](#other-figures)",
        "- [Settings and notes](#settings-and-notes)",
        "",
    ]
    shown: dict[str, int] = {}
    for r in rows:
        out += _claim_section(r, cal.get(r["id"]), links, key, shown)
    out += [
        "## Reported numbers next to ours",
        "",
        "Every number from references/paper\\_numbers.yaml (value, unit, where in the paper, certainty). Boundary "
        "sizes are compared as shares of the problems (raw counts alongside); where our n differs, the paper's "
        "Pass@(64, T) is our Pass@(kmax, T) and diversity counts are at our n (column 'Ours at').",
        "",
        *_table(
            ["Quantity", "Paper", "Unit", "Where (paper)", "Certainty", "Ours", "Interval", "Paper in our interval",
             "Ours at", "Raw / alongside", "Computed as"],
            [
                [
                    _cell(r["quantity"]), _cell(r["paper"]), _cell(r["unit"]), _cell(r["where"]),
                    _cell(r["certainty"]), _cell(r["ours_text"]), _interval_text(r["ci_low"], r["ci_high"]),
                    {True: "yes", False: "no", None: "–"}[r["paper_in_ci"]], _cell(r["at"]), _cell(r["raw"]),
                    _cell(r["how"]),
                ]
                for r in audit.reported
            ],
        ),
    ]
    out += _depth_section(audit, links, shown)
    out += [
        "## Other figures",
        "",
    ]
    others = [rel for rel in audit.figures if rel not in shown]
    for rel in others:
        out += _figure_block(rel, links)
    if not others:
        out += ["Every key figure is shown under its claim.", ""]
    out += [
        "## Settings and notes",
        "",
        *_table(["setting", "value"], [[_cell(k), _cell(f"{v:g}" if isinstance(v, float) else v)]
                                       for k, v in audit.settings.items()]),
        *[x for note in audit.notes for x in (_cell(note), "")],
        "'Our rule on the paper's evidence': the same rule applied to the statistics the paper's own reported counts "
        "determine (boundary set differences of 100 problems); 'not computable' names what the paper does not "
        "report.",
        "",
    ]
    return "\n".join(out)


DEPTH_TITLE = "Boundary at depth (beyond the paper)"
DEPTH_FIGURE = "06_mechanism/boundary_depth.png"
CAPTIONS[DEPTH_FIGURE] = ("Pass@k on bridge measured to n, extrapolated to k = 1024 by the zero-inflated beta-binomial "
                          "fit, and what deep sampling found")
_DIRECTION = {"gained": "{a} solved within n, {b} never: does {b} solve it with more draws?",
              "lost": "{b} solved within n, {a} never: does {a} solve it with more draws?"}


def depth_rows(stats: Mapping[str, float]) -> dict:
    """What the report shows on the boundary at depth, read from the flat metrics (nothing computed here):
    {"n_deep", "deep": one row per (category, pair, direction) of the ``deep.*`` keys, "mass": one row per
    (category, policy) of the ``zibb.*`` keys}. Empty when the metrics carry neither."""
    deep, mass = [], []
    pat = re.compile(r"^deep\.(\w+)\.(\w+)_vs_(\w+)\.(gained|lost)\.candidates$")
    for k in sorted(stats):
        m = pat.match(k)
        if m:
            cat, a, b, d = m.groups()
            pre = k[: -len("candidates")]
            deep.append({"category": cat, "a": a, "b": b, "direction": d,
                         **{f: stats.get(pre + f) for f in ("candidates", "sampled", "solved_at_depth", "never",
                                                            "solved_share", "ci_low", "ci_high",
                                                            "median_first_success", "max_p_high_never")}})
    pat = re.compile(r"^zibb\.(\w+)\.(\w+)\.identified$")
    for k in sorted(stats):
        m = pat.match(k)
        if m:
            pre = k[: -len("identified")]
            far = sorted(x[len(pre) + 4:-4] for x in stats if x.startswith(pre + "pass") and x.endswith("_low"))
            kf = far[0] if far else ""
            mass.append({"category": m.group(1), "policy": m.group(2), "k_far": kf,
                         **{f: stats.get(pre + f) for f in ("pi0", "pi0_mle", "pi0_ci_low", "pi0_ci_high",
                                                            "identified", "excludes_zero", "zero_share")},
                         "pass_far": stats.get(f"{pre}pass{kf}"), "pass_far_low": stats.get(f"{pre}pass{kf}_low"),
                         "pass_far_high": stats.get(f"{pre}pass{kf}_high")})
    if not deep and not mass:
        return {}
    return {"n_deep": stats.get("deep.n_deep"), "deep": deep, "mass": mass}


def _mass_verdict(r: dict) -> str:
    if not r.get("identified"):
        return "not identified"
    return "identified (excludes 0)" if r.get("excludes_zero") else "upper bound only (0 not excluded)"


def _depth_section(audit: Audit, links: Links, shown: dict[str, int]) -> list[str]:
    """Deep sampling of the boundary candidates (per pair and direction) and the boundary mass (per policy)."""
    d = audit.depth
    if not d:
        return []
    out = [f"## {DEPTH_TITLE}", ""]
    if d.get("deep"):
        out += [
            f"Problems one policy solved at least once within n rollouts and the other never did (T = T_eval, headline "
            f"temperature) were sampled again from the policy that failed, up to {_cell(d.get('n_deep'))} more draws "
            "each, stopping at its first success. 'Solved at depth' counts the problems it then solved at least once; "
            "the share's interval (Wilson) treats these candidates as fixed; 'bound if never' is the loosest "
            "one-sided upper bound on the success probability of a problem never solved at depth.",
            "",
            *_table(["Category", "Pair", "Direction", "Candidates", "Solved at depth", "Never", "Share [interval]",
                     "Median first success", "Bound if never"],
                    [[_cell(r["category"]), _cell(f"{r['a']} vs {r['b']}"),
                      _cell(r["direction"] + ": " + _DIRECTION[r["direction"]].format(a=r["a"], b=r["b"])),
                      _value_text(r["candidates"]), f"{_value_text(r['solved_at_depth'])} of "
                      f"{_value_text(r['sampled'])}", _value_text(r["never"]),
                      "–" if r["solved_share"] is None else
                      _value_text(r["solved_share"]) + " " + _interval_text(r["ci_low"], r["ci_high"]),
                      _value_text(r["median_first_success"]), _value_text(r["max_p_high_never"])]
                     for r in d["deep"]]),
        ]
    if d.get("mass"):
        out += [
            "Boundary mass: the share pi0 of problems with success probability exactly 0 (no number of samples solves "
            "them), from a zero-inflated beta-binomial fit to the per-problem counts at n (T = T_eval; math T = 0), with "
            "its profile-likelihood interval, and Pass@k extrapolated far beyond n (a range where pi0 is not "
            "identified: the data cannot tell rarely solvable from unsolvable).",
            "",
            *_table(["Category", "Policy", "pi0 [interval]", "Verdict", "Share never solved at n", "Pass@k far [range]"],
                    [[_cell(r["category"]), _cell(r["policy"]),
                      _value_text(r["pi0"] if r.get("identified") else None) + " "
                      + _interval_text(r["pi0_ci_low"], r["pi0_ci_high"]), _mass_verdict(r),
                      _value_text(r["zero_share"]), f"k = {_cell(r['k_far'])}: " + _value_text(r["pass_far"]) + " "
                      + _interval_text(r["pass_far_low"], r["pass_far_high"])]
                     for r in d["mass"]]),
        ]
    if DEPTH_FIGURE in audit.figures and DEPTH_FIGURE not in shown:
        shown[DEPTH_FIGURE] = 0
        out += _figure_block(DEPTH_FIGURE, links)
    return out


def _claim_section(r: dict, cal: dict | None, links: Links, key: set[str], shown: dict[str, int]) -> list[str]:
    """One claim: the paper's statement, verdict and why, our effect, the paper's evidence, statistic, rule,
    then its figures (inline the first time a figure appears, linked after) and the notebook behind it."""
    stage = CLAIM_STAGE.get(r["id"])
    out = [
        f"## {_cell(_claim_heading(r))}",
        "",
        f"> {_cell(r['statement'])}",
        "",
        f"**{r['verdict']}**: {_cell(r['explanation'])}",
        "",
        f"- Ours: {_effect_text(r)}" + (f" ({_cell(r['effect'])})" if r.get("effect") else ""),
        f"- The paper: {_cell(r['paper_evidence'])}",
        f"- Our rule on the paper's evidence: {_cell(_calibration_text(cal))}",
        f"- Statistic: {_cell(r['statistic'])}",
        f"- Rule ({'amended after the results were known: its last sentence says how' if 'amended after' in r['rule'] else 'fixed in advance'}): {_cell(r['rule'])}",
        f"- Uncertainty included: {_cell(r.get('uncertainty') or '–')}",
        *([f"- What would decide it: {_cell(r['decision_gap'])}"] if r.get("decision_gap") else []),
    ]
    if stage:
        out.append(f"- Statistics computed by notebook [{stage}]({links.notebook(stage)})")
    out.append("")
    for rel in CLAIM_FIGURES.get(r["id"], ()):
        if rel not in key:
            continue
        if rel in shown:
            first = shown[rel]
            out += [f"Figure: [{_cell(CAPTIONS.get(rel, rel))}]({links.figure(rel)}) (shown under claim {first}).", ""]
        else:
            shown[rel] = r["id"]
            out += _figure_block(rel, links)
    return out


# ----------------------------------------------------------------------------- HTML


def _heading_ids(state) -> None:
    """Give each heading the id GitHub would (see :func:`slug`)."""
    toks = state.tokens
    for i, t in enumerate(toks):
        if t.type == "heading_open":
            text = "".join(c.content for c in toks[i + 1].children or () if c.type in ("text", "code_inline"))
            t.attrSet("id", slug(text))


def _table_classes(state) -> None:
    """Each table gets the class "in-<id of the section it is in>", for the stylesheet."""
    section = ""
    for t in state.tokens:
        if t.type == "heading_open":
            section = str(t.attrGet("id") or "")
        elif t.type == "table_open" and section:
            t.attrSet("class", "in-" + section)


def _verdict_classes(state) -> None:
    """**<verdict>** (bold text that is exactly one verdict) gets the classes the stylesheet colours."""
    for t in state.tokens:
        ch = t.children or []
        for a, b, c in zip(ch, ch[1:], ch[2:]):
            if a.type == "strong_open" and b.type == "text" and c.type == "strong_close" and b.content in VERDICT_CLASS:
                a.attrSet("class", "verdict " + VERDICT_CLASS[b.content])


def _table_open(self, tokens, idx, options, env) -> str:
    return '<div class="table-wrap">\n' + self.renderToken(tokens, idx, options, env)


def _table_close(self, tokens, idx, options, env) -> str:
    return self.renderToken(tokens, idx, options, env) + "</div>\n"


def markdown_parser() -> MarkdownIt:
    """CommonMark + tables, raw HTML off (every text is escaped), with heading ids and verdict classes; a wide
    table scrolls sideways in its own box instead of widening the page."""
    md = MarkdownIt("commonmark", {"html": False}).enable("table")
    md.core.ruler.push("heading_ids", _heading_ids)
    md.core.ruler.push("table_classes", _table_classes)
    md.core.ruler.push("verdict_classes", _verdict_classes)
    md.add_render_rule("table_open", _table_open)
    md.add_render_rule("table_close", _table_close)
    return md


def to_html(markdown_text: str, title: str = TITLE) -> str:
    """A standalone HTML page (embedded stylesheet, no scripts, nothing fetched) from the report's markdown."""
    body = markdown_parser().render(markdown_text)
    return (
        f'<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        f'<meta name="viewport" content="width=device-width, initial-scale=1">\n<title>{html.escape(title)}</title>\n'
        f"<style>{_CSS}</style>\n</head>\n<body>\n{body}</body>\n</html>\n"
    )


def render(audit: Audit, links: Links = STAGE_LINKS) -> tuple[str, str]:
    """The report as (markdown, HTML page), every link relative to the folder ``links`` describes."""
    md = render_markdown(audit, links)
    return md, to_html(md)


def link_targets(markdown_text: str) -> list[str]:
    """Every relative file a link or image in the markdown points at (anchors and absolute URLs left out)."""
    out: list[str] = []

    def walk(tokens) -> None:
        for t in tokens:
            target = t.attrGet("href") if t.type == "link_open" else t.attrGet("src") if t.type == "image" else None
            if target and not target.startswith("#") and not re.match(r"^[a-z][a-z0-9+.-]*:", target, re.I):
                out.append(str(target).split("#")[0])
            walk(t.children or ())

    walk(markdown_parser().parse(markdown_text))
    return list(dict.fromkeys(out))


def missing_links(markdown_text: str, report_dir: str | Path) -> list[str]:
    """The link targets that do not exist relative to ``report_dir`` (the folder the report is written to; ".."
    resolved as a browser does, by the path's text)."""
    return [t for t in link_targets(markdown_text) if not Path(os.path.normpath(Path(report_dir) / t)).exists()]


# ----------------------------------------------------------------------------- numbers for `dvc metrics`

HEADLINE_POLICIES = ("base", "sft", "rl")
HEADLINE_PAIRS = ("rl_vs_base", "sft_vs_base")


def _num(v: object) -> float | None:
    try:
        x = float(v)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None
    return x if math.isfinite(x) else None


def headline_metrics(audit: Audit, pass_metrics: Mapping[str, float]) -> dict[str, float | None]:
    """The numbers a reviewer compares between runs, flat: each claim's effect (``claim.<id>.effect``, the
    verdict's value), the count of each verdict (``verdicts.<verdict>``), bridge Pass@1 and Pass@kmax of base, SFT
    and RL at T_eval (``bridge.<policy>.pass1``, ``.pass_kmax``), the bridge boundary problems gained and lost
    (``bridge.<a>_vs_<b>.gained``, ``.lost``), the bridge RL - base Pass@kmax difference with its two-level interval
    and between-seed SD (``bridge.rl_vs_base.dpass_kmax*``), and the settings they are at (``meta.T_eval``,
    ``meta.n``, ``meta.n_replicates``).

    ``pass_metrics``: stage 05's metrics.json. The keys do not depend on the data; a value that is missing,
    NaN or not evaluated is None (JSON null)."""
    out: dict[str, float | None] = {}
    for cid in sorted(CLAIM_STAGE):
        r = next((r for r in audit.claims if r["id"] == cid), None)
        out[f"claim.{cid}.effect"] = None if r is None or isinstance(r["value"], str) else _num(r["value"])
    for v in VERDICTS:
        out[f"verdicts.{v.replace(' ', '_')}"] = float(sum(r["verdict"] == v for r in audit.claims))
    for pol in HEADLINE_POLICIES:
        out[f"bridge.{pol}.pass1"] = _num(pass_metrics.get(f"pass.bridge.{pol}.k1"))
        out[f"bridge.{pol}.pass_kmax"] = _num(pass_metrics.get(f"pass.bridge.{pol}.kmax"))
    for pair in HEADLINE_PAIRS:
        for part in ("gained", "lost"):
            out[f"bridge.{pair}.{part}"] = _num(pass_metrics.get(f"setdiff.bridge.{pair}.{part}"))
    d = "passdiff.bridge.rl_vs_base.kmax"  # the headline effect, its two-level interval and between-seed spread
    for part, key in (("", d), (".ci_low", d + ".ci_low"), (".ci_high", d + ".ci_high"), (".seed_sd", d + ".seed_sd")):
        out[f"bridge.rl_vs_base.dpass_kmax{part}"] = _num(pass_metrics.get(key))
    out["meta.T_eval"] = _num(pass_metrics.get("meta.T_eval"))
    out["meta.n"] = _num(pass_metrics.get("meta.n"))
    out["meta.n_replicates"] = _num(pass_metrics.get("meta.n_replicates"))
    return out


# ----------------------------------------------------------------------------- other outputs


def verdicts_json(claim_rows: list[dict]) -> dict:
    """For `dvc metrics`: claim id -> {verdict, value} (NaN/non-finite as null) and a count per verdict."""

    def clean(v: float | str | None) -> float | str | None:
        if isinstance(v, (int, float)):
            return float(v) if math.isfinite(v) else None
        return v

    claims = {str(r["id"]): {"verdict": r["verdict"], "value": clean(r["value"])} for r in claim_rows}
    counts = {v.replace(" ", "_"): sum(r["verdict"] == v for r in claim_rows) for v in VERDICTS}
    return {"claims": claims, "counts": counts}


def reward_scale_note(runs: dict[str, dict]) -> str:
    """One sentence per GRPO run (name -> its grpo_settings.json) on how the exploration bonus reaches the advantages.

    A run without ``scale_rewards`` in its settings predates the setting and used TRL's default, "group".
    """
    parts = []
    for name, s in sorted(runs.items()):
        scale, bonus = s.get("scale_rewards", "group"), float(s.get("bonus", 0.0))
        if bonus == 0:
            effect = "no bonus"
        elif scale == "none":
            effect = f"the bonus enters the advantages at its stated size {bonus:g} next to correctness's 1"
        elif scale == "batch":
            effect = f"both reward terms share one batch scale, so the bonus keeps its weight {bonus:g} : 1"
        else:
            effect = (f"each group is divided by its own standard deviation, so the {bonus:g} bonus is not kept at its "
                      "size (in a group with no correct answer it becomes a full-size advantage)")
        parts.append(f"{name}: scale_rewards = {scale!r}, bonus {bonus:g}: {effect}")
    if not parts:
        return "GRPO reward scaling: no training settings found."
    same = len({s.get("scale_rewards", "group") for s in runs.values()}) == 1
    return ("GRPO reward scaling (effective size of the exploration bonus): " + "; ".join(parts) + "."
            + ("" if same else " The runs differ in scaling: claim 7 compares more than the bonus."))
