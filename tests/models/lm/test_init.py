"""Model initialisation: the presets, each init mode, and the untrained stand-in (made once, marked
as untrained, loadable as a Hugging Face model)."""

from __future__ import annotations

from pathlib import Path

import pytest

from mlstack.errors import InputError
from mlstack.llm.local_server import is_untrained
from models.lm.init import LMShape, ensure_untrained, init_model

SMALL_SHAPE = LMShape(vocab_size=400, hidden_size=32, layers=1, heads=2, context=64)


def test_the_stand_in_is_created_once_and_says_so(tmp_path: Path) -> None:
    path = tmp_path / "models" / "untrained-lm"
    assert ensure_untrained(path) == path and is_untrained(path)
    made = (path / "config.json").stat().st_mtime_ns
    assert ensure_untrained(path) == path  # reused, not rebuilt
    assert (path / "config.json").stat().st_mtime_ns == made
    with pytest.raises(FileExistsError):
        init_model(path, SMALL_SHAPE)
    assert not list(path.parent.glob(".*.tmp"))  # no half-saved copy left beside it


def test_the_stand_in_loads_with_transformers(tmp_path: Path) -> None:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    path = init_model(tmp_path / "lm", SMALL_SHAPE, seed=3)
    model = AutoModelForCausalLM.from_pretrained(path)
    tokenizer = AutoTokenizer.from_pretrained(path)
    assert model.config.max_position_embeddings == 64 and model.config.vocab_size == len(tokenizer)
    assert not is_untrained(tmp_path)  # no model card: not known to be untrained


def test_the_presets_have_their_documented_sizes() -> None:
    from models.lm.init import build_model, count_parameters
    from models.lm.presets import PRESETS

    tiny = build_model("random", PRESETS["tiny"].shape, 2048, {}, seed=0)
    assert 1.0e6 < count_parameters(tiny) < 1.1e6
    small = build_model("random", PRESETS["small"].shape, 32768, {}, seed=0)
    assert 123e6 < count_parameters(small) < 126e6  # GPT-2 small's 124M
    assert small.config._attn_implementation == "sdpa"


def test_layer_plans_follow_their_documented_rules() -> None:
    from models.lm.init import downscale_layers, upscale_layers

    assert upscale_layers(4, 8) == [0, 1, 2, 3, 0, 1, 2, 3]
    assert upscale_layers(4, 6) == [0, 1, 2, 1, 2, 3]  # SOLAR: each copy loses layers at the seam
    assert downscale_layers(8, 4) == [0, 2, 5, 7]  # first and last always kept
    with pytest.raises(InputError, match=r"target depth in 5\.\.8"):
        upscale_layers(4, 9)


def _save_source(tmp_path: Path) -> Path:
    from models.lm.init import LMShape, build_model
    from models.lm.tokenizer import train_tokenizer

    tokenizer = train_tokenizer([f"def f{i}(x):\n    return x\n" for i in range(50)], 300)
    model = build_model(
        "random", LMShape(hidden_size=32, layers=4, heads=2, context=32), len(tokenizer), {}, 1
    )
    model.save_pretrained(tmp_path / "source")
    tokenizer.save_pretrained(tmp_path / "source")
    return tmp_path / "source"


@pytest.mark.parametrize(
    ("mode", "layers", "plan"),
    [("from", 4, [0, 1, 2, 3]), ("upscale", 6, [0, 1, 2, 1, 2, 3]), ("downscale", 2, [0, 3])],
)
def test_each_init_mode_copies_its_layers_and_the_model_trains(
    tmp_path: Path, mode: str, layers: int, plan: list[int]
) -> None:
    import torch
    from transformers import AutoModelForCausalLM

    from models.lm.init import LMShape, build_model

    source_dir = _save_source(tmp_path)
    source = AutoModelForCausalLM.from_pretrained(source_dir)
    model = build_model(f"{mode}:{source_dir}", LMShape(layers=layers), 0, {}, seed=0)
    assert model.config.num_hidden_layers == layers
    for new, old in enumerate(plan):
        assert torch.equal(
            model.model.layers[new].mlp.up_proj.weight, source.model.layers[old].mlp.up_proj.weight
        )
    assert torch.equal(model.model.embed_tokens.weight, source.model.embed_tokens.weight)
    model.save_pretrained(tmp_path / "out")
    model = AutoModelForCausalLM.from_pretrained(tmp_path / "out")  # it loads
    batch = torch.randint(0, 300, (4, 16))
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2)
    first = None
    for _ in range(5):  # and it trains
        loss = model(input_ids=batch, labels=batch).loss
        first = first if first is not None else float(loss)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
    assert float(loss) < first


def test_a_bad_init_says_what_it_takes(tmp_path: Path) -> None:
    from models.lm.init import parse_init

    with pytest.raises(InputError, match="expected random, from:DIR, upscale:DIR or downscale:DIR"):
        parse_init("sideways:x")
    with pytest.raises(InputError, match="is not a Hugging Face model directory"):
        parse_init(f"from:{tmp_path}")
