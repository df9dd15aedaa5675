"""params.yaml: the pipeline parameters DVC tracks, read by the flows too so both agree."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import yaml

from mlstack.settings import project_root


def pipeline_root() -> Path:
    """Where params.yaml and dvc.lock are read: the working directory when it holds a
    params.yaml (DVC runs each stage there, and `dvc exp run --temp` or `--queue` in a copy of the
    repository whose params.yaml carries the experiment's `-S` changes), else the checkout."""
    here = Path.cwd()
    return here if (here / "params.yaml").is_file() else project_root()


def load_params(path: Path | None = None) -> dict[str, Any]:
    path = path or pipeline_root() / "params.yaml"
    try:
        return yaml.safe_load(path.read_text()) or {}
    except FileNotFoundError:
        raise FileNotFoundError(f"{path}: params file not found; run from the mlstack checkout") from None


def data_version(validated_dir: Path, lock: Path | None = None) -> str:
    """The DVC version of the validated data when dvc.lock records it, else a content hash."""
    lock = lock or pipeline_root() / "dvc.lock"
    if lock.is_file():
        stages = (yaml.safe_load(lock.read_text()) or {}).get("stages", {})
        for out in stages.get("validate", {}).get("outs", []):
            if (
                out.get("path") == "data/validated"
                and validated_dir.resolve() == (lock.parent / "data/validated").resolve()
            ):
                return f"dvc:{out['md5']}"
    digest = hashlib.sha256()
    for file in sorted(validated_dir.glob("*.parquet")):
        digest.update(file.name.encode())
        digest.update(file.read_bytes())
    return f"sha256:{digest.hexdigest()[:16]}"
