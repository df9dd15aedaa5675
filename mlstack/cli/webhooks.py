"""`mlstack serve-webhooks`: the GitHub and Slack webhook receiver (`mlstack.webhooks`)."""

from __future__ import annotations

import typer

from mlstack.cli.render import console, fail
from mlstack.cli.serving import LogLevel, is_loopback, log_level_option

app = typer.Typer()


@app.command("serve-webhooks")
def serve_webhooks(
    host: str | None = typer.Option(
        None, help="Interface to bind. Default: MLSTACK_WEBHOOKS_HOST (loopback)."
    ),
    port: int | None = typer.Option(None, help="Port. Default: MLSTACK_WEBHOOKS_PORT (8003)."),
    log_level: LogLevel = log_level_option(LogLevel.info),
) -> None:
    """Receive GitHub (POST /webhooks/github) and Slack (POST /webhooks/slack) deliveries.

    Each is verified against its secret (MLSTACK_WEBHOOKS_GITHUB_SECRET,
    MLSTACK_WEBHOOKS_SLACK_SIGNING_SECRET), recorded once, and sent to Prefect as an event, on
    which the rag-update deployment refreshes just the touched issue or thread. `mlstack up`
    starts it when a secret is set. It listens on loopback: reach it through a tunnel or an
    ingress (docs/webhooks.md); the signature, not the network, keeps strangers out.
    """
    from mlstack.settings import get_settings
    from mlstack.webhooks.app import serve

    settings = get_settings()
    hooks = settings.webhooks
    if hooks.github_secret is None and hooks.slack_signing_secret is None:
        raise fail(
            "no webhook secret is set, so every delivery would be refused: set"
            " MLSTACK_WEBHOOKS_GITHUB_SECRET and/or MLSTACK_WEBHOOKS_SLACK_SIGNING_SECRET",
            code=2,
        )
    host = host or hooks.host
    port = port or hooks.port
    if not is_loopback(host):
        console.print(f"note: {host} is reachable beyond this machine; signatures are checked")
    secrets = {"github": hooks.github_secret, "slack": hooks.slack_signing_secret}
    on = [name for name, secret in secrets.items() if secret is not None]
    console.print(f"receiving webhooks on http://{host}:{port}/webhooks/{{{','.join(on)}}}", highlight=False)
    serve(settings, host, port, log_level.value)
