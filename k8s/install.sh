#!/usr/bin/env bash
# The container image's install steps, in one place: the Dockerfile runs this script, and
# `make image-check` runs the same script into a fresh virtual environment without Docker.
#
#   k8s/install.sh PROJECT_DIR VENV_DIR NUMBA_CACHE_DIR
#
# PROJECT_DIR  a copy of the repository (the image uses /opt/osd); installed editable, so the
#              import path of every module is PROJECT_DIR/<package>/..., the same path the
#              numba cache index records at build time and finds again at run time.
# VENV_DIR     the virtual environment to create (the image uses /opt/venv).
# NUMBA_CACHE_DIR  where the numba cache is pre-warmed (the image uses /var/cache/osd/numba).
#
# Dependencies come from k8s/constraints.txt (pinned from the team's tested venv; regenerate
# with `make constraints`). PYTHON selects the interpreter that creates the venv (default python3).
set -euo pipefail

if [ "$#" -ne 3 ]; then
    echo "usage: $0 PROJECT_DIR VENV_DIR NUMBA_CACHE_DIR" >&2
    exit 2
fi
project=$(cd "$1" && pwd)
venv=$2
numba_cache=$3

"${PYTHON:-python3}" -m venv "$venv"
pip=("$venv/bin/python" -m pip --no-cache-dir --disable-pip-version-check)
"${pip[@]}" install --quiet --upgrade pip
# The `server` extra adds the MLflow server's PostgreSQL driver and S3 client, so the same
# image runs the Ray nodes and the MLflow tracking server.
"${pip[@]}" install --quiet --constraint "$project/k8s/constraints.txt" --editable "${project}[server]"
"${pip[@]}" check

# Byte-compile now: a read-only root filesystem cannot take __pycache__ at run time.
"$venv/bin/python" -m compileall -q "$project/backtest" "$project/models" "$project/discovery" "$project/cluster"

# The console script and the module entry must both work, and the cluster-side imports resolve.
"$venv/bin/osd" --help >/dev/null
(cd / && "$venv/bin/python" -m discovery --help >/dev/null)
"$venv/bin/python" -c "import ray, mlflow, psycopg2, boto3, numba"

mkdir -p "$numba_cache"
(cd "$project" && NUMBA_CACHE_DIR="$numba_cache" "$venv/bin/python" k8s/prewarm_numba.py)
