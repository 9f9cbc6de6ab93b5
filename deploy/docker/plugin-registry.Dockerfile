# The Theodolite plugin registry. Build context: the repository root.
#   docker build -f deploy/docker/plugin-registry.Dockerfile -t theodolite-plugin-registry .
# It imports each candidate plugin to validate it, so it carries the environment jobs run in
# (the worker's `ml` extra); validation itself runs in a time- and memory-limited subprocess.

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
COPY services/plugin-registry ./services/plugin-registry
RUN pip install ./shared/sdk ./shared/client "./shared/core[graphs,web]" "./services/worker[ml]" \
    ./services/plugin-registry

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
