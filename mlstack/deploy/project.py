"""`mlstack deploy`: check `prefect.yaml`, create the work pools, apply every deployment.

Entrypoints are module paths (`flows.monitoring:monitoring_flow`), never file paths: Prefect
runs a file path with its folder first on `sys.path` and registers it under its bare name, so
`flows/monitoring.py` would shadow the `monitoring` package for every flow that imports it. A
module path imports as the checkout does.

`prefect.yaml` is Prefect's own file and `prefect deploy --all` applies it: schedules,
triggers, concurrency limits and pull steps are Prefect's features, so Prefect's code reads
them. Around that this module adds what `prefect deploy` lacks:
- every problem in the file (a missing entrypoint above all) is found and named before
  anything is applied, and an unreachable API is one line, not a traceback;
- the work pools exist, with the settings they need (the gpu pool's GPU request and its
  concurrency limit);
- the values the file takes from the environment (`{{ $MLSTACK_... }}`) are filled from
  settings: the repository the pull step clones, its branch, and the retraining cooldown;
- a pool can be swapped for another (`--pool gpu=cpu`), as the tests and a GPU-less laptop do.
"""

from __future__ import annotations

import ast
import json
import os
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, Field

from mlstack import processes
from mlstack.errors import InputError, MlstackError
from mlstack.settings import Settings, project_root

PREFECT_FILE = "prefect.yaml"
FLOWS_DIR = "flows"


@dataclass(frozen=True)
class Pool:
    name: str
    type: str
    description: str


POOLS = (
    Pool(CPU := "cpu", "process", "Everything light: data, features, training, inference, monitoring."),
    Pool(
        GPU := "gpu",
        "kubernetes",
        "Pretraining and local fine-tuning: one NVIDIA GPU per run. 'Not Ready' until a worker polls"
        " it: `prefect worker start --pool gpu` where the GPUs are (a Kubernetes cluster); on a"
        " machine without one, `mlstack deploy --pool gpu=cpu` runs these on the cpu pool instead.",
    ),
)


class FlowRef(BaseModel):
    """A flow found in `flows/`, as an entrypoint names it."""

    entrypoint: str = Field(description="module:function, as the checkout imports it.")
    name: str = Field(description="The flow's name, as `@flow(name=...)` gives it.")


class DeployResult(BaseModel):
    api_url: str
    pools_created: list[str]
    deployments: list[str] = Field(description="flow-name/deployment-name of each one applied.")
    log: str
    unpolled: dict[str, list[str]] = Field(
        default_factory=dict,
        description="Each pool no worker polls (the UI shows it 'Not Ready'), with its deployments:"
        " their runs wait until a worker starts on it.",
    )


def load(path: Path) -> dict[str, Any]:
    """The parsed file; a syntax error names the file and line."""
    try:
        doc = yaml.safe_load(path.read_text())
    except FileNotFoundError:
        raise InputError(f"{path} does not exist: run from the project's root or pass --file") from None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        where = f"{path}:{mark.line + 1}:{mark.column + 1}" if mark else str(path)
        raise InputError(f"{where}: not valid YAML: {exc.problem}") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("deployments"), list):
        raise InputError(f"{path}: has no `deployments:` list")
    return doc


def flows_in(root: Path) -> list[FlowRef]:
    """Every function decorated with `@flow` under flows/, found without importing anything."""
    found = []
    for path in sorted((root / FLOWS_DIR).rglob("*.py")):
        tree = ast.parse(path.read_text(), filename=str(path))
        for node in tree.body:
            if isinstance(node, ast.FunctionDef) and (name := _flow_name(node)):
                module = ".".join(path.relative_to(root).with_suffix("").parts)
                found.append(FlowRef(entrypoint=f"{module}:{node.name}", name=name))
    return found


def _flow_name(node: ast.FunctionDef) -> str | None:
    for decorator in node.decorator_list:
        call = decorator if isinstance(decorator, ast.Call) else None
        target = call.func if call else decorator
        if isinstance(target, ast.Name) and target.id == "flow":
            for keyword in call.keywords if call else []:
                if keyword.arg == "name" and isinstance(keyword.value, ast.Constant):
                    return str(keyword.value.value)
            return node.name.replace("_", "-")
    return None


def problems(doc: dict[str, Any], path: Path, root: Path, pools: set[str]) -> list[str]:
    """Everything wrong with the deployments, each naming the deployment and the rule."""
    flows = {ref.entrypoint for ref in flows_in(root)}
    found, names = [], set()
    for index, entry in enumerate(doc["deployments"]):
        name = entry.get("name") if isinstance(entry, dict) else None
        where = f"{path}: deployment {name!r}" if name else f"{path}: deployment #{index + 1}"
        if not name:
            found.append(f"{where}: has no name")
            continue
        if name in names:
            found.append(f"{where}: the name is used twice")
        names.add(name)
        entrypoint = entry.get("entrypoint", "")
        module, _, function = entrypoint.partition(":")
        file = module.replace(".", "/") + ".py"
        if not function or module.endswith(".py") or "/" in module:
            found.append(f"{where}: entrypoint {entrypoint!r} is not package.module:flow_function")
        elif not (root / file).is_file():
            found.append(f"{where}: entrypoint {entrypoint}: {file} does not exist")
        elif entrypoint not in flows:
            found.append(f"{where}: entrypoint {entrypoint}: {file} defines no @flow named {function}")
        pool = (entry.get("work_pool") or {}).get("name")
        if pool not in pools:
            found.append(f"{where}: work pool {pool!r} is not one of {', '.join(sorted(pools))}")
    return found


def override_pools(doc: dict[str, Any], swaps: dict[str, str]) -> dict[str, Any]:
    """The document with deployments on pool A moved to pool B, for each A=B in `swaps`. The
    job variables stay behind: they belong to the pool's type (a GPU request means nothing to
    a process worker, and the server refuses variables its template lacks)."""
    moved = []
    for entry in doc["deployments"]:
        pool = dict(entry.get("work_pool") or {})
        if pool.get("name") in swaps:
            pool = {"name": swaps[pool["name"]]}
            entry = {**entry, "work_pool": pool}
        moved.append(entry)
    return {**doc, "deployments": moved}


def _headers() -> dict[str, str]:
    key = os.environ.get("PREFECT_API_KEY")
    return {"Authorization": f"Bearer {key}"} if key else {}


def reachable(api_url: str, source: str) -> None:
    """One clear line when nothing answers at the API."""
    import httpx

    try:
        answer = httpx.get(f"{api_url.rstrip('/')}/health", headers=_headers(), timeout=10)
    except httpx.HTTPError as exc:
        reason = str(exc) or type(exc).__name__
        raise MlstackError(
            f"cannot reach the Prefect API at {api_url} ({source}): {reason}. Start one with"
            " `mlstack up`, or fix PREFECT_API_URL"
        ) from None
    if answer.status_code != 200:
        raise MlstackError(
            f"the Prefect API at {api_url} ({source}) answered {answer.status_code} to /health:"
            " check PREFECT_API_URL, and PREFECT_API_KEY for Prefect Cloud"
        )


def gpu_job_template(gpus: int) -> dict[str, Any]:
    """Prefect's Kubernetes job template, with one more variable: `gpu_limit` NVIDIA GPUs in the
    container's resource limits (`nvidia.com/gpu`), as Kubernetes' device plugin documents."""
    import prefect

    views = Path(prefect.__file__).parent / "server/api/collections_data/views"
    metadata = json.loads((views / "aggregate-worker-metadata.json").read_text())
    template = metadata["prefect-kubernetes"]["kubernetes"]["default_base_job_configuration"]
    template["variables"]["properties"]["gpu_limit"] = {
        "title": "GPU limit",
        "description": "NVIDIA GPUs for the flow run's container (nvidia.com/gpu).",
        "type": "integer",
        "default": 1,
        "minimum": 0,
        "maximum": gpus,
    }
    container = template["job_configuration"]["job_manifest"]["spec"]["template"]["spec"]["containers"][0]
    container["resources"]["limits"]["nvidia.com/gpu"] = "{{ gpu_limit }}"
    return template


def ensure_pools(api_url: str, settings: Settings) -> list[str]:
    """Create the missing pools; keep the gpu pool's concurrency at the number of GPUs."""
    import httpx

    created = []
    gpus = settings.orchestration.gpu_count
    with httpx.Client(base_url=api_url.rstrip("/") + "/", headers=_headers(), timeout=30) as client:
        for pool in POOLS:
            limit = gpus if pool.name == GPU else None
            answer = client.get(f"work_pools/{pool.name}")
            if answer.status_code == 200:
                found = answer.json()
                wanted = {"concurrency_limit": limit, "description": pool.description}
                if any(found.get(key) != value for key, value in wanted.items()):
                    client.patch(f"work_pools/{pool.name}", json=wanted).raise_for_status()
                continue
            body: dict[str, Any] = {
                "name": pool.name,
                "type": pool.type,
                "description": pool.description,
                "concurrency_limit": limit,
            }
            if pool.name == GPU:
                body["base_job_template"] = gpu_job_template(gpus)
            created_now = client.post("work_pools/", json=body)
            if created_now.status_code == 409:  # another deploy made it first
                continue
            created_now.raise_for_status()
            created.append(pool.name)
    return created


def git_branch(root: Path) -> str:
    try:
        branch = subprocess.run(
            ["git", "-C", str(root), "rev-parse", "--abbrev-ref", "HEAD"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        raise InputError(
            f"{root} is not a git checkout: deployments clone their code from git; set"
            " MLSTACK_ORCHESTRATION_GIT_REPOSITORY and MLSTACK_ORCHESTRATION_GIT_BRANCH"
        ) from None
    if branch == "HEAD":
        raise InputError(
            f"{root} is on a detached HEAD: set MLSTACK_ORCHESTRATION_GIT_BRANCH to the branch"
            " deployments clone"
        )
    return branch


def template_values(settings: Settings, root: Path) -> dict[str, str]:
    """The `{{ $NAME }}` values of prefect.yaml, from settings."""
    orchestration = settings.orchestration
    return {
        "MLSTACK_GIT_REPOSITORY": orchestration.git_repository or str(root),
        "MLSTACK_GIT_BRANCH": orchestration.git_branch or git_branch(root),
        # Prefect reads a trigger's `within` as an ISO 8601 duration.
        "MLSTACK_RETRAIN_COOLDOWN": f"PT{int(settings.monitoring.retrain_cooldown_s)}S",
        "MLSTACK_WEBHOOK_COALESCE": f"PT{int(settings.webhooks.coalesce_s)}S",
    }


def deploy(
    settings: Settings,
    api_url: str,
    source: str,
    prefect_file: Path | None = None,
    swaps: dict[str, str] | None = None,
) -> DeployResult:
    """Check the file, reach the API, create the pools, then apply every deployment."""
    root = project_root()
    path = prefect_file or root / PREFECT_FILE
    doc = override_pools(load(path), swaps or {})
    found = problems(doc, path, root, {pool.name for pool in POOLS})
    if found:
        raise InputError("; ".join(found) + ". Nothing was applied.")
    values = template_values(settings, root)
    reachable(api_url, source)
    created = ensure_pools(api_url, settings)
    log = settings.stack_dir / "deploy.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    # Prefect resolves entrypoints from the working folder: the file goes beside the project.
    with tempfile.NamedTemporaryFile("w", suffix=".yaml", dir=root, prefix=".prefect-") as resolved:
        yaml.safe_dump(doc, resolved, sort_keys=False)
        resolved.flush()
        command = [processes.console_script("prefect"), "--no-prompt", "deploy", "--all"]
        env = {**os.environ, **values, "PREFECT_API_URL": api_url}
        with log.open("w") as out:
            done = subprocess.run(
                [*command, "--prefect-file", resolved.name],
                cwd=root,
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
    if done.returncode != 0:
        tail = "\n".join(log.read_text(errors="replace").splitlines()[-20:])
        raise MlstackError(f"prefect deploy failed (exit {done.returncode}); its log is {log}:\n{tail}")
    flows = {ref.entrypoint: ref.name for ref in flows_in(root)}
    names = [f"{flows[entry['entrypoint']]}/{entry['name']}" for entry in doc["deployments"]]
    pools = [entry.get("work_pool", {}).get("name") for entry in doc["deployments"]]
    unpolled = {
        pool: [name for name, used in zip(names, pools, strict=True) if used == pool]
        for pool in sorted({p for p in pools if p} - ready_pools(api_url))
    }
    return DeployResult(
        api_url=api_url, pools_created=created, deployments=names, log=str(log), unpolled=unpolled
    )


def ready_pools(api_url: str) -> set[str]:
    """The pools a worker polls: Prefect's READY."""
    import httpx

    with httpx.Client(base_url=api_url.rstrip("/") + "/", headers=_headers(), timeout=30) as client:
        answer = client.post("work_pools/filter", json={})
        answer.raise_for_status()
        return {pool["name"] for pool in answer.json() if pool.get("status") == "READY"}
