"""GPU exploration: transformers Trainer as stage 01 uses it, comparing batch sampling (group_by_length vs random vs packing).

Run on a GPU machine from the repo root: python bench/explore/pretrain_trainer_sampling.py '[{"strategy":"group_by_length"},{"strategy":"random","bs":16,"pack_len":512}]'
Not part of the pipeline or the tests; kept so the batching decision can be rechecked.
"""
import sys, time, json, random, torch
sys.path.insert(0, "lib")
from passkt import prep, prior, models, protocol, rollout, backends
from passkt.pretrain import pad_collate, _Texts, pack
from transformers import AutoModelForCausalLM, Trainer, TrainingArguments

def evaluate(m, tok, sets):
    evalp = sets["eval_bridge"] + sets["eval_comparison"] + sets["eval_math"]
    env = rollout.Environment(evalp, tok, search_k=1)
    m.eval()
    be = backends.HFBackend(m, tok, batch_size=512)
    cfgs = rollout.SamplingConfig(temperature=1.0, max_turn_tokens=48, max_total_tokens=1024, search_k=1)
    eps = rollout.run_episodes(be, env, [(p["id"], s, 0 if p["category"] == "math" else 5) for p in evalp for s in range(8)], cfgs)
    out = {}
    for e in eps:
        r = rollout.to_record(env, e, 5, "b", 1.0, 0)
        out.setdefault(r["category"], []).append(r["correct"])
    return {c: round(sum(v) / len(v), 3) for c, v in out.items()}

def run(strategy, epochs=8, lr=3e-3, warm=0.05, sched="cosine", bs=32, pack_len=0):
    torch.manual_seed(0)
    sets, texts = prep.build_synthetic(0, [5000, 150, 150], 9000, 200, 50, 8)
    pool = sets["pretrain"]
    tok = models.build_tokenizer(texts + [p["question"] for p in pool] + [protocol.SYSTEM_PROMPT, protocol.NOTICE], 768)
    tr = prior.write_transcripts(tok, pool, prior.DEFAULT_WEIGHTS, prior.DEFAULT_BUDGETS, 1, 1, 0)
    ex = []
    for t in tr:
        ids, lab = protocol.encode_parts(tok, t["prompt"], t["parts"], train_on_information=True)
        ex.append({"input_ids": ids[:1024], "labels": lab[:1024]})
    if pack_len:
        ex = pack(ex, pack_len, 0)
    m = AutoModelForCausalLM.from_config(models.tiny_config(tok, 128, 2, 4, 2, 384, 2048))
    args = TrainingArguments(output_dir="/tmp/o", num_train_epochs=epochs, learning_rate=lr, per_device_train_batch_size=bs,
                             lr_scheduler_type=sched, warmup_steps=warm, weight_decay=0.01, logging_steps=100, save_strategy="no",
                             report_to=[], seed=0, data_seed=0, train_sampling_strategy=strategy, disable_tqdm=False)
    t = Trainer(model=m, args=args, train_dataset=_Texts(ex), data_collator=pad_collate(tok.pad_token_id))
    t0 = time.time(); t.train()
    log = [round(r["loss"], 3) for r in t.state.log_history if "loss" in r]
    print("RESULT", strategy, pack_len, epochs, lr, bs, warm, sched, round(time.time() - t0), log[::3], evaluate(m, tok, sets), flush=True)

for c in json.loads(sys.argv[1]):
    run(**c)
