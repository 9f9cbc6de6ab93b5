# The Theodolite plugin registry. Build context: the repository root.
#   docker build -f deploy/docker/plugin-registry.Dockerfile -t theodolite-plugin-registry .
# It imports each candidate plugin to validate it, so it carries the environment jobs run in
# (the worker's `ml` extra, with torch's CPU build: no CUDA); validation itself runs in a time-
# and memory-limited sandbox.

ARG PYTHON_IMAGE=python:3.11-slim
# uv installs the lock (hash-checked) and the project's distributions; only the build stage has it.
ARG UV_IMAGE=ghcr.io/astral-sh/uv:0.13.9
# Where torch's CPU build (the lock's torch==2.13.0+cpu) comes from: the PyTorch CPU index or a
# mirror of it. Every other package comes from PyPI; the lock's hashes hold either way.
ARG TORCH_CPU_INDEX=https://download.pytorch.org/whl/cpu

FROM ${UV_IMAGE} AS uv

FROM ${PYTHON_IMAGE} AS build
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
# changes. `make locks` writes it from deploy/locks/registry.in.
COPY deploy/locks/registry.txt deploy/locks/
RUN UV_EXTRA_INDEX_URL="$TORCH_CPU_INDEX" UV_INDEX_STRATEGY=unsafe-best-match \
    uv pip sync --require-hashes deploy/locks/registry.txt
COPY shared ./shared
COPY services/worker ./services/worker
COPY services/plugin-registry ./services/plugin-registry
RUN uv pip install --no-deps --no-build-isolation ./shared/sdk ./shared/client \
    "./shared/core[graphs,web]" "./services/worker[ml]" ./services/plugin-registry \
    && uv pip check

FROM ${PYTHON_IMAGE}
LABEL org.opencontainers.image.title="theodolite-plugin-registry" \
      org.opencontainers.image.description="Theodolite plugin registry: validates, stores and publishes task plugins"
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    DO_NOT_TRACK=1 \
    MLFLOW_DISABLE_TELEMETRY=true \
    MPLCONFIGDIR=/tmp/matplotlib \
    THEODOLITE_REGISTRY_HOST=0.0.0.0 \
    THEODOLITE_REGISTRY_PORT=8100
COPY --from=build /opt/venv /opt/venv
# The built-in plugins, for the one-shot service that publishes them (compose: publish-plugins).
COPY plugins /opt/theodolite/plugins
# Root in the container, on purpose: the registry imports each candidate plugin in a sandbox of
# its own (namespaces, mounts, an unprivileged uid; docs/security.md#isolation), which only root
# can make; no plugin code runs as root. compose.yaml grants CAP_SYS_ADMIN and nothing more.
# hadolint ignore=DL3002
USER 0
WORKDIR /opt/theodolite
EXPOSE 8100
CMD ["python", "-m", "theodolite_registry"]
