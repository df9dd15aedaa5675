"""Settings: embedded defaults under one data dir, each overridable from the environment."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from mlstack.settings import get_settings, project_root


def test_defaults_are_local_and_under_home(mlstack_home: Path) -> None:
    s = get_settings()
    assert s.home == mlstack_home.resolve()
    assert s.pg_dsn is None
    assert s.tracking_uri == f"sqlite:///{mlstack_home.resolve() / 'mlflow' / 'mlflow.db'}"
    for derived in (
        s.data_dir,
        s.raw_dir,
        s.validated_dir,
        s.reports_dir,
        s.validation_reports_dir,
        s.pg_dir,
        s.dvc_remote_dir,
        s.mlflow_dir,
    ):
        assert derived.is_relative_to(s.home)
    assert s.max_bad_row_share == 0.01


def test_home_defaults_to_the_checkout(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MLSTACK_HOME")
    assert get_settings().home == project_root() / ".mlstack"
    assert (project_root() / "pyproject.toml").is_file()


def test_environment_overrides(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("MLSTACK_HOME", str(tmp_path / "elsewhere"))
    monkeypatch.setenv("MLSTACK_PG_DSN", "postgresql://u@db.example:5433/ml")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://mlflow.example:5000")
    monkeypatch.setenv("MLSTACK_MAX_BAD_ROW_SHARE", "0.05")
    s = get_settings()
    assert s.home == (tmp_path / "elsewhere").resolve()
    assert s.pg_dsn == "postgresql://u@db.example:5433/ml"
    assert s.tracking_uri == "http://mlflow.example:5000"
    assert s.max_bad_row_share == 0.05


def test_mlstack_prefixed_tracking_uri_wins(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLSTACK_MLFLOW_TRACKING_URI", "http://ours:5000")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://theirs:5000")
    assert get_settings().tracking_uri == "http://ours:5000"


def test_relative_home_is_made_absolute(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MLSTACK_HOME", "rel/data")
    assert get_settings().home == (tmp_path / "rel" / "data").resolve()


def test_bad_value_names_the_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLSTACK_MAX_BAD_ROW_SHARE", "2")
    with pytest.raises(ValidationError, match="max_bad_row_share"):
        get_settings()


def test_keyword_overrides_beat_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLSTACK_MAX_BAD_ROW_SHARE", "0.05")
    assert get_settings(max_bad_row_share=0.2).max_bad_row_share == 0.2
