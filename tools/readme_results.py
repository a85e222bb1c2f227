"""Write the README's results and wall-time blocks from the pipeline's own files (never typed by hand).

    python tools/readme_results.py          # rewrite the blocks between the markers in README.md
    python tools/readme_results.py --check  # exit 1 if README.md differs from what the files say

Reads data/<stage>/run_meta.json, data/02_base_rollouts/sanity_bands.json, data/05_pass_at_k/metrics.json and
figures/07_claims_audit/verdicts.json of the last `dvc repro`.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
STAGES = ("00_data_prep", "01_base_model", "02_base_rollouts", "03_sft", "04_grpo", "05_pass_at_k", "06_mechanism",
          "07_claims_audit")
POLICIES = (("base", "base"), ("sft", "SFT"), ("rl", "RL"), ("rl_bonus", "RL + bonus"))


def _load(rel: str) -> dict:
    return json.loads((ROOT / rel).read_text())


def _minutes(s: float) -> str:
    return f"{s:.0f} s" if s < 90 else f"{s / 60:.1f} min"


def wall_block() -> str:
    rows, total = [], 0.0
    for st in STAGES:
        m = _load(f"data/{st}/run_meta.json")
        total += m["wall_s"]
        rows.append(f"| {st} | {_minutes(m['wall_s'])} | {m.get('end', '')[:16].replace('T', ' ')} |")
    return "\n".join(["| stage | wall time | finished (UTC) |", "|---|---|---|", *rows,
                      f"| **total** | **{_minutes(total)}** | |"])


def results_block() -> str:
    bands = _load("data/02_base_rollouts/sanity_bands.json")
    stats = _load("data/05_pass_at_k/metrics.json")
    verdicts = _load("figures/07_claims_audit/verdicts.json")["claims"]
    n, T = int(stats["meta.n"]), int(stats["meta.T_eval"])
    out = [f"Base-policy sanity bands (stage 02, temperature {bands['temperature']}, T = {bands['T']}; "
           f"`data/02_base_rollouts/sanity_bands.json`): "
           f"{sum(b['ok'] for b in bands['bands'])} of {len(bands['bands'])} in band.", "",
           "| band | value | allowed |", "|---|---|---|"]
    out += [f"| {b['band']} | {b['value']:.3f} | [{b['low']}, {b['high']}]{'' if b['ok'] else ' **missed**'} |"
            for b in bands["bands"]]
    out += ["", f"Pass@1 and Pass@{n} per category (T = {T} for comparison and bridge, T = 0 for math; temperature "
            f"{stats['meta.temperature']}; 95% paired-bootstrap intervals over problems; "
            f"`data/05_pass_at_k/metrics.json`):", "",
            "| category | problems | " + " | ".join(f"{lab} Pass@1 · Pass@{n}" for _, lab in POLICIES) + " |",
            "|---|---|" + "---|" * len(POLICIES)]
    for cat in ("math", "comparison", "bridge"):
        cells = []
        for pol, _ in POLICIES:
            k1, km = stats.get(f"pass.{cat}.{pol}.k1"), stats.get(f"pass.{cat}.{pol}.kmax")
            lo, hi = stats.get(f"pass.{cat}.{pol}.kmax.ci_low"), stats.get(f"pass.{cat}.{pol}.kmax.ci_high")
            cells.append("–" if k1 is None else f"{k1:.3f} · {km:.2f} [{lo:.2f}, {hi:.2f}]")
        out.append(f"| {cat} | {int(stats[f'meta.n_problems.{cat}'])} | " + " | ".join(cells) + " |")
    out += ["", "Boundary changes against the base model (problems solved at least once in n; gained / lost, exact "
            "McNemar p):", "", "| category | SFT vs base | RL vs base | RL + bonus vs base |", "|---|---|---|---|"]
    for cat in ("math", "comparison", "bridge"):
        cells = []
        for pair in ("sft_vs_base", "rl_vs_base", "rl_bonus_vs_base"):
            k = f"setdiff.{cat}.{pair}"
            cells.append("–" if f"{k}.gained" not in stats else
                         f"+{int(stats[k + '.gained'])} / −{int(stats[k + '.lost'])} (p = {stats[k + '.mcnemar_p']:.2g})")
        out.append(f"| {cat} | " + " | ".join(cells) + " |")
    out += ["", "Verdicts of the audit (`figures/07_claims_audit/report.md`; the rules are in `lib/passkt/claims.py`):",
            "", "| claim | ours | verdict |", "|---|---|---|"]
    for cid, v in sorted(verdicts.items(), key=lambda kv: int(kv[0])):
        value = f"{v['value']:.3g}" if isinstance(v["value"], float) else v["value"]
        out.append(f"| {cid} | {value} | {v['verdict']} |")
    return "\n".join(out)


def render(text: str) -> str:
    for name, block in (("results", results_block()), ("walltime", wall_block())):
        pat = re.compile(rf"(<!-- {name}:begin[^>]*-->\n)(?:.*?\n)?(<!-- {name}:end -->)", re.S)
        if not pat.search(text):
            raise SystemExit(f"README.md has no <!-- {name}:begin --> … <!-- {name}:end --> block")
        text = pat.sub(lambda m, b=block: m.group(1) + b + "\n" + m.group(2), text)
    return text


def main(argv: list[str]) -> int:
    readme = ROOT / "README.md"
    old = readme.read_text()
    new = render(old)
    if "--check" in argv:
        if new != old:
            print("README.md results differ from the pipeline's files: run python tools/readme_results.py")
            return 1
        return 0
    readme.write_text(new)
    print("README.md results and wall times written" if new != old else "README.md already up to date")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
