"""`mlstack serve` and `mlstack serve-llm`: the trip-duration API and the OpenAI-compatible API."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path

import typer

from mlstack.cli.render import console, err, fail

app = typer.Typer()


class LogLevel(StrEnum):
    """uvicorn's levels: info adds a line per request, warning keeps to problems."""

    critical = "critical"
    error = "error"
    warning = "warning"
    info = "info"
    debug = "debug"
    trace = "trace"


def log_level_option(default: LogLevel) -> LogLevel:
    return typer.Option(default, help="uvicorn's log level: info and below log each request.")


@app.command()
def serve(
    host: str = typer.Option("127.0.0.1", help="Interface to bind."),
    port: int = typer.Option(8000, help="Port."),
    workers: int = typer.Option(1, min=1, help="Worker processes; one per core is a good start."),
    log_level: LogLevel = log_level_option(LogLevel.warning),
) -> None:
    """Serve POST /predict with Feast online features and the champion model (docs at /docs)."""
    import uvicorn

    console.print(serving_banner("trip_duration", host, port, workers), highlight=False)
    uvicorn.run(
        "models.serving.app:create_app",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        log_level=log_level.value,
    )


def is_loopback(host: str) -> bool:
    import ipaddress

    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:  # a host name: it may resolve to anything
        return False


def serving_banner(what: str, host: str, port: int, workers: int = 1, api: str = "") -> str:
    where = f"http://{host}:{port}{api}"
    return f"serving {what} on {where} with {workers} worker(s) (docs at http://{host}:{port}/docs)"


@app.command("serve-llm")
def serve_llm(
    model: Path | None = typer.Option(
        None,
        exists=True,
        file_okay=False,
        help="A Hugging Face causal-LM directory (config.json, weights, tokenizer), or a LoRA adapter"
        " directory (served over its base). Default: the local provider's model: MLSTACK_LLM_LOCAL_MODEL,"
        " else the fine-tuning champion, else the pretraining champion, else the untrained stand-in"
        " (created now if missing).",
    ),
    name: str | None = typer.Option(None, help="Model id clients ask for. Default: the directory's name."),
    host: str = typer.Option("127.0.0.1", help="Interface to bind."),
    port: int = typer.Option(8001, help="Port."),
    log_level: LogLevel = log_level_option(LogLevel.info),
) -> None:
    """Serve a local model behind an OpenAI-compatible API: /v1/models, /v1/chat/completions
    (streaming too) and /v1/embeddings (the packaged all-MiniLM-L6-v2).

    Point any OpenAI client at it with `OPENAI_BASE_URL=http://HOST:PORT/v1`. While it runs,
    `mlstack ask` with the local provider and the same model directory reuses it.
    """
    from mlstack.llm.local_server import is_model_dir, local_model_dir, model_note
    from mlstack.settings import get_settings
    from models.serving.openai_api import serve as serve_openai_api

    settings = get_settings()
    if settings.llm.server_api_key is None and not is_loopback(host):
        raise fail(
            f"--host {host} serves beyond this machine, so it needs a key: set MLSTACK_LLM_SERVER_API_KEY"
            " (clients send it as OPENAI_API_KEY), or bind 127.0.0.1",
            code=2,
        )
    model = model or local_model_dir(settings)
    stand_in = model == settings.untrained_model_dir.resolve()
    if not stand_in and not is_model_dir(model):
        raise fail(
            f"{model} has no config.json nor adapter_config.json: give a Hugging Face model directory"
            " or a LoRA adapter (`mlstack finetune run` writes both)"
        )
    console.print(serving_banner(str(model), host, port, api="/v1"), highlight=False)
    if is_model_dir(model) and (note := model_note(model)):
        err.print(f"note: {note}", highlight=False)
    serve_openai_api(model, name, host, port, log_level.value, init_untrained=stand_in)
