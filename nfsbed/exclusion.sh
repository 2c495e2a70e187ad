#!/usr/bin/env bash
# Exclusion runs on the bed (which must be up: nfsbed/bed.sh start):
#
#   nfsbed/exclusion.sh BIN KIND FAULT CYCLES
#
# 2 clients x 2 processes x CYCLES lock/unlock cycles of KIND (see
# worker.sh; "filelock" runs A B on client a and B A on client b; client
# b's workers run on machine B, `bed.sh on-b`), with
# FAULT set on both clients ("none", "lost=0.07", "eio=0.07", any control
# words). Prints one line of figures:
#
#   KIND FAULT cycles=N overlaps=N failed=N lost=N eio=N seconds=S left=NAMES
#
# and exits 1 if anything overlapped, failed or was left behind. BIN holds
# dotlock, lockdir, filelock and the personality links.
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
bed=${BED_DIR:-$here/../target/nfsbed}
bin=$1 kind=$2 fault=$3 cycles=$4
limit=1
[ "$kind" = slots ] && limit=3

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
set_fault() {
  for c in a b; do
    if [ "$1" = none ]; then : >"$bed/control-$c"; else echo "$1" >"$bed/control-$c"; fi
  done
  sleep 0.3 # read every 100 ms
}
injected() {
  local total=0 n
  for c in a b; do
    n=$(tr ' ' '\n' <"$bed/stats-$c" | sed -n "s/^$1=//p")
    total=$((total + ${n:-0}))
  done
  echo "$total"
}

set_fault "$fault"
lost0=$(injected lost) eio0=$(injected eio)
start=$(date +%s.%N)
pids=()
for c in a a b b; do
  k=$kind
  if [ "$kind" = filelock ]; then
    if [ "$c" = a ]; then k=filelock-ab; else k=filelock-ba; fi
  fi
  on=()
  [ "$c" = b ] && on=("$here/bed.sh" on-b)
  BIN=$bin BED_DIR=$bed "${on[@]}" sh "$here/worker.sh" "$k" "$bed/$c" "$cycles" "$work/count" "$limit" \
    2>>"$work/errors" &
  pids+=($!)
done
failed=0
for p in "${pids[@]}"; do wait "$p" || failed=$((failed + 1)); done
end=$(date +%s.%N)
set_fault none
overlaps=$(cat "$work/count.overlaps" 2>/dev/null | wc -l)
left=$(ls -A "$bed/export" | tr '\n' ' ')
printf '%s %s cycles=%d overlaps=%d failed=%d lost=%d eio=%d seconds=%.1f left=%s\n' \
  "$kind" "$fault" $((4 * cycles)) "$overlaps" "$failed" \
  $(($(injected lost) - lost0)) $(($(injected eio) - eio0)) \
  "$(echo "$end - $start" | bc)" "${left:-none}"
if [ -s "$work/errors" ]; then sort "$work/errors" | uniq -c | head -5 >&2; fi
[ "$overlaps" = 0 ] && [ "$failed" = 0 ] && [ -z "$left" ]
