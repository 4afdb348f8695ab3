#!/usr/bin/env bash
# The camera pipeline behind `make demo`: shmfd-broker, a synthetic camera publishing from a
# pool, a consumer writing PNG snapshots and a consumer analysing every frame, all mapping the
# same pages. Runs for SECONDS, then stops everything cleanly and prints a summary. Nothing is
# left behind but the snapshots: no process, no socket, also when interrupted with Ctrl+C.
#   examples/camera/demo.sh [BIN_DIR] [SECONDS] [FORMAT] [SNAPSHOT_DIR]
set -euo pipefail
bin=${1:-build/bin}
seconds=${2:-10}
format=${3:-rgba}
snapshots=${4:-$(cd "$bin/.." && pwd)/snapshots}
fps=30
source "$(dirname "$0")/../common/demo_lib.sh"
sock=$dir/broker.sock
rm -f "$snapshots"/camera-0-*.png

start broker "listening on" "$bin/shmfd-broker" --socket "$sock"
broker_pid=${pids[0]}
start snapshot "subscribed" "$bin/shmfd-snapshot" --socket "$sock" --every 60 --dir "$snapshots"
start analyze "subscribed" "$bin/shmfd-analyze" --socket "$sock"
echo "demo: 1920x1080 $format at $fps fps for $seconds s through $sock"
# In the background and waited for, so Ctrl+C reaches the clean-up at once.
"$bin/shmfd-camera" --socket "$sock" --format "$format" --fps "$fps" \
  --frames $((seconds * fps)) > "$dir/camera.out" 2> "$dir/camera.log" &
pids+=($!)
wait "${pids[3]}"
wait "${pids[1]}" "${pids[2]}"  # both consumers stop at the camera's end of stream
kill -TERM "$broker_pid"
wait "$broker_pid"
echo "summary:"
echo "  $(cat "$dir/camera.out")"
echo "  $(cat "$dir/analyze.out")"
echo "  $(cat "$dir/snapshot.out")"
echo "  broker stopped cleanly; socket removed: $([[ -e $sock ]] && echo no || echo yes)"
# Every snapshot must be a real PNG: check the 8-byte signature.
bad=0
for png in "$snapshots"/camera-0-*.png; do
  [[ $(head -c 8 "$png" | od -An -tx1 | tr -d ' \n') == 89504e470d0a1a0a ]] || bad=$((bad + 1))
done
echo "  snapshots that are not PNG files: $bad"
[[ $bad -eq 0 ]]
