"""`python -m flows.fine_tuning` runs the whole pipeline."""

from flows.fine_tuning.pipeline import fine_tuning_flow

fine_tuning_flow()
