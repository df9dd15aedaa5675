"""Decoder-only models to train: presets of their shape, and the ways to start one.

A model is Llama-style (RMSNorm, rotary positions, SwiGLU, SDPA attention), built from a
`transformers` config so every tool that reads Hugging Face directories reads ours. It starts:
- `random`: fresh weights for a preset's shape;
- `from:DIR`: any local Hugging Face causal LM, as it is;
- `upscale:DIR`: depth up-scaling (SOLAR, Kim et al. 2023): two copies of DIR's N layers are
  stacked, the first copy without its last layers and the second without its first, to the
  target depth T (N < T <= 2N; default 2N). Layer j < T/2 is source layer j; the rest are the
  source's last T - T/2 layers, in order;
- `downscale:DIR`: T evenly spaced layers of DIR (T < N; default N/2), always the first and the
  last, since those carry the embedding-facing and the output-facing work.

Every model starts from the same seeded state, so a run can be repeated.

`init_model` makes the untrained stand-in: a `random` model on a tokenizer trained on the
project's own text, which the local provider serves until a pretrained model exists. Its model
card beside the weights says it is untrained, and readers check it
(`mlstack.llm.local_server.is_untrained`).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from mlstack.errors import InputError
from mlstack.io import atomic_dir
from mlstack.llm.local_server import MODEL_CARD
from models.lm.tokenizer import project_corpus, train_tokenizer

INIT_MODES = ("random", "from", "upscale", "downscale")


@dataclass(frozen=True)
class LMShape:
    vocab_size: int = 4096
    hidden_size: int = 256
    layers: int = 4
    heads: int = 4
    context: int = 1024
    intermediate_size: int | None = None  # None: 8/3 of hidden_size, as in Llama

    def config(self, vocab_size: int, special: dict[str, int | None]) -> Any:
        from transformers import LlamaConfig

        config = LlamaConfig(
            vocab_size=vocab_size,
            hidden_size=self.hidden_size,
            intermediate_size=self.intermediate_size or self.hidden_size * 8 // 3,
            num_hidden_layers=self.layers,
            num_attention_heads=self.heads,
            num_key_value_heads=self.heads,
            max_position_embeddings=self.context,
            tie_word_embeddings=True,
            **special,
        )
        config._attn_implementation = "sdpa"
        return config


def parse_init(init: str) -> tuple[str, Path | None]:
    mode, _, location = init.partition(":")
    if mode not in INIT_MODES or (mode == "random") != (not location):
        raise InputError(f"--init {init!r}: expected random, from:DIR, upscale:DIR or downscale:DIR")
    if mode == "random":
        return mode, None
    path = Path(location).expanduser().resolve()
    if not (path / "config.json").is_file():
        raise InputError(f"--init {init!r}: {path} is not a Hugging Face model directory (no config.json)")
    return mode, path


def upscale_layers(source: int, target: int) -> list[int]:
    if not source < target <= 2 * source:
        raise InputError(
            f"upscaling {source} layers needs a target depth in {source + 1}..{2 * source}, not {target}"
        )
    first = target // 2
    return list(range(first)) + list(range(source - (target - first), source))


def downscale_layers(source: int, target: int) -> list[int]:
    if not 1 <= target < source:
        raise InputError(f"downscaling {source} layers needs a target depth in 1..{source - 1}, not {target}")
    if target == 1:
        return [source - 1]
    return [round(i * (source - 1) / (target - 1)) for i in range(target)]


def build_model(
    init: str, shape: LMShape, vocab_size: int, special: dict[str, int | None], seed: int = 0
) -> Any:
    """The model to train. `shape` and the tokenizer's `vocab_size` and special ids shape a
    random model; for the other modes the source directory decides all but the depth
    (shape.layers, or the default above, when it differs from the source's)."""
    import torch
    from transformers import AutoModelForCausalLM, LlamaForCausalLM

    torch.manual_seed(seed)
    mode, path = parse_init(init)
    if mode == "random":
        return LlamaForCausalLM(shape.config(vocab_size, special))
    source = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32)
    if mode == "from":
        return source
    n = source.config.num_hidden_layers
    target = shape.layers if shape.layers != n else (2 * n if mode == "upscale" else max(1, n // 2))
    plan = upscale_layers(n, target) if mode == "upscale" else downscale_layers(n, target)
    config = source.config.__class__.from_dict({**source.config.to_dict(), "num_hidden_layers": target})
    model = source.__class__(config)
    state = {k: v for k, v in source.state_dict().items() if ".layers." not in k}
    for new, old in enumerate(plan):
        prefix = f"model.layers.{old}."
        state |= {
            f"model.layers.{new}.{k.removeprefix(prefix)}": v.clone()
            for k, v in source.state_dict().items()
            if k.startswith(prefix)
        }
    model.load_state_dict(state, strict=False)  # strict would trip on tied lm_head weights
    return model


def count_parameters(model: Any) -> int:
    """Distinct parameters: a tied embedding and output head count once."""
    return sum(p.numel() for p in {id(p): p for p in model.parameters()}.values())


def init_model(out_dir: Path, shape: LMShape = LMShape(), seed: int = 0) -> Path:
    """Train a tokenizer on the project's text, build a random model on it, save both."""
    import transformers

    transformers.logging.disable_progress_bar()
    tokenizer = train_tokenizer(project_corpus(), shape.vocab_size)
    special = {
        "bos_token_id": tokenizer.bos_token_id,
        "eos_token_id": tokenizer.eos_token_id,
        "pad_token_id": tokenizer.pad_token_id,
    }
    model = build_model("random", replace(shape, vocab_size=len(tokenizer)), len(tokenizer), special, seed)
    if out_dir.exists():
        raise FileExistsError(f"{out_dir} exists: remove it to initialise a new model there")
    # If another process got there first, theirs is as good: ours is dropped.
    with atomic_dir(out_dir, replace=False) as tmp:
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        card = {"trained": False, "chat": False, "seed": seed, **asdict(shape)}
        (tmp / MODEL_CARD).write_text(json.dumps(card, indent=2))
    return out_dir


def ensure_untrained(out_dir: Path) -> Path:
    """The untrained stand-in at `out_dir`: made now unless a model is there already."""
    if (out_dir / "config.json").is_file():
        return out_dir
    try:
        return init_model(out_dir)
    except OSError:
        if (out_dir / "config.json").is_file():  # two servers started at once; one made it
            return out_dir
        raise
