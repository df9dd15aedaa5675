"""The MLflow model registry machinery every gate shares: aliases, versions born pending, the
champion's history, promotion, rollback and settling what a killed run left, all under one lock.

Aliases only (MLflow 3 has no stages). Every change of champion is recorded as a tag on the
registered model, `history.<UTC timestamp>`, so the registry itself answers "which version
served when", and rollback knows what to go back to. The gates (`models.tabular.registry`,
`models.lm.registry`) keep only their rules: what they score, and what counts as a win.

Safe under a kill, at any point:
- a champion change writes its history event first and moves the alias second. A trailing
  event that names another version than the alias is a change that never happened: readers
  skip it and the next change deletes it. So `status` and `rollback` read the alias's truth;
- a new version is born `gate.decision=pending` with its writer's owner stamp. If that writer
  dies before the gate, `settle()` (run by the next training run and by `model status`) marks
  it `abandoned` and takes the challenger alias back;
- every change holds the registry's lock (`mlstack.locks`), so two runs never interleave.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from mlstack.errors import MlstackError
from mlstack.settings import FINETUNED_MODEL, MODEL_NAME, PRETRAINED_MODEL
from mlstack.tracking import OWNER_TAG

CHAMPION, CHALLENGER = "champion", "challenger"
HISTORY_PREFIX = "history."
GATE = "gate.decision"
PENDING, ABANDONED = "pending", "abandoned"
CHART_TAG, CHART_PATH = "champion_history_chart", "registry/champion_history.png"
PASSED = "passed"  # won the gate; promotion left to `mlstack model promote` (DVC runs)
# What each registered model is, shown in the MLflow UI: one home for the three.
DESCRIPTIONS = {
    MODEL_NAME: "Trip duration in seconds (ride-hailing example)",
    PRETRAINED_MODEL: "A small Python code model pretrained by the pretraining flow.",
    FINETUNED_MODEL: "Answers repository questions in the maintainers' tone (fine-tuning flow).",
}


class RegistryError(MlstackError):
    """A registry action that cannot be done; the message says why and what to do."""


def client() -> Any:
    from mlflow import MlflowClient

    return MlflowClient()


def lock() -> Any:
    from mlstack import locks
    from mlstack.settings import get_settings

    return locks.file_lock(get_settings().mlflow_dir)


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def alias_version(alias: str, name: str = MODEL_NAME) -> str | None:
    from mlflow.exceptions import MlflowException

    try:
        return str(client().get_model_version_by_alias(name, alias).version)
    except MlflowException:
        return None


def ensure_registered(name: str) -> None:
    """The registered model, created unless it exists (a concurrent creator is fine)."""
    from mlflow.exceptions import MlflowException

    try:
        client().create_registered_model(name, description=DESCRIPTIONS.get(name, ""))
    except MlflowException as exc:
        if exc.error_code != "RESOURCE_ALREADY_EXISTS":
            raise


def new_version(name: str, source: str, run_id: str, tags: dict[str, str] | None = None, **more: Any) -> str:
    """A new version of `name`, born pending the gate with its writer's owner stamp: if the
    writer dies before its gate writes `GATE`, `settle()` marks it abandoned."""
    from mlstack.processes import owner

    ensure_registered(name)
    born = {**(tags or {}), GATE: PENDING, OWNER_TAG: owner()}
    return str(client().create_model_version(name, source=source, run_id=run_id, tags=born, **more).version)


def register(model_uri: str, run_id: str, name: str = MODEL_NAME) -> str:
    """Register a logged model (models:/m-...) as a new version and make it the challenger."""
    with lock():
        version = new_version(name, model_uri, run_id, model_id=model_uri.removeprefix("models:/"))
        client().set_registered_model_alias(name, CHALLENGER, version)
    return version


@dataclass(frozen=True)
class GateDecision:
    challenger: str
    champion: str | None
    challenger_mae: float
    champion_mae: float | None
    margin: float
    promoted: bool
    reason: str
    passed: bool = False  # won, but promotion was left to an explicit step

    def summary(self) -> str:
        verdict = "promoted" if self.promoted else "passed the gate" if self.passed else "kept the champion"
        return f"v{self.challenger} {verdict}: {self.reason}"


def _change_champion(action: str, version: str, previous: str | None, reason: str, name: str) -> None:
    """History event first, alias second: a kill between them leaves an event readers skip."""
    _drop_unfinished(name)
    event = {"action": action, "version": version, "previous": previous, "reason": reason}
    api = client()
    api.set_registered_model_tag(name, f"{HISTORY_PREFIX}{_now()}", json.dumps(event))
    api.set_registered_model_alias(name, CHAMPION, version)
    try:
        chart_history(name)
    except Exception as exc:  # a picture of the history must never undo or hold up the change itself
        logging.getLogger(__name__).warning("the champion history chart was not drawn: %s", exc)


def chart_history(name: str = MODEL_NAME) -> str:
    """Draw which version served when onto the new champion's run, and point the registered
    model's `champion_history_chart` tag at it; returns that artifact's URI."""
    api = client()
    stints = served(name)
    maes = {}
    for version in {s["version"] for s in stints}:
        mae = api.get_model_version(name, version).tags.get("gate.challenger_mae")
        if mae:
            maes[version] = float(mae)
    run_id = api.get_model_version(name, stints[-1]["version"]).run_id
    api.log_figure(run_id, champion_history_figure(stints, maes, datetime.now(UTC)), CHART_PATH)
    uri = f"runs:/{run_id}/{CHART_PATH}"
    api.set_registered_model_tag(name, CHART_TAG, uri)
    return uri


def promote(version: str, reason: str = "manual", name: str = MODEL_NAME) -> str | None:
    """Make `version` the champion; returns the version it replaced."""
    from mlflow.exceptions import MlflowException

    with lock():
        try:
            client().get_model_version(name, version)
        except MlflowException:
            raise RegistryError(
                f"{name} has no version {version}; `mlstack model status` lists them"
            ) from None
        previous = alias_version(CHAMPION, name)
        if previous == version:
            raise RegistryError(f"v{version} is already the champion of {name}")
        _change_champion("promote", version, previous, reason, name)
    return previous


def _events(name: str) -> list[dict[str, Any]]:
    tags = client().get_registered_model(name).tags
    events = [
        {"at": key.removeprefix(HISTORY_PREFIX), **json.loads(value)}
        for key, value in tags.items()
        if key.startswith(HISTORY_PREFIX)
    ]
    return sorted(events, key=lambda e: e["at"])


def _unfinished(events: list[dict[str, Any]], name: str) -> dict[str, Any] | None:
    """The last event, if the alias never followed it (its writer was killed in between)."""
    if events and events[-1]["version"] != alias_version(CHAMPION, name):
        return events[-1]
    return None


def _drop_unfinished(name: str) -> None:
    if unfinished := _unfinished(_events(name), name):
        client().delete_registered_model_tag(name, f"{HISTORY_PREFIX}{unfinished['at']}")


def history(name: str = MODEL_NAME) -> list[dict[str, Any]]:
    """Champion changes that happened, oldest first, each with the time it happened."""
    events = _events(name)
    if _unfinished(events, name):
        events = events[:-1]
    return events


def settle(name: str = MODEL_NAME) -> list[str]:
    """Settle what a killed run left: drop an unfinished champion change; mark each version whose
    registering run died before the gate's last write `abandoned` (and take the challenger alias
    back), or `promoted` if the promotion itself had landed. Returns the versions settled."""
    from mlflow.exceptions import MlflowException

    from mlstack.processes import owner_alive

    api = client()
    with lock():
        try:
            versions = api.search_model_versions(f"name = '{name}'")
        except MlflowException:
            return []
        dead = [
            v for v in versions if v.tags.get(GATE) == PENDING and not owner_alive(v.tags.get(OWNER_TAG, ""))
        ]
        if versions:
            _drop_unfinished(name)
        champion = alias_version(CHAMPION, name)
        for v in dead:
            if str(v.version) == champion:  # killed after promoting, before the last tag
                api.set_model_version_tag(name, v.version, GATE, "promoted")
                continue
            reason = "the run that registered it was killed before the gate decided"
            api.set_model_version_tag(name, v.version, "gate.reason", reason)
            api.set_model_version_tag(name, v.version, GATE, ABANDONED)
            if alias_version(CHALLENGER, name) == str(v.version):
                api.delete_registered_model_alias(name, CHALLENGER)
    return [str(v.version) for v in dead]


def served(name: str = MODEL_NAME) -> list[dict[str, Any]]:
    """Which version served when: one row per stint as champion, the current one open-ended."""
    events = history(name)
    stints = []
    for i, event in enumerate(events):
        until = events[i + 1]["at"] if i + 1 < len(events) else None
        stints.append(
            {"version": event["version"], "from": event["at"], "until": until, "how": event["action"]}
        )
    return stints


def serving_at(when: datetime, name: str = MODEL_NAME) -> str | None:
    stamp = when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    current = None
    for stint in served(name):
        if stint["from"] <= stamp:
            current = stint["version"]
    return current


def rollback(name: str = MODEL_NAME) -> tuple[str, str]:
    """Restore the champion that the current one replaced; returns (restored, demoted)."""
    with lock():
        return _rollback(name)


def _rollback(name: str) -> tuple[str, str]:
    current = alias_version(CHAMPION, name)
    if current is None:
        raise RegistryError(f"{name} has no champion to roll back")
    # The promotion that made the current champion says whom it replaced. Rollback events are
    # skipped, so rolling back twice walks further back instead of undoing the first rollback.
    promoted = next(
        (e for e in reversed(history(name)) if e["version"] == current and e["action"] == "promote"), None
    )
    previous = promoted["previous"] if promoted else None
    if previous is None:
        raise RegistryError(f"v{current} of {name} replaced no earlier champion; nothing to roll back to")
    _change_champion("rollback", previous, current, f"rollback from v{current}", name)
    return previous, current


def status(name: str = MODEL_NAME) -> dict[str, Any]:
    api = client()
    versions = api.search_model_versions(f"name = '{name}'")
    return {
        "champion": alias_version(CHAMPION, name),
        "challenger": alias_version(CHALLENGER, name),
        "versions": sorted(  # numeric order: "10" comes after "9"
            (
                {
                    "version": str(v.version),
                    "run_id": v.run_id,
                    "created": datetime.fromtimestamp(v.creation_timestamp / 1000, UTC).isoformat(
                        timespec="seconds"
                    ),
                    "gate": v.tags.get(GATE, ""),
                    "mae": v.tags.get("gate.challenger_mae", ""),
                }
                for v in versions
            ),
            key=lambda row: int(row["version"]),
        ),
        "served": served(name) if versions else [],
    }


def run_of(version: str, name: str = MODEL_NAME) -> str:
    """The MLflow run that trained `version`: its params, plots and reference snapshot live there."""
    return client().get_model_version(name, version).run_id


def champion_history_figure(stints: list[dict[str, Any]], maes: dict[str, float], now: datetime):
    """Which version served when, one bar per stint, labelled with the version's gate MAE."""
    import matplotlib
    import matplotlib.dates as mdates

    matplotlib.use("Agg")  # no display on servers and CI
    import matplotlib.pyplot as plt

    versions = sorted({s["version"] for s in stints}, key=int)
    fig, ax = plt.subplots(figsize=(9, 1.2 + 0.5 * len(versions)))
    for stint in stints:
        start = datetime.fromisoformat(stint["from"].replace("Z", "+00:00"))
        end = datetime.fromisoformat(stint["until"].replace("Z", "+00:00")) if stint["until"] else now
        row = versions.index(stint["version"])
        colour = "tab:red" if stint["how"] == "rollback" else "tab:blue"
        ax.barh(row, mdates.date2num(end) - mdates.date2num(start), left=mdates.date2num(start), color=colour)
    labels = [f"v{v}" + (f" (MAE {maes[v]:.0f}s)" if v in maes else "") for v in versions]
    ax.set_yticks(range(len(versions)), labels)
    ax.xaxis_date()
    ax.set_title("Champion history (blue: promoted, red: restored by rollback)")
    fig.autofmt_xdate()
    fig.tight_layout()
    plt.close(fig)
    return fig
