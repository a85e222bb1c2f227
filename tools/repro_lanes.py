"""`dvc repro` with independent units side by side: the same stages, outputs and `dvc.lock`, in less wall time.

    python tools/repro_lanes.py                  # `make reproduce LANES=<CPUs>` (lanes: the CPU count)
    python tools/repro_lanes.py --lanes 1        # one unit at a time, as plain `dvc repro`
    python tools/repro_lanes.py --dry-run        # the units, what each waits for, and the order they start in

`dvc repro` runs one stage at a time. After the base model, the base rollouts and every SFT and GRPO replicate
depend only on stages 00-01, so they can run at once. Whether that pays depends on the machine: on the 2-core
reference machine a GRPO step runs about 1.5x faster with two threads than with one, so two one-thread lanes train
more per minute than one two-thread unit, but sampling gains nothing, and a whole fresh-clone run with two lanes was
no faster than one unit at a time (docs/wall_times.md). So `make reproduce` runs plain `dvc repro` unless asked for
lanes (``LANES=N``). This driver reads dvc.yaml (``foreach`` expanded over ``params.yaml``'s
``replicates``), orders the units by what they read of each other's outputs, and starts each one as
``dvc --wait-for-lock repro --single-item UNIT`` as soon as everything it reads is done, at most ``--lanes`` at a
time, the longest chain first (by the last clean timing of each unit: the fresh clone's in
``docs/data/fresh_clone/run.json``, else the committed run's ``results/run_meta``). Units of more than a minute that
run or wait side by side share the CPUs (``OMP_NUM_THREADS`` = CPUs // their number, at most ``--lanes``); a unit
with no long unit beside it gets no thread setting, as under plain `dvc repro` (so ``--lanes 1`` is plain
`dvc repro`, one unit after another). On this CPU the thread count changes no number: training and sampling give
the same weights and rollouts with one thread or two (``tests/test_lanes.py``, and a fresh clone's whole run against
the committed results, docs/wall_times.md). DVC still decides per unit whether it is up to date, restores it from
its cache, or runs it (a finished unit is skipped, a killed one resumes, as with `dvc repro`). A profile that puts
work on a GPU or in a launcher (the paper profile) runs one unit at a time.

Each unit's output goes to ``.dvc/tmp/lanes/<unit>.log``; the terminal gets a line per start and finish. If a
unit fails, no new unit starts, the running ones finish, and the command exits 1 naming the unit and its log. At
the end `dvc status` must find the whole pipeline up to date, or the command exits 1.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
LONG = 60.0  # seconds: a unit expected to take less runs beside others without taking a lane's share from them


def units(root: Path = ROOT) -> dict[str, dict]:
    """dvc.yaml's stages as runnable units: name -> {"deps": [...], "outs": [...]} (``foreach`` expanded)."""
    spec = yaml.safe_load((root / "dvc.yaml").read_text())["stages"]
    params = yaml.safe_load((root / "params.yaml").read_text())

    def paths(entries):
        return [e if isinstance(e, str) else next(iter(e)) for e in entries or []]

    def unit(name, body, sub=lambda p: p):
        if "matrix" in body:
            raise SystemExit(f"repro_lanes: stage {name} uses `matrix`, which this driver does not expand; "
                             "run `dvc repro` instead")
        found = {"deps": [sub(p) for p in paths(body.get("deps"))],
                 "outs": [sub(p) for key in ("outs", "metrics", "plots") for p in paths(body.get(key))
                          if isinstance(p, str)]}
        left = [p for ps in found.values() for p in ps if "${" in p]
        if left:
            raise SystemExit(f"repro_lanes: stage {name}: cannot expand {left[0]!r}; run `dvc repro` instead")
        return found

    out = {}
    for name, stage in spec.items():
        if "foreach" in stage:
            key = re.fullmatch(r"\$\{([\w.]+)\}", str(stage["foreach"]).strip())
            items = stage["foreach"]
            if key:
                items = params
                for part in key.group(1).split("."):
                    if not isinstance(items, dict) or part not in items:
                        raise SystemExit(f"repro_lanes: stage {name}: params.yaml has no {key.group(1)}")
                    items = items[part]
            if not isinstance(items, list):
                raise SystemExit(f"repro_lanes: stage {name}: foreach over {type(items).__name__} is not supported "
                                 "(a list only); run `dvc repro` instead")
            for item in items:
                out[f"{name}@{item}"] = unit(name, stage["do"], lambda p, item=item: p.replace("${item}", str(item)))
        else:
            out[name] = unit(name, stage)
    return out


def gpu_settings(root: Path = ROOT) -> list[str]:
    """The params.yaml settings that put work on a GPU or in a launcher of its own (``device`` other than cpu, the
    vLLM backend, ``use_vllm``, a ``launcher``): units that may not share the machine."""
    found = []

    def walk(node, path):
        if isinstance(node, dict):
            for k, v in node.items():
                here = f"{path}.{k}" if path else str(k)
                if (k == "device" and v not in ("cpu", None, "")) or (k == "backend" and v == "vllm") \
                        or (k == "use_vllm" and v is True) or (k == "launcher" and v):
                    found.append(f"{here}: {v}")
                walk(v, here)

    walk(yaml.safe_load((root / "params.yaml").read_text()), "")
    return found


def _within(a: str, b: str) -> bool:
    """Is path ``a`` the same as ``b`` or inside or above it (one reads what the other writes)?"""
    a, b = a.rstrip("/"), b.rstrip("/")
    return a == b or a.startswith(b + "/") or b.startswith(a + "/")


def upstream(graph: dict[str, dict]) -> dict[str, set[str]]:
    """unit -> the units whose outputs it reads."""
    return {u: {v for v, w in graph.items() if v != u and any(_within(d, o) for d in g["deps"] for o in w["outs"])}
            for u, g in graph.items()}


def expected_seconds(root: Path = ROOT) -> dict[str, float]:
    """Each unit's expected wall seconds, keyed like the units: the fresh clone's timing where there is one
    (``docs/data/fresh_clone/run.json``: a whole run alone on the machine), else the committed run's
    ``results/run_meta/<stage>[.r<R>].json``. A replicated stage's replicate 0 has no suffix in either."""
    walls: dict[str, float] = {}
    for f in (root / "results" / "run_meta").glob("*.json"):
        try:
            walls[f.stem] = float(json.loads(f.read_text())["wall_s"])
        except (KeyError, TypeError, ValueError, json.JSONDecodeError):
            continue
    fresh = root / "docs" / "data" / "fresh_clone" / "run.json"
    if fresh.exists():
        walls.update(json.loads(fresh.read_text()).get("wall_s", {}))
    out = {}
    for key, wall in walls.items():
        stage, _, rep = key.partition(".r")
        out[f"{stage}@{rep or 0}"] = float(wall)
        if not rep:
            out[stage] = float(wall)
    return out


def plan(graph: dict[str, dict], cost: dict[str, float]) -> dict[str, float]:
    """Priority of each unit: the longest chain of expected seconds from it to the end (critical path first)."""
    ups = upstream(graph)
    downs = {u: {v for v in graph if u in ups[v]} for u in graph}
    memo: dict[str, float] = {}

    def tail(u: str) -> float:
        if u not in memo:
            own = cost.get(u, LONG)
            memo[u] = own + max((tail(v) for v in downs[u]), default=0.0)
        return memo[u]

    return {u: tail(u) for u in graph}


def run(lanes: int, dry_run: bool = False, root: Path = ROOT, dvc: str = "dvc") -> int:
    graph = units(root)
    ups = upstream(graph)
    gpu = gpu_settings(root)
    if gpu and lanes > 1:
        print(f"repro_lanes: one unit at a time ({'; '.join(gpu)}: GPU work does not share the machine)")
        lanes = 1
    cost = expected_seconds(root)
    priority = plan(graph, cost)
    cpus = _cpus()
    if dry_run:
        for u in sorted(graph, key=lambda u: -priority[u]):
            print(f"{u:22s} waits for {', '.join(sorted(ups[u])) or 'nothing'}; critical path {priority[u] / 60:.1f} min")
        return 0
    logs = root / ".dvc" / "tmp" / "lanes"
    logs.mkdir(parents=True, exist_ok=True)
    t_start = time.time()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # a killed driver stops its units too (finally below)
    running: dict[str, tuple[subprocess.Popen, float]] = {}  # unit -> its `dvc repro` and when it started
    try:
        return _loop(graph, ups, priority, cost, lanes, cpus, root, dvc, logs, t_start, running)
    finally:
        for proc, _ in running.values():
            if proc.poll() is None:
                proc.terminate()
                proc.wait()


def _loop(graph, ups, priority, cost, lanes, cpus, root, dvc, logs, t_start, running) -> int:
    done: set[str] = set()
    failed: list[str] = []
    while len(done) + len(failed) < len(graph):
        ready = sorted((u for u in graph if u not in done and u not in running and u not in failed
                        and ups[u] <= done), key=lambda u: -priority[u])
        if failed:
            ready = []
        while ready and len(running) < lanes:
            u = ready.pop(0)
            # long units (over a minute) running or waiting, this one included: each gets a share of the CPUs; a
            # unit alone, or a long one beside short ones only (05_pass_at_k), runs as plain `dvc repro` would
            # (no thread setting); a short one beside others gets one thread
            long_units = [v for v in [u, *running, *ready] if cost.get(v, LONG) >= LONG]
            beside = len(running) + len(ready) > 0
            if lanes == 1:
                threads = None
            elif cost.get(u, LONG) < LONG:
                threads = 1 if beside else None
            else:
                threads = max(1, cpus // min(lanes, len(long_units))) if len(long_units) > 1 else None
            env = dict(os.environ)
            if threads is not None:
                env.update(OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))
            with open(logs / f"{u}.log", "w") as log:  # the child keeps its own handle
                proc = subprocess.Popen([dvc, "--wait-for-lock", "repro", "--single-item", u], cwd=root, env=env,
                                        stdout=log, stderr=subprocess.STDOUT)
            running[u] = (proc, time.time())
            what = "default threads" if threads is None else f"{threads} thread{'s' * (threads > 1)}"
            print(f"[{_clock(t_start)}] start  {u} ({what})", flush=True)
        if not running:
            if not failed:
                left = sorted(set(graph) - done)
                print(f"repro_lanes: cannot start {', '.join(left)}: they wait for each other", file=sys.stderr)
                return 1
            break  # nothing runs and nothing can start: only units behind a failure are left
        time.sleep(0.5)
        for u, (proc, t0) in list(running.items()):
            if proc.poll() is None:
                continue
            del running[u]
            if proc.returncode == 0:
                done.add(u)
                print(f"[{_clock(t_start)}] done   {u} in {(time.time() - t0) / 60:.1f} min", flush=True)
            else:
                failed.append(u)
                print(f"[{_clock(t_start)}] FAILED {u} (exit {proc.returncode}); its log: {logs / f'{u}.log'}",
                      flush=True)
    if failed:
        left = sorted(set(graph) - done - set(failed))
        print(f"repro_lanes: {', '.join(failed)} failed (logs in {logs}); not started: {', '.join(left) or 'none'}",
              file=sys.stderr)
        return 1
    status = subprocess.run([dvc, "status", "--json", "dvc.yaml"], cwd=root, capture_output=True, text=True)
    stale = json.loads(status.stdout or "null") if status.returncode == 0 else None
    if stale != {}:  # every unit ran: DVC must find the whole pipeline up to date
        print(f"repro_lanes: `dvc status` after the run: {sorted(stale) if stale else status.stderr.strip()}",
              file=sys.stderr)
        return 1
    print(f"[{_clock(t_start)}] all {len(graph)} units done with {lanes} lane(s); `dvc status`: up to date")
    return 0


def _cpus() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def _clock(t0: float) -> str:
    s = int(time.time() - t0)
    return f"{s // 60:3d}:{s % 60:02d}"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--lanes", type=int, default=_cpus(), help="units at once (default: the CPU count)")
    ap.add_argument("--dry-run", action="store_true", help="print the units and their order, run nothing")
    args = ap.parse_args(argv)
    if args.lanes < 1:
        ap.error(f"--lanes must be at least 1, got {args.lanes}")
    return run(args.lanes, args.dry_run)


if __name__ == "__main__":
    sys.exit(main())
