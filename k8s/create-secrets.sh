#!/usr/bin/env bash
# Creates the Secrets the manifests reference, straight in the cluster: nothing is written to
# disk or to git. An existing Secret is kept (re-running is safe; a new Ray token would lock
# out a running cluster), so to rotate one, delete it first.
#
#   k8s/create-secrets.sh NAMESPACE
#
# Environment:
#   AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY  credentials of the S3-compatible artifact store
#                                             (required; only the MLflow server holds them)
#   MLFLOW_DB_URI    URI of a managed PostgreSQL for MLflow (prod), e.g.
#                    postgresql://USER:PASSWORD@HOST:5432/mlflow?sslmode=require ; when unset,
#                    the in-cluster PostgreSQL of the dev overlay is used with a random password
#   RAY_AUTH_TOKEN   the Ray cluster token; random when unset
#
# Secrets created: osd-ray-auth (auth_token), osd-mlflow-db (uri), osd-mlflow-s3
# (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY) and, without MLFLOW_DB_URI, osd-postgres (password).
set -euo pipefail

if [ "$#" -ne 1 ]; then
    echo "usage: $0 NAMESPACE" >&2
    exit 2
fi
namespace=$1
: "${AWS_ACCESS_KEY_ID:?set AWS_ACCESS_KEY_ID (artifact store credentials)}"
: "${AWS_SECRET_ACCESS_KEY:?set AWS_SECRET_ACCESS_KEY (artifact store credentials)}"

random_token() {
    python3 -c 'import secrets; print(secrets.token_urlsafe(32), end="")'
}

# create_secret NAME KEY=VALUE... : values pass through files under a private temp dir, never
# through the command line (which other users of the machine could read).
create_secret() {
    local name=$1
    shift
    if kubectl get secret "$name" --namespace "$namespace" >/dev/null 2>&1; then
        echo "secret $name exists in $namespace: kept"
        return
    fi
    local dir
    dir=$(mktemp -d)
    local args=()
    for pair in "$@"; do
        printf '%s' "${pair#*=}" > "$dir/${pair%%=*}"
        args+=("--from-file=${pair%%=*}=$dir/${pair%%=*}")
    done
    kubectl create secret generic "$name" --namespace "$namespace" "${args[@]}"
    rm -rf "$dir"
}

create_secret osd-ray-auth "auth_token=${RAY_AUTH_TOKEN:-$(random_token)}"
create_secret osd-mlflow-s3 "AWS_ACCESS_KEY_ID=$AWS_ACCESS_KEY_ID" "AWS_SECRET_ACCESS_KEY=$AWS_SECRET_ACCESS_KEY"
if [ -n "${MLFLOW_DB_URI:-}" ]; then
    create_secret osd-mlflow-db "uri=$MLFLOW_DB_URI"
else
    # Keep the URI consistent with a password the database may already have been created with.
    if kubectl get secret osd-postgres --namespace "$namespace" >/dev/null 2>&1; then
        password=$(kubectl get secret osd-postgres --namespace "$namespace" \
            -o jsonpath='{.data.password}' | base64 --decode)
    else
        password=$(random_token)
    fi
    create_secret osd-postgres "password=$password"
    create_secret osd-mlflow-db "uri=postgresql://mlflow:$password@osd-postgres:5432/mlflow"
fi
