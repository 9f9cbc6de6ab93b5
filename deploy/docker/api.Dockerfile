# The Theodolite api (gateway). Build context: the repository root.
#   docker build -f deploy/docker/api.Dockerfile -t theodolite-api .

ARG PYTHON_IMAGE=python:3.11-slim

FROM ${PYTHON_IMAGE} AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PYTHONDONTWRITEBYTECODE=1
RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
WORKDIR /src
# The shared distributions it needs (shared/<audience>), then the service.
COPY shared ./shared
COPY services/api ./services/api
RUN pip install ./shared/sdk "./shared/core[web]" ./services/api

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
