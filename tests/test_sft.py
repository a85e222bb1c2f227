"""The SFT arm: matched training data, expert demos that match the environment, the loss mask, training."""

import json

import pytest
import torch

from passkt import models, sft
from passkt.backends import ScriptedBackend
from passkt.data import save_problems
from passkt.protocol import NOTICE, information, parse_turn
from passkt.rollout import Environment, SamplingConfig, run_episodes
from passkt.search import SearchTool, format_results
from passkt.sources import load_hotpotqa
from passkt.world import build_world, make_problems

HOTPOT = "tests/fixtures/hotpot_dev_distractor_sample.json"


@pytest.fixture(scope="module")
def world_problems():
    return make_problems(build_world(3, 200, 150, 150), 3, 30, 20, 10)


@pytest.fixture(scope="module")
def train(world_problems):
    return world_problems["train"]


@pytest.fixture(scope="module")
def tok(world_problems):
    texts = [p["question"] for ps in world_problems.values() for p in ps]
    texts += [x for p in world_problems["train"] for x in p["texts"]]
    return models.build_tokenizer(texts, 400)


@pytest.fixture(scope="module")
def hotpot():
    return load_hotpotqa(HOTPOT)


@pytest.fixture(scope="module")
def base_dir(tok, tmp_path_factory):
    """A random tiny Qwen2 saved like a real base model."""
    from transformers import AutoModelForCausalLM

    torch.manual_seed(0)
    cfg = models.tiny_config(tok, hidden=32, layers=1, heads=2, kv_heads=1, intermediate=64, max_positions=1024)
    d = tmp_path_factory.mktemp("base")
    AutoModelForCausalLM.from_config(cfg).save_pretrained(d)
    tok.save_pretrained(d)
    return d


def model_turns(demo):
    """(model text, env texts that follow it) for each model turn of a demo."""
    turns = []
    for kind, text in demo["parts"]:
        if kind == "model":
            turns.append([text, []])
        else:
            assert turns or text == NOTICE, "only a T=0 notice may precede the first model turn"
            turns[-1][1].append(text)
    return turns


# ------------------------------------------------------------------------------------------- matched data

def test_training_problems_is_exactly_the_saved_train_split(world_problems, tmp_path):
    save_problems(world_problems, tmp_path)
    got = sft.training_problems(tmp_path)
    assert [p["id"] for p in got] == [p["id"] for p in world_problems["train"]]
    assert {p["split"] for p in got} == {"train"}
    with pytest.raises(FileNotFoundError):
        sft.training_problems(tmp_path / "missing")


# ------------------------------------------------------------------------------------------------- demos

@pytest.mark.parametrize("k", [1, 2])
def test_demos_follow_the_gold_chain_through_the_real_tool(train, tok, k):
    demos = sft.expert_demos(train, tok, search_k=k)
    tool = SearchTool(train)
    assert [d["problem_id"] for d in demos] == [p["id"] for p in train]
    for d, p in zip(demos, train, strict=True):
        plan = json.loads(p["meta"])["plan"]
        turns = model_turns(d)
        queries = []
        for i, (text, env) in enumerate(turns):
            turn = parse_turn(text.removesuffix(tok.eos_token))
            if i < len(turns) - 1:
                assert turn.action == "search"
                queries.append(turn.content)
                assert env == [information(format_results(tool.search(p["id"], turn.content, k)))]
            else:
                assert (turn.action, turn.content) == ("answer", p["answer"]) and env == []
                assert text.endswith(tok.eos_token)
        assert queries == plan
        titles = [[t for t, _ in tool.search(p["id"], q, k)] for q in plan]
        assert d["gold_retrieved"] == all(q in ts for q, ts in zip(plan, titles, strict=True))
        assert d["text"] == d["prompt"] + "".join(x for _, x in d["parts"])


def test_demo_replayed_by_the_engine_gives_the_same_tokens_and_a_correct_episode(train, tok):
    demos = sft.expert_demos(train, tok, search_k=1)
    by_prompt = {d["prompt"]: d for d in demos}

    def script(context: str) -> str:
        d = next(d for pr, d in by_prompt.items() if context.startswith(pr))
        done = context[len(d["prompt"]):]
        for kind, text in d["parts"]:
            if not done:
                assert kind == "model"
                return text
            assert done.startswith(text)
            done = done[len(text):]
        raise AssertionError("demo exhausted")

    env = Environment(train, tok, search_k=1)
    eps = run_episodes(ScriptedBackend(tok, script), env, [(p["id"], 0, 5) for p in train],
                       SamplingConfig(max_turn_tokens=256, max_total_tokens=1024, search_k=1))
    ds = sft.sft_dataset(demos, tok)
    ids = {d["problem_id"]: row for d, row in zip(demos, ds["input_ids"], strict=True)}
    assert len(eps) == len(train)
    for ep in eps:
        assert ep.termination == "answered" and ep.answer == env.problems[ep.problem_id]["answer"]
        assert ep.ids == ids[ep.problem_id]


def test_budget_two_demo_carries_the_notice_and_still_answers(train, tok):
    d = sft.expert_demos(train[:3], tok, search_k=1, budget=2)[0]
    assert [k for k, _ in d["parts"]][-3:] == ["env", "env", "model"] and d["parts"][-2][1] == NOTICE
    assert parse_turn(d["parts"][-1][1].removesuffix(tok.eos_token), searches_left=False).action == "answer"
    with pytest.raises(ValueError, match="budget=1"):
        sft.expert_demos(train, tok, search_k=1, budget=1)


def test_gold_retrieved_is_false_when_a_distractor_outranks_the_gold_paragraph(train, tok):
    p = dict(next(p for p in train if p["category"] == "bridge"))
    first = json.loads(p["meta"])["plan"][0]
    j = next(i for i, t in enumerate(p["titles"]) if t not in p["supporting_titles"])
    p["texts"] = list(p["texts"])
    p["texts"][j] = " ".join([first] * 20)
    assert sft.expert_demos([p], tok, search_k=1)[0]["gold_retrieved"] is False
    assert sft.expert_demos([p], tok, search_k=10)[0]["gold_retrieved"] is True


def test_hotpot_demos_reason_with_the_supporting_sentences(hotpot, tok):
    demos = sft.expert_demos(hotpot, tok, search_k=2)
    assert {d["category"] for d in demos} == {"bridge", "comparison"}
    for d, p in zip(demos, hotpot, strict=True):
        meta = json.loads(p["meta"])
        thinks = "".join(x for k, x in d["parts"] if k == "model")
        for title, sid in meta["supporting_facts"]:
            sents = sft.split_sentences(p["texts"][p["titles"].index(title)])
            if sid < len(sents):  # ids past our approximate split fall back to the first sentence
                assert sents[sid] in thinks
        turns = model_turns(d)
        assert [parse_turn(t.removesuffix(tok.eos_token)).content for t, _ in turns[:-1]] == meta["plan"]
        assert parse_turn(turns[-1][0].removesuffix(tok.eos_token)).content == p["answer"]
    assert "MODEL" in sft.render_demo(demos[0]) and "ENV" in sft.render_demo(demos[0])


def test_split_sentences():
    assert sft.split_sentences("A b. C d? E!  F g.") == ["A b.", "C d?", "E!", "F g."]
    assert sft.split_sentences("no end") == ["no end"]


def test_save_and_load_demos_round_trip(train, tok, tmp_path):
    demos = sft.expert_demos(train[:4], tok, search_k=1)
    sft.save_demos(demos, tmp_path / "demos.parquet")
    assert sft.load_demos(tmp_path / "demos.parquet") == demos


# --------------------------------------------------------------------------------------------- loss mask

def test_loss_falls_exactly_on_model_written_tokens(train, tok):
    demos = sft.expert_demos(train, tok, search_k=1, budget=2)
    ds = sft.sft_dataset(demos, tok)
    for d, ids, labels in zip(demos, ds["input_ids"], ds["labels"], strict=True):
        assert len(ids) == len(labels)
        runs, cur = [], []
        for i, y in zip(ids, labels, strict=True):
            if y != sft.IGNORE:
                assert y == i
                cur.append(i)
            elif cur:
                runs.append(cur)
                cur = []
        runs += [cur] if cur else []
        model_parts = [x for k, x in d["parts"] if k == "model"]
        assert [tok.decode(r) for r in runs] == model_parts
        assert runs[-1][-1] == tok.eos_token_id
        masked = tok.decode([i for i, y in zip(ids, labels, strict=True) if y == sft.IGNORE])
        env_parts = [x for k, x in d["parts"] if k == "env"]
        assert masked == d["prompt"] + "".join(env_parts)
        assert NOTICE in masked and "<information>" in masked
        trained = tok.decode([i for i, y in zip(ids, labels, strict=True) if y != sft.IGNORE])
        assert "<information>" not in trained and NOTICE not in trained and "Question:" not in trained


def test_trl_trains_on_exactly_our_mask(train, tok, base_dir, tmp_path):
    import torch.nn.functional as F

    ds = sft.sft_dataset(sft.expert_demos(train[:3], tok, search_k=1), tok)
    trainer = sft.build_trainer(base_dir, ds, tmp_path, sft.SFTSettings(batch_size=3))
    assert trainer.train_dataset["labels"] == ds["labels"]  # TRL kept our labels as they are
    batch = trainer.data_collator([trainer.train_dataset[i] for i in range(3)])
    for r, labels in enumerate(ds["labels"]):
        assert batch["labels"][r, : len(labels)].tolist() == labels
        assert (batch["labels"][r, len(labels):] == sft.IGNORE).all()
    model = trainer.model.eval()
    with torch.no_grad():
        loss = trainer.compute_loss(model, {k: v.clone() for k, v in batch.items()})
        logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
    want = F.cross_entropy(logits[:, :-1].flatten(0, 1), batch["labels"][:, 1:].flatten(), ignore_index=sft.IGNORE)
    assert loss.item() == pytest.approx(want.item(), rel=1e-4)


# ---------------------------------------------------------------------------------------------- training

def test_full_fine_tuning_overfits_saves_and_resumes(train, tok, base_dir, tmp_path):
    ds = sft.sft_dataset(sft.expert_demos(train[:4], tok, search_k=1), tok)
    s = sft.SFTSettings(epochs=20, lr=2e-2, batch_size=4, logging_steps=1, warmup_ratio=0.0, save_steps=10)
    res = sft.train_sft(base_dir, ds, tmp_path / "out", s)
    losses = [r["loss"] for r in res["log"]]
    assert res["steps"] == 20 and len(losses) == 20
    assert res["final_loss"] < 0.5 * losses[0], losses
    loss_tokens = sum(y != sft.IGNORE for lab in ds["labels"] for y in lab)
    assert res["tokens_trained"] == loss_tokens * 20 and res["n_truncated"] == 0
    model, tok2 = models.load_policy(tmp_path / "out")
    assert tok2.encode(demo_text := "<search>x</search>") == tok.encode(demo_text)
    base, _ = models.load_policy(base_dir)
    assert not torch.equal(model.model.embed_tokens.weight, base.model.embed_tokens.weight)
    assert sft.last_checkpoint(tmp_path / "out").endswith("checkpoint-20")
    again = sft.train_sft(base_dir, ds, tmp_path / "out", s)  # finished with this fingerprint: reused, not retrained
    assert again["reused"] and again["steps"] == 20 and again["fingerprint"] == res["fingerprint"]
    other = sft.train_sft(base_dir, ds, tmp_path / "out", sft.SFTSettings(**{**s.__dict__, "epochs": 21}))
    assert not other.get("reused") and other["resumed_from"] is None and other["steps"] == 21  # new settings: anew


def test_lora_merges_into_a_plain_model(train, tok, base_dir, tmp_path):
    ds = sft.sft_dataset(sft.expert_demos(train[:2], tok, search_k=1), tok)
    s = sft.SFTSettings(epochs=2, lr=1e-2, batch_size=2, lora=True, lora_r=4, lora_alpha=8, logging_steps=1)
    res = sft.train_sft(base_dir, ds, tmp_path / "lora", s)
    assert res["steps"] == 2
    assert not (tmp_path / "lora" / "adapter_config.json").exists()
    model, _ = models.load_policy(tmp_path / "lora")
    base, _ = models.load_policy(base_dir)
    assert set(model.state_dict()) == set(base.state_dict())
    w, w0 = model.model.layers[0].self_attn.q_proj.weight, base.model.layers[0].self_attn.q_proj.weight
    assert not torch.equal(w, w0)  # the adapter's update is in the merged weights
    assert torch.equal(model.model.embed_tokens.weight, base.model.embed_tokens.weight)  # LoRA left these alone


def test_device_settings_are_checked_and_reach_the_trainer_config(tmp_path):
    from passkt import compat, sft

    with pytest.raises(ValueError, match="SFTSettings.device='tpu'"):
        sft.SFTSettings(device="tpu")
    with pytest.raises(ValueError, match="SFTSettings.grad_accum=0"):
        sft.SFTSettings(grad_accum=0)
    assert sft.SFTSettings(bf16=True, lora=True).load_dtype == "bfloat16"  # frozen base weights in bf16
    assert sft.SFTSettings(bf16=True, lora=False).load_dtype == "float32"  # fp32 master weights, bf16 autocast
    cfg = sft._sft_config(tmp_path, sft.SFTSettings(grad_accum=4, gradient_checkpointing=True))
    assert cfg.use_cpu and cfg.gradient_accumulation_steps == 4 and compat.checkpointing_enabled(cfg)
