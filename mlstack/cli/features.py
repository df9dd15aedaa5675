"""`mlstack features`: the Feast feature store: build, apply, materialize."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import typer

from mlstack.cli.render import console

app = typer.Typer(help="The Feast feature store: build, apply, materialize.", no_args_is_help=True)


@app.command("apply")
def apply_command(
    validated: Path | None = typer.Option(
        None, help="Validated data folder. Default: validated/ in the data dir."
    ),
    export: Path | None = typer.Option(None, help="Also copy the offline tables here (a DVC output)."),
) -> None:
    """Build the offline feature tables from validated data and register the Feast definitions."""
    from mlstack import features
    from mlstack.data import validation
    from mlstack.io import write_parquet
    from mlstack.settings import get_settings

    folder = validated or get_settings().validated_dir
    tables = features.build_feature_tables(validation.read_validated(folder))
    paths = features.write_feature_tables(tables)
    if export:
        for name, df in tables.items():
            write_parquet(df, export / f"{name}.parquet")
    features.apply(features.feature_store())
    console.print(render_applied(len(features.definitions()), paths), highlight=False)


def render_applied(objects: int, tables: dict[str, Path]) -> str:
    return f"applied {objects} Feast objects; offline tables: {', '.join(map(str, tables.values()))}"


@app.command("materialize")
def materialize_command() -> None:
    """Load the online store up to the newest offline reading (incremental after the first run)."""
    from mlstack import features

    loaded_until = features.materialize_offline(features.feature_store())
    console.print(render_materialized(loaded_until.to_pydatetime()), highlight=False)


def render_materialized(loaded_until: datetime) -> str:
    return f"online store loaded up to {loaded_until}"
