"""One problem schema for every source (synthetic world, HotpotQA, MATH-500), saved as HF datasets.

A problem is a plain dict with exactly the keys of :data:`FIELDS`. Paragraph corpora are stored as two
parallel lists (``titles`` / ``texts``) so that parquet holds them without nested structs.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Iterable

CATEGORIES = ("math", "comparison", "bridge")
SPLITS = ("pretrain", "train", "eval")

# name -> (python type, description)
FIELDS: dict[str, tuple[type, str]] = {
    "id": (str, "unique problem id, stable across runs"),
    "category": (str, "math | comparison | bridge"),
    "question": (str, "the question text shown to the agent"),
    "answer": (str, "gold answer"),
    "aliases": (list, "other accepted answers (list of str)"),
    "titles": (list, "paragraph titles of the problem's own corpus (empty for math)"),
    "texts": (list, "paragraph texts, parallel to titles"),
    "supporting_titles": (list, "titles of the gold paragraphs (2 for comparison/bridge)"),
    "entities": (list, "entity names the question is about (for split-disjointness checks)"),
    "split": (str, "pretrain | train | eval"),
    "source": (str, "synthetic | hotpotqa | math500"),
    "meta": (str, "JSON: source-specific gold chain (queries in order, bridge entity, compared values)"),
}


class ProblemError(ValueError):
    """A problem record that does not fit the schema; the message names the record and the field."""


def validate_problem(p: dict, where: str = "") -> dict:
    """Check one record against the schema and return it; raise ProblemError naming the bad field."""
    at = f"{where}: " if where else ""
    pid = p.get("id", "<no id>")
    for name, (typ, _) in FIELDS.items():
        if name not in p:
            raise ProblemError(f"{at}problem {pid!r}: missing field {name!r}")
        if not isinstance(p[name], typ):
            raise ProblemError(
                f"{at}problem {pid!r}: field {name!r} should be {typ.__name__}, got {type(p[name]).__name__}"
            )
    extra = set(p) - set(FIELDS)
    if extra:
        raise ProblemError(f"{at}problem {pid!r}: unknown field(s) {sorted(extra)}")
    if p["category"] not in CATEGORIES:
        raise ProblemError(f"{at}problem {pid!r}: category {p['category']!r} not in {CATEGORIES}")
    if p["split"] not in SPLITS:
        raise ProblemError(f"{at}problem {pid!r}: split {p['split']!r} not in {SPLITS}")
    if len(p["titles"]) != len(p["texts"]):
        raise ProblemError(f"{at}problem {pid!r}: {len(p['titles'])} titles but {len(p['texts'])} texts")
    if p["category"] != "math":
        if not p["texts"]:
            raise ProblemError(f"{at}problem {pid!r}: empty paragraph corpus for a {p['category']} question")
        missing = [t for t in p["supporting_titles"] if t not in p["titles"]]
        if missing:
            raise ProblemError(f"{at}problem {pid!r}: supporting titles {missing} not in its corpus")
    if not p["question"].strip():
        raise ProblemError(f"{at}problem {pid!r}: empty question")
    if not p["answer"].strip():
        raise ProblemError(f"{at}problem {pid!r}: empty answer")
    return p


def make_problem(pid: str, category: str, question: str, answer: str, titles: list[str], texts: list[str],
                 supporting: list[str], split: str, source: str, meta: dict) -> dict:
    """A schema record; entities = the supporting titles (the entities the question depends on)."""
    return {"id": pid, "category": category, "question": question, "answer": answer, "aliases": [],
            "titles": titles, "texts": texts, "supporting_titles": supporting, "entities": list(supporting),
            "split": split, "source": source, "meta": json.dumps(meta, sort_keys=True)}


def check_unique_ids(problems: Iterable[dict], where: str = "") -> None:
    seen: set[str] = set()
    for p in problems:
        if p["id"] in seen:
            raise ProblemError(f"{where + ': ' if where else ''}duplicate problem id {p['id']!r}")
        seen.add(p["id"])


def save_problems(problems: dict[str, list[dict]], out_dir: str | Path) -> None:
    """Save ``{split_name: [problem, ...]}`` as one parquet file per split (HF ``datasets`` format)."""
    import datasets

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    allp = [p for ps in problems.values() for p in ps]
    for i, p in enumerate(allp):
        validate_problem(p, where=f"record {i}")
    check_unique_ids(allp)
    features = datasets.Features(
        {
            name: (datasets.Sequence(datasets.Value("string")) if typ is list else datasets.Value("string"))
            for name, (typ, _) in FIELDS.items()
        }
    )
    for name, ps in problems.items():
        ds = datasets.Dataset.from_list(ps, features=features)
        ds.to_parquet(str(out_dir / f"{name}.parquet"))


def load_problems(path: str | Path, split_name: str | None = None) -> list[dict]:
    """Load problems from a folder written by :func:`save_problems` (one split or all)."""
    import datasets

    path = Path(path)
    files = [path / f"{split_name}.parquet"] if split_name else sorted(path.glob("*.parquet"))
    if not files or not all(f.exists() for f in files):
        raise FileNotFoundError(f"no problem file {files[0] if files else path / '*.parquet'}")
    out: list[dict] = []
    for f in files:
        ds = datasets.Dataset.from_parquet(str(f))
        for i, rec in enumerate(ds):
            out.append(validate_problem(dict(rec), where=f"{f}:{i}"))
    return out
