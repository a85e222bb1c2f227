"""Another seed's whole study next to the committed one: do the verdicts survive a reseed?

    python tools/seed_runs.py save RUN_ROOT         # keep a finished run's results in docs/data/seed_<s>/
    python tools/seed_runs.py save-quick RUN_ROOT   # keep a finished quick-profile run's wall times in docs/data/quick/
    python tools/seed_runs.py save-fresh RUN_ROOT TIME_LOG  # a fresh clone's timed `make reproduce`: docs/data/fresh_clone/
    python tools/seed_runs.py identify RUN_ROOT     # RUN_ROOT retrained the committed base model: record its weights
    python tools/readme_results.py            # then redraw the side-by-side table (docs/results.md, README)
    python tools/base_seed_bands.py --report  # and the reseed bands table (docs/base_model.md)

RUN_ROOT is a checkout that ran `dvc repro` with another ``seed`` (stages 02-07: sampling seeds and every SFT and
GRPO training replicate are new; the world and the base model, ``base_seed``, are the committed ones). The copy
keeps what the comparison reads: the verdicts, the headline numbers and the claims table with intervals
(``results/``), plus the run's seed, commit and wall times. Nothing is recomputed here.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import shutil
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "docs" / "data"
FILES = ("verdicts.json", "headline.json", "figures/07_claims_audit/claims.csv", "metrics/per_replicate.csv",
         "metrics/sanity_bands.json")  # the base model's bands at this run's sampling seed


def save(run_root: Path) -> Path:
    params = yaml.safe_load((run_root / "params.yaml").read_text())
    seed = params["seed"]
    committed = yaml.safe_load((ROOT / "params.yaml").read_text())["seed"]
    if seed == committed:
        raise SystemExit(f"{run_root}: seed {seed} is the committed run's own seed")
    dst = OUT / f"seed_{seed}"
    dst.mkdir(parents=True, exist_ok=True)
    for rel in FILES:
        if rel == FILES[-1] and not (run_root / "results" / rel).exists():
            continue  # runs from before the bands were published
        shutil.copy(run_root / "results" / rel, dst / Path(rel).name)
    metas = {m.stem: json.loads(m.read_text()) for m in sorted((run_root / "results" / "run_meta").glob("*.json"))}
    ran = {k: m for k, m in metas.items() if m.get("seed") == seed}  # stages 00-01 are the shared base model's
    last = metas["07_claims_audit"]
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from readme_results import base_model_hash, weights_md5

    run = {"seed": seed, "base_seed": params["base_seed"], "commit": last["git"]["commit"],
           "base_model": base_model_hash(run_root / "dvc.lock"),  # the model its stages 02-07 sampled and trained
           "base_model_weights": weights_md5(run_root / "data/01_base_model"),
           "dirty": last["git"].get("dirty"),  # a run with another seed has params.yaml changed, by design
           "wall_s": {k: m["wall_s"] for k, m in ran.items()}}
    (dst / "run.json").write_text(json.dumps(run, indent=1, sort_keys=True) + "\n")
    return dst


def save_quick(run_root: Path) -> Path:
    """The quick profile's run (configs/quick.yaml, reusing the committed base model): its wall time per stage,
    its verdicts and its report's header, for the generated table in docs/wall_times.md."""
    params = yaml.safe_load((run_root / "params.yaml").read_text())
    if params.get("study") != "quick":
        raise SystemExit(f"{run_root}: params.yaml is not the quick profile (study: {params.get('study')!r})")
    dst = OUT / "quick"
    dst.mkdir(parents=True, exist_ok=True)
    shutil.copy(run_root / "results" / "verdicts.json", dst / "verdicts.json")
    metas = {m.stem: json.loads(m.read_text()) for m in sorted((run_root / "results" / "run_meta").glob("*.json"))}
    ran = {k: m for k, m in metas.items() if not k.startswith(("00_", "01_"))}  # 00-01: the shared base model's
    report = (run_root / "results" / "report.md").read_text().splitlines()
    run = {"study": "quick", "commit": metas["07_claims_audit"]["git"]["commit"],
           "wall_s": {k: m["wall_s"] for k, m in ran.items()},
           "report_header": [ln for ln in report[:12] if "decisive" in ln.lower()]}
    (dst / "run.json").write_text(json.dumps(run, indent=1, sort_keys=True) + "\n")
    return dst


def _elapsed_s(time_log: str) -> float | None:
    """`/usr/bin/time -v`'s "Elapsed (wall clock) time" ([h:]mm:ss[.ss]) in seconds, or None if absent."""
    for line in time_log.splitlines():
        if "Elapsed (wall clock) time" in line:
            parts = [float(x) for x in line.rsplit(" ", 1)[-1].split(":")]
            return sum(v * 60 ** i for i, v in enumerate(reversed(parts)))
    return None


def training_seconds(run_root: Path) -> dict[str, float]:
    """Seconds a run spent in optimiser steps, by stage unit (the keys of ``wall_s``): stage 01's pretraining (its
    model card) and each GRPO unit's training steps (``step_seconds`` summed over its runs' logs). What a faster step
    can save is a share of these, not of the whole stage."""
    import pandas as pd

    out = {}
    card = run_root / "data/01_base_model/model_card.json"
    if card.exists():
        out["01_base_model"] = round(json.loads(card.read_text())["train_seconds"], 2)
    for unit in sorted((run_root / "data/04_grpo").glob("r*")):
        logs = list(unit.glob("*/train_log.csv"))
        if logs:
            key = "04_grpo" if unit.name == "r0" else f"04_grpo.{unit.name}"
            out[key] = round(float(sum(pd.read_csv(f)["step_seconds"].sum() for f in logs)), 2)
    return out


TIMED = ("run_meta/", "notebooks/", "MANIFEST.json")  # results/ files that hold times or commits: never compared


def compare_results(run_root: Path) -> dict:
    """Every file of ``run_root``'s ``results/`` against this checkout's, byte for byte, leaving out :data:`TIMED`
    (run metadata, executed notebooks and the manifest of both, which record times and commits): how many are the
    same, which differ and which only one side has, with this checkout's commit (what "committed" meant)."""
    import subprocess

    def listing(root: Path) -> dict[str, str]:
        base = root / "results"
        return {str(f.relative_to(base)): hashlib.md5(f.read_bytes()).hexdigest() for f in sorted(base.rglob("*"))
                if f.is_file() and not str(f.relative_to(base)).startswith(TIMED)}

    theirs, mine = listing(run_root), listing(ROOT)
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True).stdout.strip()
    dirty = subprocess.run(["git", "status", "--porcelain", "--", "results"], cwd=ROOT, capture_output=True,
                           text=True).stdout.strip()
    differ = sorted(k for k in theirs.keys() & mine.keys() if theirs[k] != mine[k])
    return {"committed_commit": head or None, "committed_results_dirty": bool(dirty) if head else None,
            "left_out": list(TIMED),
            "same": sum(theirs[k] == mine[k] for k in theirs.keys() & mine.keys()),
            "differ": differ, "differ_columns": {k: _csv_columns_that_differ(run_root / "results" / k,
                                                                             ROOT / "results" / k)
                                                 for k in differ if k.endswith(".csv")},
            "only_in_run": sorted(theirs.keys() - mine.keys()), "only_committed": sorted(mine.keys() - theirs.keys())}


def outcome(root: Path) -> dict | None:
    """What a reader compares between two runs whose files differ: each claim's verdict, the sanity bands met, the
    bridge RL - base Pass@kmax difference with its interval, and the pretraining's last logged loss (``root``'s
    ``results/``)."""
    import csv

    res = root / "results"
    need = ("verdicts.json", "metrics/sanity_bands.json", "headline.json", "plots/pretrain_loss.csv")
    if not all((res / f).exists() for f in need):
        return None  # a results/ of another layout: nothing to compare
    claims = json.loads((res / "verdicts.json").read_text()).get("claims")
    bands = json.loads((res / "metrics/sanity_bands.json").read_text()).get("bands")
    head = json.loads((res / "headline.json").read_text())
    d = "bridge.rl_vs_base.dpass_kmax"
    if claims is None or bands is None or any(k not in head for k in (d, d + ".ci_low", d + ".ci_high")):
        return None  # a results/ of another layout: nothing to compare
    with open(res / "plots/pretrain_loss.csv", newline="") as f:
        loss = list(csv.DictReader(f))
    return {"verdicts": {k: c["verdict"] for k, c in claims.items()},
            "bands_met": [sum(bool(b["ok"]) for b in bands), len(bands)],
            "bridge_rl_vs_base": [head[d], head[d + ".ci_low"], head[d + ".ci_high"]],
            "last_pretrain_loss": float(loss[-1]["loss"]) if loss else None}


def _csv_columns_that_differ(a: Path, b: Path) -> list[str] | None:
    """The columns of two CSV tables of the same shape and header whose values differ (None: not comparable so)."""
    import pandas as pd

    try:
        x, y = pd.read_csv(a), pd.read_csv(b)
    except Exception:  # noqa: BLE001 - an unreadable table is "not comparable", never a lost timing
        return None
    if x.shape != y.shape or list(x.columns) != list(y.columns):
        return None
    return [c for c in x.columns if not x[c].equals(y[c])]


def cpu_model() -> str:
    """This machine's CPU model name (``/proc/cpuinfo``), or what ``platform`` knows."""
    import platform

    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def save_fresh(run_root: Path, time_log: Path, shared: list[str] | None = None, cpu: str | None = None) -> Path:
    """A `make reproduce` from a fresh clone, timed by `/usr/bin/time -v make reproduce`: its wall time per stage
    (the run's run_meta files), the whole command's (virtual environment included) and its commit, for the generated
    table in docs/wall_times.md, with ``shared``: what else ran on the machine meanwhile (``--shared TEXT``, one per
    item; nothing is an empty list). Results are not kept: only timings, and how the run's ``results/`` compares with
    this checkout's (:func:`compare_results`), and the CPU model (``cpu``; default: this machine's, so save on the
    machine that ran the clone). The run saved before, if of another commit, is kept as ``previous.json`` for the
    table's last column."""
    metas = {m.stem: json.loads(m.read_text()) for m in sorted((run_root / "results" / "run_meta").glob("*.json"))}
    log = time_log.read_text(errors="replace")
    total = _elapsed_s(log)
    if total is None or not metas:
        raise SystemExit(f"{time_log}: no 'Elapsed (wall clock) time' line, or {run_root} has no results/run_meta")
    if "\tExit status: 0" not in log:
        raise SystemExit(f"{time_log}: `make reproduce` did not exit with status 0; a failed run is not a timing")
    git = metas["07_claims_audit"]["git"]
    params = yaml.safe_load((run_root / "params.yaml").read_text())
    run = {"commit": git["commit"], "dirty": git["dirty"], "profile": params.get("profile"),
           "wall_s": {k: m["wall_s"] for k, m in metas.items()}, "make_reproduce_s": round(total, 1),
           "device": metas["07_claims_audit"].get("device"), "shared_cores": shared or [],
           # the run metadata name no CPU model; bf16 kernels and float rounding differ between CPU kinds
           "cpu": cpu or cpu_model(),
           "train_s": training_seconds(run_root),
           # units side by side (tools/repro_lanes.py): when each ran and with how many threads
           "span": {k: [m["start"], m["end"]] for k, m in metas.items() if m.get("start") and m.get("end")},
           "threads": {k: (m.get("device") or {}).get("torch_threads") for k, m in metas.items()},
           "results_vs_committed": compare_results(run_root),
           "outcome": outcome(run_root), "committed_outcome": outcome(ROOT)}
    dst = OUT / "fresh_clone"
    dst.mkdir(parents=True, exist_ok=True)
    if (dst / "run.json").exists() and json.loads((dst / "run.json").read_text())["commit"] != run["commit"]:
        (dst / "run.json").replace(dst / "previous.json")
    (dst / "run.json").write_text(json.dumps(run, indent=1, sort_keys=True) + "\n")
    return dst


def _stage_inputs(stages: dict, stage: str) -> tuple[dict, dict]:
    """A dvc.lock stage's dependencies (path -> md5) and params, leaving out the whole-folder outputs of stages 00
    and 01: their hashes cover the run metadata inside (times), so they differ between two runs of the same stage.
    Their contents are covered by stage 00's own inputs, the single files stage 01 reads, and the bands."""
    entry = stages[stage]
    deps = {d["path"]: d.get("md5") for d in entry.get("deps", [])
            if d["path"] not in ("data/00_data_prep", "data/01_base_model")}
    return deps, entry.get("params", {})


def _dir_manifest(root: Path, dir_md5: str | None) -> dict[str, str] | None:
    """relpath -> md5 of the files of a DVC directory hash, from ``root``'s DVC cache (wherever its DVC config puts
    it); None when it is not there."""
    if str(Path(__file__).resolve().parent) not in sys.path:
        sys.path.insert(0, str(Path(__file__).resolve().parent))
    import lock_chain

    listing = lock_chain.manifest(dir_md5, lock_chain.cache_dir(root)) if dir_md5 else None
    return None if listing is None else {e["relpath"]: e["md5"] for e in listing}


def identify(run_root: Path) -> Path:
    """Establish the committed base model from a checkout that retrained it: ``docs/data/base_model_id.json``.

    A base model retrained from scratch gets another DVC folder hash than the committed one (the folder holds its
    run's times), so a run with another seed on it would count as "on another base model". This records the retrained
    folder's hash and its weights md5 as the committed model's, and only when the retraining is shown to be the
    committed one: RUN_ROOT has the committed ``base_seed`` and ``seed``; its stages 00-02 ran with the code, data
    and settings ``dvc.lock`` records; its stage 02 sampled the model its own ``dvc.lock`` names, and its working
    folder holds those weights (checked against its DVC cache); its stage 02 gave the committed sanity bands byte for
    byte and its pretraining the committed loss curve value for value. Where this checkout's DVC cache holds the
    committed model folder, its weights must also be the retrained ones, byte for byte."""
    import pandas as pd

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from readme_results import WEIGHT_FILES, base_model_hash, weights_md5

    def weight_files(manifest: dict[str, str]) -> dict[str, str]:  # a DVC folder manifest's weight files
        return {k: v for k, v in manifest.items() if Path(k).match(WEIGHT_FILES.removeprefix("**/"))}

    mine, theirs = (yaml.safe_load((r / "dvc.lock").read_text())["stages"] for r in (ROOT, run_root))
    pm, pt = (yaml.safe_load((r / "params.yaml").read_text()) for r in (ROOT, run_root))
    problems = [k for k in ("base_seed", "seed") if pm.get(k) != pt.get(k)]
    stages = ("00_data_prep", "01_base_model", "02_base_rollouts")
    problems += [f"its dvc.lock has no {st}" for st in stages if st not in theirs]
    problems += [f"{st} ran with other code, data or settings" for st in stages
                 if st in theirs and _stage_inputs(mine, st) != _stage_inputs(theirs, st)]
    folder = base_model_hash(run_root / "dvc.lock")
    sampled = {d["path"]: d.get("md5") for d in theirs.get("02_base_rollouts", {}).get("deps", [])}
    if folder is None or sampled.get("data/01_base_model") != folder:
        problems.append("its stage 02 did not sample the model its dvc.lock names")
    model_dir = run_root / "data/01_base_model"
    manifest = _dir_manifest(run_root, folder)
    on_disk = {str(f.relative_to(model_dir)): hashlib.md5(f.read_bytes()).hexdigest()
               for f in sorted(model_dir.glob(WEIGHT_FILES))}
    if not on_disk:
        problems.append("no model weights under data/01_base_model")
    elif manifest is None:
        problems.append("its DVC cache does not hold the model folder its dvc.lock names (nothing to check the "
                        "working folder against)")
    elif weight_files(manifest) != on_disk:
        problems.append("its working folder's weights are not the ones its dvc.lock names")
    committed = _dir_manifest(ROOT, base_model_hash(ROOT / "dvc.lock"))
    if committed is not None and weight_files(committed) != on_disk:
        problems.append("its weights differ from the committed model's (this checkout's DVC cache)")
    bands = run_root / "data/02_base_rollouts/sanity_bands.json"
    if not bands.exists() or bands.read_bytes() != (ROOT / "results/metrics/sanity_bands.json").read_bytes():
        problems.append("its sanity bands are not the committed ones")
    curve, mine_curve = run_root / "figures/01_base_model/pretrain_loss.csv", ROOT / "results/plots/pretrain_loss.csv"
    if not curve.exists() or not pd.read_csv(curve).equals(pd.read_csv(mine_curve)):
        problems.append("its pretraining loss curve is not the committed one")
    if problems:
        raise SystemExit(f"{run_root}: not shown to be the committed base model: " + "; ".join(problems))
    out = {"lock_md5": base_model_hash(ROOT / "dvc.lock"), "weights_md5": weights_md5(model_dir),
           "retrained_folder_md5": folder,
           "commit": json.loads((model_dir / "run_meta.json").read_text())["git"]["commit"],
           "weights_checked_against_committed_folder": committed is not None,
           "evidence": "stages 00-02 retrained with the inputs dvc.lock records; the sanity bands byte for byte and "
                       "the pretraining loss curve value for value are the committed ones"
                       + ("; the weights byte for byte" if committed is not None else
                          " (the committed folder's files were not at hand to compare the weights directly)")}
    dst = ROOT / "docs/data/base_model_id.json"
    dst.write_text(json.dumps(out, indent=1, sort_keys=True) + "\n")
    return dst


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("command", choices=["save", "save-quick", "save-fresh", "identify"])
    ap.add_argument("run_root", type=Path)
    ap.add_argument("time_log", type=Path, nargs="?", help="save-fresh: the output of /usr/bin/time -v make reproduce")
    ap.add_argument("--shared", action="append", default=[],
                    help="save-fresh: something else that ran on the machine meanwhile (repeatable)")
    ap.add_argument("--cpu", help="save-fresh: the CPU model of the machine that ran the clone (default: this one's)")
    args = ap.parse_args(argv)
    if args.command == "save-fresh":
        if args.time_log is None:
            raise SystemExit("save-fresh needs TIME_LOG, the output of /usr/bin/time -v make reproduce")
        print(f"saved {save_fresh(args.run_root.resolve(), args.time_log, args.shared, args.cpu)}")
        return 0
    fn = {"save": save, "save-quick": save_quick, "identify": identify}[args.command]
    print(f"saved {fn(args.run_root.resolve())}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
