"""Pretraining the tiny base model with transformers' Trainer (causal LM on behaviour-prior transcripts)."""

from __future__ import annotations

import time
from pathlib import Path


class _Texts:
    """A map-style dataset of pre-tokenised examples ({input_ids, labels})."""

    def __init__(self, ids: list[dict]):
        self.ids = ids

    def __len__(self) -> int:
        return len(self.ids)

    def __getitem__(self, i: int) -> dict:
        return self.ids[i]


def pad_collate(pad_id: int):
    """Right-pad a batch; labels = input ids with padding masked (-100)."""
    import torch

    def collate(batch: list[dict]) -> dict:
        width = max(len(b["input_ids"]) for b in batch)
        ids = torch.full((len(batch), width), pad_id, dtype=torch.long)
        mask = torch.zeros((len(batch), width), dtype=torch.long)
        labels = torch.full((len(batch), width), -100, dtype=torch.long)
        for r, b in enumerate(batch):
            x = torch.tensor(b["input_ids"], dtype=torch.long)
            ids[r, : len(x)] = x
            mask[r, : len(x)] = 1
            lab = torch.tensor(b["labels"], dtype=torch.long) if "labels" in b else x
            labels[r, : len(x)] = lab
        return {"input_ids": ids, "attention_mask": mask, "labels": labels}

    return collate


def pack(examples: list[dict], length: int, seed: int) -> list[dict]:
    """Concatenate shuffled examples into rows of ``length`` tokens (the last row may be shorter).

    Packing removes padding and mixes task types inside every batch. Batches of similar-length examples
    (``group_by_length``) were measured to stall learning here (GPU check: training loss 0.63 vs 0.21 with random
    batches, and evaluation Pass@1 on comparison questions 0.00 vs 0.34).
    """
    import random

    order = list(range(len(examples)))
    random.Random(seed).shuffle(order)
    rows, ids, labels = [], [], []
    for i in order:
        ids += examples[i]["input_ids"]
        labels += examples[i]["labels"]
        while len(ids) >= length:
            rows.append({"input_ids": ids[:length], "labels": labels[:length]})
            ids, labels = ids[length:], labels[length:]
    if ids:
        rows.append({"input_ids": ids, "labels": labels})
    return rows


def pretrain_lm(model, tokenizer, examples: list[dict], out_dir: str | Path, *, epochs: float, lr: float,
                batch_size: int, max_len: int, seed: int, warmup_ratio: float = 0.05,
                weight_decay: float = 0.01, logging_steps: int = 20, pack_len: int = 0, bf16: bool = False) -> dict:
    """Train ``model`` on examples {input_ids, labels} (labels -100 where the environment wrote the text).

    ``bf16`` trains under bfloat16 autocast (fp32 master weights), ~1.6x faster on CPUs with AVX-512 BF16.
    Returns the per-step log and totals. Trainer state goes under ``out_dir``.
    """
    import math

    from transformers import Trainer, TrainingArguments

    ids = [{"input_ids": e["input_ids"][:max_len], "labels": e["labels"][:max_len]} for e in examples]
    n_tokens = sum(len(x["input_ids"]) for x in ids)
    n_examples = len(ids)
    if pack_len:
        ids = pack(ids, pack_len, seed)
    steps = math.ceil(len(ids) / batch_size) * epochs
    logging_steps = max(1, min(logging_steps, int(steps // 10)))  # at least ~10 points on the loss curve
    args = TrainingArguments(
        output_dir=str(out_dir), num_train_epochs=epochs, learning_rate=lr, per_device_train_batch_size=batch_size,
        lr_scheduler_type="cosine", warmup_steps=warmup_ratio, weight_decay=weight_decay,
        logging_steps=logging_steps, save_strategy="no", report_to=[], seed=seed, data_seed=seed,
        train_sampling_strategy="random", dataloader_num_workers=0, disable_tqdm=False, use_cpu=True,
        bf16=bf16,
    )
    trainer = Trainer(model=model, args=args, train_dataset=_Texts(ids), data_collator=pad_collate(tokenizer.pad_token_id))
    t0 = time.time()
    trainer.train()
    seconds = time.time() - t0
    log = [r for r in trainer.state.log_history if "loss" in r]
    tokens = n_tokens * epochs
    return {"log": log, "seconds": seconds, "tokens_seen": int(tokens), "n_examples": n_examples, "n_rows": len(ids),
            "steps": int(trainer.state.global_step)}


def build_corpus(pool: list[dict], lm_text: list[str], vocab_size: int, weights: dict, budgets: dict,
                 per_problem: int, search_k: int, seed: int, lm_on_information: bool = False):
    """The tiny base model's pretraining data: tokenizer, behaviour-prior transcripts and their token examples.

    The BPE tokenizer is built from the world's language-model text, the pool's questions and the protocol's
    fixed strings; ``per_problem`` transcripts per pool problem are written by the behaviour prior against the
    real search tool and tokenised piece by piece as the rollout engine does (labels -100 on retrieved text
    unless ``lm_on_information``). Returns ``(tokenizer, transcripts, examples)``.
    """
    from passkt import models, prior, protocol

    texts = lm_text + [p["question"] for p in pool] + [protocol.SYSTEM_PROMPT, protocol.NOTICE]
    tok = models.build_tokenizer(texts, vocab_size)
    transcripts = prior.write_transcripts(tok, pool, weights, budgets, per_problem, search_k, seed)
    examples = []
    for t in transcripts:
        ids, labels = protocol.encode_parts(tok, t["prompt"], t["parts"], train_on_information=lm_on_information)
        examples.append({"input_ids": ids, "labels": labels})
    return tok, transcripts, examples


ANNEAL_SEED_OFFSET = 1_000_003  # the annealing transcripts' random stream: apart from the main corpus's (seed)
ANNEAL_LR_RATIO = 1 / 3         # the annealing pass's peak learning rate, as a share of the main pretraining's


def anneal_corpus(tokenizer, pool: list[dict], examples: list[dict], weights: dict, budgets: dict, per_problem: int,
                  search_k: int, seed: int, lm_on_information: bool = False):
    """The math annealing pass's data (trial anneal4, adopted: docs/base_model.md): every example of the main corpus once,
    then ``per_problem`` fresh behaviour-prior transcripts of every math problem of the pool.

    The fresh transcripts come from their own random stream (``seed + ANNEAL_SEED_OFFSET``), so the main corpus,
    its tokenizer and the main pretraining are exactly those of a run without the pass. Returns
    ``(fresh_transcripts, examples)``; the main corpus's examples come first and are the very objects passed in.
    """
    from passkt import prior, protocol

    if per_problem < 1:
        raise ValueError(f"math_anneal: fresh transcripts per math problem must be >= 1, got {per_problem}")
    math = [p for p in pool if p["category"] == "math"]
    if not math:
        raise ValueError("math_anneal: the pretraining pool has no math problems")
    fresh = prior.write_transcripts(tokenizer, math, weights, budgets, per_problem, search_k, seed + ANNEAL_SEED_OFFSET)
    extra = []
    for t in fresh:
        ids, labels = protocol.encode_parts(tokenizer, t["prompt"], t["parts"], train_on_information=lm_on_information)
        extra.append({"input_ids": ids, "labels": labels})
    return fresh, list(examples) + extra


def join_phases(main: dict, anneal: dict) -> dict:
    """One training record of the main pretraining followed by the annealing pass: the logs joined, the
    annealing pass's steps and epochs counted on from the main run's end; totals summed; each phase's own totals
    kept under ``phases``."""
    steps, epochs = main["steps"], (main["log"][-1]["epoch"] if main["log"] else 0.0)
    log = list(main["log"]) + [{**r, "step": r["step"] + steps, "epoch": r["epoch"] + epochs} for r in anneal["log"]]
    totals = {k: main[k] + anneal[k] for k in ("seconds", "tokens_seen", "n_examples", "n_rows", "steps")}
    phases = {name: {k: v for k, v in r.items() if k != "log"} | {"final_loss": r["log"][-1]["loss"] if r["log"] else None}
              for name, r in (("main", main), ("anneal", anneal))}
    return {"log": log, **totals, "phases": phases}


def transcript_table(transcripts: list[dict]):
    """The transcripts as a table (problem_id, category, strategy, budget, text) for ``transcripts.parquet``."""
    import pandas as pd

    return pd.DataFrame([{k: t[k] for k in ("problem_id", "category", "strategy", "budget", "text")} for t in transcripts])


def model_card(model, tokenizer, result: dict, bf16: bool) -> dict:
    """What ``model_card.json`` records of a pretrained tiny model: size, architecture, training totals, loss."""
    from passkt import models

    c = model.config
    return {"n_params": models.n_params(model), "train_seconds": result["seconds"],
            "tokens_seen": result["tokens_seen"], "transcripts": result["n_examples"],
            "packed_rows": result["n_rows"], "optimizer_steps": result["steps"], "bf16": bf16,
            "architecture": {"hidden": c.hidden_size, "layers": c.num_hidden_layers, "heads": c.num_attention_heads,
                             "kv_heads": c.num_key_value_heads, "intermediate": c.intermediate_size,
                             "vocab": len(tokenizer)},
            "final_loss": result["log"][-1]["loss"] if result["log"] else None,
            **({"phases": result["phases"]} if "phases" in result else {}),
            "tokenizer_hash": models.tokenizer_hash(tokenizer)}
