"""Pretraining, side by side with the obvious way, in one run. The last line is JSON.

    python benchmarks/pretraining.py [--preset tiny] [--steps 30] [--packages click,jinja2,rich]

- train: tokens/s and MFU of the project's loop (models.lm.train: bf16 autocast, fused AdamW
  and torch.compile on a GPU as the preset says; fp32 on a CPU) vs a Hugging Face `Trainer`
  tuned as a user would on the same device: on a GPU `bf16`, `tf32`, `torch_compile` and
  `adamw_torch_fused` (on a CPU none of them apply: fp32 eager), on the same model (same seed),
  the same windows of the same token shards, the same batch and sequence length. The first step
  of each is left out (compilation, warm-up).
- tokenize: tokens/s of the corpus tokenized as one partition per core, run concurrently on
  threads as the flow's task runner runs them (shards read and token files written included)
  vs the script a user would write: read the same shards, the library's own `encode_batch_fast`
  over all the texts at once with its default parallelism (a fresh process,
  TOKENIZERS_PARALLELISM unset), and write one token file; one partition alone is reported too.
Each side runs `--repeats` times (alternating) and the medians are compared.

Real code only: the installed packages' sources, cleaned by the project's pipeline.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks._common import report, scratch
from mlstack.pretraining import clean, shards, sources
from mlstack.settings import get_settings

LIBRARY_TOKENIZE = """
import json, os, sys, time
import numpy as np
os.environ.pop("TOKENIZERS_PARALLELISM", None)
from tokenizers import Tokenizer
out, tokenizer_file, *shard_files = sys.argv[1:]
start = time.perf_counter()
tokenizer = Tokenizer.from_file(tokenizer_file)
texts = [json.loads(line)["text"] for f in shard_files for line in open(f, encoding="utf-8")]
encodings = tokenizer.encode_batch_fast(texts, add_special_tokens=False)
eos = np.array([tokenizer.token_to_id("<|endoftext|>")], dtype=np.uint16)
tokens = np.concatenate([a for e in encodings for a in (np.asarray(e.ids, dtype=np.uint16), eos)])
open(out, "wb").write(tokens.tobytes())
seconds = time.perf_counter() - start
print(json.dumps({"tokens": int(tokens.size) - len(texts), "seconds": seconds}))
"""


def library_rate(shard_files: list[Path], tokenizer_file: Path, root: Path) -> float:
    """The obvious script: read the same shards, one `encode_batch_fast` over all their texts with
    the library's default parallelism, and write one token file (a fresh process,
    TOKENIZERS_PARALLELISM unset)."""
    import json
    import subprocess

    env = {k: v for k, v in os.environ.items() if k != "TOKENIZERS_PARALLELISM"}
    command = [sys.executable, "-c", LIBRARY_TOKENIZE, str(root / "library.bin"), str(tokenizer_file)]
    done = subprocess.run(
        command + [str(f) for f in shard_files], env=env, capture_output=True, text=True, check=True
    )
    measured = json.loads(done.stdout.strip().splitlines()[-1])
    return measured["tokens"] / measured["seconds"]


def tokenize_rate(
    docs: list, tokenizer_file: Path, root: Path, partitions: int, run: int = 0
) -> tuple[float, int, list[Path]]:
    written = shards.write(docs, root / f"corpus-{partitions}", partitions, 0.05)
    parts = [p for name, p in written.items() if name != shards.VALIDATION]
    out = root / f"tokens-{partitions}" / str(run)  # fresh: a tokenized shard is skipped
    start = time.perf_counter()
    with ThreadPoolExecutor(partitions) as pool:
        done = list(pool.map(lambda p: shards.tokenize_shard(p, tokenizer_file, out), parts))
    seconds = time.perf_counter() - start
    shards.tokenize_shard(written[shards.VALIDATION], tokenizer_file, out)  # for training, untimed
    tokens = sum(d.tokens for d in done)
    return tokens / seconds, tokens, parts


GPU_TUNING = {"bf16": True, "tf32": True, "torch_compile": True, "optim": "adamw_torch_fused"}


def trainer_rate(config, steps: int) -> float:
    """Hugging Face Trainer on the windows our loop reads, with what a user turns on for speed on
    a GPU (none of it applies on a CPU: fp32 eager there, as ours)."""
    import torch
    from transformers import AutoTokenizer, Trainer, TrainerCallback, TrainingArguments

    from models.lm.init import build_model
    from models.lm.train import TokenData, _special_ids

    tokenizer = AutoTokenizer.from_pretrained(config.tokenizer_dir)
    data = TokenData(config.tokens_dir, config.seq_len)
    rows = config.micro_batch * config.accumulation
    windows = torch.from_numpy(
        __import__("numpy").concatenate([data.global_batch(config.seed, s, rows) for s in range(steps)])
    )

    class Windows(torch.utils.data.Dataset):
        def __len__(self) -> int:
            return len(windows)

        def __getitem__(self, i: int) -> dict:
            return {"input_ids": windows[i, :-1], "labels": windows[i, :-1]}

    times: list[float] = []

    class Clock(TrainerCallback):
        def on_step_begin(self, *args, **kwargs):
            times.append(time.perf_counter())

        def on_train_end(self, *args, **kwargs):
            times.append(time.perf_counter())

    model = build_model(config.init, config.shape, len(tokenizer), _special_ids(tokenizer), config.seed)
    args = TrainingArguments(
        output_dir=str(config.run_dir.parent / "hf-trainer"),
        per_device_train_batch_size=config.micro_batch,
        gradient_accumulation_steps=config.accumulation,
        max_steps=steps,
        learning_rate=config.lr,
        warmup_steps=config.warmup,
        lr_scheduler_type="cosine",
        max_grad_norm=config.grad_clip,
        weight_decay=config.weight_decay,
        save_strategy="no",
        eval_strategy="no",
        logging_strategy="no",
        report_to=[],
        disable_tqdm=True,
        dataloader_num_workers=0,
        use_cpu=not torch.cuda.is_available(),
        seed=config.seed,
        **GPU_TUNING if torch.cuda.is_available() else {},
    )
    Trainer(model=model, args=args, train_dataset=Windows(), callbacks=[Clock()]).train()
    seconds = times[-1] - times[1]  # from the second step on, as our loop counts
    return (steps - 1) * rows * config.seq_len / seconds


def main() -> None:
    import torch

    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--preset", default="tiny", choices=["tiny", "small"])
    parser.add_argument("--steps", type=int, default=30, help="Steps each trainer runs.")
    parser.add_argument("--packages", default="click,httpx,jinja2,requests,rich,typer")
    parser.add_argument("--repeats", type=int, default=3, help="Runs of each side; medians are compared.")
    args = parser.parse_args()

    from models.lm.presets import PRESETS
    from models.lm.tokenizer import train_tokenizer
    from models.lm.train import TrainConfig, train

    settings = get_settings()
    docs = clean.clean(
        sources.read(
            sources.parse_spec(f"packages:{args.packages}"), settings, settings.pretrain.max_file_bytes
        )
    ).documents
    cores = os.cpu_count() or 1
    root = scratch("pretrain")
    shape = PRESETS[args.preset].shape
    tokenizer = train_tokenizer((d.text for d in docs), shape.vocab_size)
    tokenizer.save_pretrained(root / "tokenizer")
    tokenizer_file = root / "tokenizer" / "tokenizer.json"
    one, many, library = [], [], []
    for run in range(args.repeats):
        one.append(tokenize_rate(docs, tokenizer_file, root, 1, run)[0])
        many_rate, tokens, parts = tokenize_rate(docs, tokenizer_file, root, cores, run)
        many.append(many_rate)
        library.append(library_rate(parts, tokenizer_file, root))
    one_rate, many_rate, library_tokens_rate = (statistics.median(x) for x in (one, many, library))

    preset = PRESETS[args.preset].train | {
        "steps": args.steps,
        "eval_every": args.steps,
        "checkpoint_every": 10**9,
    }
    config = TrainConfig(
        run_dir=root / "run",
        tokens_dir=root / f"tokens-{cores}" / "0",
        tokenizer_dir=root / "tokenizer",
        shape=shape,
        **preset,
    )
    runs, baselines = [], []
    for run in range(args.repeats):
        runs.append(train(config.model_copy(update={"run_dir": root / f"run-{run}"})))
        baselines.append(trainer_rate(config.model_copy(update={"compile": False}), args.steps))
    ours = sorted(runs, key=lambda r: r.tokens_per_s)[len(runs) // 2]
    baseline = statistics.median(baselines)
    device = torch.cuda.get_device_name() if torch.cuda.is_available() else f"cpu ({cores} cores)"
    result = {
        "bench": "pretraining",
        "device": device,
        "preset": args.preset,
        "parameters": ours.parameters,
        "tokens_per_s": round(ours.tokens_per_s, 1),
        "baseline_tokens_per_s": round(baseline, 1),
        "mfu": round(ours.mfu, 4) if ours.mfu is not None else None,
        "speedup_over_baseline": round(ours.tokens_per_s / baseline, 3),
        "tokenize_tokens": tokens,
        "tokenize_one_partition_tokens_per_s": round(one_rate),
        "tokenize_parallel_tokens_per_s": round(many_rate),
        "tokenize_partitions": cores,
        "tokenize_parallel_speedup": round(many_rate / one_rate, 3),
        "tokenize_library_tokens_per_s": round(library_tokens_rate),
        "tokenize_over_library": round(many_rate / library_tokens_rate, 3),
        "repeats": args.repeats,
        "baseline": "Trainer bf16, tf32, torch_compile, adamw_torch_fused"
        if torch.cuda.is_available()
        else "Trainer fp32 eager (the GPU options do not apply on a CPU)",
    }
    rows = [
        (
            "train tokens/s",
            f"{result['tokens_per_s']:,}",
            f"{result['baseline_tokens_per_s']:,}",
            f"{result['speedup_over_baseline']}x",
        ),
        ("MFU", f"{result['mfu']}", "", ""),
        (
            f"tokenize tokens/s ({cores} partitions vs 1)",
            f"{result['tokenize_parallel_tokens_per_s']:,}",
            f"{result['tokenize_one_partition_tokens_per_s']:,}",
            f"{result['tokenize_parallel_speedup']}x",
        ),
        (
            f"tokenize tokens/s ({cores} partitions vs the library's encode_batch_fast)",
            f"{result['tokenize_parallel_tokens_per_s']:,}",
            f"{result['tokenize_library_tokens_per_s']:,}",
            f"{result['tokenize_over_library']}x",
        ),
    ]
    report(
        f"Pretraining ({args.preset}, {device}, medians of {args.repeats}): mlstack vs {result['baseline']}",
        rows,
        ("what", "mlstack", "baseline", "ratio"),
        result,
    )


if __name__ == "__main__":
    main()
