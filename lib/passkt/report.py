"""The claims audit report (stage 07): markdown with the verdict table (and the calibration column), the paper's
numbers next to ours, the settings the verdicts rest on, figures; a standalone HTML page; verdicts for `dvc metrics`.

Pure rendering: rows come from ``claims.evaluate``, ``paper_numbers.compare_reported`` and
``paper_numbers.calibrate``; nothing here computes a statistic.
"""

from __future__ import annotations

import html
import math
import re

from passkt.claims import VERDICTS, fmt_interval, fmt_number


def _cell(x: object) -> str:
    """Markdown table cell text: backslash-escape the characters our converter (and GitHub) treat specially."""
    s = "" if x is None else str(x)
    s = s.replace("\\", "\\\\").replace("|", "\\|").replace("*", "\\*")
    return " ".join(s.split())


def _value_text(v: float | str | None) -> str:
    if v is None:
        return "–"
    return v if isinstance(v, str) else fmt_number(v, False)


def _interval_text(low: float | None, high: float | None) -> str:
    return "–" if low is None or high is None else fmt_interval(low, high)


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    return lines + ["| " + " | ".join(r) + " |" for r in rows]


def render_markdown(
    claim_rows: list[dict],
    reported_rows: list[dict],
    profile: str,
    settings: dict,
    figures: list[tuple[str, str]],
    calibration: dict[int, dict] | None = None,
    notes: list[str] = (),
) -> str:
    """The audit report as markdown: header (profile, settings, notes), the claims table with our verdict and,
    where given, our rule's verdict on the paper's own evidence, the paper's numbers next to ours, figures."""
    calibration = calibration or {}
    out = [
        "# Claims audit: Pass@(k,T) reproduction of arXiv 2604.14877",
        "",
        f"Produced by profile **{_cell(profile)}**. Verdicts are computed by the rules below, each with its margin "
        "fixed in advance; alpha = 1 - the pipeline's interval level (setting 'ci'). 'No effect' is only ever "
        "concluded from an equivalence test against the stated margin, never from an interval that contains 0.",
        "",
        *[_cell(n) for note in notes for n in (note, "")],
        "## Settings",
        "",
        *_table(["setting", "value"], [[_cell(k), _cell(v)] for k, v in settings.items()]),
        "",
        "## Claims",
        "",
        "Column 'Paper's evidence, our rule': the same rule applied to the statistics the paper's own reported "
        "counts determine (boundary set differences of 100 problems); 'not computable' names what the paper does "
        "not report.",
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
                "Uncertainty included",
                "Paper's evidence, our rule",
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
                    _cell(r.get("uncertainty", "")),
                    _cell(_calibration_text(calibration.get(r["id"]))),
                ]
                for r in claim_rows
            ],
        ),
        "",
        "## Reported numbers",
        "",
        "Every number from references/paper_numbers.yaml (value, unit, where in the paper, certainty). Boundary "
        "sizes are compared as shares of the problems (raw counts alongside); where our n differs, the paper's "
        "Pass@(64, T) is our Pass@(kmax, T) and diversity counts are at our n (column 'Ours at').",
        "",
        *_table(
            [
                "Quantity",
                "Paper",
                "Unit",
                "Where (paper)",
                "Certainty",
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
                    _cell(r["unit"]),
                    _cell(r["where"]),
                    _cell(r["certainty"]),
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


def _calibration_text(c: dict | None) -> str:
    return "–" if c is None else f"{c['verdict']}: {c['explanation']}"


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
