"""The demo: every pattern of the stack end to end, on embedded services, in one flow run.

Each stage is a subflow, so the Prefect UI shows the demo as one tree. Stages are added here as
the stack grows; today the demo runs the data flow (generate, validate, write validated data).
"""

from __future__ import annotations

import mlstack.bootstrap  # noqa: F401  (before prefect: sets its environment defaults)

from prefect import flow, get_run_logger
from prefect.states import State

from flows.data import data_flow
from mlstack.settings import get_settings


@flow(name="demo")
def demo_flow(days: int = 14) -> dict[str, str] | State:
    """Run each stage in turn; stop at the first that fails, with its reason."""
    log = get_run_logger()
    data = data_flow(days=days, return_state=True)
    if not data.is_completed():
        return data
    validated = data.result()
    settings = get_settings()
    where = {
        "validated data": str(settings.data_dir / "validated"),
        "validation report": str(settings.reports_dir / "validation" / "validation.html"),
        "quarantined rows": str(settings.reports_dir / "validation" / "trips.quarantine.parquet"),
    }
    log.info("data flow wrote %s", ", ".join(sorted(validated)))
    return where


if __name__ == "__main__":
    demo_flow()
