"""The notebook runner: ``python -m passkt.run <stage> [--replicate I] [--params FILE] [--set key=value ...]``.

It resolves the stage's parameters from params.yaml, validates them against the notebook's ``parameters`` cell
*before* any compute, creates the stage's output folders, executes ``notebooks/<stage>.ipynb`` headlessly with
papermill (kernel ``python3``, cwd = repository root, cell output logged, throttled tqdm, ``MPLBACKEND=Agg``),
keeps the executed copy as a stage output and writes ``run_meta.json``. A replicated stage (SFT, GRPO: one DVC unit
per training replicate) takes ``--replicate I``: its notebook gets ``replicate = I`` and its folders are the
replicate's (``data/<stage>/r<I>/``). Bad input gives one line on stderr and
exit status 2; nothing already computed is deleted.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

from passkt.config import ConfigError, apply_overrides, load_yaml, parameters_cell, stage_params
from passkt.meta import run_meta
from passkt.paths import Paths, find_root

# Environment for the kernel: headless plotting, tqdm refreshing at most every few seconds in logs.
KERNEL_ENV = {"MPLBACKEND": "Agg", "TQDM_MININTERVAL": "5", "PYTHONHASHSEED": "0", "TOKENIZERS_PARALLELISM": "false"}


def resolve(root: Path, stage: str, params_file: str | Path, overrides: list[str],
            replicate: int | None = None) -> dict:
    """Validated parameters for a stage (raises ConfigError with one line naming the problem)."""
    paths = Paths(root)
    nb = paths.notebook(stage)
    if not nb.exists():
        known = sorted(p.stem for p in (root / "notebooks").glob("[0-9][0-9]_*.ipynb"))
        raise ConfigError(f"no notebook for stage {stage!r} ({nb} missing); known stages: {', '.join(known)}")
    schema = parameters_cell(nb)
    replicated = "replicate" in schema
    if replicated and replicate is None:
        raise ConfigError(f"stage {stage} runs once per training replicate: pass --replicate I")
    if not replicated and replicate is not None:
        raise ConfigError(f"stage {stage} is not replicated (its notebook has no 'replicate' parameter)")
    schema = {k: v for k, v in schema.items() if k != "replicate"}
    params = load_yaml(root / params_file if not Path(params_file).is_absolute() else params_file)
    resolved = stage_params(params, stage, schema)
    if replicated:
        allowed = params.get("replicates")
        if not isinstance(allowed, list) or replicate not in allowed:
            raise ConfigError(f"stage {stage}: --replicate {replicate} is not in params 'replicates' ({allowed})")
        resolved["replicate"] = replicate
    return apply_overrides(stage, resolved, schema, overrides)


def execute(root: Path, stage: str, params: dict, log_output: bool = True) -> dict:
    """Run the stage's notebook with papermill and write run_meta.json; returns the metadata."""
    import papermill as pm

    paths = Paths(root, params.get("replicate", 0))
    paths.data(stage).mkdir(parents=True, exist_ok=True)
    paths.figures(stage).mkdir(parents=True, exist_ok=True)
    os.environ.update(KERNEL_ENV)
    start = time.time()
    pm.execute_notebook(
        str(paths.notebook(stage)),
        str(paths.executed_notebook(stage)),
        parameters=params,
        kernel_name="python3",
        cwd=str(root),
        log_output=log_output,
        progress_bar=False,
    )
    meta = run_meta(root, stage, params, start, time.time())
    paths.run_meta(stage).write_text(json.dumps(meta, indent=2, sort_keys=True) + "\n")
    return meta


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m passkt.run", description=__doc__.split("\n\n")[0])
    ap.add_argument("stage", help="stage name = notebook stem, e.g. 00_data_prep")
    ap.add_argument("--replicate", type=int, default=None, metavar="I",
                    help="training replicate (replicated stages only: 03_sft, 04_grpo)")
    ap.add_argument("--params", default="params.yaml", help="params file (default: params.yaml)")
    ap.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                    help="override one parameter for this run (YAML value); repeatable")
    ap.add_argument("--check", action="store_true", help="validate params only; run nothing")
    ap.add_argument("--quiet", action="store_true", help="do not stream cell output")
    args = ap.parse_args(argv)
    try:
        root = find_root(".")
        params = resolve(root, args.stage, args.params, args.overrides, args.replicate)
    except (ConfigError, FileNotFoundError) as e:
        print(f"passkt.run: error: {e}", file=sys.stderr)
        return 2
    if args.check:
        print(json.dumps(params, indent=2, sort_keys=True))
        return 0
    try:
        meta = execute(root, args.stage, params, log_output=not args.quiet)
    except Exception as e:  # papermill raises PapermillExecutionError with the failing cell
        print(f"passkt.run: stage {args.stage} failed: {type(e).__name__}: {str(e).strip().splitlines()[-1] if str(e).strip() else ''}",
              file=sys.stderr)
        print(f"passkt.run: executed notebook with the traceback: {Paths(root, args.replicate or 0).executed_notebook(args.stage)}",
              file=sys.stderr)
        return 1
    print(f"passkt.run: {args.stage} done in {meta['wall_s']:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
