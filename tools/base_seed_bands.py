"""The base model's sanity bands at other base seeds: is the testbed a property of one lucky base model?

    python tools/base_seed_bands.py 1 2          # trains and samples a base model per seed (~30 min each, 2 cores)
    python tools/base_seed_bands.py --report     # only rewrite the table in docs/base_model.md from the saved files
    python tools/base_seed_bands.py 1 --epochs 18 [--threads 1]   # a sizing trial: more pretraining compute
    python tools/base_seed_bands.py 1 --set KEY=VALUE --name NAME     # a design trial: any params.yaml override

For each base seed, a temporary copy of this checkout (tests/smoke_pipeline.copy_repo: no data, no git history)
gets params.yaml with only ``base_seed`` changed and runs ``dvc repro 02_base_rollouts`` there: the world, the
pretraining data, the base model and its rollouts, with this checkout's code and every other setting as
committed. The bands (``data/02_base_rollouts/sanity_bands.json``) are saved to ``docs/data/base_seed_<s>.json``
with the run's metadata; base seed 0's come from the committed run (``results/metrics/sanity_bands.json``). The
generated table in docs/base_model.md lists every saved seed. Nothing here is tuned: the bands, the prior and the
model are the committed ones.

``--epochs E`` is a sizing trial of the one knob the decisive-evidence issue allows (more pretraining compute; the
prior, the bands and the model stay): only ``01_base_model.epochs`` changes besides the seed, and the result goes to
``docs/data/base_trials/base_seed_<s>_epochs<E>.json``, never into the table of the committed settings.
``--set KEY=VALUE`` (repeatable; KEY a dotted path into params.yaml, VALUE YAML) with ``--name NAME`` is a trial
of any other setting, for example a design change that a branch adds: run the tool from that branch's checkout, so
the trial runs its code; the JSON records the commit and the overrides and goes to
``docs/data/base_trials/base_seed_<s>_<NAME>.json``. Every trial is written up, with its decision rule, in
docs/base_model.md before it runs. ``--adopt NAME`` makes a trial's runs the committed settings' seed files once
params.yaml has taken the trial's setting: it refuses unless the trial's params (params.yaml at the trial's commit,
with its overrides) equal the committed ones for every section stages 00-02 read, and unless every file those
stages depend on that changed since the trial's commit is named by ``--accept-changed PATH`` (a judgement the
adopted file records, with the changed files). ``--pin-baselines`` writes into each trial file the baseline it is read against now (new trial runs pin theirs at
once), so a later change of the committed run never changes an old trial's comparison. ``--record-inputs`` gives seed files saved before runs recorded their stage inputs those of their run's commit (from
git history). ``--threads N`` sets OMP_NUM_THREADS for the run (for two runs side by side on
two cores). ``--keep`` keeps each run's temporary copy, with its trained models (the path is printed and saved
as ``kept_at``). Each run also records ``math_diagnosis``: where the base model's math answers go wrong (operands copied
from the question, arithmetic of the first step); ``--diagnose`` writes it for the committed base model. And
``pretrain_loss_curve``: stage 01's loss per logged step (runs saved before it have none).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
OUT = ROOT / "docs" / "data"
BLOCK = "base_seeds"
TRIALS_BLOCK = "base_trials"


def parse_sets(items: list[str]) -> dict:
    """``["01_base_model.epochs=18", ...]`` -> ``{"01_base_model.epochs": 18.0, ...}`` (values parsed as YAML)."""
    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise SystemExit(f"--set {item!r}: expected KEY=VALUE, KEY a dotted path into params.yaml")
        out[key] = yaml.safe_load(value)
    return out


def apply_sets(params: dict, sets: dict) -> dict:
    """Set each dotted key of ``sets`` in ``params`` (in place); a key that params.yaml lacks is an error, so a
    typo can never run the committed settings under a trial's name."""
    for key, value in sets.items():
        *path, last = key.split(".")
        node = params
        for part in path:
            if not isinstance(node.get(part), dict):
                raise SystemExit(f"--set {key}: params.yaml has no section {part!r}")
            node = node[part]
        if last not in node:
            raise SystemExit(f"--set {key}: params.yaml has no key {last!r} there")
        node[last] = value
    return params


STAGES = ("00_data_prep", "01_base_model", "02_base_rollouts")  # what a base seed run reproduces


def _git(*args: str) -> str:
    r = subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True)
    if r.returncode != 0:
        raise SystemExit(f"git {' '.join(args)}: {r.stderr.strip()}")
    return r.stdout


def base_params(params: dict) -> dict:
    """The parts of params that stages 00-02 read, without ``base_seed`` (each seed file sets its own)."""
    dvc = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]
    keys = {k for st in STAGES for k in dvc[st].get("params", []) if k != "base_seed"}
    return {k: params.get(k) for k in sorted(keys)}


def base_code_deps() -> list[str]:
    """The checked-in files stages 00-02 depend on (data/ is their own output)."""
    dvc = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]
    return sorted({d for st in STAGES for d in dvc[st]["deps"] if not d.startswith("data/")})


def _as_json(x):
    """``x`` as it reads back from a JSON file (mapping keys become strings), so saved and fresh inputs compare."""
    return json.loads(json.dumps(x))


def stage_inputs() -> dict:
    """What stages 00-02 read in this working tree: their params sections and an md5 per checked-in dependency.
    Recorded with each committed-settings run, so staleness is a comparison of contents (no git history needed)."""
    params = _as_json(base_params(yaml.safe_load((ROOT / "params.yaml").read_text())))
    return {"params": params, "deps": {d: hashlib.md5((ROOT / d).read_bytes()).hexdigest() for d in base_code_deps()}}


def inputs_at(commit: str) -> dict:
    """``stage_inputs`` as they were at ``commit`` (git history): for a seed file saved before runs recorded them."""
    params = _as_json(base_params(yaml.safe_load(_git("show", f"{commit}:params.yaml"))))
    deps = {}
    for d in base_code_deps():
        blob = subprocess.run(["git", "show", f"{commit}:{d}"], cwd=ROOT, capture_output=True)
        if blob.returncode == 0:
            deps[d] = hashlib.md5(blob.stdout).hexdigest()
    return {"params": params, "deps": deps}


def record_inputs(seeds: list[int]) -> list[Path]:
    """Give each committed-settings seed file that lacks them the stage inputs of its run's commit."""
    written = []
    for s in seeds:
        f = OUT / f"base_seed_{s}.json"
        d = json.loads(f.read_text())
        if "stage_inputs" in d:
            continue
        if d.get("epochs") not in (None, yaml.safe_load(_git("show", f"{d['commit']}:params.yaml"))["01_base_model"]["epochs"]) \
                or d.get("overrides"):
            raise SystemExit(f"{f.name}: its run did not use its commit's params.yaml; inputs cannot be derived")
        d.update(stage_inputs=inputs_at(d["commit"]), stage_inputs_from=f"git show {d['commit'][:7]}:<file>")
        f.write_text(json.dumps(d, indent=1) + "\n")
        written.append(f)
    return written


def locked_inputs() -> dict:
    """``stage_inputs`` of the run behind ``dvc.lock``: the params and dependency md5s it recorded for stages 00-02."""
    lock = yaml.safe_load((ROOT / "dvc.lock").read_text())["stages"]
    params, deps = {}, {}
    for st in STAGES:
        params.update(lock[st].get("params", {}).get("params.yaml", {}))
        deps.update({d["path"]: d["md5"] for d in lock[st]["deps"] if not d["path"].startswith("data/")})
    params.pop("base_seed", None)
    return {"params": _as_json(params), "deps": deps}


def stale_reason(run: dict, against: dict | None = None) -> str | None:
    """Why a committed-settings seed file no longer describes the committed run's stage 00-02 settings and code
    (``against``: by default those recorded in ``dvc.lock``), or None when it does."""
    then = run.get("stage_inputs")
    if then is None:
        return "its inputs were not recorded"
    now = locked_inputs() if against is None else against
    changed = [k for k in sorted(set(then["params"]) | set(now["params"])) if then["params"].get(k) != now["params"].get(k)]
    changed += [d for d in sorted(set(then["deps"]) | set(now["deps"])) if then["deps"].get(d) != now["deps"].get(d)]
    return ("changed since its run: " + ", ".join(changed)) if changed else None


def _trial_params(run: dict) -> dict:
    """The stage 00-02 params a trial ran with: params.yaml at its commit, with its epochs and overrides."""
    then = yaml.safe_load(_git("show", f"{run['commit']}:params.yaml"))
    if "epochs" in run:  # files before the epochs field ran params.yaml's epochs
        then["01_base_model"]["epochs"] = run["epochs"]
    apply_sets(then, run.get("overrides") or {})
    return _as_json(base_params(then))


def adopt(name: str, seeds: list[int], accepted: list[str]) -> list[Path]:
    """Copy trial ``name``'s runs at ``seeds`` to the committed settings' seed files, after the checks above. The
    adopted file records this working tree's stage inputs: the accepted changes are part of what it describes, and
    any later change makes it stale."""
    if 0 in seeds:
        raise SystemExit("--adopt: base seed 0 is the committed run itself (dvc repro), never a copied trial")
    head = _git("rev-parse", "HEAD").strip()
    now = stage_inputs()
    when = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    written = []
    for s in seeds:
        src = OUT / "base_trials" / f"base_seed_{s}_{name}.json"
        if not src.exists():
            raise SystemExit(f"--adopt {name}: no trial run {src.relative_to(ROOT)}")
        t = json.loads(src.read_text())
        if t.get("dirty"):
            raise SystemExit(f"--adopt {name}: base seed {s}'s trial ran from a working tree with uncommitted changes")
        diff = [k for k, v in _trial_params(t).items() if v != now["params"][k]]
        if diff:
            raise SystemExit(f"--adopt {name}: base seed {s}'s trial differs from params.yaml in {diff}")
        # against the working tree, so uncommitted changes are seen too
        changed = sorted(_git("diff", "--name-only", t["commit"], "--", *base_code_deps()).split())
        unaccepted = [c for c in changed if c not in accepted]
        if unaccepted:
            raise SystemExit(f"--adopt {name}: files stages 00-02 depend on changed since the trial's commit "
                             f"{t['commit'][:7]}: {unaccepted}; read the diff, and name "
                             "each with --accept-changed PATH if it cannot change the base model or its rollouts")
        t.update(adopted_from=src.relative_to(ROOT).as_posix(), adopted_at=head, changed_since_trial=changed,
                 stage_inputs=now)
        dst = OUT / f"base_seed_{s}.json"
        if dst.exists() and json.loads(dst.read_text()).get("adopted_from") != t["adopted_from"]:
            # the run it replaces stays, one file per adoption: the trials run before it are read against it
            old = json.loads(dst.read_text())
            before = sorted(f.name for f in (OUT / "base_trials").glob(f"base_seed_{s}_*.json"))
            (OUT / "superseded").mkdir(exist_ok=True)
            (OUT / "superseded" / f"base_seed_{s}_{name}.json").write_text(json.dumps(
                {**old, "superseded_at": head, "superseded_on": when, "superseded_by": name,
                 "trials_before": before}, indent=1) + "\n")
        dst.write_text(json.dumps(t, indent=1) + "\n")
        written.append(dst)
    return written


EXPOSURE_BINS = ((0, 0), (1, 5), (6, 10), (11, 10**9))  # pretraining occurrences of an item's first step
ARITH = {"+": lambda a, b: a + b, "-": lambda a, b: a - b, "*": lambda a, b: a * b,
         "/": lambda a, b: a // b if b else None}  # one step as the prior writes it (integer division)


def _first_steps(ops: list[str], operands: list[int]) -> list[tuple[int, str, int]]:
    """The ``a op b`` steps of a math problem, left to right, as the prior writes them."""
    out, acc = [], operands[0]
    for op, b in zip(ops, operands[1:]):
        out.append((acc, op, b))
        acc = ARITH[op](acc, b)
    return out


def math_diagnosis(data: Path) -> dict:
    """Where the base model's math answers go wrong, from a run's rollouts (T = 0), its evaluation math problems and
    its pretraining pool.

    ``templates`` (per template and ``all``): Pass@1; the share of episodes with no ``a op b = c`` step; of those
    with one, the share whose first step is the question's (its first two operands and its first operator); and of
    those, the share whose result is right. The prior writes a wrong last step on purpose (its ``slip`` strategy),
    so a perfect imitator is right on the single-step templates' one step in 0.5 / 0.85 of the traces that have
    one. ``by_exposure``: the evaluation problems grouped by how often their first step (``a op b``) occurs as a
    step of a pretraining math problem (the evaluation instances themselves never do), with their mean Pass@1."""
    import re
    from collections import Counter

    import pandas as pd

    problems = pd.read_parquet(data / "00_data_prep/problems/eval_math.parquet").set_index("id")
    meta = problems["meta"].map(json.loads)
    shards = sorted((data / "02_base_rollouts/rollouts").glob("shard-*.parquet"))
    cols = ["problem_id", "category", "answer", "seg_text"]
    r = pd.concat([pd.read_parquet(f, columns=cols) for f in shards])
    r = r[r["category"] == "math"].copy()
    r["template"] = r["problem_id"].map(meta.map(lambda m: m["template"]))
    r["ok"] = r["answer"] == r["problem_id"].map(problems["answer"])
    step = re.compile(r"<think>(\d+) ([-+*/]) (\d+) = (-?\d+)")

    def first_step(row) -> str:
        m = next((step.match(t) for t in row["seg_text"] if t.startswith("<think>")), None)
        if m is None:
            return "no_step"
        a, op, b, c = int(m[1]), m[2], int(m[3]), int(m[4])
        want = meta[row["problem_id"]]["math"]
        if (a, op, b) != (want["operands"][0], want["ops"][0], want["operands"][1]):
            return "step_wrong"
        return "result_right" if ARITH[op](a, b) == c else "result_wrong"

    r["step"] = r.apply(first_step, axis=1)

    def summary(g) -> dict:
        n = len(g)
        has = g[g["step"] != "no_step"]
        copied = has[has["step"] != "step_wrong"]
        return {"episodes": n, "pass_at_1": round(float(g["ok"].mean()), 4),
                "no_step": round(float((g["step"] == "no_step").mean()), 4),
                "step_copied": round(len(copied) / max(len(has), 1), 4),
                "first_result_right": round(float((copied["step"] == "result_right").mean()) if len(copied) else 0.0, 4)}

    pool = pd.read_parquet(data / "00_data_prep/problems/pretrain.parquet", columns=["category", "meta"])
    seen = Counter(s for m in pool.loc[pool["category"] == "math", "meta"].map(json.loads)
                   for s in _first_steps(m["math"]["ops"], m["math"]["operands"]))
    exposure = meta.map(lambda m: seen[_first_steps(m["math"]["ops"], m["math"]["operands"])[0]])
    per_problem = r.groupby("problem_id")["ok"].mean()
    by_exposure = []
    for lo, hi in EXPOSURE_BINS:
        ids = exposure[(exposure >= lo) & (exposure <= hi)].index
        by_exposure.append({"exposures": f"{lo}" if lo == hi else (f"{lo}-{hi}" if hi < 10**9 else f"{lo}+"),
                            "problems": int(len(ids)),
                            "pass_at_1": round(float(per_problem.reindex(ids).mean()), 4) if len(ids) else None})
    return {"templates": {"all": summary(r), **{t: summary(g) for t, g in r.groupby("template")}},
            "by_exposure": by_exposure}


def loss_curve(repo: Path) -> dict | None:
    """Stage 01's pretraining loss per logged step (``figures/01_base_model/pretrain_loss.csv``), or None without
    it: kept with each run so that when and how sharply the loss falls (the copying skill forming) can be compared
    across seeds and trials after the run's folder is gone."""
    import csv

    path = repo / "figures" / "01_base_model" / "pretrain_loss.csv"
    if not path.exists():
        return None
    rows = list(csv.DictReader(path.read_text().splitlines()))
    return {k: [float(r[k]) if k != "step" else int(float(r[k])) for r in rows] for k in ("step", "loss", "learning_rate")}


def run_seed(seed: int, keep: bool = False, epochs: float | None = None, threads: int | None = None,
             sets: dict | None = None) -> dict:
    from smoke_pipeline import BIN, copy_repo, env

    sys.path.insert(0, str(ROOT / "lib"))
    from passkt.meta import git_state

    state = git_state(ROOT)  # the copy below is of the working tree: a dirty one is recorded as such
    inputs = stage_inputs()
    tmp = Path(tempfile.mkdtemp(prefix=f"passkt-base{seed}-"))
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    params["base_seed"] = seed
    if epochs is not None:
        params["01_base_model"]["epochs"] = float(epochs)
    apply_sets(params, sets or {})
    inputs["params"] = _as_json(base_params(params))  # what this run read: a trial's overrides included
    pfile = tmp / "params.yaml"
    pfile.write_text(yaml.safe_dump(params, sort_keys=False))
    repo = copy_repo(tmp / "repo", pfile)
    t0 = time.time()
    run_env = env(repo, repo / "lib")
    if threads is not None:
        run_env["OMP_NUM_THREADS"] = str(threads)
    r = subprocess.run([str(BIN / "dvc"), "repro", "02_base_rollouts"], cwd=repo, capture_output=True, text=True,
                       env=run_env)
    if r.returncode != 0:
        raise SystemExit(f"base seed {seed}: dvc repro failed:\n{r.stderr[-3000:]}")
    bands = json.loads((repo / "data/02_base_rollouts/sanity_bands.json").read_text())
    meta = {s: json.loads((repo / f"data/{s}/run_meta.json").read_text()) for s in ("01_base_model", "02_base_rollouts")}
    card = json.loads((repo / "data/01_base_model/model_card.json").read_text())
    out = {"base_seed": seed, "epochs": params["01_base_model"]["epochs"], "threads": threads,
           "optimizer_steps": card.get("optimizer_steps"), "train_seconds": card.get("train_seconds"), "bands": bands, "wall_s": round(time.time() - t0, 1),
           "stage_wall_s": {s: m["wall_s"] for s, m in meta.items()},
           "commit": state["commit"], "dirty": state["dirty"],  # this checkout's (the copy's own git history is
           "stage_inputs": inputs,                                   # a single throwaway commit)
           "pretrain_final_loss": card.get("final_loss"), "overrides": sets or {},
           # with an annealing pass (01_base_model.math_anneal) the final loss is the pass's: each phase's own
           # totals and final loss, so that the main phase can be compared with a run without the pass
           **({"pretrain_phases": card["phases"]} if card.get("phases") else {}),
           "math_diagnosis": math_diagnosis(repo / "data"), "pretrain_loss_curve": loss_curve(repo)}
    if keep:
        out["kept_at"] = str(repo)
        print(f"base seed {seed}: run kept at {repo}")
    else:
        shutil.rmtree(tmp, ignore_errors=True)
    return out


def _bands_table(cols: list[tuple[str, dict]]) -> list[str]:
    """A markdown table of sanity bands, one column per (label, sanity_bands.json content), and the bands-met line."""
    names = [b["band"] for b in cols[0][1]["bands"]]
    out = ["| band | allowed | " + " | ".join(c for c, _ in cols) + " |", "|---|---|" + "---|" * len(cols)]
    for i, name in enumerate(names):
        b0 = cols[0][1]["bands"][i]
        cells = [f"{r['bands'][i]['value']:.3f}" + ("" if r["bands"][i]["ok"] else " **missed**") for _, r in cols]
        out.append(f"| {name} | [{b0['low']}, {b0['high']}] | " + " | ".join(cells) + " |")
    return out + ["", "Bands met: " + ", ".join(f"{c}: {sum(b['ok'] for b in r['bands'])} of {len(names)}"
                                              for c, r in cols)]


def table() -> str:
    runs = [json.loads(f.read_text()) for f in sorted(OUT.glob("base_seed_*.json"))]
    rows = {0: json.loads((ROOT / "results/metrics/sanity_bands.json").read_text())}
    rows.update({d["base_seed"]: d["bands"] for d in runs})
    out = _bands_table([(f"base seed {s}", rows[s]) for s in sorted(rows)])
    out[-1] += (". Seed 0 is the committed run (`results/metrics/sanity_bands.json`); the others are "
                "`docs/data/base_seed_<s>.json`, written by `python tools/base_seed_bands.py <s>`.")
    locked = locked_inputs()  # dvc.lock read once for every seed file
    for d in runs:
        why = stale_reason(d, locked)
        if why:
            out[-1] += f" **Base seed {d['base_seed']} is stale**: {why}."
        if d.get("adopted_from"):
            out[-1] += (f" Base seed {d['base_seed']}: adopted from the trial `{d['adopted_from']}` (run at "
                        f"{d['commit'][:7]}, {d.get('threads') or 'default'} thread(s)); files of stages 00-02 "
                        f"changed since then and judged not to affect it: "
                        + (", ".join(f"`{c}`" for c in d["changed_since_trial"]) or "none") + ".")
    sys.path.insert(0, str(ROOT / "tools"))
    from readme_results import saved_seed_runs

    saved = dict(sorted(saved_seed_runs()[0].items()))
    resampled = {s: json.loads((r["dir"] / "sanity_bands.json").read_text())
                 for s, r in saved.items() if (r["dir"] / "sanity_bands.json").exists()}
    if resampled:  # how far sampling alone moves the bands, next to how far a new base model moves them
        committed_seed = yaml.safe_load((ROOT / "params.yaml").read_text())["seed"]
        without = [s for s in saved if s not in resampled]
        out += ["", "The committed base model (base seed 0) sampled again with another `seed` (the saved reseed runs' "
                "stage 02: new sampling streams, the same model)"
                + (f"; saved without their bands: seed {', '.join(map(str, without))}" if without else "") + ":", ""]
        out += _bands_table([(f"seed {committed_seed} (committed)", rows[0])]
                            + [(f"seed {s}", b) for s, b in resampled.items()])
    return "\n".join(out)


def trial_label(t: dict) -> str:
    """A trial's column label: its ``--name``, or its pretraining epochs for an epochs-only trial."""
    return t.get("name") or f"{t['epochs']:g} epochs"


def pin_baselines() -> list[Path]:
    """Write into each trial file that lacks one the baseline it is read against now (``baseline``), so that a
    later change of the committed run (seed 0's results, a seed file) never changes what an old trial is compared
    with."""
    head = _git("rev-parse", "HEAD").strip()
    written = []
    for f in sorted((OUT / "base_trials").glob("base_seed_*.json")):
        t = json.loads(f.read_text())
        if "baseline" not in t:
            f.write_text(json.dumps(_pinned(t, f.name, head), indent=1) + "\n")
            written.append(f)
    return written


def _pinned(trial: dict, fname: str, at: str | None) -> dict:
    """``trial`` with the baseline it is read against now (``baseline``) written into it, pinned at commit ``at``."""
    label, bands = baseline(trial, fname)
    return {**trial, "baseline": {"label": label, "bands": bands, "pinned_at": at}}


def baseline(trial: dict, fname: str) -> tuple[str, dict]:
    """What a trial (its file ``fname``) is read against: the same seed at the committed settings of the trial's
    time. If an adoption replaced that seed's run after the trial was saved (the trial is in the replaced run's
    ``trials_before``, ``docs/data/superseded/``), the trial is read against the run of the earliest such adoption."""
    if "baseline" in trial:  # pinned (pin_baselines)
        return trial["baseline"]["label"], trial["baseline"]["bands"]
    s = trial["base_seed"]
    sups = [json.loads(f.read_text()) for f in (OUT / "superseded").glob(f"base_seed_{s}_*.json")]
    sups = sorted((d for d in sups if fname in d["trials_before"]), key=lambda d: d["superseded_on"])
    if sups:
        return f"committed before {sups[0]['superseded_by']}", sups[0]["bands"]
    if s == 0:
        return "committed", json.loads((ROOT / "results/metrics/sanity_bands.json").read_text())
    return "committed", json.loads((OUT / f"base_seed_{s}.json").read_text())["bands"]


def trials() -> list[tuple[Path, dict]]:
    """The trial files (docs/data/base_trials/) with their contents, in the order they were saved (``saved_at``,
    UTC), so the tables read in the order the trials ran; files without it come last, in name order."""
    runs = [(f, json.loads(f.read_text())) for f in sorted((OUT / "base_trials").glob("base_seed_*.json"))]
    return sorted(runs, key=lambda ft: (ft[1].get("saved_at") or "~", ft[0].name))


def trials_table() -> str:
    """Each trial (docs/data/base_trials/), a table per trial, its seeds next to the same seeds at the committed
    settings of the trial's time (``baseline``)."""
    runs = trials()
    if not runs:
        return "No sizing trial has been run."
    sections = []
    for label in dict.fromkeys(trial_label(t) for _, t in runs):
        named = sorted(((f.name, t) for f, t in runs if trial_label(t) == label), key=lambda nt: nt[1]["base_seed"])
        group = [t for _, t in named]
        cols = []
        for name, t in named:
            s = t["base_seed"]
            ref_label, ref = baseline(t, name)
            cols += [(f"seed {s}, {ref_label}", ref), (f"seed {s}, {label}", t["bands"])]
        changed = "; ".join(f"`{k}: {json.dumps(v)}`" for k, v in group[0].get("overrides", {}).items())
        out = [f"**Trial: {label}** ({changed or 'pretraining epochs only'}; code of "
               f"{', '.join(dict.fromkeys(t['commit'][:7] for t in group))})", ""] + _bands_table(cols)
        out[-1] += (". Pretraining: " + "; ".join(f"seed {t['base_seed']}: {t['optimizer_steps']:,} steps, final "
                                                  f"loss {t['pretrain_final_loss']:.3f}, {t['train_seconds'] / 60:.0f}"
                                                  f" min with " + (f"{t['threads']} thread(s)" if t['threads'] else "the default threads")
                                                  for t in group) + ".")
        rebuilt = [str(t["base_seed"]) for t in group if t.get("reconstructed")]
        if rebuilt:
            out[-1] += (f" Seed(s) {', '.join(rebuilt)}: the run's file was lost and rebuilt from values printed before "
                        "the loss, rounded; see its `reconstructed` field for what is missing.")
        sections.append("\n".join(out))
    return "\n\n".join(sections)


DIAG = OUT / "math_diagnosis_base_seed_0.json"
DIAG_BLOCK = "math_diagnosis"


def diagnosis_table() -> str:
    """The committed base model's math diagnosis per template, each trial's (all templates) beside it, and the
    committed model's Pass@1 by pretraining exposure of the first step."""
    if not DIAG.exists():
        return "Not measured yet: run `python tools/base_seed_bands.py --diagnose`."
    sys.path.insert(0, str(ROOT / "tools"))
    from readme_results import base_model_hash

    d = json.loads(DIAG.read_text())
    stale = d.get("base_model") != base_model_hash(ROOT / "dvc.lock")
    rows = [("committed, base seed 0 (" + t + ")", v) for t, v in d["templates"].items()]
    rows += [(f"trial {trial_label(t)}, base seed {t['base_seed']} (all)", t["math_diagnosis"]["templates"]["all"])
             for _, t in trials()
             if "templates" in t.get("math_diagnosis", {})]
    out = (["**Stale: the committed base model changed since this was measured; run `python tools/base_seed_bands.py "
            "--diagnose --report`.**", ""] if stale else [])
    out += ["| base model (templates) | episodes | Pass@1 | no `a op b = c` step | question's first step copied "
            "| first result right |", "|---|---|---|---|---|---|"]
    out += [f"| {name} | {v['episodes']:,} | {v['pass_at_1']:.3f} | {v['no_step']:.3f} | {v['step_copied']:.3f} "
            f"| {v['first_result_right']:.3f} |" for name, v in rows]
    out += ["", "Committed base model, evaluation math problems by how often their first step occurs as a step of a "
            "pretraining math problem:", "", "| occurrences in the pool | problems | Pass@1 |", "|---|---|---|"]
    out += [f"| {b['exposures']} | {b['problems']} | " + ("–" if b["pass_at_1"] is None else f"{b['pass_at_1']:.3f}")
            + " |" for b in d["by_exposure"]]
    return "\n".join(out)


BLOCKS = ((BLOCK, table), (TRIALS_BLOCK, trials_table), (DIAG_BLOCK, diagnosis_table))


def write_block() -> None:
    sys.path.insert(0, str(ROOT / "tools"))
    from readme_results import render  # the one writer of generated blocks

    path = ROOT / "docs" / "base_model.md"
    path.write_text(render(path.read_text(), BLOCKS, "docs/base_model.md"))


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("seeds", nargs="*", type=int)
    ap.add_argument("--report", action="store_true", help="only rewrite the tables from the saved files")
    ap.add_argument("--epochs", type=float, default=None, help="a sizing trial with this many pretraining epochs")
    ap.add_argument("--set", action="append", default=[], dest="sets", metavar="KEY=VALUE",
                    help="a trial with this params.yaml override (repeatable; needs --name)")
    ap.add_argument("--name", default=None, help="the trial's name (its file and column label)")
    ap.add_argument("--adopt", default=None, metavar="NAME",
                    help="make trial NAME's runs at the given seeds the committed settings' seed files")
    ap.add_argument("--accept-changed", action="append", default=[], metavar="PATH",
                    help="with --adopt: a changed dependency judged not to change the base model or its rollouts")
    ap.add_argument("--pin-baselines", action="store_true",
                    help="write into each trial file without one the baseline it is read against now")
    ap.add_argument("--record-inputs", action="store_true",
                    help="give the seed files of the given seeds that lack them the stage inputs of their commit")
    ap.add_argument("--threads", type=int, default=None, help="OMP_NUM_THREADS for the run")
    ap.add_argument("--keep", action="store_true",
                    help="keep each run's temporary copy (its data and models; the path is printed and saved)")
    ap.add_argument("--diagnose", action="store_true",
                    help="write the committed base model's math diagnosis (reads data/ of this checkout)")
    args = ap.parse_args(argv)
    sets = parse_sets(args.sets)
    if args.pin_baselines:
        for f in pin_baselines():
            print(f"pinned the baseline of {f.relative_to(ROOT)}")
        write_block()
        return 0
    if args.record_inputs:
        for f in record_inputs(args.seeds):
            print(f"recorded the stage inputs of {f.relative_to(ROOT)}")
        write_block()
        return 0
    if args.adopt:
        if sets or args.epochs is not None or args.name or not args.seeds:
            raise SystemExit("--adopt NAME takes seeds and nothing that would run a trial")
        for dst in adopt(args.adopt, args.seeds, args.accept_changed):
            print(f"adopted {dst.relative_to(ROOT)}")
        write_block()
        return 0
    if sets and not args.name:
        raise SystemExit("--set needs --name: a trial is saved and labelled by its name")
    if args.name and not sets and args.epochs is None:
        raise SystemExit("--name without --set or --epochs would run the committed settings under a trial's name")
    if sets and args.epochs is not None:  # recorded with the other overrides, so the trial's label names it
        sets = {"01_base_model.epochs": float(args.epochs), **sets}
    trial = args.epochs is not None or bool(sets)
    OUT.mkdir(parents=True, exist_ok=True)
    if args.diagnose:
        sys.path.insert(0, str(ROOT / "tools"))
        from readme_results import base_model_hash

        DIAG.write_text(json.dumps({"base_model": base_model_hash(ROOT / "dvc.lock"), **math_diagnosis(ROOT / "data")},
                                   indent=1) + "\n")
    for s in args.seeds:
        if s == 0 and not trial:
            print("base seed 0 is the committed run; skipped")
            continue
        d = run_seed(s, keep=args.keep, epochs=args.epochs, threads=args.threads, sets=sets)
        if not trial:
            dst = OUT / f"base_seed_{s}.json"
        else:
            d["name"] = args.name
            d["saved_at"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())  # orders the trial tables
            dst = OUT / "base_trials" / f"base_seed_{s}_{args.name or f'epochs{args.epochs:g}'}.json"
            dst.parent.mkdir(exist_ok=True)
            if s == 0 or (OUT / f"base_seed_{s}.json").exists():  # what it is read against, pinned now
                d = _pinned(d, dst.name, d.get("commit"))
        dst.write_text(json.dumps(d, indent=1) + "\n")
        print(f"base seed {s}: {sum(b['ok'] for b in d['bands']['bands'])} of {len(d['bands']['bands'])} bands met "
              f"({d['wall_s'] / 60:.1f} min)")
    if not trial:  # a trial never touches the table of the committed settings
        write_block()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
