"""A heavy unit of stages 02–04 run in its own process, so tests/test_integrity.py can SIGKILL it mid-run.

    python tests/kill_driver.py sample|sft|grpo WORK_DIR [--slow SECONDS]

WORK_DIR holds ``problems.json`` (training), ``eval.json`` (sampling) and ``base/`` (a saved tiny model + tokenizer) written by the test; the unit
writes into ``WORK_DIR/out``. ``--slow`` sleeps after every decode call / optimiser step so that a kill lands
mid-run; it changes no result. The units call exactly the library functions the notebooks call.
"""

import json
import sys
import time
import warnings
from pathlib import Path

SAMPLING = {"n": 6, "T_grid": [0, 1, 2], "math_T_grid": [0], "temperatures": [1.0], "top_p": 1.0,
            "max_turn_tokens": 12, "max_total_tokens": 400, "search_k": 1, "backend": "hf", "batch_size": 64,
            "problems_per_shard": 2, "mode": "fork", "device": "cpu", "workers": 1}


def _slow_down(cls, method: str, seconds: float) -> None:
    real = getattr(cls, method)

    def slow(*a, **kw):
        out = real(*a, **kw)
        time.sleep(seconds)
        return out

    setattr(cls, method, slow)


def scripted_backend(problems, tok):
    """Right or wrong answers drawn from torch's global RNG (restored by the trainer on resume)."""
    import torch

    from passkt.backends import ScriptedBackend

    by_q = {p["question"]: p for p in problems}

    def script(ctx: str) -> str:
        p = next(v for q, v in by_q.items() if q in ctx)
        meta = json.loads(p["meta"])
        if "<information>" not in ctx.split("<|im_start|>assistant\n")[-1]:
            return f"<think>look</think><search>{meta['plan'][0]}</search>"
        ans = p["answer"] if torch.rand(()) < 0.5 else meta["wrong_answers"][0]
        return f"<answer>{ans}</answer>"

    return ScriptedBackend(tok, script)


def main(mode: str, work: Path, slow: float) -> None:
    import torch
    from transformers import AutoTokenizer

    torch.set_num_threads(1)
    problems = json.loads((work / ("eval.json" if mode == "sample" else "problems.json")).read_text())
    base = work / "base"
    out = work / "out"
    tok = AutoTokenizer.from_pretrained(base)
    if mode == "sample":
        from passkt import backends, sampling

        _slow_down(backends.HFBackend, "decode", slow)
        sampling.sample_eval(base, "base", problems, out, SAMPLING, seed=5)
    elif mode == "sft":
        import transformers

        from passkt import sft

        _slow_down(transformers.Trainer, "training_step", slow)
        ds = sft.sft_dataset(sft.expert_demos(problems, tok, search_k=1), tok)
        s = sft.SFTSettings(epochs=6, lr=1e-2, batch_size=2, logging_steps=1, warmup_ratio=0.0, save_steps=1, seed=3)
        sft.train_sft(base, ds, out, s)
    elif mode == "grpo":
        import transformers

        from passkt import grpo

        _slow_down(transformers.Trainer, "training_step", slow)
        s = grpo.GRPOSettings(epochs=3, group_size=4, T_train=1, lr=1e-3, beta=0.0, max_turn_tokens=48,
                              max_total_tokens=1024, prompts_per_step=2, grad_accum=1, save_steps=1,
                              logging_steps=1, seed=3)
        backend = scripted_backend(problems, tok)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            grpo.train_grpo(base, problems, tok, out, s, search_k=1, backend_factory=lambda trainer: backend)
    else:
        raise SystemExit(f"unknown mode {mode!r}: sample | sft | grpo")
    print("DONE", flush=True)


if __name__ == "__main__":
    args = sys.argv[1:]
    slow = float(args[args.index("--slow") + 1]) if "--slow" in args else 0.0
    main(args[0], Path(args[1]), slow)
