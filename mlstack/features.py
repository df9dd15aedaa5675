"""Feature engineering and the Feast store: offline tables, apply, materialize and retrieval.

Feast is imported lazily (about 5 s). The definitions live in `feature_repo/definitions.py`,
so `feast apply` from that folder and the SDK calls here see the same objects.
"""

from __future__ import annotations

import contextlib
import importlib.util
import io
import threading
import warnings
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from mlstack import locks
from mlstack.errors import NotReady
from mlstack.io import atomic_file, staged_dir, write_parquet
from mlstack.settings import MODEL_NAME, Settings, get_settings, project_root

if TYPE_CHECKING:
    from feast import FeatureStore

FEATURE_SERVICE = MODEL_NAME
PACE_WINDOW = pd.Timedelta(days=7)
DISTANCE_EDGES = (2.0, 5.0, 10.0, 20.0)  # buckets: <2, 2-5, 5-10, 10-20, >=20 km
ENTITY_COLUMNS = ["trip_id", "driver_id", "pickup_zone", "dropoff_zone", "requested_at", "distance_km"]
LABEL = "duration_s"

# What the model reads, in order: request fields, then features as Feast names them
# (full_feature_names=True, so the two zone projections do not collide).
REQUEST_COLUMNS = ["distance_km", "passenger_count", "pickup_zone", "dropoff_zone"]
FEAST_FEATURES = [
    "driver_hourly__avg_speed_kmh",
    "driver_hourly__acceptance_rate",
    "driver_hourly__rating",
    "driver_hourly__trips_today",
    "driver_hourly__pace_7d_s_per_km",
    "pickup_zone__congestion_index",
    "pickup_zone__avg_speed_kmh",
    "pickup_zone__demand_1h",
    "dropoff_zone__congestion_index",
    "dropoff_zone__avg_speed_kmh",
    "dropoff_zone__demand_1h",
    "trip_request_features__hour_of_day",
    "trip_request_features__weekday",
    "trip_request_features__is_weekend",
    "trip_request_features__distance_bucket",
]
MODEL_FEATURES = REQUEST_COLUMNS + FEAST_FEATURES
REQUEST_VIEW = "trip_request_features"  # the on-demand view
STORED_FEATURES = [f for f in FEAST_FEATURES if not f.startswith(f"{REQUEST_VIEW}__")]
STORED_SERVICE = f"{FEATURE_SERVICE}_stored"  # the materialized views only, for online serving
ONLINE_KEYS = ("driver_id", "pickup_zone", "dropoff_zone")
CATEGORICAL_FEATURES = ["pickup_zone", "dropoff_zone"]


@dataclass(frozen=True)
class TabularSpec:
    """What a tabular model reads from its training frame: the row id, the time the rows are
    split by, the label, and the features in order (those in `categorical` are category codes).
    The trip-duration model's is `TRIPS`; a project of one's own (`mlstack new --pattern
    tabular`) names its table's columns and passes its spec to training, the gate and drift."""

    id: str
    time: str
    label: str
    features: tuple[str, ...]
    categorical: tuple[str, ...] = ()
    dataset: str = "train"  # the training dataset's name in MLflow


TRIPS = TabularSpec(
    id="trip_id",
    time="requested_at",
    label=LABEL,
    features=tuple(MODEL_FEATURES),
    categorical=tuple(CATEGORICAL_FEATURES),
    dataset="trip_duration_train",
)


NS_PER_HOUR = 3_600_000_000_000
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
MICROSECOND = timedelta(microseconds=1)
EPOCH_WEEKDAY = 3  # 1970-01-01 was a Thursday


def request_feature_values(epoch_ns: np.ndarray, distance_km: np.ndarray) -> dict[str, np.ndarray]:
    """Request-time features from epoch nanoseconds (UTC) and distances: integer arithmetic, as
    pandas' datetime accessors would cost milliseconds per online request."""
    hours = epoch_ns // NS_PER_HOUR
    weekday = (hours // 24 + EPOCH_WEEKDAY) % 7
    return {
        "hour_of_day": hours % 24,
        "weekday": weekday,
        "is_weekend": (weekday >= 5).astype("int64"),
        "distance_bucket": np.searchsorted(DISTANCE_EDGES, distance_km, side="right"),
    }


def request_features(inputs: pd.DataFrame) -> pd.DataFrame:
    """Request-time features, the same online and offline (Feast's on-demand view)."""
    # cache=False: pandas' cache check walks the column in Python (0.3 s for 20k rows, a third
    # of batch scoring); request times are nearly all distinct, so the cache never pays.
    ns = (
        pd.to_datetime(inputs["requested_at"], utc=True, cache=False)
        .to_numpy(dtype="datetime64[ns]")
        .astype("int64")
    )
    values = request_feature_values(ns, inputs["distance_km"].to_numpy(float))
    return pd.DataFrame(values, index=inputs.index)


def offline_paths(settings: Settings | None = None) -> dict[str, Path]:
    base = (settings or get_settings()).data_dir / "features"
    return {"driver_hourly": base / "driver_hourly.parquet", "zone_hourly": base / "zone_hourly.parquet"}


def driver_pace(trips: pd.DataFrame, at: pd.DataFrame) -> pd.Series:
    """Mean seconds per km of each driver's trips completed in the 7 days up to each `at` time.

    A trip counts once it has ended (requested_at + duration), so the value at time t uses only
    what was known at t. Two as-of lookups on running sums give every window in one pass.
    """
    done = trips.assign(
        completed=trips["requested_at"] + pd.to_timedelta(trips[LABEL], unit="s"),
        pace=trips[LABEL] / trips["distance_km"],
    ).sort_values("completed")
    done["pace_sum"] = done.groupby("driver_id")["pace"].cumsum()
    done["count"] = done.groupby("driver_id").cumcount() + 1
    running = done[["driver_id", "completed", "pace_sum", "count"]]

    def as_of(times: pd.Series) -> pd.DataFrame:
        query = pd.DataFrame(
            {"driver_id": at["driver_id"].to_numpy(), "t": times.to_numpy(), "i": range(len(at))}
        )
        merged = pd.merge_asof(
            query.sort_values("t"), running, left_on="t", right_on="completed", by="driver_id"
        ).sort_values("i")
        return merged[["pace_sum", "count"]].fillna(0.0).to_numpy()

    now = as_of(at["event_timestamp"])
    before = as_of(at["event_timestamp"] - PACE_WINDOW)
    total, count = (now - before).T
    with np.errstate(invalid="ignore", divide="ignore"):
        return pd.Series(np.where(count > 0, total / count, np.nan), index=at.index).round(2)


def build_feature_tables(validated: dict[str, pd.DataFrame]) -> dict[str, pd.DataFrame]:
    """Offline feature tables from validated data: driver stats with pace, zone stats."""
    stats = validated["driver_stats"]
    driver = stats.assign(pace_7d_s_per_km=driver_pace(validated["trips"], stats))
    zone = validated["zone_stats"].copy()
    return {"driver_hourly": driver, "zone_hourly": zone}


def write_feature_tables(
    tables: dict[str, pd.DataFrame], settings: Settings | None = None
) -> dict[str, Path]:
    paths = offline_paths(settings)
    folder = next(iter(paths.values())).parent
    with locks.file_lock(folder), staged_dir(folder) as staging:
        for name, df in tables.items():
            write_parquet(df, staging / paths[name].name)
    return paths


# --- Feast ------------------------------------------------------------------------------------


def repo_path() -> Path:
    return project_root() / "feature_repo"


def _import_feast() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import feast  # noqa: F401
    # After the import: Feast resets warning filters when it loads. Our on-demand view is small
    # and the offline "experimental" warning would print on every training run.
    warnings.filterwarnings("ignore", message="On demand feature view is an experimental feature")


def store_config(home: Path) -> dict[str, Any]:
    """The one description of the store, for a data dir: the SDK builds it in Python, and
    `store_yaml` writes it where the feast CLI reads it (`feature_repo/feature_store.yaml` is the
    same for the default data dir, and a test holds the two together)."""
    feast_dir = home / "feast"
    return {
        "project": "mlstack",
        "provider": "local",
        "registry": str(feast_dir / "registry.db"),
        "online_store": {"type": "sqlite", "path": str(feast_dir / "online.db")},
        "offline_store": {"type": "duckdb"},
        "entity_key_serialization_version": 3,
    }


def store_yaml(settings: Settings) -> Path:
    """`feast/feature_store.yaml` in the data dir, with its absolute paths: what `feast -f` reads
    so that `feast ui` and `feast serve` work on the data dir in use, wherever it is."""
    import yaml

    path = settings.home / "feast" / "feature_store.yaml"
    text = "# Written by mlstack for this data dir; `mlstack features ui|serve` run feast with it.\n"
    text += yaml.safe_dump(store_config(settings.home), sort_keys=False)
    if not path.is_file() or path.read_text() != text:
        with atomic_file(path) as tmp:
            tmp.write_text(text)
    return path


def feature_store(settings: Settings | None = None, repo: Path | None = None) -> FeatureStore:
    """The store, configured from settings (the same layout as feature_store.yaml, moved with
    home), over `repo`'s definitions: this project's feature_repo/ unless another is named."""
    _import_feast()
    from feast import FeatureStore, RepoConfig

    settings = settings or get_settings()
    repo = repo or repo_path()
    (settings.home / "feast").mkdir(parents=True, exist_ok=True)
    store_yaml(settings)
    config = RepoConfig(**store_config(settings.home), repo_path=str(repo))
    return FeatureStore(config=config, repo_path=str(repo))


@cache
def _definitions_module(path: Path, home: Path) -> Any:
    """The repo's definitions, evaluated once per data dir: their sources point into it."""
    spec = importlib.util.spec_from_file_location("mlstack_feature_repo", path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def definitions(repo: Path | None = None) -> list[Any]:
    """Every Feast object defined in `repo`'s definitions.py (feature_repo/'s by default)."""
    _import_feast()
    from feast import Entity, FeatureService, FeatureView, OnDemandFeatureView, Project
    from feast.data_source import DataSource

    kinds = (Project, Entity, DataSource, FeatureView, OnDemandFeatureView, FeatureService)
    module = _definitions_module((repo or repo_path()) / "definitions.py", get_settings().home)
    return [obj for obj in vars(module).values() if isinstance(obj, kinds)]


def _registry_lock(store: FeatureStore) -> contextlib.AbstractContextManager[None]:
    """Feast's file registry is read, changed and rewritten whole by apply and materialize."""
    return locks.file_lock(Path(store.config.registry.path).parent)


def apply(store: FeatureStore) -> None:
    # Re-applying a changed on-demand view makes Feast print its UDF's bytecode to stdout.
    with _registry_lock(store), contextlib.redirect_stdout(io.StringIO()):
        store.apply(definitions(Path(store.repo_path)))


def build_from_validated(validated_dir: Path, export_dir: Path | None = None) -> dict[str, Path]:
    """The offline feature tables from validated data, written where the store reads them (and,
    for DVC, also copied to `export_dir`); returns where each table landed."""
    from mlstack.data import validation

    tables = build_feature_tables(validation.read_validated(validated_dir))
    paths = write_feature_tables(tables)
    for name, df in tables.items() if export_dir else ():
        write_parquet(df, export_dir / f"{name}.parquet")
    return paths


def apply_repo(store: FeatureStore) -> list[str]:
    """Register feature_repo's definitions; returns the feature views now applied."""
    apply(store)
    return sorted(view.name for view in store.list_feature_views())


def build_and_apply(validated_dir: Path, export_dir: Path | None = None) -> tuple[dict[str, Path], list[str]]:
    """The features flow's first two steps in one call (`mlstack features apply`, DVC's stage):
    the offline tables, then the definitions; materializing stays a step of its own."""
    paths = build_from_validated(validated_dir, export_dir)
    return paths, apply_repo(feature_store())


def materialize(store: FeatureStore, end: datetime, start: datetime | None = None) -> None:
    """Load the online store with values up to `end`, carrying on from where the last run stopped.

    Feast's incremental mode starts a never-materialized view at now minus its TTL, which for
    historical data loads nothing; so a first run covers `start` (the data's first timestamp).
    """
    # Feast prints coloured progress to stdout; the flows log their own summary instead.
    with _registry_lock(store), contextlib.redirect_stdout(io.StringIO()):
        views = store.list_feature_views()
        fresh = any(not view.materialization_intervals for view in views)
        if fresh and start is not None:
            store.materialize(start_date=start, end_date=end)
        else:
            store.materialize_incremental(end_date=end)


def materialize_offline(store: FeatureStore, settings: Settings | None = None) -> pd.Timestamp:
    """Materialize up to the newest reading in the offline tables; returns that instant."""
    paths = offline_paths(settings)
    missing = [str(p) for p in paths.values() if not p.is_file()]
    if missing:
        raise NotReady(f"no offline feature tables at {', '.join(missing)}; run `mlstack features apply`")
    stamps = pd.concat([pd.read_parquet(p, columns=["event_timestamp"]) for p in paths.values()])[
        "event_timestamp"
    ]
    end = stamps.max() + pd.Timedelta(seconds=1)  # Feast's end bound is exclusive of nothing later
    materialize(store, end=end.to_pydatetime(), start=stamps.min().to_pydatetime())
    return end


# Feast's DuckDB offline store shares one ibis connection per process, and two threads retrieving
# at once deadlock in it (seen with batch scoring's partitions on the thread runner). One
# retrieval at a time per process; Dask workers are processes and still retrieve in parallel.
_OFFLINE_LOCK = threading.Lock()


def historical_features(store: FeatureStore, trips: pd.DataFrame) -> pd.DataFrame:
    """Point-in-time correct features for each trip, in the trips' order (Feast does not keep it)."""
    entity = trips[[*ENTITY_COLUMNS, *[c for c in ("passenger_count", LABEL) if c in trips]]]
    return point_in_time(store, entity, FEATURE_SERVICE, TRIPS)


def point_in_time(store: FeatureStore, rows: pd.DataFrame, service: str, spec: TabularSpec) -> pd.DataFrame:
    """`rows` with the feature service's features as of each row's `spec.time` (full feature
    names, `view__feature`), in the rows' order; ids must be unique."""
    entity = rows.assign(event_timestamp=rows[spec.time])
    with _OFFLINE_LOCK:
        job = store.get_historical_features(
            entity_df=entity, features=feature_service(store, service), full_feature_names=True
        )
        out = job.to_df()
    return out.set_index(spec.id).loc[entity[spec.id]].reset_index()


def feature_service(store: FeatureStore, name: str = FEATURE_SERVICE) -> Any:
    """A feature service. Resolve it once and reuse it: each resolution rebuilds objects from
    protobuf, and a non-cached registry read resets Feast's request cache (20 ms vs 2)."""
    return store.get_feature_service(name, allow_cache=True)


def online_features(store: FeatureStore, rows: list[dict[str, Any]], service: Any = None) -> pd.DataFrame:
    """Online features for request rows holding driver_id, zones, requested_at and distance_km:
    the FEAST_FEATURES columns in order, as float64 (missing: NaN). `service`, when given, is
    the resolved `trip_duration_stored` service (resolving it per call costs a registry read).

    Feast serves the stored views (service `trip_duration_stored`); the request-time features
    come from `request_feature_values`, the function the on-demand view wraps, so they are the
    same numbers (a test holds this path to Feast's full service). Through Feast, the on-demand
    view costs about 2.4 ms per call (Arrow to pandas and back around a one-row frame): three
    times the stored lookup and more than the model. Its python mode, which avoids that, drops
    its outputs when full feature names are asked for (Feast 0.67).
    """
    response = store.get_online_features(
        features=service or feature_service(store, STORED_SERVICE),
        entity_rows=[{key: row[key] for key in ONLINE_KEYS} for row in rows],
        full_feature_names=True,
    )
    # Feast's to_arrow() is built from to_dict(); for a few rows the lists are the cheaper way.
    stored = response.to_dict()
    columns = {name: np.array(stored[name], dtype=np.float64) for name in STORED_FEATURES}  # None: NaN
    epoch_ns = np.array([(row["requested_at"] - EPOCH) // MICROSECOND for row in rows], dtype=np.int64) * 1000
    distance = np.array([row["distance_km"] for row in rows], dtype=np.float64)
    for name, values in request_feature_values(epoch_ns, distance).items():
        columns[f"{REQUEST_VIEW}__{name}"] = values
    matrix = np.column_stack([columns[name] for name in FEAST_FEATURES]).astype(np.float64)
    return pd.DataFrame(matrix, columns=FEAST_FEATURES)
