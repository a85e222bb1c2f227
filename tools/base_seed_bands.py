"""The base model's sanity bands at other base seeds: is the testbed a property of one lucky base model?

    python tools/base_seed_bands.py 1 2          # trains and samples a base model per seed (~30 min each, 2 cores)
    python tools/base_seed_bands.py --report     # only rewrite the table in docs/base_model.md from the saved files
    python tools/base_seed_bands.py 1 --epochs 18 [--threads 1]   # a sizing trial: more pretraining compute

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
``--threads N`` sets OMP_NUM_THREADS for the run (for two runs side by side on two cores).
"""

from __future__ import annotations

import argparse
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


def run_seed(seed: int, keep: Path | None = None, epochs: float | None = None, threads: int | None = None) -> dict:
    from smoke_pipeline import BIN, copy_repo, env

    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True).stdout.strip()
    tmp = Path(tempfile.mkdtemp(prefix=f"passkt-base{seed}-"))
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    params["base_seed"] = seed
    if epochs is not None:
        params["01_base_model"]["epochs"] = float(epochs)
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
           "commit": head,  # this checkout's (the copy's own git history is a single throwaway commit)
           "pretrain_final_loss": card.get("final_loss")}
    if keep is None:
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
    rows = {0: json.loads((ROOT / "results/metrics/sanity_bands.json").read_text())}
    for f in sorted(OUT.glob("base_seed_*.json")):
        d = json.loads(f.read_text())
        rows[d["base_seed"]] = d["bands"]
    out = _bands_table([(f"base seed {s}", rows[s]) for s in sorted(rows)])
    out[-1] += (". Seed 0 is the committed run (`results/metrics/sanity_bands.json`); the others are "
                "`docs/data/base_seed_<s>.json`, written by `python tools/base_seed_bands.py <s>`.")
    return "\n".join(out)


def trials_table() -> str:
    """Each sizing trial (docs/data/base_trials/) next to the same base seed at the committed settings."""
    trials = [json.loads(f.read_text()) for f in sorted((OUT / "base_trials").glob("base_seed_*_epochs*.json"))]
    if not trials:
        return "No sizing trial has been run."
    committed = yaml.safe_load((ROOT / "params.yaml").read_text())["01_base_model"]["epochs"]
    cols = []
    for t in trials:
        s = t["base_seed"]
        ref = (json.loads((ROOT / "results/metrics/sanity_bands.json").read_text()) if s == 0 else
               json.loads((OUT / f"base_seed_{s}.json").read_text())["bands"])
        cols += [(f"seed {s}, {committed:g} epochs", ref), (f"seed {s}, {t['epochs']:g} epochs", t["bands"])]
    out = _bands_table(cols)
    out[-1] += (". Pretraining: " + "; ".join(f"seed {t['base_seed']}, {t['epochs']:g} epochs: "
                                              f"{t['optimizer_steps']:,} steps, final loss "
                                              f"{t['pretrain_final_loss']:.3f}, {t['train_seconds'] / 60:.0f} min "
                                              f"with {t['threads']} thread(s)" for t in trials) + ".")
    return "\n".join(out)


def write_block() -> None:
    sys.path.insert(0, str(ROOT / "tools"))
    from readme_results import render  # the one writer of generated blocks

    path = ROOT / "docs" / "base_model.md"
    path.write_text(render(path.read_text(), ((BLOCK, table), (TRIALS_BLOCK, trials_table)), "docs/base_model.md"))


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("seeds", nargs="*", type=int)
    ap.add_argument("--report", action="store_true", help="only rewrite the table from the saved files")
    ap.add_argument("--epochs", type=float, default=None, help="a sizing trial with this many pretraining epochs")
    ap.add_argument("--threads", type=int, default=None, help="OMP_NUM_THREADS for the run")
    args = ap.parse_args(argv)
    OUT.mkdir(parents=True, exist_ok=True)
    for s in args.seeds:
        if s == 0 and args.epochs is None:
            print("base seed 0 is the committed run; skipped")
            continue
        d = run_seed(s, epochs=args.epochs, threads=args.threads)
        if args.epochs is None:
            dst = OUT / f"base_seed_{s}.json"
        else:
            dst = OUT / "base_trials" / f"base_seed_{s}_epochs{args.epochs:g}.json"
            dst.parent.mkdir(exist_ok=True)
        dst.write_text(json.dumps(d, indent=1) + "\n")
        print(f"base seed {s}: {sum(b['ok'] for b in d['bands']['bands'])} of {len(d['bands']['bands'])} bands met "
              f"({d['wall_s'] / 60:.1f} min)")
    if args.epochs is None:  # a trial never touches the table of the committed settings
        write_block()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
