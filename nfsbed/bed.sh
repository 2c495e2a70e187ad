#!/usr/bin/env bash
# The NFS test bed: nfs-ganesha serving NFSv3 inside a network namespace
# whose only interface is loopback, and two user-space clients of its export
# (nfsbed-client, through FUSE), playing two machines: host A is this host;
# host B is another machine (nfsbed/machine.sh: its own UTS, pid and mount
# namespaces, host name, boot id and machine id), and every process of
# client B runs on it (`bed.sh on-b`).
#
#   nfsbed/bed.sh start            server, both clients, machine B (idempotent)
#   nfsbed/bed.sh stop             stop what start started, by pid
#   nfsbed/bed.sh status           what is running
#   nfsbed/bed.sh restart-server [SECONDS]
#                                  stop ganesha, wait, start it again
#   nfsbed/bed.sh on-b COMMAND ARGS...
#                                  run COMMAND on machine B, in client B's mount
#   nfsbed/bed.sh identity-b distinct|same-name|clone
#                                  machine B as another machine named host-b
#                                  (the default); named as this host; or
#                                  named as this host with its machine id too
#
# Environment: BED_DIR (default target/nfsbed), BED_NETNS (lockutils-bed),
# BED_ACTIMEO (attribute cache seconds, default 3), NFSBED_CLIENT (the
# client binary; built with cargo if unset).
#
# Layout under BED_DIR: export/ (what the server exports), a/ and b/ (the
# two clients' mounts), control-a, control-b (fault settings, see
# nfsbed/src/main.rs), stats-a, stats-b (counts), state/ (pids, markers),
# log/.
#
# Nothing listens outside the namespace. Only what this script started is
# stopped, by the pid it recorded, after checking that pid is still that
# program.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
bed=${BED_DIR:-$root/target/nfsbed}
ns=${BED_NETNS:-lockutils-bed}
actimeo=${BED_ACTIMEO:-3}
state=$bed/state
log=$bed/log
rpcsock=/run/rpcbind.sock
clients=(a b)
machine=$state/machine-b
here=$(cd "$(dirname "$0")" && pwd)

say() { printf 'bed: %s\n' "$*" >&2; }
die() {
  say "$*"
  exit 1
}

# The pid recorded in state/NAME if it is still a live COMM process.
alive() {
  local name=$1 comm=$2 pid
  [ -f "$state/$name.pid" ] || return 1
  pid=$(cat "$state/$name.pid")
  [ -r "/proc/$pid/comm" ] || return 1
  [ "$(cat "/proc/$pid/comm")" = "$comm" ] || return 1
  echo "$pid"
}

# Wait up to $2 seconds for `$1` (a command) to succeed.
wait_for() {
  local what=$1 secs=$2 i
  for ((i = 0; i < secs * 10; i++)); do
    if eval "$what" >/dev/null 2>&1; then return 0; fi
    sleep 0.1
  done
  return 1
}

listening() { ip netns exec "$ns" ss -Hltn "sport = :$1" | grep -q LISTEN; }

stop_pid() {
  local name=$1 comm=$2 pid
  if pid=$(alive "$name" "$comm"); then
    kill -TERM "$pid" 2>/dev/null || true
    wait_for "! kill -0 $pid" 10 || kill -KILL "$pid" 2>/dev/null || true
    wait_for "! kill -0 $pid" 5 || true
  fi
  rm -f "$state/$name.pid"
}

need() {
  local missing=()
  for c in ip ss ganesha.nfsd rpcbind mountpoint umount unshare nsenter; do
    command -v "$c" >/dev/null 2>&1 || missing+=("$c")
  done
  [ -e /usr/lib/x86_64-linux-gnu/ganesha/libfsalvfs.so ] || [ -n "$(ganesha_plugins)" ] ||
    missing+=(libfsalvfs.so)
  [ "${#missing[@]}" = 0 ] ||
    die "missing ${missing[*]}: apt-get install nfs-ganesha nfs-ganesha-vfs rpcbind iproute2"
  [ "$(id -u)" = 0 ] || die "the bed needs root (network namespace, FUSE mounts)"
  [ -c /dev/fuse ] || die "no /dev/fuse"
}

ganesha_plugins() {
  local f
  f=$(find /usr/lib -name libfsalvfs.so -print -quit 2>/dev/null || true)
  [ -n "$f" ] && dirname "$f"
}

start_netns() {
  if ! ip netns list | awk '{print $1}' | grep -qx "$ns"; then
    ip netns add "$ns"
    touch "$state/netns-created"
  fi
  ip -n "$ns" link set lo up
}

start_rpcbind() {
  alive rpcbind rpcbind >/dev/null && return 0
  if [ -e "$rpcsock" ]; then
    # A socket nobody of ours made: a host rpcbind would take the
    # registrations meant for the namespace.
    [ -f "$state/rpcsock-created" ] ||
      die "$rpcsock exists (a host rpcbind?); the bed's rpcbind would conflict with it"
    rm -f "$rpcsock"
  else
    touch "$state/rpcsock-created"
  fi
  ip netns exec "$ns" rpcbind -f >"$log/rpcbind.log" 2>&1 &
  echo $! >"$state/rpcbind.pid"
  wait_for "listening 111" 10 || die "rpcbind did not start (see $log/rpcbind.log)"
}

write_conf() {
  cat >"$state/ganesha.conf" <<EOF
NFS_CORE_PARAM {
  Protocols = 3;
  Enable_NLM = false;
  Enable_RQUOTA = false;
  Enable_UDP = false;
  NFS_Port = 2049;
  MNT_Port = 20048;
  Plugins_Dir = $(ganesha_plugins);
}
NFSV4 {
  Graceless = true;
  RecoveryBackend = fs;
  RecoveryRoot = $state/recovery;
}
EXPORT {
  Export_Id = 1;
  Path = $bed/export;
  Pseudo = /export;
  Protocols = 3;
  Transports = TCP;
  Access_Type = RW;
  Squash = No_Root_Squash;
  SecType = sys;
  FSAL { Name = VFS; }
}
EOF
}

start_ganesha() {
  alive ganesha ganesha.nfsd >/dev/null && return 0
  mkdir -p "$bed/export" "$state/recovery"
  chmod 1777 "$bed/export"
  write_conf
  ip netns exec "$ns" ganesha.nfsd -F -f "$state/ganesha.conf" -L "$log/ganesha.log" \
    -p "$state/ganesha.nfsd.pid" >"$log/ganesha.out" 2>&1 &
  echo $! >"$state/ganesha.pid"
  wait_for "listening 2049 && listening 20048" 30 ||
    die "ganesha did not start (see $log/ganesha.log)"
}

client_bin() {
  if [ -n "${NFSBED_CLIENT:-}" ]; then
    echo "$NFSBED_CLIENT"
    return
  fi
  # The executable cargo reports (the workspace may build for a named target).
  (cd "$root" && cargo build -q -p nfsbed --message-format=json) |
    sed -n 's/.*"executable":"\([^"]*nfsbed-client\)".*/\1/p' | tail -n 1
}

start_client() {
  local c=$1 bin=$2 mnt=$bed/$1
  alive "client-$c" nfsbed-client >/dev/null && mountpoint -q "$mnt" && return 0
  stop_client "$c"
  mkdir -p "$mnt"
  touch "$bed/control-$c"
  "$bin" "$mnt" --netns "/run/netns/$ns" --actimeo "$actimeo" \
    --export "$bed/export" --control "$bed/control-$c" --stats "$bed/stats-$c" >"$log/client-$c.log" 2>&1 &
  echo $! >"$state/client-$c.pid"
  wait_for "mountpoint -q $mnt" 20 || die "client $c did not mount (see $log/client-$c.log)"
}

stop_client() {
  local c=$1 mnt=$bed/$1
  if mountpoint -q "$mnt" 2>/dev/null; then
    umount "$mnt" 2>/dev/null || umount -l "$mnt" 2>/dev/null || true
  fi
  stop_pid "client-$c" nfsbed-client
}

# Machine B sees client B's mount as it was when B started: a client
# mounted again needs machine B started again.
start_machine() {
  local restarted=$1
  if [ "$restarted" = 1 ] || ! "$here/machine.sh" run "$machine" true 2>/dev/null; then
    "$here/machine.sh" stop "$machine"
    "$here/machine.sh" start "$machine" host-b new
  fi
}

identity_b() {
  case ${1:-} in
    distinct)
      "$here/machine.sh" set "$machine" hostname host-b
      "$here/machine.sh" set "$machine" machine-id new
      ;;
    same-name)
      "$here/machine.sh" set "$machine" hostname "$(hostname)"
      "$here/machine.sh" set "$machine" machine-id new
      ;;
    clone)
      "$here/machine.sh" set "$machine" hostname "$(hostname)"
      "$here/machine.sh" set "$machine" machine-id host
      ;;
    *) die "identity-b: distinct, same-name or clone" ;;
  esac
  # Every boot of B is a boot of its own.
  "$here/machine.sh" set "$machine" boot-id new
}

stop_server() {
  stop_pid ganesha ganesha.nfsd
}

start() {
  need
  mkdir -p "$state" "$log"
  local bin
  bin=$(client_bin)
  [ -x "$bin" ] || die "no client binary at $bin"
  start_netns
  start_rpcbind
  start_ganesha
  local restarted=0
  alive client-b nfsbed-client >/dev/null && mountpoint -q "$bed/b" || restarted=1
  for c in "${clients[@]}"; do start_client "$c" "$bin"; done
  start_machine "$restarted"
  say "up: clients at $bed/a and $bed/b (export $bed/export, netns $ns), machine B"
}

stop() {
  [ -d "$state" ] || return 0
  "$here/machine.sh" stop "$machine"
  for c in "${clients[@]}"; do stop_client "$c"; done
  stop_server
  stop_pid rpcbind rpcbind
  if [ -f "$state/rpcsock-created" ]; then
    rm -f "$rpcsock" "$state/rpcsock-created"
  fi
  if [ -f "$state/netns-created" ]; then
    ip netns delete "$ns" 2>/dev/null || true
    rm -f "$state/netns-created"
  fi
  say "down"
}

status() {
  local up=0
  for p in rpcbind:rpcbind ganesha:ganesha.nfsd client-a:nfsbed-client client-b:nfsbed-client; do
    if pid=$(alive "${p%%:*}" "${p#*:}"); then
      say "${p%%:*}: running (pid $pid)"
    else
      say "${p%%:*}: not running"
      up=1
    fi
  done
  if "$here/machine.sh" run "$machine" true 2>/dev/null; then
    say "machine-b: running ($("$here/machine.sh" run "$machine" hostname))"
  else
    say "machine-b: not running"
    up=1
  fi
  return $up
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  status) status ;;
  restart-server)
    stop_server
    sleep "${2:-1}"
    mkdir -p "$state" "$log"
    start_ganesha
    say "server restarted"
    ;;
  on-b)
    shift
    exec "$here/machine.sh" run "$machine" -C "$bed/b" "$@"
    ;;
  identity-b) identity_b "${2:-}" ;;
  *)
    sed -n '2,26p' "$0" >&2
    exit 2
    ;;
esac
