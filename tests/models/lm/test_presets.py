"""The pretraining presets: each one whole and valid, and overrides applied or refused by name."""

from __future__ import annotations

import pytest

from models.lm.presets import PRESETS, check_overrides, override_keys, resolve


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_each_preset_sets_only_known_values_and_reads_a_corpus(name: str) -> None:
    preset = PRESETS[name]
    assert preset.name == name and preset.purpose and preset.sources
    assert set(preset.train) <= override_keys()
    assert preset.train["seq_len"] <= preset.shape.context  # a sequence fits the positions


def test_overrides_change_the_shape_and_the_training_values_apart() -> None:
    shape, values = resolve("tiny", {"layers": 2, "lr": 0.01, "steps": 7})
    assert (shape.layers, shape.hidden_size) == (2, PRESETS["tiny"].shape.hidden_size)
    assert values["lr"] == 0.01 and values["steps"] == 7 and "layers" not in values
    assert resolve("tiny", {})[1] == PRESETS["tiny"].train


@pytest.mark.parametrize("key", ["depth", "run_dir", "shape"])
def test_an_unknown_or_fixed_key_is_refused_by_name(key: str) -> None:
    with pytest.raises(ValueError, match=rf"^{key}: not a preset value; known: .*micro_batch"):
        check_overrides({key: 1, "steps": 3})
