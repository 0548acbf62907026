#!/usr/bin/env bash
# OpenFaaS Community Edition runs functions as openfaas-fn:default (the serviceaccount annotation is Pro only).
# This makes a kubeconfig for the least-privilege falco-pod-delete ServiceAccount (rbac.yaml) and stores it as an
# OpenFaaS secret that the function reads through KUBECONFIG_FILE.
#
#   scripts/make-kubeconfig.sh [--duration 8760h] [--out FILE] [--no-secret] [--server URL]
#
# --server: the API server address written into the kubeconfig (default https://kubernetes.default.svc, the
# in-cluster Service the function reaches from its pod).
#
# Without --duration it uses a long-lived ServiceAccount token Secret, falco-pod-delete-sa-token (a Kubernetes
# Secret; revoke it by deleting that Secret); with --duration it uses a bound token from `kubectl create token`
# (re-run the script before it expires; revoke by re-creating the ServiceAccount). The kubeconfig itself is the
# OpenFaaS secret falco-pod-delete-kubeconfig.
set -euo pipefail
ns=openfaas-fn
sa=falco-pod-delete
secret_name=falco-pod-delete-kubeconfig
sa_token_secret=falco-pod-delete-sa-token
duration=""
out=""
server=https://kubernetes.default.svc
create_secret=1
while [ $# -gt 0 ]; do
  case "$1" in
    --duration) duration="$2"; shift 2 ;;
    --out) out="$2"; shift 2 ;;
    --no-secret) create_secret=0; shift ;;
    --server) server="$2"; shift 2 ;;
    *) echo "unknown option $1" >&2; exit 2 ;;
  esac
done

kubectl get serviceaccount "$sa" -n "$ns" >/dev/null || { echo "apply rbac.yaml first: kubectl apply -f rbac.yaml" >&2; exit 1; }

if [ -n "$duration" ]; then
  token=$(kubectl create token "$sa" -n "$ns" --duration "$duration")
else
  kubectl apply -f - >/dev/null <<YAML
apiVersion: v1
kind: Secret
metadata:
  name: ${sa_token_secret}
  namespace: ${ns}
  annotations:
    kubernetes.io/service-account.name: ${sa}
type: kubernetes.io/service-account-token
YAML
  for _ in $(seq 1 30); do
    token=$(kubectl get secret "${sa_token_secret}" -n "$ns" -o jsonpath='{.data.token}' 2>/dev/null | base64 -d || true)
    [ -n "${token:-}" ] && break
    sleep 1
  done
  [ -n "${token:-}" ] || { echo "the token controller did not fill ${sa_token_secret}" >&2; exit 1; }
fi

ca=$(kubectl config view --raw --minify -o jsonpath='{.clusters[0].cluster.certificate-authority-data}')
if [ -z "$ca" ]; then
  ca=$(kubectl get configmap kube-root-ca.crt -n "$ns" -o jsonpath='{.data.ca\.crt}' | base64 | tr -d '\n')
fi

file=${out:-$(mktemp)}
cat >"$file" <<KUBECONFIG
apiVersion: v1
kind: Config
clusters:
  - name: in-cluster
    cluster:
      server: ${server}
      certificate-authority-data: ${ca}
users:
  - name: ${sa}
    user:
      token: ${token}
contexts:
  - name: ${sa}
    context: { cluster: in-cluster, user: ${sa}, namespace: ${ns} }
current-context: ${sa}
KUBECONFIG
chmod 600 "$file"

if [ "$create_secret" = 1 ]; then
  # faas-cli 0.18 exits 0 from `secret create` when it cannot reach the gateway: the secret is believed stored
  # only once `faas-cli secret list` shows it. Until then the kubeconfig is kept, and the script fails.
  faas-cli secret create "$secret_name" --from-file "$file" >/dev/null 2>&1 || faas-cli secret update "$secret_name" --from-file "$file" >/dev/null 2>&1 || true
  if listed=$(faas-cli secret list 2>&1) && printf '%s\n' "$listed" | awk 'NR > 1 { print $1 }' | grep -qx "$secret_name"; then
    echo "stored as OpenFaaS secret $secret_name; in stack.yml set KUBECONFIG_FILE=/var/openfaas/secrets/$secret_name and list the secret"
    [ -z "$out" ] && rm -f "$file"
  else
    echo "error: the OpenFaaS secret $secret_name was not stored (faas-cli secret list: $(printf '%s' "$listed" | head -1))." >&2
    echo "the kubeconfig is kept in $file: store it with 'faas-cli secret create $secret_name --from-file $file' once the gateway is reachable (faas-cli login, OPENFAAS_URL), then delete it" >&2
    exit 1
  fi
else
  echo "kubeconfig written to $file"
fi
