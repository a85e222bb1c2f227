"""Real-data loaders (paper profile): HotpotQA distractor and MATH-500 -> the one problem schema.

Every malformed record raises :class:`passkt.data.ProblemError` naming the file, the line (JSONL) or the
record index (JSON / parquet / hub split) and the field; nothing is dropped silently. The hub is only
contacted by :func:`load_hotpotqa` when its argument is not an existing local path.

HotpotQA comes in two layouts that map to identical problems:
- original (``hotpot_dev_distractor_v1.json``): ``_id``, ``supporting_facts`` = [[title, sent_id], ...],
  ``context`` = [[title, [sentence, ...]], ...];
- Hugging Face ``hotpot_qa``/``distractor``: ``id``, ``supporting_facts`` = {title: [...], sent_id: [...]},
  ``context`` = {title: [...], sentences: [[...], ...]}.
"""

from __future__ import annotations

import json
import re
import unicodedata
from pathlib import Path
from typing import Iterable, Iterator

import numpy as np

from .data import ProblemError, check_unique_ids, make_problem, validate_problem

HOTPOT_TYPES = ("comparison", "bridge")
LOCAL_SUFFIXES = (".json", ".jsonl", ".parquet")


# --------------------------------------------------------------------------------------------- reading


def _read_records(path: Path) -> Iterator[tuple[str, object]]:
    """Yield ``(where, record)`` from a .jsonl (where = file:line), .json or .parquet (where = file[index])."""
    if path.suffix == ".parquet":
        import pyarrow.parquet as pq

        for i, rec in enumerate(pq.read_table(path).to_pylist()):
            yield f"{path}[{i}]", rec
        return
    text = path.read_text(encoding="utf-8")
    if path.suffix == ".json" and text.lstrip().startswith("["):
        try:
            records = json.loads(text)
        except json.JSONDecodeError as e:
            raise ProblemError(f"{path}: invalid JSON at line {e.lineno}: {e.msg}") from None
        for i, rec in enumerate(records):
            yield f"{path}[{i}]", rec
        return
    # JSON lines (.jsonl, or the line-per-record .json that datasets' to_json writes)
    for lineno, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
        except json.JSONDecodeError as e:
            raise ProblemError(f"{path}:{lineno}: invalid JSON: {e.msg}") from None
        yield f"{path}:{lineno}", rec


def _local_or_hub(path_or_id: str | Path, split: str) -> Iterator[tuple[str, object]]:
    path = Path(path_or_id)
    if path.exists():
        if path.suffix not in LOCAL_SUFFIXES:
            raise ValueError(
                f"{path}: unsupported file type {path.suffix!r}; expected one of {LOCAL_SUFFIXES}"
            )
        yield from _read_records(path)
        return
    if path.suffix in LOCAL_SUFFIXES:
        raise FileNotFoundError(f"no such file: {path}")
    import datasets

    ds = datasets.load_dataset(str(path_or_id), "distractor", split=split)
    for i, rec in enumerate(ds):
        yield f"{path_or_id}[{split}][{i}]", rec


def _field(rec: object, name: str, typ: type | tuple[type, ...], where: str):
    """``rec[name]`` checked to be of ``typ`` (and non-empty if str); ProblemError naming the field if not."""
    if not isinstance(rec, dict):
        raise ProblemError(f"{where}: record should be a JSON object, got {type(rec).__name__}")
    if name not in rec:
        raise ProblemError(f"{where}: missing field {name!r}")
    value = rec[name]
    if not isinstance(value, typ) or isinstance(value, bool):
        raise ProblemError(f"{where}: field {name!r} has type {type(value).__name__}")
    if isinstance(value, str) and not value.strip():
        raise ProblemError(f"{where}: field {name!r} is empty")
    return value


def _check_unique(problems: list[dict], where: str) -> list[dict]:
    check_unique_ids(problems, where=where)
    return problems


# -------------------------------------------------------------------------------------------- HotpotQA


def _hotpot_facts_and_context(rec: dict, where: str) -> tuple[list[list], list[tuple[str, list[str]]]]:
    """Supporting facts as [[title, sent_id], ...] and context as [(title, sentences)], from either layout."""
    sf, ctx = (
        _field(rec, "supporting_facts", (list, dict), where),
        _field(rec, "context", (list, dict), where),
    )
    bad_sf = f"{where}: field 'supporting_facts' is malformed"
    bad_ctx = f"{where}: field 'context' is malformed"
    if isinstance(sf, dict):  # HF layout
        titles, ids = sf.get("title"), sf.get("sent_id")
        if not isinstance(titles, list) or not isinstance(ids, list) or len(titles) != len(ids):
            raise ProblemError(f"{bad_sf}: needs equal-length lists 'title' and 'sent_id'")
        sf = [list(pair) for pair in zip(titles, ids, strict=True)]
    if isinstance(ctx, dict):
        titles, sents = ctx.get("title"), ctx.get("sentences")
        if not isinstance(titles, list) or not isinstance(sents, list) or len(titles) != len(sents):
            raise ProblemError(f"{bad_ctx}: needs equal-length lists 'title' and 'sentences'")
        ctx = list(zip(titles, sents, strict=True))
    facts = []
    for i, pair in enumerate(sf):
        if not (isinstance(pair, (list, tuple)) and len(pair) == 2 and isinstance(pair[0], str)):
            raise ProblemError(f"{bad_sf}: entry {i} should be [title, sent_id]")
        if not isinstance(pair[1], int) or isinstance(pair[1], bool) or pair[1] < 0:
            raise ProblemError(f"{bad_sf}: entry {i} has sent_id {pair[1]!r}")
        facts.append([pair[0], pair[1]])
    paragraphs = []
    for i, para in enumerate(ctx):
        if not (isinstance(para, (list, tuple)) and len(para) == 2 and isinstance(para[0], str)):
            raise ProblemError(f"{bad_ctx}: paragraph {i} should be [title, [sentences]]")
        if not isinstance(para[1], list) or not all(isinstance(s, str) for s in para[1]):
            raise ProblemError(f"{bad_ctx}: paragraph {i} ({para[0]!r}) sentences should be a list of str")
        paragraphs.append((para[0], list(para[1])))
    if not facts:
        raise ProblemError(f"{bad_sf}: empty")
    if not paragraphs:
        raise ProblemError(f"{bad_ctx}: empty")
    return facts, paragraphs


def _mentions(text: str, title: str) -> bool:
    """Whether ``text`` names ``title``: whole words, disambiguation "(...)" dropped, case-sensitive except
    the first letter, which Wikipedia titles always capitalise ("the Beatles" names "The Beatles")."""
    name = re.sub(r"\s*\([^)]*\)\s*$", "", title).strip() or title
    head = f"[{name[0].lower()}{name[0].upper()}]" if name[0].isalpha() else re.escape(name[0])
    return re.search(rf"(?<!\w){head}{re.escape(name[1:])}(?!\w)", text) is not None


def bridge_plan(supporting: list[str], texts: dict[str, str]) -> list[str]:
    """Lookup order for a bridge question: first the gold paragraph whose text mentions the other gold
    title (that other title is the bridge entity); when neither or both do, keep supporting-facts order."""
    if len(supporting) != 2:
        return list(supporting)
    a, b = supporting
    a_names_b, b_names_a = _mentions(texts[a], b), _mentions(texts[b], a)
    return [b, a] if (b_names_a and not a_names_b) else [a, b]


def hotpot_record_to_problem(rec: object, where: str) -> dict:
    """Map one HotpotQA distractor record (original or HF layout) onto the problem schema."""
    id_field = "_id" if isinstance(rec, dict) and "_id" in rec else "id"
    pid = _field(rec, id_field, str, where)
    where = f"{where} (id {pid!r})"
    question = _field(rec, "question", str, where)
    answer = _field(rec, "answer", str, where)
    qtype = _field(rec, "type", str, where)
    if qtype not in HOTPOT_TYPES:
        raise ProblemError(f"{where}: field 'type' is {qtype!r}, expected one of {HOTPOT_TYPES}")
    level = _field(rec, "level", str, where)
    facts, paragraphs = _hotpot_facts_and_context(rec, where)

    titles = [t for t, _ in paragraphs]
    texts = ["".join(sents) for _, sents in paragraphs]
    supporting = list(dict.fromkeys(t for t, _ in facts))
    missing = [t for t in supporting if t not in titles]
    if missing:
        raise ProblemError(f"{where}: field 'supporting_facts' names titles {missing} absent from 'context'")
    if len(supporting) != 2:
        raise ProblemError(f"{where}: field 'supporting_facts' covers {len(supporting)} titles, expected 2")
    plan = bridge_plan(supporting, dict(zip(titles, texts, strict=True))) if qtype == "bridge" else supporting
    meta = {
        "supporting_facts": facts,
        "plan": plan,
        "bridge_entity": plan[1] if qtype == "bridge" else None,
        "level": level,
    }
    # split "eval" is a placeholder: sample_study_sets assigns the real split
    problem = make_problem(pid, qtype, question, answer, titles, texts, supporting, "eval", "hotpotqa", meta)
    return validate_problem(problem, where=where)


def load_hotpotqa(path_or_id: str | Path, split: str = "validation") -> list[dict]:
    """Load HotpotQA distractor problems from a local .json/.jsonl/.parquet file (either layout), or, when
    no such path exists, from the hub via ``datasets.load_dataset(path_or_id, "distractor", split=split)``.
    ``split`` only matters for the hub; every problem gets the placeholder split "eval"."""
    problems = [hotpot_record_to_problem(rec, where) for where, rec in _local_or_hub(path_or_id, split)]
    return _check_unique(problems, str(path_or_id))


# -------------------------------------------------------------------------------------------- MATH-500


def math500_record_to_problem(rec: object, where: str) -> dict:
    """Map one MATH-500 record (problem, solution, answer, subject, level, unique_id) onto the schema."""
    uid = _field(rec, "unique_id", str, where)
    where = f"{where} (id {uid!r})"
    question = _field(rec, "problem", str, where)
    answer = _field(rec, "answer", str, where)
    _field(rec, "solution", str, where)
    subject = _field(rec, "subject", str, where)
    level = _field(rec, "level", (int, str), where)
    problem = {
        "id": uid,
        "category": "math",
        "question": question,
        "answer": answer,
        "aliases": [],
        "titles": [],
        "texts": [],
        "supporting_titles": [],
        "entities": [],
        "split": "eval",
        "source": "math500",
        "meta": json.dumps({"subject": subject, "level": level, "unique_id": uid}, sort_keys=True),
    }
    return validate_problem(problem, where=where)


def load_math500(path: str | Path) -> list[dict]:
    """Load MATH-500 problems from its JSONL file (``HuggingFaceH4/MATH-500`` test.jsonl format)."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"no such file: {path}")
    problems = [math500_record_to_problem(rec, where) for where, rec in _read_records(path)]
    return _check_unique(problems, str(path))


# ----------------------------------------------------------------------------------- paragraph overlap


def paragraph_key(title: str) -> str:
    """A paragraph's identity across problems: its title, NFKC-normalised, case-folded, spaces collapsed.

    A HotpotQA title names one Wikipedia article and the text is that article's first paragraph, so the title
    identifies the paragraph (and also matches a copy whose text differs in spacing); synthetic titles are
    unique entity names.
    """
    return " ".join(unicodedata.normalize("NFKC", title).casefold().split())


def overlapping(candidates: Iterable[dict], train: Iterable[dict], gold_only: bool = True) -> list[str]:
    """Ids of ``candidates`` with a gold (supporting) paragraph, or with ``gold_only=False`` any paragraph,
    that occurs anywhere (gold or distractor) in a training problem's corpus."""
    seen = {paragraph_key(t) for p in train for t in p["titles"]}
    field = "supporting_titles" if gold_only else "titles"
    return [p["id"] for p in candidates if any(paragraph_key(t) in seen for t in p[field])]


def paragraph_overlap(sets: dict[str, list[dict]], gold_only: bool = True) -> dict[str, list[str]]:
    """``overlapping`` for every evaluation set (``eval_*``) of ``sets`` against its ``train`` set."""
    train = sets.get("train", [])
    return {name: overlapping(ps, train, gold_only) for name, ps in sets.items() if name.startswith("eval")}


# -------------------------------------------------------------------------------------------- sampling


def _order(pool: list[dict], need: int, seed: int, stream: int, category: str) -> list[dict]:
    """All of ``pool`` in a seeded order (input order does not matter); ProblemError if shorter than ``need``."""
    if len(pool) < need:
        raise ProblemError(f"category {category!r}: need {need} problems, only {len(pool)} available")
    pool = sorted(pool, key=lambda p: p["id"])
    return [pool[i] for i in np.random.default_rng([seed, stream]).permutation(len(pool))]


def _take(rest: list[dict], n: int, train: list[dict], drop_overlap: bool, category: str) -> list[dict]:
    """The first ``n`` of ``rest``; with ``drop_overlap``, skipping those with a gold paragraph in training."""
    if drop_overlap:
        bad = set(overlapping(rest, train))
        rest = [p for p in rest if p["id"] not in bad]
        if len(rest) < n:
            raise ProblemError(
                f"category {category!r}: need {n} evaluation problems without a gold paragraph in training, "
                f"only {len(rest)} left"
            )
    return rest[:n]


def sample_study_sets(
    hotpot: Iterable[dict],
    math: Iterable[dict],
    n_train: int = 200,
    n_eval: int = 100,
    seed: int = 0,
    drop_paragraph_overlap: bool = False,
) -> dict[str, list[dict]]:
    """The paper's problem sets: ``train`` (n_train HotpotQA, half comparison / half bridge, the odd one
    bridge) and ``eval_math``, ``eval_comparison``, ``eval_bridge`` (n_eval each), all ids disjoint.

    Seeded with ``numpy.random.default_rng([seed, category])``; the input order does not matter. Each
    category's pool is put in one seeded order: training takes its head, evaluation the problems after it.
    With ``drop_paragraph_overlap`` an evaluation problem whose gold paragraph occurs in a training problem's
    corpus (``overlapping``) is skipped for the next one, so training and the other evaluation problems are
    the same as without it. Returns copies with ``split`` set to "train" or "eval".
    """
    if n_train < 0 or n_eval < 0:
        raise ValueError(f"n_train and n_eval must be >= 0, got n_train={n_train}, n_eval={n_eval}")
    hotpot, math = list(hotpot), list(math)
    check_unique_ids(hotpot + math, where="sample_study_sets")
    by_cat: dict[str, list[dict]] = {"comparison": [], "bridge": []}
    for p in hotpot:
        if p["category"] not in by_cat:
            raise ProblemError(f"hotpot problem {p['id']!r} has category {p['category']!r}")
        by_cat[p["category"]].append(p)
    bad = [p["id"] for p in math if p["category"] != "math"]
    if bad:
        raise ProblemError(f"math problem {bad[0]!r} has category that is not 'math'")

    n_comp, n_bridge = n_train // 2, n_train - n_train // 2
    comp = _order(by_cat["comparison"], n_comp + n_eval, seed, 0, "comparison")
    bridge = _order(by_cat["bridge"], n_bridge + n_eval, seed, 1, "bridge")
    maths = _order(math, n_eval, seed, 2, "math")
    train = comp[:n_comp] + bridge[:n_bridge]
    drop = drop_paragraph_overlap
    eval_c = _take(comp[n_comp:], n_eval, train, drop, "comparison")
    eval_b = _take(bridge[n_bridge:], n_eval, train, drop, "bridge")
    eval_m = _take(maths, n_eval, train, drop, "math")

    def as_split(ps: list[dict], split: str) -> list[dict]:
        return [{**p, "split": split} for p in ps]

    return {
        "train": as_split(train, "train"),
        "eval_math": as_split(eval_m, "eval"),
        "eval_comparison": as_split(eval_c, "eval"),
        "eval_bridge": as_split(eval_b, "eval"),
    }
