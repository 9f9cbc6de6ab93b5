# The Theodolite api (gateway). Build context: the repository root.
#   docker build -f deploy/docker/api.Dockerfile -t theodolite-api .

ARG PYTHON_IMAGE=python:3.11-slim
# uv installs the lock (hash-checked) and the project's distributions; only the build stage has it.
ARG UV_IMAGE=ghcr.io/astral-sh/uv:0.13.9

FROM ${UV_IMAGE} AS uv

FROM ${PYTHON_IMAGE} AS build
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
# changes. `make locks` writes it from deploy/locks/api.in.
COPY deploy/locks/api.txt deploy/locks/
RUN uv pip sync --require-hashes deploy/locks/api.txt
# The shared distributions it needs (shared/<audience>), then the service, with nothing more: the
# lock holds all they depend on, which `uv pip check` confirms.
COPY shared ./shared
COPY services/api ./services/api
RUN uv pip install --no-deps --no-build-isolation ./shared/sdk "./shared/core[web]" ./services/api \
    && uv pip check

FROM ${PYTHON_IMAGE}
LABEL org.opencontainers.image.title="theodolite-api" \
      org.opencontainers.image.description="Theodolite gateway: REST API, submission validation, outbox relay"
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    DO_NOT_TRACK=1 \
    MLFLOW_DISABLE_TELEMETRY=true \
    PREFECT_SERVER_ANALYTICS_ENABLED=false \
    THEODOLITE_API_HOST=0.0.0.0 \
    THEODOLITE_API_PORT=8000
RUN useradd --create-home --uid 10001 --shell /usr/sbin/nologin theodolite
COPY --from=build /opt/venv /opt/venv
USER theodolite
WORKDIR /home/theodolite
EXPOSE 8000
# Liveness of the process only; compose checks /readyz (database, broker, object store).
HEALTHCHECK --interval=15s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=4)"]
CMD ["python", "-m", "theodolite_api"]
