# MLflow tracking server for Theodolite: PostgreSQL backend store (psycopg2 driver, use a
# postgresql+psycopg2:// URI) and S3 artifacts proxied by the server (boto3).
#   docker build -f deploy/docker/mlflow.Dockerfile -t theodolite-mlflow .

ARG PYTHON_IMAGE=python:3.11-slim
FROM ${PYTHON_IMAGE}

ARG MLFLOW_VERSION=3.17.2
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    DO_NOT_TRACK=1 \
    MLFLOW_DISABLE_TELEMETRY=true \
    GIT_PYTHON_REFRESH=quiet \
    MLFLOW_SERVER_ENABLE_JOB_EXECUTION=false
RUN pip install "mlflow==${MLFLOW_VERSION}" "psycopg2-binary>=2.9" "boto3>=1.34" \
    && useradd --create-home --uid 10001 --shell /usr/sbin/nologin mlflow
USER mlflow
WORKDIR /home/mlflow
EXPOSE 5000
HEALTHCHECK --interval=15s --timeout=5s --start-period=90s --retries=5 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:5000/health', timeout=4)"]
# The backend store and artifact destination come from the command line (see compose.yaml) or
# from MLFLOW_BACKEND_STORE_URI / MLFLOW_ARTIFACTS_DESTINATION.
CMD ["mlflow", "server", "--host", "0.0.0.0", "--port", "5000", "--workers", "1"]
