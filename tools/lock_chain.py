"""Did a DVC stage read what its upstream stage last wrote? Checked from lock files alone (plus the cache if present).

A stage's dvc.lock entry records the hash of every dependency it read; the producing stage's entry records the hash
of what it wrote. Where the two paths are the same, comparing the hashes is enough. They often are not:

- a stage reads a folder whose parts are written by several units (``data/04_grpo`` holds ``r0``, ``r1``, ``r2``,
  one ``04_grpo@i`` unit each): DVC's hash of the folder is the MD5 of the sorted (relpath, md5) list of its files,
  which the units' own folder manifests give exactly when the DVC cache holds them; without a cache (a fresh clone)
  the folder's recorded size and file count must still equal the sum of the units' (a necessary condition only);
- a stage reads a file or folder inside another stage's output (``data/05_pass_at_k/metrics.json``): the producer's
  manifest in the cache gives the file's hash; without a cache, where the other lock's own stages read the same path
  (the publish stage reads that file), their recorded hash is the witness; else it cannot be checked here.

So a partial rerun that left a reader on an older upstream output is caught exactly wherever the cache is, and by
size where it is not. Used by tests/test_results.py (the default pipeline) and tools/readme_results.py (whether the
support sweep's summary is current).
"""

from __future__ import annotations

import configparser
import hashlib
import json
from pathlib import Path

EXACT, COMPOSITE, SIZE = "exact", "manifest", "size and file count"
SEEN, UNCHECKED = "another stage's read", "not checkable without the cache"


def outputs(lock: dict) -> dict[str, tuple[str, dict]]:
    """path -> (unit, its out entry) of every output a lock's stages record (``lock`` is the ``stages`` mapping)."""
    return {o["path"]: (unit, o) for unit, entry in lock.items() for o in entry.get("outs", [])}


def cache_dir(root: Path) -> Path | None:
    """The checkout's DVC cache folder (``.dvc/config.local`` or ``.dvc/config`` ``[cache] dir``, else
    ``.dvc/cache``), or None where it does not exist. DVC's global and system configs are not read: a cache set only
    there is not found, and the checks fall back to what they can do without one."""
    d = root / ".dvc" / "cache"
    for name in ("config", "config.local"):  # the local file wins
        cfg = configparser.ConfigParser(interpolation=None)
        path = root / ".dvc" / name
        if path.exists():
            cfg.read_string(path.read_text())
            if cfg.has_option("cache", "dir"):
                p = Path(cfg.get("cache", "dir"))
                d = p if p.is_absolute() else (root / ".dvc" / p).resolve()
    return d if d.is_dir() else None


def manifest(md5: str, cache: Path | None) -> list[dict] | None:
    """A folder hash's file list from the cache (DVC 3 layout), or None where it is not there."""
    if cache is None or not md5.endswith(".dir"):
        return None
    h = md5.removesuffix(".dir")
    f = cache / "files" / "md5" / h[:2] / (h[2:] + ".dir")
    return json.loads(f.read_text()) if f.is_file() else None


def dir_md5(entries: list[dict]) -> str:
    """DVC 3's hash of a folder from its (relpath, md5) entries (sorted by the relpath string, as dvc-data does)."""
    entries = sorted(entries, key=lambda e: e["relpath"])
    return hashlib.md5(json.dumps([{"md5": e["md5"], "relpath": e["relpath"]} for e in entries],
                                  sort_keys=True).encode()).hexdigest() + ".dir"


def reads(lock: dict) -> dict[str, set[str]]:
    """path -> the hashes the lock's stages recorded reading there (a second witness where the cache is absent)."""
    out: dict[str, set[str]] = {}
    for entry in lock.values():
        for d in entry.get("deps", []):
            out.setdefault(d["path"], set()).add(d.get("md5"))
    return out


def _part_entries(prefix: str, out: dict, cache: Path | None) -> list[dict] | None:
    """The (relpath, md5) entries an output contributes to a folder above it: its manifest's files, or the file."""
    md5 = out.get("md5", "")
    if not md5.endswith(".dir"):
        return [{"md5": md5, "relpath": prefix}]
    lst = manifest(md5, cache)
    return None if lst is None else [{"md5": e["md5"], "relpath": f"{prefix}/{e['relpath']}"} for e in lst]


def read_latest(dep: dict, outs: dict[str, tuple[str, dict]], cache: Path | None = None,
                seen: dict[str, set[str]] | None = None):
    """Whether the dependency ``dep`` (a lock deps entry) is what ``outs`` (:func:`outputs`) last wrote.

    Returns None where no output of ``outs`` covers the path, else (ok, units, how): ``units`` the producing units,
    ``how`` one of ``EXACT``, ``COMPOSITE`` (folder manifests from the cache), ``SIZE`` (parts' recorded size and
    file count, no cache), ``SEEN`` (inside an output, no cache: the hash another stage of that lock recorded reading
    there, ``seen`` from :func:`reads`), ``UNCHECKED`` (none of these: ok is True, the caller decides)."""
    path = dep["path"]
    if path in outs:
        unit, out = outs[path]
        return dep.get("md5") == out.get("md5"), [unit], EXACT
    parts = sorted(p for p in outs if p.startswith(path + "/"))
    if parts:  # a folder written by several units
        units = [outs[p][0] for p in parts]
        lists = [_part_entries(p[len(path) + 1:], outs[p][1], cache) for p in parts]
        if all(x is not None for x in lists):
            return dep.get("md5") == dir_md5([e for lst in lists for e in lst]), units, COMPOSITE
        size = sum(outs[p][1].get("size", 0) for p in parts)
        nfiles = sum(outs[p][1].get("nfiles", 1) for p in parts)  # a file output records no count: one file
        return (dep.get("size"), dep.get("nfiles")) == (size, nfiles), units, SIZE
    container = next((p for p in outs if path.startswith(p + "/")), None)
    if container is None:
        return None
    unit, out = outs[container]
    lst = manifest(out.get("md5", ""), cache)
    if lst is None:
        if seen and seen.get(path):
            return dep.get("md5") in seen[path], [unit], SEEN
        return True, [unit], UNCHECKED
    rest = path[len(container) + 1:]
    file = [e for e in lst if e["relpath"] == rest]
    if file:
        return dep.get("md5") == file[0]["md5"], [unit], COMPOSITE
    inner = [{"md5": e["md5"], "relpath": e["relpath"][len(rest) + 1:]} for e in lst
             if e["relpath"].startswith(rest + "/")]
    return bool(inner) and dep.get("md5") == dir_md5(inner), [unit], COMPOSITE


def stale_reads(lock: dict, cache: Path | None = None, upstream: dict | None = None) -> list[str]:
    """One line per dependency of ``lock`` that is not what its producer (in ``lock``, or in ``upstream``'s outputs
    for paths no unit of ``lock`` writes) last wrote."""
    own, other = outputs(lock), outputs(upstream or {})
    bad = []
    for unit, entry in lock.items():
        for dep in entry.get("deps", []):
            r = read_latest(dep, own, cache)
            if r is None:
                r = read_latest(dep, other, cache, reads(upstream or {}))
            if r is not None and not r[0]:
                bad.append(f"{unit} read an older {dep['path']} than {', '.join(r[1])} last wrote (checked by {r[2]})")
    return bad
