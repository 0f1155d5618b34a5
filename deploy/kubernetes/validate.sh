#!/usr/bin/env bash
# Offline check of the Kubernetes manifests: every manifest against the JSON schema of one
# pinned Kubernetes version (kubernetes-validate bundles the schemas; no cluster, no network),
# strict (an unknown or misspelt field fails), then the shard settings a schema cannot see
# (check.py). Where kubectl is on PATH, the kustomizations are also rendered and the result
# checked the same way (CI has no kubectl; it checks the files as written).
#
#   pip install kubernetes-validate==1.37.0      # once (.ci/run does it in a venv)
#   deploy/kubernetes/validate.sh [DIR]          # DIR defaults to this folder
#
# Exits non-zero on the first invalid manifest. K8S_VERSION overrides the version checked.
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
dir="${1:-$here}"
# The oldest Kubernetes still widely run whose Job API has backoffLimitPerIndex (beta and on
# by default since 1.29); the manifests use nothing newer.
version="${K8S_VERSION:-1.30.0}"

if ! command -v kubernetes-validate >/dev/null; then
    echo "validate.sh: kubernetes-validate not found; pip install kubernetes-validate==1.37.0" >&2
    exit 2
fi

# Every manifest but the kustomizations (kustomize's own config, not an API object).
mapfile -t manifests < <(find "$dir" -name '*.yaml' ! -name kustomization.yaml | sort)
if [ "${#manifests[@]}" -eq 0 ]; then
    echo "validate.sh: no manifests in $dir" >&2
    exit 2
fi

echo "== schema: ${#manifests[@]} manifests against Kubernetes $version (strict)"
kubernetes-validate --strict --kubernetes-version "$version" "${manifests[@]}"

rendered=()
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
if command -v kubectl >/dev/null; then
    echo "== kustomize: rendering with $(kubectl version --client 2>/dev/null | grep -i kustomize || echo kubectl)"
    i=0
    while read -r k; do
        out="$tmp/rendered-$i.yaml"
        kubectl kustomize "$(dirname "$k")" >"$out"
        kubernetes-validate --strict --kubernetes-version "$version" "$out" \
            | sed "s|$out|$(dirname "$k") (rendered)|"
        rendered+=("$out")
        i=$((i + 1))
    done < <(find "$dir" -name kustomization.yaml | sort)
else
    echo "== kustomize: skipped (no kubectl on PATH); the files were checked as written"
fi

echo "== shard settings"
python3 "$here/check.py" "$dir" "${rendered[@]}"
