"""`dvc repro` with independent units side by side: the same stages, outputs and `dvc.lock`, in less wall time.

    python tools/repro_lanes.py                  # what `make reproduce` runs (lanes: the CPU count)
    python tools/repro_lanes.py --lanes 1        # one unit at a time, as plain `dvc repro`
    python tools/repro_lanes.py --dry-run        # the units, what each waits for, and the order they start in

`dvc repro` runs one stage at a time. After the base model, the base rollouts and every SFT and GRPO replicate
depend only on stages 00-01, so they can run at once. On a small CPU that pays: a GRPO step of the tiny model
keeps two threads only partly busy, so two units with one thread each finish more work per minute than one unit
with two (docs/wall_times.md). This driver reads dvc.yaml (``foreach`` expanded over ``params.yaml``'s
``replicates``), orders the units by what they read of each other's outputs, and starts each one as
``dvc --wait-for-lock repro --single-item UNIT`` as soon as everything it reads is done, at most ``--lanes`` at a
time, the longest chain first (by the last clean timing of each unit: the fresh clone's in
``docs/data/fresh_clone/run.json``, else the committed run's ``results/run_meta``). A unit that starts while another
unit of more than a minute runs or waits beside it gets ``CPUs // lanes`` threads (``OMP_NUM_THREADS``); otherwise
it gets every CPU. The thread count changes no number: training and sampling are the same bit for bit with one thread or
two (``tests/test_lanes.py``), and DVC still decides per unit whether it is up to date, restores it from its
cache, or runs it (a finished unit is skipped, a killed one resumes, as with `dvc repro`).

Each unit's output goes to ``.dvc/tmp/lanes/<unit>.log``; the terminal gets a line per start and finish. If a
unit fails, no new unit starts, the running ones finish, and the command exits 1 naming the unit and its log. At
the end a plain `dvc repro` confirms that nothing is left to run (it finds every unit up to date).
"""

from __future__ import annotations

import argparse
import json
import os
import re
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

    out = {}
    for name, stage in spec.items():
        if "foreach" in stage:
            key = re.fullmatch(r"\$\{(\w+)\}", str(stage["foreach"]).strip())
            items = params[key.group(1)] if key else stage["foreach"]
            for item in items:
                sub = lambda p, item=item: p.replace("${item}", str(item))  # noqa: E731
                do = stage["do"]
                out[f"{name}@{item}"] = {"deps": [sub(p) for p in paths(do.get("deps"))],
                                         "outs": [sub(p) for p in paths(do.get("outs"))]}
        else:
            out[name] = {"deps": paths(stage.get("deps")), "outs": paths(stage.get("outs"))}
    return out


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
    cost = expected_seconds(root)
    priority = plan(graph, cost)
    cpus = _cpus()
    if dry_run:
        for u in sorted(graph, key=lambda u: -priority[u]):
            print(f"{u:22s} waits for {', '.join(sorted(ups[u])) or 'nothing'}; critical path {priority[u] / 60:.1f} min")
        return 0
    logs = root / ".dvc" / "tmp" / "lanes"
    logs.mkdir(parents=True, exist_ok=True)
    done: set[str] = set()
    running: dict[str, tuple[subprocess.Popen, float, int]] = {}
    failed: list[str] = []
    t_start = time.time()
    while len(done) + len(failed) < len(graph):
        ready = sorted((u for u in graph if u not in done and u not in running and u not in failed
                        and ups[u] <= done), key=lambda u: -priority[u])
        if failed:
            ready = []
        while ready and len(running) < lanes:
            u = ready.pop(0)
            # a share of the CPUs where another unit runs (or waits to run) beside it for more than a minute, else
            # all of them: a unit of seconds (05_pass_at_k) beside a long one leaves the long one every CPU
            others = [v for v in list(running) + ready if cost.get(v, LONG) >= LONG]
            threads = max(1, cpus // lanes) if others else cpus
            env = dict(os.environ, OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))
            log = open(logs / f"{u}.log", "w")
            proc = subprocess.Popen([dvc, "--wait-for-lock", "repro", "--single-item", u], cwd=root, env=env,
                                    stdout=log, stderr=subprocess.STDOUT)
            running[u] = (proc, time.time(), threads)
            print(f"[{_clock(t_start)}] start  {u} ({threads} thread{'s' * (threads > 1)})", flush=True)
        if not running:
            break  # nothing runs and nothing can start: only units behind a failure are left
        time.sleep(0.5)
        for u, (proc, t0, _) in list(running.items()):
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
    final = subprocess.run([dvc, "repro"], cwd=root)  # every unit is up to date: a check, not a run
    print(f"[{_clock(t_start)}] all {len(graph)} units done with {lanes} lane(s)")
    return final.returncode


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
