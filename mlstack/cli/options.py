"""Options become a flow's parameters model: a Typer option's default and help come from the
model's field (one home for both), and a value the model refuses is one line naming the option
and the rule, with exit 2, as a usage error is."""

from __future__ import annotations

from datetime import date
from typing import Any, TypeVar

import typer
from pydantic import BaseModel, ValidationError

from mlstack.cli.render import fail

Model = TypeVar("Model", bound=BaseModel)


def option(kind: type[BaseModel], name: str, /, *flags: str, **kwargs: Any) -> Any:
    """A Typer option whose default and help are a parameters model's field: one home for both."""
    field = kind.model_fields[name]
    default = field.get_default(call_default_factory=True)
    if isinstance(default, date):
        default = default.isoformat()
    return typer.Option(default, *flags, help=field.description, **kwargs)


def build(kind: type[Model], renamed: dict[str, str] | None = None, /, **values: Any) -> Model:
    """The parameters model from the options given (any names, `model` among them); a value the
    model refuses exits 2 with one line naming the option and the rule, as a usage error does.
    `renamed` maps a field to the option that sets it where the two names differ."""
    try:
        return kind(**values)
    except ValidationError as exc:
        problems = "; ".join(_problem(error, renamed or {}) for error in exc.errors())
        raise fail(problems, code=2) from None


def _problem(error: Any, renamed: dict[str, str]) -> str:
    message = error["msg"].removeprefix("Value error, ")
    loc = [str(part) for part in error["loc"]]
    if loc:
        loc[0] = renamed.get(loc[0], loc[0])
    where = "-".join(loc).replace("_", "-")
    return f"--{where}: {message}" if where else message
