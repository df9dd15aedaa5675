"""The one place mlstack reads configuration from.

Every default is embedded and local, under one data directory (`.mlstack/` in the project, or
`MLSTACK_HOME`). Every real service is one environment variable away: `MLSTACK_PG_DSN`,
`MLFLOW_TRACKING_URI`, `PREFECT_API_URL`, `OPENAI_API_KEY` and `OPENAI_BASE_URL`.

Settings come in sections, one per concern (`settings.postgres.dsn`, `settings.llm.provider`),
each read from its own documented `MLSTACK_*` variables. A new capability adds its own section
here and one field on `Settings`.
"""

from __future__ import annotations

import os
from functools import cached_property
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

MODEL_NAME = "trip_duration"
PRETRAINED_MODEL = "code_lm"  # the pretraining flow's registered model
FINETUNED_MODEL = "support_lm"  # the fine-tuning flow's registered model


def project_root() -> Path:
    """The source checkout when running from one, else the current directory.

    A checkout is recognised by the `pyproject.toml` beside the package, so that `make demo`,
    `dvc repro` and the tests all agree on one `.mlstack/` whatever folder they start in.
    """
    here = Path(__file__).resolve().parent.parent
    if (here / "pyproject.toml").is_file() and (here / "mlstack").is_dir():
        return here
    return Path.cwd()


ENV_FILE_VARIABLE = "MLSTACK_ENV_FILE"
# The variables a .env file supplied (the environment itself wins over the file), for `info`.
FROM_ENV_FILE: dict[str, Path] = {}


def env_file() -> Path | None:
    """The .env file to read: MLSTACK_ENV_FILE (empty: none), else `.env` in the current
    directory, else in the checkout."""
    if ENV_FILE_VARIABLE in os.environ:
        named = os.environ[ENV_FILE_VARIABLE]
        return Path(named).expanduser() if named else None
    return next((p for p in (Path.cwd() / ".env", project_root() / ".env") if p.is_file()), None)


def load_env_file() -> Path | None:
    """Put the .env file's variables into the environment, where they are missing, so that every
    reader sees them: these settings, and Prefect, MLflow and the OpenAI client, which read the
    environment themselves. Returns the file read."""
    from dotenv import dotenv_values

    path = env_file()
    if path is None:
        return None
    if not path.is_file():
        from mlstack.errors import InputError

        raise InputError(
            f"{ENV_FILE_VARIABLE}={path}: no such file; point it at a .env file, or set it empty"
        )
    for name, value in dotenv_values(path).items():
        if value is not None and name not in os.environ:
            os.environ[name] = value
            FROM_ENV_FILE[name] = path
    return path


class Section(BaseSettings):
    """One concern's settings, read from the environment when the section is built.

    Every field is read from its section's prefix and its name (MLSTACK_RAG_K). `legacy_prefix`
    and `aliases` name what else still sets it, after that name: the variable a field had before
    its section took a prefix of its own (MLSTACK_DRIFT_SHARE), and the names other tools give
    the same thing (OPENAI_API_KEY, MLFLOW_TRACKING_URI, GITHUB_TOKEN).
    """

    model_config = SettingsConfigDict(env_prefix="MLSTACK_", extra="ignore", populate_by_name=True)
    legacy_prefix: ClassVar[str | None] = None
    aliases: ClassVar[dict[str, tuple[str, ...]]] = {}

    @classmethod
    def env_names(cls, name: str) -> list[str]:
        """The variables that set field `name`, in the order they are looked up."""
        names = [f"{cls.model_config['env_prefix']}{name}".upper(), *cls.aliases.get(name, ())]
        if cls.legacy_prefix:
            names.append(f"{cls.legacy_prefix}{name}".upper())
        return list(dict.fromkeys(names))

    @model_validator(mode="before")
    @classmethod
    def _read_older_names(cls, data: Any) -> Any:
        """A field its own variable (or an override) left unset takes the first older name set."""
        if not isinstance(data, dict):
            return data
        filled = dict(data)
        for name in cls.model_fields:
            if name in filled:
                continue
            for variable in cls.env_names(name)[1:]:
                if (value := os.environ.get(variable)) is not None:
                    filled[name] = value
                    break
        return filled


class DataSettings(Section):
    """What validation lets through."""

    model_config = SettingsConfigDict(env_prefix="MLSTACK_DATA_")
    legacy_prefix = "MLSTACK_"

    max_bad_row_share: float = Field(
        default=0.01,
        ge=0.0,
        le=1.0,
        description="Share of rows a table may quarantine before validation fails the stage.",
    )


class PostgresSettings(Section):
    """Where Postgres (with pgvector) is: embedded under the data dir, or any DSN."""

    model_config = SettingsConfigDict(env_prefix="MLSTACK_PG_")

    dsn: SecretStr | None = Field(
        default=None,
        description="External Postgres DSN. Unset: an embedded Postgres 18 + pgvector under home/pg."
        " Secret: it may hold a password.",
    )
    connect_timeout_s: int = Field(default=5, ge=1, description="Seconds to wait for Postgres.")


class TrackingSettings(Section):
    """Where MLflow tracks runs and models, and how the registry gate promotes."""

    model_config = SettingsConfigDict(env_prefix="MLSTACK_TRACKING_")
    legacy_prefix = "MLSTACK_"
    aliases = {"mlflow_tracking_uri": ("MLSTACK_MLFLOW_TRACKING_URI", "MLFLOW_TRACKING_URI")}

    mlflow_tracking_uri: str | None = Field(
        default=None,
        description="MLflow tracking URI. Unset: SQLite under home/mlflow.",
    )
    promotion_margin: float = Field(
        default=0.01,
        ge=0.0,
        lt=1.0,
        description="A challenger must beat the champion's MAE by this share to be promoted.",
    )


class ServingSettings(Section):
    """How the online server follows the registry."""

    model_config = SettingsConfigDict(env_prefix="MLSTACK_SERVING_")

    reload_s: float = Field(
        default=5.0, gt=0, description="How often the server checks whether the champion alias moved."
    )


class MonitoringSettings(Section):
    """What counts as drift, where alerts go, and whether drift retrains by itself."""

    model_config = SettingsConfigDict(env_prefix="MLSTACK_MONITORING_")
    legacy_prefix = "MLSTACK_"

    drift_share: float = Field(
        default=0.3,
        gt=0.0,
        le=1.0,
        description="Share of monitored columns that must drift before the dataset counts as drifted.",
    )
    drift_method: str | None = Field(
        default=None,
        description="Evidently drift method for every column (e.g. wasserstein, psi, ks)."
        " Unset: Evidently picks by column type and size.",
    )
    drift_threshold: float | None = Field(
        default=None, gt=0.0, description="Threshold for drift_method. Unset: the method's own default."
    )
    performance_tolerance: float = Field(
        default=0.25,
        gt=0.0,
        description="Labelled windows alert when their MAE exceeds the reference MAE by this share.",
    )
    missing_share_increase: float = Field(
        default=0.1,
        gt=0.0,
        le=1.0,
        description="A column alerts when its share of missing values grows by more than this.",
    )
    min_window_rows: int = Field(
        default=200, ge=1, description="Windows with fewer predictions are skipped, not judged."
    )
    drift_sample_rows: int | None = Field(
        default=100_000,
        ge=1000,
        description="Windows and references above this many rows are sampled for the drift tests"
        " (missing values and error always use every row). Unset: never sample.",
    )
    alert_urls: Annotated[list[SecretStr], NoDecode] = Field(
        default_factory=list,
        description="Apprise URLs (slack://..., mailto://..., json://...), comma separated. Secret:"
        " shown and logged only as apprise's privacy rendering.",
    )
    alert_log: bool = Field(default=True, description="Also append every alert to home/alerts/alerts.jsonl.")
    retrain_on_drift: bool = Field(
        default=False, description="Monitoring runs the retraining flow itself when it finds drift."
    )
    retrain_cooldown_s: float = Field(
        default=6 * 3600.0,
        ge=0,
        description="After a drift event starts retraining a model, further drift events for that"
        " model within this many seconds start none (the deployment trigger's window).",
    )
    retrain_trials: int = Field(
        default=0, ge=0, description="Optuna trials when retraining; 0 reuses the champion's params."
    )
    retrain_holdout_hours: float = Field(
        default=24.0, gt=0, description="The most recent labelled hours that gate a retrained model."
    )

    @field_validator("alert_urls", mode="before")
    @classmethod
    def _split_urls(cls, value: object) -> object:
        if isinstance(value, str):
            return [url.strip() for url in value.split(",") if url.strip()]
        return value


class LLMSettings(Section):
    """One code path (the OpenAI client) to OpenAI, any compatible server, or our own local
    models. With the defaults, OPENAI_BASE_URL or OPENAI_API_KEY alone switches."""

    model_config = SettingsConfigDict(env_prefix="MLSTACK_LLM_")
    aliases = {
        "embedding_provider": ("MLSTACK_EMBEDDING_PROVIDER",),
        "embedding_model": ("MLSTACK_EMBEDDING_MODEL",),
        "openai_api_key": ("MLSTACK_OPENAI_API_KEY", "OPENAI_API_KEY"),
        "openai_base_url": ("MLSTACK_OPENAI_BASE_URL", "OPENAI_BASE_URL"),
        "ask_concurrency": ("MLSTACK_ASK_CONCURRENCY",),
    }

    provider: Literal["auto", "openai", "openai-compatible", "local"] = Field(
        default="auto",
        description="Chat provider. auto: openai-compatible when OPENAI_BASE_URL is set, else openai"
        " when OPENAI_API_KEY is set, else local.",
    )
    model: str | None = Field(
        default=None,
        description="Chat model name. Unset: gpt-4o-mini on OpenAI, the server's first model on a"
        " compatible server, the directory's name locally.",
    )
    local_model: Path | None = Field(
        default=None,
        description="Hugging Face causal-LM (or LoRA adapter) directory for the local provider. Unset:"
        " the fine-tuning champion, else the pretraining champion, else an untrained stand-in under"
        " home/models, created on first use.",
    )
    timeout_s: float = Field(default=60.0, gt=0, description="Seconds before an LLM request times out.")
    max_retries: int = Field(
        default=3, ge=0, description="Retries on 408/409/429/5xx and timeouts, honouring Retry-After."
    )
    server_start_timeout_s: float = Field(
        default=180.0, gt=0, description="Seconds to wait for the local model server to come up."
    )
    server_max_batch: int = Field(
        default=16,
        ge=1,
        description="Most requests the local model server generates together, one forward pass per"
        " token for all of them; more wait their turn.",
    )
    server_api_key: SecretStr | None = Field(
        default=None,
        description="Key the local model server (`mlstack serve-llm`) asks every /v1 request for, as"
        " `Authorization: Bearer KEY`. Unset: none, which it allows on loopback only. Secret.",
    )
    embedding_provider: Literal["local", "openai"] = Field(
        default="local",
        description="local: the packaged all-MiniLM-L6-v2, offline. openai: the embeddings API of"
        " OpenAI or of OPENAI_BASE_URL.",
    )
    embedding_model: str | None = Field(
        default=None,
        description="Embedding model for the openai provider. Unset: text-embedding-3-small.",
    )
    embedding_backend: Literal["onnx-int8", "onnx", "torch"] = Field(
        default="onnx-int8",
        description="How the local provider runs the packaged model. onnx-int8: ONNX Runtime with"
        " int8 weights, about 3x torch's chunks/s on 2 cores, cosine 0.99 to its vectors. onnx: ONNX"
        " Runtime in fp32, torch's vectors at about 1.6x. torch: sentence-transformers. The ONNX"
        " graph is exported from the packaged weights on first use and kept under"
        " home/models/embeddings.",
    )
    openai_api_key: SecretStr | None = Field(
        default=None,
        description="OpenAI (or compatible server) API key.",
    )
    openai_base_url: str | None = Field(
        default=None,
        description="Base URL of an OpenAI-compatible server (vLLM, Ollama, LM Studio, TGI).",
    )
    ask_concurrency: int = Field(
        default=4,
        ge=1,
        le=32,
        description="Questions in flight at once in a batch of `mlstack ask`.",
    )

    @property
    def chat_provider(self) -> str:
        """provider with auto resolved from the environment."""
        if self.provider != "auto":
            return self.provider
        if self.openai_base_url:
            return "openai-compatible"
        return "openai" if self.openai_api_key else "local"


class OrchestrationSettings(Section):
    """Where `mlstack up` serves Prefect and the MLflow UI, the GPU pool's size, and where
    mapped tasks run."""

    model_config = SettingsConfigDict(env_prefix="MLSTACK_ORCHESTRATION_")
    legacy_prefix = "MLSTACK_"

    prefect_port: int = Field(default=4200, ge=1, le=65535, description="Port of the Prefect server.")
    mlflow_port: int = Field(default=5000, ge=1, le=65535, description="Port of the MLflow UI.")
    evidently_port: int = Field(
        default=8002,
        ge=1,
        le=65535,
        description="Port of the Evidently UI (mlstack serve has 8000, serve-llm 8001).",
    )
    api_idle_s: float = Field(
        default=600.0,
        ge=1.0,
        description="The local Prefect API that commands start (when neither PREFECT_API_URL nor"
        " `mlstack up` gives one) and reuse, and the warm process of flow commands, stop"
        " themselves after this long unused.",
    )
    warm: bool = Field(
        default=True,
        description="Flow commands start, and then run in, a warm process that has Prefect and"
        " their flow imported (mlstack.cli.warm); false: each command imports its own.",
    )
    up_timeout_s: float = Field(
        default=120.0, gt=0, description="Seconds `mlstack up` waits for each service to answer."
    )
    gpu_count: int = Field(
        default=1, ge=1, description="GPUs behind the gpu work pool: its concurrency limit."
    )
    task_runner: Literal["threads", "dask"] = Field(
        default="threads",
        description="Where mapped tasks run: threads in the flow's process, or Dask (a local"
        " cluster, or the scheduler at MLSTACK_DASK_ADDRESS).",
    )
    dask_address: str | None = Field(
        default=None, description="An existing Dask scheduler (tcp://host:8786). Unset: a local cluster."
    )
    git_repository: str | None = Field(
        default=None,
        description="The repository deployments clone at run time. Unset: this checkout's folder.",
    )
    git_branch: str | None = Field(
        default=None, description="The branch deployments clone. Unset: the checkout's current branch."
    )
    dask_workers: int | None = Field(
        default=None, ge=1, description="Workers of the local Dask cluster. Unset: Dask's choice."
    )


class WebhookSettings(Section):
    """The webhook receiver (`mlstack serve-webhooks`, started by `mlstack up` once a secret is
    set): the secrets GitHub and Slack sign deliveries with, where it listens, and how a burst of
    deliveries for one source is coalesced into one refresh."""

    model_config = SettingsConfigDict(env_prefix="MLSTACK_WEBHOOKS_")
    aliases = {
        "github_secret": ("MLSTACK_GITHUB_WEBHOOK_SECRET",),
        "slack_signing_secret": ("MLSTACK_SLACK_SIGNING_SECRET",),
    }

    github_secret: SecretStr | None = Field(
        default=None,
        description="The secret of the GitHub webhook: X-Hub-Signature-256 is checked against it."
        " Unset: GitHub deliveries are answered 503. Secret.",
    )
    slack_signing_secret: SecretStr | None = Field(
        default=None,
        description="The Slack app's signing secret: X-Slack-Signature is checked against it."
        " Unset: Slack deliveries are answered 503. Secret.",
    )
    host: str = Field(
        default="127.0.0.1",
        description="Where the receiver listens. Loopback: expose it through a tunnel or an"
        " ingress; the signature, not the network, keeps strangers out.",
    )
    port: int = Field(default=8003, ge=1, le=65535, description="The receiver's port.")
    max_body_bytes: int = Field(
        default=1_048_576, ge=1024, description="A larger delivery is answered 413 and not read further."
    )
    slack_max_age_s: float = Field(
        default=300.0,
        gt=0,
        description="A Slack request whose timestamp is older (or further ahead) is refused as a replay.",
    )
    coalesce_s: float = Field(
        default=10.0,
        ge=1.0,
        description="Deliveries for one source within this long start one refresh: the trigger's"
        " window, and how long that refresh keeps taking the deliveries that arrive meanwhile.",
    )


class RAGSettings(Section):
    """Where RAG's sources come from, how they are cut and searched, and when an answer is
    "I don't know"."""

    model_config = SettingsConfigDict(env_prefix="MLSTACK_RAG_")

    collection: str = Field(
        default="default",
        pattern=r"^[a-z0-9][a-z0-9_-]{0,62}$",
        description="The collection commands use when --collection is not given.",
    )
    chunk_size: int = Field(
        default=500,
        ge=200,
        description="Characters per chunk at most (500 retrieved better than 1000 on our evaluation).",
    )
    chunk_overlap: int = Field(default=100, ge=0, description="Characters neighbouring chunks share.")
    batch_documents: int = Field(
        default=64,
        ge=1,
        description="Documents per refresh batch at most: one mapped task, one transaction. A batch"
        " also ends before it passes max_document_bytes of text, so each commits in bounded time.",
    )
    max_document_bytes: int = Field(
        default=2_000_000,
        ge=1_000,
        description="A document larger than this (UTF-8 bytes) is skipped and named. 2 MB is about"
        " 5,000 chunks; a 50 MB file was 128,889 chunks and hours of embedding.",
    )
    k: int = Field(default=5, ge=1, le=100, description="Documents a search or an answer retrieves.")
    min_similarity: float = Field(
        default=0.3,
        ge=-1.0,
        le=1.0,
        description="Below this cosine similarity of the best chunk, an answer says it does not know.",
    )
    eval_max_drop: float = Field(
        default=0.05,
        ge=0.0,
        le=1.0,
        description="A refresh that lowers hybrid hit@5 by more than this, and by more than one"
        " question's worth (1/n), is flagged and alerted.",
    )
    judge_model: str | None = Field(
        default=None,
        description="The chat model (on the configured provider: OpenAI or any compatible server)"
        " that judges whether each cited passage supports its sentence in `rag eval`. Unset: a"
        " deterministic check, the sentence's embedding against the passage's.",
    )
    support_similarity: float = Field(
        default=0.5,
        ge=-1.0,
        le=1.0,
        description="The deterministic groundedness check: a cited sentence is supported when its"
        " embedding is at least this close (cosine) to a sentence of a passage it cites.",
    )


class SourcesSettings(Section):
    """How the external systems are reached: tokens, API roots, and how long a rate limit is
    waited out. RAG, pretraining and fine-tuning read them through `mlstack.sources`."""

    model_config = SettingsConfigDict(env_prefix="MLSTACK_SOURCES_")
    aliases = {
        "github_token": ("MLSTACK_GITHUB_TOKEN", "GITHUB_TOKEN"),
        "github_api_url": ("MLSTACK_GITHUB_API_URL",),
        "slack_token": ("MLSTACK_SLACK_TOKEN", "SLACK_BOT_TOKEN"),
        "slack_api_url": ("MLSTACK_SLACK_API_URL",),
        "rate_limit_wait_s": ("MLSTACK_RAG_RATE_LIMIT_WAIT_S",),
    }

    github_token: SecretStr | None = Field(
        default=None,
        description="GitHub token for `github:owner/repo` sources. Secret.",
    )
    github_api_url: str = Field(
        default="https://api.github.com",
        description="GitHub REST API root (GitHub Enterprise: https://HOST/api/v3).",
    )
    slack_token: SecretStr | None = Field(
        default=None,
        description="Slack bot token for `slack:CHANNEL_ID` sources (the Web API). Secret.",
    )
    slack_api_url: str = Field(
        default="https://slack.com/api",
        description="Slack Web API root.",
    )
    rate_limit_wait_s: float = Field(
        default=60.0,
        ge=0,
        description="The longest a source waits out an API rate limit; a longer one stops the read"
        " cleanly, and the next refresh resumes from its cursor.",
    )


class PretrainSettings(Section):
    """How the pretraining corpus is cleaned and cut, and where training runs."""

    model_config = SettingsConfigDict(env_prefix="MLSTACK_PRETRAIN_")

    preset: Literal["tiny", "small"] = Field(
        default="tiny", description="Model and training size: tiny (CPU, minutes) or small (124M, a GPU)."
    )
    shards: int = Field(
        default=8, ge=1, le=1024, description="Training shards: the partitions that tokenize concurrently."
    )
    validation_share: float = Field(
        default=0.05, gt=0.0, lt=0.5, description="Share of documents held out for validation, by hash."
    )
    max_file_bytes: int = Field(default=1_000_000, ge=1000, description="Larger files are not read.")
    min_documents: int = Field(
        default=20, ge=1, description="Cleaning must leave at least this many files, or the run stops."
    )
    max_removed_share: float = Field(
        default=0.9,
        gt=0.0,
        le=1.0,
        description="Cleaning may remove at most this share of the files read, or the run stops.",
    )
    nproc: int = Field(
        default=1, ge=1, description="Training processes (torchrun and DDP when above 1): GPUs, or CPU ranks."
    )
    peak_tflops: float | None = Field(
        default=None,
        gt=0,
        description="The device's peak TFLOP/s for the MFU estimate. Unset: looked up for known GPUs,"
        " estimated for CPUs.",
    )


class FinetuneSettings(Section):
    """Where fine-tuning examples come from, what a valid example is, and how training runs."""

    model_config = SettingsConfigDict(env_prefix="MLSTACK_FINETUNE_")

    source: str = Field(
        default="",
        description="github:OWNER/REPO or github:DUMP.json. Unset: the shipped sample dump.",
    )
    system_prompt: str = Field(
        default=(
            "You are a maintainer of this repository answering a question from its issue tracker."
            " Answer the way the maintainers do: brief, friendly and direct. Give the command,"
            " setting or file that solves the problem, and say why when it is not obvious."
        ),
        description="The tone instruction: the system message of every training example.",
    )
    validation_share: float = Field(
        default=0.2, gt=0.0, lt=0.5, description="Share of issues held out for validation, by issue id hash."
    )
    min_answer_chars: int = Field(
        default=40, ge=1, description="Shorter maintainer answers ('Fixed, thanks!') are not usable."
    )
    min_examples: int = Field(
        default=10, ge=1, description="Fewest training examples a job may have (OpenAI's own minimum is 10)."
    )
    max_example_tokens: int = Field(
        default=65_536, ge=64, description="Most tokens one example may have (gpt-4o-mini's training limit)."
    )
    backend: Literal["local", "openai"] = Field(
        default="local", description="local: LoRA on a local model. openai: a fine-tuning job on OpenAI."
    )
    openai_model: str = Field(
        default="gpt-4o-mini-2024-07-18", description="The OpenAI base model a job fine-tunes."
    )
    price_per_million_tokens: float = Field(
        default=3.0,
        ge=0,
        description="USD per million training tokens on the openai backend, for the cost estimate.",
    )
    epochs: int = Field(default=3, ge=1, le=50, description="Passes over the training examples.")
    poll_max_s: float = Field(
        default=60.0,
        gt=0,
        description="Longest wait between two polls of an OpenAI job (backoff doubles to it).",
    )
    job_timeout_s: float = Field(
        default=24 * 3600.0,
        gt=0,
        description="An OpenAI job not finished by then is reported and left running.",
    )
    review_page_size: int = Field(default=10, ge=1, le=100, description="Pairs per review form.")
    review_timeout_s: int = Field(
        default=3600,
        ge=1,
        description="Seconds a review form waits; then the run goes on with the pairs approved so far.",
    )


def _section(kind: type[Section]) -> Any:
    return Field(default_factory=kind, description=kind.__doc__)


def _user_data_dir() -> Path:
    from platformdirs import user_data_dir

    return Path(user_data_dir("mlstack")) / "template"


class ScaffoldSettings(Section):
    """`mlstack new`: where the project template is kept as a git repository."""

    model_config = SettingsConfigDict(env_prefix="MLSTACK_SCAFFOLD_")

    template_repo: Path = Field(
        default_factory=_user_data_dir,
        description="The git repository the package's template is synced into (a commit per change):"
        " projects record its path and commit, and `mlstack new --update` merges from there. One per"
        " user, not per data dir, so every project finds it.",
    )


class Settings(BaseSettings):
    """Resolved configuration. Build it with `get_settings()`; each section reads its variables."""

    model_config = SettingsConfigDict(env_prefix="MLSTACK_", extra="ignore")

    home: Path = Field(
        default_factory=lambda: project_root() / ".mlstack",
        description="Data directory holding everything a run writes.",
    )
    data: DataSettings = _section(DataSettings)
    postgres: PostgresSettings = _section(PostgresSettings)
    tracking: TrackingSettings = _section(TrackingSettings)
    serving: ServingSettings = _section(ServingSettings)
    monitoring: MonitoringSettings = _section(MonitoringSettings)
    llm: LLMSettings = _section(LLMSettings)
    orchestration: OrchestrationSettings = _section(OrchestrationSettings)
    rag: RAGSettings = _section(RAGSettings)
    sources: SourcesSettings = _section(SourcesSettings)
    webhooks: WebhookSettings = _section(WebhookSettings)
    pretrain: PretrainSettings = _section(PretrainSettings)
    finetune: FinetuneSettings = _section(FinetuneSettings)
    scaffold: ScaffoldSettings = _section(ScaffoldSettings)

    @classmethod
    def sections(cls) -> dict[str, type[Section]]:
        return {
            name: field.annotation
            for name, field in cls.model_fields.items()
            if isinstance(field.annotation, type) and issubclass(field.annotation, Section)
        }

    @model_validator(mode="before")
    @classmethod
    def _build_sections(cls, values: Any) -> Any:
        """A section given as a dict of overrides still reads the rest of its fields from the
        environment: pydantic alone would fill them with defaults."""
        if isinstance(values, dict):
            for name, kind in cls.sections().items():
                if isinstance(values.get(name), dict):
                    values = {**values, name: kind(**values[name])}
        return values

    @field_validator("home", mode="after")
    @classmethod
    def _absolute_home(cls, value: Path) -> Path:
        return value.expanduser().resolve()

    # Derived locations: one folder per concern under home, never configured separately.
    @property
    def data_dir(self) -> Path:
        return self.home / "data"

    @property
    def raw_dir(self) -> Path:
        return self.data_dir / "raw"

    @property
    def validated_dir(self) -> Path:
        return self.data_dir / "validated"

    @property
    def reports_dir(self) -> Path:
        return self.home / "reports"

    @property
    def validation_reports_dir(self) -> Path:
        return self.reports_dir / "validation"

    @property
    def monitoring_reports_dir(self) -> Path:
        return self.reports_dir / "monitoring"

    @property
    def evidently_dir(self) -> Path:
        """The Evidently workspace: a snapshot per monitored window, a project per model."""
        return self.home / "evidently"

    @property
    def serving_log(self) -> Path:
        """Online inputs and predictions, one JSON line each; monitoring reads them back."""
        return self.home / "serving" / "predictions.jsonl"

    @property
    def alerts_log(self) -> Path:
        return self.home / "alerts" / "alerts.jsonl"

    @property
    def models_dir(self) -> Path:
        """Local language models (the untrained stand-in, later pretrained and fine-tuned ones)."""
        return self.home / "models"

    @property
    def embeddings_dir(self) -> Path:
        """The packaged embedding model exported to ONNX, once per weights and variant."""
        return self.models_dir / "embeddings"

    @property
    def untrained_model_dir(self) -> Path:
        """The local provider's stand-in model while MLSTACK_LLM_LOCAL_MODEL is unset."""
        return self.models_dir / "untrained-lm"

    @property
    def pretrained_models_dir(self) -> Path:
        """Champions of the pretraining flow, one folder per registry version."""
        return self.models_dir / "pretrained"

    @property
    def pretrained_champion_file(self) -> Path:
        """Which pretrained version is champion, and where its copy is: the local provider reads it."""
        return self.pretrained_models_dir / "champion.json"

    @property
    def pretrain_dir(self) -> Path:
        """The cleaned corpus, tokenizer, token shards and training runs."""
        return self.home / "pretrain"

    @property
    def finetune_dir(self) -> Path:
        """Partitions, datasets, review decisions and runs of the fine-tuning flow."""
        return self.home / "finetune"

    @property
    def finetuned_models_dir(self) -> Path:
        """Local copies of fine-tuned champions, and their pointer file."""
        return self.models_dir / "finetuned"

    @property
    def finetuned_champion_file(self) -> Path:
        return self.finetuned_models_dir / "champion.json"

    @property
    def llm_servers_dir(self) -> Path:
        """Where running local model servers announce themselves, with their logs."""
        return self.home / "llm" / "servers"

    @property
    def stack_dir(self) -> Path:
        """What `mlstack up` started: one record per service, with its log."""
        return self.home / "stack"

    @property
    def worker_dir(self) -> Path:
        """The process worker's working folder, where deployments' pull steps clone the code."""
        return self.home / "worker"

    @property
    def pg_dir(self) -> Path:
        return self.home / "pg"

    @property
    def dvc_remote_dir(self) -> Path:
        return self.home / "dvc-remote"

    @property
    def mlflow_dir(self) -> Path:
        return self.home / "mlflow"

    @cached_property
    def tracking_uri(self) -> str:
        if self.tracking.mlflow_tracking_uri:
            return self.tracking.mlflow_tracking_uri
        return f"sqlite:///{self.mlflow_dir / 'mlflow.db'}"

    @property
    def prefect_api_url(self) -> str | None:
        """Prefect owns this variable; we only report it."""
        return os.environ.get("PREFECT_API_URL") or None


def get_settings(**overrides: object) -> Settings:
    """Read the environment afresh; keyword overrides win over it, per section:
    `get_settings(llm={"provider": "local"})`. Handy in tests and CLIs."""
    return Settings(**overrides)  # type: ignore[arg-type]
