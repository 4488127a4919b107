#!/usr/bin/env bash
# Starts a real single-node Kubernetes cluster on this machine, from binaries, no Docker,
# no registry: etcd, kube-apiserver, kube-controller-manager, kube-scheduler, containerd
# (its own instance, own socket), kubelet, kube-proxy (iptables), CNI bridge networking.
# Linux + root. Idempotent: a healthy running cluster is reused at once; missing or dead
# components are (re)started; certificates and images are made only when missing.
#
# Environment:
#   JOBCHAIN_CLUSTER_DIR  state + logs (default /var/lib/jobchain-cluster)
#   JOBCHAIN_CACHE        built tools and images (default ~/.cache/jobchain)
#   JOBCHAIN_SMOKE        1 = always run the smoke test, 0 = never (default: only when
#                         something was started)
# Prints `export KUBECONFIG=...` last. See docs/local-cluster.md.
set -euo pipefail
JC_SCRIPT=cluster-up
# shellcheck source=lib-cluster.sh
source "$(cd "$(dirname "$0")" && pwd)/lib-cluster.sh"

jc_require_root_linux
T0=$SECONDS
declare -a TIMINGS=()
phase_start=$SECONDS
phase() { TIMINGS+=("$(printf '%-34s %4ss' "$1" $((SECONDS - phase_start)))"); phase_start=$SECONDS; }
started_any=0

finish() {
  jc_log "timings:"
  local t; for t in "${TIMINGS[@]}"; do printf '    %s\n' "$t" >&2; done
  printf '    %-34s %4ss\n' "total" $((SECONDS - T0)) >&2
  jc_log "cluster is up: node $JC_NODE, state and logs in $JC_DIR, kubectl at $JC_BIN/kubectl"
  echo "export KUBECONFIG=$JC_KUBECONFIG"
}

# write_config FILE [COMPONENT] < content: replaces FILE only when the content differs
# (kube-proxy exits when its config file is written to), and then stops the running
# COMPONENT so that it is started again below with the new configuration.
write_config() {
  local f=$1 comp=${2:-}
  cat > "$f.new"
  if [ -f "$f" ] && cmp -s "$f" "$f.new"; then rm -f "$f.new"; return 0; fi
  mv "$f.new" "$f"
  if [ -n "$comp" ] && jc_running "$comp"; then
    jc_log "configuration of $comp changed: restarting it"
    jc_stop "$comp"
  fi
}

node_ready() {
  [ "$(jc_kubectl get node "$JC_NODE" -o 'jsonpath={.status.conditions[?(@.type=="Ready")].status}' 2>/dev/null)" = True ]
}

cluster_healthy() {
  local c
  for c in "${JC_COMPONENTS[@]}"; do jc_running "$c" || return 1; done
  [ -x "$JC_BIN/kubectl" ] && [ -f "$JC_KUBECONFIG" ] || return 1
  jc_kubectl get --raw /readyz >/dev/null 2>&1 || return 1
  node_ready
}

# ---------------------------------------------------------------- smoke test
# A busybox Job whose log and termination message are read back through the API, and a
# pod that reaches the API server through the `kubernetes` service with its service-account
# token (as the operator and workflow steps do) and annotates itself.
smoke_test() {
  local ns=jobchain-smoke out msg j
  if jc_kubectl get ns "$ns" >/dev/null 2>&1; then
    jc_kubectl delete ns "$ns" --wait=true --timeout=120s >/dev/null
  fi
  jc_kubectl create ns "$ns" >/dev/null
  # the ServiceAccount admission plugin rejects pods until the default SA exists
  jc_wait 60 "default service account" jc_kubectl -n "$ns" get sa default || jc_die "no default service account in $ns"
  jc_kubectl -n "$ns" apply -f - >/dev/null <<EOF
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata: {name: annotate-pods}
rules:
- apiGroups: [""]
  resources: [pods]
  verbs: [get, patch]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {name: default-annotate-pods}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: Role, name: annotate-pods}
subjects:
- {kind: ServiceAccount, name: default, namespace: $ns}
---
apiVersion: batch/v1
kind: Job
metadata: {name: hello}
spec:
  backoffLimit: 0
  template:
    spec:
      restartPolicy: Never
      containers:
      - name: main
        image: $JC_IMG_BUSYBOX
        imagePullPolicy: IfNotPresent
        command: [sh, -c, 'echo "hello from the jobchain smoke job"; printf smoke-ok > /dev/termination-log']
---
apiVersion: batch/v1
kind: Job
metadata: {name: api}
spec:
  backoffLimit: 0
  template:
    spec:
      restartPolicy: Never
      containers:
      - name: main
        image: $JC_IMG_KUBECTL
        imagePullPolicy: IfNotPresent
        env:
        - name: POD_NAME
          valueFrom: {fieldRef: {fieldPath: metadata.name}}
        command:
        - sh
        - -c
        - 'set -e; echo "API at \$KUBERNETES_SERVICE_HOST:\$KUBERNETES_SERVICE_PORT";
           kubectl get --raw /version; kubectl auth whoami;
           kubectl annotate pod "\$POD_NAME" jobchain.dev/smoke=ok'
EOF
  for j in hello api; do
    if ! jc_kubectl -n "$ns" wait --for=condition=complete "job/$j" --timeout=180s >/dev/null; then
      jc_kubectl -n "$ns" describe job,pod >&2 || true
      jc_kubectl -n "$ns" logs "job/$j" >&2 || true
      jc_die "smoke: job $j did not complete"
    fi
  done
  out=$(jc_kubectl -n "$ns" logs job/hello)
  [ "$out" = "hello from the jobchain smoke job" ] || jc_die "smoke: unexpected log of job/hello: $out"
  msg=$(jc_kubectl -n "$ns" get pod -l job-name=hello -o 'jsonpath={.items[0].status.containerStatuses[0].state.terminated.message}')
  [ "$msg" = smoke-ok ] || jc_die "smoke: unexpected termination message: '$msg'"
  jc_log "smoke: job/hello logged '$out', termination message '$msg'"
  out=$(jc_kubectl -n "$ns" logs job/api)
  grep -q "\"gitVersion\": \"$KUBE_VERSION\"" <<<"$out" || jc_die "smoke: the pod did not reach the API server: $out"
  grep -q "system:serviceaccount:$ns:default" <<<"$out" || jc_die "smoke: the pod's token was not accepted: $out"
  [ "$(jc_kubectl -n "$ns" get pod -l job-name=api -o 'jsonpath={.items[0].metadata.annotations.jobchain\.dev/smoke}')" = ok ] ||
    jc_die "smoke: the pod could not annotate itself"
  jc_log "smoke: a pod reached the API server through the kubernetes service ($JC_API_SERVICE_IP) as system:serviceaccount:$ns:default and annotated itself"
  jc_kubectl delete ns "$ns" --wait=false >/dev/null
}

# ---------------------------------------------------------------- fast path
if cluster_healthy && [ "${JOBCHAIN_SMOKE:-}" != 1 ]; then
  jc_log "cluster already running and healthy; nothing to do"
  phase "health check"
  finish
  exit 0
fi

# ---------------------------------------------------------------- 1. host packages + tools
need_pkgs=()
for p in containerd runc containernetworking-plugins busybox-static iproute2 iptables conntrack \
         openssl gcc libc6-dev curl file util-linux; do
  [[ $(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true) == *"install ok installed"* ]] || need_pkgs+=("$p")
done
if [ ${#need_pkgs[@]} -gt 0 ]; then
  command -v apt-get >/dev/null || jc_die "missing packages (${need_pkgs[*]}) and no apt-get: install them by hand"
  jc_log "installing: ${need_pkgs[*]}"
  apt-get update -q >/dev/null
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${need_pkgs[@]}" >/dev/null
fi
# Debian starts its own containerd service where systemd runs; ours does not use it.
phase "packages"
bash "$JC_HACK/build-tools.sh"
phase "tools (build-tools.sh)"

# ---------------------------------------------------------------- 2. host checks
[ -d /sys/fs/cgroup/memory ] && [ -d /sys/fs/cgroup/cpu ] ||
  jc_log "warning: no cgroup v1 memory/cpu hierarchy; this setup is written for cgroup v1 (cgroupfs driver)"
if [ ! -e /proc/sys/net/bridge/bridge-nf-call-iptables ]; then
  modprobe br_netfilter 2>/dev/null || jc_die "br_netfilter is not available (modprobe br_netfilter)"
fi
mkdir -p "$JC_DIR" "$JC_LOGS" "$JC_PIDS" "$JC_PKI" "$JC_DIR/kubeconfigs" "$JC_DIR/config"
chmod 700 "$JC_DIR"
# A start from nothing: the logs of the previous cluster move to logs/previous/.
any_running=0
for c in "${JC_COMPONENTS[@]}"; do jc_running "$c" && any_running=1; done
if [ $any_running = 0 ] && compgen -G "$JC_LOGS/*.log" >/dev/null; then
  rm -rf "$JC_LOGS/previous"
  mkdir -p "$JC_LOGS/previous"
  mv "$JC_LOGS"/*.log "$JC_LOGS/previous/"
fi
# remember the host's settings we change, so cluster-down can put them back
[ -f "$JC_DIR/host-sysctl.orig" ] || {
  echo "net.ipv4.ip_forward=$(cat /proc/sys/net/ipv4/ip_forward)"
  echo "net.bridge.bridge-nf-call-iptables=$(cat /proc/sys/net/bridge/bridge-nf-call-iptables)"
} > "$JC_DIR/host-sysctl.orig"
sysctl -q -w net.ipv4.ip_forward=1 net.bridge.bridge-nf-call-iptables=1

# Ports our components listen on must be free (or ours).
if ! jc_running kube-apiserver; then
  for port in 2379 2380 6443 10248 10250 10256 10257 10259; do
    if [ -n "$(ss -Hltn "sport = :$port")" ]; then
      owner=$(ss -Hltnp "sport = :$port" | grep -o 'pid=[0-9]*' | head -1)
      ours=0
      for c in "${JC_COMPONENTS[@]}"; do p=$(jc_pid_of "$c" || true); [ -n "$p" ] && [ "pid=$p" = "$owner" ] && ours=1; done
      [ $ours = 1 ] || jc_die "port $port is already in use ($owner): another Kubernetes or etcd on this machine? stop it first"
    fi
  done
fi

# ---------------------------------------------------------------- 3. PKI and kubeconfigs
pki=$JC_PKI
gen_key() { openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1" 2>/dev/null; chmod 600 "$1"; }
# gen_cert NAME SUBJECT EXT_KEY_USAGE [SANS]
gen_cert() {
  local name=$1 subj=$2 eku=$3 sans=${4:-}
  [ -f "$pki/$name.crt" ] && return 0
  gen_key "$pki/$name.key"
  {
    echo "basicConstraints=critical,CA:FALSE"
    echo "keyUsage=critical,digitalSignature,keyEncipherment"
    echo "extendedKeyUsage=$eku"
    [ -n "$sans" ] && echo "subjectAltName=$sans"
  } > "$pki/$name.ext"
  openssl req -new -key "$pki/$name.key" -subj "$subj" 2>/dev/null |
    openssl x509 -req -CA "$pki/ca.crt" -CAkey "$pki/ca.key" -set_serial "0x$(openssl rand -hex 16)" \
      -days 3650 -extfile "$pki/$name.ext" -out "$pki/$name.crt" 2>/dev/null
  rm -f "$pki/$name.ext"
}
if [ ! -f "$pki/ca.crt" ]; then
  gen_key "$pki/ca.key"
  openssl req -x509 -new -key "$pki/ca.key" -subj "/CN=jobchain-local-ca" -days 3650 \
    -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign,digitalSignature" \
    -out "$pki/ca.crt" 2>/dev/null
fi
# the aggregation layer's CA (front proxy), kept apart from the cluster CA
if [ ! -f "$pki/front-proxy-ca.crt" ]; then
  gen_key "$pki/front-proxy-ca.key"
  openssl req -x509 -new -key "$pki/front-proxy-ca.key" -subj "/CN=jobchain-front-proxy-ca" -days 3650 \
    -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign,digitalSignature" \
    -out "$pki/front-proxy-ca.crt" 2>/dev/null
fi
if [ ! -f "$pki/front-proxy-client.crt" ]; then
  gen_key "$pki/front-proxy-client.key"
  printf 'basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=clientAuth\n' > "$pki/fp.ext"
  openssl req -new -key "$pki/front-proxy-client.key" -subj "/CN=front-proxy-client" 2>/dev/null |
    openssl x509 -req -CA "$pki/front-proxy-ca.crt" -CAkey "$pki/front-proxy-ca.key" -set_serial "0x$(openssl rand -hex 16)" \
      -days 3650 -extfile "$pki/fp.ext" -out "$pki/front-proxy-client.crt" 2>/dev/null
  rm -f "$pki/fp.ext"
fi
gen_cert apiserver "/CN=kube-apiserver" serverAuth \
  "DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local,DNS:localhost,DNS:$JC_NODE,IP:127.0.0.1,IP:$JC_API_SERVICE_IP,IP:$JC_NODE_IP"
gen_cert apiserver-kubelet-client "/O=system:masters/CN=kube-apiserver-kubelet-client" clientAuth
gen_cert admin "/O=system:masters/CN=jobchain-admin" clientAuth
gen_cert controller-manager "/CN=system:kube-controller-manager" clientAuth
gen_cert scheduler "/CN=system:kube-scheduler" clientAuth
gen_cert kube-proxy "/CN=system:kube-proxy" clientAuth
gen_cert kubelet-client "/O=system:nodes/CN=system:node:$JC_NODE" clientAuth
gen_cert kubelet-server "/CN=$JC_NODE" serverAuth "DNS:$JC_NODE,DNS:localhost,IP:$JC_NODE_IP,IP:127.0.0.1"
if [ ! -f "$pki/sa.key" ]; then
  openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out "$pki/sa.key" 2>/dev/null
  chmod 600 "$pki/sa.key"
  openssl pkey -in "$pki/sa.key" -pubout -out "$pki/sa.pub" 2>/dev/null
fi

# mk_kubeconfig FILE CERT_NAME USER
mk_kubeconfig() {
  local f=$1 cert=$2 user=$3 k="$JC_BIN/kubectl"
  [ -f "$f" ] && return 0
  "$k" config --kubeconfig="$f.tmp" set-cluster jobchain --server="https://127.0.0.1:$JC_API_PORT" \
    --certificate-authority="$pki/ca.crt" --embed-certs=true >/dev/null
  "$k" config --kubeconfig="$f.tmp" set-credentials "$user" --client-certificate="$pki/$cert.crt" \
    --client-key="$pki/$cert.key" --embed-certs=true >/dev/null
  "$k" config --kubeconfig="$f.tmp" set-context jobchain --cluster=jobchain --user="$user" >/dev/null
  "$k" config --kubeconfig="$f.tmp" use-context jobchain >/dev/null
  chmod 600 "$f.tmp"
  mv "$f.tmp" "$f"
}
mk_kubeconfig "$JC_KUBECONFIG" admin jobchain-admin
mk_kubeconfig "$JC_DIR/kubeconfigs/controller-manager" controller-manager system:kube-controller-manager
mk_kubeconfig "$JC_DIR/kubeconfigs/scheduler" scheduler system:kube-scheduler
mk_kubeconfig "$JC_DIR/kubeconfigs/kube-proxy" kube-proxy system:kube-proxy
mk_kubeconfig "$JC_DIR/kubeconfigs/kubelet" kubelet-client "system:node:$JC_NODE"
phase "certificates, kubeconfigs"

# ---------------------------------------------------------------- 4. control plane
if ! jc_running etcd; then
  started_any=1
  jc_start etcd --name jobchain --data-dir "$JC_DIR/etcd" \
    --listen-client-urls "$JC_ETCD_CLIENT" --advertise-client-urls "$JC_ETCD_CLIENT" \
    --listen-peer-urls "$JC_ETCD_PEER" --initial-advertise-peer-urls "$JC_ETCD_PEER" \
    --initial-cluster "jobchain=$JC_ETCD_PEER" --initial-cluster-state new \
    --unsafe-no-fsync --snapshot-count 10000 --log-level warn
fi
jc_wait 60 "etcd health" curl -fsS "$JC_ETCD_CLIENT/health" || jc_die "etcd did not become healthy; see $JC_LOGS/etcd.log"

if ! jc_running kube-apiserver; then
  started_any=1
  jc_start kube-apiserver \
    --advertise-address="$JC_NODE_IP" --secure-port="$JC_API_PORT" \
    --etcd-servers="$JC_ETCD_CLIENT" \
    --service-cluster-ip-range="$JC_SERVICE_CIDR" \
    --client-ca-file="$pki/ca.crt" \
    --tls-cert-file="$pki/apiserver.crt" --tls-private-key-file="$pki/apiserver.key" \
    --kubelet-client-certificate="$pki/apiserver-kubelet-client.crt" \
    --kubelet-client-key="$pki/apiserver-kubelet-client.key" \
    --kubelet-certificate-authority="$pki/ca.crt" \
    --kubelet-preferred-address-types=InternalIP,Hostname \
    --service-account-issuer=https://kubernetes.default.svc.cluster.local \
    --service-account-key-file="$pki/sa.pub" \
    --service-account-signing-key-file="$pki/sa.key" \
    --requestheader-client-ca-file="$pki/front-proxy-ca.crt" \
    --requestheader-allowed-names=front-proxy-client \
    --requestheader-username-headers=X-Remote-User \
    --requestheader-group-headers=X-Remote-Group \
    --requestheader-extra-headers-prefix=X-Remote-Extra- \
    --proxy-client-cert-file="$pki/front-proxy-client.crt" \
    --proxy-client-key-file="$pki/front-proxy-client.key" \
    --authorization-mode=Node,RBAC \
    --enable-admission-plugins=NodeRestriction \
    --allow-privileged=true \
    --profiling=false
fi
jc_wait 120 "kube-apiserver /readyz" jc_kubectl get --raw /readyz ||
  jc_die "kube-apiserver did not become ready; see $JC_LOGS/kube-apiserver.log"

if ! jc_running kube-controller-manager; then
  started_any=1
  jc_start kube-controller-manager \
    --kubeconfig="$JC_DIR/kubeconfigs/controller-manager" \
    --authentication-kubeconfig="$JC_DIR/kubeconfigs/controller-manager" \
    --authorization-kubeconfig="$JC_DIR/kubeconfigs/controller-manager" \
    --bind-address=127.0.0.1 --leader-elect=false \
    --controllers='*' --use-service-account-credentials=true \
    --service-account-private-key-file="$pki/sa.key" --root-ca-file="$pki/ca.crt" \
    --cluster-signing-cert-file="$pki/ca.crt" --cluster-signing-key-file="$pki/ca.key" \
    --service-cluster-ip-range="$JC_SERVICE_CIDR" \
    --profiling=false
fi
if ! jc_running kube-scheduler; then
  started_any=1
  jc_start kube-scheduler \
    --kubeconfig="$JC_DIR/kubeconfigs/scheduler" \
    --authentication-kubeconfig="$JC_DIR/kubeconfigs/scheduler" \
    --authorization-kubeconfig="$JC_DIR/kubeconfigs/scheduler" \
    --bind-address=127.0.0.1 --leader-elect=false --profiling=false
fi
phase "control plane"

# ---------------------------------------------------------------- 5. node: network, containerd
if ! ip link show "$JC_BRIDGE" >/dev/null 2>&1; then
  ip link add "$JC_BRIDGE" type bridge
fi
# Read the whole listing before matching: with pipefail, `ip ... | grep -q` fails when grep exits
# first and ip dies of SIGPIPE, and then the add below errs "Address already assigned".
bridge_addrs=$(ip -4 addr show dev "$JC_BRIDGE")
[[ $bridge_addrs == *"inet $JC_NODE_IP/"* ]] || ip addr add "$JC_NODE_IP/24" dev "$JC_BRIDGE"
ip link set "$JC_BRIDGE" up

mkdir -p "$JC_DIR/cni/net.d" "$JC_DIR/cni/ipam"
write_config "$JC_DIR/cni/net.d/10-jobchain.conflist" <<EOF
{
  "cniVersion": "1.0.0",
  "name": "$JC_CNI_NET",
  "plugins": [
    {
      "type": "bridge",
      "bridge": "$JC_BRIDGE",
      "isGateway": true,
      "ipMasq": true,
      "hairpinMode": true,
      "ipam": {
        "type": "host-local",
        "ranges": [[{"subnet": "$JC_POD_CIDR", "gateway": "$JC_NODE_IP"}]],
        "routes": [{"dst": "0.0.0.0/0"}],
        "dataDir": "$JC_DIR/cni/ipam"
      }
    },
    {"type": "portmap", "capabilities": {"portMappings": true}}
  ]
}
EOF

# Directories containerd, the CNI plugins and the kubelet create outside the state dir when
# missing: note the missing ones, cluster-down removes them again if empty.
# (The kubelet's device-plugin socket directory is fixed: /var/lib/kubelet/device-plugins.)
for d in /run/containerd /run/containerd/s /var/lib/cni /var/lib/cni/results /var/log/containers /var/log/pods \
         /var/lib/kubelet /var/lib/kubelet/device-plugins; do
  [ -d "$d" ] || echo "$d" >> "$JC_DIR/created-dirs"
done
mkdir -p "$JC_CTRD_DIR"
write_config "$JC_DIR/config/containerd.toml" containerd <<EOF
# containerd of the jobchain local cluster: own root, state and socket; never the system's.
version = 2
root = "$JC_CTRD_DIR/root"
state = "$JC_CTRD_DIR/state"
oom_score = 0

[grpc]
  address = "$JC_CTRD_SOCK"

[debug]
  address = ""

[metrics]
  address = ""

[plugins."io.containerd.internal.v1.opt"]
  path = "$JC_CTRD_DIR/opt"

[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "$JC_IMG_PAUSE"
  # the VM lacks CAP_SYS_RESOURCE: negative oom_score_adj values are refused
  restrict_oom_score_adj = true
  # pod network namespaces are bind-mounted under our state dir, not /run/netns
  netns_mounts_under_state_dir = true
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
        Root = "$JC_CTRD_DIR/runc"
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "$JC_CNI_BIN"
    conf_dir = "$JC_DIR/cni/net.d"
    max_conf_num = 1
EOF

if ! jc_running containerd; then
  started_any=1
  jc_start containerd --config "$JC_DIR/config/containerd.toml"
fi
jc_wait 60 "containerd" ctr --address "$JC_CTRD_SOCK" version || jc_die "containerd did not start; see $JC_LOGS/containerd.log"
phase "bridge, CNI, containerd"

# ---------------------------------------------------------------- 6. images
mapfile -t archives < <(bash "$JC_HACK/images/build-images.sh")
for a in "${archives[@]}"; do bash "$JC_HACK/import-image.sh" "$a"; done
phase "images"

# ---------------------------------------------------------------- 7. kubelet, kube-proxy
# The kubelet's cgroup root must exist in every v1 hierarchy.
for h in /sys/fs/cgroup/*/; do
  case $h in */unified/) continue ;; esac
  [ -d "$h" ] || continue
  mkdir -p "$h$JC_CGROUP_ROOT"
  if [ -f "${h}cpuset.cpus" ] && [ -z "$(cat "$h$JC_CGROUP_ROOT/cpuset.cpus")" ]; then
    cat "${h}cpuset.cpus" > "$h$JC_CGROUP_ROOT/cpuset.cpus"
    cat "${h}cpuset.mems" > "$h$JC_CGROUP_ROOT/cpuset.mems"
  fi
done
mkdir -p "$JC_DIR/kubelet" "$JC_DIR/pod-logs"
write_config "$JC_DIR/config/kubelet.yaml" kubelet <<EOF
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
authentication:
  anonymous: {enabled: false}
  webhook: {enabled: true}
  x509: {clientCAFile: "$pki/ca.crt"}
authorization: {mode: Webhook}
tlsCertFile: "$pki/kubelet-server.crt"
tlsPrivateKeyFile: "$pki/kubelet-server.key"
containerRuntimeEndpoint: "unix://$JC_CTRD_SOCK"
cgroupDriver: cgroupfs
cgroupRoot: "/$JC_CGROUP_ROOT"
# cgroup v1 host: allowed explicitly
failCgroupV1: false
failSwapOn: false
# CAP_SYS_RESOURCE is missing: the kubelet must not lower its own OOM score
oomScoreAdj: 0
podLogsDir: "$JC_DIR/pod-logs"
volumePluginDir: "$JC_DIR/kubelet/volume-plugins"
healthzBindAddress: 127.0.0.1
readOnlyPort: 0
registerNode: true
# images are imported by hand and can never be pulled again: no image GC
imageGCHighThresholdPercent: 100
evictionHard:
  memory.available: "100Mi"
  nodefs.available: "1%"
  nodefs.inodesFree: "1%"
  imagefs.available: "1%"
clusterDomain: cluster.local
# no cluster DNS, and no host resolver for pods either: pods must not send DNS queries
# off the machine. In-cluster clients use KUBERNETES_SERVICE_HOST (an IP).
resolvConf: ""
maxPods: 110
EOF
if ! jc_running kubelet; then
  started_any=1
  jc_start kubelet --config="$JC_DIR/config/kubelet.yaml" \
    --kubeconfig="$JC_DIR/kubeconfigs/kubelet" \
    --root-dir="$JC_DIR/kubelet" \
    --hostname-override="$JC_NODE" --node-ip="$JC_NODE_IP"
fi

write_config "$JC_DIR/config/kube-proxy.yaml" kube-proxy <<EOF
apiVersion: kubeproxy.config.k8s.io/v1alpha1
kind: KubeProxyConfiguration
clientConnection:
  kubeconfig: "$JC_DIR/kubeconfigs/kube-proxy"
mode: iptables
hostnameOverride: "$JC_NODE"
clusterCIDR: "$JC_CLUSTER_CIDR"
healthzBindAddress: "127.0.0.1:10256"
metricsBindAddress: "127.0.0.1:10249"
conntrack:
  # 0 = leave the host's conntrack settings alone
  maxPerCore: 0
  min: 0
  tcpEstablishedTimeout: 0s
  tcpCloseWaitTimeout: 0s
iptables:
  localhostNodePorts: false
nodePortAddresses: [primary]
EOF
if ! jc_running kube-proxy; then
  started_any=1
  jc_start kube-proxy --config="$JC_DIR/config/kube-proxy.yaml"
fi

node_ready_or_kubelet_gone() { jc_running kubelet || return 0; node_ready; }
jc_wait 180 "node $JC_NODE Ready" node_ready_or_kubelet_gone && node_ready || {
  jc_kubectl describe node "$JC_NODE" 2>&1 | tail -30 >&2 || true
  jc_die "node did not become Ready; see $JC_LOGS/kubelet.log and $JC_LOGS/containerd.log"
}
for c in "${JC_COMPONENTS[@]}"; do jc_running "$c" || jc_die "$c exited; see $JC_LOGS/$c.log"; done
phase "kubelet, kube-proxy, node Ready"

# ---------------------------------------------------------------- 8. smoke test
if [ "${JOBCHAIN_SMOKE:-}" = 1 ] || { [ "${JOBCHAIN_SMOKE:-}" != 0 ] && [ $started_any = 1 ]; }; then
  smoke_test
  phase "smoke test"
fi
finish
