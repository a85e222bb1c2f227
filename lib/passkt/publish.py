"""The publish stage: copy what a reader needs into the git-tracked ``results/`` folder.

    python -m passkt.publish            # the last stage of dvc.yaml (``publish``)

The heavy stages keep their outputs in DVC's cache (``data/``, ``figures/``), which a fresh clone does not have.
This stage copies the figure folders (PNG, PDF, CSV), the executed notebooks, the metrics and the claims report into
``results/``, which git tracks (``cache: false`` in dvc.yaml: that turns DVC's run cache off for this stage
only, and it runs in a second). It also writes the two views DVC shows without any cache:

- ``results/headline.json``: the dozen numbers a reviewer compares between runs (``dvc metrics show``);
- ``results/plots/*.csv``: the main curves with one column per policy (``dvc plots show``).

``results/MANIFEST.json`` lists every file with its MD5 and where it came from; tests/test_results.py checks that
the committed folder is exactly what the committed dvc.lock describes, and that dvc.lock is not older than the code.
Nothing here computes a statistic: every number is read from a stage's output.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import sys
from pathlib import Path

import pandas as pd

from passkt import report
from passkt.integrity import write_json_atomic
from passkt.paths import REPLICATED, STAGES, Paths, find_root

RESULTS = "results"
MANIFEST = "MANIFEST.json"
# (results file, source) of the metrics and audit files, all read as data
DATA_FILES = (
    ("metrics/pass_at_k.json", "data/05_pass_at_k/metrics.json"),
    ("metrics/mechanism.json", "data/06_mechanism/metrics.json"),
    ("metrics/sanity_bands.json", "data/02_base_rollouts/sanity_bands.json"),
    ("metrics/boundary_table.csv", "data/05_pass_at_k/boundary_table.csv"),
    ("metrics/boundary_mass.csv", "data/05_pass_at_k/boundary_mass.csv"),
    ("metrics/per_replicate.csv", "data/05_pass_at_k/per_replicate.csv"),
    ("metrics/deep_boundary.csv", "data/06_mechanism/deep_boundary.csv"),
    ("verdicts.json", "figures/07_claims_audit/verdicts.json"),
)
PLOT_POLICIES = ("base", "sft", "rl", "rl_bonus")
# dvc.yaml's plots name these columns; a profile with fewer replicates leaves the others empty
GRPO_RUNS = ("rl_r0", "rl_r1", "rl_r2", "rl_bonus_r0", "rl_bonus_r1", "rl_bonus_r2")
SFT_RUNS = ("r0", "r1", "r2")


def md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


def replicates(root: Path) -> list[int]:
    """The training replicates params.yaml lists (the units of the replicated stages)."""
    import yaml

    reps = yaml.safe_load((root / "params.yaml").read_text()).get("replicates", [0])
    return [int(r) for r in reps]


def sources(root: Path) -> list[tuple[str, Path]]:
    """(results-relative path, source file) of every file copied as it is.

    A replicated stage's figures keep their replicate folders (``figures/03_sft/r1/...``); its executed notebooks
    and run metadata are ``notebooks/<stage>.ipynb`` (replicate 0, the one the report links) and
    ``notebooks/<stage>.r<i>.ipynb`` for the others; the GRPO training check is published per replicate.
    """
    P = Paths(root)
    out = []
    for stage in STAGES:
        figs = root / "figures" / stage
        units = [figs / f"r{r}" for r in replicates(root)] if stage in REPLICATED else [figs]  # listed replicates only
        for unit in units:
            for f in sorted(unit.rglob("*")):  # a mirror: tests recompute DVC's folder hash from it
                if f.is_file():
                    out.append((f"figures/{stage}/{f.relative_to(figs).as_posix()}", f))
        for r in replicates(root) if stage in REPLICATED else [0]:
            Q, tag = P.with_replicate(r), "" if r == 0 or stage not in REPLICATED else f".r{r}"
            out.append((f"notebooks/{stage}{tag}.ipynb", Q.executed_notebook(stage)))
            out.append((f"run_meta/{stage}{tag}.json", Q.run_meta(stage)))
    for r in replicates(root):
        out.append((f"metrics/grpo_train_check{'' if r == 0 else f'.r{r}'}.json",
                    P.with_replicate(r).data("04_grpo") / "train_check.json"))
    out += [(dst, root / src) for dst, src in DATA_FILES]
    missing = [str(src.relative_to(root)) for _, src in out if not src.exists()]
    if missing:
        raise FileNotFoundError(f"publish: {len(missing)} stage outputs missing (run `dvc repro` first): "
                                f"{', '.join(missing[:5])}{' …' if len(missing) > 5 else ''}")
    return out


def policy_columns(df: pd.DataFrame, index: str, value: str, column: str = "policy") -> pd.DataFrame:
    """Long -> wide: one row per ``index`` value, one column per policy (the shape ``dvc plots`` draws as lines)."""
    wide = df.pivot(index=index, columns=column, values=value)  # raises on a duplicate (index, policy)
    keep = [p for p in PLOT_POLICIES if p in wide.columns] + [c for c in wide.columns if c not in PLOT_POLICIES]
    return wide[keep].reset_index()


def _with_columns(wide: pd.DataFrame, index: str, cols) -> pd.DataFrame:
    """``wide`` with at least the columns ``cols`` (empty where a run is absent), so dvc.yaml's plot fields exist."""
    extra = [c for c in wide.columns if c not in cols and c != index]
    return wide.reindex(columns=[index, *cols, *extra])


PRETRAIN_COLUMNS = ["step", "epoch", "loss", "learning_rate"]


def plot_tables(root: Path) -> dict[str, pd.DataFrame]:
    """The curves `dvc plots show` draws: Pass@k per category at the headline T, and the GRPO training reward."""
    P = Paths(root)
    curves = pd.read_csv(P.figures("05_pass_at_k") / "pass_curves.csv")
    out = {f"pass_at_k_{cat}": policy_columns(curves[curves.panel == cat], "k", "pass")
           for cat in ("bridge", "comparison", "math")}
    reps = replicates(root)
    train = pd.concat([pd.read_csv(P.with_replicate(r).figures("04_grpo") / "training_curves.csv")
                       .assign(run=lambda d, r=r: d["run"] + f"_r{r}") for r in reps], ignore_index=True)
    out["grpo_reward"] = _with_columns(policy_columns(train, "step", "reward", column="run"), "step", GRPO_RUNS)
    pre = P.figures("01_base_model") / "pretrain_loss.csv"  # absent for a pretrained base model (paper profile)
    out["pretrain_loss"] = pd.read_csv(pre) if pre.exists() else pd.DataFrame(columns=PRETRAIN_COLUMNS)
    sft = pd.concat([pd.read_csv(P.with_replicate(r).figures("03_sft") / "sft_loss.csv").assign(replicate=f"r{r}")
                     for r in reps], ignore_index=True)
    out["sft_loss"] = _with_columns(policy_columns(sft, "step", "loss", column="replicate"), "step", SFT_RUNS)
    return out


def publish(root: Path, out: Path | None = None) -> dict:
    """Rebuild ``results/`` from the stages' outputs; returns the manifest."""
    root = Path(root)
    out = Path(out) if out is not None else root / RESULTS
    files = sources(root)  # fails before anything is deleted
    tmp = out.with_name(out.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    manifest: dict[str, dict] = {}
    for rel, src in files:
        dst = tmp / rel
        dst.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(src, dst)
        manifest[rel] = {"md5": md5(dst), "source": src.relative_to(root).as_posix()}
    derived: dict[str, str] = {}
    (tmp / "plots").mkdir()
    for name, df in plot_tables(root).items():
        df.to_csv(tmp / "plots" / f"{name}.csv", index=False)
        derived[f"plots/{name}.csv"] = "pass_curves.csv / training_curves.csv / loss CSVs, one column per policy"
    audit = report.load_audit(Paths(root).claims_audit)
    stats = json.loads((root / "data/05_pass_at_k/metrics.json").read_text())
    write_json_atomic(report.headline_metrics(audit, stats), tmp / "headline.json")
    derived["headline.json"] = "report.headline_metrics(data/07_claims_audit/audit.json, data/05_pass_at_k/metrics.json)"
    md, html = report.render(audit, report.RESULTS_LINKS)
    (tmp / "report.md").write_text(md)
    (tmp / "report.html").write_text(html)
    broken = report.missing_links(md, tmp)
    if broken:
        raise FileNotFoundError(f"publish: the report links to files results/ does not hold: {', '.join(broken[:5])}")
    derived["report.md"] = derived["report.html"] = "report.render(data/07_claims_audit/audit.json, RESULTS_LINKS)"
    for rel, how in derived.items():
        manifest[rel] = {"md5": md5(tmp / rel), "derived": how}
    write_json_atomic(dict(sorted(manifest.items())), tmp / MANIFEST)
    shutil.rmtree(out, ignore_errors=True)
    tmp.rename(out)
    return manifest


def main(argv: list[str] | None = None) -> int:
    try:
        root = find_root(".")
        manifest = publish(root)
    except FileNotFoundError as e:
        print(f"passkt.publish: error: {e}", file=sys.stderr)
        return 2
    print(f"passkt.publish: {len(manifest)} files in {RESULTS}/")
    return 0


if __name__ == "__main__":
    sys.exit(main())
