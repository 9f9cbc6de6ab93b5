# A Theodolite worker. Build context: the repository root.
#   docker build -f deploy/docker/worker.Dockerfile -t theodolite-worker .
#   docker build -f deploy/docker/worker.Dockerfile --build-arg TORCH_VARIANT=cuda -t theodolite-worker-gpu .
# The default build (CPU torch) serves CPU queues; a GPU worker runs the cuda build with
# THEODOLITE_WORKER_QUEUE=gpu, THEODOLITE_WORKER_GPUS=0 and a GPU reserved by the runtime.
# Jobs run with this image's Python, so what they import (the `ml` extra, the Prefect engine and
# the built-in plugins) is installed here.

ARG PYTHON_IMAGE=python:3.11-slim
# uv installs the lock (hash-checked) and the project's distributions; only the build stage has it.
ARG UV_IMAGE=ghcr.io/astral-sh/uv:0.13.9
# torch's build: cpu (deploy/locks/worker-cpu.txt, torch from the PyTorch CPU index) or cuda
# (deploy/locks/worker-cuda.txt, public PyPI's CUDA build with its nvidia-* libraries).
ARG TORCH_VARIANT=cpu
# Where the CPU build comes from: the PyTorch CPU index or a mirror of it (cpu only; every other
# package comes from PyPI, and the lock's hashes hold either way).
ARG TORCH_CPU_INDEX=https://download.pytorch.org/whl/cpu

FROM ${UV_IMAGE} AS uv

FROM ${PYTHON_IMAGE} AS build
ARG TORCH_VARIANT
ARG TORCH_CPU_INDEX
ENV PYTHONDONTWRITEBYTECODE=1 \
    UV_NO_CACHE=1 \
    UV_COMPILE_BYTECODE=1 \
    UV_PYTHON_DOWNLOADS=never \
    VIRTUAL_ENV=/opt/venv
COPY --from=uv /uv /usr/local/bin/uv
RUN uv venv /opt/venv --python /usr/local/bin/python3
ENV PATH=/opt/venv/bin:$PATH
WORKDIR /src
# The lock first: its layer (every third-party package, hash-checked) is rebuilt only when it
# changes. `make locks` writes both from deploy/locks/worker-{cpu,cuda}.in. The CUDA lock's
# torch==2.13.0 would match the CPU index's 2.13.0+cpu too, so only the CPU build looks there.
COPY deploy/locks/worker-${TORCH_VARIANT}.txt deploy/locks/
RUN if [ "$TORCH_VARIANT" = cpu ]; then \
        export UV_EXTRA_INDEX_URL="$TORCH_CPU_INDEX" UV_INDEX_STRATEGY=unsafe-best-match; \
    fi \
    && uv pip sync --require-hashes "deploy/locks/worker-${TORCH_VARIANT}.txt"
COPY shared ./shared
COPY services/worker ./services/worker
COPY plugins ./plugins
# The built-in plugins: graphs call their tasks, and the worker announces their contracts.
RUN uv pip install --no-deps --no-build-isolation ./shared/sdk ./shared/client "./shared/core[graphs]" \
    "./services/worker[ml]" ./plugins/*/ \
    && uv pip check

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
