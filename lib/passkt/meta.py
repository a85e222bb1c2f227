"""Run metadata (run_meta.json) and seeding: what a reader needs to trace a number back to its run."""

from __future__ import annotations

import importlib.metadata as im
import os
import platform
import random
import subprocess
import sys
from pathlib import Path

PACKAGES = (
    "passkt", "torch", "transformers", "trl", "peft", "accelerate", "datasets", "tokenizers", "bm25s",
    "papermill", "dvc", "numpy", "scipy", "pandas", "pyarrow", "matplotlib", "seaborn", "vllm",
)


def seed_everything(seed: int) -> None:
    """Seed Python, numpy and torch (if importable) from one integer."""
    random.seed(seed)
    try:
        import numpy as np

        np.random.seed(seed % 2**32)
    except ImportError:
        pass
    try:
        import torch

        torch.manual_seed(seed)
    except ImportError:
        pass


def git_state(root: str | Path) -> dict:
    def git(*args: str) -> str:
        try:
            return subprocess.run(["git", *args], cwd=root, capture_output=True, text=True, check=True).stdout.strip()
        except (OSError, subprocess.CalledProcessError):
            return ""

    commit = git("rev-parse", "HEAD") or None
    # data/ and figures/ are DVC outputs (git-ignored); anything else modified makes the run "dirty", except
    # the lock files (dvc.lock, sweep/dvc.lock), which `dvc repro` itself rewrites between stages.
    status = git("status", "--porcelain", "--untracked-files=no").splitlines()
    changed = [ln for ln in status if Path(ln.split(maxsplit=1)[-1]).name != "dvc.lock"]
    dirty = bool(changed) if commit else None
    return {"commit": commit, "dirty": dirty}


def package_versions(names=PACKAGES) -> dict:
    out = {}
    for n in names:
        try:
            out[n] = im.version(n)
        except im.PackageNotFoundError:
            out[n] = None
    return out


def device_info() -> dict:
    info = {"platform": platform.platform(), "cpu_count": os.cpu_count(), "machine": platform.machine()}
    try:
        import torch

        info["torch_threads"] = torch.get_num_threads()
        info["cuda"] = torch.cuda.is_available()
        if info["cuda"]:
            info["gpus"] = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
    except ImportError:
        info["cuda"] = False
    return info


def run_meta(root: str | Path, stage: str, params: dict, start: float, end: float, **extra) -> dict:
    """Everything about one stage run, for ``data/<stage>/run_meta.json``."""
    from datetime import datetime, timezone

    def iso(t: float) -> str:
        return datetime.fromtimestamp(t, tz=timezone.utc).isoformat(timespec="seconds")

    return {
        "stage": stage,
        "git": git_state(root),
        "params": params,
        "seed": params.get("seed"),
        "base_seed": params.get("base_seed"),
        "profile": params.get("profile"),
        "python": sys.version.split()[0],
        "packages": package_versions(),
        "device": device_info(),
        "start": iso(start),
        "end": iso(end),
        "wall_s": round(end - start, 2),
        **extra,
    }
