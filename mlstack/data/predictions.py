"""The trip-prediction tables in Postgres: batch predictions with the inputs they were made from.

This domain owns its schema: the steps below run through `mlstack.postgres.migrate` before
anything reads or writes the tables.
"""

from __future__ import annotations

import psycopg

from mlstack import postgres
from mlstack.postgres import Migration

DOMAIN = "trip_predictions"
MIGRATIONS = [
    Migration(
        1,
        "trip predictions from batch inference",
        """
        CREATE TABLE trip_predictions (
            trip_id              text PRIMARY KEY,
            requested_at         timestamptz NOT NULL,
            driver_id            bigint NOT NULL,
            predicted_duration_s double precision NOT NULL,
            model_version        text NOT NULL,
            scored_at            timestamptz NOT NULL DEFAULT now()
        );
        CREATE INDEX trip_predictions_requested_at ON trip_predictions (requested_at);
        """,
    ),
    Migration(
        2,
        "model inputs beside each batch prediction, for drift monitoring",
        """
        ALTER TABLE trip_predictions
            ADD COLUMN distance_km double precision,
            ADD COLUMN passenger_count double precision,
            ADD COLUMN pickup_zone double precision,
            ADD COLUMN dropoff_zone double precision,
            ADD COLUMN driver_hourly__avg_speed_kmh double precision,
            ADD COLUMN driver_hourly__acceptance_rate double precision,
            ADD COLUMN driver_hourly__rating double precision,
            ADD COLUMN driver_hourly__trips_today double precision,
            ADD COLUMN driver_hourly__pace_7d_s_per_km double precision,
            ADD COLUMN pickup_zone__congestion_index double precision,
            ADD COLUMN pickup_zone__avg_speed_kmh double precision,
            ADD COLUMN pickup_zone__demand_1h double precision,
            ADD COLUMN dropoff_zone__congestion_index double precision,
            ADD COLUMN dropoff_zone__avg_speed_kmh double precision,
            ADD COLUMN dropoff_zone__demand_1h double precision,
            ADD COLUMN trip_request_features__hour_of_day double precision,
            ADD COLUMN trip_request_features__weekday double precision,
            ADD COLUMN trip_request_features__is_weekend double precision,
            ADD COLUMN trip_request_features__distance_bucket double precision;
        """,
    ),
]


def migrate(conn: psycopg.Connection) -> list[int]:
    """Bring the trip-prediction tables up to date; returns the steps applied now."""
    return postgres.migrate(conn, DOMAIN, MIGRATIONS)
