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


def test_a_trainer_with_the_labelled_loss_trains_the_same_weights(small_tok, tmp_path):
    from transformers import Trainer, TrainingArguments

    examples = [{"input_ids": b["input_ids"][r].tolist(), "labels": b["labels"][r].tolist()}
                for s in range(3) for b in [_batch(small_tok, seed=s)] for r in range(3)]
    out = {}
    for name, cls in (("hf", Trainer), ("labelled", fast_pretrain.trainer_class())):
        model = _model(small_tok)
        args = TrainingArguments(output_dir=str(tmp_path / name), num_train_epochs=1, learning_rate=1e-2,
                                 per_device_train_batch_size=3, gradient_accumulation_steps=2, save_strategy="no",
                                 report_to=[], seed=0, data_seed=0, use_cpu=True, logging_steps=1,
                                 dataloader_num_workers=0)
        trainer = cls(model=model, args=args, train_dataset=pretrain._Texts(examples),
                      data_collator=pretrain.pad_collate(small_tok.pad_token_id))
        trainer.train()
        out[name] = (torch.cat([p.detach().flatten() for p in model.parameters()]),
                     [r["loss"] for r in trainer.state.log_history if "loss" in r])
    start = torch.cat([p.detach().flatten() for p in _model(small_tok).parameters()])
    assert (out["hf"][0] - start).norm() > 0  # training moved the weights
    assert (out["labelled"][0] - out["hf"][0]).norm() <= 1e-4 * (out["hf"][0] - start).norm()
    assert out["labelled"][1] == out["hf"][1] or torch.allclose(torch.tensor(out["labelled"][1]),
                                                                 torch.tensor(out["hf"][1]), rtol=1e-5)
