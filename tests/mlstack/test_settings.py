"""Settings: embedded defaults under one data dir, each overridable from the environment."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import SecretStr, ValidationError

from mlstack.settings import Settings, get_settings, project_root
from tests.conftest import PROJECT_ROOT


def test_defaults_are_local_and_under_home(mlstack_home: Path) -> None:
    s = get_settings()
    assert s.home == mlstack_home.resolve()
    assert s.postgres.dsn is None
    assert s.tracking_uri == f"sqlite:///{mlstack_home.resolve() / 'mlflow' / 'mlflow.db'}"
    for derived in (
        s.data_dir,
        s.raw_dir,
        s.validated_dir,
        s.reports_dir,
        s.validation_reports_dir,
        s.pg_dir,
        s.dvc_remote_dir,
        s.mlflow_dir,
    ):
        assert derived.is_relative_to(s.home)
    assert s.data.max_bad_row_share == 0.01


def test_home_defaults_to_the_checkout_whatever_the_working_folder(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv("MLSTACK_HOME")
    monkeypatch.chdir(tmp_path)  # were the checkout not found, home would land here
    assert project_root() == PROJECT_ROOT
    assert get_settings().home == PROJECT_ROOT / ".mlstack"


def test_environment_overrides(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("MLSTACK_HOME", str(tmp_path / "elsewhere"))
    monkeypatch.setenv("MLSTACK_PG_DSN", "postgresql://u@db.example:5433/ml")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://mlflow.example:5000")
    monkeypatch.setenv("MLSTACK_MAX_BAD_ROW_SHARE", "0.05")
    s = get_settings()
    assert s.home == (tmp_path / "elsewhere").resolve()
    assert s.postgres.dsn == SecretStr("postgresql://u@db.example:5433/ml")
    assert s.tracking_uri == "http://mlflow.example:5000"
    assert s.data.max_bad_row_share == 0.05


def test_mlstack_prefixed_tracking_uri_wins(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLSTACK_MLFLOW_TRACKING_URI", "http://ours:5000")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://theirs:5000")
    assert get_settings().tracking_uri == "http://ours:5000"


def test_relative_home_is_made_absolute(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MLSTACK_HOME", "rel/data")
    assert get_settings().home == (tmp_path / "rel" / "data").resolve()


def test_bad_value_names_the_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLSTACK_MAX_BAD_ROW_SHARE", "2")
    with pytest.raises(ValidationError, match="max_bad_row_share"):
        get_settings()


def test_keyword_overrides_beat_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLSTACK_MAX_BAD_ROW_SHARE", "0.05")
    assert get_settings(data={"max_bad_row_share": 0.2}).data.max_bad_row_share == 0.2


def test_a_section_overridden_in_part_still_reads_the_rest_from_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("MLSTACK_LLM_TIMEOUT_S", "7")
    monkeypatch.setenv("MLSTACK_ASK_CONCURRENCY", "9")
    llm = get_settings(llm={"provider": "local"}).llm
    assert (llm.provider, llm.timeout_s, llm.ask_concurrency) == ("local", 7.0, 9)


# Every variable the README documents, with a value and where it must land.
DOCUMENTED = {
    "MLSTACK_PG_DSN": ("postgres", "dsn", "postgresql://u@h:1/d", SecretStr("postgresql://u@h:1/d")),
    "MLSTACK_PG_CONNECT_TIMEOUT_S": ("postgres", "connect_timeout_s", "9", 9),
    "MLSTACK_TRACKING_MLFLOW_TRACKING_URI": ("tracking", "mlflow_tracking_uri", "http://m:1", "http://m:1"),
    "MLSTACK_TRACKING_PROMOTION_MARGIN": ("tracking", "promotion_margin", "0.05", 0.05),
    "MLSTACK_DATA_MAX_BAD_ROW_SHARE": ("data", "max_bad_row_share", "0.02", 0.02),
    "MLSTACK_SERVING_RELOAD_S": ("serving", "reload_s", "2", 2.0),
    "MLSTACK_MONITORING_DRIFT_SHARE": ("monitoring", "drift_share", "0.4", 0.4),
    "MLSTACK_MONITORING_DRIFT_METHOD": ("monitoring", "drift_method", "psi", "psi"),
    "MLSTACK_MONITORING_DRIFT_THRESHOLD": ("monitoring", "drift_threshold", "0.2", 0.2),
    "MLSTACK_MONITORING_PERFORMANCE_TOLERANCE": ("monitoring", "performance_tolerance", "0.5", 0.5),
    "MLSTACK_MONITORING_MISSING_SHARE_INCREASE": ("monitoring", "missing_share_increase", "0.2", 0.2),
    "MLSTACK_MONITORING_MIN_WINDOW_ROWS": ("monitoring", "min_window_rows", "50", 50),
    "MLSTACK_MONITORING_DRIFT_SAMPLE_ROWS": ("monitoring", "drift_sample_rows", "5000", 5000),
    "MLSTACK_MONITORING_ALERT_URLS": (
        "monitoring",
        "alert_urls",
        "json://a, mailto://b",
        [SecretStr("json://a"), SecretStr("mailto://b")],
    ),
    "MLSTACK_MONITORING_ALERT_LOG": ("monitoring", "alert_log", "false", False),
    "MLSTACK_MONITORING_RETRAIN_ON_DRIFT": ("monitoring", "retrain_on_drift", "true", True),
    "MLSTACK_MONITORING_RETRAIN_TRIALS": ("monitoring", "retrain_trials", "3", 3),
    "MLSTACK_MONITORING_RETRAIN_COOLDOWN_S": ("monitoring", "retrain_cooldown_s", "60", 60.0),
    "MLSTACK_ORCHESTRATION_PREFECT_PORT": ("orchestration", "prefect_port", "4300", 4300),
    "MLSTACK_ORCHESTRATION_EVIDENTLY_PORT": ("orchestration", "evidently_port", "8102", 8102),
    "MLSTACK_ORCHESTRATION_MLFLOW_PORT": ("orchestration", "mlflow_port", "5100", 5100),
    "MLSTACK_ORCHESTRATION_UP_TIMEOUT_S": ("orchestration", "up_timeout_s", "30", 30.0),
    "MLSTACK_ORCHESTRATION_API_IDLE_S": ("orchestration", "api_idle_s", "60", 60.0),
    "MLSTACK_ORCHESTRATION_WARM": ("orchestration", "warm", "false", False),
    "MLSTACK_ORCHESTRATION_GPU_COUNT": ("orchestration", "gpu_count", "4", 4),
    "MLSTACK_ORCHESTRATION_TASK_RUNNER": ("orchestration", "task_runner", "dask", "dask"),
    "MLSTACK_ORCHESTRATION_DASK_ADDRESS": ("orchestration", "dask_address", "tcp://d:8786", "tcp://d:8786"),
    "MLSTACK_ORCHESTRATION_DASK_WORKERS": ("orchestration", "dask_workers", "2", 2),
    "MLSTACK_ORCHESTRATION_GIT_REPOSITORY": (
        "orchestration",
        "git_repository",
        "https://g/r.git",
        "https://g/r.git",
    ),
    "MLSTACK_ORCHESTRATION_GIT_BRANCH": ("orchestration", "git_branch", "main", "main"),
    "MLSTACK_MONITORING_RETRAIN_HOLDOUT_HOURS": ("monitoring", "retrain_holdout_hours", "12", 12.0),
    "MLSTACK_LLM_PROVIDER": ("llm", "provider", "local", "local"),
    "MLSTACK_LLM_MODEL": ("llm", "model", "m", "m"),
    "MLSTACK_LLM_LOCAL_MODEL": ("llm", "local_model", "/m", Path("/m")),
    "MLSTACK_LLM_TIMEOUT_S": ("llm", "timeout_s", "5", 5.0),
    "MLSTACK_LLM_MAX_RETRIES": ("llm", "max_retries", "1", 1),
    "MLSTACK_LLM_SERVER_START_TIMEOUT_S": ("llm", "server_start_timeout_s", "30", 30.0),
    "MLSTACK_LLM_SERVER_MAX_BATCH": ("llm", "server_max_batch", "4", 4),
    "MLSTACK_LLM_SERVER_API_KEY": ("llm", "server_api_key", "sk-server", SecretStr("sk-server")),
    "MLSTACK_LLM_EMBEDDING_PROVIDER": ("llm", "embedding_provider", "openai", "openai"),
    "MLSTACK_LLM_EMBEDDING_MODEL": ("llm", "embedding_model", "e", "e"),
    "MLSTACK_LLM_EMBEDDING_BACKEND": ("llm", "embedding_backend", "torch", "torch"),
    "OPENAI_API_KEY": ("llm", "openai_api_key", "sk-test", SecretStr("sk-test")),
    "OPENAI_BASE_URL": ("llm", "openai_base_url", "http://o:1/v1", "http://o:1/v1"),
    "MLSTACK_LLM_ASK_CONCURRENCY": ("llm", "ask_concurrency", "8", 8),
    "MLSTACK_RAG_COLLECTION": ("rag", "collection", "handbook", "handbook"),
    "MLSTACK_RAG_CHUNK_SIZE": ("rag", "chunk_size", "800", 800),
    "MLSTACK_RAG_CHUNK_OVERLAP": ("rag", "chunk_overlap", "50", 50),
    "MLSTACK_RAG_BATCH_DOCUMENTS": ("rag", "batch_documents", "16", 16),
    "MLSTACK_RAG_MAX_DOCUMENT_BYTES": ("rag", "max_document_bytes", "50000", 50_000),
    "MLSTACK_RAG_K": ("rag", "k", "8", 8),
    "MLSTACK_RAG_MIN_SIMILARITY": ("rag", "min_similarity", "0.4", 0.4),
    "MLSTACK_RAG_EVAL_MAX_DROP": ("rag", "eval_max_drop", "0.1", 0.1),
    "MLSTACK_RAG_JUDGE_MODEL": ("rag", "judge_model", "gpt-4o", "gpt-4o"),
    "MLSTACK_RAG_SUPPORT_SIMILARITY": ("rag", "support_similarity", "0.6", 0.6),
    "MLSTACK_SOURCES_GITHUB_TOKEN": ("sources", "github_token", "ghp_x", SecretStr("ghp_x")),
    "MLSTACK_SOURCES_GITHUB_API_URL": (
        "sources",
        "github_api_url",
        "https://ghe/api/v3",
        "https://ghe/api/v3",
    ),
    "MLSTACK_SOURCES_SLACK_TOKEN": ("sources", "slack_token", "xoxb-1", SecretStr("xoxb-1")),
    "MLSTACK_SOURCES_SLACK_API_URL": ("sources", "slack_api_url", "https://s/api", "https://s/api"),
    "MLSTACK_SOURCES_RATE_LIMIT_WAIT_S": ("sources", "rate_limit_wait_s", "5", 5.0),
    "MLSTACK_WEBHOOKS_GITHUB_SECRET": ("webhooks", "github_secret", "gh-s", SecretStr("gh-s")),
    "MLSTACK_WEBHOOKS_SLACK_SIGNING_SECRET": ("webhooks", "slack_signing_secret", "sl-s", SecretStr("sl-s")),
    "MLSTACK_WEBHOOKS_HOST": ("webhooks", "host", "0.0.0.0", "0.0.0.0"),
    "MLSTACK_WEBHOOKS_PORT": ("webhooks", "port", "9003", 9003),
    "MLSTACK_WEBHOOKS_MAX_BODY_BYTES": ("webhooks", "max_body_bytes", "2048", 2048),
    "MLSTACK_WEBHOOKS_SLACK_MAX_AGE_S": ("webhooks", "slack_max_age_s", "60", 60.0),
    "MLSTACK_WEBHOOKS_COALESCE_S": ("webhooks", "coalesce_s", "3", 3.0),
    "MLSTACK_PRETRAIN_PRESET": ("pretrain", "preset", "small", "small"),
    "MLSTACK_PRETRAIN_SHARDS": ("pretrain", "shards", "4", 4),
    "MLSTACK_PRETRAIN_VALIDATION_SHARE": ("pretrain", "validation_share", "0.1", 0.1),
    "MLSTACK_PRETRAIN_MAX_FILE_BYTES": ("pretrain", "max_file_bytes", "5000", 5000),
    "MLSTACK_PRETRAIN_MIN_DOCUMENTS": ("pretrain", "min_documents", "3", 3),
    "MLSTACK_PRETRAIN_MAX_REMOVED_SHARE": ("pretrain", "max_removed_share", "0.5", 0.5),
    "MLSTACK_PRETRAIN_NPROC": ("pretrain", "nproc", "2", 2),
    "MLSTACK_PRETRAIN_PEAK_TFLOPS": ("pretrain", "peak_tflops", "989", 989.0),
    "MLSTACK_FINETUNE_SOURCE": ("finetune", "source", "github:acme/app", "github:acme/app"),
    "MLSTACK_FINETUNE_SYSTEM_PROMPT": ("finetune", "system_prompt", "Be terse.", "Be terse."),
    "MLSTACK_FINETUNE_VALIDATION_SHARE": ("finetune", "validation_share", "0.3", 0.3),
    "MLSTACK_FINETUNE_MIN_ANSWER_CHARS": ("finetune", "min_answer_chars", "10", 10),
    "MLSTACK_FINETUNE_MIN_EXAMPLES": ("finetune", "min_examples", "5", 5),
    "MLSTACK_FINETUNE_MAX_EXAMPLE_TOKENS": ("finetune", "max_example_tokens", "4096", 4096),
    "MLSTACK_FINETUNE_BACKEND": ("finetune", "backend", "openai", "openai"),
    "MLSTACK_FINETUNE_OPENAI_MODEL": ("finetune", "openai_model", "gpt-4.1-mini", "gpt-4.1-mini"),
    "MLSTACK_FINETUNE_PRICE_PER_MILLION_TOKENS": ("finetune", "price_per_million_tokens", "25", 25.0),
    "MLSTACK_FINETUNE_EPOCHS": ("finetune", "epochs", "2", 2),
    "MLSTACK_FINETUNE_POLL_MAX_S": ("finetune", "poll_max_s", "5", 5.0),
    "MLSTACK_FINETUNE_JOB_TIMEOUT_S": ("finetune", "job_timeout_s", "600", 600.0),
    "MLSTACK_FINETUNE_REVIEW_PAGE_SIZE": ("finetune", "review_page_size", "5", 5),
    "MLSTACK_FINETUNE_REVIEW_TIMEOUT_S": ("finetune", "review_timeout_s", "60", 60),
    "MLSTACK_SCAFFOLD_TEMPLATE_REPO": ("scaffold", "template_repo", "/tmp/t", Path("/tmp/t")),
}


def test_every_setting_has_a_variable_checked_here() -> None:
    covered = {(section, name) for section, name, _, _ in DOCUMENTED.values()}
    fields = {(title, name) for title, kind in Settings.sections().items() for name in kind.model_fields}
    assert covered == fields


@pytest.mark.parametrize("variable", sorted(DOCUMENTED))
def test_every_documented_variable_lands_in_its_section(
    monkeypatch: pytest.MonkeyPatch, variable: str
) -> None:
    section, name, raw, expected = DOCUMENTED[variable]
    monkeypatch.setenv(variable, raw)
    assert getattr(getattr(get_settings(), section), name) == expected
    assert variable in Settings.sections()[section].env_names(name)


def test_the_settings_page_documents_every_variable_by_its_own_name() -> None:
    page = (PROJECT_ROOT / "docs" / "settings.md").read_text()
    for title, section in Settings.sections().items():
        for name in section.model_fields:
            assert f"`{section.env_names(name)[0]}`" in page, (title, name)
    assert "`OPENAI_API_KEY`" in page


def test_each_section_has_a_prefix_of_its_own_and_every_variable_follows_it() -> None:
    prefixes = {title: kind.model_config["env_prefix"] for title, kind in Settings.sections().items()}
    assert len(set(prefixes.values())) == len(prefixes), prefixes
    for title, kind in Settings.sections().items():
        assert prefixes[title].startswith("MLSTACK_") and prefixes[title] != "MLSTACK_", title
        for name in kind.model_fields:
            assert kind.env_names(name)[0] == f"{prefixes[title]}{name}".upper()


OLDER_NAMES = sorted(
    (variable, title, name)
    for title, kind in Settings.sections().items()
    for name in kind.model_fields
    for variable in kind.env_names(name)[1:]
)


@pytest.mark.parametrize(("variable", "section", "name"), OLDER_NAMES)
def test_an_older_name_still_sets_its_setting(
    monkeypatch: pytest.MonkeyPatch, variable: str, section: str, name: str
) -> None:
    canonical = next(v for v, (s, n, _, _) in DOCUMENTED.items() if (s, n) == (section, name))
    _, _, raw, expected = DOCUMENTED[canonical]
    for other in Settings.sections()[section].env_names(name):
        monkeypatch.delenv(other, raising=False)
    monkeypatch.setenv(variable, raw)
    assert getattr(getattr(get_settings(), section), name) == expected


def test_the_sections_own_name_wins_over_an_older_one(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLSTACK_DRIFT_SHARE", "0.4")
    monkeypatch.setenv("MLSTACK_MONITORING_DRIFT_SHARE", "0.2")
    monkeypatch.setenv("OPENAI_API_KEY", "sk-theirs")
    monkeypatch.setenv("MLSTACK_LLM_OPENAI_API_KEY", "sk-ours")
    settings = get_settings()
    assert settings.monitoring.drift_share == 0.2
    assert settings.llm.openai_api_key.get_secret_value() == "sk-ours"
    # An override given in code fills the field; the older names fill only what is left.
    assert get_settings(monitoring={"min_window_rows": 9}).monitoring.drift_share == 0.2


def test_a_dotenv_file_fills_the_gaps_the_environment_leaves(tmp_path: Path) -> None:
    """Read in a process of its own, as every command reads it: at bootstrap, before Prefect."""
    import json
    import os
    import subprocess
    import sys

    dotenv = tmp_path / ".env"
    dotenv.write_text("MLSTACK_DRIFT_SHARE=0.42\nMLSTACK_MIN_WINDOW_ROWS=7\nOPENAI_API_KEY=sk-DOTENVCANARY\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI_", "MLSTACK_"))}
    env |= {
        "MLSTACK_HOME": str(tmp_path / "home"),
        "MLSTACK_MIN_WINDOW_ROWS": "9",
        "MLSTACK_LLM_PROVIDER": "local",
    }
    shown = subprocess.run(
        [sys.executable, "-m", "mlstack.cli", "info", "--json"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
    )
    assert shown.returncode == 0, shown.stderr
    rows = {row["name"]: row for row in json.loads(shown.stdout)["settings"]}
    assert (rows["drift_share"]["value"], rows["drift_share"]["source"]) == (
        "0.42",
        f"MLSTACK_DRIFT_SHARE ({dotenv})",
    )
    assert (rows["min_window_rows"]["value"], rows["min_window_rows"]["source"]) == (
        "9",
        "MLSTACK_MIN_WINDOW_ROWS",
    )
    assert rows["openai_api_key"]["value"] == "(set, hidden)" and "sk-DOTENVCANARY" not in shown.stdout

    env["MLSTACK_ENV_FILE"] = str(tmp_path / "missing.env")
    missing = subprocess.run(
        [sys.executable, "-m", "mlstack.cli", "info"], cwd=tmp_path, env=env, capture_output=True, text=True
    )
    assert missing.returncode == 1
    assert missing.stderr.strip() == (
        f"error: MLSTACK_ENV_FILE={tmp_path / 'missing.env'}: no such file;"
        " point it at a .env file, or set it empty"
    )
