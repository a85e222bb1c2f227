"""Shared evaluation helpers: settings validation, k grid, counts, sanity bands, reward rise, model fingerprint."""

import pandas as pd
import pytest

from passkt import evaluate, models


def test_sampling_settings_reject_unknown_and_bad_values():
    with pytest.raises(ValueError, match="n_samples"):
        evaluate.SamplingSettings.from_dict({"n_samples": 3})
    with pytest.raises(ValueError, match="backend"):
        evaluate.SamplingSettings.from_dict({"backend": "tpu"})
    s = evaluate.SamplingSettings.from_dict({"n": 3, "temperatures": [0.6, 1.0]})
    assert s.config().temperature == 1.0 and s.config(0.6).temperature == 0.6


def test_k_grid():
    assert evaluate.k_grid(16) == [1, 2, 4, 8, 16]
    assert evaluate.k_grid(12) == [1, 2, 4, 8, 12]
    assert evaluate.k_grid(1) == [1]


def _frame(rows):
    return pd.DataFrame(rows, columns=["problem_id", "category", "T", "temperature", "correct", "valid", "searches"])


def test_sanity_bands_on_a_constructed_frame():
    rows = []
    for cat in ("comparison", "bridge"):
        for pid in range(4):  # problem 0 solved once in 4, others never
            for s in range(4):
                for T in (1, 2, 5):
                    ok = pid == 0 and s == 0 and (cat == "comparison" or T >= 2)
                    rows.append((f"{cat}{pid}", cat, T, 1.0, ok, True, 1))
    rows += [(f"m{i}", "math", 0, 1.0, i % 2 == 0, True, 0) for i in range(10)]
    bands = {b["band"]: b for b in evaluate.sanity_bands(_frame(rows), 1.0, 5)}
    assert bands["comparison Pass@1 (T=5)"]["value"] == pytest.approx(1 / 16)
    assert bands["comparison Pass@n (T=5)"]["value"] == pytest.approx(0.25) and not bands["comparison Pass@n (T=5)"]["ok"]
    assert bands["bridge Pass@n(T=2) - Pass@n(T=1)"]["value"] == pytest.approx(0.25)
    assert bands["math Pass@1 (T=0)"]["value"] == pytest.approx(0.5) and bands["math Pass@1 (T=0)"]["ok"]


def test_reward_rise_detects_a_rise_and_its_absence():
    up = evaluate.reward_rise(pd.DataFrame({"reward": [0.1] * 10 + [0.5] * 10}), seed=0, frac=0.2)
    assert up["rise"] == pytest.approx(0.4) and up["ci_low"] > 0
    flat = evaluate.reward_rise(pd.DataFrame({"reward": [0.1, 0.3] * 10}), seed=0, frac=0.2)
    assert flat["ci_low"] <= 0 <= flat["ci_high"]


def test_model_fingerprint_changes_with_the_weights(tmp_path, small_tok):
    import torch
    from transformers import AutoModelForCausalLM

    cfg = models.tiny_config(small_tok, hidden=16, layers=1, heads=2, kv_heads=1, intermediate=32, max_positions=256)
    torch.manual_seed(0)
    AutoModelForCausalLM.from_config(cfg).save_pretrained(tmp_path / "a")
    AutoModelForCausalLM.from_config(cfg).save_pretrained(tmp_path / "b")  # other random weights
    torch.manual_seed(0)
    AutoModelForCausalLM.from_config(cfg).save_pretrained(tmp_path / "c")  # same weights as a
    fa, fb, fc = (models.model_fingerprint(tmp_path / x) for x in "abc")
    assert fa == fc and fa != fb
    # where the run was (the Trainer's pickled arguments, with their paths) is not the model; a tokenizer file is
    (tmp_path / "c" / "training_args.bin").write_bytes(str(tmp_path / "c").encode())
    assert models.model_fingerprint(tmp_path / "c") == fa
    (tmp_path / "c" / "tokenizer.json").write_text("{}")
    assert models.model_fingerprint(tmp_path / "c") != fa


def test_reward_plateau_needs_evidence_of_a_flat_end():
    import numpy as np
    import pandas as pd

    from passkt.evaluate import reward_plateau

    rng = np.random.default_rng(0)
    steps = np.arange(1, 201)
    flat = pd.DataFrame({"step": steps, "reward": np.minimum(steps / 50, 1) * 0.4 + rng.normal(0, 0.01, 200)})
    rising = pd.DataFrame({"step": steps, "reward": steps / 400 + rng.normal(0, 0.01, 200)})
    short = pd.DataFrame({"step": np.arange(1, 25), "reward": rng.normal(0.3, 0.08, 24)})
    assert reward_plateau(flat)["verdict"] == "plateau"
    assert reward_plateau(rising)["verdict"] == "rising"
    r = reward_plateau(short)  # 5 noisy steps: a flat mean is not evidence of a plateau
    assert r["verdict"] == "undetermined" and r["rise_high"] > r["margin"]
    # a reward that falls within the window has not plateaued (the stop rule fired on such dips before)
    falling = pd.DataFrame({"step": steps, "reward": 0.6 - steps / 400 + rng.normal(0, 0.01, 200)})
    r = reward_plateau(falling)
    assert r["verdict"] == "falling" and r["rise_high"] < 0
    slight = pd.DataFrame({"step": steps, "reward": 0.5 - steps / 4000 + rng.normal(0, 0.002, 200)})
    assert reward_plateau(slight)["verdict"] == "plateau"  # falling by less than the margin: flat enough
