#!/usr/bin/env bash
# Another machine, played on this one: a long-lived set of UTS, pid and
# mount namespaces of its own, with its own host name, boot id and machine
# id (files bind-mounted, inside its mount namespace only, over
# /proc/sys/kernel/random/boot_id and /etc/machine-id). Its pids, boot id
# and machine id are unrelated to this host's; what it sees of the files is
# what this host sees. Nothing outside its namespaces changes.
#
#   nfsbed/machine.sh start DIR HOSTNAME [MACHINE_ID]
#                       start one, its state in DIR (MACHINE_ID: 32 hex
#                       digits, "host" for this host's own (a clone's),
#                       "none" for an uninitialized one; default: new)
#   nfsbed/machine.sh run DIR [-C WORKDIR] COMMAND ARGS...
#                       run COMMAND on it (its exit status is ours)
#   nfsbed/machine.sh set DIR hostname NAME | machine-id ID | boot-id ID
#                       change what it is (ID as for start; boot-id "new")
#   nfsbed/machine.sh stop DIR
#                       stop it and everything running on it
#
# Needs root, unshare and nsenter (util-linux). Only what `start` started
# is stopped, by the pid it recorded, after checking that pid is still its
# init (in a pid namespace of its own).
set -euo pipefail

die() {
  printf 'machine: %s\n' "$*" >&2
  exit 1
}

new_id() { tr -d '-' </proc/sys/kernel/random/uuid; }

machine_id() {
  case $1 in
    host) cat /etc/machine-id ;;
    none) echo uninitialized ;;
    new) new_id ;;
    *) echo "$1" ;;
  esac
}

# The init's pid, if it is still the machine started in $1.
init_of() {
  local dir=$1 pid
  [ -f "$dir/init.pid" ] || return 1
  pid=$(cat "$dir/init.pid")
  [ -r "/proc/$pid/ns/pid" ] || return 1
  [ "$(readlink "/proc/$pid/ns/pid")" = "$(cat "$dir/pidns")" ] || return 1
  echo "$pid"
}

start() {
  local dir=$1 name=$2 id=${3:-new} up init i
  [ "$(id -u)" = 0 ] || die "needs root (namespaces, bind mounts)"
  command -v unshare >/dev/null && command -v nsenter >/dev/null ||
    die "needs unshare and nsenter (apt-get install util-linux)"
  [ -e /etc/machine-id ] || die "no /etc/machine-id to bind a machine id over"
  mkdir -p "$dir"
  if init_of "$dir" >/dev/null; then die "$dir: already running"; fi
  new_id | sed 's/^\(.\{8\}\)\(.\{4\}\)\(.\{4\}\)\(.\{4\}\)/\1-\2-\3-\4-/' >"$dir/boot_id"
  machine_id "$id" >"$dir/machine-id"
  rm -f "$dir/ready"
  # The init reaps whatever is orphaned on the machine (as pid 1 must), and
  # sets it up first: a fresh /proc for its pid namespace (--mount-proc),
  # then the ids over it.
  unshare --uts --pid --mount --fork --mount-proc --kill-child \
    bash -c '
      mount --bind "$1/boot_id" /proc/sys/kernel/random/boot_id
      mount --bind "$1/machine-id" /etc/machine-id
      hostname "$2"
      : >"$1/ready"
      trap "exit 0" TERM
      while :; do sleep 1 & wait $!; done' machine "$dir" "$name" \
    </dev/null >"$dir/log" 2>&1 &
  up=$!
  for ((i = 0; i < 100; i++)); do
    init=$(pgrep -P "$up" || true)
    [ -n "$init" ] && [ -e "$dir/ready" ] && break
    kill -0 "$up" 2>/dev/null || die "did not start: $(cat "$dir/log")"
    sleep 0.05
  done
  [ -e "$dir/ready" ] || die "did not start in 5 s: $(cat "$dir/log")"
  readlink "/proc/$init/ns/pid" >"$dir/pidns"
  [ "$(cat "$dir/pidns")" != "$(readlink /proc/self/ns/pid)" ] || die "no pid namespace"
  echo "$init" >"$dir/init.pid"
}

run() {
  local dir=$1 init wd=()
  shift
  if [ "${1:-}" = -C ]; then
    wd=(--wd="$2")
    shift 2
  fi
  init=$(init_of "$dir") || die "$dir: not running"
  exec nsenter --target "$init" --uts --pid --mount "${wd[@]}" -- "$@"
}

set_() {
  local dir=$1 what=$2 value=$3 init
  init=$(init_of "$dir") || die "$dir: not running"
  # Written in place: the bind mounts show the same inode.
  case $what in
    hostname) nsenter --target "$init" --uts hostname "$value" ;;
    machine-id) machine_id "$value" >"$dir/machine-id" ;;
    boot-id)
      if [ "$value" = new ]; then
        value=$(new_id | sed 's/^\(.\{8\}\)\(.\{4\}\)\(.\{4\}\)\(.\{4\}\)/\1-\2-\3-\4-/')
      fi
      echo "$value" >"$dir/boot_id"
      ;;
    *) die "set: hostname, machine-id or boot-id" ;;
  esac
}

stop() {
  local dir=$1 init i
  if init=$(init_of "$dir"); then
    # SIGKILL of a pid namespace's init ends everything in it.
    kill -KILL "$init" 2>/dev/null || true
    for ((i = 0; i < 100; i++)); do
      [ -e "/proc/$init" ] || break
      sleep 0.05
    done
  fi
  rm -f "$dir/init.pid" "$dir/pidns" "$dir/ready"
}

case "${1:-}" in
  start) shift && start "$@" ;;
  run) shift && run "$@" ;;
  set) shift && set_ "$@" ;;
  stop) shift && stop "$@" ;;
  *)
    sed -n '2,20p' "$0" >&2
    exit 2
    ;;
esac
