"""Options become parameters: defaults and help from the model's field, and a refused value is
one line naming the option and the rule, exit 2."""

from __future__ import annotations

from datetime import date

import pytest
import typer
from pydantic import BaseModel, Field, field_validator

from mlstack.cli.options import build, option


class Params(BaseModel):
    day: date = Field(default=date(2026, 9, 1), description="The first day.")
    steps: int = Field(default=3, ge=1, description="How many.")
    overrides: dict[str, int] = Field(default_factory=dict)

    @field_validator("overrides")
    @classmethod
    def _known(cls, value: dict[str, int]) -> dict[str, int]:
        if unknown := sorted(set(value) - {"layers"}):
            raise ValueError(f"{', '.join(unknown)}: not a known key")
        return value


def test_an_option_takes_its_default_and_help_from_the_field() -> None:
    made = option(Params, "day", "--day")
    assert made.default == "2026-09-01" and made.help == "The first day." and made.param_decls == ("--day",)
    assert option(Params, "steps").default == 3


def test_a_refused_value_names_the_option_and_exits_2(capsys: pytest.CaptureFixture) -> None:
    with pytest.raises(typer.Exit) as caught:
        build(Params, steps=0)
    assert caught.value.exit_code == 2
    assert "--steps: Input should be greater than or equal to 1" in " ".join(capsys.readouterr().err.split())


def test_a_field_set_by_an_option_of_another_name_is_named_as_that_option(
    capsys: pytest.CaptureFixture,
) -> None:
    with pytest.raises(typer.Exit):
        build(Params, {"overrides": "set"}, overrides={"depth": 3})
    shown = " ".join(capsys.readouterr().err.split())
    assert shown == "error: --set: depth: not a known key"
    with pytest.raises(typer.Exit):  # a value inside the field: its place is named after the option
        build(Params, {"overrides": "set"}, overrides={"layers": "many"})
    assert "error: --set-layers: Input should be a valid integer" in " ".join(capsys.readouterr().err.split())
    assert build(Params, {"overrides": "set"}, steps=2).steps == 2
