"""Sampling backends behind one interface.

Contexts and outputs are token-id lists, so the engine never re-tokenises what a model wrote. A model turn stops
at a closing action tag (``</search>`` / ``</answer>``) or EOS. The engine talks to a backend through three
calls on a batch of rows (one row per episode):

- ``state = start(contexts)``;
- ``gens = decode(state, max_new_tokens, temperature, top_p)``: one model turn per row;
- ``state = update(state, keep, contexts)``: the next batch; row j continues row ``keep[j]`` of the old state
  (repeat an index to fork, leave it out to drop a finished episode) and ``contexts[j]`` extends that row's
  context (the tool's observation appended).

:class:`TurnBackend` implements these with a stateless ``generate(contexts, ...)`` (one call per turn, the
whole context each time): vLLM (its prefix cache makes that cheap) and the scripted test double use it.
:class:`HFBackend` keeps every row's KV cache across turns instead, so each token is encoded once; this matters
on CPUs and small models, where re-encoding contexts and ``generate``'s per-call overhead dominate.

- :class:`HFBackend`: transformers model, own decode loop with a persistent KV cache (CPU or GPU).
- :class:`HFGenerateBackend`: transformers ``generate`` once per turn (the reference and benchmark baseline).
- :class:`VLLMBackend`: vLLM (GPU, optional import) with the same sampling settings.
- :class:`ScriptedBackend`: scripted outputs for unit tests (no model).
"""

from __future__ import annotations

import sys
import threading
from bisect import bisect_left
from contextlib import contextmanager
from dataclasses import dataclass
from functools import lru_cache
from typing import Callable, Sequence

from passkt.detok import decode_offsets
from passkt.protocol import STOP_STRINGS


@dataclass
class Generation:
    token_ids: list[int]
    hit_limit: bool  # stopped at max_new_tokens without a stop string / EOS
    logprobs: list | None = None  # the sampling log-probability of each token, where the engine reports it (vLLM)


def stop_token_ids(tokenizer, stops: Sequence[str] = STOP_STRINGS) -> list[int] | None:
    """Ids of the stop strings when each is a single token (tiny tokenizer), else None (use string stops)."""
    ids = []
    for s in stops:
        enc = tokenizer.encode(s, add_special_tokens=False)
        if len(enc) != 1:
            return None
        ids.append(enc[0])
    return ids


class TurnBackend:
    """Session calls on top of a stateless ``generate(contexts, max_new_tokens, temperature, top_p)``."""

    def start(self, contexts: list[list[int]]):
        return [list(c) for c in contexts]

    def decode(self, state, max_new_tokens: int, temperature: float, top_p: float) -> list[Generation]:
        return self.generate(state, max_new_tokens, temperature, top_p)

    def update(self, state, keep: list[int], contexts: list[list[int]]):
        return [list(c) for c in contexts]


class _HFModel(TurnBackend):
    """What both transformers backends share: the model, its tokenizer's special ids, and eval-mode sampling."""

    def __init__(self, model, tokenizer, batch_size: int = 256, device: str | None = None):
        import torch

        self.model, self.tok, self.batch_size = model, tokenizer, batch_size
        self.device = device or next(model.parameters()).device
        self.stop_ids = stop_token_ids(tokenizer)
        self.eos_id = tokenizer.eos_token_id
        self.pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else self.eos_id
        self.finish = set(self.stop_ids or []) | {self.eos_id}
        self._torch = torch

    @contextmanager
    def _sampling(self):
        """Eval mode without autograd; a model that was training (GRPO) is put back into training mode."""
        was_training = self.model.training
        self.model.eval()
        try:
            with self._torch.inference_mode():
                yield
        finally:
            if was_training:
                self.model.train()


def sample_next(logits, temperature: float, top_p: float, generator=None):
    """One token per row: greedy at temperature 0, else softmax(logits / temperature) restricted to the top-p set.

    Random numbers come from ``generator`` (a ``torch.Generator``; None: torch's global generator)."""
    import torch

    if temperature <= 0:
        return logits.argmax(-1)
    probs = torch.softmax(logits.float() / temperature, dim=-1)
    if top_p < 1.0:
        sp, si = probs.sort(dim=-1, descending=True)
        drop = sp.cumsum(-1) - sp > top_p  # keep the smallest prefix whose mass reaches top_p
        sp = sp.masked_fill(drop, 0.0)
        probs = torch.zeros_like(probs).scatter_(-1, si, sp)
    # inverse-CDF draw: exact, and much faster than torch.multinomial on CPU
    cdf = probs.cumsum(-1)
    u = torch.rand((probs.shape[0], 1), device=probs.device, dtype=cdf.dtype, generator=generator) * cdf[:, -1:]
    return torch.searchsorted(cdf, u, right=True).squeeze(-1).clamp_(max=probs.shape[-1] - 1)


def _cpu_gqa_attention(module, query, key, value, attention_mask, dropout=0.0, scaling=None, is_causal=None,
                       **kwargs):
    """transformers' SDPA attention, except for grouped-query heads with an additive mask on a CPU (our backend):

    - multi-token queries (feeding a chunk): torch's SDPA with ``enable_gqa`` instead of copying every key/value
      head ``num_key_value_groups`` times, which was most of the cost of feeding into a long cache (~3x here);
    - one-token queries (a decode step): the query heads of each key/value head as one small matrix, two matmuls;
      SDPA copies the strided cache views first (~1.3-1.5x here).
    Same outputs up to float rounding. Anywhere else (GPU, no mask, no grouping) transformers' path unchanged.
    """
    import torch
    from transformers.integrations.sdpa_attention import sdpa_attention_forward

    if (query.device.type != "cpu" or attention_mask is None or not attention_mask.dtype.is_floating_point
            or dropout or getattr(module, "num_key_value_groups", 1) == 1 or kwargs.get("output_attentions")):
        return sdpa_attention_forward(module, query, key, value, attention_mask, dropout=dropout, scaling=scaling,
                                      is_causal=is_causal, **kwargs)
    if query.shape[2] == 1 and attention_mask.shape[1] == 1:  # a decode step with a head-shared mask [B, 1, 1, W]:
        # two matmuls on the grouped heads read the cache views as they are
        B, H, _, d = query.shape
        q = query.reshape(B, key.shape[1], H // key.shape[1], d)
        scores = torch.matmul(q, key.transpose(-1, -2)) * (d**-0.5 if scaling is None else scaling)
        out = torch.matmul(torch.softmax(scores + attention_mask, dim=-1), value)
        return out.reshape(B, 1, H, d), None
    out = torch.nn.functional.scaled_dot_product_attention(query, key, value, attn_mask=attention_mask,
                                                           scale=scaling, enable_gqa=True)
    return out.transpose(1, 2).contiguous(), None


_ATTENTION = "passkt_cpu_gqa"
_ATTENTION_LOCK = threading.Lock()
_ATTENTION_USERS: dict[int, list] = {}  # id(config) -> [backend calls inside, implementation to restore]


@lru_cache(maxsize=None)
def _register_attention() -> None:
    """Make ``_cpu_gqa_attention`` known to transformers (once per process)."""
    from transformers import AttentionInterface

    AttentionInterface.register(_ATTENTION, _cpu_gqa_attention)


@contextmanager
def _attention_implementation(config, name: str):
    """Run a model with attention implementation ``name`` and put the previous one back afterwards.

    Reference-counted per config, so backends sampling the same model from several threads switch it once and the
    last one out restores it; a model that is also trained (GRPO) trains with its own implementation.
    """
    with _ATTENTION_LOCK:
        entry = _ATTENTION_USERS.setdefault(id(config), [0, None])
        if entry[0] == 0:
            entry[1], config._attn_implementation = config._attn_implementation, name
        entry[0] += 1
    try:
        yield
    finally:
        with _ATTENTION_LOCK:
            entry[0] -= 1
            if entry[0] == 0:
                config._attn_implementation = entry[1]
                del _ATTENTION_USERS[id(config)]


class _Buffer:
    """One layer's keys/values [rows, heads, capacity, dim] in a zero-filled buffer that grows by doubling.

    ``append`` may write only the first rows (those in the forward pass, kept first), so finished rows cost
    nothing; their columns written meanwhile stay zero and are masked.
    """

    def __init__(self):
        self.k = self.v = None
        self.n = 0  # columns in use

    @staticmethod
    def _alloc(like, rows: int, cap: int, used: int = 0):
        """A buffer whose columns from ``used`` on are zero (the rest is about to be overwritten)."""
        import torch

        buf = torch.empty((rows, like.shape[1], cap, like.shape[3]), dtype=like.dtype, device=like.device)
        buf[:, :, used:].zero_()
        return buf

    def append(self, k, v):
        end = self.n + k.shape[2]
        if self.k is None:
            self.k, self.v = self._alloc(k, k.shape[0], max(64, 2 * end)), self._alloc(v, v.shape[0], max(64, 2 * end))
        elif end > self.k.shape[2]:
            nk = self._alloc(self.k, self.k.shape[0], 2 * end, self.n)
            nv = self._alloc(self.v, self.v.shape[0], 2 * end, self.n)
            nk[:, :, : self.n], nv[:, :, : self.n] = self.k[:, :, : self.n], self.v[:, :, : self.n]
            self.k, self.v = nk, nv
        p = k.shape[0]
        self.k[:p, :, self.n : end], self.v[:p, :, self.n : end] = k, v
        self.n = end
        return self.k[:p, :, :end], self.v[:p, :, :end]

    def select(self, index, cols=None) -> None:
        """Keep rows ``index`` (repeats allowed, any order); with ``cols`` [rows, width], those columns per row."""
        if self.k is None:
            return
        room = self.n + 128
        if cols is None and self.k.shape[2] >= room:  # one gather; columns from n on are zero (room to grow)
            self.k, self.v = self.k[:, :, :room][index], self.v[:, :, :room][index]
            return
        k, v = self.k[:, :, : self.n][index], self.v[:, :, : self.n][index]
        if cols is not None:
            g = cols[:, None, :, None].expand(-1, k.shape[1], -1, k.shape[3])
            k, v = k.gather(2, g), v.gather(2, g)
        n = k.shape[2]
        self.k, self.v = self._alloc(k, k.shape[0], n + 128, n), self._alloc(v, v.shape[0], n + 128, n)
        self.k[:, :, :n], self.v[:, :, :n] = k, v
        self.n = n

    def swap(self, a, b) -> None:
        """Exchange rows ``a[i]`` and ``b[i]`` (index tensors) in place."""
        import torch

        if self.k is None:
            return
        ab, ba = torch.cat([a, b]), torch.cat([b, a])
        n = self.n  # columns from n on are zero in every row: nothing to exchange there
        self.k[ab, :, :n], self.v[ab, :, :n] = self.k[ba, :, :n], self.v[ba, :, :n]


def _row_cache(n_layers: int):
    """A transformers ``Cache`` whose layers write into :class:`_Buffer` s (rows can be selected and reordered)."""
    from transformers.cache_utils import Cache, DynamicLayer

    class BufferedLayer(DynamicLayer):
        def __init__(self):
            super().__init__()
            self.buf = _Buffer()

        def update(self, key_states, value_states, *args, **kwargs):
            if not self.is_initialized:
                self.lazy_initialization(key_states, value_states)
            self.keys, self.values = self.buf.append(key_states, value_states)
            return self.keys, self.values

    return Cache(layers=[BufferedLayer() for _ in range(n_layers)])


@dataclass
class _Rows:
    """The HF backend's batch: a KV cache with one row per episode, in lock-step columns.

    Rows advance together, so a row with nothing to add in a step gets a masked hole; ``valid`` marks real
    tokens, ``pos`` counts them (the next position id); both are in buffer-row order. ``order[r]`` is the buffer
    row of state row r (rows are reordered to keep the ones in a forward pass first). ``fed[r]`` tokens of
    ``tokens[r]`` are in the cache; ``logits`` (buffer order) are the next-token logits after a feed.
    """

    cache: object
    valid: object  # bool [rows, width]
    pos: object  # long [rows]
    fed: list
    tokens: list
    order: list
    logits: object = None


class HFBackend(_HFModel):
    """Multi-turn sampling with a transformers causal LM and a KV cache kept across turns.

    - Prompts and observations are encoded once, in column chunks over rows sorted by length (little padding);
      the n samples of a problem share one encoding of their prompt.
    - Turns are decoded token by token for all rows at once. Rows that finished their turn are moved out of the
      forward pass once they are half of it.
    - Finished episodes leave the batch; a fork copies its parent's row. Masked holes are squeezed out when they
      exceed half the width. The engine starts at most ``batch_size`` episodes per batch (forks join it).
    """

    def __init__(self, model, tokenizer, batch_size: int = 256, device: str | None = None):
        super().__init__(model, tokenizer, batch_size, device)
        self.n_layers = model.config.get_text_config().num_hidden_layers
        self.dtype = next(model.parameters()).dtype  # of the additive attention mask
        self.squeeze_ratio, self.squeeze_min = 2.0, 64  # squeeze holes once width > ratio x longest row (and > min)
        self.squeezes = 0
        self.feed_chunk = 32  # columns per forward when feeding prompts and observations
        # our explicit masks are the same for every head: SDPA attention, grouped-query heads kept grouped on CPUs
        self.attention = _ATTENTION if model.config._attn_implementation == "sdpa" else model.config._attn_implementation
        if self.attention == _ATTENTION:
            _register_attention()
        # layers called directly (SDPA models of the Llama family), else transformers' forward pass
        direct = _llama_family_decoder(model) if self.attention == _ATTENTION else None
        self._decoder, self._rope = direct or (None, None)
        self.generator = None  # torch.Generator for sampling (None: torch's global one)
        # our masks are full causal attention: right for a windowed model only while contexts fit in the window
        self.window = _sliding_window(model.config)

    def clone(self):
        """Another backend on the same model (its own batch state and generator), for a parallel worker."""
        return HFBackend(self.model, self.tok, self.batch_size, self.device)

    # -- the three session calls ---------------------------------------------------------------------------
    def start(self, contexts):
        torch = self._torch
        state = _Rows(_row_cache(self.n_layers), torch.zeros((0, 0), dtype=torch.bool, device=self.device),
                      torch.zeros(0, dtype=torch.long, device=self.device), [], [], [])
        # n samples of a problem share their prompt: encode each distinct context once, then copy its row; a
        # context that extends another one (a T = 0 fork: prompt + notice) is a copy of it plus the extra tokens
        first: dict[tuple, int] = {}
        src = [first.setdefault(tuple(c), len(first)) for c in contexts]
        uniq = [list(c) for c in first]
        roots, base = _prefix_roots(uniq)
        state = self._feed(state, None, [uniq[k] for k in roots])
        if len(roots) < len(uniq):
            pos = {k: j for j, k in enumerate(roots)}
            state = self._feed(state, [pos[base[k]] for k in range(len(uniq))], uniq)
        if len(uniq) == len(contexts):
            return state
        return self._feed(state, src, [list(c) for c in contexts])  # copies of fully fed rows: nothing to feed

    def update(self, state, keep, contexts):
        for j, i in enumerate(keep):
            n = state.fed[i]
            if contexts[j][:n] != state.tokens[i][:n]:
                raise ValueError(f"row {j}: context does not extend the cached tokens of row {i}")
        return self._feed(state, list(keep), [list(c) for c in contexts])

    def decode(self, state, max_new_tokens, temperature, top_p):
        """One model turn for every row: sample until each row wrote a stop tag, EOS or ``max_new_tokens``."""
        torch = self._torch
        R = len(state.fed)
        if R == 0:
            return []
        assert state.logits is not None, "decode() needs a freshly fed state"
        out: list[list[int]] = [[] for _ in range(R)]
        stopped, hit_stop = [False] * R, [False] * R
        row_of = [0] * R  # buffer row -> state row
        for r, b in enumerate(state.order):
            row_of[b] = r
        prefix = R
        logits = state.logits
        with self._sampling():
            while True:
                nxt = sample_next(logits, temperature, top_p, self.generator).tolist()
                live = []  # buffer rows still writing
                for b in range(prefix):
                    r = row_of[b]
                    if stopped[r]:
                        continue
                    t = nxt[b]
                    out[r].append(t)
                    if t in self.finish or (self.stop_ids is None and _string_stop_cut(self.tok, out[r][-8:])):
                        stopped[r] = hit_stop[r] = True
                    elif len(out[r]) >= max_new_tokens:
                        stopped[r] = True
                    else:
                        live.append(b)
                if not live:
                    break
                new_tok = [nxt[b] for b in live]
                if len(live) <= prefix // 2 and prefix - len(live) >= 8:  # move the writing rows to the front
                    n_live, ls = len(live), set(live)
                    tok_of = {row_of[b]: t for b, t in zip(live, new_tok)}
                    back = [b for b in live if b >= n_live]  # writing rows outside the front ...
                    front = [b for b in range(n_live) if b not in ls]  # ... trade places with finished ones
                    self._swap(state, front, back)
                    for a, b in zip(front, back):
                        row_of[a], row_of[b] = row_of[b], row_of[a]
                    live = list(range(n_live))
                    new_tok = [tok_of[row_of[b]] for b in live]
                    prefix = n_live
                ids = torch.full((prefix, 1), self.pad_id, dtype=torch.long)
                live_t = torch.tensor(live, dtype=torch.long)
                ids[live_t, 0] = torch.tensor(new_tok, dtype=torch.long)
                col = torch.zeros((R, 1), dtype=torch.bool)
                col[live_t] = True
                logits = self._forward(state, ids.to(self.device), col.to(self.device), prefix)
                for b, t in zip(live, new_tok):
                    r = row_of[b]
                    state.tokens[r].append(t)
                    state.fed[r] += 1
        state.order = [0] * R
        for b, r in enumerate(row_of):
            state.order[r] = b
        state.logits = None
        res = []
        for r in range(R):
            state.tokens[r].append(out[r][-1])  # the turn's last token is fed with the next observation
            res.append(Generation(out[r], hit_limit=not hit_stop[r] and len(out[r]) >= max_new_tokens))
        return res

    def generate(self, contexts, max_new_tokens, temperature, top_p):
        """Stateless use (one turn for each context)."""
        out = []
        for s in range(0, len(contexts), self.batch_size):
            out += self.decode(self.start(contexts[s : s + self.batch_size]), max_new_tokens, temperature, top_p)
        return out

    # -- internals -----------------------------------------------------------------------------------------
    def _swap(self, state, a: list[int], b: list[int]) -> None:
        """Exchange buffer rows a[i] and b[i] (cache, validity, positions)."""
        torch = self._torch
        ta = torch.tensor(a, dtype=torch.long, device=self.device)
        tb = torch.tensor(b, dtype=torch.long, device=self.device)
        for layer in state.cache.layers:
            layer.buf.swap(ta, tb)
        ab, ba = torch.cat([ta, tb]), torch.cat([tb, ta])
        state.valid[ab], state.pos[ab] = state.valid[ba], state.pos[ba]

    def _forward(self, state, ids, col_valid, prefix: int, take=None):
        """Feed ``ids`` [prefix, L] to the first ``prefix`` buffer rows; ``col_valid`` [rows, L] marks real tokens.

        Returns next-token logits: of the last column of every row, or at ``take`` = (row indices, column indices).
        """
        torch = self._torch
        L = ids.shape[1]
        state.valid = torch.cat([state.valid, col_valid], dim=1)
        W = state.valid.shape[1]
        cv = col_valid[:prefix].long()
        pos = (state.pos[:prefix, None] + cv.cumsum(1) - 1).clamp(min=0)
        state.pos = state.pos + col_valid.long().sum(1)
        if self.window is not None and int(state.pos.max()) > self.window:
            raise ValueError(f"HFBackend: a context of {int(state.pos.max())} tokens exceeds the model's sliding "
                             f"attention window ({self.window}), which the backend does not implement; "
                             "lower sampling.max_total_tokens or use backend vllm")
        # a query attends to the valid keys at or before its column, and always to itself (no empty rows -> no NaN)
        if L == 1:  # a decode step: the row's valid columns and its own
            allowed = state.valid[:prefix, None, :].clone()
            allowed[:, :, -1] = True
        else:
            causal = torch.ones((L, W), dtype=torch.bool, device=ids.device).tril(W - L)
            allowed = causal[None] & state.valid[:prefix, None, :]
            allowed[:, torch.arange(L), torch.arange(W - L, W)] = True
        mask = torch.zeros(allowed.shape, dtype=self.dtype, device=ids.device)
        mask.masked_fill_(~allowed, torch.finfo(self.dtype).min)
        if self._decoder is None:  # transformers' own forward pass
            with _attention_implementation(self.model.config, self.attention):
                h = self.model.base_model(input_ids=ids, attention_mask=mask[:, None], position_ids=pos,
                                          past_key_values=state.cache, use_cache=True).last_hidden_state
            h = h[:, -1] if take is None else h[take[0], take[1]]
        else:
            h = self._decoder_forward(state, ids, mask[:, None], pos)
            h = self._decoder.norm(h[:, -1] if take is None else h[take[0], take[1]])
        return self.model.get_output_embeddings()(h)

    def _decoder_forward(self, state, ids, mask, pos):
        """The decoder layers of a Llama-family model, called one by one (hidden states before the final norm).

        The same modules and rotary embedding as transformers' forward pass, without its per-call machinery
        (mask preparation, cache and output wrappers, hooks, keyword plumbing): ~0.2 ms per call here, a third of
        a one-row decoding step of the tiny model, and Python that holds the GIL parallel workers share.
        """
        m = self._decoder
        x = m.embed_tokens(ids)
        cos, sin = m.rotary_emb(x, pos)
        p, L = ids.shape
        for i, layer in enumerate(m.layers):
            a = layer.self_attn
            h = layer.input_layernorm(x)
            q, k, v = (proj(h).view(p, L, -1, a.head_dim).transpose(1, 2) for proj in (a.q_proj, a.k_proj, a.v_proj))
            q, k = self._rope(q, k, cos, sin)
            k, v = state.cache.layers[i].buf.append(k, v)
            o, _ = _cpu_gqa_attention(a, q, k, v, mask, scaling=a.scaling)
            x = x + a.o_proj(o.reshape(p, L, -1))
            x = x + layer.mlp(layer.post_attention_layernorm(x))
        return x

    def _feed(self, state, keep, contexts):
        """Keep state rows ``keep`` (None: a fresh state) and feed each row's unfed tokens.

        Rows are sorted by how much they have to feed (longest first) and fed in column chunks of ``feed_chunk``;
        a chunk only runs the rows that still have tokens, so unequal lengths cost little padding.
        """
        torch = self._torch
        R = len(contexts)
        old_logits = None
        if keep is not None:
            fed = [state.fed[i] for i in keep]
            buf_rows = [state.order[i] for i in keep]
            old_logits = state.logits
        else:
            fed = [0] * R
        pending = [c[f:] for c, f in zip(contexts, fed)]
        if old_logits is None and any(not p for p in pending):
            raise ValueError("every continuing row needs at least one new token (its last sampled token)")
        by_len = sorted(range(len(contexts)), key=lambda r: -len(pending[r]))  # buffer row b holds state row by_len[b]
        if keep is not None:
            idx = torch.tensor([buf_rows[r] for r in by_len], dtype=torch.long, device=self.device)
            state.valid, state.pos = state.valid[idx], state.pos[idx]
            cols = None
            W = state.valid.shape[1]
            need = int(state.pos.max().item()) if len(keep) else 0
            if len(keep) and W > self.squeeze_min and W > self.squeeze_ratio * need:
                # squeeze out the holes: each row's valid columns, right-aligned
                self.squeezes += 1
                key = torch.where(state.valid, torch.arange(1, W + 1, device=self.device), 0)
                srt, order = key.sort(dim=1, stable=True)
                cols, state.valid = order[:, W - need :], srt[:, W - need :] > 0
            for layer in state.cache.layers:
                layer.buf.select(idx, cols)
        else:
            state.valid = torch.zeros((len(contexts), 0), dtype=torch.bool, device=self.device)
            state.pos = torch.zeros(len(contexts), dtype=torch.long, device=self.device)
        state.tokens, state.fed = contexts, [len(c) for c in contexts]
        state.order = [0] * R
        for b, r in enumerate(by_len):
            state.order[r] = b
        state.logits = None
        if not contexts:
            return state
        lens = [len(pending[r]) for r in by_len]
        logits = [None] * R
        for b, r in enumerate(by_len):
            if not lens[b]:  # nothing new (sorted last): the row keeps the logits of its fully fed context
                logits[b] = old_logits[buf_rows[r]]
        with self._sampling():
            for j0 in range(0, lens[0], self.feed_chunk):
                p = sum(1 for n in lens if n > j0)  # rows with tokens left: a prefix (sorted)
                w = min(self.feed_chunk, lens[0] - j0)
                ids = torch.full((p, w), self.pad_id, dtype=torch.long)
                col = torch.zeros((R, w), dtype=torch.bool)
                ends_r, ends_c = [], []
                for b in range(p):
                    chunk = pending[by_len[b]][j0 : j0 + w]
                    ids[b, : len(chunk)] = torch.tensor(chunk, dtype=torch.long)
                    col[b, : len(chunk)] = True
                    if lens[b] <= j0 + w:  # this row's last token is in this chunk
                        ends_r.append(b)
                        ends_c.append(lens[b] - 1 - j0)
                take = (torch.tensor(ends_r, dtype=torch.long, device=self.device),
                        torch.tensor(ends_c, dtype=torch.long, device=self.device))
                out = self._forward(state, ids.to(self.device), col.to(self.device), p, take)
                for k, b in enumerate(ends_r):
                    logits[b] = out[k]
        state.logits = torch.stack(logits)
        return state


_LLAMA_FAMILY = {"qwen2", "llama", "mistral"}


def _sliding_window(config) -> int | None:
    """The attention window of a model that uses one (Qwen2 switches it with ``use_sliding_window``; Mistral has
    no switch), else None."""
    window = getattr(config, "sliding_window", None)
    return window if window is not None and getattr(config, "use_sliding_window", True) else None


def _llama_family_decoder(model):
    """The decoder of a Llama-family causal LM whose layers the backend can call directly, with its module's
    ``apply_rotary_pos_emb``; else None.

    Same structure in transformers for these types: ``embed_tokens``, ``rotary_emb``, ``layers`` (each with
    ``input_layernorm``, ``self_attn`` with ``q/k/v/o_proj``, ``post_attention_layernorm``, ``mlp``) and
    ``norm``.
    """
    base = getattr(model, "model", None)
    if model.config.model_type not in _LLAMA_FAMILY or base is None:
        return None
    if not all(hasattr(base, a) for a in ("embed_tokens", "rotary_emb", "layers", "norm")):
        return None
    rope = getattr(sys.modules[type(base).__module__], "apply_rotary_pos_emb", None)
    return None if rope is None else (base, rope)


def _prefix_roots(seqs: list[list[int]]) -> tuple[list[int], list[int]]:
    """Indices of the sequences that extend no other one (roots), and for each sequence its longest root prefix."""
    by_len = sorted(range(len(seqs)), key=lambda k: len(seqs[k]))
    roots: list[int] = []
    base = [0] * len(seqs)
    for k in by_len:
        s = seqs[k]
        hits = [r for r in roots if len(seqs[r]) < len(s) and s[: len(seqs[r])] == seqs[r]]
        if hits:
            base[k] = max(hits, key=lambda r: len(seqs[r]))
        else:
            roots.append(k)
            base[k] = k
    return sorted(roots), base


class HFGenerateBackend(_HFModel):
    """Batched sampling with transformers ``generate``, one call per turn (re-encodes each context)."""

    def generate(self, contexts: list[list[int]], max_new_tokens: int, temperature: float, top_p: float):
        torch = self._torch
        order = sorted(range(len(contexts)), key=lambda i: len(contexts[i]))
        out: list[Generation | None] = [None] * len(contexts)
        with self._sampling():
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
        return out


def _string_stop_cut(tok, toks: list[int]) -> int | None:
    """Position just after the first token at which the decoded text contains a stop string. The text is decoded
    as a whole (passkt.detok): the cut keeps every token that starts before the stop string ends."""
    text = tok.decode(toks)
    ends = [k + len(s) for s in STOP_STRINGS if (k := text.find(s)) >= 0]
    if not ends:
        return None
    _, starts = decode_offsets(tok, toks)
    return bisect_left(starts, min(ends))


class VLLMBackend(TurnBackend):
    """vLLM sampling (GPU; the paper profile). Imported lazily so CPU installs never need vLLM.

    ``generate`` sends at most ``batch_size`` prompts per ``LLM.generate`` call and gives every request its own
    seed, :meth:`request_seed` of (``seed``, ``calls``, request index), where ``calls`` counts this backend's
    ``generate`` calls: the samples depend neither on the engine's global RNG nor on the batching, and a new
    backend with the same seed at the same call count (see :meth:`reseed`) draws the same tokens.
    Use it as a context manager, or call :meth:`close`, to free the GPU.
    """

    row_limits = True  # decode() takes one token limit per row (a list): each request stops at its own

    def __init__(self, model_path: str, tokenizer, seed: int = 0, batch_size: int = 256, logprobs: bool = False,
                 **llm_kwargs):
        """``llm_kwargs`` go to ``vllm.LLM`` as they are (dtype, max_model_len, gpu_memory_utilization,
        data_parallel_size, enforce_eager, ...). ``logprobs``: return each sampled token's log-prob (GRPO's
        importance correction needs them; evaluation does not)."""
        try:
            from vllm import LLM
        except ImportError as e:  # pragma: no cover - exercised only on GPU machines
            raise ImportError("backend 'vllm' needs the vllm package (GPU machines; pip install vllm)") from e

        self._setup(tokenizer, seed, batch_size, logprobs)
        self.llm = LLM(model=model_path, seed=seed, **llm_kwargs)
        self.owns_engine = True

    @classmethod
    def wrap(cls, llm, tokenizer, seed: int = 0, batch_size: int = 256, logprobs: bool = True) -> "VLLMBackend":
        """A backend on an engine built elsewhere (TRL's colocated one); :meth:`close` leaves that engine alive."""
        self = cls.__new__(cls)
        self._setup(tokenizer, seed, batch_size, logprobs)
        self.llm, self.owns_engine = llm, False
        return self

    def _setup(self, tokenizer, seed: int, batch_size: int, logprobs: bool) -> None:
        if not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"VLLMBackend batch_size must be an integer >= 1, got {batch_size!r}")
        self.tok, self.seed, self.batch_size, self.logprobs = tokenizer, seed, batch_size, logprobs
        self.eos_id = tokenizer.eos_token_id
        self.calls = 0  # generate calls so far: part of every request's seed
        self._lock = threading.Lock()

    def reseed(self, seed: int, calls: int = 0) -> None:
        """Restart the seed stream (e.g. once per shard, so a resumed shard draws what it drew the first time)."""
        with self._lock:
            self.seed, self.calls = seed, calls

    @staticmethod
    def request_seed(seed: int, call: int, index: int) -> int:
        """The vLLM seed of request ``index`` of ``generate`` call ``call``: blake2b of the three, in [0, 2**31)."""
        import hashlib

        h = hashlib.blake2b(f"{seed}:{call}:{index}".encode(), digest_size=8).digest()
        return int.from_bytes(h, "little") % 2**31

    def generate(self, contexts, max_new_tokens, temperature, top_p):
        from vllm import SamplingParams
        from vllm.inputs import TokensPrompt

        if self.llm is None:
            raise RuntimeError("VLLMBackend is closed")
        with self._lock:
            seed, call = self.seed, self.calls
            self.calls += 1
        res = []
        limits = list(max_new_tokens) if isinstance(max_new_tokens, (list, tuple)) else [max_new_tokens] * len(contexts)
        if len(limits) != len(contexts):
            raise ValueError(f"VLLMBackend.generate: {len(limits)} token limits for {len(contexts)} contexts")
        extra = {"logprobs": 0} if self.logprobs else {}
        for a in range(0, len(contexts), self.batch_size):
            chunk = contexts[a : a + self.batch_size]
            sps = [SamplingParams(temperature=temperature, top_p=top_p, max_tokens=limits[a + i],
                                  stop=list(STOP_STRINGS), include_stop_str_in_output=True,
                                  seed=self.request_seed(seed, call, a + i), **extra) for i in range(len(chunk))]
            outs = self.llm.generate([TokensPrompt(prompt_token_ids=list(c)) for c in chunk], sps, use_tqdm=False)
            for o in outs:
                c = o.outputs[0]
                ids = list(c.token_ids)
                # logprobs=0 asks for the sampled token's logprob only: one {token_id: Logprob} per position
                lps = None if not self.logprobs or c.logprobs is None else \
                    [float(d[t].logprob) for t, d in zip(ids, c.logprobs)]
                res.append(Generation(ids, hit_limit=c.finish_reason == "length", logprobs=lps))
        return res

    def close(self) -> None:
        """Tear down an owned engine and free its GPU memory (idempotent); a wrapped engine is only let go."""
        llm, self.llm = getattr(self, "llm", None), None
        if llm is None or not getattr(self, "owns_engine", False):
            return
        # the V1 engine core may run in a child process: stop it now rather than whenever the LLM is collected
        core = getattr(getattr(llm, "llm_engine", None), "engine_core", None)
        if callable(getattr(core, "shutdown", None)):
            core.shutdown()
        del llm, core  # no reference left for gc.collect to miss
        try:
            from vllm.distributed.parallel_state import (
                destroy_distributed_environment,
                destroy_model_parallel,
            )
        except ImportError:
            pass
        else:
            destroy_model_parallel()
            destroy_distributed_environment()
        import gc

        gc.collect()
        try:
            import torch
        except ImportError:  # pragma: no cover - torch is a dependency of vllm
            return
        if torch.cuda.is_available():
            torch.cuda.empty_cache()

    def __enter__(self) -> "VLLMBackend":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class ScriptedBackend(TurnBackend):
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
