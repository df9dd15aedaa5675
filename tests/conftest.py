"""Shared fixtures. Real parts throughout: Prefect's test harness, an embedded Postgres, real files."""

from __future__ import annotations

import itertools
import os
import shutil
import tempfile
from collections.abc import Iterator
from datetime import date
from pathlib import Path

# Before anything imports mlstack.bootstrap (which reads it), so no test writes into the checkout.
SESSION_HOME = Path(tempfile.mkdtemp(prefix="mlstack-tests-"))
os.environ["MLSTACK_HOME"] = str(SESSION_HOME)
for _var in ("MLSTACK_PG_DSN", "MLFLOW_TRACKING_URI", "MLSTACK_MAX_BAD_ROW_SHARE", "PREFECT_API_URL"):
    os.environ.pop(_var, None)
# The tests pick their LLM provider themselves; a developer's real key must never be used.
for _var in [v for v in os.environ if v.startswith(("OPENAI_", "MLSTACK_LLM_", "MLSTACK_EMBEDDING_"))]:
    os.environ.pop(_var)

import pandas as pd  # noqa: E402
import pytest  # noqa: E402

from mlstack.data import validation  # noqa: E402
from mlstack.data.config import GeneratorConfig  # noqa: E402
from mlstack.data.generator import generate, write_tables  # noqa: E402
from mlstack.settings import Settings, get_settings  # noqa: E402

PROJECT_ROOT = Path(__file__).resolve().parent.parent
SMALL = GeneratorConfig(start=date(2026, 9, 1), days=2, trips_per_day=600, n_drivers=40)


def rendered(renderable: object, width: int = 200) -> str:
    """What a person sees: the renderable printed to a wide console, box lines stripped."""
    from rich.console import Console

    console = Console(width=width, record=True, color_system=None)
    console.print(renderable)
    return " ".join(console.export_text().replace("│", " ").replace("┃", " ").split())


def option_defaults(app: object, *path: str) -> dict[str, tuple[object, str | None]]:
    """{parameter: (default, help)} of the command at `path`, as click will parse and show it."""
    import typer.main

    command = typer.main.get_command(app)
    for name in path:
        command = command.commands[name]
    return {p.name: (p.default, getattr(p, "help", None)) for p in command.params}


def small(**changes: object) -> GeneratorConfig:
    """The small window with some fields changed, validated like any other."""
    return GeneratorConfig(**{**SMALL.model_dump(), **changes})


@pytest.fixture(autouse=True)
def mlstack_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Each test gets its own data dir."""
    home = tmp_path / "mlstack-home"
    monkeypatch.setenv("MLSTACK_HOME", str(home))
    # mlflow.set_tracking_uri exports MLFLOW_TRACKING_URI, which settings read as the user's
    # choice: drop what an earlier test left, or this test would write to that test's store.
    os.environ.pop("MLFLOW_TRACKING_URI", None)
    return home


@pytest.fixture(scope="session")
def small_tables() -> dict[str, pd.DataFrame]:
    """A small baseline window, generated once; copy before changing it."""
    return generate(SMALL)


@pytest.fixture(scope="session")
def clean_tables() -> dict[str, pd.DataFrame]:
    """The small window without the generator's spoiled rows, for tests that spoil their own."""
    return generate(small(bad_row_rate=0.0))


@pytest.fixture
def raw_dir(tmp_path: Path, clean_tables: dict[str, pd.DataFrame]) -> Path:
    """The clean small window written as parquet in a fresh folder."""
    out = tmp_path / "raw"
    write_tables(clean_tables, out)
    return out


@pytest.fixture(scope="session")
def prefect_harness() -> Iterator[None]:
    """One Prefect test server for the whole session: starting one takes seconds."""
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=120):
        yield


@pytest.fixture(scope="session")
def pg_settings(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Settings]:
    """Settings pointing at an embedded Postgres of this session's own, stopped at the end."""
    from mlstack.postgres import stop_embedded

    settings = Settings(home=tmp_path_factory.mktemp("pg-home"))
    yield settings
    stop_embedded(settings.pg_dir)


_collections = itertools.count()


@pytest.fixture
def rag_settings(pg_settings: Settings, monkeypatch: pytest.MonkeyPatch) -> Settings:
    """Settings on the session's Postgres through MLSTACK_PG_DSN, as any process would see them;
    tests keep apart by collection."""
    from mlstack.postgres import resolve_dsn

    monkeypatch.setenv("MLSTACK_PG_DSN", resolve_dsn(pg_settings))
    return get_settings()


@pytest.fixture
def collection() -> str:
    """A RAG collection of this test's own."""
    return f"test-{next(_collections)}"


TINY_CORPUS = [
    "Pandas reads a CSV file with read_csv and writes one with to_csv.",
    "Drop duplicate rows with drop_duplicates; fill missing values with fillna.",
    "A DataFrame has rows and columns; a Series is one column.",
    "Group rows with groupby, then aggregate them with sum, mean or count.",
    "See https://pandas.pydata.org/docs/ for the user guide.",
]


@pytest.fixture(scope="session")
def tiny_lm(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny causal LM built here with transformers: random weights, the project's byte-level
    BPE tokenizer trained on a few sentences, and no chat template (so the server's default one
    is used)."""
    import torch
    import transformers
    from transformers import GPT2Config, GPT2LMHeadModel

    from models.lm.tokenizer import train_tokenizer

    transformers.logging.disable_progress_bar()
    tokenizer = train_tokenizer(TINY_CORPUS, vocab_size=400)
    config = GPT2Config(
        vocab_size=len(tokenizer),
        n_positions=512,
        n_embd=32,
        n_layer=2,
        n_head=2,
        bos_token_id=tokenizer.eos_token_id,
        eos_token_id=tokenizer.eos_token_id,
    )
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("models") / "tiny-lm"
    GPT2LMHeadModel(config).save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    shutil.rmtree(SESSION_HOME, ignore_errors=True)


GOOD_PARAMS = {
    "learning_rate": 0.1,
    "max_iter": 120,
    "max_leaf_nodes": 31,
    "min_samples_leaf": 20,
    "l2_regularization": 0.01,
}
TRAIN_SPACE = {
    "learning_rate": {"low": 0.05, "high": 0.2, "log": True},
    "max_iter": {"low": 30, "high": 80},
    "max_leaf_nodes": {"low": 15, "high": 31},
    "min_samples_leaf": {"low": 10, "high": 40},
    "l2_regularization": {"low": 0.001, "high": 0.1, "log": True},
}


def build_trained_home(home: Path) -> None:
    """Six days of validated data, Feast applied and materialized, and a champion, in `home`.

    Built from the building blocks directly: the flows' own tests cover the Prefect layer.
    """
    from mlstack import features, tracking
    from mlstack.data.validation import validate_paths, write_validated
    from mlstack.features import LABEL
    from models.tabular import registry
    from models.tabular.train import features_of, train

    previous = os.environ["MLSTACK_HOME"]
    os.environ["MLSTACK_HOME"] = str(home)
    # Session fixtures start before the per-test cleanup: drop a tracking URI an earlier test
    # exported, or this model would be registered in that test's store.
    os.environ.pop("MLFLOW_TRACKING_URI", None)
    settings = Settings(home=home)
    try:
        write_tables(generate(small(days=6)), settings.raw_dir)
        write_validated(validate_paths([settings.raw_dir], 0.01), settings.validated_dir)
        validated = validation.read_validated(settings.validated_dir)
        features.write_feature_tables(features.build_feature_tables(validated), settings)
        store = features.feature_store(settings)
        features.apply(store)
        features.materialize_offline(store, settings)
        tracking.setup(settings)
        frame = features.historical_features(store, validated["trips"])
        result = train(frame, TRAIN_SPACE, n_trials=0, seed=1, fixed_params=GOOD_PARAMS)
        version = registry.register(result.model_uri, result.run_id)
        test = result.splits.test
        registry.gate(version, features_of(test), test[LABEL], settings.tracking.promotion_margin)
    finally:
        os.environ["MLSTACK_HOME"] = previous


@pytest.fixture(scope="session")
def trained_home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A data dir with six days of validated data, Feast applied and materialized, and a champion."""
    from mlstack.postgres import stop_embedded

    home = tmp_path_factory.mktemp("trained")
    build_trained_home(home)
    yield home
    stop_embedded(Settings(home=home).pg_dir)


@pytest.fixture
def in_trained_home(trained_home: Path, monkeypatch: pytest.MonkeyPatch) -> Settings:
    """Run the test against the trained data dir (MLflow pointed there too)."""
    from mlstack import tracking

    monkeypatch.setenv("MLSTACK_HOME", str(trained_home))
    settings = Settings(home=trained_home)
    tracking.setup(settings)
    return settings


@pytest.fixture(scope="session")
def llm_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The data dir under which the tiny model's server announces itself."""
    return tmp_path_factory.mktemp("llm-home")


@pytest.fixture(scope="session")
def tiny_server(tiny_lm: Path, llm_home: Path) -> Iterator[tuple[str, str]]:
    """The OpenAI-compatible server for <tiny_lm> on loopback, started as the local provider starts it."""
    from mlstack.llm.local_server import local_server, stop_local_servers

    yield local_server(Settings(home=llm_home), tiny_lm)
    stop_local_servers()
