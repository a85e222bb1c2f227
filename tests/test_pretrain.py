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


def test_the_annealing_corpus_keeps_the_main_corpus_and_adds_fresh_math_transcripts(small_sets, small_tok):
    from passkt import prior

    sets, _ = small_sets
    pool = sets["pretrain"]
    weights, budgets = prior.DEFAULT_WEIGHTS, {0: 0.5, 2: 0.5}
    tok, transcripts, examples = pretrain.build_corpus(pool, [], 300, weights, budgets, 1, 1, seed=3)
    n_math = sum(p["category"] == "math" for p in pool)
    assert 0 < n_math < len(pool)
    fresh, both = pretrain.anneal_corpus(tok, pool, examples, weights, budgets, 2, 1, seed=3)
    assert both[:len(examples)] == examples and all(a is b for a, b in zip(both, examples))
    assert len(fresh) == 2 * n_math == len(both) - len(examples)
    assert {t["category"] for t in fresh} == {"math"}
    # their own random stream: not the main corpus's transcripts of the same problems, and reproducible
    main_math = [t["text"] for t in transcripts if t["category"] == "math"]
    differ = sum(a["text"] != b for a, b in zip(fresh[::2], main_math))
    assert differ > len(main_math) // 2
    again, _ = pretrain.anneal_corpus(tok, pool, examples, weights, budgets, 2, 1, seed=3)
    assert [t["text"] for t in again] == [t["text"] for t in fresh]
    import pytest
    with pytest.raises(ValueError, match="math_anneal"):
        pretrain.anneal_corpus(tok, pool, examples, weights, budgets, 0, 1, seed=3)


def test_joined_phases_count_the_annealing_steps_on():
    def run(steps, losses, epochs):
        log = [{"step": (i + 1) * steps // len(losses), "epoch": (i + 1) * epochs / len(losses), "loss": x}
               for i, x in enumerate(losses)]
        return {"log": log, "seconds": 1.0, "tokens_seen": 10, "n_examples": 5, "n_rows": 2, "steps": steps}

    joined = pretrain.join_phases(run(100, [3.0, 2.0], 12.0), run(10, [1.5, 1.0], 1.0))
    assert [r["step"] for r in joined["log"]] == [50, 100, 105, 110]
    assert [r["epoch"] for r in joined["log"]] == [6.0, 12.0, 12.5, 13.0]
    assert joined["steps"] == 110 and joined["seconds"] == 2.0
    assert joined["phases"]["main"]["final_loss"] == 2.0 and joined["phases"]["anneal"]["final_loss"] == 1.0
