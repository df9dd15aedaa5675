"""`mlstack features`: the Feast feature store: build, apply, materialize."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import typer

from mlstack.cli.render import console, fail

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
    from mlstack.settings import get_settings

    paths, views = features.build_and_apply(validated or get_settings().validated_dir, export)
    console.print(render_applied(views, paths), highlight=False)


def render_applied(views: list[str], tables: dict[str, Path]) -> str:
    return f"applied feature views {', '.join(views)}; offline tables: {', '.join(map(str, tables.values()))}"


@app.command("materialize")
def materialize_command() -> None:
    """Load the online store up to the newest offline reading (incremental after the first run)."""
    from mlstack import features

    loaded_until = features.materialize_offline(features.feature_store())
    console.print(render_materialized(loaded_until.to_pydatetime()), highlight=False)


def render_materialized(loaded_until: datetime) -> str:
    return f"online store loaded up to {loaded_until}"


def _feast(command: str, host: str, port: int) -> None:
    """Run the feast CLI's `command` on the data dir in use, in place of this process."""
    import os
    import sys

    from mlstack import features, processes
    from mlstack.settings import get_settings

    settings = get_settings()
    registry = Path(features.store_config(settings.home)["registry"])
    if not registry.is_file():
        raise fail(f"no Feast registry at {registry}: run `mlstack features apply` first")
    yaml_path = features.store_yaml(settings)
    argv = [processes.console_script("feast"), "-c", str(features.repo_path()), "-f", str(yaml_path)]
    argv += [command, "--host", host, "--port", str(port)]
    console.print(f"feast {command} on http://{host}:{port} for {settings.home}", highlight=False)
    sys.stdout.flush()  # exec replaces the process, buffers and all
    # The definitions resolve their sources from MLSTACK_HOME: the same data dir as the yaml's.
    os.execve(argv[0], argv, {**os.environ, "MLSTACK_HOME": str(settings.home)})


@app.command("ui")
def ui_command(
    host: str = typer.Option("127.0.0.1", help="Interface to bind."),
    port: int = typer.Option(8888, help="Port."),
) -> None:
    """Feast's web UI on this data dir's registry: `feast ui` with the data dir's
    feature_store.yaml (`feast -c feature_repo -f .mlstack/feast/feature_store.yaml ui`)."""
    _feast("ui", host, port)


@app.command("serve")
def serve_command(
    host: str = typer.Option("127.0.0.1", help="Interface to bind."),
    port: int = typer.Option(6566, help="Port."),
) -> None:
    """Feast's feature server (POST /get-online-features) on this data dir's online store:
    `feast serve` with the data dir's feature_store.yaml."""
    _feast("serve", host, port)
