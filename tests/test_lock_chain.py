"""tools/lock_chain.py: a stage that read an older upstream output is found from the lock files (and the cache)."""

import hashlib
import json

import pytest
from smoke_pipeline import load_tool

lc = load_tool("lock_chain")


def _files(tag: str) -> dict[str, str]:
    return {"model.bin": hashlib.md5(f"w{tag}".encode()).hexdigest(), "log/run.json": hashlib.md5(tag.encode()).hexdigest()}


def _out(path: str, files: dict[str, str], cache) -> dict:
    """A folder output's lock entry, its manifest written to ``cache`` (None: no cache)."""
    entries = [{"md5": m, "relpath": r} for r, m in files.items()]
    md5 = lc.dir_md5(entries)
    if cache is not None:
        h = md5.removesuffix(".dir")
        f = cache / "files" / "md5" / h[:2] / (h[2:] + ".dir")
        f.parent.mkdir(parents=True, exist_ok=True)
        f.write_text(json.dumps(sorted(entries, key=lambda e: e["relpath"])))
    return {"path": path, "md5": md5, "size": 100 * len(files) + len(files[next(iter(files))]), "nfiles": len(files)}


def _parent_dep(path: str, parts: dict[str, dict[str, str]], size: int) -> dict:
    entries = [{"md5": m, "relpath": f"{p}/{r}"} for p, files in parts.items() for r, m in files.items()]
    return {"path": path, "md5": lc.dir_md5(entries), "size": size, "nfiles": len(entries)}


def _lock(cache, read: dict[str, str], wrote: dict[str, str]) -> dict:
    """Units train@0 and train@1 wrote data/train/r0, r1 (``wrote``: tag per replicate); unit analyse read the
    whole data/train (``read``: the tags it saw) and one file inside unit prep's output."""
    outs = {r: _out(f"data/train/{r}", _files(t), cache) for r, t in wrote.items()}
    prep = _out("data/prep", {"problems.json": "a" * 32, "other.txt": "b" * 32}, cache)
    size = sum(_out(f"x/{r}", _files(t), None)["size"] for r, t in read.items())
    dep = _parent_dep("data/train", {r: _files(t) for r, t in read.items()}, size)
    return {"prep": {"outs": [prep]},
            **{f"train@{r[1:]}": {"deps": [{"path": "data/prep", "md5": prep["md5"]}], "outs": [o]} for r, o in outs.items()},
            "analyse": {"deps": [dep, {"path": "data/prep/problems.json", "md5": "a" * 32}], "outs": []}}


@pytest.mark.parametrize("with_cache", [True, False])
def test_a_reader_of_the_latest_outputs_passes(tmp_path, with_cache):
    cache = tmp_path / "cache" if with_cache else None
    lock = _lock(cache, read={"r0": "0", "r1": "1"}, wrote={"r0": "0", "r1": "1"})
    assert lc.stale_reads(lock, cache) == []
    r = lc.read_latest(lock["analyse"]["deps"][0], lc.outputs(lock), cache)
    assert r == (True, ["train@0", "train@1"], lc.COMPOSITE if with_cache else lc.SIZE)


def test_a_partial_rerun_is_found_exactly_with_the_cache(tmp_path):
    """train@1 reran (new files of the same size and count); analyse still holds the old folder hash."""
    cache = tmp_path / "cache"
    lock = _lock(cache, read={"r0": "0", "r1": "1"}, wrote={"r0": "0", "r1": "9"})
    stale = lc.stale_reads(lock, cache)
    assert stale == ["analyse read an older data/train than train@0, train@1 last wrote (checked by manifest)"]
    # without the cache the same sizes and counts pass: the fallback is a necessary condition only
    assert lc.stale_reads(lock, None) == []


def test_without_the_cache_a_changed_size_is_still_found():
    lock = _lock(None, read={"r0": "0", "r1": "1"}, wrote={"r0": "0", "r1": "1"})
    lock["train@1"]["outs"][0]["size"] += 7
    assert "checked by size and file count" in lc.stale_reads(lock, None)[0]


def test_a_file_inside_an_output_is_checked_against_its_manifest(tmp_path):
    cache = tmp_path / "cache"
    lock = _lock(cache, read={"r0": "0"}, wrote={"r0": "0"})
    lock["analyse"]["deps"][1]["md5"] = "c" * 32
    assert lc.stale_reads(lock, cache) == [
        "analyse read an older data/prep/problems.json than prep last wrote (checked by manifest)"]
    assert lc.read_latest(lock["analyse"]["deps"][1], lc.outputs(lock), None) == (True, ["prep"], lc.UNCHECKED)


def test_exact_paths_and_paths_no_unit_writes():
    lock = _lock(None, read={"r0": "0"}, wrote={"r0": "0"})
    lock["train@0"]["deps"][0]["md5"] = "0" * 32 + ".dir"
    assert lc.stale_reads(lock) == ["train@0 read an older data/prep than prep last wrote (checked by exact)"]
    assert lc.read_latest({"path": "lib/code.py", "md5": "x"}, lc.outputs(lock)) is None


def test_upstream_outputs_come_from_another_lock(tmp_path):
    """The support sweep's summary reads the default study's outputs: checked against dvc.lock's."""
    cache = tmp_path / "cache"
    study = _lock(cache, read={"r0": "0"}, wrote={"r0": "5"})
    reader = {"summary": {"deps": [_parent_dep("data/train", {"r0": _files("0")}, 0)]}}
    assert lc.stale_reads(reader, cache, upstream=study) == [
        "summary read an older data/train than train@0 last wrote (checked by manifest)"]


def test_the_cache_folder_comes_from_the_dvc_config(tmp_path):
    (tmp_path / ".dvc").mkdir()
    assert lc.cache_dir(tmp_path) is None
    elsewhere = tmp_path / "shared_cache"
    elsewhere.mkdir()
    (tmp_path / ".dvc" / "config.local").write_text(f"[cache]\n    dir = {elsewhere}\n")
    assert lc.cache_dir(tmp_path) == elsewhere


def test_the_folder_hash_is_dvc_datas_own():
    """Known answer from dvc-data itself, on names where sorting by path parts and by the relpath string differ."""
    from dvc_data.hashfile.hash_info import HashInfo
    from dvc_data.hashfile.tree import Tree

    files = {"chain_0/x": "a" * 32, "chain_0.01/x": "b" * 32, "a.json": "c" * 32, "a/b": "d" * 32,
             "r0-old/x": "e" * 32, "r0/x": "f" * 32}
    tree = Tree()
    for rel, md5 in files.items():
        tree.add(tuple(rel.split("/")), None, HashInfo("md5", md5))
    tree.digest()
    assert lc.dir_md5([{"md5": m, "relpath": r} for r, m in files.items()]) == tree.hash_info.value


def test_a_sibling_with_a_longer_name_is_not_a_part():
    lock = _lock(None, read={"r0": "0"}, wrote={"r0": "0"})
    lock["other"] = {"outs": [{"path": "data/train_x/r9", "md5": "1" * 32 + ".dir", "size": 5, "nfiles": 1}]}
    assert lc.read_latest(lock["analyse"]["deps"][0], lc.outputs(lock))[1] == ["train@0"]


def test_file_outputs_are_parts_of_the_folder_above(tmp_path):
    outs = {"data/m/a.json": ("u@0", {"path": "data/m/a.json", "md5": "1" * 32, "size": 10}),
            "data/m/b.json": ("u@1", {"path": "data/m/b.json", "md5": "2" * 32, "size": 12})}
    dep = {"path": "data/m", "md5": lc.dir_md5([{"md5": "1" * 32, "relpath": "a.json"},
                                                {"md5": "2" * 32, "relpath": "b.json"}]), "size": 22, "nfiles": 2}
    assert lc.read_latest(dep, outs, None) == (True, ["u@0", "u@1"], lc.COMPOSITE)
    assert lc.read_latest({**dep, "md5": "0" * 32 + ".dir"}, outs, None)[0] is False


def test_without_the_cache_another_stages_read_is_the_witness():
    """The sweep's summary and the default study's publish stage both read data/prep/problems.json."""
    study = _lock(None, read={"r0": "0"}, wrote={"r0": "0"})
    reader = {"summary": {"deps": [{"path": "data/prep/problems.json", "md5": "f" * 32}]}}
    assert lc.stale_reads(reader, None, upstream=study) == [
        "summary read an older data/prep/problems.json than prep last wrote (checked by another stage's read)"]
    reader["summary"]["deps"][0]["md5"] = "a" * 32
    assert lc.stale_reads(reader, None, upstream=study) == []


def test_a_relative_cache_dir_resolves_against_dot_dvc_and_config_local_wins(tmp_path):
    (tmp_path / ".dvc" / "mine").mkdir(parents=True)
    (tmp_path / "theirs").mkdir()
    (tmp_path / ".dvc" / "config").write_text("[cache]\n    dir = ../theirs\n")
    assert lc.cache_dir(tmp_path) == (tmp_path / "theirs").resolve()
    (tmp_path / ".dvc" / "config.local").write_text("[cache]\n    dir = mine\n")
    assert lc.cache_dir(tmp_path) == (tmp_path / ".dvc" / "mine").resolve()


def test_the_readme_shows_a_sweep_unit_only_while_all_it_read_is_current(tmp_path, monkeypatch):
    """tools/readme_results.py's currency of sweep/dvc.lock units: code and params as recorded, upstream sweep units
    current, and the default study's outputs (dvc.lock) what the unit read: here a folder two units write."""
    import yaml

    rr = load_tool("readme_results", "readme_results_lock_chain")
    monkeypatch.setattr(rr, "ROOT", tmp_path)
    (tmp_path / "sweep").mkdir()
    (tmp_path / "code.py").write_text("x = 1\n")
    (tmp_path / "params.yaml").write_text("a: 1\n")
    code = {"path": "code.py", "md5": hashlib.md5(b"x = 1\n").hexdigest()}
    parts = {r: {"path": f"data/train/{r}", "md5": f"{i}" * 32 + ".dir", "size": 10 + i, "nfiles": 2}
             for i, r in enumerate(("r0", "r1"))}
    study = {"stages": {f"train@{r[1:]}": {"outs": [o]} for r, o in parts.items()}}
    (tmp_path / "dvc.lock").write_text(yaml.safe_dump(study))
    point = {"path": "sweep/points/p/out", "md5": "9" * 32}
    lock = {"p@0": {"deps": [code, {"path": "data/train", "md5": "8" * 32 + ".dir", "size": 21, "nfiles": 4}],
                    "params": {"params.yaml": {"a": 1}}, "outs": [point]},
            "summary": {"deps": [dict(point), code]}}
    assert rr._current_units(lock) == {"p@0", "summary"}
    study["stages"]["train@1"]["outs"][0]["size"] = 12  # replicate 1 of the default study reran: a new size
    (tmp_path / "dvc.lock").write_text(yaml.safe_dump(study))
    assert rr._current_units(lock) == set()
    study["stages"]["train@1"]["outs"][0]["size"] = 11
    (tmp_path / "dvc.lock").write_text(yaml.safe_dump(study))
    (tmp_path / "params.yaml").write_text("a: 2\n")
    assert rr._current_units(lock) == set()
    (tmp_path / "params.yaml").write_text("a: 1\n")
    lock["summary"]["deps"].append({"path": "sweep/points/p/nobody_wrote_this", "md5": "7" * 32})
    assert rr._current_units(lock) == {"p@0"}
