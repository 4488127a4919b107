# shellcheck shell=bash
# Shared settings and functions of the local single-node cluster (hack/cluster-up.sh,
# hack/cluster-down.sh, hack/import-image.sh, hack/cluster-env.sh). Sourced, not run.
#
# Everything the cluster writes lives under ONE directory, $JC_DIR:
#   pki/         CA, certificates, service-account keys       kubeconfig  admin kubeconfig
#   kubeconfigs/ per-component kubeconfigs                     config/     component configs
#   etcd/        etcd data                                     containerd/ root, state, socket
#   kubelet/     kubelet --root-dir                            pod-logs/   container logs
#   cni/         CNI config (net.d) and IPAM state             logs/*.log  pids/*.pid
# Outside it, unavoidably: cgroups under /sys/fs/cgroup/*/jobchain, the bridge jcbr0 with
# its veths, iptables chains KUBE-* (kube-proxy, kubelet) and CNI-* (bridge masquerade),
# /var/log/containers symlinks (kubelet), /run/containerd/s/* shim sockets (containerd 1.6).
# hack/cluster-down.sh removes all of them.

JC_HACK=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
JC_ROOT=$(cd "$JC_HACK/.." && pwd)
# shellcheck source=versions.env
source "$JC_HACK/versions.env"

JC_DIR=${JOBCHAIN_CLUSTER_DIR:-/var/lib/jobchain-cluster}
JC_CACHE=${JOBCHAIN_CACHE:-$HOME/.cache/jobchain}
JC_BIN=$JC_CACHE/k8s-$KUBE_VERSION/bin
JC_IMAGES=$JC_CACHE/images
JC_LOGS=$JC_DIR/logs
JC_PIDS=$JC_DIR/pids
JC_PKI=$JC_DIR/pki
JC_KUBECONFIG=$JC_DIR/kubeconfig
JC_CTRD_DIR=$JC_DIR/containerd
JC_CTRD_SOCK=$JC_CTRD_DIR/containerd.sock
JC_CNI_BIN=/usr/lib/cni

JC_NODE=${JOBCHAIN_NODE_NAME:-jobchain-node}
# The node's address is the gateway address of the pod bridge that this script creates:
# it does not depend on the machine's own network, and the API server advertises it as
# the endpoint of the `kubernetes` service, so pods reach the API server through it.
JC_BRIDGE=jcbr0
JC_POD_CIDR=10.244.0.0/24
JC_CLUSTER_CIDR=10.244.0.0/16
JC_NODE_IP=10.244.0.1
JC_SERVICE_CIDR=10.96.0.0/16
JC_API_SERVICE_IP=10.96.0.1
JC_API_PORT=6443
JC_ETCD_CLIENT=http://127.0.0.1:2379
JC_ETCD_PEER=http://127.0.0.1:2380
JC_CGROUP_ROOT=jobchain
# The control plane's own CPU cgroup (see jc_control_plane_cgroup); JOBCHAIN_CONTROL_PLANE_PRIORITY=0: none.
JC_CP_CGROUP=jobchain-control-plane
JC_CP_COMPONENTS=" etcd kube-apiserver "
JC_CNI_NET=jobchain

# Images the cluster provides (built from local files, imported into containerd).
JC_IMG_BUSYBOX=docker.io/library/busybox:1.36
JC_IMG_BUSYBOX_LATEST=docker.io/library/busybox:latest
JC_IMG_PAUSE=registry.k8s.io/pause:3.10
JC_IMG_KUBECTL=localhost/jobchain-kubectl:dev

# Processes, in start order; cluster-down stops them in reverse.
JC_COMPONENTS=(etcd kube-apiserver kube-controller-manager kube-scheduler containerd kubelet kube-proxy)

jc_log() { printf '[%s %(%H:%M:%S)T] %s\n' "${JC_SCRIPT:-cluster}" -1 "$*" >&2; }
jc_die() { jc_log "ERROR: $*"; exit 1; }

jc_require_root_linux() {
  [ "$(uname -s)" = Linux ] || jc_die "the local cluster needs Linux (use hack/kind-up.sh with Docker elsewhere)"
  [ "$(id -u)" = 0 ] || jc_die "the local cluster needs root (it runs containerd, the kubelet and iptables)"
}

jc_kubectl() { "$JC_BIN/kubectl" --kubeconfig "$JC_KUBECONFIG" "$@"; }
jc_ctr() { ctr --address "$JC_CTRD_SOCK" --namespace k8s.io "$@"; }

# Binary (absolute path) a component runs as; used to check that a recorded PID is still it.
jc_component_binary() {
  case $1 in
    containerd) command -v containerd ;;
    *) echo "$JC_BIN/$1" ;;
  esac
}

# PID of a running component, from its pid file, only if that process is still the
# component (guards against PID reuse). Prints nothing and fails otherwise.
jc_pid_of() {
  local name=$1 pidf=$JC_PIDS/$1.pid pid bin
  [ -f "$pidf" ] || return 1
  pid=$(cat "$pidf" 2>/dev/null) || return 1
  [[ $pid =~ ^[0-9]+$ ]] || return 1
  [ -r "/proc/$pid/cmdline" ] || return 1
  bin=$(jc_component_binary "$name")
  # argv[0] must be the component's binary; zombies have an empty cmdline.
  [ "$(tr '\0' '\n' < "/proc/$pid/cmdline" | head -n1)" = "$bin" ] || return 1
  echo "$pid"
}

jc_running() { jc_pid_of "$1" >/dev/null; }

# jc_start NAME ARGS...: start the component's binary detached (own session, stdin from
# /dev/null, output appended to logs/NAME.log), record its PID in pids/NAME.pid.
jc_start() {
  local name=$1; shift
  local bin; bin=$(jc_component_binary "$name")
  mkdir -p "$JC_LOGS" "$JC_PIDS"
  printf '\n===== %s starting %s at %(%F %T)T =====\n' "${JC_SCRIPT:-cluster}" "$name" -1 >> "$JC_LOGS/$name.log"
  setsid nohup "$bin" "$@" >> "$JC_LOGS/$name.log" 2>&1 < /dev/null &
  local pid=$! procs where="" tries=0
  echo "$pid" > "$JC_PIDS/$name.pid"
  # Until setsid and nohup have exec'd the binary, argv[0] is theirs and jc_running says "not
  # running": a wait right after (node Ready "or kubelet gone") would give up at once. Wait for
  # the exec (or the process's end), at most 5 s.
  while [ "$tries" -lt 50 ] && [ -d "/proc/$pid" ] \
    && [ "$(tr '\0' '\n' < "/proc/$pid/cmdline" 2>/dev/null | head -n1)" != "$bin" ]; do
    sleep 0.1
    tries=$((tries + 1))
  done
  # cgroup.procs moves every thread of the process; threads it starts later are born in the cgroup.
  if [[ $JC_CP_COMPONENTS == *" $name "* ]] && procs=$(jc_control_plane_cgroup) && echo "$pid" > "$procs"; then
    where=", cgroup ${procs%/cgroup.procs}"
  fi
  jc_log "started $name (pid $pid$where, log $JC_LOGS/$name.log)"
}

# jc_control_plane_cgroup: creates (once) the CPU cgroup the control plane runs in and prints the
# path of its cgroup.procs; fails (prints nothing) where there is none to make.
#
# Why: on a real cluster, etcd and the API server have machines of their own; on this one they share
# two cores with the node's kubelet, containerd and the runc of every pod start. With 100 pods
# starting, that left the API server's requests waiting for CPU (the server's own p99 for a Job
# POST 360 ms, p50 15 ms: docs/performance.md). A cgroup with a high CPU weight, beside the host's
# processes, gives them the CPU when they ask, as their own machines would; the node gets the rest.
# Only etcd and the API server (JC_CP_COMPONENTS): every client's request waits on them, while the
# controller-manager and scheduler competing at that weight took CPU from the clients themselves
# (one run with all four: the operator's share p99 400 ms). The kubelet's pods are in their own
# cgroup (JC_CGROUP_ROOT) already, at the default weight.
jc_control_plane_cgroup() {
  [ "${JOBCHAIN_CONTROL_PLANE_PRIORITY:-1}" != 0 ] || return 1
  local d
  if [ -f /sys/fs/cgroup/cpu/cpu.shares ]; then  # v1: cpu.shares, 1024 for each process at the root
    d=/sys/fs/cgroup/cpu/$JC_CP_CGROUP
    [ -d "$d" ] || mkdir "$d" || return 1
    [ "$(cat "$d/cpu.shares")" = 16384 ] || echo 16384 > "$d/cpu.shares" || return 1
  elif [ -f /sys/fs/cgroup/cgroup.controllers ] &&
       [[ " $(cat /sys/fs/cgroup/cgroup.subtree_control) " == *" cpu "* ]]; then  # v2: cpu.weight, 100 default
    d=/sys/fs/cgroup/$JC_CP_CGROUP
    [ -d "$d" ] || mkdir "$d" || return 1
    [ "$(cat "$d/cpu.weight")" = 10000 ] || echo 10000 > "$d/cpu.weight" || return 1
  else
    return 1
  fi
  echo "$d/cgroup.procs"
}

# jc_kill_pid PID [GRACE_SECONDS]: SIGTERM, wait, then SIGKILL.
jc_kill_pid() {
  local pid=$1 grace=${2:-10} i
  kill -TERM "$pid" 2>/dev/null || return 0
  for ((i = 0; i < grace * 10; i++)); do
    kill -0 "$pid" 2>/dev/null || return 0
    # a zombie child of ours counts as gone
    [ "$(awk '/^State:/ {print $2}' "/proc/$pid/status" 2>/dev/null)" = Z ] && return 0
    sleep 0.1
  done
  kill -KILL "$pid" 2>/dev/null || true
  for ((i = 0; i < 50; i++)); do kill -0 "$pid" 2>/dev/null || return 0; sleep 0.1; done
}

jc_stop() {
  local name=$1 grace=${2:-10} pid
  if pid=$(jc_pid_of "$name"); then
    jc_log "stopping $name (pid $pid)"
    jc_kill_pid "$pid" "$grace"
  fi
  rm -f "$JC_PIDS/$name.pid"
}

# jc_stop_all GRACE NAME...: SIGTERM to all of them at once, SIGKILL what is left after GRACE s.
jc_stop_all() {
  local grace=$1 name pid i pids=(); shift
  for name in "$@"; do
    if pid=$(jc_pid_of "$name"); then
      jc_log "stopping $name (pid $pid)"
      kill -TERM "$pid" 2>/dev/null || true
      pids+=("$pid")
    fi
  done
  for ((i = 0; i < grace * 10; i++)); do
    local alive=0
    for pid in "${pids[@]}"; do kill -0 "$pid" 2>/dev/null && alive=1; done
    [ $alive = 0 ] && break
    sleep 0.1
  done
  for pid in "${pids[@]}"; do kill -KILL "$pid" 2>/dev/null || true; done
  for name in "$@"; do rm -f "$JC_PIDS/$name.pid"; done
}

# jc_wait SECONDS DESCRIPTION COMMAND...: poll COMMAND every 0.5 s until it succeeds.
jc_wait() {
  local timeout=$1 what=$2; shift 2
  local deadline=$((SECONDS + timeout))
  until "$@" >/dev/null 2>&1; do
    if ((SECONDS >= deadline)); then
      jc_log "timed out after ${timeout}s waiting for $what"
      return 1
    fi
    sleep 0.5
  done
}

# The shims of OUR containerd: containerd-shim processes started with `-address <our
# socket>`, found through /proc (executable + arguments), never by name alone.
jc_our_shim_pids() {
  local f pid exe args
  for f in /proc/[0-9]*/cmdline; do
    pid=${f#/proc/}; pid=${pid%/cmdline}
    exe=$(readlink "/proc/$pid/exe" 2>/dev/null) || continue
    [[ $(basename "$exe") == containerd-shim* ]] || continue
    args=$(tr "\0" "\n" 2>/dev/null < "$f") || continue  # whole, then match: no SIGPIPE under pipefail
    if grep -qxF -- "$JC_CTRD_SOCK" <<<"$args"; then echo "$pid"; fi
  done
}

# Processes in the kubelet's cgroup tree (our pods' containers), from every v1 hierarchy.
jc_our_cgroup_pids() {
  local d
  for d in /sys/fs/cgroup/*/"$JC_CGROUP_ROOT"; do
    [ -d "$d" ] || continue
    find "$d" -name cgroup.procs -exec cat {} + 2>/dev/null
  done | sort -un
}

# Mount points at or under $JC_DIR, deepest first (from /proc/self/mountinfo).
jc_our_mounts() {
  awk -v d="$JC_DIR" '{ m = $5; gsub(/\\040/, " ", m); if (m == d || index(m, d "/") == 1) print m }' /proc/self/mountinfo |
    awk '{ print length($0) "\t" $0 }' | sort -rn | cut -f2- | uniq
}
