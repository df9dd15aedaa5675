"""Batch inference writes each window once: a rerun replaces its rows and never doubles them."""

from __future__ import annotations

import multiprocessing
import os
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd
import pytest

from mlstack import features, postgres, registry
from mlstack.data import validation
from mlstack.errors import InputError
from mlstack.settings import Settings
from models.tabular.predict import load_champion, score, window_path, window_trips, write_predictions

START, END = datetime(2026, 9, 5, tzinfo=UTC), datetime(2026, 9, 6, tzinfo=UTC)


def rows_in(conn, start: datetime, end: datetime) -> list[tuple]:
    return conn.execute(
        "SELECT trip_id, model_version FROM trip_predictions WHERE requested_at >= %s AND requested_at < %s"
        " ORDER BY trip_id",
        (start, end),
    ).fetchall()


@pytest.mark.slow
def test_rerunning_a_window_replaces_its_rows(in_trained_home: Settings) -> None:
    trips = validation.read_validated(in_trained_home.validated_dir)["trips"]
    window = window_trips(trips, START, END)
    champion = load_champion()
    predictions = score(features.feature_store(in_trained_home), window, champion)
    assert len(predictions) == len(window) > 0
    assert (predictions["model_version"] == champion.version).all()
    assert (predictions["predicted_duration_s"] > 0).all()
    assert (predictions["predicted_duration_s"] < 4 * 3600).all()

    write_predictions(predictions, START, END, in_trained_home)
    with postgres.connect(in_trained_home) as conn:
        first = rows_in(conn, START, END)
    write_predictions(predictions, START, END, in_trained_home)
    with postgres.connect(in_trained_home) as conn:
        second = rows_in(conn, START, END)
        total = conn.execute("SELECT count(*), count(DISTINCT trip_id) FROM trip_predictions").fetchone()
    assert first == second and len(first) == len(window)
    assert total[0] == total[1], "no trip is stored twice"
    stored = pd.read_parquet(window_path(in_trained_home, START, END))
    assert sorted(stored["trip_id"]) == sorted(window["trip_id"])


@pytest.mark.slow
def test_a_window_scored_by_a_new_model_replaces_the_old_rows(in_trained_home: Settings) -> None:
    trips = validation.read_validated(in_trained_home.validated_dir)["trips"]
    window = window_trips(trips, START, END)
    store = features.feature_store(in_trained_home)
    champion = load_champion()
    write_predictions(score(store, window, champion), START, END, in_trained_home)
    relabelled = score(store, window, champion).assign(model_version="v-next")
    write_predictions(relabelled, START, END, in_trained_home)
    with postgres.connect(in_trained_home) as conn:
        stored = rows_in(conn, START, END)
    assert {version for _, version in stored} == {"v-next"} and len(stored) == len(window)


@pytest.mark.slow
def test_a_failed_write_leaves_the_previous_rows(in_trained_home: Settings) -> None:
    trips = validation.read_validated(in_trained_home.validated_dir)["trips"]
    window = window_trips(trips, START, END)
    good = score(features.feature_store(in_trained_home), window, load_champion())
    write_predictions(good, START, END, in_trained_home)
    broken = good.assign(predicted_duration_s=None)  # violates NOT NULL halfway through COPY
    with pytest.raises(Exception, match="null"):
        write_predictions(broken, START, END, in_trained_home)
    with postgres.connect(in_trained_home) as conn:
        assert len(rows_in(conn, START, END)) == len(window)


def test_empty_or_reversed_window_is_refused(clean_tables) -> None:
    with pytest.raises(ValueError, match="the window is empty"):
        window_trips(clean_tables["trips"], END, START)
    later = datetime(2030, 1, 1, tzinfo=UTC)
    with pytest.raises(InputError, match="no trips were requested from 2030-01-01 00:00") as refused:
        window_trips(clean_tables["trips"], later, later + timedelta(days=1))
    assert "the validated data holds trips from 2026-09-01" in str(refused.value)


def _write_when_released(home: str, release, predictions: pd.DataFrame) -> None:
    os.environ["MLSTACK_HOME"] = home
    release.wait(120)
    write_predictions(predictions, START, END, Settings(home=Path(home)))


@pytest.mark.slow
@pytest.mark.parametrize("writers", [2, 4])
def test_concurrent_writers_of_one_window_take_turns(in_trained_home: Settings, writers: int) -> None:
    """Released at one instant, every writer succeeds at its first try and the window holds each
    trip once: the table's advisory lock, not the task's retries, keeps them apart."""
    trips = validation.read_validated(in_trained_home.validated_dir)["trips"]
    window = window_trips(trips, START, END)
    predictions = score(features.feature_store(in_trained_home), window, load_champion())
    context = multiprocessing.get_context("spawn")
    release = context.Barrier(writers)
    processes = [
        context.Process(
            target=_write_when_released,
            args=(str(in_trained_home.home), release, predictions.assign(model_version=f"w{n}")),
        )
        for n in range(writers)
    ]
    for process in processes:
        process.start()
    for process in processes:
        process.join(180)
    assert [p.exitcode for p in processes] == [0] * writers
    with postgres.connect(in_trained_home) as conn:
        stored = rows_in(conn, START, END)
    assert len(stored) == len(window) == len({trip for trip, _ in stored})
    assert len({version for _, version in stored}) == 1, "one writer's rows, whole"
    on_disk = pd.read_parquet(window_path(in_trained_home, START, END))
    assert set(on_disk["model_version"]) == {stored[0][1]}, "the file matches the table"


@pytest.mark.slow
def test_no_champion_is_a_clear_error(in_trained_home: Settings) -> None:
    with pytest.raises(registry.RegistryError, match="mlstack train"):
        load_champion("never_trained")


def test_partitions_cut_a_window_into_utc_days_and_keep_every_trip() -> None:
    import pandas as pd

    from models.tabular.predict import partitions

    stamps = pd.to_datetime(
        ["2026-09-01T23:59:59Z", "2026-09-01T00:00:00Z", "2026-09-03T12:00:00Z", "2026-09-02T00:00:00Z"]
    )
    trips = pd.DataFrame({"trip_id": ["a", "b", "c", "d"], "requested_at": stamps})
    parts = partitions(trips)
    assert [sorted(part["trip_id"]) for part in parts] == [["a", "b"], ["d"], ["c"]]
    assert sum(len(part) for part in parts) == len(trips)
