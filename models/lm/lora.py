"""Supervised fine-tuning of a local causal LM on chat JSONL: LoRA adapters (peft), or every
weight (the benchmark's baseline).

Each example goes through the tokenizer's chat template (ours, ChatML, when the model has none),
and the loss counts only the assistant's tokens: its reply and the end-of-turn marker, never the
system prompt, the question, or the `<|im_start|>assistant` header the model is prompted with.
An assistant turn with `"weight": 0` is context, not a target, as in OpenAI's format.

LoRA freezes the base model, so its weights are untouched: the adapter is saved alone (a few
hundred kB), and merged into a full model directory only when asked. The training loop is a
plain one, like pretraining's (nanoGPT's habit): AdamW, a cosine schedule, clipping, a seed.
"""

from __future__ import annotations

import json
import math
import random
import time
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field

from models.lm.tokenizer import DEFAULT_CHAT_TEMPLATE

IGNORE = -100
ADAPTER_CONFIG = "adapter_config.json"


class FinetuneConfig(BaseModel):
    base_dir: Path = Field(description="A Hugging Face causal-LM directory: the model to adapt.")
    out_dir: Path = Field(description="Where adapter/ (and merged/) go.")
    method: Literal["lora", "full"] = "lora"
    r: int = Field(default=8, ge=1)
    alpha: int = Field(default=16, ge=1)
    dropout: float = Field(default=0.05, ge=0, lt=1)
    target_modules: str | list[str] = "all-linear"
    lr: float = Field(default=2e-3, gt=0)
    steps: int = Field(default=60, ge=1)
    batch_size: int = Field(default=4, ge=1)
    max_len: int | None = Field(default=None, ge=16, description="Default: the model's context.")
    seed: int = 0
    merge: bool = Field(default=False, description="Also save the adapter merged into a full model.")
    device: str = Field(default="auto", description="auto (CUDA when there is one), cpu or cuda.")
    progress: bool = True

    @property
    def resolved_device(self) -> str:
        import torch

        return ("cuda" if torch.cuda.is_available() else "cpu") if self.device == "auto" else self.device


class FinetuneResult(BaseModel):
    adapter_dir: Path | None
    merged_dir: Path | None
    method: str
    steps: int
    examples: int
    trainable_parameters: int
    total_parameters: int
    trainable_fraction: float
    train_loss: float
    val_loss_before: float
    val_loss_after: float
    seconds: float
    step_seconds: float
    memory_bytes: dict[str, int] = Field(
        description="What training held at its last step, measured from the live tensors: weights,"
        " gradients, optimizer state, and the activations kept for the backward pass."
    )


def chat_template(tokenizer: Any) -> str:
    return getattr(tokenizer, "chat_template", None) or DEFAULT_CHAT_TEMPLATE


def token_counter(backend: str, base: Path | None) -> Any:
    """The tokens of the model that will train, as `mlstack.fine_tuning.chat` counts them: OpenAI's
    encoding for the openai backend, the base's own tokenizer and chat template for a local base,
    and an estimate when there is neither. The CLI's `validate` and the dataset flow both ask here."""
    from mlstack.fine_tuning import chat

    if backend == "openai":
        return chat.tiktoken_counter() or chat.estimate_counter()
    if base is None:
        return chat.estimate_counter()
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(base)
    return chat.template_counter(tokenizer, chat_template(tokenizer), f"{base.name} tokenizer")


def encode(tokenizer: Any, messages: list[dict[str, Any]], max_len: int) -> tuple[list[int], list[int]]:
    """Token ids and labels: the assistant turns' tokens labelled, everything else IGNORE."""
    template = chat_template(tokenizer)

    def render(upto: list[dict[str, Any]], prompt: bool = False) -> str:
        plain = [{"role": m["role"], "content": m.get("content") or ""} for m in upto]
        if not plain:
            return ""
        return tokenizer.apply_chat_template(
            plain, chat_template=template, tokenize=False, add_generation_prompt=prompt
        )

    ids: list[int] = []
    labels: list[int] = []
    done = ""
    for i, message in enumerate(messages):
        learn = message["role"] == "assistant" and message.get("weight", 1) != 0
        if learn:
            header = render(messages[:i], prompt=True)[len(done) :]
            part = tokenizer.encode(header, add_special_tokens=False)
            ids += part
            labels += [IGNORE] * len(part)
            done += header
        text = render(messages[: i + 1])
        part = tokenizer.encode(text[len(done) :], add_special_tokens=False)
        ids += part
        labels += part if learn else [IGNORE] * len(part)
        done = text
    return ids[:max_len], labels[:max_len]


def batches(encoded: list[tuple[list[int], list[int]]], size: int, pad_id: int) -> list[tuple[Any, Any, Any]]:
    """Padded (input_ids, attention_mask, labels) tensors, in order."""
    import torch

    out = []
    for start in range(0, len(encoded), size):
        group = encoded[start : start + size]
        width = max(len(ids) for ids, _ in group)
        ids = torch.full((len(group), width), pad_id)
        mask = torch.zeros((len(group), width), dtype=torch.long)
        labels = torch.full((len(group), width), IGNORE)
        for row, (i, lab) in enumerate(group):
            ids[row, : len(i)] = torch.tensor(i)
            mask[row, : len(i)] = 1
            labels[row, : len(lab)] = torch.tensor(lab)
        out.append((ids, mask, labels))
    return out


def assistant_loss(model: Any, tokenizer: Any, examples: list[dict[str, Any]], batch_size: int = 8) -> float:
    """Mean cross-entropy per assistant token over the examples."""
    import torch

    max_len = context_of(model)
    encoded = [encode(tokenizer, e["messages"], max_len) for e in examples]
    total, count = 0.0, 0
    device = next(model.parameters()).device
    model.eval()
    with torch.no_grad():
        for ids, mask, labels in batches(encoded, batch_size, pad_of(tokenizer)):
            ids, mask, labels = ids.to(device), mask.to(device), labels.to(device)
            with _autocast(device.type):
                logits = model(input_ids=ids, attention_mask=mask).logits[:, :-1]
            target = labels[:, 1:]
            loss = torch.nn.functional.cross_entropy(
                logits.flatten(0, 1).float(), target.flatten(), ignore_index=IGNORE, reduction="sum"
            )
            total += float(loss)
            count += int((target != IGNORE).sum())
    return total / max(count, 1)


def _counting(saved: dict[int, int]) -> Any:
    """A pack hook that records each saved tensor's storage once (views share one)."""

    def pack(tensor: Any) -> Any:
        storage = tensor.untyped_storage()
        saved[storage.data_ptr()] = storage.nbytes()
        return tensor

    return pack


def _held(model: Any, optimizer: Any, saved: dict[int, int]) -> dict[str, int]:
    import torch

    def size(tensors: Any) -> int:
        return sum(t.numel() * t.element_size() for t in tensors if torch.is_tensor(t))

    parameters = list(model.parameters())
    # Autograd saves the weights too (for the input's gradient): they are counted once, as weights.
    weights = {p.untyped_storage().data_ptr() for p in parameters}
    activations = sum(nbytes for ptr, nbytes in saved.items() if ptr not in weights)
    state = [v for group in optimizer.state.values() for v in group.values()]
    return {
        "weights": size(parameters),
        "gradients": size(p.grad for p in parameters if p.grad is not None),
        "optimizer": size(state),
        "activations": activations,
    }


def _autocast(device_type: str) -> Any:
    """bf16 autocast on a GPU (as pretraining trains); a no-op on a CPU."""
    import torch

    return torch.autocast(device_type, dtype=torch.bfloat16, enabled=device_type == "cuda")


def context_of(model: Any) -> int:
    config = model.config
    return int(getattr(config, "max_position_embeddings", None) or getattr(config, "n_positions", 1024))


def pad_of(tokenizer: Any) -> int:
    return tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id


def is_adapter(path: Path) -> bool:
    return (path / ADAPTER_CONFIG).is_file()


def load(path: Path) -> tuple[Any, Any]:
    """A model directory, or a LoRA adapter directory over its base (named in its config)."""
    import torch
    import transformers
    from transformers import AutoModelForCausalLM, AutoTokenizer

    transformers.logging.disable_progress_bar()
    if is_adapter(path):
        from peft import PeftModel

        base = json.loads((path / ADAPTER_CONFIG).read_text())["base_model_name_or_path"]
        if not (Path(base) / "config.json").is_file():
            raise FileNotFoundError(
                f"{path} is a LoRA adapter over {base}, which is not on this machine: copy the base"
                " there, or serve the merged model (`mlstack finetune run --merge`)"
            )
        model = AutoModelForCausalLM.from_pretrained(base, dtype=torch.float32)
        model = PeftModel.from_pretrained(model, path).eval()
    else:
        model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32).eval()
    return model, AutoTokenizer.from_pretrained(path)


def count_parameters(model: Any) -> tuple[int, int]:
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return trainable, sum(p.numel() for p in model.parameters())


def prepare(config: FinetuneConfig) -> tuple[Any, Any]:
    """The model to train: the base with fresh LoRA adapters, or the whole base for `full`."""
    import torch
    import transformers
    from transformers import AutoModelForCausalLM, AutoTokenizer

    transformers.logging.disable_progress_bar()
    torch.manual_seed(config.seed)
    base = config.base_dir.resolve()
    tokenizer = AutoTokenizer.from_pretrained(base)
    if not getattr(tokenizer, "chat_template", None):
        tokenizer.chat_template = DEFAULT_CHAT_TEMPLATE  # saved with the adapter: serving uses the same
    model = AutoModelForCausalLM.from_pretrained(base, dtype=torch.float32)
    if config.method == "lora":
        from peft import LoraConfig, get_peft_model

        lora = LoraConfig(
            r=config.r,
            lora_alpha=config.alpha,
            lora_dropout=config.dropout,
            target_modules=config.target_modules,
            task_type="CAUSAL_LM",
        )
        model = get_peft_model(model, lora)
    return model.to(config.resolved_device), tokenizer


def train(
    config: FinetuneConfig, train_examples: list[dict[str, Any]], val_examples: list[dict[str, Any]]
) -> FinetuneResult:
    import torch

    from mlstack import progress
    from models.lm.train import save_model

    if not train_examples:
        raise ValueError("no training examples")
    model, tokenizer = prepare(config)
    max_len = min(config.max_len or context_of(model), context_of(model))
    before = assistant_loss(model, tokenizer, val_examples) if val_examples else float("nan")
    encoded = [encode(tokenizer, e["messages"], max_len) for e in train_examples]
    encoded = [e for e in encoded if any(label != IGNORE for label in e[1])]  # cut before the answer
    if not encoded:
        raise ValueError(f"every example's answer starts past {max_len} tokens: raise max_len")
    trainable, total = count_parameters(model)
    device = config.resolved_device
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=config.lr, weight_decay=0.0, fused=device == "cuda")
    warmup = max(1, config.steps // 10)

    def lr_at(step: int) -> float:
        if step < warmup:
            return config.lr * (step + 1) / warmup
        progress = (step - warmup) / max(1, config.steps - warmup)
        return config.lr * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * progress)))

    rng = random.Random(config.seed)
    order: list[int] = []
    losses: list[float] = []
    started = time.perf_counter()
    model.train()
    bar = progress.open_bar("fine-tuning", config.steps) if config.progress else None
    try:
        for step in range(config.steps):
            if len(order) < config.batch_size:
                fresh = list(range(len(encoded)))
                rng.shuffle(fresh)
                order += fresh
            picked, order = order[: config.batch_size], order[config.batch_size :]
            [batch] = batches([encoded[i] for i in picked], config.batch_size, pad_of(tokenizer))
            ids, mask, labels = (t.to(device) for t in batch)
            for group in optimizer.param_groups:
                group["lr"] = lr_at(step)
            saved: dict[int, int] = {}
            with _autocast(device), torch.autograd.graph.saved_tensors_hooks(_counting(saved), lambda t: t):
                loss = model(input_ids=ids, attention_mask=mask, labels=labels).loss
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, 1.0)
            optimizer.step()
            if step == config.steps - 1:
                memory = _held(model, optimizer, saved)
            optimizer.zero_grad(set_to_none=True)
            losses.append(loss.item())
            if bar is not None:
                bar.update(completed=step + 1, note=f"loss {losses[-1]:.3f}")
    finally:
        if bar is not None:
            bar.close()
    if device == "cuda":
        torch.cuda.synchronize()
    seconds = time.perf_counter() - started
    model.eval()
    after = assistant_loss(model, tokenizer, val_examples) if val_examples else float("nan")
    from mlstack.llm.local_server import model_card

    # The base's own card (ours, when it is our pretrained model) says how far to trust the replies.
    card = {
        "chat": True,
        "kind": "fine-tuned",
        "method": config.method,
        "base": str(config.base_dir.resolve()),
        "base_card": model_card(config.base_dir),
    }
    adapter_dir = merged_dir = None
    if config.method == "lora":
        adapter_dir = config.out_dir / "adapter"
        save_model(model, tokenizer, adapter_dir, card)
        if config.merge:
            merged_dir = config.out_dir / "merged"
            save_model(model.merge_and_unload(), tokenizer, merged_dir, card)
    else:
        merged_dir = config.out_dir / "merged"
        save_model(model, tokenizer, merged_dir, card)
    tail = losses[-max(1, len(losses) // 5) :]
    return FinetuneResult(
        adapter_dir=adapter_dir,
        merged_dir=merged_dir,
        method=config.method,
        steps=config.steps,
        examples=len(encoded),
        trainable_parameters=trainable,
        total_parameters=total,
        trainable_fraction=trainable / total,
        train_loss=sum(tail) / len(tail),
        val_loss_before=before,
        val_loss_after=after,
        seconds=seconds,
        step_seconds=seconds / config.steps,
        memory_bytes=memory,
    )


def answers(
    model: Any, tokenizer: Any, examples: list[dict[str, Any]], max_new_tokens: int = 64
) -> list[str]:
    """Greedy replies to each example's conversation up to its last assistant turn."""
    import torch

    template = chat_template(tokenizer)
    end = tokenizer.convert_tokens_to_ids("<|im_end|>")
    stops = [i for i in (tokenizer.eos_token_id, end) if isinstance(i, int) and i != tokenizer.unk_token_id]
    replies = []
    with torch.no_grad():
        for e in examples:
            prompt = [m for m in e["messages"] if m["role"] != "assistant"]
            text = tokenizer.apply_chat_template(
                prompt, chat_template=template, tokenize=False, add_generation_prompt=True
            )
            ids = torch.tensor([tokenizer.encode(text, add_special_tokens=False)], device=model.device)
            room = context_of(model) - ids.shape[1]
            if room <= 0:
                replies.append("")
                continue
            out = model.generate(
                input_ids=ids,
                attention_mask=torch.ones_like(ids),
                max_new_tokens=min(max_new_tokens, room),
                do_sample=False,
                pad_token_id=pad_of(tokenizer),
                eos_token_id=stops,
            )
            replies.append(tokenizer.decode(out[0, ids.shape[1] :], skip_special_tokens=True).strip())
    return replies


def rouge_l(predictions: list[str], references: list[str]) -> float:
    """Mean ROUGE-L F1 (Google's rouge-score, stemmed)."""
    from rouge_score import rouge_scorer

    scorer = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=True)
    scores = [
        scorer.score(ref, pred)["rougeL"].fmeasure for pred, ref in zip(predictions, references, strict=True)
    ]
    return sum(scores) / len(scores) if scores else 0.0
