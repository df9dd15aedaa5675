# The worker image of the `cpu` pool: Python 3.11, mlstack's dependencies, and the project's tree.
#
# How it imports, and why not as a wheel: a wheel would put the generic top-level names `flows`,
# `models` and `monitoring` into site-packages, where another distribution may collide with
# them, and would leave out `params.yaml` and `feature_repo/`. So the dependencies are installed
# (non-editable, from pyproject.toml under constraints.txt), and the tree is copied whole to
# /opt/mlstack, which PYTHONPATH puts first: imports resolve exactly as in a checkout, and
# `project_root()` finds params.yaml and feature_repo/ beside the `mlstack` package. A deployment
# run clones its branch (prefect.yaml's pull step) and runs from that clone the same way.
#
# Build and push: see README, "Worker images". Data: MLSTACK_HOME=/data (mount a volume), or
# point MLSTACK_PG_DSN, MLFLOW_TRACKING_URI and PREFECT_API_URL at shared services.
FROM python:3.11.14-slim-bookworm

# git: the pull step clones the deployed branch when a run starts.
RUN apt-get update \
    && apt-get install -y --no-install-recommends git=1:2.39.* \
    && rm -rf /var/lib/apt/lists/*

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_EXTRA_INDEX_URL=https://download.pytorch.org/whl/cpu

WORKDIR /opt/mlstack
COPY pyproject.toml constraints.txt ./
# The dependencies only, as pyproject.toml lists them, with the llm extra (deployments run RAG,
# pretraining and fine-tuning); this layer is reused until they change.
RUN python -c "import tomllib; p = tomllib.load(open('pyproject.toml', 'rb'))['project']; print('\n'.join(p['dependencies'] + p['optional-dependencies']['llm']))" \
        > /tmp/requirements.txt \
    && pip install -c constraints.txt -r /tmp/requirements.txt \
    && rm /tmp/requirements.txt

COPY . .
RUN printf '#!/bin/sh\nexec python -m mlstack.cli "$@"\n' > /usr/local/bin/mlstack \
    && chmod 0755 /usr/local/bin/mlstack \
    && useradd --create-home --uid 1000 mlstack \
    && mkdir /data \
    && chown mlstack /data
ENV PYTHONPATH=/opt/mlstack \
    MLSTACK_HOME=/data

USER 1000
CMD ["prefect", "worker", "start", "--pool", "cpu", "--type", "process"]
