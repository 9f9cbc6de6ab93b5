# A Theodolite worker. Build context: the repository root.
#   docker build -f deploy/docker/worker.Dockerfile -t theodolite-worker .
# One image serves every queue: a CPU worker by default; a GPU worker is the same image with
# THEODOLITE_WORKER_QUEUE=gpu, THEODOLITE_WORKER_GPUS=0 and a GPU reserved by the runtime.
# Jobs run with this image's Python, so what they import (the `ml` extra, the Prefect engine and
# the built-in plugins) is installed here.

ARG PYTHON_IMAGE=python:3.11-slim

FROM ${PYTHON_IMAGE} AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PYTHONDONTWRITEBYTECODE=1
RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
WORKDIR /src
COPY shared ./shared
COPY services/worker ./services/worker
COPY plugins ./plugins
# The built-in plugins: graphs call their tasks, and the worker announces their contracts.
RUN pip install ./shared/sdk ./shared/client "./shared/core[graphs]" "./services/worker[ml]" ./plugins/*/

FROM ${PYTHON_IMAGE}
LABEL org.opencontainers.image.title="theodolite-worker" \
      org.opencontainers.image.description="Theodolite worker: runs MLflow entry points from one job queue"
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    DO_NOT_TRACK=1 \
    MLFLOW_DISABLE_TELEMETRY=true \
    PREFECT_SERVER_ANALYTICS_ENABLED=false \
    GIT_PYTHON_REFRESH=quiet \
    MPLCONFIGDIR=/tmp/matplotlib \
    THEODOLITE_WORKER_QUEUE=cpu \
    THEODOLITE_WORKER_WORK_DIR=/var/lib/theodolite/worker
RUN mkdir -p /var/lib/theodolite/worker
COPY --from=build /opt/venv /opt/venv
# Root in the container, on purpose: the worker makes each job's sandbox (namespaces, mounts, a
# uid of the job's own; docs/security.md#isolation) and no job code ever runs as root. compose.yaml
# grants CAP_SYS_ADMIN for that and nothing more.
# hadolint ignore=DL3002
USER 0
WORKDIR /var/lib/theodolite/worker
# Archive cache and job folders; a named volume keeps the cache across restarts.
VOLUME ["/var/lib/theodolite/worker"]
CMD ["python", "-m", "theodolite_worker"]
