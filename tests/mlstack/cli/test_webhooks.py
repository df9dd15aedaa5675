"""`mlstack serve-webhooks` refuses to start when every delivery would be refused, and says what
to set; the receiver itself is tested running in tests/mlstack/webhooks/test_app.py."""

from __future__ import annotations

from typer.testing import CliRunner

from mlstack.cli.root import app


def test_serve_webhooks_without_a_secret_names_the_settings_and_exits_2(monkeypatch) -> None:
    for name in (
        "MLSTACK_WEBHOOKS_GITHUB_SECRET",
        "MLSTACK_GITHUB_WEBHOOK_SECRET",
        "MLSTACK_WEBHOOKS_SLACK_SIGNING_SECRET",
        "MLSTACK_SLACK_SIGNING_SECRET",
    ):
        monkeypatch.delenv(name, raising=False)
    result = CliRunner().invoke(app, ["serve-webhooks"])
    assert result.exit_code == 2
    assert "MLSTACK_WEBHOOKS_GITHUB_SECRET" in result.output and "SLACK_SIGNING_SECRET" in result.output


def test_its_help_says_where_deliveries_go_and_how_to_expose_it() -> None:
    result = CliRunner().invoke(app, ["serve-webhooks", "--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0
    assert "/webhooks/github" in result.output and "tunnel" in result.output
