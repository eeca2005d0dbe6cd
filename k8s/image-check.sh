#!/usr/bin/env bash
# Exercises the container image's install steps without a Docker engine: copies the build
# context (the repository's tracked and untracked-but-not-ignored files, as `docker build .`
# would send them after .dockerignore) to a scratch directory and runs k8s/install.sh there,
# exactly as the Dockerfile does, into a fresh virtual environment. Downloads every dependency.
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
work=$(mktemp -d "${TMPDIR:-/tmp}/osd-image-check.XXXXXX")
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/osd"
(
    cd "$repo"
    git ls-files -z --cached --others --exclude-standard | while IFS= read -r -d '' file; do
        if [ -e "$file" ]; then cp --parents "$file" "$work/osd"; fi
    done
)
start=$(date +%s)
"$work/osd/k8s/install.sh" "$work/osd" "$work/venv" "$work/numba-cache"
echo "image-check: install steps passed in $(( $(date +%s) - start )) s" \
     "($("$work/venv/bin/python" --version), $("$work/venv/bin/python" -m pip list --format=freeze | wc -l) packages)"
