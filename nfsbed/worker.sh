#!/bin/sh
# One worker of an exclusion run on the bed:
#
#   worker.sh KIND DIR CYCLES COUNTER LIMIT
#
# takes the lock of kind KIND in DIR (a client's mount), CYCLES times; inside
# it, counts itself in and out of COUNTER (a file on the local disk, kept
# exact with flock(1)) and appends "overlap" to COUNTER.overlaps if more
# than LIMIT holders are inside at once. Exits 0 only if every lock and
# unlock succeeded. $BIN is the directory holding dotlock, lockdir, filelock
# and the personality links (dotlockfile, lockfile).
#
# KIND: dotlock | lockdir | filelock-ab | filelock-ba | slots | dotlockfile |
#       lockfile (the personalities), and for comparison real-dotlockfile
#       (liblockfile's), real-lockfile (procmail's) and mkdir (a plain
#       mkdir loop)
set -u
kind=$1 dir=$2 cycles=$3 counter=$4 limit=$5 slot=

count() {
  flock "$counter.flock" sh -c '
    n=$(cat "$1" 2>/dev/null || echo 0); n=$((n + $2)); echo "$n" >"$1"
    if [ "$n" -gt "$3" ]; then echo overlap >>"$1.overlaps"; fi' sh "$counter" "$1" "$limit"
}

lock() {
  case $kind in
    dotlock) "$BIN/dotlock" -q -r -1 -i 0 "$dir/L" ;;
    slots) slot=$("$BIN/dotlock" -q -r -1 -i 0 --slots 3 "$dir/S") ;;
    lockdir) "$BIN/lockdir" -q -r -1 -i 0 "$dir/D" ;;
    filelock-ab) "$BIN/filelock" -r -1 -i 0 "$dir/A" "$dir/B" ;;
    filelock-ba) "$BIN/filelock" -r -1 -i 0 "$dir/B" "$dir/A" ;;
    dotlockfile) "$BIN/dotlockfile" -q -r -1 -i 0 "$dir/P" ;;
    lockfile) "$BIN/lockfile" -1 -r -1 "$dir/Q" ;;
    real-dotlockfile) /usr/bin/dotlockfile -p -r -1 -i 0 "$dir/R" ;;
    real-lockfile) /usr/bin/lockfile -1 -r -1 "$dir/T" ;;
    mkdir) until mkdir "$dir/M" 2>/dev/null; do :; done ;;
  esac
}

again() { "$@" 2>/dev/null || "$@" 2>/dev/null || "$@"; }

unlock() {
  case $kind in
    dotlock) "$BIN/dotlock" -u "$dir/L" ;;
    slots) "$BIN/dotlock" -u "$dir/S.$slot" ;;
    lockdir) "$BIN/lockdir" -u "$dir/D" ;;
    filelock-ab | filelock-ba) "$BIN/filelock" -u "$dir/A" "$dir/B" ;;
    dotlockfile) "$BIN/dotlockfile" -u "$dir/P" ;;
    real-dotlockfile) /usr/bin/dotlockfile -u "$dir/R" ;;
    # Not the tools' own calls: rm and rmdir meet EIO in eio mode as they
    # would on a soft mount, and are made again.
    lockfile) again rm -f "$dir/Q" ;;
    real-lockfile) again rm -f "$dir/T" ;;
    mkdir) again rmdir "$dir/M" ;;
  esac
}

i=0
while [ "$i" -lt "$cycles" ]; do
  lock || { echo "$kind: lock failed in cycle $i" >&2; exit 10; }
  count 1
  count -1
  unlock || { echo "$kind: unlock failed in cycle $i" >&2; exit 11; }
  i=$((i + 1))
done
