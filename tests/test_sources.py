"""Real-data loaders: HotpotQA (original + HF layouts) and MATH-500 fixtures, errors, study-set sampling."""

import json
from pathlib import Path

import pytest

from passkt.data import FIELDS, ProblemError, validate_problem
from passkt.sources import (
    bridge_plan,
    load_hotpotqa,
    load_math500,
    overlapping,
    paragraph_key,
    paragraph_overlap,
    sample_study_sets,
)

FIX = Path(__file__).parent / "fixtures"
ORIGINAL = FIX / "hotpot_dev_distractor_sample.json"
HF_JSONL = FIX / "hotpot_qa_distractor_sample.jsonl"
MATH500 = FIX / "math500_sample.jsonl"


@pytest.fixture(scope="module")
def hotpot():
    return load_hotpotqa(ORIGINAL)


@pytest.fixture(scope="module")
def math():
    return load_math500(MATH500)


def _by_id(problems):
    return {p["id"]: p for p in problems}


# --------------------------------------------------------------------------------------- HotpotQA


def test_hotpot_fixture_parses_into_valid_problems(hotpot):
    assert len(hotpot) == 6
    for p in hotpot:
        assert validate_problem(p) is p
        assert set(p) == set(FIELDS)
        assert p["source"] == "hotpotqa" and p["split"] == "eval" and p["aliases"] == []
        assert len(p["supporting_titles"]) == 2 and p["entities"] == p["supporting_titles"]
    assert {p["category"] for p in hotpot} == {"comparison", "bridge"}
    assert sum(len(p["titles"]) == 10 for p in hotpot) >= 3


def test_hf_layout_maps_to_identical_problems(hotpot):
    assert load_hotpotqa(HF_JSONL) == hotpot


def test_hf_layout_parquet_and_line_json(hotpot, tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    rows = [json.loads(line) for line in HF_JSONL.read_text().splitlines()]
    pq.write_table(pa.Table.from_pylist(rows), tmp_path / "validation.parquet")
    assert load_hotpotqa(tmp_path / "validation.parquet") == hotpot
    # datasets' Dataset.to_json writes one record per line into a .json file
    (tmp_path / "validation.json").write_text(HF_JSONL.read_text())
    assert load_hotpotqa(str(tmp_path / "validation.json")) == hotpot


def test_hotpot_field_mapping(hotpot):
    p = _by_id(hotpot)["5a8d2b9e5542994ba4e3dc03"]
    raw = next(r for r in json.loads(ORIGINAL.read_text()) if r["_id"] == p["id"])
    assert p["question"] == raw["question"] and p["answer"] == "Trondheim"
    assert p["titles"] == [t for t, _ in raw["context"]]
    i = p["titles"].index("Tomas Averill")
    # sentences joined with "" exactly as HotpotQA stores them (they carry their own leading spaces)
    assert p["texts"][i] == (
        "Tomas Averill (3 March 1941 – 9 November 2009) was a Norwegian film director and screenwriter."
        " Born in Trondheim, he studied at the Norwegian Film School in Oslo."
    )
    meta = json.loads(p["meta"])
    assert meta["supporting_facts"] == [["Tomas Averill", 1], ["Glass Orchard", 0]]
    assert meta["level"] == "hard"
    assert p["meta"] == json.dumps(meta, sort_keys=True)
    assert p["supporting_titles"] == ["Tomas Averill", "Glass Orchard"]  # first-appearance order


def test_comparison_plan_is_supporting_order(hotpot):
    meta = json.loads(_by_id(hotpot)["5ab3f0c1554299233954ff02"]["meta"])
    assert meta["plan"] == ["The Lantern Saints", "Velvet Harbour"]
    assert meta["bridge_entity"] is None


@pytest.mark.parametrize(
    "pid, plan",
    [
        # supporting facts list the person first; the film paragraph names the person -> film first
        ("5a8d2b9e5542994ba4e3dc03", ["Glass Orchard", "Tomas Averill"]),
        # the disambiguation "(engineer)" is dropped when looking for the mention
        ("5ae4a1c75542995dadf24304", ["Hollin Bridge", "Josiah Penhallow (engineer)"]),
        # neither paragraph names the other's exact title -> supporting-facts order
        ("5a90c3d1554299051454aa05", ["Brackley Lane", "Fernleigh Athletic F.C."]),
    ],
)
def test_bridge_plan_in_fixture(hotpot, pid, plan):
    meta = json.loads(_by_id(hotpot)[pid]["meta"])
    assert meta["plan"] == plan
    assert meta["bridge_entity"] == plan[1]


def test_bridge_plan_rule():
    texts = {"Frost Line": "Frost Line is a film by Bo Lind.", "Bo Lind": "Bo Lind is a director."}
    assert bridge_plan(["Bo Lind", "Frost Line"], texts) == ["Frost Line", "Bo Lind"]
    assert bridge_plan(["Frost Line", "Bo Lind"], texts) == ["Frost Line", "Bo Lind"]
    both = {"Xan": "Xan met Yul.", "Yul": "Yul met Xan."}
    assert bridge_plan(["Yul", "Xan"], both) == ["Yul", "Xan"]  # ambiguous: keep the given order
    # Wikipedia titles only fix the case of the first letter
    band = {"Abbey Road": "An album by the Beatles.", "The Beatles": "An English rock band."}
    assert bridge_plan(["The Beatles", "Abbey Road"], band) == ["Abbey Road", "The Beatles"]
    assert bridge_plan(["Bo Lind", "Frost Line"], {**texts, "Frost Line": "by bo lind"}) == [
        "Bo Lind",
        "Frost Line",
    ]
    # whole-word match only: "Ann" is not mentioned by "Annual"
    assert bridge_plan(["P", "Ann"], {"P": "P", "Ann": "Annual report on P."}) == ["Ann", "P"]
    assert bridge_plan(["P", "Ann"], {"P": "Annual", "Ann": "nothing"}) == ["P", "Ann"]


# -------------------------------------------------------------------------------- HotpotQA errors


def _hf_rows():
    return [json.loads(line) for line in HF_JSONL.read_text().splitlines()]


def _write_jsonl(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


@pytest.mark.parametrize(
    "mutate, field",
    [
        (lambda r: r.pop("answer"), "'answer'"),
        (lambda r: r.update(question="  "), "'question'"),
        (lambda r: r.update(type="intersection"), "'type'"),
        (lambda r: r.update(level=3), "'level'"),
        (lambda r: r["supporting_facts"]["sent_id"].append(0), "'supporting_facts'"),
        (lambda r: r["supporting_facts"].update(title=["Nowhere", "Nowhere"]), "'supporting_facts'"),
        (lambda r: r["supporting_facts"].update(sent_id=[0, "1"]), "'supporting_facts'"),
        (lambda r: r["context"]["sentences"].pop(), "'context'"),
        (lambda r: r["context"]["sentences"].__setitem__(0, "not a list"), "'context'"),
    ],
)
def test_malformed_jsonl_names_file_line_and_field(tmp_path, mutate, field):
    rows = _hf_rows()
    mutate(rows[2])
    path = _write_jsonl(tmp_path / "bad.jsonl", rows)
    with pytest.raises(ProblemError) as e:
        load_hotpotqa(path)
    assert f"{path}:3" in str(e.value) and field in str(e.value)


def test_malformed_original_json_names_record_index(tmp_path):
    rows = json.loads(ORIGINAL.read_text())
    rows[4]["supporting_facts"][1] = ["Alder Quayle"]
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(rows))
    with pytest.raises(ProblemError, match=r"bad\.json\[4\].*'supporting_facts'"):
        load_hotpotqa(path)


def test_single_supporting_title_is_an_error(tmp_path):
    rows = _hf_rows()
    rows[0]["supporting_facts"] = {"title": ["Marrowby Abbey"], "sent_id": [0]}
    with pytest.raises(ProblemError, match=r":1 .*covers 1 titles"):
        load_hotpotqa(_write_jsonl(tmp_path / "one.jsonl", rows))


def test_invalid_json_line_and_non_object(tmp_path):
    path = tmp_path / "broken.jsonl"
    path.write_text(HF_JSONL.read_text() + "{not json\n")
    with pytest.raises(ProblemError, match=r"broken\.jsonl:7: invalid JSON"):
        load_hotpotqa(path)
    path.write_text("[1, 2]\n")
    with pytest.raises(ProblemError, match=r"broken\.jsonl:1: record should be a JSON object"):
        load_hotpotqa(path)


def test_duplicate_hotpot_ids(tmp_path):
    rows = _hf_rows()
    rows[3]["id"] = rows[1]["id"]
    with pytest.raises(ProblemError, match="duplicate problem id '5ab3f0c1554299233954ff02'"):
        load_hotpotqa(_write_jsonl(tmp_path / "dup.jsonl", rows))


def test_missing_local_file_never_reaches_the_hub(tmp_path, monkeypatch):
    import datasets

    def no_hub(*a, **k):
        raise AssertionError("hub called")

    monkeypatch.setattr(datasets, "load_dataset", no_hub)
    with pytest.raises(FileNotFoundError, match="nope.json"):
        load_hotpotqa(tmp_path / "nope.json")


def test_hub_id_goes_through_load_dataset(monkeypatch, hotpot):
    import datasets

    calls = []

    def fake(name, config, split):
        calls.append((name, config, split))
        return _hf_rows()

    monkeypatch.setattr(datasets, "load_dataset", fake)
    assert load_hotpotqa("someone/hotpot_qa", split="train") == hotpot
    assert calls == [("someone/hotpot_qa", "distractor", "train")]


# --------------------------------------------------------------------------------------- MATH-500


def test_math500_fixture(math):
    assert len(math) == 6
    for p in math:
        validate_problem(p)
        assert p["category"] == "math" and p["source"] == "math500"
        assert p["titles"] == p["texts"] == p["supporting_titles"] == p["entities"] == []
    p = _by_id(math)["test/counting_and_probability/951.json"]
    assert p["answer"] == "30,\\!240"
    assert json.loads(p["meta"]) == {
        "subject": "Counting & Probability",
        "level": 4,
        "unique_id": "test/counting_and_probability/951.json",
    }
    assert p["question"].startswith("In how many ways")


@pytest.mark.parametrize(
    "mutate, field",
    [
        (lambda r: r.pop("level"), "'level'"),
        (lambda r: r.update(answer=56), "'answer'"),
        (lambda r: r.update(answer=""), "'answer'"),
        (lambda r: r.pop("solution"), "'solution'"),
        (lambda r: r.update(unique_id=None), "'unique_id'"),
        (lambda r: r.update(level=True), "'level'"),
    ],
)
def test_math500_malformed_names_file_line_and_field(tmp_path, mutate, field):
    rows = [json.loads(line) for line in MATH500.read_text().splitlines()]
    mutate(rows[4])
    path = _write_jsonl(tmp_path / "math.jsonl", rows)
    with pytest.raises(ProblemError) as e:
        load_math500(path)
    assert f"{path}:5" in str(e.value) and field in str(e.value)


def test_math500_duplicate_ids_and_missing_file(tmp_path):
    rows = [json.loads(line) for line in MATH500.read_text().splitlines()]
    rows[5]["unique_id"] = rows[0]["unique_id"]
    with pytest.raises(ProblemError, match="duplicate problem id"):
        load_math500(_write_jsonl(tmp_path / "dup.jsonl", rows))
    with pytest.raises(FileNotFoundError, match="absent.jsonl"):
        load_math500(tmp_path / "absent.jsonl")


# --------------------------------------------------------------------------------------- sampling


def _pool(category, n, prefix):
    out = []
    for i in range(n):
        hot = category != "math"
        out.append(
            {
                "id": f"{prefix}{i:03d}",
                "category": category,
                "question": f"q{i}?",
                "answer": "a",
                "aliases": [],
                "titles": ["T1", "T2"] if hot else [],
                "texts": ["x", "y"] if hot else [],
                "supporting_titles": ["T1", "T2"] if hot else [],
                "entities": [],
                "split": "eval",
                "source": "hotpotqa" if hot else "math500",
                "meta": "{}",
            }
        )
    return out


@pytest.fixture(scope="module")
def pools():
    return _pool("comparison", 40, "c") + _pool("bridge", 35, "b"), _pool("math", 20, "m")


def test_sample_sizes_categories_and_splits(pools):
    hot, mth = pools
    sets = sample_study_sets(hot, mth, n_train=20, n_eval=10, seed=3)
    assert set(sets) == {"train", "eval_math", "eval_comparison", "eval_bridge"}
    cats = [p["category"] for p in sets["train"]]
    assert cats.count("comparison") == 10 and cats.count("bridge") == 10
    for name, cat in [("eval_math", "math"), ("eval_comparison", "comparison"), ("eval_bridge", "bridge")]:
        assert len(sets[name]) == 10 and {p["category"] for p in sets[name]} == {cat}
        assert {p["split"] for p in sets[name]} == {"eval"}
    assert {p["split"] for p in sets["train"]} == {"train"}
    ids = [p["id"] for ps in sets.values() for p in ps]
    assert len(ids) == len(set(ids)) == 50
    for ps in sets.values():
        for p in ps:
            validate_problem(p)
    assert all(p["split"] == "eval" for p in hot)  # inputs are not mutated


def test_sample_is_deterministic_and_seeded(pools):
    hot, mth = pools
    ids = lambda s: {k: [p["id"] for p in v] for k, v in s.items()}  # noqa: E731
    a = ids(sample_study_sets(hot, mth, n_train=20, n_eval=10, seed=0))
    assert a == ids(sample_study_sets(hot, mth, n_train=20, n_eval=10, seed=0))
    assert a == ids(sample_study_sets(hot[::-1], mth[::-1], n_train=20, n_eval=10, seed=0))  # order-free
    assert a != ids(sample_study_sets(hot, mth, n_train=20, n_eval=10, seed=1))


def test_sample_too_few_names_the_category(pools):
    hot, mth = pools
    with pytest.raises(ProblemError, match="'bridge': need 36 problems, only 35"):
        sample_study_sets(hot, mth, n_train=52, n_eval=10)
    with pytest.raises(ProblemError, match="'math': need 21"):
        sample_study_sets(hot, mth, n_train=2, n_eval=21)


def test_sample_rejects_mixed_up_inputs(pools):
    hot, mth = pools
    with pytest.raises(ProblemError, match="category 'math'"):
        sample_study_sets(hot + mth[:1], mth[1:], n_train=2, n_eval=1)
    with pytest.raises(ProblemError, match="duplicate problem id"):
        sample_study_sets(hot + hot[:1], mth, n_train=2, n_eval=1)


def test_sample_on_real_fixtures(hotpot, math):
    sets = sample_study_sets(hotpot, math, n_train=2, n_eval=2, seed=0)
    assert [p["category"] for p in sets["train"]] == ["comparison", "bridge"]
    assert len(sets["eval_math"]) == 2


# --------------------------------------------------------------------------------------- paragraph overlap


def test_paragraph_key_and_overlapping_gold_versus_any():
    assert paragraph_key("  Marrowby\u00a0 ABBEY ") == paragraph_key("Marrowby Abbey") == "marrowby abbey"
    train = _pool("comparison", 1, "t")  # corpus T1, T2
    cands = [{**p, "supporting_titles": ["U1", "U2"]} for p in _pool("bridge", 3, "e")]
    cands[0] = {**cands[0], "titles": ["t1", "U2"], "texts": ["x", "y"], "supporting_titles": ["t1", "U2"]}
    cands[1] = {**cands[1], "titles": ["U1", "U2", "T2"], "texts": ["x", "y", "z"]}
    cands[2] = {**cands[2], "titles": ["U1", "U2"], "texts": ["x", "y"]}
    assert overlapping(cands, train) == ["e000"]  # a gold paragraph in training
    assert overlapping(cands, train, gold_only=False) == ["e000", "e001"]  # + a shared distractor
    sets = {"train": train, "eval_bridge": cands, "eval_math": _pool("math", 2, "m")}
    assert paragraph_overlap(sets) == {"eval_bridge": ["e000"], "eval_math": []}


def _raw_with_leak():
    """The original-layout fixture with one evaluation comparison problem's gold paragraph copied (title in
    other case and spacing) into a training problem's corpus, in place of a distractor."""
    raw = json.loads(ORIGINAL.read_text())
    plain = sample_study_sets(load_hotpotqa(ORIGINAL), load_math500(MATH500), n_train=2, n_eval=1, seed=0)
    leak = plain["eval_comparison"][0]
    gold = leak["supporting_titles"][0]
    rec = next(r for r in raw if r["_id"] == leak["id"])
    sentences = next(s for t, s in rec["context"] if t == gold)
    train_id = next(p["id"] for p in plain["train"] if p["category"] == "bridge")
    host = next(r for r in raw if r["_id"] == train_id)
    assert host["context"][-1][0] not in {t for t, _ in host["supporting_facts"]}  # a distractor
    host["context"][-1] = [f" {gold.upper()} ", sentences]
    return raw, plain, leak


def test_overlapping_eval_problem_is_counted_and_replaced(tmp_path):
    raw, plain, leak = _raw_with_leak()
    (tmp_path / "hotpot.json").write_text(json.dumps(raw))
    hot, mth = load_hotpotqa(tmp_path / "hotpot.json"), load_math500(MATH500)
    kept = sample_study_sets(hot, mth, n_train=2, n_eval=1, seed=0)
    assert paragraph_overlap(kept) == {"eval_math": [], "eval_comparison": [leak["id"]], "eval_bridge": []}
    sets = sample_study_sets(hot, mth, n_train=2, n_eval=1, seed=0, drop_paragraph_overlap=True)
    assert paragraph_overlap(sets) == {"eval_math": [], "eval_comparison": [], "eval_bridge": []}
    ids = lambda s, name: [p["id"] for p in s[name]]  # noqa: E731
    assert len(sets["eval_comparison"]) == 1 and ids(sets, "eval_comparison") != [leak["id"]]
    for name in ("train", "eval_math", "eval_bridge"):  # only the overlapping problem changes
        assert ids(sets, name) == ids(kept, name) == ids(plain, name)
    with pytest.raises(ProblemError, match="'comparison': need 2 evaluation problems without a gold"):
        sample_study_sets(hot, mth, n_train=2, n_eval=2, seed=0, drop_paragraph_overlap=True)
    assert len(sample_study_sets(hot, mth, n_train=2, n_eval=2, seed=0)["eval_comparison"]) == 2

    # prep: the count of the seeded draw comes back with the sets and goes into the data card
    from passkt import prep

    for drop, expect in ((True, sets), (False, kept)):
        got, found = prep.build_real(0, str(tmp_path / "hotpot.json"), str(MATH500), 2, 1, drop)
        assert found == 1 and got == expect
    params = {"source": "real", "seed": 0, "paragraph_overlap": 1, "drop_paragraph_overlap": True}
    prep.save(sets, [], tmp_path / "out", params)
    card = (tmp_path / "out" / "DATA_CARD.md").read_text()
    assert "- found: 1 " in card and "- drop_paragraph_overlap: True " in card
    assert "- in the saved sets: 0 overlapping;" in card


def test_synthetic_sets_have_no_paragraph_overlap_and_a_forced_one_is_dropped(small_sets):
    from passkt import prep

    sets, _ = small_sets
    assert prep.check_paragraph_overlap(sets, True) == (sets, 0)
    assert not any(overlapping(sets[n], sets["train"], gold_only=False) for n in sets if n.startswith("eval"))
    donor, victim = sets["train"][0], sets["eval_bridge"][0]
    g = donor["supporting_titles"][0]  # a training gold paragraph becomes a gold paragraph of victim
    forced = {
        **victim,
        "titles": victim["titles"] + [g],
        "texts": victim["texts"] + [donor["texts"][donor["titles"].index(g)]],
        "supporting_titles": [victim["supporting_titles"][0], g],
    }
    leaky = {**sets, "eval_bridge": [forced] + sets["eval_bridge"][1:]}
    kept, n = prep.check_paragraph_overlap(leaky, False)
    assert n == 1 and kept == leaky
    dropped, n = prep.check_paragraph_overlap(leaky, True)
    assert n == 1 and dropped == {**sets, "eval_bridge": sets["eval_bridge"][1:]}
