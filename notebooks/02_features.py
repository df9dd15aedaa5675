# ---
# jupyter:
#   jupytext:
#     formats: py:percent
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # The feature store
#
# The Feast repo (`feature_repo/`) on the demo's data dir: a point-in-time correct training
# frame (each trip sees the features as they were when it was requested, never later), the
# online features the serving app reads for one driver, and the features' distributions.

# %%
import mlstack.bootstrap  # noqa: F401  (first: the data dir and Prefect's defaults)

import matplotlib.pyplot as plt

from mlstack import features
from mlstack.data.validation import read_validated
from mlstack.settings import get_settings

settings = get_settings()
store = features.feature_store(settings)  # imports Feast: a few seconds
trips = read_validated(settings.validated_dir)["trips"]
[view.name for view in store.list_feature_views()]

# %% [markdown]
# ## A point-in-time training frame
#
# The last 500 trips joined to their features as of each trip's `requested_at`.

# %%
sample = trips.sort_values("requested_at").tail(500)
frame = features.historical_features(store, sample)
frame[["trip_id", "driver_id", "requested_at", features.LABEL, *features.FEAST_FEATURES[:4]]].head()

# %% [markdown]
# One driver's trips: the speed feature each trip saw changes only when a newer hourly row
# existed at its request time.

# %%
driver = frame["driver_id"].value_counts().index[0]
mine = frame[frame["driver_id"] == driver].sort_values("requested_at")
mine[["requested_at", "driver_hourly__avg_speed_kmh", "driver_hourly__trips_today"]].tail(8)

# %% [markdown]
# ## Online features for one driver
#
# What the serving app reads for a request from that driver now (materialized views from the
# online store; the request-time features computed from the request).

# %%
request = mine.iloc[-1][features.ENTITY_COLUMNS].to_dict()
online = features.online_features(store, [request])
online.T.rename(columns={0: driver})

# %% [markdown]
# ## Distributions

# %%
shown = features.FEAST_FEATURES[:8]
axes = frame[shown].hist(bins=40, figsize=(12, 6), layout=(2, 4))
plt.tight_layout()

# %%
frame[shown].describe().T
