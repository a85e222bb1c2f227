"""The tiny profile's model family: a byte-level BPE tokenizer built locally and a small Qwen2 decoder.

Both are saved with ``save_pretrained`` so every later stage loads them exactly like a hub model
(``AutoTokenizer`` / ``AutoModelForCausalLM``); the paper profile points the same code at Qwen2.5-7B-Instruct.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Iterable

from passkt.protocol import TAGS

SPECIAL = {"eos": "<|im_end|>", "bos": "<|im_start|>", "pad": "<|pad|>", "eot": "<|endoftext|>"}

# ChatML, as Qwen2.5 uses: the tiny model and the paper model share one prompt format.
CHAT_TEMPLATE = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


def build_tokenizer(texts: Iterable[str], vocab_size: int = 2048):
    """Train a byte-level BPE on ``texts``; protocol tags are atomic tokens; returns a transformers tokenizer."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    # digits one by one, as Qwen2's tokenizer does (it also makes small-number arithmetic learnable)
    tok.pre_tokenizer = pre_tokenizers.Sequence([pre_tokenizers.Digits(individual_digits=True),
                                                 pre_tokenizers.ByteLevel(add_prefix_space=False)])
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size, special_tokens=list(SPECIAL.values()),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False,
    )
    tok.train_from_iterator(texts, trainer=trainer)
    tok.add_tokens(TAGS)  # atomic but not "special": they are decoded like any text
    hf = PreTrainedTokenizerFast(
        tokenizer_object=tok, eos_token=SPECIAL["eos"], pad_token=SPECIAL["pad"], bos_token=None,
        unk_token=None, clean_up_tokenization_spaces=False, model_max_length=4096,
    )
    hf.chat_template = CHAT_TEMPLATE
    return hf


def tiny_config(tokenizer, hidden: int, layers: int, heads: int, kv_heads: int, intermediate: int,
                max_positions: int):
    from transformers import Qwen2Config

    return Qwen2Config(
        vocab_size=len(tokenizer), hidden_size=hidden, intermediate_size=intermediate,
        num_hidden_layers=layers, num_attention_heads=heads, num_key_value_heads=kv_heads,
        max_position_embeddings=max_positions, tie_word_embeddings=True, rope_theta=10000.0,
        eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id, bos_token_id=None,
        use_cache=True,
    )


def n_params(model) -> int:
    return sum(p.numel() for p in model.parameters())


def tokenizer_hash(tokenizer) -> str:
    """A short content hash of the tokenizer (vocabulary + merges + template), for run metadata."""
    state = tokenizer.backend_tokenizer.to_str() + (tokenizer.chat_template or "")
    return hashlib.sha256(state.encode()).hexdigest()[:16]


def load_policy(path: str | Path, device: str = "cpu", dtype: str = "float32"):
    """(model, tokenizer) from a folder written by save_pretrained (or a hub id / local snapshot)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(path))
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    model = AutoModelForCausalLM.from_pretrained(str(path), dtype=getattr(torch, dtype))
    model.to(device)
    model.generation_config.pad_token_id = tok.pad_token_id
    return model, tok


def resolve_pretrained(model_id: str, revision: str | None = None) -> dict:
    """Paper profile: locate Qwen2.5-7B-Instruct locally (path or HF cache) and record its exact identity."""
    from transformers import AutoConfig, AutoTokenizer

    p = Path(model_id)
    if p.exists():
        local, rev = str(p), revision or "local"
    else:
        from huggingface_hub import snapshot_download

        local = snapshot_download(model_id, revision=revision)  # honours HF_HUB_OFFLINE: cache only
        rev = Path(local).name
    tok = AutoTokenizer.from_pretrained(local)
    cfg = AutoConfig.from_pretrained(local)
    return {"model_id": model_id, "path": local, "revision": rev, "tokenizer_hash": tokenizer_hash(tok),
            "architecture": cfg.architectures, "hidden_size": cfg.hidden_size, "layers": cfg.num_hidden_layers}


def save_json(obj, path: str | Path) -> None:
    Path(path).write_text(json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n")


def base_model_location(stage_dir: str | Path) -> str:
    """Where stage 01 put the base policy: its trained folder (tiny) or the resolved pretrained path (paper)."""
    stage_dir = Path(stage_dir)
    pre = stage_dir / "pretrained.json"
    if pre.exists():
        return json.loads(pre.read_text())["path"]
    if not (stage_dir / "model").exists():
        raise FileNotFoundError(f"no base model in {stage_dir} (run stage 01_base_model first)")
    return str(stage_dir / "model")


NOT_THE_MODEL = frozenset({
    "DONE.json",           # the finished-unit marker (passkt.integrity)
    "training_args.bin",   # transformers' pickled TrainingArguments: output_dir and other paths of the run
})


def model_fingerprint(model_dir: str | Path, chunk: int = 1 << 22) -> str:
    """Full content digest of a saved model: config, tokenizer, chat template and every weight file, byte for byte.

    Rollout shards and training runs carry it, so nothing sampled from or trained on one model is ever reused for
    another (resume is only for the same weights). A 7B checkpoint (~15 GB) takes tens of seconds to read; the
    tiny model milliseconds. Files that describe how a model was trained and not the model are left out
    (``NOT_THE_MODEL``): the Trainer's pickled arguments hold the run's absolute output path, so the same weights
    trained in another checkout would otherwise get another fingerprint.
    """
    p = Path(model_dir)
    if not p.is_dir():
        raise FileNotFoundError(f"no saved model folder at {p}")
    h = hashlib.sha256()
    for f in sorted(p.iterdir()):
        if f.is_file() and f.suffix in (".json", ".jinja", ".txt", ".model", ".safetensors", ".bin") \
                and f.name not in NOT_THE_MODEL:
            h.update(f.name.encode() + b"\0")
            with open(f, "rb") as fh:
                while block := fh.read(chunk):
                    h.update(block)
    return h.hexdigest()[:16]
