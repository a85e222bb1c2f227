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


def build_real(seed: int, hotpot_path: str, math500_path: str, n_train: int, n_eval: int) -> dict[str, list[dict]]:
    """Paper profile: HotpotQA distractor (local file or hub id) + MATH-500 JSONL, sampled with the seed."""
    if not hotpot_path or not math500_path:
        raise ValueError("source 'real' needs hotpot_path and math500_path (local files or hub ids)")
    return sources.sample_study_sets(sources.load_hotpotqa(hotpot_path), sources.load_math500(math500_path),
                                     n_train=n_train, n_eval=n_eval, seed=seed)


def save(sets: dict[str, list[dict]], lm_texts: list[str], out_dir: str | Path, params: dict) -> Path:
    """Problems as parquet (one file per set), LM text, and a short data card."""
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
              "disjoint sub-worlds)."]
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
