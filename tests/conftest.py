"""Shared fixtures: a small synthetic world and a tokenizer built on it (no network, seconds)."""

import os

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


@pytest.fixture(scope="session")
def small_sets():
    from passkt import prep

    sets, texts = prep.build_synthetic(0, [120, 60, 60], 30, 8, 4, 8)
    return sets, texts


@pytest.fixture(scope="session")
def small_tok(small_sets):
    from passkt import models, protocol

    sets, texts = small_sets
    extra = [p["question"] for v in sets.values() for p in v] + [protocol.SYSTEM_PROMPT, protocol.NOTICE]
    return models.build_tokenizer(texts + extra, 400)


@pytest.fixture(scope="session")
def eval_set(small_sets):
    sets, _ = small_sets
    return sets["eval_comparison"] + sets["eval_bridge"] + sets["eval_math"]


@pytest.fixture(scope="session")
def smoke_repo(tmp_path_factory):
    """The smoke profile's whole pipeline, run once per session (tests/smoke_pipeline.py); read it, never modify it
    (copy it first, as tests/test_notebook_defaults.py does)."""
    from smoke_pipeline import run_smoke

    return run_smoke(tmp_path_factory.mktemp("smoke") / "repo")
