#!/bin/sh
# The Secrets the Kubernetes manifests read, from files in FOLDER (written once; files that exist
# are kept, so to use your own values, e.g. external PostgreSQL and RabbitMQ addresses in the
# URLs, write those files first):
#
#   deploy/kubernetes/create-secrets.sh FOLDER            # write the files only
#   deploy/kubernetes/create-secrets.sh FOLDER --apply    # ... and create or update, in the
#                                                         # namespace theodolite (kubectl):
#     theodolite-secrets         every file of FOLDER (deploy/secrets/generate.sh's, plus
#                                rabbitmq_management_url for KEDA)
#     theodolite-worker-tokens   FOLDER/worker-tokens: one token per worker pod name
#     theodolite-postgres-init   deploy/postgres/init    } read only by in-cluster/: PostgreSQL's
#     theodolite-file-env        deploy/bin/file-env.sh  } init script; *_FILE for RabbitMQ,
#                                                          MLflow and Prefect
#
# THEODOLITE_CPU_WORKERS_MAX and THEODOLITE_GPU_WORKERS_MAX (default 8 and 4, the ScaledObjects'
# maxReplicaCount in base/autoscaling.yaml) say how many worker names get a token.
set -eu

usage() { echo "usage: $0 FOLDER [--apply]" >&2; exit 2; }
[ $# -ge 1 ] || usage
dir=$1
apply=${2:-}
[ -z "$apply" ] || [ "$apply" = --apply ] || usage
here=$(cd "$(dirname "$0")" && pwd)
namespace=${THEODOLITE_NAMESPACE:-theodolite}

sh "$here/../secrets/generate.sh" "$dir" >/dev/null
umask 022

write() {
    if [ ! -e "$1" ]; then
        printf '%s\n' "$2" >"$1"
        echo "wrote $1"
    fi
}

# KEDA's rabbitmq trigger reads queue lengths from the management API (default vhost: "/"). KEDA
# takes the Secret's value as it is: no trailing newline, or the URL does not parse.
user=$(cat "$dir/rabbitmq_user")
password=$(cat "$dir/rabbitmq_password")
if [ ! -e "$dir/rabbitmq_management_url" ]; then
    printf '%s' "http://$user:$password@rabbitmq:15672/" >"$dir/rabbitmq_management_url"
    echo "wrote $dir/rabbitmq_management_url"
fi

# WORKER_ID.HMAC-SHA256(api_worker_secret, WORKER_ID), as deploy/secrets/generate.sh makes them,
# for the StatefulSets' pod names.
mkdir -p "$dir/worker-tokens"
worker_secret=$(cat "$dir/api_worker_secret")
tokens() {
    i=0
    while [ "$i" -lt "$2" ]; do
        name="$1-$i"
        mac=$(printf '%s' "$name" | openssl dgst -sha256 -hmac "$worker_secret" -r)
        write "$dir/worker-tokens/$name" "$name.${mac%% *}"
        i=$((i + 1))
    done
}
tokens worker-cpu "${THEODOLITE_CPU_WORKERS_MAX:-8}"
tokens worker-gpu "${THEODOLITE_GPU_WORKERS_MAX:-4}"

if [ "$apply" = --apply ]; then
    # create --dry-run | apply: creates the object, or updates it when it exists.
    kubectl get namespace "$namespace" >/dev/null 2>&1 || kubectl create namespace "$namespace"
    kubectl -n "$namespace" create secret generic theodolite-secrets --from-file="$dir" \
        --dry-run=client -o yaml | kubectl apply -f -
    kubectl -n "$namespace" create secret generic theodolite-worker-tokens \
        --from-file="$dir/worker-tokens" --dry-run=client -o yaml | kubectl apply -f -
    kubectl -n "$namespace" create configmap theodolite-postgres-init \
        --from-file="$here/../postgres/init" --dry-run=client -o yaml | kubectl apply -f -
    kubectl -n "$namespace" create configmap theodolite-file-env \
        --from-file=file-env="$here/../bin/file-env.sh" --dry-run=client -o yaml | kubectl apply -f -
fi
