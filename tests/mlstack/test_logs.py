"""Every log record is scrubbed of secrets; a known failure is logged without its traceback."""

from __future__ import annotations

import logging

import pytest

from mlstack import logs
from mlstack.errors import InputError


@pytest.fixture
def records(monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    monkeypatch.setenv("MLSTACK_MONITORING_ALERT_URLS", "slack://TOKACANARY/TOKBCANARY/TOKCCANARY")
    monkeypatch.setenv("OPENAI_API_KEY", "sk-CANARYOPENAI")
    logs.install()
    caplog.set_level(logging.INFO)
    return caplog


def test_secrets_are_scrubbed_from_messages_and_tracebacks(records: pytest.LogCaptureFixture) -> None:
    log = logging.getLogger("apprise")  # any library's logger: the factory sees every record
    log.warning("posting to %s with key %s", "slack://TOKACANARY/TOKBCANARY/TOKCCANARY", "sk-CANARYOPENAI")
    try:
        raise ConnectionError("Max retries exceeded with url: /services/TOKACANARY/TOKBCANARY/TOKCCANARY")
    except ConnectionError:
        log.exception("delivery failed")
    text = "\n".join(records.messages) + records.text
    assert "CANARY" not in text
    assert "posting to ****" in records.messages[0]
    assert "Traceback" in records.text, "an unknown failure keeps its traceback"


def test_a_known_failure_is_one_line(records: pytest.LogCaptureFixture) -> None:
    try:
        raise InputError("no trips in that window; pick another")
    except InputError as exc:
        logging.getLogger("prefect.task_runs").error("Task run failed with exception: %r", exc, exc_info=True)
    assert records.records[-1].exc_info is None
    assert "Traceback" not in records.text and "pick another" in records.text


def test_install_is_idempotent() -> None:
    logs.install()
    factory = logging.getLogRecordFactory()
    logs.install()
    assert logging.getLogRecordFactory() is factory


def test_a_malformed_log_call_is_left_to_logging_s_own_error_handling(
    records: pytest.LogCaptureFixture,
) -> None:
    record = logging.LogRecord("x", logging.WARNING, __file__, 1, "two %s %s", ("arg",), None)
    assert logs.clean(record) is record, "the factory does not raise in the caller's log call"
    assert record.args == ("arg",)
