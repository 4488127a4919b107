#!/usr/bin/env bash
# Copies the generated files that the install manifests ship into the folders that ship them:
#   crds/*.yaml              -> manifests/base/crds/  (kustomize loads no file outside its folder)
#                            -> charts/jobchain/files/crds/  (read by templates/crds.yaml; a chart
#                               packages nothing outside its folder)
#   argocd/health/*/*/*.lua  -> argocd/argocd-cm-patch.yaml (the argocd-cm keys users paste)
# Run it after `python -m jobchain.api.crd` regenerates crds/ or after editing a health.lua;
# tests/unit/test_manifests.py and test_argocd_health.py fail while the copies are stale.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"

for dest in manifests/base/crds charts/jobchain/files/crds; do
  mkdir -p "$dest"
  rm -f "$dest"/*.yaml
  cp crds/*.yaml "$dest"/
done

{
  cat <<'EOF'
# Argo CD health checks of jobchain.dev resources, merged into the argocd-cm ConfigMap:
#   kubectl -n argocd patch configmap argocd-cm --type merge --patch-file argocd/argocd-cm-patch.yaml
# Generated from argocd/health/<group>/<Kind>/health.lua by hack/sync-manifests.sh. Do not edit.
apiVersion: v1
kind: ConfigMap
metadata:
  name: argocd-cm
  namespace: argocd
  labels:
    app.kubernetes.io/part-of: argocd
data:
EOF
  for lua in argocd/health/*/*/health.lua; do
    kind=$(basename "$(dirname "$lua")")
    group=$(basename "$(dirname "$(dirname "$lua")")")
    printf '  resource.customizations.health.%s_%s: |\n' "$group" "$kind"
    sed 's/^\(.\)/    \1/' "$lua"
  done
} > argocd/argocd-cm-patch.yaml
echo "synced: manifests/base/crds charts/jobchain/files/crds argocd/argocd-cm-patch.yaml"
