"""A small decoder-only model with freshly initialised weights, saved as a Hugging Face directory.

It stands in wherever a local model is needed before the pretraining flow has trained one: the
directory loads with `AutoModelForCausalLM`, serves through `mlstack serve-llm`, and answers with
tokens that mean nothing. Its model card beside the weights says so, and readers check it
(`mlstack.llm.local_server.is_untrained`).
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path

from mlstack.llm.local_server import MODEL_CARD
from models.lm.tokenizer import project_corpus, train_tokenizer


@dataclass(frozen=True)
class LMShape:
    vocab_size: int = 4096
    hidden_size: int = 256
    layers: int = 4
    heads: int = 4
    context: int = 1024


def init_model(out_dir: Path, shape: LMShape = LMShape(), seed: int = 0) -> Path:
    """Train a tokenizer on the project's text, build a Llama-style model on it, save both."""
    import torch
    import transformers
    from transformers import LlamaConfig, LlamaForCausalLM

    transformers.logging.disable_progress_bar()
    tokenizer = train_tokenizer(project_corpus(), shape.vocab_size)
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=shape.hidden_size,
        intermediate_size=shape.hidden_size * 8 // 3,
        num_hidden_layers=shape.layers,
        num_attention_heads=shape.heads,
        num_key_value_heads=shape.heads,
        max_position_embeddings=shape.context,
        tie_word_embeddings=True,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    torch.manual_seed(seed)
    model = LlamaForCausalLM(config)
    if out_dir.exists():
        raise FileExistsError(f"{out_dir} exists: remove it to initialise a new model there")
    # Write beside the target and rename, so a crash never leaves a half-saved model behind.
    tmp = out_dir.with_name(f".{out_dir.name}.{os.getpid()}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    try:
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        (tmp / MODEL_CARD).write_text(json.dumps({"trained": False, "seed": seed, **asdict(shape)}, indent=2))
        tmp.rename(out_dir)  # fails if another process got there first: theirs is as good
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
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
