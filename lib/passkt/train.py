"""GRPO training outside the notebook, one process per GPU: the paper profile's stage 04.

A 7B policy trains with one process per GPU (``accelerate launch``, DeepSpeed ZeRO-2), which a notebook cannot be:
every rank would run the whole notebook (its sampling, its files). So with a non-empty ``launcher`` (params
``04_grpo.launcher``) the notebook calls :func:`launch`, which writes the notebook's resolved parameters to
``data/04_grpo/r<i>/launch_params.json`` and runs ``<launcher> -m passkt.train --params-json FILE --run NAME`` once
per GRPO run (plain, bonus): one process group per run, so each run's vLLM engine and GPU memory end with it. The
notebook then builds the same runs (:func:`passkt.grpo.replicate_runs`); :func:`passkt.grpo.train_grpo` finds each
one finished by the same code, model, data and settings (its fingerprint) and returns the trainer's result, and the
notebook goes on to read the logs, sample and plot: it stays the methods section. With an empty launcher (tiny
profile) the notebook trains in its own process.

By hand: ``python -m passkt.train 04_grpo --replicate I [--params FILE] [--set key=value]`` resolves the stage's
parameters as the runner does and trains every run of replicate I in this process (prefix it with a launcher).
"""

from __future__ import annotations

import argparse
import json
import shlex
import subprocess
import sys
from pathlib import Path

from passkt.config import ConfigError

STAGE = "04_grpo"
KEYS = ("seed", "replicate", "sampling", "grpo", "bonus", "bonus_replicates")  # what the training reads


def run_names(params: dict) -> list[str]:
    """The GRPO runs of the replicate in ``params`` (``rl``, and ``rl_bonus`` in the first bonus replicates)."""
    from passkt import grpo

    return list(grpo.replicate_runs(params["grpo"], params["sampling"], params["bonus"], params["bonus_replicates"],
                                    params["replicate"], 0))


def train_stage(root, params: dict, only: str | None = None) -> dict:
    """Train the GRPO runs of ``params['replicate']`` (or just run ``only``); returns {run name: result}."""
    from transformers import AutoTokenizer

    from passkt import grpo, models, sft
    from passkt.meta import seed_everything
    from passkt.paths import Paths, replicate_seed

    r = params["replicate"]
    P = Paths(root, r)
    train_seed = replicate_seed(params["seed"], r)
    runs = grpo.replicate_runs(params["grpo"], params["sampling"], params["bonus"], params["bonus_replicates"], r,
                               train_seed)
    if only is not None and only not in runs:
        raise ConfigError(f"--run {only!r}: replicate {r} trains {sorted(runs)}")
    seed_everything(train_seed)
    base_dir = models.base_model_location(P.data("01_base_model"))
    tok = AutoTokenizer.from_pretrained(base_dir)
    train = sft.training_problems(P.problems)
    return {name: grpo.train_grpo(base_dir, train, tok, P.grpo_run(bonus=s.bonus > 0), s,
                                  params["sampling"]["search_k"]) for name, s in runs.items() if only in (None, name)}


def launch(launcher: str, params: dict, root: str | Path = ".") -> list[list[str]]:
    """Train every run of the replicate with ``launcher`` (from the notebook): one launched process group per run.

    Writes the parameters the workers read, runs them in turn (``CalledProcessError`` if one fails) and returns the
    commands. The launcher's processes import this checkout's library (the same ``PYTHONPATH``)."""
    from passkt.paths import Paths

    missing = [k for k in KEYS if k not in params]
    if missing:
        raise ValueError(f"launch: parameters {missing} missing")
    P = Paths.at(root, params["replicate"])
    root = P.root
    path = P.data(STAGE) / "launch_params.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({k: params[k] for k in KEYS}, indent=2, sort_keys=True) + "\n")
    cmds = []
    for name in run_names(params):
        cmd = [*shlex.split(launcher), "-m", "passkt.train", "--params-json", str(path), "--run", name]
        print(f"passkt.train: launching {shlex.join(cmd)}", flush=True)
        subprocess.run(cmd, cwd=root, check=True)
        cmds.append(cmd)
    return cmds


def main(argv: list[str] | None = None) -> int:
    from passkt.paths import find_root

    ap = argparse.ArgumentParser(prog="python -m passkt.train", description=__doc__.split("\n\n")[0])
    ap.add_argument("stage", nargs="?", choices=[STAGE], help="resolve the stage's parameters from --params")
    ap.add_argument("--replicate", type=int, default=None, metavar="I")
    ap.add_argument("--params", default="params.yaml", help="params file (default: params.yaml)")
    ap.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    ap.add_argument("--params-json", type=Path, default=None, help="parameters written by launch() (the notebook's)")
    ap.add_argument("--run", default=None, metavar="NAME", help="train this run only (rl | rl_bonus)")
    args = ap.parse_args(argv)
    try:
        root = find_root(".")
        if args.params_json is not None:
            params = json.loads(args.params_json.read_text())
        elif args.stage is not None and args.replicate is not None:
            from passkt.run import resolve

            params = resolve(root, args.stage, args.params, args.overrides, args.replicate)
        else:
            raise ConfigError("pass --params-json FILE, or a stage and --replicate I")
        results = train_stage(root, params, args.run)
    except (ConfigError, FileNotFoundError) as e:
        print(f"passkt.train: error: {e}", file=sys.stderr)
        return 2
    from passkt.grpo import process_state

    if process_state().is_main_process:
        print(json.dumps({k: {x: v[x] for x in ("steps", "seconds", "processes") if x in v}
                          for k, v in results.items()}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
