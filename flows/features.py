"""Feature pipeline: validated data -> offline feature tables -> feast apply -> materialize.

Aggregates (a driver's 7-day pace) are computed from validated trips and written, with the
hourly stats, to the offline store's parquet files. `apply` registers the definitions in
feature_repo/, and materialization loads the online store up to the newest reading, carrying
on from where the last run stopped.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import mlstack.bootstrap  # noqa: F401  (before prefect: sets its environment defaults)

from prefect import flow, get_run_logger, task
from prefect.cache_policies import NONE
from pydantic import BaseModel, Field

from mlstack import features
from mlstack.settings import get_settings


class FeaturesParams(BaseModel):
    validated_dir: Path | None = Field(
        default=None, description="Validated data folder. Default: validated/ in the data dir."
    )


class FeaturesResult(BaseModel):
    views: list[str] = Field(description="The Feast feature views applied.")
    online_until: datetime = Field(description="The online store holds readings up to here.")
    tables: dict[str, Path] = Field(description="The offline feature tables.")


@task(name="build-feature-tables", cache_policy=NONE)
def build_tables(validated_dir: Path) -> dict[str, Path]:
    paths = features.build_from_validated(validated_dir)
    for name, path in paths.items():
        get_run_logger().info("%s -> %s", name, path)
    return paths


@task(name="feast-apply", cache_policy=NONE)
def apply_definitions() -> list[str]:
    return features.apply_repo(features.feature_store())


@task(name="feast-materialize", cache_policy=NONE)
def materialize() -> datetime:
    loaded_until = features.materialize_offline(features.feature_store())
    get_run_logger().info("online store loaded up to %s", loaded_until)
    return loaded_until.to_pydatetime()


@flow(name="features", log_prints=False)  # Feast prints ANSI progress and UDF bytecode
def features_flow(params: FeaturesParams = FeaturesParams()) -> FeaturesResult:
    """Build offline features from validated data, apply the Feast repo, materialize online."""
    paths = build_tables(params.validated_dir or get_settings().validated_dir)
    views = apply_definitions()
    loaded_until = materialize(wait_for=[paths, views])
    return FeaturesResult(views=views, online_until=loaded_until, tables=paths)


if __name__ == "__main__":
    features_flow()
