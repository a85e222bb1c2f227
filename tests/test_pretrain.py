"""The labelled-positions pretraining loss (passkt.fast_pretrain): stage 01's loss and gradients, computed cheaper."""

import torch

from passkt import fast_pretrain, models, pretrain


def _model(tok, seed=0):
    from transformers import AutoModelForCausalLM

    torch.manual_seed(seed)
    return AutoModelForCausalLM.from_config(models.tiny_config(tok, 32, 2, 2, 1, 64, 256))


def _batch(tok, rows=4, length=40, seed=0):
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(3, len(tok), (rows, length), generator=g)
    labels = ids.clone()
    labels[torch.rand(rows, length, generator=g) < 0.8] = -100  # most positions are context, as in stage 01
    mask = torch.ones_like(ids)
    mask[-1, -7:] = 0  # a right-padded row
    labels[-1, -7:] = -100
    return {"input_ids": ids, "attention_mask": mask, "labels": labels}


def _grads(model):
    return torch.cat([p.grad.flatten() for p in model.parameters()])


def test_labelled_loss_is_the_models_own_loss_and_gradients(small_tok):
    model, batch = _model(small_tok), _batch(small_tok)
    n_items = int((batch["labels"][:, 1:] != -100).sum())
    assert 0 < n_items < batch["labels"].numel() // 3
    for kw in ({}, {"num_items_in_batch": n_items * 2}):  # as the Trainer passes it, e.g. with accumulation
        model.zero_grad()
        ref = model(**batch, **kw).loss
        ref.backward()
        g_ref = _grads(model)
        model.zero_grad()
        loss = fast_pretrain.labelled_loss(model, batch, kw.get("num_items_in_batch"))
        loss.backward()
        torch.testing.assert_close(loss, ref)
        assert (_grads(model) - g_ref).norm() <= 1e-5 * g_ref.norm()
    with torch.autocast("cpu", dtype=torch.bfloat16):  # stage 01 trains under bf16 autocast
        ref, loss = model(**batch).loss, fast_pretrain.labelled_loss(model, batch)
    torch.testing.assert_close(loss, ref, rtol=2e-2, atol=2e-2)


def _train(tok, tmp_path, name, cls, examples, bf16):
    from transformers import TrainingArguments

    model = _model(tok)
    args = TrainingArguments(output_dir=str(tmp_path / name), num_train_epochs=1, learning_rate=1e-2,
                             per_device_train_batch_size=3, gradient_accumulation_steps=2, save_strategy="no",
                             report_to=[], seed=0, data_seed=0, use_cpu=True, logging_steps=1,
                             dataloader_num_workers=0, bf16=bf16)
    head_dtypes = []
    model.get_output_embeddings().register_forward_hook(lambda m, i, o: head_dtypes.append(o.dtype))
    trainer = cls(model=model, args=args, train_dataset=pretrain._Texts(examples),
                  data_collator=pretrain.pad_collate(tok.pad_token_id))
    trainer.train()
    return (torch.cat([p.detach().flatten() for p in model.parameters()]),
            [r["loss"] for r in trainer.state.log_history if "loss" in r], set(head_dtypes))


def test_a_trainer_with_the_labelled_loss_trains_the_same_weights(small_tok, tmp_path, monkeypatch):
    """Through the Trainer (gradient accumulation, and bf16 mixed precision as stage 01 trains): the labelled loss is
    the one used, under the Trainer's autocast, and the weights end where transformers' own loss takes them."""
    from transformers import Trainer

    examples = [{"input_ids": b["input_ids"][r].tolist(), "labels": b["labels"][r].tolist()}
                for s in range(3) for b in [_batch(small_tok, seed=s)] for r in range(3)]
    calls = []
    real = fast_pretrain.labelled_loss
    monkeypatch.setattr(fast_pretrain, "labelled_loss", lambda *a, **k: calls.append(1) or real(*a, **k))
    start = torch.cat([p.detach().flatten() for p in _model(small_tok).parameters()])
    for bf16, tol in ((False, 1e-4), (True, 5e-2)):
        w_hf, loss_hf, dt_hf = _train(small_tok, tmp_path, f"hf{bf16}", Trainer, examples, bf16)
        calls[:] = []
        w, loss, dt = _train(small_tok, tmp_path, f"labelled{bf16}", fast_pretrain.trainer_class(), examples, bf16)
        assert len(calls) == 3  # 9 examples, micro-batches of 3: every step used the labelled loss
        assert dt == dt_hf == {torch.bfloat16 if bf16 else torch.float32}  # the output layer ran in the Trainer's precision
        assert (w_hf - start).norm() > 0  # training moved the weights
        assert (w - w_hf).norm() <= tol * (w_hf - start).norm()
        assert torch.allclose(torch.tensor(loss), torch.tensor(loss_hf), rtol=tol)
