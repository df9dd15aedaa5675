"""Pretraining: a small Python code model, from raw code to the local model everything uses.

1. `pretrain-prepare` reads the sources (folders, git repositories, the installed packages'
   sources, GitHub archives), cleans them stage by stage (dedup, near-dup, language, quality,
   secrets), checks the result, and writes it as training shards and one held-out validation
   shard, split by document hash. A table artifact counts every stage.
2. `pretrain-tokenize` trains a byte-level BPE tokenizer on the training shards (or reuses the
   tokenizer of the model training starts from), then tokenizes the shards concurrently: one
   mapped task per shard, on the configured task runner. Shards done from the same inputs are
   skipped.
3. `pretrain-train` trains, in this process or under torchrun with DDP (MLSTACK_PRETRAIN_NPROC),
   with checkpoints; `resume` continues the last run from its last checkpoint. Loss, learning
   rate, tokens/s, MFU and system metrics go to the MLflow experiment "pretraining".
4. `pretrain-evaluate` scores the model on the validation shard (perplexity, bits per byte, and
   the share of held-out function headers whose greedy completion parses), registers it as a
   version of `code_lm`, and makes it champion only if it beats the champion on the same text.
   The champion becomes the local model (`mlstack ask`, `mlstack serve-llm`, the demo).

`pretraining` runs all four. The `gpu` work pool runs it in production (prefect.yaml).

    python -m flows.pretraining

One module per flow; `shared` holds the fields and paths they share.
"""

from flows.pretraining.evaluate import EvaluateParams, EvaluateResult, evaluate_flow
from flows.pretraining.pipeline import PretrainParams, PretrainResult, pretraining_flow
from flows.pretraining.prepare import PrepareParams, PrepareResult, prepare_flow
from flows.pretraining.tokenizing import ShardTokens, TokenizeParams, TokenizeResult, tokenize_flow
from flows.pretraining.train import TrainFlowResult, TrainParams, train_config, train_flow

__all__ = [
    "EvaluateParams",
    "EvaluateResult",
    "PrepareParams",
    "PrepareResult",
    "PretrainParams",
    "PretrainResult",
    "ShardTokens",
    "TokenizeParams",
    "TokenizeResult",
    "TrainFlowResult",
    "TrainParams",
    "evaluate_flow",
    "prepare_flow",
    "pretraining_flow",
    "tokenize_flow",
    "train_config",
    "train_flow",
]
