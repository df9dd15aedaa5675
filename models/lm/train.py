"""Pretrain a causal LM on token shards: one loop, read top to bottom.

    python -m models.lm.train --config run.json                       # one process
    torchrun --nproc-per-node 2 -m models.lm.train --config run.json  # DDP, gloo on CPU, NCCL on GPU

The data position is the step: the global batch of step s is drawn by a generator seeded with
(seed, s), and rank r takes its rows of it. So a resumed run reads exactly what the killed one
would have read next, and N processes with micro batch B/N read what one process reads with B.
Each step: cosine learning rate with linear warmup, gradient accumulation (DDP syncs on the last
micro step only), clipping, AdamW. On a GPU: bf16 autocast, SDPA attention, optional
torch.compile. Every `checkpoint_every` steps rank 0 saves a checkpoint; every `eval_every` and
at the end it measures validation loss. Rank 0 appends each step's metrics to metrics.jsonl and,
given an MLflow run id, logs them there too.
"""

from __future__ import annotations

import json
import math
import os
import time
from contextlib import nullcontext
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, Field

from mlstack import progress
from mlstack.errors import InputError, NotReady
from mlstack.io import atomic_dir
from models.lm import checkpoint
from models.lm.init import LMShape, build_model, count_parameters

# Dense bf16 peak FLOP/s by device name, from the vendors' data sheets (no sparsity).
PEAK_BF16 = {
    "H100": 989e12,
    "H200": 989e12,
    "GH200": 989e12,
    "A100": 312e12,
    "L40S": 362e12,
    "L4": 121e12,
    "A10": 125e12,
}
# A CPU core's fp32 FLOP per cycle with AVX2: 2 FMA units x 8 lanes x 2. An estimate, labelled so.
CPU_FLOP_PER_CYCLE = 32


class TrainConfig(BaseModel):
    run_dir: Path = Field(description="Checkpoints, metrics.jsonl and the final model go here.")
    tokens_dir: Path = Field(description="train-*.bin and validation.bin with their manifests.")
    tokenizer_dir: Path = Field(description="Hugging Face tokenizer saved with the model.")
    init: str = "random"
    shape: LMShape = LMShape()
    steps: int = Field(default=300, ge=1)
    micro_batch: int = Field(default=16, ge=1, description="Rows per process per micro step.")
    accumulation: int = Field(default=1, ge=1)
    seq_len: int = Field(default=256, ge=8)
    lr: float = Field(default=3e-3, gt=0)
    min_lr_ratio: float = Field(default=0.1, ge=0, le=1)
    warmup: int = Field(default=30, ge=0)
    weight_decay: float = 0.1
    grad_clip: float = 1.0
    eval_every: int = Field(default=100, ge=1)
    eval_batches: int = Field(default=4, ge=1)
    checkpoint_every: int = Field(default=100, ge=1)
    keep_checkpoints: int = Field(default=2, ge=1)
    seed: int = 0
    device: Literal["auto", "cpu", "cuda"] = "auto"
    dtype: Literal["auto", "float32", "bfloat16"] = "auto"
    compile: bool = False
    resume: bool = False
    mlflow_run_id: str | None = None
    peak_flops: float | None = Field(default=None, description="Per device; None: looked up or estimated.")


class TrainResult(BaseModel):
    steps: int
    resumed_from: int | None
    tokens: int
    parameters: int
    train_loss: float
    val_loss: float
    val_perplexity: float
    tokens_per_s: float
    mfu: float | None
    model_dir: Path


def lr_at(step: int, config: TrainConfig) -> float:
    """Linear warmup to lr, then cosine down to lr * min_lr_ratio at the last step."""
    if step < config.warmup:
        return config.lr * (step + 1) / config.warmup
    progress = (step - config.warmup) / max(1, config.steps - config.warmup)
    floor = config.lr * config.min_lr_ratio
    return floor + 0.5 * (config.lr - floor) * (1 + math.cos(math.pi * min(1.0, progress)))


class TokenData:
    """Training windows drawn from the shards by step; validation windows at fixed places."""

    def __init__(self, tokens_dir: Path, seq_len: int) -> None:
        from mlstack.pretraining.shards import VALIDATION, load_tokens

        self.seq_len = seq_len
        self.train = [load_tokens(p) for p in sorted(tokens_dir.glob("train-*.bin"))]
        self.train = [t for t in self.train if t.size > seq_len + 1]
        if not self.train:
            raise NotReady(
                f"no token shard in {tokens_dir} holds more than {seq_len + 1} tokens: tokenize first"
            )
        val = tokens_dir / f"{VALIDATION}.bin"
        self.val = load_tokens(val) if val.is_file() else None
        if self.val is None or self.val.size <= seq_len + 1:
            raise NotReady(
                f"the validation shard in {tokens_dir} has fewer than {seq_len + 2} tokens: add documents,"
                " raise the validation share, or lower seq_len"
            )
        self.starts = np.cumsum([0] + [t.size - seq_len - 1 for t in self.train])

    def global_batch(self, seed: int, step: int, rows: int) -> np.ndarray:
        picks = np.random.default_rng([seed, step]).integers(0, self.starts[-1], size=rows)
        shard = np.searchsorted(self.starts, picks, side="right") - 1
        return np.stack(
            [
                self.train[s][o : o + self.seq_len + 1]
                for s, o in zip(shard, picks - self.starts[shard], strict=True)
            ]
        ).astype(np.int64)

    def validation(self, rows: int) -> np.ndarray:
        offsets = np.linspace(0, self.val.size - self.seq_len - 1, rows).astype(np.int64)
        return np.stack([self.val[o : o + self.seq_len + 1] for o in offsets]).astype(np.int64)


def flops_per_token(model: Any, seq_len: int) -> float:
    """6N for the weights plus the attention scores (nanoGPT's, after the PaLM paper)."""
    c = model.config
    return 6 * count_parameters(model) + 12 * c.num_hidden_layers * c.hidden_size * seq_len


def peak_flops(device: Any, configured: float | None) -> tuple[float, str]:
    """The device's peak FLOP/s and where the number comes from."""
    import torch

    if configured:
        return configured, "configured"
    if device.type == "cuda":
        name = torch.cuda.get_device_name(device)
        for key, value in PEAK_BF16.items():
            if key in name.split() or f" {key}" in name:
                return value, f"{name} dense bf16"
        return 0.0, f"{name}: unknown peak (set MLSTACK_PRETRAIN_PEAK_TFLOPS)"
    import psutil

    cores = torch.get_num_threads()
    freq = (psutil.cpu_freq().max or psutil.cpu_freq().current) if psutil.cpu_freq() else 2500.0
    return cores * freq * 1e6 * CPU_FLOP_PER_CYCLE, f"estimate: {cores} cores x {freq:.0f} MHz x 32 FLOP"


class Distributed:
    """torchrun's environment, or a single process."""

    def __init__(self, device: str) -> None:
        import torch
        import torch.distributed as dist

        self.world = int(os.environ.get("WORLD_SIZE", "1"))
        self.rank = int(os.environ.get("RANK", "0"))
        local = int(os.environ.get("LOCAL_RANK", "0"))
        cuda = device == "cuda" or (device == "auto" and torch.cuda.is_available())
        self.device = torch.device(f"cuda:{local}" if cuda else "cpu")
        if cuda:
            torch.cuda.set_device(self.device)
        if self.world > 1 and not dist.is_initialized():
            dist.init_process_group("nccl" if cuda else "gloo")

    @property
    def main(self) -> bool:
        return self.rank == 0

    def mean(self, value: float) -> float:
        if self.world == 1:
            return value
        import torch
        import torch.distributed as dist

        tensor = torch.tensor([value], dtype=torch.float64, device=self.device)
        dist.all_reduce(tensor)
        return float(tensor.item()) / self.world

    def barrier(self) -> None:
        if self.world > 1:
            import torch.distributed as dist

            dist.barrier()

    def close(self) -> None:
        import torch.distributed as dist

        if dist.is_initialized():
            dist.destroy_process_group()


def _optimizer(model: Any, config: TrainConfig, device: Any) -> Any:
    import torch

    decay = [p for p in model.parameters() if p.dim() >= 2]
    no_decay = [p for p in model.parameters() if p.dim() < 2]
    groups = [
        {"params": decay, "weight_decay": config.weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]
    return torch.optim.AdamW(groups, lr=config.lr, betas=(0.9, 0.95), fused=device.type == "cuda")


def _special_ids(tokenizer: Any) -> dict[str, int | None]:
    return {
        "bos_token_id": tokenizer.bos_token_id,
        "eos_token_id": tokenizer.eos_token_id,
        "pad_token_id": tokenizer.pad_token_id,
    }


def evaluate_loss(
    model: Any, data: TokenData, rows: int, micro_batch: int, device: Any, autocast: Any
) -> float:
    """Mean next-token loss over the fixed validation windows."""
    import torch

    model.eval()
    windows = torch.from_numpy(data.validation(rows))
    losses = []
    with torch.no_grad():
        for batch in windows.split(micro_batch):
            batch = batch.to(device)
            with autocast():
                logits = model(input_ids=batch[:, :-1]).logits
            losses.append(
                torch.nn.functional.cross_entropy(logits.float().flatten(0, 1), batch[:, 1:].flatten())
            )
    model.train()
    return float(torch.stack(losses).mean())


class Log:
    """Rank 0's record of the run: metrics.jsonl, MLflow, and the progress bar."""

    def __init__(self, config: TrainConfig, main: bool, start: int) -> None:
        self.path = config.run_dir / "metrics.jsonl"
        self.main = main
        self.run_id = config.mlflow_run_id
        self.bar: progress.Bar | progress.LogBar | None = None
        if not main:
            return
        # A resumed run continues the curve: what the killed run logged past its checkpoint goes.
        if self.path.is_file():
            kept = [line for line in self.path.read_text().splitlines() if json.loads(line)["step"] <= start]
            self.path.write_text("".join(f"{line}\n" for line in kept))
        self.bar = progress.open_bar("pretraining", config.steps, start)

    def step(self, step: int, metrics: dict[str, float]) -> None:
        if not self.main:
            return
        with self.path.open("a") as f:
            f.write(json.dumps({"step": step, **metrics}) + "\n")
        if self.run_id:
            from mlflow import MlflowClient
            from mlflow.entities import Metric

            now = int(time.time() * 1000)
            batch = [Metric(k, float(v), now, step) for k, v in metrics.items() if v is not None]
            MlflowClient().log_batch(self.run_id, metrics=batch, synchronous=False)
        if self.bar is not None:
            self.bar.update(completed=step, note=f"loss {metrics.get('loss', 0.0):.3f}")

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def train(config: TrainConfig) -> TrainResult:
    import torch
    from torch.nn.parallel import DistributedDataParallel
    from transformers import AutoTokenizer

    dist = Distributed(config.device)
    device = dist.device
    bf16 = config.dtype == "bfloat16" or (config.dtype == "auto" and device.type == "cuda")
    autocast = (lambda: torch.autocast(device.type, dtype=torch.bfloat16)) if bf16 else nullcontext
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True
    tokenizer = AutoTokenizer.from_pretrained(config.tokenizer_dir)
    data = TokenData(config.tokens_dir, config.seq_len)
    model = build_model(config.init, config.shape, len(tokenizer), _special_ids(tokenizer), config.seed)
    if config.seq_len > model.config.max_position_embeddings:
        raise InputError(
            f"seq_len {config.seq_len} exceeds the model's context {model.config.max_position_embeddings}"
        )
    model.to(device).train()
    optimizer = _optimizer(model, config, device)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: lr_at(step, config) / config.lr)
    folder = config.run_dir / "checkpoints"
    start, resumed_from = 0, None
    if config.resume and (last := checkpoint.latest(folder)) is not None:
        state = checkpoint.load(last)
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        checkpoint.restore_rng(state["rng"])
        start = resumed_from = state["step"]
    elif not config.resume and checkpoint.latest(folder) is not None and dist.main:
        for old in checkpoint.checkpoints(folder):  # a fresh run does not mix with an old one
            old.unlink()
    trained = torch.compile(model) if config.compile else model
    if dist.world > 1:
        trained = DistributedDataParallel(
            trained, device_ids=[device.index] if device.type == "cuda" else None
        )
    rows = config.micro_batch * config.accumulation * dist.world
    tokens_per_step = rows * config.seq_len
    peak, _ = peak_flops(device, config.peak_flops)
    flops = flops_per_token(model, config.seq_len)
    log = Log(config, dist.main, start)
    config.run_dir.mkdir(parents=True, exist_ok=True)
    loss_value, val_loss = float("nan"), float("nan")
    tick, timed_tokens, timed_s = time.perf_counter(), 0, 0.0
    for step in range(start, config.steps):
        batch = torch.from_numpy(data.global_batch(config.seed, step, rows)).to(device)
        total = 0.0
        for micro in range(config.accumulation):
            row = (micro * dist.world + dist.rank) * config.micro_batch
            part = batch[row : row + config.micro_batch]
            sync = micro == config.accumulation - 1 or dist.world == 1
            with nullcontext() if sync else trained.no_sync(), autocast():
                logits = trained(input_ids=part[:, :-1]).logits
                loss = torch.nn.functional.cross_entropy(logits.float().flatten(0, 1), part[:, 1:].flatten())
            (loss / config.accumulation).backward()
            total += float(loss.detach()) / config.accumulation
        norm = torch.nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad(set_to_none=True)
        if device.type == "cuda":
            torch.cuda.synchronize()
        now = time.perf_counter()
        step_s, tick = now - tick, now
        if step > start:  # the first step compiles and warms caches: not a fair sample
            timed_tokens, timed_s = timed_tokens + tokens_per_step, timed_s + step_s
        loss_value = dist.mean(total)
        done = step + 1
        # Until a fair sample exists, the first step's own rate.
        tokens_per_s = timed_tokens / timed_s if timed_s else tokens_per_step / max(step_s, 1e-9)
        metrics = {
            "loss": loss_value,
            "lr": scheduler.get_last_lr()[0],
            "grad_norm": float(norm),
            "tokens_per_s": tokens_per_s,
            "mfu": tokens_per_s * flops / dist.world / peak if peak else None,
        }
        if done % config.eval_every == 0 or done == config.steps:
            val_loss = evaluate_loss(
                # The same windows for any process count: eval_batches global micro batches.
                model,
                data,
                config.eval_batches * config.micro_batch * dist.world,
                config.micro_batch,
                device,
                autocast,
            )
            metrics |= {"val_loss": val_loss, "val_perplexity": math.exp(min(val_loss, 50))}
        log.step(done, metrics)
        if (done % config.checkpoint_every == 0 or done == config.steps) and dist.main:
            state = {
                "model": model.state_dict(),
                "optimizer": optimizer.state_dict(),
                "scheduler": scheduler.state_dict(),
            }
            checkpoint.save(
                folder, done, state | {"config": config.model_dump(mode="json")}, config.keep_checkpoints
            )
        dist.barrier()
    log.close()
    model_dir = config.run_dir / "model"
    if dist.main:
        card = {"init": config.init, "parameters": count_parameters(model), "steps": config.steps}
        save_model(model, tokenizer, model_dir, card | {"tokens": config.steps * tokens_per_step})
    dist.barrier()
    dist.close()
    tokens_per_s = timed_tokens / timed_s if timed_s else 0.0
    return TrainResult(
        steps=config.steps,
        resumed_from=resumed_from,
        tokens=config.steps * tokens_per_step,
        parameters=count_parameters(model),
        train_loss=loss_value,
        val_loss=val_loss,
        val_perplexity=math.exp(min(val_loss, 50)),
        tokens_per_s=tokens_per_s,
        mfu=tokens_per_s * flops / dist.world / peak if peak else None,
        model_dir=model_dir,
    )


def save_model(model: Any, tokenizer: Any, out: Path, card: dict[str, Any]) -> None:
    """A Hugging Face directory (config, safetensors, tokenizer, our model card), swapped in whole."""
    import transformers

    from mlstack.llm.local_server import MODEL_CARD

    transformers.logging.disable_progress_bar()
    with atomic_dir(out) as tmp:
        model.save_pretrained(tmp, safe_serialization=True)
        tokenizer.save_pretrained(tmp)
        # A base model: it continues code, it was never taught to follow a chat (see local_server).
        # The card may override these.
        (tmp / MODEL_CARD).write_text(
            json.dumps({"trained": True, "chat": False, "kind": "pretrained", **card}, indent=2)
        )


def main(argv: list[str] | None = None) -> None:
    import argparse

    parser = argparse.ArgumentParser(description="Pretrain a causal LM on token shards (see the module doc).")
    parser.add_argument("--config", type=Path, required=True, help="a TrainConfig as JSON")
    parser.add_argument("--result", type=Path, help="where rank 0 writes the TrainResult as JSON")
    args = parser.parse_args(argv)
    config = TrainConfig.model_validate_json(args.config.read_text())
    result = train(config)
    if args.result and int(os.environ.get("RANK", "0")) == 0:
        args.result.write_text(result.model_dump_json(indent=2))


if __name__ == "__main__":
    main()
