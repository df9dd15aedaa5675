"""Feast definitions for the trip-duration model.

Entities: `driver` and `zone`. Feature views: hourly driver stats (with a 7-day pace aggregate
computed from trips) and hourly zone stats; the zone view serves both ends of a trip through
projections. An on-demand view derives request-time features. The `trip_duration` feature
service is what training, batch inference and serving all ask for.
"""

from datetime import timedelta

import pandas as pd
from feast import Entity, FeatureService, FeatureView, Field, FileSource, Project, RequestSource
from feast.on_demand_feature_view import on_demand_feature_view
from feast.types import Float64, Int64, UnixTimestamp

from mlstack.features import FEATURE_SERVICE, STORED_SERVICE, offline_paths

paths = offline_paths()

project = Project(name="mlstack", description="Ride-hailing trip duration features")

driver = Entity(name="driver", join_keys=["driver_id"], description="A driver on the platform")
zone = Entity(name="zone", join_keys=["zone_id"], description="One of the city's 24 zones")

driver_source = FileSource(
    name="driver_hourly_source",
    path=str(paths["driver_hourly"]),
    timestamp_field="event_timestamp",
    created_timestamp_column="created",
)
zone_source = FileSource(
    name="zone_hourly_source",
    path=str(paths["zone_hourly"]),
    timestamp_field="event_timestamp",
    created_timestamp_column="created",
)

# Stats are published hourly; a value older than a few hours says little about now.
driver_hourly = FeatureView(
    name="driver_hourly",
    entities=[driver],
    ttl=timedelta(hours=3),
    schema=[
        Field(name="avg_speed_kmh", dtype=Float64),
        Field(name="acceptance_rate", dtype=Float64),
        Field(name="rating", dtype=Float64),
        Field(name="trips_today", dtype=Int64),
        Field(name="pace_7d_s_per_km", dtype=Float64),
    ],
    source=driver_source,
    online=True,
)
zone_hourly = FeatureView(
    name="zone_hourly",
    entities=[zone],
    ttl=timedelta(hours=3),
    schema=[
        Field(name="congestion_index", dtype=Float64),
        Field(name="avg_speed_kmh", dtype=Float64),
        Field(name="demand_1h", dtype=Int64),
    ],
    source=zone_source,
    online=True,
)

trip_request = RequestSource(
    name="trip_request",
    schema=[Field(name="requested_at", dtype=UnixTimestamp), Field(name="distance_km", dtype=Float64)],
)


@on_demand_feature_view(
    sources=[trip_request],
    schema=[
        Field(name="hour_of_day", dtype=Int64),
        Field(name="weekday", dtype=Int64),
        Field(name="is_weekend", dtype=Int64),
        Field(name="distance_bucket", dtype=Int64),
    ],
    # Not "python" mode: Feast 0.67 drops python-mode outputs online when full_feature_names=True.
    mode="pandas",
)
def trip_request_features(inputs: pd.DataFrame) -> pd.DataFrame:
    # Feast rebuilds this function from its source text, without this module's globals.
    from mlstack.features import request_features

    return request_features(inputs)


stored_views = [
    driver_hourly,
    zone_hourly.with_name("pickup_zone").with_join_key_map({"zone_id": "pickup_zone"}),
    zone_hourly.with_name("dropoff_zone").with_join_key_map({"zone_id": "dropoff_zone"}),
]
trip_duration = FeatureService(
    name=FEATURE_SERVICE,
    features=[*stored_views, trip_request_features],
    description="Everything the trip_duration model reads",
)
trip_duration_stored = FeatureService(
    name=STORED_SERVICE,
    features=stored_views,
    description="trip_duration's materialized features; online serving computes the request-time "
    "ones with the on-demand view's own function",
)
