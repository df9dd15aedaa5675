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
# # MLflow runs and the registry's champion
#
# The trip-duration experiment on the demo's data dir: its runs side by side (parameters and
# test metrics), and the registry's history: which version was champion when, and why the gate
# promoted or kept each challenger.

# %%
import mlstack.bootstrap  # noqa: F401  (first: the data dir and Prefect's defaults)

import mlflow
import pandas as pd

from mlstack import registry, tracking
from mlstack.settings import get_settings

settings = get_settings()
tracking.setup(settings)
runs = mlflow.search_runs(experiment_names=[tracking.EXPERIMENT], order_by=["start_time ASC"])
print(f"{len(runs)} runs in {tracking.EXPERIMENT!r} at {settings.tracking_uri}")

# %% [markdown]
# ## Runs side by side

# %%
# the model's own metrics; MLflow's system metrics (CPU, memory) are under metrics.system/
metric_columns = sorted(c for c in runs.columns if c.startswith("metrics.") and "/" not in c)
param_columns = sorted(c for c in runs.columns if c.startswith("params."))[:6]
runs[["tags.mlflow.runName", "start_time", *metric_columns, *param_columns]].tail(10)

# %%
test_maes = runs.dropna(subset=["metrics.test_mae"]) if "metrics.test_mae" in runs else runs.head(0)
ax = test_maes.plot.bar(x="tags.mlflow.runName", y="metrics.test_mae", legend=False, figsize=(8, 3))
ax.set_ylabel("test MAE (s)")

# %% [markdown]
# ## The registry

# %%
status = registry.status()
print(f"champion v{status['champion']}, challenger {status['challenger']}")
pd.DataFrame(status["versions"])

# %%
history = pd.DataFrame(registry.history())
history

# %% [markdown]
# Which version served when, with each version's test MAE (the gate's figure).

# %%
stints = registry.served()
maes = {row["version"]: float(row["mae"]) for row in status["versions"] if row["mae"]}
registry.champion_history_figure(stints, maes, pd.Timestamp.now(tz="UTC").to_pydatetime())
