"""GRPO's loss forward with each group's prompt encoded once (``GRPOSettings.shared_prompt``).

A GRPO batch holds G episodes of every prompt (tiny profile: 16 prompts x G = 8). TRL, and the length buckets of
:class:`passkt.grpo._FastLogprobs`, run the model over every row's prompt again, although the G rows of a group
share it token for token: in the tiny profile's batch the prompt is about half of the real tokens. Here the
distinct prompts (all but their last token) go through the model once, their keys and values are gathered to the
rows that use them, and each length bucket runs only the last prompt token and its completion against that cache.
A causal model's output at a position depends only on the positions before it, so the per-token log-probabilities
and entropies are the same up to float rounding; the gradient through the shared keys and values is the sum over
the rows that read them, which autograd forms. ``tests/test_grpo.py`` checks log-probs, entropies, loss and
gradients against TRL's own path, and ``bench/bench_grpo_step.py`` measures it beside the other variants.
"""

from __future__ import annotations

import functools

from passkt import grpo


class _SharedPromptLogprobs:
    """Mixin over :func:`passkt.grpo.trainer_class`: rows with identical prompts share one prompt forward.

    Falls back to the parent's path when no two rows share a prompt, when the prompt is a single token, when the
    caller asks for chunks smaller than the batch (``batch_size``), when the model trains with gradient
    checkpointing (transformers then keeps no cache), or for the inputs the parent also sends to TRL unchanged
    (MoE aux losses, images).
    """

    def _get_per_token_logps_and_entropies(self, model, input_ids, attention_mask, logits_to_keep, batch_size=None,
                                           compute_entropy=False, compute_aux_loss=False, **kwargs):
        import torch
        from transformers import DynamicCache

        n_prompt = input_ids.size(1) - logits_to_keep
        parent = super()._get_per_token_logps_and_entropies
        checkpointing = model.training and getattr(model, "is_activation_checkpointing",
                                                   getattr(model, "is_gradient_checkpointing", False))
        if (n_prompt < 2 or compute_aux_loss or checkpointing or (batch_size and batch_size < input_ids.size(0))
                or any(v is not None for v in kwargs.values())):
            return parent(model, input_ids, attention_mask, logits_to_keep, batch_size, compute_entropy,
                          compute_aux_loss, **kwargs)
        prompts = torch.cat([input_ids[:, :n_prompt], attention_mask[:, :n_prompt]], 1)
        distinct, owner = torch.unique(prompts, dim=0, return_inverse=True)  # owner: row -> its distinct prompt
        if len(distinct) == len(prompts):
            return parent(model, input_ids, attention_mask, logits_to_keep, batch_size, compute_entropy)
        with self.accelerator.autocast(), self._loss_dtype(input_ids.device.type):  # as TRL's own forward runs, plus our bf16 autocast
            head = model(input_ids=distinct[:, : n_prompt - 1], attention_mask=distinct[:, n_prompt: 2 * n_prompt - 1],
                         use_cache=True, logits_to_keep=1)
            kv = [(layer.keys, layer.values) for layer in head.past_key_values.layers]
            rows_all, logps, entropies = [], [], []
            for rows, n in grpo.length_buckets(attention_mask[:, n_prompt:], self.logprob_buckets):
                cache = DynamicCache(ddp_cache_data=[(k[owner[rows]], v[owner[rows]]) for k, v in kv])
                ids = input_ids[rows, n_prompt - 1: n_prompt + n]  # the last prompt token scores the first answer token
                mask = attention_mask[rows, : n_prompt + n]
                labels = ids.masked_fill(mask[:, n_prompt - 1:] == 0, -100)
                labels[:, 0] = -100
                out = model(input_ids=ids, attention_mask=mask, past_key_values=cache, labels=labels,
                            fused_lm_head=True)
                rows_all.append(rows)
                logps.append(torch.nn.functional.pad(out.log_probs[:, -n:], (0, logits_to_keep - n)))
                if compute_entropy:
                    entropies.append(torch.nn.functional.pad(out.entropy[:, -n:], (0, logits_to_keep - n)))
        back = torch.argsort(torch.cat(rows_all))  # sorted position -> original row
        return torch.cat(logps)[back], (torch.cat(entropies)[back] if compute_entropy else None), None


@functools.cache
def trainer_class():
    """:func:`passkt.grpo.trainer_class` with :class:`_SharedPromptLogprobs` in front."""
    return type("PassktSharedPromptGRPOTrainer", (_SharedPromptLogprobs, grpo.trainer_class()),
                {"__module__": __name__})


def enable(trainer) -> None:
    """Switch a trainer built by :func:`passkt.grpo.build_trainer` to the shared-prompt loss forward."""
    trainer.__class__ = trainer_class()
