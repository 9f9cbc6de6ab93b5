#!/bin/sh
# Writes one random secret per file into this folder (or the folder given), for compose.yaml
# (`secrets: file:`) or `docker secret create` (deploy/swarm/stack.yaml). Files that exist are
# kept, so running it again changes nothing; delete a file (and the data volumes it guards) to
# change that secret.
#
#   deploy/secrets/generate.sh            # ./deploy/secrets/*, what compose.yaml reads
#   deploy/secrets/generate.sh /elsewhere # then THEODOLITE_SECRETS_DIR=/elsewhere docker compose up
set -eu

dir=${1:-$(dirname "$0")}
mkdir -p "$dir"
# The folder is yours alone; the files in it are readable, because compose bind-mounts each one
# into containers whose services run as users of their own (postgres, mlflow, theodolite).
chmod 700 "$dir"
umask 022

random() {
    # Letters and digits only: the values go into URLs unescaped.
    LC_ALL=C tr -dc 'A-Za-z0-9' </dev/urandom | head -c 32
}

# write NAME VALUE: the file NAME holds VALUE, unless it exists already.
write() {
    if [ ! -e "$dir/$1" ]; then
        printf '%s\n' "$2" >"$dir/$1"
        echo "wrote $dir/$1"
    fi
}

read_secret() {
    cat "$dir/$1"
}

write s3_access_key "theodolite-$(random | head -c 8)"
write s3_secret_key "$(random)"
write rabbitmq_user theodolite
write rabbitmq_password "$(random)"
write postgres_password "$(random)"
for role in api registry mlflow prefect; do
    write "postgres_${role}_password" "$(random)"
done
write mlflow_ui_password "$(random)"
write api_worker_secret "$(random)"

# A worker's token on the api's internal listener: WORKER_ID.HMAC-SHA256(worker secret, WORKER_ID).
worker_token() {
    mac=$(printf '%s' "$1" | openssl dgst -sha256 -hmac "$(read_secret api_worker_secret)" -r)
    printf '%s.%s' "$1" "${mac%% *}"
}
write worker_cpu_token "$(worker_token worker-cpu)"
write worker_gpu_token "$(worker_token worker-gpu)"

# Connection URLs carry their passwords: each service reads its URL from one secret.
write broker_url "amqp://$(read_secret rabbitmq_user):$(read_secret rabbitmq_password)@rabbitmq:5672/"
write api_db_url "postgresql+asyncpg://api:$(read_secret postgres_api_password)@postgres:5432/theodolite"
write registry_db_url "postgresql+asyncpg://registry:$(read_secret postgres_registry_password)@postgres:5432/theodolite"
# psycopg2: a plain postgresql:// URI crashes MLflow at start.
write mlflow_db_url "postgresql+psycopg2://mlflow:$(read_secret postgres_mlflow_password)@postgres:5432/mlflow"
write prefect_db_url "postgresql+asyncpg://prefect:$(read_secret postgres_prefect_password)@postgres:5432/prefect"
