"""The synthetic world: determinism, sub-world disjointness, and the gold chain of every question."""

import json
import re
from pathlib import Path

import pytest
import yaml

from passkt.data import load_problems, validate_problem
from passkt.world import (
    SUBWORLDS,
    _math_problems,
    build_world,
    evaluate_math,
    make_problems,
    math_instance,
    world_paragraphs,
)

SEED = 3
ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def world():
    return build_world(SEED, 300, 150, 150)


@pytest.fixture(scope="module")
def problems(world):
    return make_problems(world, SEED, n_pretrain=300, n_train=60, n_eval_per_category=30)


def _all(problems):
    return [p for ps in problems.values() for p in ps]


def _dump(problems):
    return json.dumps(problems, sort_keys=True)


def test_same_seed_same_bytes_and_different_seed_differs(problems):
    again = make_problems(build_world(SEED, 300, 150, 150), SEED, 300, 60, 30)
    assert _dump(again) == _dump(problems)
    other = make_problems(build_world(SEED + 1, 300, 150, 150), SEED + 1, 300, 60, 30)
    assert _dump(other) != _dump(problems)


def test_split_sizes_and_categories(problems):
    assert len(problems["pretrain"]) == 300
    assert {p["category"] for p in problems["pretrain"]} == {"math", "comparison", "bridge"}
    train_cats = [p["category"] for p in problems["train"]]
    assert train_cats.count("comparison") == 30 and train_cats.count("bridge") == 30
    for name in ("eval_math", "eval_comparison", "eval_bridge"):
        assert len(problems[name]) == 30
        assert {p["category"] for p in problems[name]} == {name.removeprefix("eval_")}
        assert {p["split"] for p in problems[name]} == {"eval"}
    assert {p["split"] for p in problems["pretrain"]} == {"pretrain"}
    assert {p["split"] for p in problems["train"]} == {"train"}


def test_schema_and_ids(problems):
    allp = _all(problems)
    for p in allp:
        validate_problem(p)
        assert p["source"] == "synthetic"
        assert re.fullmatch(rf"syn-{p['category']}-{p['split']}-\d{{4}}", p["id"]), p["id"]
    assert len({p["id"] for p in allp}) == len(allp)
    questions = [p["question"] for p in problems["eval_bridge"] + problems["eval_comparison"]]
    assert len(set(questions)) == len(questions)


def test_paragraphs_are_short_unique_and_mention_relations_by_name(world):
    names = set(world.entities)
    for sw in SUBWORLDS:
        for title, text in world_paragraphs(world, sw):
            assert 25 <= len(text.split()) <= 50, (title, text)
            assert title in text
    for e in world.entities.values():
        for rel in {
            "person": ["birth_city"],
            "film": ["director", "studio"],
            "company": ["founder", "headquarters"],
            "city": [],
        }[e.kind]:
            target = world.entities[e.attrs[rel]]
            assert target.subworld == e.subworld  # relations never cross sub-worlds
            assert target.name in e.text
    assert len(names) == len(world.entities)
    with pytest.raises(ValueError, match="subworld"):
        world_paragraphs(world, "test")


def test_subworlds_are_disjoint(problems):
    def names(ps):
        return {n for p in ps for n in p["entities"] + p["titles"]}

    eval_ps = problems["eval_math"] + problems["eval_comparison"] + problems["eval_bridge"]
    eval_names, train_names, pre_names = names(eval_ps), names(problems["train"]), names(problems["pretrain"])
    assert eval_names and train_names and pre_names
    assert not eval_names & (train_names | pre_names)
    assert not train_names & pre_names
    ids = [{p["id"] for p in ps} for ps in (eval_ps, problems["train"], problems["pretrain"])]
    assert not (ids[0] & ids[1]) and not (ids[0] & ids[2]) and not (ids[1] & ids[2])


def test_corpora(problems, world):
    for p in _all(problems):
        if p["category"] == "math":
            assert p["titles"] == [] and p["texts"] == [] and p["supporting_titles"] == []
            continue
        assert len(p["titles"]) == 10 and len(set(p["titles"])) == 10
        assert len(p["supporting_titles"]) == 2 and set(p["supporting_titles"]) <= set(p["titles"])
        assert p["entities"] == p["supporting_titles"]
        for t, x in zip(p["titles"], p["texts"], strict=True):
            assert world.entities[t].text == x


def test_bridge_chain(problems, world):
    bridges = [p for p in _all(problems) if p["category"] == "bridge"]
    assert len({json.loads(p["meta"])["template"].split("/")[0] for p in bridges}) >= 8
    for p in bridges:
        meta = json.loads(p["meta"])
        first, bridge = p["supporting_titles"]
        text = dict(zip(p["titles"], p["texts"], strict=True))
        assert meta["plan"] == [first, bridge] and meta["bridge_entity"] == bridge
        assert first in p["question"] and first in text[first]
        assert first not in text[bridge]
        assert bridge in text[first]
        assert bridge not in p["question"]
        assert p["answer"] in text[bridge]
        assert world.entities[first].attrs[meta["relation"]] == bridge
        assert world.entities[bridge].attrs[meta["attribute"]] == p["answer"]
        assert meta["values"] == {bridge: p["answer"]}
        assert p["answer"] not in meta["wrong_answers"] and meta["wrong_answers"]


def test_comparison_answers_follow_values(problems):
    for p in (p for p in _all(problems) if p["category"] == "comparison"):
        meta = json.loads(p["meta"])
        x, y = meta["plan"]
        assert p["supporting_titles"] == [x, y] and x in p["question"] and y in p["question"]
        vx, vy = int(meta["values"][x]), int(meta["values"][y])
        assert vx != vy
        earlier = meta["template"].split("/")[0].endswith("_earlier")
        assert earlier or meta["template"].split("/")[0].endswith("_later")
        assert p["answer"] == ((x if vx < vy else y) if earlier else (x if vx > vy else y))
        assert meta["wrong_answers"][0] == (y if p["answer"] == x else x)
        text = dict(zip(p["titles"], p["texts"], strict=True))
        assert meta["values"][x] in text[x] and meta["values"][y] in text[y]


def test_math_answers(problems):
    maths = [p for p in _all(problems) if p["category"] == "math"]
    assert len({json.loads(p["meta"])["template"] for p in maths}) >= 5
    for p in maths:
        m = json.loads(p["meta"])["math"]
        assert 1 <= len(m["ops"]) <= 2 and len(m["operands"]) == len(m["ops"]) + 1
        assert str(evaluate_math(m["operands"], m["ops"])) == p["answer"]
        assert int(p["answer"]) >= 0
        assert [int(n) for n in re.findall(r"\d+", p["question"])] == m["operands"]
        assert p["answer"] not in json.loads(p["meta"])["wrong_answers"]


@pytest.mark.parametrize("profile", ["params.yaml", "configs/smoke.yaml"])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_eval_math_instances_never_occur_in_pretraining(profile, seed):
    """At the profile's own sizes (as prep.build_synthetic calls it); before the fix 35-38 of the tiny
    profile's 50 evaluation math problems repeated a pretraining problem's operation and operands."""
    s = yaml.safe_load((ROOT / profile).read_text())["00_data_prep"]
    w = build_world(seed, *s["world_entities"])
    ps = make_problems(w, seed, s["n_pretrain"], s["n_train"], s["n_eval"], n_distractors=s["n_distractors"])
    eval_inst = {math_instance(p) for p in ps["eval_math"]}
    pre_math = [p for p in ps["pretrain"] if p["category"] == "math"]
    assert len(ps["eval_math"]) == s["n_eval"] and len(pre_math) == s["n_pretrain"] // 3
    assert not eval_inst & {math_instance(p) for p in pre_math}
    assert not any(p["category"] == "math" for p in ps["train"])  # training has no math to keep apart
    # the evaluation set is drawn as without the exclusion; only pretraining redraws
    assert ps["eval_math"] == _math_problems(w, "eval", "eval", s["n_eval"], seed)


def test_math_exclusion_that_covers_a_template_fails_clearly(world):
    every_sum = frozenset((("+",), (a, b)) for a in range(2, 21) for b in range(2, 13))
    with pytest.raises(ValueError, match="^pretrain math: no math_add operands left"):
        _math_problems(world, "pretrain", "pretrain", 1, SEED, exclude=every_sum)


def test_evaluate_math():
    assert evaluate_math([3, 4, 5], ["*", "+"]) == 17
    assert evaluate_math([12, 4], ["/"]) == 3
    with pytest.raises(ValueError, match="inexact"):
        evaluate_math([7, 2], ["/"])


def test_too_small_or_too_many_questions_fail_clearly(world):
    with pytest.raises(ValueError, match="n_eval_entities"):
        build_world(0, 100, 100, 5)
    with pytest.raises(ValueError, match="add entities"):
        make_problems(world, SEED, 30, 10, 5000)


def test_round_trip_through_parquet(problems, tmp_path):
    from passkt.data import save_problems

    small = {k: v[:5] for k, v in problems.items()}
    save_problems(small, tmp_path)
    back = load_problems(tmp_path, "eval_bridge")
    assert back == small["eval_bridge"]
    assert sorted(p["id"] for p in load_problems(tmp_path)) == sorted(p["id"] for p in _all(small))
