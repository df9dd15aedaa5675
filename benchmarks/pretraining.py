"""Pretraining, side by side with the obvious way, in one run. The last line is JSON.

    python benchmarks/pretraining.py [--preset tiny] [--steps 30] [--packages click,jinja2,rich]

- train: tokens/s and MFU of the project's loop (models.lm.train: bf16 autocast, fused AdamW
  and torch.compile on a GPU as the preset says; fp32 on a CPU) vs a Hugging Face `Trainer` in
  eager fp32, on the same model (same seed), the same windows of the same token shards, the same
  batch and sequence length. The first step of each is left out (compilation, warm-up).
- tokenize: tokens/s of the corpus tokenized as one partition vs as one partition per core,
  run concurrently on threads as the flow's task runner runs them.

Real code only: the installed packages' sources, cleaned by the project's pipeline.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks._common import report
from mlstack.pretraining import clean, shards, sources
from mlstack.settings import get_settings


def tokenize_rate(docs: list, tokenizer_file: Path, root: Path, partitions: int) -> tuple[float, int]:
    written = shards.write(docs, root / f"corpus-{partitions}", partitions, 0.05)
    parts = [p for name, p in written.items() if name != shards.VALIDATION]
    out = root / f"tokens-{partitions}"
    start = time.perf_counter()
    with ThreadPoolExecutor(partitions) as pool:
        done = list(pool.map(lambda p: shards.tokenize_shard(p, tokenizer_file, out), parts))
    seconds = time.perf_counter() - start
    shards.tokenize_shard(written[shards.VALIDATION], tokenizer_file, out)  # for training, untimed
    tokens = sum(d.tokens for d in done)
    return tokens / seconds, tokens


def trainer_rate(config, steps: int) -> float:
    """Hugging Face Trainer, eager fp32, on the windows our loop reads."""
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
    root = Path(tempfile.mkdtemp(prefix="mlstack-bench-pretrain-"))
    shape = PRESETS[args.preset].shape
    tokenizer = train_tokenizer((d.text for d in docs), shape.vocab_size)
    tokenizer.save_pretrained(root / "tokenizer")
    tokenizer_file = root / "tokenizer" / "tokenizer.json"
    one_rate, tokens = tokenize_rate(docs, tokenizer_file, root, 1)
    many_rate, _ = tokenize_rate(docs, tokenizer_file, root, cores)

    preset = PRESETS[args.preset].train | {
        "steps": args.steps,
        "eval_every": args.steps,
        "checkpoint_every": 10**9,
    }
    config = TrainConfig(
        run_dir=root / "run",
        tokens_dir=root / f"tokens-{cores}",
        tokenizer_dir=root / "tokenizer",
        shape=shape,
        **preset,
    )
    ours = train(config)
    baseline = trainer_rate(config.model_copy(update={"compile": False}), args.steps)
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
    ]
    report(
        f"Pretraining ({args.preset}, {device}): mlstack vs HF Trainer eager fp32",
        rows,
        ("what", "mlstack", "baseline", "ratio"),
        result,
    )


if __name__ == "__main__":
    main()
