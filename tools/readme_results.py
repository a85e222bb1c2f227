"""Write the generated blocks of README.md, docs/results.md and docs/wall_times.md from the pipeline's files.

    python tools/readme_results.py          # rewrite the blocks between the markers
    python tools/readme_results.py --check  # exit 1 if any file differs from what the results say

README.md gets the verdict table, docs/results.md the full tables, docs/wall_times.md the wall time per stage.

Reads the git-tracked copies the publish stage made of the last `dvc repro` (results/run_meta/, results/metrics/,
results/verdicts.json), so the check runs on a fresh clone.
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


def _units(stage: str, stems) -> list[tuple[str, str]]:
    """(label, run_meta stem) of a stage's units among ``stems``: one, or one per training replicate
    (``<stage>.r<i>``, replicate 0 being ``<stage>``); none when ``stems`` has no unit of the stage."""
    extra = sorted((t for t in stems if t.startswith(f"{stage}.r")), key=lambda t: int(t.split(".r")[-1]))
    if not extra:
        return [(stage, stage)] if stage in stems else []
    return [(f"{stage} (replicate 0)", stage)] * (stage in stems) + [
        (f"{stage} (replicate {t.split('.r')[-1]})", t) for t in extra]


def wall_block() -> str:
    rows, total = [], 0.0
    stems = {p.stem for p in (ROOT / "results/run_meta").glob("*.json")} | set(STAGES)  # every stage must have run
    for st in STAGES:
        for label, stem in _units(st, stems):
            m = _load(f"results/run_meta/{stem}.json")
            total += m["wall_s"]
            rows.append(f"| {label} | {_minutes(m['wall_s'])} | {m.get('end', '')[:16].replace('T', ' ')} |")
    return "\n".join(["| stage | wall time | finished (UTC) |", "|---|---|---|", *rows,
                      f"| **sum of the rows** (each unit's last run, not one run from scratch) | **{_minutes(total)}** | |"])


def quick_block() -> str:
    """The quick profile's wall time per stage (docs/data/quick/run.json, saved by tools/seed_runs.py save-quick)."""
    f = ROOT / "docs/data/quick/run.json"
    if not f.exists():
        return "The quick profile has not been timed yet (`python tools/seed_runs.py save-quick RUN_ROOT`)."
    run = json.loads(f.read_text())
    rows = [f"| {k} | {_minutes(v)} |" for k, v in run["wall_s"].items()]
    total = sum(run["wall_s"].values())
    return "\n".join([f"Quick profile (`make reproduce PROFILE=quick`, commit `{(run.get('commit') or 'unknown')[:7]}`; stages 00-01 reuse the "
                      "committed base model):", "", "| stage | wall time |", "|---|---|", *rows,
                      f"| **total** | **{_minutes(total)}** |", "",
                      "Its report's header: " + " ".join(run.get("report_header", [])).strip()])


def fresh_block() -> str:
    """A timed `make reproduce` from a fresh clone (docs/data/fresh_clone/run.json, tools/seed_runs.py save-fresh)."""
    f = ROOT / "docs/data/fresh_clone/run.json"
    if not f.exists():
        return "No `make reproduce` from a fresh clone has been timed yet (`python tools/seed_runs.py save-fresh`)."
    run = json.loads(f.read_text())
    units = [u for st in STAGES for u in _units(st, run["wall_s"])]
    units += [(k, k) for k in sorted(set(run["wall_s"]) - {stem for _, stem in units})]  # any other stage, last
    stages = sum(run["wall_s"].values())
    if run.get("span"):  # a run with units side by side (tools/repro_lanes.py): when each ran, and its threads
        from datetime import datetime

        t0 = min(datetime.fromisoformat(a) for a, _ in run["span"].values())

        def at(stem):
            a, b = (datetime.fromisoformat(x) for x in run["span"][stem])
            return f"{_minutes((a - t0).total_seconds())} – {_minutes((b - t0).total_seconds())}"

        # the previous timed run, kept as previous.json by save-fresh when a run of another commit replaced it
        prev_f = f.with_name("previous.json")
        prev = json.loads(prev_f.read_text()) if prev_f.exists() else None
        pw = (lambda stem: _minutes(prev["wall_s"][stem]) if stem in prev["wall_s"] else "–") if prev else None
        rows = [f"| {label} | {_minutes(run['wall_s'][stem])} | {run['threads'].get(stem) or '–'} | "
                f"{at(stem) if stem in run['span'] else '–'} |" + (f" {pw(stem)} |" if prev else "")
                for label, stem in units]
        end = max(datetime.fromisoformat(b) for _, b in run["span"].values())
        side = [k for k in run["span"] if k.startswith(("02_", "03_", "04_"))]
        def span_s(r: dict, keys) -> float | None:  # first start to last end of these units in run r
            spans = [r.get("span", {}).get(k) for k in keys]
            if not keys or any(s is None for s in spans):
                return None
            return (max(datetime.fromisoformat(b) for _, b in spans)
                    - min(datetime.fromisoformat(a) for a, _ in spans)).total_seconds()

        mid = span_s(run, side)
        prev_mid = span_s(prev, [k for k in prev["wall_s"] if k.startswith(("02_", "03_", "04_"))]) if prev else None
        prev_all = span_s(prev, list(prev["wall_s"])) if prev else None
        head = ["| stage | wall time | torch threads | from – to (after the first stage started) |"
                + (f" previous run (`{prev['commit'][:7]}`) |" if prev else ""),
                "|---|---|---|---|" + ("---|" if prev else ""), *rows,
                *([f"| **stages 02-04, first start to last end** | **{_minutes(mid)}** | | |"
                   + ((f" **{_minutes(prev_mid)}** |" if prev_mid is not None else
                       f" **{_minutes(sum(prev['wall_s'].get(k, 0) for k in side))}** (sum) |") if prev else "")]
                  if mid is not None else []),
                f"| **stages, one after another (sum)** | **{_minutes(stages)}** | | |"
                + (f" **{_minutes(sum(prev['wall_s'].values()))}** |" if prev else ""),
                f"| **stages, first start to last end** | **{_minutes((end - t0).total_seconds())}** | | |"
                + ((f" **{_minutes(prev_all)}** |" if prev_all is not None else
                    f" **{_minutes(sum(prev['wall_s'].values()))}** (sum) |") if prev else ""),
                f"| **`make reproduce`** (virtual environment, stages, README) | **{_minutes(run['make_reproduce_s'])}** | | |"
                + (f" **{_minutes(prev['make_reproduce_s'])}** |" if prev else "")]
    else:
        rows = [f"| {label} | {_minutes(run['wall_s'][stem])} |" for label, stem in units]
        head = ["| stage | wall time |", "|---|---|", *rows, f"| **stages** | **{_minutes(stages)}** |",
                f"| **`make reproduce`** (virtual environment, stages, README) | **{_minutes(run['make_reproduce_s'])}** |"]
    return "\n".join([f"`make reproduce` from a fresh clone of commit `{run['commit'][:7]}`"
                      + (" (dirty)" if run.get("dirty") else "") + ":", "", *head,
                      "", (f"Machine: {run['device']['cpu_count']} CPU cores"
                           + (f" ({run['cpu']})" if run.get("cpu") else "")
                           + f", {run['device']['torch_threads']} torch "
                           f"threads, CUDA {'yes' if run['device']['cuda'] else 'no'}. " if run.get("device") else "")
                      + ("Besides it on the machine: " + "; ".join(run["shared_cores"]) + "."
                         if run.get("shared_cores") else "Nothing else ran on the machine meanwhile."),
                      *_fresh_vs_committed(run)])


def _differ_text(name: str, columns: list[str] | None) -> str:
    return f"`{name}`" + (f" (column {', '.join(f'`{c}`' for c in columns)} only)" if columns else "")


def _fresh_vs_committed(run: dict) -> list[str]:
    """The sentence on how a fresh clone's results/ compared with the committed ones (seed_runs.compare_results)."""
    c = run.get("results_vs_committed")
    if not c:
        return []
    n = c["same"] + len(c["differ"])
    timing_only = lambda k: c.get("differ_columns", {}).get(k) == ["step_seconds"]  # noqa: E731 (GRPO step times)
    computed_other = not all(timing_only(k) for k in c["differ"])
    many = len(c["differ"]) > 8 and computed_other  # then the outcome, not the file list, says how far
    parts = [f"Its `results/` against the committed ones at `{(c['committed_commit'] or 'unknown')[:7]}`"
             + (" (with uncommitted changes)" if c.get("committed_results_dirty") else "") + ": "
             f"{c['same']} of {n} files byte for byte the same"
             + (f"; {len(c['differ'])} differ (listed in `docs/data/fresh_clone/run.json`)" if many else
                f"; differ: {', '.join(_differ_text(k, c.get('differ_columns', {}).get(k)) for k in c['differ'])}"
                if c["differ"] else "")
             + (f"; only in the fresh clone: {', '.join(f'`{k}`' for k in c['only_in_run'])}" if c["only_in_run"] else "")
             + (f"; only committed: {', '.join(f'`{k}`' for k in c['only_committed'])}" if c["only_committed"] else "")
             + f" (left out, as they record times and commits: {', '.join(f'`{k}`' for k in c['left_out'])})."]
    mine, theirs = run.get("outcome"), run.get("committed_outcome")
    if mine and theirs and computed_other:
        same = [k for k in theirs["verdicts"] if mine["verdicts"].get(k) == theirs["verdicts"][k]]
        moved = [f"claim {k}: {theirs['verdicts'].get(k, 'absent')} → {mine['verdicts'].get(k, 'absent')}"
                 for k in sorted(theirs["verdicts"].keys() | mine["verdicts"].keys(), key=str) if k not in same]
        iv = lambda x: f"{x[0]:+.3f} [{x[1]:+.3f}, {x[2]:+.3f}]"  # noqa: E731
        loss = lambda x: "none logged" if x is None else f"{x:.3f}"  # noqa: E731
        parts.append(
            "What it computed, against the committed run: last logged pretraining loss "
            f"{loss(mine['last_pretrain_loss'])} (committed {loss(theirs['last_pretrain_loss'])}); sanity bands met "
            f"{mine['bands_met'][0]} of {mine['bands_met'][1]} (committed {theirs['bands_met'][0]}); bridge RL − base "
            f"Pass@kmax {iv(mine['bridge_rl_vs_base'])} (committed {iv(theirs['bridge_rl_vs_base'])}); verdicts "
            + ("the same for every claim" if not moved else
               f"the same for {len(same)} of {len(theirs['verdicts'])} claims, moved: {'; '.join(moved)}") + ".")
    return [x for p in parts for x in ("", p)]


def _short(text: str, limit: int = 150) -> str:
    text = " ".join(str(text).split()).replace("|", "/")
    return text if len(text) <= limit else text[: limit - 1].rsplit(" ", 1)[0] + " …"


def verdict_block() -> str:
    import csv

    with open(ROOT / "results/figures/07_claims_audit/claims.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    bands = _load("results/metrics/sanity_bands.json")
    stats = _load("results/metrics/pass_at_k.json")
    ci = int(round(100 * float(stats.get("meta.ci", 0.95))))
    out = ["| # | claim of the paper | paper | ours [" + f"{ci}% interval]: what it is | verdict: why |",
           "|---|---|---|---|---|"]
    for r in rows:
        ours = _ours(r) + (f": {_short(r['effect'], 80)}" if r.get("effect") else "")
        out.append(f"| {r['id']} | {_short(r.get('short') or r['statement'])} | {_short(r['paper_evidence'], 110)} | {ours} | "
                   f"{_verdict_why(r['verdict'], r.get('explanation'), 300)} |")
    eighth = claim8_row()
    if eighth:
        out.append(eighth)
    gaps = [f"claim {r['id']}: {r['decision_gap']}" for r in rows if r.get("decision_gap")]
    if eighth and json.loads((ROOT / "sweep/results/verdict.json").read_text())["verdict"] == "inconclusive":
        gaps.append("claim 8: in its row")
    if gaps:
        out += ["", "Inconclusive, and what would decide them: " + "; ".join(gaps) + "."]
    if eighth:
        out += ["", "Claim 8 is ours, not the paper's: its rule was fixed before the support sweep ran, and it is "
                "decided by the sweep ([below](#beyond-the-paper-when-can-rl-expand-the-boundary); "
                "[`sweep/results/verdict.json`](sweep/results/verdict.json)), not by stage 07, so that `dvc repro` "
                "never runs the sweep."]
    n_ok = sum(b["ok"] for b in bands["bands"])
    S = int(stats.get("meta.n_replicates", 1))
    d = "passdiff.bridge.rl_vs_base.kmax"
    out += ["", f"The committed run: n = {int(stats['meta.n'])} rollouts per (problem, T), "
            f"{int(stats['meta.n_problems.bridge'])} problems per category, {S} training replicate{'s' if S > 1 else ''} "
            f"of SFT and GRPO, T = {int(stats['meta.T_eval'])}, temperature {stats['meta.temperature']}; intervals "
            + ("resample training replicates, then problems" if S > 1 else "resample problems") +
            f". Bridge RL − base Pass@{int(stats['meta.n'])}: {stats[d]:+.3f} [{stats[d + '.ci_low']:+.3f}, "
            f"{stats[d + '.ci_high']:+.3f}]" + (f", between-replicate SD {stats[d + '.seed_sd']:.3f} (range "
            f"{stats[d + '.seed_min']:+.3f} to {stats[d + '.seed_max']:+.3f})" if S > 1 else "") +
            f". The base model meets {n_ok} of its {len(bands['bands'])} sanity bands ([docs/results.md](docs/results.md))"
            + other_base_seeds() + "."]
    checks = sorted((ROOT / "results/metrics").glob("grpo_train_check*.json"))
    runs = []
    for f in checks:
        check, rep = json.loads(f.read_text()), (f.stem.split(".r")[1] if ".r" in f.stem else "0")
        for name, r in check.get("reward_plateau", {}).items():
            if "rise" in r:
                runs.append(f"{name} r{rep}: {r['steps']} steps, **{r['verdict']}** (rise over the last {r['window']} "
                            f"steps {r['rise']:+.2f}, one-sided bounds [{r['rise_low']:+.2f}, {r['rise_high']:+.2f}], "
                            f"margin {r['margin']})")
    if runs:
        out += ["", "GRPO training reward per run (a run stops at an epoch's end once its reward has plateaued by this "
                "test, else after `04_grpo.grpo.epochs`): " + "; ".join(runs)
                + " ([04_grpo](results/notebooks/04_grpo.ipynb))."]
    return "\n".join(out)


def results_block() -> str:
    bands = _load("results/metrics/sanity_bands.json")
    stats = _load("results/metrics/pass_at_k.json")
    verdicts = _load("results/verdicts.json")["claims"]
    n, T = int(stats["meta.n"]), int(stats["meta.T_eval"])
    out = [f"Base-policy sanity bands (stage 02, temperature {bands['temperature']}, T = {bands['T']}; "
           f"`results/metrics/sanity_bands.json`): "
           f"{sum(b['ok'] for b in bands['bands'])} of {len(bands['bands'])} in band.", "",
           "| band | value | allowed |", "|---|---|---|"]
    out += [f"| {b['band']} | {b['value']:.3f} | [{b['low']}, {b['high']}]{'' if b['ok'] else ' **missed**'} |"
            for b in bands["bands"]]
    out += ["", f"Pass@1 and Pass@{n} per category (T = {T} for comparison and bridge, T = 0 for math; temperature "
            f"{stats['meta.temperature']}; {int(round(100 * float(stats['meta.ci'])))}% two-level paired-bootstrap intervals "
            "(training replicates, then problems); "
            f"`results/metrics/pass_at_k.json`):", "",
            "| category | problems | " + " | ".join(f"{lab} Pass@1 · Pass@{n}" for _, lab in POLICIES) + " |",
            "|---|---|" + "---|" * len(POLICIES)]
    for cat in ("math", "comparison", "bridge"):
        cells = []
        for pol, _ in POLICIES:
            k1, km = stats.get(f"pass.{cat}.{pol}.k1"), stats.get(f"pass.{cat}.{pol}.kmax")
            lo, hi = stats.get(f"pass.{cat}.{pol}.kmax.ci_low"), stats.get(f"pass.{cat}.{pol}.kmax.ci_high")
            cells.append("–" if k1 is None else f"{k1:.3f} · {km:.2f} [{lo:.2f}, {hi:.2f}]")
        out.append(f"| {cat} | {int(stats[f'meta.n_problems.{cat}'])} | " + " | ".join(cells) + " |")
    out += ["", "Boundary changes against the base model (problems solved at least once in n; gained / lost, means "
            "over training replicates; net: its two-level interval, replicates then problems, which the claims' "
            "rules read with several replicates; p: exact sign-flip test of the per-problem net summed over the "
            "replicates, descriptive, which treats the replicates as fixed; McNemar's test for one replicate):", "",
            "| category | SFT vs base | RL vs base | RL + bonus vs base |", "|---|---|---|---|"]
    for cat in ("math", "comparison", "bridge"):
        cells = []
        for pair in ("sft_vs_base", "rl_vs_base", "rl_bonus_vs_base"):
            k = f"setdiff.{cat}.{pair}"
            cells.append("–" if f"{k}.gained" not in stats else
                         f"+{stats[k + '.gained']:.3g} / −{stats[k + '.lost']:.3g} (net {stats[k + '.net']:+.3g} "
                         f"[{stats[k + '.net_ci_low']:+.3g}, {stats[k + '.net_ci_high']:+.3g}]; p = {stats[k + '.net_p']:.2g})")
        out.append(f"| {cat} | " + " | ".join(cells) + " |")
    out += ["", "Verdicts of the audit (`results/report.md`; the rules are in `lib/passkt/claims.py`):",
            "", "| claim | ours | verdict |", "|---|---|---|"]
    for cid, v in sorted(verdicts.items(), key=lambda kv: int(kv[0])):
        value = f"{v['value']:.3g}" if isinstance(v["value"], float) else v["value"]
        out.append(f"| {cid} | {value} | {v['verdict']} |")
    return "\n".join(out)


def _claims_csv(path: Path) -> dict[str, dict]:
    import csv

    with path.open(newline="") as f:
        return {r["id"]: r for r in csv.DictReader(f)}


def other_base_seeds() -> str:
    """The sanity bands met at the other base seeds (tools/base_seed_bands.py), each flagged if its run no longer
    matches this checkout's stage 00-02 settings and code."""
    sys.path.insert(0, str(ROOT / "tools"))
    import base_seed_bands

    runs = [json.loads(f.read_text()) for f in sorted((ROOT / "docs/data").glob("base_seed_*.json"))]
    if not runs:
        return ""
    parts, locked = [], base_seed_bands.locked_inputs()  # dvc.lock read once for every seed file
    for r in sorted(runs, key=lambda r: r["base_seed"]):
        met = f"{sum(b['ok'] for b in r['bands']['bands'])} of {len(r['bands']['bands'])}"
        why = base_seed_bands.stale_reason(r, locked)
        parts.append(f"base seed {r['base_seed']}: {met}" + (f" (**stale**, {why})" if why else ""))
    return ("; at other base seeds: " + ", ".join(parts) +
            " ([per band](docs/base_model.md#the-papers-evaluation-protocol-2026-11-26))")


def base_model_hash(lock_path: Path) -> str | None:
    """The hash DVC recorded for stage 01's model folder in a dvc.lock: which base model a run's stages 02-07 used."""
    import yaml

    stage = yaml.safe_load(lock_path.read_text())["stages"].get("01_base_model", {})
    return next((o.get("md5") for o in stage.get("outs", []) if o["path"] == "data/01_base_model"), None)


BASE_MODEL_ID = ROOT / "docs/data/base_model_id.json"  # written by `python tools/seed_runs.py identify RUN_ROOT`


WEIGHT_FILES = "**/model*.safetensors"  # a model folder's weight files (save_pretrained's names)


def weights_md5(model_dir: Path) -> str | None:
    """md5 of a base model's weight files (:data:`WEIGHT_FILES`, in name order), or None without any. DVC's hash of
    the stage folder also covers its run metadata (times), so two runs that train the very same model never share
    it; the weights name the model itself."""
    import hashlib

    files = sorted(Path(model_dir).glob(WEIGHT_FILES))
    if not files:
        return None
    h = hashlib.md5()
    for f in files:
        h.update(f.read_bytes())
    return h.hexdigest()


def committed_base_model_id() -> dict | None:
    """``docs/data/base_model_id.json`` (the retrained folder and weights established as the committed base model)
    when it was established for the model ``dvc.lock`` names now, else None."""
    if not BASE_MODEL_ID.exists():
        return None
    known = json.loads(BASE_MODEL_ID.read_text())
    current = base_model_hash(ROOT / "dvc.lock")
    return known if current is not None and known.get("lock_md5") == current else None


def saved_seed_runs() -> tuple[dict[int, dict], dict[int, dict]]:
    """The runs saved by tools/seed_runs.py, split into those on the committed base model (comparable with the
    committed run) and those on another one (a stale comparison: stages 02-07 of the committed run sit on a
    different base model; they are listed, never compared). A run is on the committed model when its dvc.lock names
    the same model folder, or the retrained folder (or its weights) that ``seed_runs.py identify`` established as the
    committed model (:func:`committed_base_model_id`)."""
    current, known = base_model_hash(ROOT / "dvc.lock"), committed_base_model_id() or {}
    weights, retrained = known.get("weights_md5"), known.get("retrained_folder_md5")
    same, other = {}, {}
    for d in sorted((ROOT / "docs/data").glob("seed_*")):
        run = json.loads((d / "run.json").read_text())
        ok = current is not None and (run.get("base_model") == current or  # unknown on either side: not comparable
                                      (weights is not None and (run.get("base_model_weights") == weights
                                                                or run.get("base_model") == retrained)))
        (same if ok else other)[int(d.name.split("_")[1])] = run | {"dir": d}
    return same, other


def seed_runs() -> dict[int, tuple[dict, dict]]:
    """{seed: (claims rows, headline)}: the committed run and every saved run on the same base model."""
    import yaml

    seed = yaml.safe_load((ROOT / "params.yaml").read_text())["seed"]
    runs = {seed: (_claims_csv(ROOT / "results/figures/07_claims_audit/claims.csv"), _load("results/headline.json"))}
    for s, run in saved_seed_runs()[0].items():
        runs[s] = (_claims_csv(run["dir"] / "claims.csv"), json.loads((run["dir"] / "headline.json").read_text()))
    return dict(sorted(runs.items()))


def _stale_seed_runs() -> str:
    other = saved_seed_runs()[1]
    if not other:
        return ""
    return (" Not compared: " + ", ".join(f"seed {s} (commit {r['commit'][:7]})" for s, r in other.items())
            + ", run on another base model than the committed one (or one not recorded): rerun the study with that "
            "seed, then `python tools/seed_runs.py save RUN_ROOT` (where that checkout retrained the committed base "
            "model, first `python tools/seed_runs.py identify RUN_ROOT`).")


def _verdict_why(verdict: str, why: str | None, limit: int) -> str:
    """A verdict cell: the verdict in bold, then why it came out (shortened to ``limit`` characters)."""
    return f"**{verdict.replace('_', ' ')}**" + (f": {_short(why, limit)}" if why else "")


def _ours(r: dict) -> str:
    if r["value"] in ("", "nan"):
        return "–"
    out = f"{float(r['value']):.3g}"
    if r.get("ci_low") not in (None, "", "nan") and r.get("ci_high") not in (None, "", "nan"):
        out += f" [{float(r['ci_low']):.3g}, {float(r['ci_high']):.3g}]"
    return out


def seeds_block() -> str:
    runs = seed_runs()
    if len(runs) < 2:
        return ("No run with another seed on the committed base model is saved yet (`python tools/seed_runs.py save "
                "RUN_ROOT`)." + _stale_seed_runs())
    seeds = list(runs)
    ids = list(runs[seeds[0]][0])
    out = ["| # | claim | " + " | ".join(f"seed {s}: ours · verdict" for s in seeds) + " | same verdict |",
           "|---|---|" + "---|" * len(seeds) + "---|"]
    same = []
    for cid in ids:
        rows = [runs[s][0].get(cid) for s in seeds]
        verdicts = {r["verdict"] if r else None for r in rows}
        same.append(len(verdicts) == 1)
        cells = [f"{_ours(r)} · **{r['verdict'].replace('_', ' ')}**" if r else "–" for r in rows]
        out.append(f"| {cid} | {_short(rows[0].get('short') or rows[0]['statement'], 70)} | " + " | ".join(cells)
                   + f" | {'yes' if same[-1] else '**no**'} |")
    k = "bridge.rl_vs_base.dpass_kmax"
    saved = saved_seed_runs()[0]
    out += ["", "Code: " + "; ".join(f"seed {s} ran commit {r['commit'][:7]}" for s, r in saved.items())
            + "; the committed seed, the commit in `results/run_meta/`. Every run shown used the committed base model "
            "(the `01_base_model` hash in `dvc.lock`, or a retraining shown equal to it: "
            "`docs/data/base_model_id.json`)." + _stale_seed_runs()]
    out += ["", f"{sum(same)} of {len(ids)} verdicts are the same at every seed. Bridge RL − base Pass@kmax: "
            + "; ".join(f"seed {s} {h[k]:+.3f} [{h[k + '.ci_low']:+.3f}, {h[k + '.ci_high']:+.3f}]"
                        for s, (_, h) in runs.items()) + "."]
    return "\n".join(out)


def seeds_line() -> str:
    runs = seed_runs()
    if len(runs) < 2:
        return "Not yet rerun with another seed on the committed base model." + _stale_seed_runs()
    ids = list(next(iter(runs.values()))[0])
    moved = [cid for cid in ids if len({r[0][cid]["verdict"] if cid in r[0] else None for r in runs.values()}) > 1]
    changes = "; ".join(f"claim {cid}: " + " / ".join(f"{r[0][cid]['verdict'].replace('_', ' ')} at seed {s}"
                                                       for s, r in runs.items() if cid in r[0]) for cid in moved)
    return (f"**Rerun with seed{'s' if len(runs) > 2 else ''} {', '.join(str(s) for s in list(runs)[1:])}** (new "
            f"sampling seeds and new SFT and GRPO training replicates; same world and base model): "
            f"{len(ids) - len(moved)} of {len(ids)} verdicts unchanged" + (f"; {changes}" if moved else "")
            + " ([side by side](docs/results.md#another-seed))." + _stale_seed_runs())


def claim8_row() -> str:
    """The audit table's eighth row, from the support sweep's summary once it is current (else nothing): the effect
    the rule found open or decisive at zero support, and the expansion at supported points."""
    import csv

    res = ROOT / "sweep/results"
    if not (res / "verdict.json").exists() or "summary" not in _current_units(sweep_lock()):
        return ""
    v = json.loads((res / "verdict.json").read_text())
    with open(res / "points.csv", newline="") as f:
        pts = list(csv.DictReader(f))
    zero = [r for r in pts if int(r["chains"]) == 0]
    supp = [r for r in pts if int(r["chains"]) > 0]
    parts = []
    if zero:
        worst = max(zero, key=lambda r: float(r["E_tost_high"]))
        parts.append(f"zero support: largest one-sided bound of RL − base {float(worst['E_tost_high']):+.3f} (prior "
                     f"{float(worst['chain']):g}; margin {v['margin']})")
    if supp:
        best = max(supp, key=lambda r: float(r["E_ci_low"]))
        parts.append(f"supported: RL − base {float(best['E']):+.3f} [{float(best['E_ci_low']):+.3f}, "
                     f"{float(best['E_ci_high']):+.3f}] (prior {float(best['chain']):g})")
    return (f"| 8 | (ours) {_short(v['statement'])} | not in the paper | {'; '.join(parts)} | "
            f"{_verdict_why(v['verdict'], v.get('why'), 600)} |")  # 600: whole, it carries the sweep's decision gap


def sweep_block() -> str:
    """Claim 8 and the support sweep: the verdict and each point once the sweep has finished and its summary is
    current with the code and settings (sweep/results/, sweep/dvc.lock), else how many of its units are."""
    import csv

    import yaml

    from passkt.paths import REPLICATED
    from passkt.sweep import POINT_STAGES

    sp = yaml.safe_load((ROOT / "sweep/params.yaml").read_text())
    lock = sweep_lock()
    current = _current_units(lock)
    res = ROOT / "sweep/results"
    if (res / "verdict.json").exists() and "summary" in current:
        v = json.loads((res / "verdict.json").read_text())
        with open(res / "points.csv", newline="") as f:
            pts = list(csv.DictReader(f))
        iv = lambda r, t: f"{float(r[t]):+.3f} [{float(r[t + '_ci_low']):+.3f}, {float(r[t + '_ci_high']):+.3f}]"  # noqa: E731
        rows = ["| prior chain share | base's measured support (gold-chain episodes) | Pass@64 base / SFT / RL "
                "| RL − base [95%] | SFT − base [95%] | RL's gained problems: with a chain base also wrote / won "
                "without a two-hop chain / all |", "|---|---|---|---|---|---|"]
        for r in pts:
            rows.append(
                f"| {float(r['chain']):g}{' (default study)' if r['default_study'] == 'True' else ''} "
                f"| {float(r['support']):.4f} ({int(r['chains'])} of {int(r['episodes']):,}) "
                f"| {float(r['pass64_base']):.2f} / {float(r['pass64_sft']):.2f} / {float(r['pass64_rl']):.2f} "
                f"| {iv(r, 'E')} | {iv(r, 'E_sft')} | {int(r['rl_gained_with_base_chain'])} / "
                f"{int(r['rl_gained_without_chain'])} / {int(r['rl_gained_total'])} |")
        wall = ""
        if (res / "wall_times.csv").exists():
            with open(res / "wall_times.csv", newline="") as f:
                w = [float(r["wall_s"]) for r in csv.DictReader(f)]
            wall = (f" The last runs of the sweep's {len(w)} units took {sum(w) / 3600:.1f} h of wall time on this "
                    "2-core machine, run by run ([per unit](sweep/results/wall_times.csv)); a unit rerun after a "
                    "settings change that reused its finished models and rollouts shows the time of that reuse "
                    "([support_sweep.md](docs/support_sweep.md)).")
        reps = int(float(pts[0]["n_replicates"]))
        return (f"**Claim 8 (ours): {v['statement']}** Verdict: **{v['verdict']}** — {v['why']}.\n\n"
                + "\n".join(rows) + f"\n\nBridge at T = {sp['08_support_sweep']['T_eval']}; gained problems summed "
                f"over the {reps} training replicates; intervals resample replicates, then problems.{wall}\n\n"
                "![support sweep](sweep/results/support_sweep.png)")
    points = [str(c) for c in sp["points"]]
    reps = yaml.safe_load((ROOT / "params.yaml").read_text())["replicates"]
    units = {c: [f"{s}@{c}" for s in POINT_STAGES if s not in REPLICATED]
             + [f"{s}@{c}-{r}" for r in reps for s in REPLICATED] for c in points}
    n_all = sum(len(u) for u in units.values())
    n_done = sum(len(set(u) & current) for u in units.values())
    per = "; ".join(f"prior {c}: {len(set(u) & current)} of {len(u)}" for c, u in units.items())
    return (f"**Claim 8 (ours), not decided yet: the sweep has not finished.** {n_done} of {n_all} point units "
            f"have run on the current code and settings (`sweep/dvc.lock`; {per}); `make sweep` resumes it. The "
            "verdict and the figure appear here when every point has run.")


def sweep_lock() -> dict:
    import yaml

    lock = ROOT / "sweep/dvc.lock"
    return yaml.safe_load(lock.read_text()).get("stages", {}) if lock.exists() else {}


def _current_units(lock: dict) -> set[str]:
    """sweep/dvc.lock entries whose git-tracked deps (code, notebooks) and params equal the checkout's, whose
    upstream units (whose outputs they read) are current and produced what they read, and whose reads of the default
    study's outputs are what the committed dvc.lock records (``tools/lock_chain.py``: exact where the DVC cache is
    here, by size and file count or not at all where it is not)."""
    import hashlib

    import yaml

    if str(Path(__file__).resolve().parent) not in sys.path:
        sys.path.insert(0, str(Path(__file__).resolve().parent))
    import lock_chain

    produced = lock_chain.outputs(lock)
    main_lock = ROOT / "dvc.lock"
    study_lock = yaml.safe_load(main_lock.read_text()).get("stages", {}) if main_lock.exists() else {}
    study, seen = lock_chain.outputs(study_lock), lock_chain.reads(study_lock)
    cache = lock_chain.cache_dir(ROOT)
    files: dict[str, dict] = {}
    memo: dict[str, bool] = {}

    def own(entry: dict, deps: list[dict]) -> bool:
        """``deps``: the entry's deps no sweep unit wrote; then its params."""
        for d in deps:
            if (r := lock_chain.read_latest(d, study, cache, seen)) is not None:  # the default study's outputs
                if not r[0]:
                    return False
                continue
            if d["path"].startswith("sweep/points/"):
                return False  # a point's file no sweep unit wrote
            path = ROOT / d["path"]
            if not path.is_file() or hashlib.md5(path.read_bytes()).hexdigest() != d.get("md5"):
                return False
        for fname, values in entry.get("params", {}).items():
            current = files.setdefault(fname, yaml.safe_load((ROOT / fname).read_text()))
            for key, value in values.items():
                node = current
                for part in key.split("."):
                    node = node.get(part) if isinstance(node, dict) else None
                if node != value:
                    return False
        return True

    def ok(u: str) -> bool:
        if u not in memo:
            memo[u] = False  # no cycles in a DVC graph; guards against a malformed lock
            upstream, rest = [], []  # reads of sweep units' outputs (checked with those units), everything else
            for d in lock[u].get("deps", []):
                r = lock_chain.read_latest(d, produced, cache)
                (rest if r is None else upstream).append(r or d)
            memo[u] = own(lock[u], rest) and all(r[0] and all(ok(v) for v in r[1]) for r in upstream)
        return memo[u]

    return {u for u in lock if ok(u)}


# file -> (block name, generator)
TARGETS = {"README.md": (("results", verdict_block), ("seeds", seeds_line), ("sweep", sweep_block)),
           "docs/results.md": (("results", results_block), ("seeds", seeds_block)),
           "docs/wall_times.md": (("walltime", wall_block), ("fresh", fresh_block), ("quick", quick_block))}


def render(text: str, blocks, where: str = "README.md") -> str:
    for name, make in blocks:
        pat = re.compile(rf"(<!-- {name}:begin[^>]*-->\n)(?:.*?\n)?(<!-- {name}:end -->)", re.S)
        if not pat.search(text):
            raise SystemExit(f"{where} has no <!-- {name}:begin --> … <!-- {name}:end --> block")
        block = make()
        text = pat.sub(lambda m, b=block: m.group(1) + b + "\n" + m.group(2), text)
    return text


def main(argv: list[str]) -> int:
    stale = []
    for rel, blocks in TARGETS.items():
        path = ROOT / rel
        old = path.read_text()
        new = render(old, blocks, rel)
        if new != old:
            stale.append(rel)
            if "--check" not in argv:
                path.write_text(new)
    if "--check" in argv:
        if stale:
            print(f"{', '.join(stale)}: generated blocks differ from results/: run python tools/readme_results.py")
            return 1
        return 0
    print(f"written: {', '.join(stale)}" if stale else "already up to date")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
