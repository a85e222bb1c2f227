"""Stage 01's pretraining loss with the output layer on the labelled positions only (measured, not yet used).

The tiny base model's loss reads the agent's own tokens only (labels -100 on the prompt, retrieved paragraphs and
notices: about 15 % of the positions carry a label). A causal-LM model's own loss still projects every position
through the output layer and takes the log-softmax over the vocabulary. Here the decoder runs as before and only
the positions whose next token is labelled go through the output layer and the cross-entropy: the same loss
(summed and divided by ``num_items_in_batch`` when the Trainer passes it, else the mean, as transformers' causal-LM
loss does) and the same gradients up to float rounding. ``tests/test_pretrain.py`` checks both against the model's own
loss; ``bench/bench_pretrain.py`` measures the step.

Not wired into stage 01 on purpose: switching it on changes ``lib/passkt/pretrain.py``, so the base model at every
base seed would be a new training (bands measured again), and every stage after it reruns; it waits for the one
rerun that adopts it with the other queued changes (docs/wall_times.md, "What would pay for the time goal").
"""

from __future__ import annotations


def labelled_loss(model, inputs: dict, num_items_in_batch=None):
    """Causal-LM cross-entropy over the positions whose next token is labelled (``labels`` != -100)."""
    import torch

    hidden = model.base_model(input_ids=inputs["input_ids"],
                              attention_mask=inputs.get("attention_mask")).last_hidden_state
    target = inputs["labels"][:, 1:]
    keep = target != -100
    logits = model.get_output_embeddings()(hidden[:, :-1][keep]).float()
    if num_items_in_batch is None:
        return torch.nn.functional.cross_entropy(logits, target[keep])
    return torch.nn.functional.cross_entropy(logits, target[keep], reduction="sum") / num_items_in_batch


def trainer_class():
    """transformers' Trainer whose loss is :func:`labelled_loss` (other paths: the Trainer's own)."""
    from transformers import Trainer

    class LabelledLossTrainer(Trainer):
        def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
            # the Trainer's own loss wherever the model is wrapped (DDP, DataParallel, PEFT: calling its submodules
            # would bypass the wrapper) or the loss is not the plain causal-LM one
            if (return_outputs or self.label_smoother is not None or self.compute_loss_func is not None
                    or self.accelerator.num_processes > 1 or self.args.n_gpu > 1
                    or self.accelerator.unwrap_model(model) is not model):
                return super().compute_loss(model, inputs, return_outputs, num_items_in_batch)
            # accelerate applies mixed precision by wrapping model.forward, which this path does not call
            with self.accelerator.autocast():
                return labelled_loss(model, inputs, num_items_in_batch if self.model_accepts_loss_kwargs else None)

    return LabelledLossTrainer
