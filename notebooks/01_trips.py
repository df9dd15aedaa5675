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
# # The trips, and the rows validation set aside
#
# Opens on the data dir `make demo` filled (`.mlstack/`; `MLSTACK_HOME` moves it): the validated
# tables the features and the model read, and the quarantine, the rows that broke the data
# contract, with the column and rule each broke.

# %%
import json

import mlstack.bootstrap  # noqa: F401  (first: the data dir and Prefect's defaults)

import matplotlib.pyplot as plt
import pandas as pd

from mlstack.data.validation import read_validated
from mlstack.features import LABEL
from mlstack.settings import get_settings

settings = get_settings()
tables = read_validated(settings.validated_dir)
pd.Series({name: len(table) for name, table in tables.items()}, name="rows")

# %%
trips = tables["trips"]
trips.describe(include="all").T.head(12)

# %% [markdown]
# Trip durations, and trips per day: the demo's days, with the drift scenario's days after them
# when the monitoring loop ran.

# %%
fig, (left, right) = plt.subplots(1, 2, figsize=(12, 3.5))
(trips[LABEL] / 60).clip(upper=120).plot.hist(bins=60, ax=left, title="duration (min)")
trips.set_index("requested_at").resample("D").size().plot(ax=right, title="trips per day")
fig.tight_layout()

# %%
by_zone = trips.groupby("pickup_zone")[LABEL].median().div(60).sort_values()
by_zone.tail(10).plot.barh(figsize=(6, 3.5), title="slowest pickup zones: median minutes")

# %% [markdown]
# ## The quarantine
#
# The last validation's report, and the rows it set aside: each with its row number in the file
# it came from, and every rule it broke.

# %%
report = json.loads((settings.validation_reports_dir / "validation.json").read_text())
pd.DataFrame(
    [
        {k: t.get(k) for k in ("table", "rows", "quarantined_rows", "status", "quarantine")}
        for t in report["tables"]
    ]
)

# %%
failures = pd.DataFrame(
    [f for t in report["tables"] for f in t["failures"]], columns=["table", "category", "column", "check"]
)
failures.groupby(["table", "category", "column", "check"], dropna=False).size().rename("rows")

# %%
path = settings.validation_reports_dir / "trips.quarantine.parquet"
quarantined = pd.read_parquet(path) if path.exists() else trips.head(0)
print(f"{len(quarantined)} trips set aside ({path.name if path.exists() else 'none'})")
quarantined.head(10)
