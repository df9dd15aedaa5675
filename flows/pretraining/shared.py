"""What the pretraining flows share: the experiment, the preset and run fields, and where a run's
files live."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import AfterValidator, Field

from mlstack.pretraining import shards
from mlstack.settings import get_settings
from models.lm.presets import check_overrides

EXPERIMENT = "pretraining"

PRESET = Field(
    default=None, description="tiny (CPU, minutes) or small (124M, a GPU). Default: MLSTACK_PRETRAIN_PRESET."
)

# Checked when the parameters are: a key the presets do not know is refused, naming it, whether it
# came from the CLI, the UI's form or a deployment's parameters.
Overrides = Annotated[dict[str, Any], AfterValidator(check_overrides)]

RUN = Field(
    default=None,
    pattern=r"^[A-Za-z0-9_.-]+$",
    description="The run's name (its folder). Default: the preset.",
)


def layout_of() -> shards.Layout:
    return shards.Layout(get_settings().pretrain_dir)


def preset_of(preset: str | None) -> str:
    return preset or get_settings().pretrain.preset
