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
for _var in ("MLSTACK_PG_DSN", "MLFLOW_TRACKING_URI", "MLSTACK_DATA_MAX_BAD_ROW_SHARE", "PREFECT_API_URL"):
    os.environ.pop(_var, None)
# The commands a test starts run cold, each importing its own (tests/kill.py says so too): a warm
# process per test's environment would outlive the test. tests/mlstack/deploy/test_warm.py runs
# them warm.
os.environ["MLSTACK_ORCHESTRATION_WARM"] = "false"
# The tests pick their LLM provider themselves; a developer's real key must never be used.
for _var in [v for v in os.environ if v.startswith(("OPENAI_", "MLSTACK_LLM_", "MLSTACK_EMBEDDING_"))]:
    os.environ.pop(_var)
# Under pytest-xdist each worker is one of the cores: torch, and the BLAS under numpy and
# scikit-learn, take one thread each, in the worker and in every command it starts, instead of
# every worker's libraries spinning a thread per core against one another.
if int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1")) > 1:
    for _var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ.setdefault(_var, "1")
# No request of the suite leaves this machine: every HTTP client that honours the proxy variables
# (requests under apprise and MLflow, httpx under Prefect and openai, urllib) is sent to a loopback
# port where nothing listens, so a request to the outside world is refused at once, while loopback
# bypasses it. The variables reach every command a test starts (tests/kill.py copies os.environ).
NOWHERE = "http://127.0.0.1:9"
LOOPBACK = "127.0.0.1,localhost,::1"
for _var in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy"):
    os.environ[_var] = NOWHERE
for _var in ("NO_PROXY", "no_proxy"):
    os.environ[_var] = LOOPBACK

# Now, whichever tests are collected: its process-wide defaults (Prefect's database, results)
# must point at the session's home, never at the home of whichever test first imports it.
import mlstack.bootstrap  # noqa: E402, F401

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


# The fixtures that start a service (or build on one that does). A test that requests one is an
# end-to-end test and must be marked slow, so that `-m "not slow"` starts none: checked at
# collection (pytest_collection_modifyitems), and at run time by `no_services_unless_slow`.
SERVICE_FIXTURES = frozenset(
    {
        "prefect_harness",
        "pg_settings",
        "rag_settings",
        "trained_home",
        "in_trained_home",
        "own_trained_home",
        "tiny_server",
    }
)


def unmarked_service_users(items: list[pytest.Item]) -> list[str]:
    """`nodeid: fixtures` for each item not marked slow that requests a service fixture."""
    found = []
    for item in items:
        wanted = SERVICE_FIXTURES & set(getattr(item, "fixturenames", ()))
        if wanted and item.get_closest_marker("slow") is None:
            found.append(f"{item.nodeid}: {', '.join(sorted(wanted))}")
    return found


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if unmarked := unmarked_service_users(items):
        raise pytest.UsageError(
            "these tests start services but are not marked slow (add @pytest.mark.slow, or"
            " pytestmark = pytest.mark.slow for the module):\n  " + "\n  ".join(unmarked)
        )
    # Slowest files first, so that the last worker to finish is not left alone with a long one.
    # .test_durations is pytest-split's record (refresh: pytest --store-durations); a file it
    # does not know yet counts as slow when marked so.
    durations = _recorded_durations(config.rootpath / ".test_durations")
    per_file: dict[str, float] = {}
    for item in items:
        path = item.nodeid.split("::", 1)[0]
        seconds = durations.get(item.nodeid, 30.0 if item.get_closest_marker("slow") else 0.1)
        per_file[path] = per_file.get(path, 0.0) + seconds
    # sorted() is stable: within a file the tests keep their written order.
    items.sort(key=lambda item: -per_file[item.nodeid.split("::", 1)[0]])


def _recorded_durations(path: Path) -> dict[str, float]:
    import json

    return json.loads(path.read_text()) if path.is_file() else {}


@pytest.fixture(autouse=True)
def no_services_unless_slow(
    request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> Iterator[None]:
    """A test not marked slow that reaches a service anyway (an embedded Postgres, a model
    server, a temporary or ephemeral Prefect API) fails at that call, naming what it started."""
    if request.node.get_closest_marker("slow") is not None:
        yield
        return
    from prefect.settings import PREFECT_SERVER_EPHEMERAL_ENABLED, temporary_settings

    import mlstack.deploy.api
    import mlstack.llm.local_server
    import mlstack.postgres

    def refuse(what: str):
        def refused(*args: object, **kwargs: object):
            pytest.fail(f"{request.node.nodeid} starts {what}: mark it @pytest.mark.slow", pytrace=False)

        return refused

    # The server's start itself, so that refusals checked before it (an old data dir) stay fast.
    monkeypatch.setattr(mlstack.postgres._package(), "get_server", refuse("the embedded Postgres"))
    monkeypatch.setattr(mlstack.llm.local_server, "_start_server", refuse("a local model server"))
    monkeypatch.setattr(mlstack.deploy.api, "ensure_api", refuse("a Prefect API for a flow run"))
    # A flow called with no API configured would start Prefect's own ephemeral server: refused.
    with temporary_settings({PREFECT_SERVER_EPHEMERAL_ENABLED: False}):
        yield


@pytest.fixture(autouse=True)
def mlstack_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Each test gets its own data dir."""
    home = tmp_path / "mlstack-home"
    monkeypatch.setenv("MLSTACK_HOME", str(home))
    # A command run in this process without the harness starts the data dir's local Prefect API:
    # let it stop soon after the test instead of idling its ten minutes (about 250 MB each).
    from tests.kill import API_IDLE_S

    monkeypatch.setenv("MLSTACK_ORCHESTRATION_API_IDLE_S", API_IDLE_S)
    # A flow run from the CLI in this process exports the API it found or started: keep it from
    # reaching the next test (monkeypatch restores the variable's absence at teardown).
    monkeypatch.delenv("PREFECT_API_URL", raising=False)
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
    from mlstack import features, registry, tracking
    from mlstack.data.validation import validate_paths, write_validated
    from mlstack.features import LABEL
    from models.tabular import registry as tabular_registry
    from models.tabular.train import features_of, train

    previous = os.environ["MLSTACK_HOME"]
    previous_uri = os.environ.pop("MLFLOW_TRACKING_URI", None)
    os.environ["MLSTACK_HOME"] = str(home)
    # Session fixtures start before the per-test cleanup: drop a tracking URI an earlier test
    # exported, or this model would be registered in that test's store.
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
        tabular_registry.gate(version, features_of(test), test[LABEL], settings.tracking.promotion_margin)
    finally:
        # tracking.setup exported this home's store: a test that requested the session's trained
        # home would otherwise register its own models there, and every later test see them.
        os.environ["MLSTACK_HOME"] = previous
        os.environ.pop("MLFLOW_TRACKING_URI", None)
        if previous_uri is not None:
            os.environ["MLFLOW_TRACKING_URI"] = previous_uri


def copy_trained_home(source: Path, dest: Path) -> Path:
    """A trained home of a test's own, copied from `source` in about a second instead of built in
    about 40: the files, with each absolute path to `source` rewritten to `dest` where the stores
    keep one (MLflow's SQLite store, Feast's registry and its config). The embedded Postgres is
    not copied (a running server's files): the copy starts its own, empty, on first use."""
    import sqlite3

    from feast.protos.feast.core.Registry_pb2 import Registry
    from google.protobuf import text_format

    old, new = str(source), str(dest)
    pg = Settings(home=source).pg_dir
    shutil.copytree(source, dest, ignore=lambda folder, names: [n for n in names if Path(folder, n) == pg])
    settings = Settings(home=dest)
    with sqlite3.connect(settings.mlflow_dir / "mlflow.db") as db:
        tables = [row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
        for table in tables:
            for column in db.execute(f"PRAGMA table_info('{table}')").fetchall():
                if column[2].upper().startswith(("VARCHAR", "TEXT")):
                    db.execute(
                        f'UPDATE "{table}" SET "{column[1]}" = replace("{column[1]}", ?, ?)'
                        f' WHERE instr("{column[1]}", ?) > 0',
                        (old, new, old),
                    )
    config = dest / "feast" / "feature_store.yaml"
    config.write_text(config.read_text().replace(old, new))
    registry_path = dest / "feast" / "registry.db"
    registry = Registry.FromString(registry_path.read_bytes())
    text = text_format.MessageToString(registry).replace(old, new)
    registry_path.write_bytes(text_format.Parse(text, Registry()).SerializeToString())
    return dest


@pytest.fixture
def own_trained_home(
    trained_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Settings]:
    """A copy of the session's trained home that this test may change (train, promote, append),
    as the data dir in use; its Postgres, if the test starts one, is stopped at the end."""
    from mlstack import tracking
    from mlstack.postgres import stop_embedded

    home = copy_trained_home(trained_home, tmp_path / "trained")
    monkeypatch.setenv("MLSTACK_HOME", str(home))
    settings = Settings(home=home)
    tracking.setup(settings)
    forget_artifact_locations()
    yield settings
    forget_artifact_locations()
    stop_embedded(settings.pg_dir)


def forget_artifact_locations() -> None:
    """MLflow caches each run's artifact store by run id alone, and a copied home has the same
    run ids as its original: forget them when a test moves between the two, or one's artifacts
    would land in the other's folder."""
    from mlflow.tracking._tracking_service import utils

    utils._artifact_repos_cache.clear()


@pytest.fixture(scope="session")
def trained_home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A data dir with six days of validated data, Feast applied and materialized, and a champion."""
    from filelock import FileLock

    from mlstack.postgres import stop_embedded

    # Built once per run (about 40 s) into a pristine folder no test touches, and copied into
    # each xdist worker (about 1 s): the workers share the run's base temp folder.
    base = tmp_path_factory.getbasetemp()
    shared = base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base
    pristine = shared / "trained-pristine"
    with FileLock(shared / "trained-pristine.lock"):
        if not (pristine / ".built").is_file():
            shutil.rmtree(pristine, ignore_errors=True)  # a build that died half-way
            build_trained_home(pristine)
            (pristine / ".built").touch()
    home = copy_trained_home(pristine, tmp_path_factory.mktemp("trained") / "home")
    forget_artifact_locations()  # this process may have built the pristine one
    yield home
    stop_embedded(Settings(home=home).pg_dir)


@pytest.fixture
def in_trained_home(trained_home: Path, monkeypatch: pytest.MonkeyPatch) -> Settings:
    """Run the test against the trained data dir (MLflow pointed there too)."""
    from mlstack import tracking

    monkeypatch.setenv("MLSTACK_HOME", str(trained_home))
    settings = Settings(home=trained_home)
    tracking.setup(settings)
    forget_artifact_locations()
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
