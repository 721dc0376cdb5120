#!/bin/sh
# Applies the base manifests, then an environment's overlay: overlays/<env>/config.yaml replaces the
# base ConfigMap, and each overlays/<env>/<kind>-<name>.patch.yaml is a strategic-merge patch of
# that object (replicas, resources, ...). Plain kubectl: no kustomize or helm needed.
# Usage: sh deploy/kubernetes/apply.sh <env> [kubectl arguments, e.g. --context prod]
set -eu
env=${1:?usage: apply.sh <env> [kubectl args]}
shift
here=$(dirname "$0")
overlay="$here/overlays/$env"
[ -d "$overlay" ] || { echo "no overlay $overlay" >&2; exit 2; }
kubectl "$@" apply -f "$here/base/"
[ ! -f "$overlay/config.yaml" ] || kubectl "$@" apply -f "$overlay/config.yaml"
for patch in "$overlay"/*.patch.yaml; do
    [ -e "$patch" ] || continue
    target=$(basename "$patch" .patch.yaml)            # e.g. deployment-api
    kubectl "$@" -n iotcloud patch "${target%%-*}" "${target#*-}" --type strategic --patch-file "$patch"
done
# A changed ConfigMap reaches running pods only through a restart.
kubectl "$@" -n iotcloud rollout restart deployment
