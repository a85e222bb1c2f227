"""The committed results/ folder is exactly what the committed dvc.lock describes, and dvc.lock is not older than the code.

These run on a fresh clone (they read only git-tracked files): results/ is the publish stage's git-tracked output.
A code, notebook or parameter change without a rerun of the pipeline fails here, naming the stale stage and file.
"""

import hashlib
import json
from pathlib import Path

import pytest
import yaml
from smoke_pipeline import load_tool

from passkt import publish

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / publish.RESULTS
LOCK = yaml.safe_load((ROOT / "dvc.lock").read_text())["stages"] if (ROOT / "dvc.lock").exists() else {}
PARAMS = yaml.safe_load((ROOT / "params.yaml").read_text())
LOCK_CHAIN = load_tool("lock_chain")  # DVC folder hashes and cache manifests


def _expand(spec: dict) -> dict:
    """dvc.yaml's stages with each ``foreach: ${replicates}`` stage expanded to its units ``<stage>@<i>``
    (``${item}`` substituted), as dvc.lock names them."""
    out = {}
    for name, st in spec.items():
        if "foreach" not in st:
            out[name] = st
            continue
        assert st["foreach"] == "${replicates}", f"{name}: foreach over {st['foreach']!r}"
        for r in PARAMS["replicates"]:
            out[f"{name}@{r}"] = yaml.safe_load(yaml.safe_dump(st["do"]).replace("${item}", str(r)))
    return out


SPEC = _expand(yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"])

pytestmark = pytest.mark.skipif(not LOCK or not RESULTS.exists(), reason="no dvc.lock or results/ in this checkout")


def md5(p: Path) -> str:
    return hashlib.md5(p.read_bytes()).hexdigest()


def dvc_dir_md5(folder: Path) -> str:
    """DVC 3's hash of a folder from its files (``tools/lock_chain.py``'s, which dvc-data's own hash checks)."""
    return LOCK_CHAIN.dir_md5([{"md5": md5(p), "relpath": p.relative_to(folder).as_posix()}
                               for p in folder.rglob("*") if p.is_file()])


def lock_entries(stage: str, kind: str) -> dict[str, dict]:
    return {e["path"]: e for e in LOCK[stage].get(kind, [])}


def test_results_folder_is_the_publish_output_in_dvc_lock():
    out = lock_entries("publish", "outs")["results"]
    assert dvc_dir_md5(RESULTS) == out["md5"], "results/ differs from what dvc.lock records: rerun `dvc repro`"
    manifest = json.loads((RESULTS / publish.MANIFEST).read_text())
    on_disk = {p.relative_to(RESULTS).as_posix() for p in RESULTS.rglob("*") if p.is_file()} - {publish.MANIFEST}
    assert on_disk == set(manifest), f"unlisted or missing files: {sorted(on_disk ^ set(manifest))[:5]}"
    bad = [rel for rel, e in manifest.items() if md5(RESULTS / rel) != e["md5"]]
    assert not bad, f"files changed after publishing: {bad[:5]}"


def test_every_published_copy_is_the_stage_output_dvc_lock_records():
    deps = lock_entries("publish", "deps")
    manifest = json.loads((RESULTS / publish.MANIFEST).read_text())
    for rel, e in manifest.items():  # single files: the copy's MD5 is the one dvc.lock recorded for its source
        if "source" not in e:
            continue
        if e["source"] in deps:
            assert e["md5"] == deps[e["source"]]["md5"], f"{rel} is not the {e['source']} of dvc.lock"
        else:  # otherwise it lies in a folder the publish stage depends on (figures: checked below by folder hash;
            # a replicated stage's notebook: checked against its unit's folder listing where the DVC cache has it)
            assert any(e["source"].startswith(d + "/") for d in deps), (
                f"{rel}: its source {e['source']} is not a dependency of the publish stage")
    stages = [s for s in SPEC if s != "publish"]
    for stage in stages:  # figure folders: results/figures/<stage>[/r<i>] hashes to the stage's recorded output
        folder = next(o["path"] for o in LOCK[stage]["outs"] if o["path"].startswith("figures/"))
        h = dvc_dir_md5(RESULTS / folder)
        assert h == lock_entries(stage, "outs")[folder]["md5"], (
            f"results/{folder} is not the {folder} that stage {stage} produced according to dvc.lock")
        if folder in deps:
            assert h == deps[folder]["md5"], f"publish ran on another {folder} than results/ holds"
    copied = {e["source"] for e in manifest.values() if "source" in e}
    want = {f"data/{s}/{s}.executed.ipynb" for s in stages if "@" not in s}
    want |= {f"data/{s.split('@')[0]}/r{s.split('@')[1]}/{s.split('@')[0]}.executed.ipynb" for s in stages if "@" in s}
    assert want <= copied, f"an executed notebook is not published: {sorted(want - copied)[:3]}"


def test_replicated_notebooks_are_the_ones_their_units_produced():
    """Where the DVC cache holds a replicated unit's folder listing (not on a fresh clone), each published file
    from it has the MD5 that listing records."""
    manifest = json.loads((RESULTS / publish.MANIFEST).read_text())
    checked = 0
    for stage, entry in LOCK.items():
        if "@" not in stage:
            continue
        for o in entry["outs"]:
            if not o["path"].startswith("data/"):
                continue
            listing = LOCK_CHAIN.manifest(o["md5"], LOCK_CHAIN.cache_dir(ROOT))
            if listing is None:
                continue
            files = {f"{o['path']}/{x['relpath']}": x["md5"] for x in listing}
            for rel, e in manifest.items():
                if e.get("source") in files:
                    assert e["md5"] == files[e["source"]], f"{rel} is not the {e['source']} of dvc.lock"
                    checked += 1
    if not checked:
        pytest.skip("no DVC cache with the replicated units' folder listings (a fresh clone)")


def _param(params: dict, dotted: str):
    node = params
    for part in dotted.split("."):
        node = node[part]
    return node


@pytest.mark.parametrize("stage", list(SPEC))
def test_dvc_lock_is_not_older_than_the_code(stage):
    """Every git-tracked dependency (library, notebook, reference file) and parameter of the stage is as recorded."""
    assert stage in LOCK, f"stage {stage} has never run: dvc.lock has no entry (run `dvc repro`)"
    spec, lock = SPEC[stage], LOCK[stage]
    assert spec["cmd"] == lock["cmd"], f"{stage}: command changed since the last run"
    declared = [d if isinstance(d, str) else next(iter(d)) for d in spec.get("deps", [])]
    recorded = lock_entries(stage, "deps")
    assert set(declared) == set(recorded), f"{stage}: deps changed since the last run: {set(declared) ^ set(recorded)}"
    tracked = [d for d in declared if not d.startswith(("data/", "figures/"))]
    stale = [d for d in tracked if md5(ROOT / d) != recorded[d]["md5"]]
    assert not stale, f"{stage} ran with other versions of {stale}: rerun `dvc repro` and commit dvc.lock"
    recorded_params = lock.get("params", {}).get("params.yaml", {})
    assert set(spec.get("params", [])) == set(recorded_params), f"{stage}: the declared params changed since the last run"
    for key, value in recorded_params.items():
        assert _param(PARAMS, key) == value, f"{stage}: params.yaml {key} changed since the last run"
    outs = [o if isinstance(o, str) else next(iter(o)) for o in spec.get("outs", [])]
    assert set(outs) == {o["path"] for o in lock.get("outs", [])}, f"{stage}: outputs changed since the last run"


def test_dvc_lock_holds_exactly_the_pipelines_stages():
    """No entry of a stage dvc.yaml no longer has (e.g. a stage before it became a foreach): it would vouch for
    nothing and confuse every check that walks the lock."""
    assert set(LOCK) == set(SPEC), f"dvc.lock and dvc.yaml differ in stages: {sorted(set(LOCK) ^ set(SPEC))}"


def test_every_stage_ran_on_the_outputs_dvc_lock_records_upstream():
    """A chain, not islands: each stage's recorded hash of another stage's output equals what that stage recorded
    producing (a partial rerun that left a later stage on the old output fails here). A folder several units write
    (``data/04_grpo``: one ``04_grpo@i`` each) is checked against the units' manifests where the DVC cache is here,
    else by size and file count (tools/lock_chain.py)."""
    stale = LOCK_CHAIN.stale_reads(LOCK, LOCK_CHAIN.cache_dir(ROOT))
    assert not stale, stale


def test_headline_metrics_are_a_dozen_named_numbers():
    head = json.loads((RESULTS / "headline.json").read_text())
    assert 8 <= len(head) <= 40
    assert all(isinstance(v, (int, float)) or v is None for v in head.values()), head
