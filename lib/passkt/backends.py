"""Sampling backends behind one interface: ``generate(contexts, max_new_tokens, temperature, top_p)``.

Contexts and outputs are token-id lists, so the engine never re-tokenises what a model wrote. Each call samples
one model turn per context and stops at a closing action tag (``</search>`` / ``</answer>``) or EOS.

- :class:`HFBackend`: transformers ``generate`` (CPU or GPU), length-sorted micro-batches, KV cache.
- :class:`VLLMBackend`: vLLM (GPU, optional import) with the same sampling settings.
- :class:`ScriptedBackend`: scripted outputs for unit tests (no model).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

from passkt.protocol import STOP_STRINGS


@dataclass
class Generation:
    token_ids: list[int]
    hit_limit: bool  # stopped at max_new_tokens without a stop string / EOS


def stop_token_ids(tokenizer, stops: Sequence[str] = STOP_STRINGS) -> list[int] | None:
    """Ids of the stop strings when each is a single token (tiny tokenizer), else None (use string stops)."""
    ids = []
    for s in stops:
        enc = tokenizer.encode(s, add_special_tokens=False)
        if len(enc) != 1:
            return None
        ids.append(enc[0])
    return ids


class HFBackend:
    """Batched sampling with a transformers causal LM."""

    def __init__(self, model, tokenizer, batch_size: int = 256, device: str | None = None):
        import torch

        self.model, self.tok, self.batch_size = model, tokenizer, batch_size
        self.device = device or next(model.parameters()).device
        self.stop_ids = stop_token_ids(tokenizer)
        self.eos_id = tokenizer.eos_token_id
        self.pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else self.eos_id
        self.finish = set(self.stop_ids or []) | {self.eos_id}
        self._torch = torch

    def generate(self, contexts: list[list[int]], max_new_tokens: int, temperature: float, top_p: float):
        torch = self._torch
        order = sorted(range(len(contexts)), key=lambda i: len(contexts[i]))
        out: list[Generation | None] = [None] * len(contexts)
        was_training = self.model.training
        self.model.eval()
        for s in range(0, len(order), self.batch_size):
            idx = order[s : s + self.batch_size]
            width = max(len(contexts[i]) for i in idx)
            ids = torch.full((len(idx), width), self.pad_id, dtype=torch.long)
            mask = torch.zeros((len(idx), width), dtype=torch.long)
            for r, i in enumerate(idx):  # left padding
                c = contexts[i]
                ids[r, width - len(c) :] = torch.tensor(c)
                mask[r, width - len(c) :] = 1
            kw = dict(max_new_tokens=max_new_tokens, pad_token_id=self.pad_id)
            if temperature > 0:
                kw.update(do_sample=True, temperature=temperature, top_p=top_p, top_k=0)
            else:
                kw.update(do_sample=False)
            if self.stop_ids is not None:
                kw["eos_token_id"] = [*self.stop_ids, self.eos_id]
            else:
                kw.update(eos_token_id=self.eos_id, stop_strings=list(STOP_STRINGS), tokenizer=self.tok)
            with torch.no_grad():
                gen = self.model.generate(input_ids=ids.to(self.device), attention_mask=mask.to(self.device), **kw)
            new = gen[:, width:].tolist()
            for r, i in enumerate(idx):
                toks = new[r]
                cut = next((j + 1 for j, t in enumerate(toks) if t in self.finish), None)
                if cut is None and self.stop_ids is None:
                    cut = _string_stop_cut(self.tok, toks)
                toks = toks[:cut] if cut is not None else toks
                if cut is None:  # no stop: strip trailing padding if any (pad == eos is covered above)
                    while toks and toks[-1] == self.pad_id:
                        toks.pop()
                out[i] = Generation(toks, hit_limit=cut is None and len(toks) >= max_new_tokens)
        if was_training:
            self.model.train()
        return out


def _string_stop_cut(tok, toks: list[int]) -> int | None:
    """Position just after the first token at which the decoded text contains a stop string."""
    text = ""
    for j, t in enumerate(toks):
        text += tok.decode([t])
        if any(s in text for s in STOP_STRINGS):
            return j + 1
    return None


class VLLMBackend:
    """vLLM sampling (GPU; the paper profile). Imported lazily so CPU installs never need vLLM."""

    def __init__(self, model_path: str, tokenizer, seed: int = 0, **llm_kwargs):
        try:
            from vllm import LLM, SamplingParams  # noqa: F401
        except ImportError as e:  # pragma: no cover - exercised only on GPU machines
            raise ImportError("backend 'vllm' needs the vllm package (GPU machines; pip install vllm)") from e
        from vllm import LLM

        self.tok, self.seed = tokenizer, seed
        self.llm = LLM(model=model_path, seed=seed, **llm_kwargs)
        self.eos_id = tokenizer.eos_token_id

    def generate(self, contexts, max_new_tokens, temperature, top_p):  # pragma: no cover - GPU only
        from vllm import SamplingParams
        from vllm.inputs import TokensPrompt

        sp = SamplingParams(temperature=temperature, top_p=top_p, max_tokens=max_new_tokens,
                            stop=list(STOP_STRINGS), include_stop_str_in_output=True)
        outs = self.llm.generate([TokensPrompt(prompt_token_ids=c) for c in contexts], sp, use_tqdm=False)
        res = []
        for o in outs:
            c = o.outputs[0]
            res.append(Generation(list(c.token_ids), hit_limit=c.finish_reason == "length"))
        return res


class ScriptedBackend:
    """Test double: ``script(context_text) -> turn_text``; the text is tokenised like a model's output."""

    def __init__(self, tokenizer, script: Callable[[str], str]):
        self.tok, self.script = tokenizer, script
        self.calls = 0
        self.generated_tokens = 0

    def generate(self, contexts, max_new_tokens, temperature, top_p):
        res = []
        for c in contexts:
            self.calls += 1
            ids = self.tok.encode(self.script(self.tok.decode(c)), add_special_tokens=False)
            hit = len(ids) > max_new_tokens
            ids = ids[:max_new_tokens]
            self.generated_tokens += len(ids)
            res.append(Generation(ids, hit_limit=hit))
        return res
