"""`python -m flows.pretraining` runs the whole pipeline."""

from flows.pretraining.pipeline import pretraining_flow

pretraining_flow()
