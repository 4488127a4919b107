#!/usr/bin/env bash
# Stops the local cluster started by hack/cluster-up.sh and removes everything it made:
# its processes (by recorded PID, SIGTERM then SIGKILL), its containers and containerd
# shims, every mount under the state dir (pod volumes, network namespaces, overlay
# rootfs, the kubelet's own bind mount), the cgroups /sys/fs/cgroup/*/jobchain and the control
# plane's jobchain-control-plane, the bridge
# jcbr0 and its veths, the iptables chains KUBE-* and the CNI masquerade rules/chains of
# our network, and the state dir itself (logs/ is kept for post-mortems).
# Idempotent: running it on a stopped cluster just verifies that nothing is left.
# Set JOBCHAIN_KEEP_STATE=1 to keep certificates, etcd data and images (faster next start).
set -euo pipefail
JC_SCRIPT=cluster-down
# shellcheck source=lib-cluster.sh
source "$(cd "$(dirname "$0")" && pwd)/lib-cluster.sh"
jc_require_root_linux

problems=0
warn() { jc_log "LEFT BEHIND: $*"; problems=1; }

# pids of this script and its ancestors: never touched by the safety nets below
self_pids=" $$ "
p=$$
while [ "$p" -gt 1 ] 2>/dev/null; do
  p=$(awk '/^PPid:/ {print $2}' "/proc/$p/status" 2>/dev/null || echo 1)
  self_pids+="$p "
done

# A safety net for pid files that were lost: processes that run one of the cluster's own
# programs (our built binaries, containerd, its runc shim, runc) AND name the state dir in
# their arguments. Anything else (a `tail -f` of a log, a client using the kubeconfig) is
# never touched.
state_dir_pids() {
  local f pid exe args
  local progs=" $JC_BIN/etcd $JC_BIN/kube-apiserver $JC_BIN/kube-controller-manager $JC_BIN/kube-scheduler"
  progs+=" $JC_BIN/kubelet $JC_BIN/kube-proxy $(command -v containerd) $(command -v containerd-shim-runc-v2)"
  progs+=" $(command -v runc) "
  for f in /proc/[0-9]*/cmdline; do
    pid=${f#/proc/}; pid=${pid%/cmdline}
    [[ $self_pids == *" $pid "* ]] && continue
    exe=$(readlink "/proc/$pid/exe" 2>/dev/null) || continue
    [[ $progs == *" $exe "* ]] || continue
    args=$(tr "\0" "\n" 2>/dev/null < "$f") || continue  # whole, then match: no SIGPIPE under pipefail
    if grep -q -e "^$JC_DIR/" -e "=$JC_DIR/" -e "^$JC_DIR\$" <<<"$args"; then echo "$pid"; fi
  done
}

kill_all() { # SIGNAL PIDS...
  local sig=$1 pid; shift
  for pid in "$@"; do [[ $self_pids == *" $pid "* ]] || kill "-$sig" "$pid" 2>/dev/null || true; done
}

# ---------------------------------------------------------------- 1. node agents
jc_stop_all 10 kube-proxy kubelet

# ---------------------------------------------------------------- 2. containers
if jc_running containerd && ctr --address "$JC_CTRD_SOCK" version >/dev/null 2>&1; then
  mapfile -t tasks < <(jc_ctr tasks ls -q 2>/dev/null || true)
  if [ ${#tasks[@]} -gt 0 ]; then
    jc_log "killing ${#tasks[@]} container(s)"
    for t in "${tasks[@]}"; do jc_ctr tasks kill -s SIGKILL "$t" >/dev/null 2>&1 || true; done
    sleep 1
    for t in "${tasks[@]}"; do timeout 20 ctr --address "$JC_CTRD_SOCK" -n k8s.io tasks delete -f "$t" >/dev/null 2>&1 || true; done
  fi
fi
# whatever is still running in the kubelet's cgroups is a container of ours
mapfile -t left < <(jc_our_cgroup_pids)
[ ${#left[@]} -gt 0 ] && { jc_log "killing ${#left[@]} leftover container process(es)"; kill_all KILL "${left[@]}"; }

# ---------------------------------------------------------------- 3. containerd and its shims
# the shims' sockets: containerd 1.6 puts them in /run/containerd/s, not in our state dir
mapfile -t shim_socks < <(cat "$JC_CTRD_DIR"/state/io.containerd.runtime.v2.task/*/*/address 2>/dev/null |
                          grep -o 'unix:///run/containerd/s/[0-9a-f]*' | sed 's|^unix://||' | sort -u || true)
jc_stop containerd 20
mapfile -t shims < <(jc_our_shim_pids)
if [ ${#shims[@]} -gt 0 ]; then
  jc_log "stopping ${#shims[@]} containerd shim(s) of our containerd"
  kill_all TERM "${shims[@]}"; sleep 1
  mapfile -t shims < <(jc_our_shim_pids)
  [ ${#shims[@]} -gt 0 ] && kill_all KILL "${shims[@]}"
fi
for s in "${shim_socks[@]}"; do rm -f "$s"; done

# ---------------------------------------------------------------- 4. control plane
jc_stop_all 10 kube-scheduler kube-controller-manager kube-apiserver
jc_stop etcd 10

# ---------------------------------------------------------------- 5. safety net: anything else of ours
for i in 1 2 3; do
  mapfile -t rest < <(state_dir_pids; jc_our_cgroup_pids)
  [ ${#rest[@]} -eq 0 ] && break
  jc_log "stopping leftover process(es) of the cluster: ${rest[*]}"
  kill_all TERM "${rest[@]}"; sleep 2
  mapfile -t rest < <(state_dir_pids; jc_our_cgroup_pids)
  [ ${#rest[@]} -gt 0 ] && kill_all KILL "${rest[@]}" && sleep 1
done

# ---------------------------------------------------------------- 6. mounts
for i in 1 2 3 4 5; do
  mapfile -t mnts < <(jc_our_mounts)
  [ ${#mnts[@]} -eq 0 ] && break
  for m in "${mnts[@]}"; do umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null || true; done
done
[ ${#mnts[@]} -gt 0 ] && [ -n "$(jc_our_mounts)" ] && [ "$i" = 5 ] && warn "mounts: $(jc_our_mounts | paste -sd' ')"

# ---------------------------------------------------------------- 7. cgroups
for d in /sys/fs/cgroup/*/"$JC_CGROUP_ROOT"; do
  [ -d "$d" ] || continue
  for i in 1 2 3 4 5; do
    find "$d" -depth -type d -exec rmdir {} \; 2>/dev/null || true
    [ -d "$d" ] || break
    sleep 1
  done
  [ -d "$d" ] && warn "cgroup $d"
done
for d in /sys/fs/cgroup/cpu/"$JC_CP_CGROUP" /sys/fs/cgroup/"$JC_CP_CGROUP"; do  # the control plane's (lib-cluster.sh)
  [ -d "$d" ] || continue
  for i in 1 2 3 4 5; do rmdir "$d" 2>/dev/null && break; sleep 1; done
  [ -d "$d" ] && warn "cgroup $d"
done

# ---------------------------------------------------------------- 8. network
if ip link show "$JC_BRIDGE" >/dev/null 2>&1; then
  for l in $(ip -o link show master "$JC_BRIDGE" 2>/dev/null | awk -F': ' '{print $2}' | cut -d@ -f1); do
    ip link del "$l" 2>/dev/null || true
  done
  ip link del "$JC_BRIDGE" 2>/dev/null || warn "bridge $JC_BRIDGE"
fi

# iptables: kube-proxy's and the kubelet's KUBE-* chains; the CNI bridge plugin's
# masquerade (and portmap's) rules and chains carrying our network's name in a comment.
ipt_cleanup() {
  local ipt=$1 t chains ours rule c
  command -v "$ipt" >/dev/null || return 0
  for t in raw mangle nat filter; do
    "$ipt" -t "$t" -S >/dev/null 2>&1 || continue
    ours=$("$ipt" -t "$t" -S | grep -F "name: \\\"$JC_CNI_NET\\\"" | grep -o -- '-j CNI-[A-Za-z0-9_-]*' | awk '{print $2}' | sort -u || true)
    chains=$( { "$ipt" -t "$t" -S | awk '$1 == "-N" && $2 ~ /^KUBE-/ {print $2}'; echo "$ours"; } | grep . | sort -u || true)
    # rules that jump into those chains or carry our comment, in any chain we do not delete
    while IFS= read -r rule; do
      [ -n "$rule" ] || continue
      eval "\"$ipt\" -t \"$t\" -D ${rule#-A }" 2>/dev/null || true
    done < <("$ipt" -t "$t" -S | grep -- '^-A ' | while IFS= read -r r; do
               c=$(awk '{print $2}' <<<"$r")
               grep -qxF "$c" <<<"$chains" && continue
               if grep -qF "name: \\\"$JC_CNI_NET\\\"" <<<"$r" || grep -qE -- "-j KUBE-" <<<"$r"; then echo "$r"; continue; fi
               for j in $ours; do grep -qE -- "-j $j( |\$)" <<<"$r" && { echo "$r"; break; }; done
             done)
    for c in $chains; do "$ipt" -t "$t" -F "$c" 2>/dev/null || true; done
    for c in $chains; do "$ipt" -t "$t" -X "$c" 2>/dev/null || true; done
    # portmap's top chains, only when nothing but ours was in them
    if [ "$t" = nat ] && "$ipt" -t nat -S CNI-HOSTPORT-DNAT >/dev/null 2>&1 &&
       [ "$("$ipt" -t nat -S CNI-HOSTPORT-DNAT | grep -c '^-A')" = 0 ]; then
      for c in CNI-HOSTPORT-DNAT CNI-HOSTPORT-SETMARK CNI-HOSTPORT-MASQ; do
        while IFS= read -r rule; do eval "\"$ipt\" -t nat -D ${rule#-A }" 2>/dev/null || true
        done < <("$ipt" -t nat -S | grep -- "^-A .* -j $c\$" || true)
      done
      for c in CNI-HOSTPORT-DNAT CNI-HOSTPORT-SETMARK CNI-HOSTPORT-MASQ; do
        "$ipt" -t nat -F "$c" 2>/dev/null || true; "$ipt" -t nat -X "$c" 2>/dev/null || true
      done
    fi
  done
}
ipt_cleanup iptables
ipt_cleanup ip6tables
for ipt in iptables ip6tables; do
  command -v "$ipt" >/dev/null || continue
  iptleft=$( for t in raw mangle nat filter; do "$ipt" -t "$t" -S 2>/dev/null; done |
          grep -E -e 'KUBE-' -e "name: \\\\\"$JC_CNI_NET\\\\\"" || true)
  [ -n "$iptleft" ] && warn "$ipt rules: $iptleft"
done

# ---------------------------------------------------------------- 9. files outside the state dir
# libcni's cache of pods whose network was never torn down (containers killed): ours are
# "<network>-<sandbox id>-eth0" and the matching "cni-loopback-<sandbox id>-lo"
for f in /var/lib/cni/results/"$JC_CNI_NET"-*-eth0; do
  [ -e "$f" ] || continue
  id=${f#/var/lib/cni/results/"$JC_CNI_NET"-}; id=${id%-eth0}
  rm -f "$f" "/var/lib/cni/results/cni-loopback-$id-lo"
done
if [ -d /var/log/containers ]; then
  find /var/log/containers -maxdepth 1 -type l -lname "$JC_DIR/*" -delete 2>/dev/null || true
fi
# directories cluster-up found missing and the kubelet/containerd/CNI created: remove if empty
if [ -f "$JC_DIR/created-dirs" ]; then
  grep -qx /var/lib/kubelet/device-plugins "$JC_DIR/created-dirs" && rm -f /var/lib/kubelet/device-plugins/kubelet.sock
  while read -r d; do [ -d "$d" ] && rmdir "$d" 2>/dev/null || true; done < <(sort -ru "$JC_DIR/created-dirs")
fi
if [ -f "$JC_DIR/host-sysctl.orig" ]; then
  while IFS= read -r kv; do sysctl -q -w "$kv" >/dev/null 2>&1 || true; done < "$JC_DIR/host-sysctl.orig"
  rm -f "$JC_DIR/host-sysctl.orig"
fi

# ---------------------------------------------------------------- 10. state dir
if [ -d "$JC_DIR" ]; then
  if [ -n "$(jc_our_mounts)" ]; then
    warn "not deleting $JC_DIR: mounts remain under it"
  elif [ "${JOBCHAIN_KEEP_STATE:-0}" = 1 ]; then
    rm -rf --one-file-system "$JC_PIDS" "$JC_DIR/kubelet" "$JC_DIR/pod-logs" "$JC_DIR/cni/ipam"
    jc_log "kept $JC_DIR (JOBCHAIN_KEEP_STATE=1)"
  else
    find "$JC_DIR" -mindepth 1 -maxdepth 1 ! -name logs -exec rm -rf --one-file-system {} +
  fi
fi

# ---------------------------------------------------------------- 11. verify
mapfile -t rest < <(state_dir_pids; jc_our_cgroup_pids)
[ ${#rest[@]} -gt 0 ] && warn "processes: ${rest[*]}"
for c in "${JC_COMPONENTS[@]}"; do jc_running "$c" && warn "process $c"; done
[ -n "$(jc_our_shim_pids)" ] && warn "containerd shims: $(jc_our_shim_pids | paste -sd' ')"
ip link show "$JC_BRIDGE" >/dev/null 2>&1 && warn "bridge $JC_BRIDGE"
if [ $problems = 0 ]; then
  jc_log "cluster is down; nothing of it is left (logs kept in $JC_LOGS)"
else
  jc_log "cluster is down, but some things were left behind (see above)"
  exit 1
fi
