"""The SFT arm (stage 03): expert demonstrations of the gold chain, then supervised fine-tuning with TRL.

The paper's control arm trains on 200 "gold" expert trajectories for the *same* training problems GRPO uses.
Matched data holds by construction: both arms read their problems through :func:`training_problems`.

A demonstration is written in the agent protocol against the real tool (``prior.Transcript`` runs the real BM25
search, splices the real ``<information>`` text and enforces the budget), so a demo is token for token an episode
the environment could have produced. The expert always follows the gold chain in the problem's ``meta``:

* bridge:     think, search plan[0], reason to the bridge entity, search plan[1], reason, answer;
* comparison: think, search plan[0], search plan[1], compare, answer.

Reasoning text: synthetic problems reuse the phrasing of the behaviour prior's correct strategies (so the base
model's language is kept); HotpotQA problems quote the supporting sentences of each gold paragraph. The expert
knows the chain even when a search did not surface the gold paragraph; ``gold_retrieved`` records whether every
plan query actually retrieved its gold paragraph.

Loss: only model-written tokens (think / search / answer text and EOS) carry loss; the prompt, the retrieved
information and the budget notice are masked with -100 (``protocol.encode_parts``). TRL's ``SFTTrainer`` uses a
pre-tokenised ``labels`` column as is (trl 1.16 ``_prepare_dataset``: "A dataset that already provides a labels
column is left as is"), so the trained loss is exactly that mask.
"""

from __future__ import annotations

import json
import re
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from passkt import compat
from passkt.data import load_problems
from passkt.prior import ATTRIBUTE_WORDS, RELATION_WORDS, Transcript
from passkt.protocol import build_prompt, encode_parts
from passkt.search import SearchTool

IGNORE = -100


# --------------------------------------------------------------------------------------------- training set

def training_problems(problems_dir: str | Path) -> list[dict]:
    """The training problems, read the one way both SFT and GRPO read them (the ``train`` split)."""
    problems = load_problems(problems_dir, "train")
    if not problems:
        raise ValueError(f"no training problems in {problems_dir}/train.parquet")
    return problems


# ------------------------------------------------------------------------------------------ demonstrations

_SENT_END = re.compile(r"(?<=[.!?])\s+(?=\S)")


def split_sentences(text: str) -> list[str]:
    """Sentences of a HotpotQA paragraph (stored joined): split after . ! ? followed by whitespace.

    Approximate: an abbreviation ("U.S. Army") splits too, so a sentence id may point one sentence off.
    """
    return [s.strip() for s in _SENT_END.split(text.strip()) if s.strip()]


def supporting_sentences(problem: dict, title: str, facts: list[list]) -> str:
    """The supporting-fact sentences of gold paragraph ``title``; its first sentence when no id is in range."""
    text = problem["texts"][problem["titles"].index(title)]
    sents = split_sentences(text)
    ids = sorted({i for t, i in facts if t == title and i < len(sents)})
    return " ".join(sents[i] for i in ids) if ids else (sents[0] if sents else text)


def _synthetic_bridge(t: Transcript, meta: dict, answer: str) -> None:
    first, bridge = meta["plan"]
    rel = RELATION_WORDS.get(meta["relation"], meta["relation"])
    attr = ATTRIBUTE_WORDS.get(meta["attribute"], meta["attribute"])
    t.think(f"I need the {rel} of {first}.")
    t.search(first)
    t.think(f"The {rel} of {first} is {bridge}.")
    t.search(bridge)
    t.think(f"{bridge}: {attr} {answer}.")
    t.answer(answer)


def _synthetic_comparison(t: Transcript, meta: dict, answer: str) -> None:
    x, y = meta["plan"]
    attr = ATTRIBUTE_WORDS.get(meta["attribute"], meta["attribute"])
    t.think(f"I need the {attr} year of {x} and {y}.")
    t.search(x)
    t.search(y)
    t.think(f"{x}: {attr} {meta['values'][x]}. {y}: {attr} {meta['values'][y]}.")
    t.answer(answer)


def _hotpot_bridge(t: Transcript, meta: dict, answer: str) -> None:
    first, bridge = meta["plan"]
    facts = meta["supporting_facts"]
    t.think(f"I need to find {first}.")
    t.search(first)
    t.think(supporting_sentences(t.p, first, facts))
    t.search(bridge)
    t.think(supporting_sentences(t.p, bridge, facts))
    t.answer(answer)


def _hotpot_comparison(t: Transcript, meta: dict, answer: str) -> None:
    x, y = meta["plan"]
    facts = meta["supporting_facts"]
    t.think(f"I need to look up {x} and {y}.")
    t.search(x)
    t.search(y)
    t.think(f"{supporting_sentences(t.p, x, facts)} {supporting_sentences(t.p, y, facts)}")
    t.answer(answer)


_WRITERS = {
    ("synthetic", "bridge"): _synthetic_bridge,
    ("synthetic", "comparison"): _synthetic_comparison,
    ("hotpotqa", "bridge"): _hotpot_bridge,
    ("hotpotqa", "comparison"): _hotpot_comparison,
}


def expert_demo(tokenizer, tool: SearchTool, problem: dict, search_k: int, budget: int = 5) -> dict:
    """One gold-chain demonstration of ``problem`` in the agent protocol (see module docstring)."""
    key = (problem["source"], problem["category"])
    if key not in _WRITERS:
        raise ValueError(f"problem {problem['id']!r}: no expert demo for source/category {key}")
    meta = json.loads(problem["meta"])
    plan = meta.get("plan") or []
    if len(plan) != 2:
        raise ValueError(f"problem {problem['id']!r}: meta 'plan' should name 2 lookups, got {plan!r}")
    t = Transcript(tool, problem, budget, search_k, tokenizer.eos_token)
    _WRITERS[key](t, meta, problem["answer"])
    retrieved = all(q in [title for title, _ in tool.search(problem["id"], q, search_k)] for q in plan)
    prompt = build_prompt(tokenizer, problem["question"])
    parts = [[kind, text] for kind, text in t.parts]
    return {"problem_id": problem["id"], "category": problem["category"], "prompt": prompt, "parts": parts,
            "text": prompt + t.text(), "gold_retrieved": bool(retrieved)}


def expert_demos(problems: list[dict], tokenizer, search_k: int, budget: int = 5) -> list[dict]:
    """One expert demonstration per problem (comparison / bridge), in problem order.

    ``budget`` is the episode's search budget (>= 2, the gold chain's length); at budget 2 the demo carries the
    no-searches-left notice after the second search, exactly as the environment would insert it.
    """
    if budget < 2:
        raise ValueError(f"budget={budget}: the gold chain needs 2 searches")
    if search_k < 1:
        raise ValueError(f"search_k={search_k}: need at least 1 paragraph per search")
    from tqdm.auto import tqdm

    tool = SearchTool(problems)
    return [expert_demo(tokenizer, tool, p, search_k, budget) for p in tqdm(problems, desc="expert demos")]


def save_demos(demos: list[dict], path: str | Path) -> None:
    """Write demos to one parquet file (``parts`` as a list of [kind, text] pairs)."""
    import pandas as pd

    Path(path).parent.mkdir(parents=True, exist_ok=True)
    pd.DataFrame(demos).to_parquet(path, index=False)


def load_demos(path: str | Path) -> list[dict]:
    import pandas as pd

    rows = pd.read_parquet(path).to_dict("records")
    for r in rows:
        r["parts"] = [[str(k), str(x)] for k, x in r["parts"]]
        r["gold_retrieved"] = bool(r["gold_retrieved"])
    return rows


def render_demo(demo: dict, prompt_chars: int = 80) -> str:
    """A readable rendering: the prompt shortened to its last characters, then one line per part by kind."""
    prompt = demo["prompt"]
    short = prompt if len(prompt) <= prompt_chars else "..." + prompt[-prompt_chars:]
    lines = [f"[{demo['problem_id']} | {demo['category']} | gold_retrieved={demo['gold_retrieved']}]",
             f"PROMPT  {short!r}"]
    for kind, text in demo["parts"]:
        label = "MODEL " if kind == "model" else "ENV   "
        lines.append(f"{label}  {text}")
    return "\n".join(lines)


# ------------------------------------------------------------------------------------------------- dataset

def sft_dataset(demos: list[dict], tokenizer):
    """A ``datasets.Dataset`` with ``input_ids`` and ``labels`` (the loss mask: -100 on prompt/info/notice).

    Tokenised part by part with ``protocol.encode_parts``, exactly as the rollout engine tokenises an episode.
    """
    import datasets

    rows = []
    for d in demos:
        parts = [(k, x) for k, x in d["parts"]]
        if not parts or parts[-1][0] != "model" or not parts[-1][1].endswith(tokenizer.eos_token):
            raise ValueError(f"demo {d['problem_id']!r}: the last part must be model text ending in EOS")
        ids, labels = encode_parts(tokenizer, d["prompt"], parts)
        rows.append({"input_ids": ids, "labels": labels})
    return datasets.Dataset.from_list(rows)


# ------------------------------------------------------------------------------------------------ training

@dataclass
class SFTSettings:
    """Hyper-parameters of the SFT arm (paper: LoRA on 200 gold trajectories; the rest is open)."""

    epochs: float = 3.0
    lr: float = 1e-4
    batch_size: int = 8
    max_len: int = 1024  # tokens; longer demos are truncated at the end (counted in the result)
    lora: bool = False  # full fine-tuning by default; LoRA as in the paper's 7B setup
    lora_r: int = 16
    lora_alpha: int = 32
    lora_dropout: float = 0.05
    weight_decay: float = 0.0
    warmup_ratio: float = 0.05
    seed: int = 0
    logging_steps: int = 5
    save_steps: int = 100  # checkpoint interval (steps), for resuming an interrupted run
    device: str = "cpu"  # the trainer's device: cpu | cuda (accelerate places the model; one process per GPU)
    bf16: bool = False  # bf16 mixed precision; with LoRA the frozen base weights are also stored in bf16
    gradient_checkpointing: bool = False  # activation checkpointing (a 7B model's activations at 8k tokens)
    grad_accum: int = 1  # gradient accumulation steps (effective batch = batch_size x grad_accum x processes)

    def __post_init__(self):
        if self.device not in ("cpu", "cuda"):
            raise ValueError(f"SFTSettings.device={self.device!r}: must be 'cpu' or 'cuda'")
        if not isinstance(self.grad_accum, int) or isinstance(self.grad_accum, bool) or self.grad_accum < 1:
            raise ValueError(f"SFTSettings.grad_accum={self.grad_accum!r}: must be a positive integer")

    @property
    def load_dtype(self) -> str:
        """The dtype the base model is loaded in: bf16 only under LoRA (full fine-tuning keeps fp32 master
        weights and trains under bf16 autocast)."""
        return "bfloat16" if self.bf16 and self.lora else "float32"


def _sft_config(out_dir: Path, s: SFTSettings):
    from trl import SFTConfig

    cfg = SFTConfig(
        output_dir=str(out_dir / "checkpoints"), num_train_epochs=s.epochs, learning_rate=s.lr,
        per_device_train_batch_size=s.batch_size, gradient_accumulation_steps=s.grad_accum, max_length=s.max_len,
        weight_decay=s.weight_decay,
        warmup_steps=s.warmup_ratio, lr_scheduler_type="cosine", logging_steps=s.logging_steps,
        seed=s.seed, data_seed=s.seed, save_strategy="steps", save_steps=s.save_steps, save_total_limit=1,
        report_to=[], bf16=s.bf16, fp16=False, use_cpu=s.device == "cpu",
        **compat.checkpointing(s.gradient_checkpointing),
        dataloader_num_workers=0, packing=False, dataset_num_proc=None,
    )
    if s.device == "cuda" and cfg.n_gpu > 1:  # one process, one GPU: transformers would wrap every visible GPU in
        cfg._n_gpu = 1                        # nn.DataParallel (an 8x batch, another schedule) without a word
    return cfg


def _lora_config(s: SFTSettings):
    from peft import LoraConfig

    return LoraConfig(r=s.lora_r, lora_alpha=s.lora_alpha, lora_dropout=s.lora_dropout,
                      target_modules="all-linear", task_type="CAUSAL_LM")


def build_trainer(base_model_dir: str | Path, dataset, out_dir: str | Path, settings: SFTSettings):
    """A TRL ``SFTTrainer`` for ``dataset`` (input_ids + labels) on the model saved in ``base_model_dir``."""
    from trl import SFTTrainer

    from passkt.models import load_policy

    if not {"input_ids", "labels"} <= set(dataset.column_names):
        raise ValueError(f"dataset columns {dataset.column_names}: need input_ids and labels (use sft_dataset)")
    model, tok = load_policy(base_model_dir, dtype=settings.load_dtype)  # the trainer moves it to its device
    return SFTTrainer(model=model, args=_sft_config(Path(out_dir), settings), train_dataset=dataset,
                      processing_class=tok, peft_config=_lora_config(settings) if settings.lora else None)


def last_checkpoint(out_dir: str | Path) -> str | None:
    """The newest ``checkpoint-N`` folder under ``out_dir/checkpoints``, or None."""
    from transformers.trainer_utils import get_last_checkpoint

    ck = Path(out_dir) / "checkpoints"
    return get_last_checkpoint(str(ck)) if ck.is_dir() else None


def train_sft(base_model_dir: str | Path, dataset, out_dir: str | Path, settings: SFTSettings) -> dict:
    """Fine-tune the base model on ``dataset`` and save a plain model + tokenizer to ``out_dir``.

    LoRA adapters are merged into the weights before saving, so later stages load the result like any model.
    Resumes from the newest checkpoint in ``out_dir/checkpoints`` when one exists. Returns the loss log
    (step / loss / lr), seconds, final loss and token counts.
    """
    from passkt import integrity
    from passkt.models import model_fingerprint

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    fp = integrity.fingerprint({"code": integrity.code_version(["passkt.sft"])["hash"],
                                "base": model_fingerprint(base_model_dir), "settings": asdict(settings),
                                "data": integrity.fingerprint([dataset["input_ids"], dataset["labels"]])})
    if (done := integrity.finished_result(out_dir, fp)) is not None:  # finished by this code, model, data, settings
        return done
    integrity.clear_done(out_dir)
    integrity.claim_checkpoints(out_dir / "checkpoints", fp)
    trainer = build_trainer(base_model_dir, dataset, out_dir, settings)
    resume = last_checkpoint(out_dir)
    t0 = time.time()
    trainer.train(resume_from_checkpoint=resume)
    seconds = time.time() - t0
    model = trainer.accelerator.unwrap_model(trainer.model)
    if settings.lora:
        model = model.merge_and_unload()
    if settings.bf16:  # later stages sample and train in bf16: half the disk and DVC cache of an fp32 save
        import torch

        model = model.to(torch.bfloat16)
    model.save_pretrained(out_dir)
    trainer.processing_class.save_pretrained(out_dir)
    log = [{"step": r["step"], "loss": r["loss"], "lr": r.get("learning_rate")}
           for r in trainer.state.log_history if "loss" in r]
    lengths = [len(x) for x in dataset["input_ids"]]
    loss_tokens = sum(sum(1 for y in lab[: settings.max_len] if y != IGNORE) for lab in dataset["labels"])
    result = {
        "log": log, "seconds": seconds, "final_loss": log[-1]["loss"] if log else None,
        "train_loss": trainer.state.log_history[-1].get("train_loss"),
        "steps": trainer.state.global_step, "resumed_from": resume,
        "n_examples": len(lengths), "n_truncated": sum(n > settings.max_len for n in lengths),
        "tokens_trained": int(loss_tokens * settings.epochs),
        "tokens_seen": int(sum(min(n, settings.max_len) for n in lengths) * settings.epochs),
        "settings": asdict(settings), "fingerprint": fp,
    }
    integrity.mark_done(out_dir, fp, result=result)
    del trainer, model
    from passkt.sampling import free_accelerator_memory

    free_accelerator_memory()  # the stage's vLLM sampling starts next, in another process, on this GPU
    return result
