"""The smoke pipeline behind the `smoke_repo` fixture (tests/conftest.py): a temporary copy of the repository with
configs/smoke.yaml as its params.yaml, run once per test session with `dvc repro` through the real runner.

The copy imports the library from its own lib/ (PYTHONPATH), so the code under test is this checkout's even where
the editable install points elsewhere.
"""

import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def load_tool(name: str, alias: str | None = None):
    """A script of tools/ as a module (tools/ is no package): ``load_tool("readme_results")``."""
    import importlib.util

    spec = importlib.util.spec_from_file_location(alias or name, ROOT / "tools" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


_IGNORE = shutil.ignore_patterns(".venv", ".git", "data", "figures", "results", "__pycache__", "cache", "tmp", "*.egg-info",
                                 ".hypothesis", ".pytest_cache")


def _ignore(folder: str, names: list[str]) -> set[str]:
    """What a fresh copy leaves out: outputs, caches, and the support sweep's workspaces and lock (its own runs)."""
    out = set(_IGNORE(folder, names))
    if Path(folder).resolve() == ROOT / "sweep":
        out |= {"points", "dvc.lock"} & set(names)
    return out


def copy_repo(dst: Path, params: Path) -> Path:
    shutil.copytree(ROOT, dst, ignore=_ignore)
    shutil.copy(params, dst / "params.yaml")
    for cmd in (["git", "init", "-q"], ["git", "add", "-A"],
                ["git", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "pipeline"]):
        subprocess.run(cmd, cwd=dst, check=True)
    return dst


def env(repo: Path, lib: Path | None = None) -> dict:
    out = {"PATH": f"{BIN}:/usr/bin:/bin", "HF_HUB_OFFLINE": "1", "HOME": str(repo), "TOKENIZERS_PARALLELISM": "false"}
    if lib is not None:  # import the library from this folder, not the editable install
        out["PYTHONPATH"] = str(lib)
    return out


def run_smoke(dst: Path) -> Path:
    dst = copy_repo(dst, ROOT / "configs" / "smoke.yaml")
    r = subprocess.run([str(BIN / "dvc"), "repro"], cwd=dst, capture_output=True, text=True, env=env(dst, dst / "lib"),
                       timeout=900)
    assert r.returncode == 0, (r.stdout[-3000:], r.stderr[-3000:])
    return dst
