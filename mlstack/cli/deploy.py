"""`mlstack up`, `mlstack down` and `mlstack deploy`: the local Prefect server, MLflow UI,
Evidently UI and worker, and the deployments of prefect.yaml on them (or on any Prefect API)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from mlstack.cli.render import JSON, show

if TYPE_CHECKING:
    from mlstack.deploy.project import DeployResult
    from mlstack.deploy.stack import StackResult

app = typer.Typer()


@app.command()
def up(as_json: bool = JSON) -> None:
    """Start, on loopback, a Prefect server (its database on Postgres), the MLflow UI on the
    flows' tracking store, the Evidently UI on the monitoring workspace (MLSTACK_ORCHESTRATION_EVIDENTLY_PORT,
    8002), a process worker for the `cpu` pool, and, once MLSTACK_WEBHOOKS_GITHUB_SECRET or
    MLSTACK_WEBHOOKS_SLACK_SIGNING_SECRET is set, the webhook receiver (`mlstack serve-webhooks`);
    state lives in the data dir.

    A second `up` reports what already runs. While they run, every `mlstack` command and the
    demo use this Prefect API (unless PREFECT_API_URL is set), so their runs show in its UI.
    Next: `mlstack deploy`.
    """
    from mlstack.deploy import stack
    from mlstack.settings import get_settings

    show(stack.up(get_settings()), render_stack, as_json)


@app.command()
def down(
    stop_postgres: bool = typer.Option(
        False,
        "--postgres",
        help="Also stop the embedded Postgres that flows and commands start and leave running;"
        " its data is kept, and the next command starts it again.",
    ),
    as_json: bool = JSON,
) -> None:
    """Stop exactly what `mlstack up` started, by pid; a stale pid file is removed, not trusted.

    The embedded Postgres keeps running between commands (a start costs about a second) unless
    `up` started it or --postgres is given; stopping it never deletes its data.
    """
    from mlstack.deploy import stack
    from mlstack.settings import get_settings

    show(stack.down(get_settings(), stop_postgres), render_stack, as_json)


@app.command()
def env(as_json: bool = JSON) -> None:
    """Print `export` lines that point the plain `prefect` and `mlflow` commands where `mlstack`
    points: `eval "$(mlstack env)"`, then `prefect flow-run ls` or `mlflow experiments search`.

    PREFECT_API_URL is your own when set, else `mlstack up`'s server while it runs (else left
    out: start one with `mlstack up`); MLFLOW_TRACKING_URI is `up`'s MLflow server, else the
    tracking store itself. With --json, the same variables as one object.
    """
    import shlex

    from mlstack.cli.render import err
    from mlstack.deploy import stack
    from mlstack.settings import get_settings

    variables = stack.environment(get_settings())
    if as_json:
        print(json.dumps(variables))
        return
    for name, value in variables.items():
        print(f"export {name}={shlex.quote(value)}")
    if "PREFECT_API_URL" not in variables:
        err.print("# no Prefect server runs for this data dir: `mlstack up` starts one", highlight=False)


@app.command()
def deploy(
    file: Path | None = typer.Option(None, "--file", help="The Prefect project file. Default: prefect.yaml."),
    pool: list[str] = typer.Option(
        [], "--pool", help="Move one pool's deployments to another, as FROM=TO (gpu=cpu without GPUs)."
    ),
    as_json: bool = JSON,
) -> None:
    """Create the work pools when missing, then apply every deployment in prefect.yaml to the
    Prefect API: `mlstack up`'s, or PREFECT_API_URL (with PREFECT_API_KEY for Prefect Cloud).

    The file is checked first: a missing entrypoint or pool is named, and nothing is applied.
    """
    import os

    from mlstack.cli.render import fail
    from mlstack.deploy import project, stack
    from mlstack.settings import get_settings

    settings = get_settings()
    swaps = {}
    for swap in pool:
        source, _, target = swap.partition("=")
        if not target:
            raise fail(f"--pool {swap!r}: give FROM=TO, for example gpu=cpu", code=2)
        swaps[source] = target
    if url := os.environ.get("PREFECT_API_URL"):
        api, source = url, "from PREFECT_API_URL"
    elif url := stack.running_api_url(settings):
        api, source = url, "started by `mlstack up`"
    else:
        raise fail("no Prefect API: start one with `mlstack up`, or set PREFECT_API_URL")
    show(project.deploy(settings, api, source, file, swaps), render_deploy, as_json)


def render_stack(result: StackResult) -> str:
    lines = []
    for service in result.services:
        where = service.url or (f"pid {service.pid}" if service.pid else "")
        pid = f" (pid {service.pid})" if service.url and service.pid else ""
        note = f"; {service.note}" if service.note else ""
        lines.append(f"{service.name:<9} {service.state:<14} {where}{pid}{note}".rstrip())
    if result.api_url:
        ui = result.api_url.removesuffix("/api")
        lines.append(f"the Prefect UI is {ui}; `mlstack deploy` applies prefect.yaml to it")
        lines.append('eval "$(mlstack env)" points the plain `prefect` and `mlflow` commands at them')
    return "\n".join(lines)


def render_deploy(result: DeployResult) -> str:
    created = f"created work pools: {', '.join(result.pools_created)}\n" if result.pools_created else ""
    listed = "\n".join(f"  {name}" for name in result.deployments)
    waiting = "".join(
        f"\nno worker polls the {pool} pool, so the UI shows it 'Not Ready' and the runs of its"
        f" {len(names)} deployments wait: start `prefect worker start --pool {pool}` where its"
        f" machines are, or deploy again with --pool {pool}=cpu to run them on this one"
        for pool, names in result.unpolled.items()
    )
    return f"{created}applied {len(result.deployments)} deployments to {result.api_url}:\n{listed}{waiting}"
