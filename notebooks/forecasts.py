# ---
# jupyter:
#   jupytext:
#     formats: py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # moaa forecasts against actuals
#
# Reads what the pipeline stored in MongoDB — `forecasts` (24 hourly points per station and
# issue hour), `hourly_stats` (the actual hourly means) and `forecast_skill` (MAE per lead
# for the model and the three baselines) — and plots:
#
# 1. the forecasts issued at one hour against what happened;
# 2. the forecast at a fixed lead against the actual, over time;
# 3. the MAE by lead for the model and the baselines (the same figures as the Prometheus
#    gauges `weather_forecast_mae_celsius`).
#
# Run it against a running stack (`make demo`, then `moaa local up forecast`) or any MongoDB:
# it reads `MOAA_MONGO_URI` and `MOAA_MONGO_DATABASE`. `make notebook` turns this file into
# `notebooks/forecasts.ipynb` (git-ignored).

# %%
import os
from datetime import timedelta

import matplotlib.pyplot as plt
import pandas as pd
from pymongo import MongoClient

MONGO_URI = os.environ.get("MOAA_MONGO_URI", "mongodb://127.0.0.1:27017/")
DATABASE = os.environ.get("MOAA_MONGO_DATABASE", "moaa")
STATION = os.environ.get("MOAA_NOTEBOOK_STATION", "72502014734")  # Newark
LEAD = 24  # the lead plotted over time

db = MongoClient(MONGO_URI, tz_aware=True)[DATABASE]
print(db.forecasts.count_documents({}), "forecasts,", db.hourly_stats.count_documents({}), "hours")

# %% [markdown]
# ## Forecast and actual, in tidy frames

# %%
forecasts = pd.DataFrame(
    [
        {
            "issued_at": doc["issued_at"],
            "lead": p["lead"],
            "target_hour": p["target_hour"],
            "forecast_c": p["value"],
            "model_version": doc["model_version"],
        }
        for doc in db.forecasts.find({"station_id": STATION})
        for p in doc["points"]
    ]
)
actuals = pd.DataFrame(
    list(db.hourly_stats.find({"station_id": STATION}, {"_id": 0, "hour": 1, "mean_c": 1}))
).rename(columns={"hour": "target_hour", "mean_c": "actual_c"})
joined = forecasts.merge(actuals, on="target_hour", how="left")
joined.tail()

# %% [markdown]
# ## One issue: the next 24 hours against what happened

# %%
issued = joined["issued_at"].max() - timedelta(hours=LEAD)  # the latest fully verified issue
one = joined[joined["issued_at"] == issued].sort_values("target_hour")
history = actuals[
    (actuals["target_hour"] > issued - timedelta(hours=48))
    & (actuals["target_hour"] <= issued + timedelta(hours=LEAD))
].sort_values("target_hour")
fig, ax = plt.subplots(figsize=(10, 4))
ax.plot(history["target_hour"], history["actual_c"], color="black", label="actual")
ax.plot(
    one["target_hour"],
    one["forecast_c"],
    marker="o",
    label=f"forecast issued {issued:%d %b %H:%M}Z",
)
ax.axvline(issued, color="grey", linestyle=":")
ax.set_ylabel("hourly mean °C")
ax.set_title(f"station {STATION}")
ax.legend()
plt.show()

# %% [markdown]
# ## The forecast at a fixed lead against the actual, over time

# %%
at_lead = joined[joined["lead"] == LEAD].sort_values("target_hour")
fig, ax = plt.subplots(figsize=(12, 4))
ax.plot(at_lead["target_hour"], at_lead["actual_c"], color="black", linewidth=1, label="actual")
ax.plot(
    at_lead["target_hour"], at_lead["forecast_c"], linewidth=1, label=f"forecast, lead {LEAD} h"
)
ax.set_ylabel("hourly mean °C")
ax.legend()
plt.show()
print(f"MAE at lead {LEAD} h: {(at_lead['forecast_c'] - at_lead['actual_c']).abs().mean():.2f} °C")

# %% [markdown]
# ## MAE by lead: model and baselines (all stations, from `forecast_skill`)

# %%
skill = db.forecast_skill.find_one({"_id": "ALL"})
if skill is None:
    raise SystemExit("no forecast_skill document yet: is the forecast job running?")
mae = pd.DataFrame(
    [{"lead": e["lead"], "n": e["n"], **e["mae"]} for e in skill["leads"]]
).set_index("lead")
ax = mae[["model", "last_value", "same_hour_yesterday", "climatology"]].plot(
    figsize=(10, 4), marker=".", title=f"MAE by lead, model v{skill['model_version']}"
)
ax.set_xlabel("lead (hours)")
ax.set_ylabel("MAE °C")
plt.show()
print("skill (1 − MAE model / MAE same hour yesterday):", skill["overall"]["skill"])
mae  # noqa: B018 - the notebook displays the table
