"""Stage 00 logic: build the study's problem sets (synthetic world or real HotpotQA + MATH-500) and save them."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

from passkt import data, sources, world


def build_synthetic(seed: int, entities: list[int], n_pretrain: int, n_train: int, n_eval: int,
                    n_distractors: int) -> tuple[dict[str, list[dict]], list[str]]:
    """Problem sets and the language-model text of the tiny profile.

    The LM text is the *pretraining* sub-world only: the tiny tokenizer and base model must never see an
    evaluation or training entity, or its name would get tokens the model was never trained to produce.
    """
    if len(entities) != 3:
        raise ValueError(f"world_entities must be [pretrain, train, eval] entity counts, got {entities}")
    w = world.build_world(seed, *entities)
    sets = world.make_problems(w, seed, n_pretrain, n_train, n_eval, n_distractors=n_distractors)
    texts = [t for _, t in world.world_paragraphs(w, "pretrain")]
    return sets, texts


def build_real(seed: int, hotpot_path: str, math500_path: str, n_train: int, n_eval: int,
               drop_paragraph_overlap: bool = False) -> tuple[dict[str, list[dict]], int]:
    """Paper profile: HotpotQA distractor (local file or hub id) + MATH-500 JSONL, sampled with the seed.

    Also returns how many evaluation problems of the seeded draw have a gold paragraph that some training
    problem's corpus contains; with ``drop_paragraph_overlap`` they are replaced by the next problems of the
    seeded order (``sources.sample_study_sets``), so every evaluation set keeps ``n_eval`` problems.
    """
    if not hotpot_path or not math500_path:
        raise ValueError("source 'real' needs hotpot_path and math500_path (local files or hub ids)")
    hotpot, math = sources.load_hotpotqa(hotpot_path), sources.load_math500(math500_path)
    sets = sources.sample_study_sets(hotpot, math, n_train=n_train, n_eval=n_eval, seed=seed)
    found = sum(map(len, sources.paragraph_overlap(sets).values()))
    if drop_paragraph_overlap and found:
        sets = sources.sample_study_sets(hotpot, math, n_train=n_train, n_eval=n_eval, seed=seed,
                                         drop_paragraph_overlap=True)
    return sets, found


def check_paragraph_overlap(sets: dict[str, list[dict]], drop: bool) -> tuple[dict[str, list[dict]], int]:
    """Count evaluation problems with a gold paragraph in some training problem's corpus and, with ``drop``,
    remove them (no replacement). The synthetic world has none by construction: its sub-worlds are disjoint."""
    bad = {pid for ids in sources.paragraph_overlap(sets).values() for pid in ids}
    if drop and bad:
        sets = {name: [p for p in ps if not (name.startswith("eval") and p["id"] in bad)]
                for name, ps in sets.items()}
    return sets, len(bad)


def save(sets: dict[str, list[dict]], lm_texts: list[str], out_dir: str | Path, params: dict) -> Path:
    """Problems as parquet (one file per set), LM text, and a short data card; ``params`` gives its source,
    seed, ``drop_paragraph_overlap`` and ``paragraph_overlap`` (the count the build functions return)."""
    out_dir = Path(out_dir)
    pdir = out_dir / "problems"
    data.save_problems(sets, pdir)
    (out_dir / "lm_text.json").write_text(json.dumps(lm_texts) + "\n")
    lines = ["# Data card", "", f"Source: {params.get('source')}; seed {params.get('seed')}.", "",
             "| set | problems | categories |", "|---|---|---|"]
    for name, ps in sets.items():
        cats = ", ".join(f"{c} {n}" for c, n in sorted(Counter(p["category"] for p in ps).items()))
        lines.append(f"| {name} | {len(ps)} | {cats} |")
    lines += ["", "Each record follows `passkt.data.FIELDS`: id, category, question, answer (+aliases), its own "
              "paragraph corpus (titles/texts: 2 gold + distractors for comparison/bridge, none for math), "
              "supporting titles, entities, split, source and a JSON `meta` with the gold chain.",
              "Evaluation entities never occur in the pretraining pool or the training set (synthetic world: three "
              "disjoint sub-worlds); no synthetic evaluation math problem repeats the operations and operands of a "
              "pretraining one (the training set has no math)."]
    gold, shared = (sum(map(len, sources.paragraph_overlap(sets, g).values())) for g in (True, False))
    lines += ["", "## Paragraph overlap", "",
              "An evaluation problem overlaps training when one of its gold paragraphs occurs (as gold or distractor) "
              "in a training problem's corpus; paragraphs are matched by normalised title (`sources.paragraph_key`).",
              "",
              f"- found: {params.get('paragraph_overlap', 'not counted')} (HotpotQA: in the seeded draw)",
              f"- drop_paragraph_overlap: {params.get('drop_paragraph_overlap', False)} (HotpotQA: replaced by the "
              "next problems of the seeded order; synthetic: removed)",
              f"- in the saved sets: {gold} overlapping; {shared} share some paragraph with training, distractors "
              "included (a shared distractor gives away no answer)"]
    (out_dir / "DATA_CARD.md").write_text("\n".join(lines) + "\n")
    return pdir


def eval_problems(problems_dir: str | Path) -> list[dict]:
    """All evaluation problems (every category) in a fixed order."""
    out = []
    for name in ("eval_math", "eval_comparison", "eval_bridge"):
        out += data.load_problems(problems_dir, name)
    return out


def lm_texts(out_dir: str | Path) -> list[str]:
    return json.loads((Path(out_dir) / "lm_text.json").read_text())
