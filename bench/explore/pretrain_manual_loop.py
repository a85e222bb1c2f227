"""GPU exploration behind the tiny base model's size (README, stage 01): manual training loop, eval Pass@1 at checkpoints.

Run on a GPU machine from the repo root: python bench/explore/pretrain_manual_loop.py '[{"hidden":128,"layers":2,"heads":4,"kv":2,"epochs":8,"lr":0.003,"per_problem":1,"bs":32,"lm_info":true,"ents":5000,"npre":9000,"vocab":768}]'
Not part of the pipeline or the tests; kept so the sizing decision can be rechecked.
"""
import sys, time, json, random, torch
sys.path.insert(0, "lib")
from passkt import prep, prior, models, protocol, rollout, backends, search
from passkt.pretrain import pad_collate
from transformers import AutoModelForCausalLM

def run(hidden, layers, heads, kv, epochs, lr, per_problem, bs, lm_info, seed=0, ents=1500, npre=3000, vocab=2048):
    torch.manual_seed(seed)
    t_b = time.time(); sets, texts = prep.build_synthetic(0, [ents, 150, 150], npre, 200, 50, 8); print("world", time.time() - t_b, flush=True)
    pool = sets["pretrain"]
    tok = models.build_tokenizer(texts + [p["question"] for p in pool] + [protocol.SYSTEM_PROMPT, protocol.NOTICE], vocab)
    tr = prior.write_transcripts(tok, pool, prior.DEFAULT_WEIGHTS, prior.DEFAULT_BUDGETS, per_problem, 1, seed)
    ex = [protocol.encode_parts(tok, t["prompt"], t["parts"], train_on_information=lm_info) for t in tr]
    cfg = models.tiny_config(tok, hidden, layers, heads, kv, hidden * 3, 2048)
    m = AutoModelForCausalLM.from_config(cfg).cuda()
    opt = torch.optim.AdamW(m.parameters(), lr=lr, weight_decay=0.01)
    coll = pad_collate(tok.pad_token_id)
    steps = int(len(ex) * epochs / bs)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=steps, pct_start=0.05, anneal_strategy="cos")
    order = list(range(len(ex)))
    rng = random.Random(seed)
    t0 = time.time(); step = 0; res = []
    evalp = sets["eval_bridge"] + sets["eval_comparison"] + sets["eval_math"]
    env = rollout.Environment(evalp, tok, search_k=1)
    while step < steps:
        rng.shuffle(order)
        for i in range(0, len(order) - bs + 1, bs):
            b = coll([{"input_ids": ex[j][0][:1024], "labels": ex[j][1][:1024]} for j in order[i:i + bs]])
            b = {k: v.cuda() for k, v in b.items()}
            loss = m(**b).loss
            loss.backward(); torch.nn.utils.clip_grad_norm_(m.parameters(), 1.0)
            opt.step(); sched.step(); opt.zero_grad(); step += 1
            if step % max(1, steps // 4) == 0 or step == steps:
                m.eval()
                be = backends.HFBackend(m, tok, batch_size=512)
                cfgs = rollout.SamplingConfig(temperature=1.0, max_turn_tokens=48, max_total_tokens=1024, search_k=1)
                eps = rollout.run_episodes(be, env, [(p["id"], s, 0 if p["category"] == "math" else 5) for p in evalp for s in range(8)], cfgs)
                recs = [rollout.to_record(env, e, 5, "b", 1.0, 0) for e in eps]
                out = {}
                for r in recs:
                    out.setdefault(r["category"], []).append(r["correct"])
                val = sum(r["valid"] for r in recs) / len(recs)
                pn = {}
                for r in recs:
                    pn.setdefault((r["category"], r["problem_id"]), []).append(r["correct"])
                passn = {c: sum(max(v) for (cc, _), v in pn.items() if cc == c) / sum(1 for (cc, _) in pn if cc == c) for c in out}
                row = {"step": step, "loss": round(loss.item(), 3), "sec": round(time.time() - t0), "valid": round(val, 3),
                       **{f"p1_{c}": round(sum(v) / len(v), 3) for c, v in out.items()}, **{f"p8_{c}": round(v, 3) for c, v in passn.items()}}
                print(hidden, layers, epochs, lr, per_problem, bs, lm_info, ents, npre, vocab, row, flush=True)
                m.train()
            if step >= steps:
                break

cfgs = json.loads(sys.argv[1])
for c in cfgs:
    run(**c)
