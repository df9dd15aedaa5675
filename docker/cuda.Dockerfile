# The job image of the `gpu` pool (Kubernetes): CUDA 12.8 runtime, Python 3.11, mlstack's
# dependencies with torch's CUDA build, and NVML for MLflow's GPU metrics.
#
# It imports as the CPU image does (see cpu.Dockerfile): dependencies installed non-editable,
# the project's tree at /opt/mlstack on PYTHONPATH, so params.yaml and feature_repo/ are found
# beside the `mlstack` package and no generic package name lands in site-packages.
FROM nvidia/cuda:12.8.1-cudnn-runtime-ubuntu22.04

# Ubuntu 22.04's own Python is 3.10; its universe has 3.11. git: the pull step clones the code.
RUN apt-get update \
    && apt-get install -y --no-install-recommends \
        python3.11=3.11.* python3.11-venv=3.11.* git=1:2.34.* ca-certificates=* \
    && rm -rf /var/lib/apt/lists/*

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PATH=/opt/venv/bin:$PATH
RUN python3.11 -m venv /opt/venv

WORKDIR /opt/mlstack
COPY pyproject.toml constraints.txt ./
# torch==2.13.0 from PyPI is the CUDA build: no CPU index here, unlike the CPU image.
RUN python -c "import tomllib; p = tomllib.load(open('pyproject.toml', 'rb'))['project']; print('\n'.join(p['dependencies'] + p['optional-dependencies']['llm'] + p['optional-dependencies']['gpu']))" \
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
