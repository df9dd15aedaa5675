"""Fine-tuning: questions asked in a GitHub repository, answered in its maintainers' tone.

1. `finetune-ingest` reads issues with their comments (the GitHub API, or a dump in its shape;
   offline, the shipped sample), keeps each issue's question and best maintainer answer, counts
   what it drops and why, and writes one partition file per month the issues were opened: one
   mapped task each, deterministic, rewritten only when its pairs changed.
2. `finetune-dataset` optionally asks a person to approve, edit or drop pairs (`review`): the
   run pauses with a form in the Prefect UI, a page of pairs at a time, and stores each
   decision so that no pair is asked about twice. It then splits by a hash of the issue
   (disjoint, and stable as data grows), writes chat JSONL in OpenAI's format with the tone
   instruction as the system message, validates both files by OpenAI's rules, and reports
   token counts and the estimated cost before anything is submitted.
3. `finetune-train` trains: LoRA on a local model (the pretraining champion by default), or an
   OpenAI fine-tuning job that it polls to the end.
4. `finetune-evaluate` scores the fine-tuned model and its base on the validation set (loss on
   the assistant's tokens where it can be read, and ROUGE-L against the maintainers' answers),
   logs both to MLflow, registers the model as a version of `support_lm`, and makes it
   champion only if it beats its base and the current champion. A local champion becomes the
   local chat model (`mlstack ask`, `mlstack serve-llm`).

`fine-tuning` runs all four. The `gpu` work pool runs it in production (prefect.yaml).

    python -m flows.fine_tuning

One module per flow; `shared` holds what they share and `review` the review form.
"""

from flows.fine_tuning.dataset import DatasetParams, DatasetResult, dataset_flow
from flows.fine_tuning.evaluate import EvaluateParams, EvaluateResult, evaluate_flow
from flows.fine_tuning.ingest import IngestParams, IngestResult, ingest_flow
from flows.fine_tuning.pipeline import FineTuningParams, FineTuningResult, fine_tuning_flow
from flows.fine_tuning.train import TrainParams, TrainResult, train_flow

__all__ = [
    "DatasetParams",
    "DatasetResult",
    "EvaluateParams",
    "EvaluateResult",
    "FineTuningParams",
    "FineTuningResult",
    "IngestParams",
    "IngestResult",
    "TrainParams",
    "TrainResult",
    "dataset_flow",
    "evaluate_flow",
    "fine_tuning_flow",
    "ingest_flow",
    "train_flow",
]
