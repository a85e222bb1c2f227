"""What a cached result depends on, derived rather than listed: import closures, content digests, markers.

Three uses, one mechanism:

- **DVC deps.** Each stage's library deps are the ``passkt`` import closure of its notebook (plus the runner's),
  computed from the source with ``ast``; ``python -m passkt.integrity deps --write`` rewrites ``dvc.yaml`` and a
  contract test (``tests/test_integrity.py``) fails when they drift.
- **Shard and checkpoint fingerprints.** :func:`code_version` hashes the source of every module in a closure, so
  rollout shards and training checkpoints are reused only by the code that wrote them (the sampling path's
  closure deliberately excludes :mod:`passkt.scoring`: scores are derived at analysis time, never cached).
- **Finished units.** :func:`finished_result` / :func:`mark_done` let a heavy unit (a trained model) be skipped on a
  rerun when its fingerprint matches, and redone when it does not.

Every import counts, at module level or inside a function: a lazy import is still a dependency.
"""

from __future__ import annotations

import ast
import hashlib
import json
import os
import sys
from functools import lru_cache
from pathlib import Path
from typing import Iterable

LIB = Path(__file__).resolve().parent  # lib/passkt
PACKAGE = "passkt"

# Module roots whose closure is what a rollout shard depends on (with the problems, model and settings).
SAMPLING_ROOTS = ("passkt.sampling",)
# Module roots of the scorer: recorded next to any score a stage has to keep (the GRPO reward log).
SCORER_ROOTS = ("passkt.scoring",)
# Every stage is executed by the runner, so its closure is part of every stage's deps.
RUNNER_ROOTS = ("passkt.run",)


def module_file(name: str) -> Path:
    """Source file of a ``passkt`` module name (``passkt.rollout`` -> lib/passkt/rollout.py)."""
    if name == PACKAGE:
        return LIB / "__init__.py"
    rel = name.split(".", 1)[1].replace(".", "/")
    f = LIB / f"{rel}.py"
    return f if f.exists() else LIB / rel / "__init__.py"


def _is_module(name: str) -> bool:
    return module_file(name).exists()


def imports_of_source(source: str, origin: str = "<source>") -> set[str]:
    """``passkt`` modules imported anywhere in ``source`` (module level, functions, ``from passkt import x``)."""
    try:
        tree = ast.parse(source)
    except SyntaxError as e:
        raise SyntaxError(f"cannot parse {origin}: {e}") from e
    out: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for a in node.names:
                if a.name == PACKAGE or a.name.startswith(PACKAGE + "."):
                    out.add(a.name)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if node.module == PACKAGE or node.module.startswith(PACKAGE + "."):
                out.add(node.module)
                for a in node.names:  # ``from passkt import rollout`` imports the module passkt.rollout
                    if _is_module(f"{node.module}.{a.name}"):
                        out.add(f"{node.module}.{a.name}")
    out.discard(PACKAGE)  # lib/passkt/__init__.py holds a docstring only; it is in no closure
    return {m for m in out if _is_module(m)}


@lru_cache(maxsize=None)
def _direct_imports(name: str) -> frozenset[str]:
    f = module_file(name)
    return frozenset(imports_of_source(f.read_text(), str(f)))


def closure(roots: Iterable[str]) -> list[str]:
    """The sorted ``passkt`` modules reachable from ``roots`` by imports (roots included)."""
    seen: set[str] = set()
    todo = [r for r in roots]
    while todo:
        m = todo.pop()
        if m in seen:
            continue
        if not _is_module(m):
            raise ModuleNotFoundError(f"no passkt module {m!r} (looked for {module_file(m)})")
        seen.add(m)
        todo.extend(_direct_imports(m) - seen)
    return sorted(seen)


def notebook_source(path: str | Path) -> str:
    """The code cells of a notebook as one Python source (IPython magics and shell lines dropped)."""
    nb = json.loads(Path(path).read_text())
    lines = []
    for cell in nb["cells"]:
        if cell["cell_type"] != "code":
            continue
        src = "".join(cell["source"])
        lines += [ln for ln in src.splitlines() if not ln.lstrip().startswith(("%", "!"))]
    return "\n".join(lines) + "\n"


def notebook_modules(path: str | Path) -> list[str]:
    """The ``passkt`` import closure of a notebook, including the runner that executes it."""
    direct = imports_of_source(notebook_source(path), str(path))
    return closure([*direct, *RUNNER_ROOTS])


def module_paths(modules: Iterable[str], root: str | Path | None = None) -> list[str]:
    """Module names as repository-relative POSIX paths (``lib/passkt/rollout.py``)."""
    root = Path(root) if root else LIB.parents[1]
    return sorted(module_file(m).relative_to(root).as_posix() for m in modules)


def code_version(roots: Iterable[str]) -> dict:
    """``{"hash": ..., "modules": [...]}``: a digest of the source of every module in the closure of ``roots``."""
    mods = closure(roots)
    h = hashlib.sha256()
    for m in mods:
        h.update(m.encode() + b"\0" + module_file(m).read_bytes() + b"\0")
    return {"hash": h.hexdigest()[:16], "modules": mods}


def scorer_version() -> str:
    return code_version(SCORER_ROOTS)["hash"]


def digest(path: str | Path, chunk: int = 1 << 22) -> str:
    """Full content digest of a file or a folder (relative names and bytes of every file, in sorted order)."""
    p = Path(path)
    if not p.exists():
        raise FileNotFoundError(f"cannot digest {p}: no such file or folder")
    files = [p] if p.is_file() else sorted(f for f in p.rglob("*") if f.is_file())
    h = hashlib.sha256()
    for f in files:
        h.update((f.relative_to(p).as_posix() if p.is_dir() else f.name).encode() + b"\0")
        with open(f, "rb") as fh:
            while block := fh.read(chunk):
                h.update(block)
    return h.hexdigest()[:16]


def _plain(o):
    """JSON form of what json cannot encode: arrays and columns by content (never their ``str``, which may be a
    truncated preview), paths as text. Anything else is an error, not a silent ``repr``."""
    if hasattr(o, "tolist"):
        return o.tolist()
    if isinstance(o, Path):
        return str(o)
    if isinstance(o, (set, frozenset)):
        return sorted(o, key=repr)
    if hasattr(o, "__iter__") and not isinstance(o, (str, bytes)):
        return list(o)
    raise TypeError(f"cannot fingerprint a {type(o).__name__}: pass its content")


def fingerprint(obj) -> str:
    """A short content digest of ``obj`` (dicts by sorted keys; sequences and arrays element by element)."""
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=_plain).encode()).hexdigest()[:16]


# ------------------------------------------------------------------------------------- finished units

DONE_FILE = "DONE.json"


def write_json_atomic(obj, path: str | Path) -> None:
    """Write ``obj`` as JSON to ``path`` all or nothing (a temporary file of this process, then a rename)."""
    path = Path(path)
    tmp = path.with_name(f"{path.name}.tmp{os.getpid()}")
    tmp.write_text(json.dumps(obj, sort_keys=True, default=str) + "\n")
    os.replace(tmp, path)


def finished_result(folder: str | Path, fp: str) -> dict | None:
    """The result stored by :func:`mark_done` if ``folder`` holds a unit finished with fingerprint ``fp``
    (marked ``reused``), else None: the caller then runs the unit."""
    try:
        done = json.loads((Path(folder) / DONE_FILE).read_text())
    except (OSError, ValueError):
        return None
    return {**done.get("result", {}), "reused": True} if done.get("fingerprint") == fp else None


def mark_done(folder: str | Path, fp: str, **info) -> None:
    """Mark ``folder`` finished (last, atomically): a kill before this line leaves the unit unfinished."""
    write_json_atomic({"fingerprint": fp, **info}, Path(folder) / DONE_FILE)


def clear_done(folder: str | Path) -> None:
    (Path(folder) / DONE_FILE).unlink(missing_ok=True)


def claim_checkpoints(ckpt_dir: str | Path, fp: str) -> bool:
    """Make ``ckpt_dir`` hold checkpoints of fingerprint ``fp`` only: those of another run are deleted (logged).

    Returns True if anything was discarded. A resumed training run therefore never continues from a checkpoint
    written by other code, another base model, other data or other settings.
    """
    import shutil

    d = Path(ckpt_dir)
    marker = d / "FINGERPRINT.json"
    old = None
    if marker.exists():
        try:
            old = json.loads(marker.read_text()).get("fingerprint")
        except ValueError:
            old = "unreadable"
    stale = d.exists() and any(d.iterdir()) and old != fp
    if stale:
        print(f"[checkpoints] discarding {d}: written by run {old}, this run is {fp}", flush=True)
        shutil.rmtree(d)
    d.mkdir(parents=True, exist_ok=True)
    write_json_atomic({"fingerprint": fp}, marker)
    return stale


# ------------------------------------------------------------------------------------------ DVC deps


# Stages that run a library module instead of a notebook (``cmd: python -m <module>``).
MODULE_STAGES = {"publish": "passkt.publish"}


def stage_lib_deps(root: str | Path, stage: str) -> list[str]:
    root = Path(root)
    if stage in MODULE_STAGES:
        return module_paths(closure([MODULE_STAGES[stage]]))
    return module_paths(notebook_modules(root / "notebooks" / f"{stage}.ipynb"))


def check_dvc_deps(root: str | Path) -> dict[str, dict[str, list[str]]]:
    """Per stage, the library files its notebook needs but ``dvc.yaml`` lacks, and those listed but not needed."""
    import yaml

    root = Path(root)
    stages = yaml.safe_load((root / "dvc.yaml").read_text())["stages"]
    out = {}
    for stage, spec in stages.items():
        spec = spec.get("do", spec)  # a foreach stage: its template
        listed = {d for d in spec.get("deps", []) if isinstance(d, str) and d.startswith("lib/passkt/")}
        need = set(stage_lib_deps(root, stage))
        out[stage] = {"missing": sorted(need - listed), "extra": sorted(listed - need)}
    return out


def write_dvc_deps(root: str | Path) -> bool:
    """Rewrite each stage's ``lib/passkt`` deps in dvc.yaml to its derived closure; True if anything changed.

    Only the library lines of each ``deps:`` list are replaced (data deps and everything else stay as written).
    """
    root = Path(root)
    path = root / "dvc.yaml"
    lines = path.read_text().splitlines()
    out, stage, i, changed = [], None, 0, False
    while i < len(lines):
        ln = lines[i]
        if ln.startswith("  ") and not ln.startswith("    ") and ln.rstrip().endswith(":"):
            stage = ln.strip()[:-1]
        if stage and ln.strip() == "deps:" and ((root / "notebooks" / f"{stage}.ipynb").exists()
                                                 or stage in MODULE_STAGES):
            out.append(ln)
            depth = len(ln) - len(ln.lstrip())
            i += 1
            old = []  # the list items (block style, indented or not)
            while i < len(lines) and lines[i].lstrip().startswith("- ") and len(lines[i]) - len(lines[i].lstrip()) >= depth:
                old.append(lines[i])
                i += 1
            indent = old[0][: len(old[0]) - len(old[0].lstrip())] if old else " " * (depth + 2)
            keep = [x for x in old if not x.strip()[2:].startswith("lib/passkt/")]
            new = keep + [f"{indent}- {p}" for p in stage_lib_deps(root, stage)]
            changed |= new != old
            out += new
            continue
        out.append(ln)
        i += 1
    if changed:
        path.write_text("\n".join(out) + "\n")
    return changed


def main(argv: list[str] | None = None) -> int:
    import argparse

    ap = argparse.ArgumentParser(prog="python -m passkt.integrity", description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    d = sub.add_parser("deps", help="check (or --write) each dvc.yaml stage's lib deps against its import closure")
    d.add_argument("--write", action="store_true")
    d.add_argument("--root", default=".")
    args = ap.parse_args(argv)
    from passkt.paths import find_root

    root = find_root(args.root)
    if args.write:
        print("dvc.yaml updated" if write_dvc_deps(root) else "dvc.yaml already matches the import closures")
        return 0
    bad = {s: d for s, d in check_dvc_deps(root).items() if d["missing"] or d["extra"]}
    for s, d in bad.items():
        print(f"{s}: missing {d['missing']}, not needed {d['extra']}")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
