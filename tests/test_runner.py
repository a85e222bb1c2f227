"""The notebook runner rejects bad input with one line naming the problem, before any compute."""

import shutil
from pathlib import Path

import pytest
import yaml

from passkt import run

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def repo(tmp_path, monkeypatch):
    dst = tmp_path / "repo"
    dst.mkdir()
    for name in ("dvc.yaml", "params.yaml"):
        shutil.copy(ROOT / name, dst / name)
    shutil.copytree(ROOT / "notebooks", dst / "notebooks")
    (dst / "data" / "00_data_prep").mkdir(parents=True)
    (dst / "data" / "00_data_prep" / "keep.txt").write_text("computed earlier")
    monkeypatch.chdir(dst)
    return dst


def edit(repo, fn):
    p = yaml.safe_load((repo / "params.yaml").read_text())
    fn(p)
    (repo / "params.yaml").write_text(yaml.safe_dump(p))


def fails_with(capsys, argv, *needles):
    assert run.main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    for n in needles:
        assert n in err, err
    return err


def test_check_prints_resolved_params(repo, capsys):
    assert run.main(["00_data_prep", "--check"]) == 0
    out = capsys.readouterr().out
    assert '"n_train": 200' in out and '"base_seed": 0' in out and '"seed"' not in out  # stage 00: base seed only


def test_unknown_stage(repo, capsys):
    fails_with(capsys, ["99_nope"], "99_nope", "00_data_prep")


def test_unknown_key(repo, capsys):
    edit(repo, lambda p: p["00_data_prep"].update(n_trian=3))
    fails_with(capsys, ["00_data_prep"], "n_trian", "00_data_prep")


def test_missing_key(repo, capsys):
    edit(repo, lambda p: p["00_data_prep"].pop("n_eval"))
    fails_with(capsys, ["00_data_prep"], "n_eval", "missing")


def test_wrong_type(repo, capsys):
    edit(repo, lambda p: p["00_data_prep"].update(n_eval="fifty"))
    fails_with(capsys, ["00_data_prep"], "n_eval", "int")


def test_bool_is_not_an_int(repo, capsys):
    edit(repo, lambda p: p.update(base_seed=True))
    fails_with(capsys, ["00_data_prep"], "base_seed")


def test_invalid_yaml_names_the_line(repo, capsys):
    (repo / "params.yaml").write_text("seed: 0\n00_data_prep: {n_train: [1, 2\n")
    fails_with(capsys, ["00_data_prep"], "params.yaml", "YAML", "line")


def test_overrides_are_typed(repo, capsys):
    assert run.main(["00_data_prep", "--check", "--set", "n_eval=7", "--set", "recall_k=[1, 3]"]) == 0
    out = capsys.readouterr().out
    assert '"n_eval": 7' in out
    fails_with(capsys, ["00_data_prep", "--set", "n_eval=many"], "n_eval")
    fails_with(capsys, ["00_data_prep", "--set", "nope=1"], "nope")
    fails_with(capsys, ["00_data_prep", "--set", "n_eval"], "key=value")


def test_nothing_computed_is_deleted_on_bad_input(repo, capsys):
    edit(repo, lambda p: p["00_data_prep"].update(bogus=1))
    fails_with(capsys, ["00_data_prep"], "bogus")
    assert (repo / "data" / "00_data_prep" / "keep.txt").read_text() == "computed earlier"


def test_git_state_ignores_the_lock_files_but_not_other_changes(tmp_path):
    import subprocess

    from passkt.meta import git_state

    def git(*a):
        subprocess.run(["git", *a], cwd=tmp_path, check=True, capture_output=True)

    git("init", "-q")
    (tmp_path / "dvc.lock").write_text("a\n")
    (tmp_path / "sweep").mkdir()
    (tmp_path / "sweep" / "dvc.lock").write_text("a\n")
    (tmp_path / "params.yaml").write_text("seed: 0\n")
    git("add", ".")
    git("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "x")
    assert git_state(tmp_path)["dirty"] is False
    (tmp_path / "dvc.lock").write_text("b\n")  # dvc repro rewrites it between stages
    (tmp_path / "sweep" / "dvc.lock").write_text("b\n")  # and the sweep's, between its units
    assert git_state(tmp_path)["dirty"] is False
    (tmp_path / "params.yaml").write_text("seed: 1\n")
    assert git_state(tmp_path)["dirty"] is True
