"""What one window of example data looks like: the generator's configuration, and the one home
of the example's defaults (the demo's window among them). Light on purpose: the CLI reads its
options' defaults from here without importing pandas."""

from __future__ import annotations

import hashlib
from datetime import date
from typing import Literal, get_args

from pydantic import BaseModel, ConfigDict, Field

Scenario = Literal["baseline", "covariate_drift", "concept_drift", "missing_surge", "schema_change"]
SCENARIOS: tuple[str, ...] = get_args(Scenario)


class GeneratorConfig(BaseModel):
    """One window of example data. The defaults here are the example's, the demo's included:
    the CLI and the data flow take theirs from these fields."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    scenario: Scenario = Field(
        default="baseline",
        description="What the window looks like: normal, or one kind of drift or breakage.",
    )
    start: date = Field(default=date(2026, 9, 1), description="First day (UTC).")
    days: int = Field(default=14, ge=1, description="Number of days to generate.")
    seed: int = Field(default=42, description="Random seed: the same seed gives byte-identical files.")
    n_drivers: int = Field(default=200, ge=1, description="Number of drivers.")
    trips_per_day: int = Field(default=2000, ge=1, description="Mean trips per weekday.")
    bad_row_rate: float = Field(
        default=0.002,
        ge=0.0,
        lt=0.5,
        description="Share of trips spoiled like a live feed (null label, negative distance, clock skew).",
    )

    def landing(self) -> str:
        """The raw/ subfolder this window lands in: its own, so two windows landing at once never
        validate each other's files. The same window always gets the same name."""
        digest = hashlib.sha256(self.model_dump_json().encode()).hexdigest()[:8]
        return f"{self.start:%Y%m%d}-{self.days}d-{self.scenario}-{digest}"
