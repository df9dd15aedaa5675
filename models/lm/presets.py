"""The pretraining presets, one `Preset` each: the model's shape, the training values and the
corpus it reads by default, each value with its reason (as nanoGPT's `config/*.py` files read).

Every road into a run (the CLI's `--set`, the Prefect UI's form, a deployment's parameters)
resolves a preset here and checks its overrides here, so an unknown key is refused the same way
wherever it was typed, naming the key.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import Any, Literal

from models.lm.init import LMShape

PresetName = Literal["tiny", "small"]
# What an override may not change: the flow sets these from where the run lives and how it starts.
FIXED = frozenset({"run_dir", "tokens_dir", "tokenizer_dir", "init", "shape", "resume", "mlflow_run_id"})


@dataclass(frozen=True)
class Preset:
    name: str
    purpose: str
    shape: LMShape
    train: dict[str, Any] = field(default_factory=dict)  # TrainConfig values over its defaults
    sources: tuple[str, ...] = ()  # corpus specs read when a run names none


TINY = Preset(
    name="tiny",
    purpose="minutes on a laptop CPU: the tests and the demo",
    # 2048 tokens are enough for Python's keywords and common identifiers; 256 positions hold a
    # function of typical length; 4 layers of 128 learn indentation and call shapes in 300 steps.
    shape=LMShape(vocab_size=2048, hidden_size=128, layers=4, heads=4, context=256),
    train={
        "steps": 300,  # where the loss of this size flattens on the default corpus
        "micro_batch": 16,
        "seq_len": 256,  # the whole context
        "lr": 3e-3,  # a small model takes a large rate (nanoGPT's shakespeare-char uses 1e-3)
        "warmup": 30,  # a tenth of the run
        "eval_every": 100,
        "checkpoint_every": 50,  # a kill loses at most a minute of CPU work
    },
    # Pure-Python packages every install of mlstack has: about 4 MB of real, varied code, read
    # in seconds.
    sources=("packages:click,httpx,jinja2,requests,rich,typer",),
)

SMALL = Preset(
    name="small",
    purpose="GPT-2 small's size (124M), for a GPU",
    # GPT-2 small's depth and width; a 32k vocabulary fits code better than GPT-2's 50k of prose.
    shape=LMShape(
        vocab_size=32768, hidden_size=768, layers=12, heads=12, context=1024, intermediate_size=2560
    ),
    train={
        "steps": 5000,
        "micro_batch": 16,
        "accumulation": 4,  # 64 sequences of 1024 tokens a step: 65k tokens, as nanoGPT's GPT-2 runs
        "seq_len": 1024,
        "lr": 6e-4,  # GPT-2 small's rate
        "warmup": 200,
        "eval_every": 500,
        "eval_batches": 8,
        "checkpoint_every": 500,
        "compile": True,  # torch.compile pays for itself over thousands of GPU steps
    },
    sources=("packages",),  # every installed package
)

PRESETS: dict[str, Preset] = {preset.name: preset for preset in (TINY, SMALL)}


def override_keys() -> set[str]:
    """What an override may set: the shape's fields and the training values."""
    from models.lm.train import TrainConfig

    return ({f.name for f in fields(LMShape)} | set(TrainConfig.model_fields)) - FIXED


def check_overrides(overrides: dict[str, Any]) -> dict[str, Any]:
    """The overrides, or ValueError naming each unknown key and the known ones."""
    known = override_keys()
    if unknown := sorted(set(overrides) - known):
        raise ValueError(f"{', '.join(unknown)}: not a preset value; known: {', '.join(sorted(known))}")
    return overrides


def resolve(name: str, overrides: dict[str, Any]) -> tuple[LMShape, dict[str, Any]]:
    """The preset's shape and training values with the overrides applied."""
    preset = PRESETS[name]
    check_overrides(overrides)
    shape_fields = {f.name for f in fields(LMShape)}
    shape = LMShape(**(asdict(preset.shape) | {k: v for k, v in overrides.items() if k in shape_fields}))
    return shape, preset.train | {k: v for k, v in overrides.items() if k not in shape_fields}
