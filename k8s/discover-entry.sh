#!/usr/bin/env bash
# Entry of a discovery run on a Ray cluster: the RayJob's entrypoint, and the command to give
# `ray job submit --working-dir . --` for interactive runs.
#
#   k8s/discover-entry.sh [--print] CONFIG OUT_DIR [more `discover` options...]
#
# Runs `python -m discovery discover --config CONFIG --out OUT_DIR --executor ray --address auto`,
# adding `--resume OUT_DIR` when OUT_DIR already holds a checkpoint: a RayJob retry runs on a
# fresh cluster, and OUT_DIR is on shared storage, so the retry continues from the last
# generation instead of starting over. A checkpoint is any file matching $OSD_CHECKPOINT_GLOB
# (default `checkpoint*`) directly in OUT_DIR.
# A relative CONFIG is taken from the repository this script lives in (/opt/osd in the image,
# the uploaded working directory under `ray job submit`). The run's working directory is
# OUT_DIR: the image's root filesystem is read-only, and whatever the run writes to relative
# paths (an MLflow spool, say) then survives a retry with the rest of the run.
# --print shows the command instead of running it.
set -euo pipefail

print_only=false
if [ "${1:-}" = "--print" ]; then
    print_only=true
    shift
fi
if [ "$#" -lt 2 ]; then
    echo "usage: $0 [--print] CONFIG OUT_DIR [more discover options...]" >&2
    exit 2
fi
config=$1
out_dir=$2
shift 2

repo=$(cd "$(dirname "$0")/.." && pwd)
case $config in
    /*) ;;
    *) config=$repo/$config ;;
esac
mkdir -p "$out_dir"
out_dir=$(cd "$out_dir" && pwd)
command=(python -m discovery discover --config "$config" --out "$out_dir" --executor ray --address auto)
if compgen -G "$out_dir/${OSD_CHECKPOINT_GLOB:-checkpoint*}" >/dev/null; then
    command+=(--resume "$out_dir")
fi
command+=("$@")

if $print_only; then
    echo "${command[*]}"
    exit 0
fi
echo "discover-entry: ${command[*]}" >&2
cd "$out_dir"
exec "${command[@]}"
