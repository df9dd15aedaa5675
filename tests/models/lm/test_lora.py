"""LoRA on a tiny local model: the loss counts the assistant's tokens only, training lowers the
validation loss, the base model's files and weights are untouched, and the merged model answers
as the adapter over its base does."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from mlstack.fine_tuning import SAMPLE_DUMP, chat, pairs, split
from mlstack.sources import github
from models.lm import lora

SYSTEM = "Answer like a maintainer."


def digest(folder: Path) -> dict[str, str]:
    return {
        p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir()) if p.is_file()
    }


@pytest.fixture(scope="module")
def examples() -> dict[str, list[dict]]:
    found = pairs.extract(github.dump_threads(SAMPLE_DUMP).threads, 40).pairs
    return {side: [chat.example(p, SYSTEM) for p in ps] for side, ps in split.split(found, 0.2).items()}


def test_only_assistant_tokens_are_labelled(tiny_lm: Path) -> None:
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_lm)
    messages = [
        {"role": "system", "content": SYSTEM},
        {"role": "user", "content": "How do I run it?"},
        {"role": "assistant", "content": "A draft nobody should learn.", "weight": 0},
        {"role": "user", "content": "And properly?"},
        {"role": "assistant", "content": "Run make demo."},
    ]
    ids, labels = lora.encode(tokenizer, messages, 512)
    assert len(ids) == len(labels)
    learned = tokenizer.decode([i for i, label in zip(ids, labels, strict=True) if label != lora.IGNORE])
    assert learned == "Run make demo.<|im_end|>\n"
    whole = tokenizer.apply_chat_template(
        [{"role": m["role"], "content": m["content"]} for m in messages],
        chat_template=lora.chat_template(tokenizer),
        tokenize=False,
    )
    assert tokenizer.decode(ids) == whole  # the pieces add up to the template's text
    short_ids, short_labels = lora.encode(tokenizer, messages, 10)
    assert (short_ids, short_labels) == (ids[:10], labels[:10])


def test_lora_lowers_validation_loss_and_leaves_the_base_untouched(
    tiny_lm: Path, examples: dict[str, list[dict]], tmp_path: Path
) -> None:
    import torch

    before = digest(tiny_lm)
    config = lora.FinetuneConfig(
        base_dir=tiny_lm, out_dir=tmp_path / "run", steps=30, lr=5e-3, r=8, merge=True, progress=False
    )
    result = lora.train(config, examples["train"], examples["validation"])
    assert result.val_loss_after < result.val_loss_before
    assert 0 < result.trainable_fraction < 1 and result.examples == len(examples["train"])
    assert result.memory_bytes["gradients"] == 4 * result.trainable_parameters  # only the adapters'
    assert digest(tiny_lm) == before
    assert result.adapter_dir is not None and (result.adapter_dir / lora.ADAPTER_CONFIG).is_file()
    assert not (result.adapter_dir / "model.safetensors").exists()  # the adapter alone

    base, tokenizer = lora.load(tiny_lm)
    adapted, _ = lora.load(result.adapter_dir)
    merged, _ = lora.load(result.merged_dir)
    # The adapter's base weights are the base's own; only the LoRA matrices differ.
    adapted_base = adapted.get_base_model().state_dict()
    for name, tensor in base.state_dict().items():
        key = next(k for k in adapted_base if k.replace(".base_layer", "") == name)
        assert torch.equal(adapted_base[key], tensor), name
    ids = torch.tensor([tokenizer.encode("How do I point mlstack at our own Postgres?")])
    with torch.no_grad():
        assert torch.allclose(adapted(input_ids=ids).logits, merged(input_ids=ids).logits, atol=1e-4)
        assert not torch.allclose(base(input_ids=ids).logits, merged(input_ids=ids).logits, atol=1e-4)
    measured = lora.assistant_loss(adapted, tokenizer, examples["validation"])
    assert measured == pytest.approx(result.val_loss_after, rel=1e-5)

    # What the OpenAI-compatible server loads: the adapter over its base answers as the merged model.
    from models.lm.generate import GenerationParams, LocalLM

    question = [{"role": "user", "content": "How do I point mlstack at our own Postgres?"}]
    greedy = GenerationParams(max_tokens=8, temperature=0.0)
    served = [
        LocalLM(path).complete(question, greedy).text for path in (result.adapter_dir, result.merged_dir)
    ]
    assert served[0] == served[1]


def test_full_fine_tuning_trains_every_weight(
    tiny_lm: Path, examples: dict[str, list[dict]], tmp_path: Path
) -> None:
    config = lora.FinetuneConfig(
        base_dir=tiny_lm, out_dir=tmp_path / "full", method="full", steps=3, progress=False
    )
    result = lora.train(config, examples["train"][:4], examples["validation"][:2])
    assert result.trainable_fraction == 1.0 and result.adapter_dir is None
    held = result.memory_bytes
    assert held["gradients"] == held["weights"] == 4 * result.total_parameters  # fp32
    assert held["optimizer"] >= 2 * held["weights"] and held["activations"] > 0  # AdamW's two moments
    assert result.merged_dir is not None and (result.merged_dir / "config.json").is_file()


def test_rouge_l_scores_overlap() -> None:
    assert lora.rouge_l(["run make demo"], ["run make demo"]) == pytest.approx(1.0)
    assert lora.rouge_l(["nothing alike"], ["run make demo"]) == 0.0
    assert 0 < lora.rouge_l(["please run make demo now"], ["run make demo"]) < 1
