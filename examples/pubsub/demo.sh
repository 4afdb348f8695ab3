#!/usr/bin/env bash
# The broker demo behind `make demo`: shmfd-broker, two shmfd-sub consumers (one drop-oldest,
# one block-producer) and one shmfd-pub producer of 1280x720 RGBA frames from a 4-slot pool at
# 30 fps for five seconds, then a clean stop. Nothing is left behind: no process, no socket, no temp file,
# also when interrupted with Ctrl+C.
#   examples/pubsub/demo.sh [BIN_DIR] [FRAMES]
set -euo pipefail
bin=${1:-build/bin}
frames=${2:-150}
dir=$(mktemp -d /tmp/shmfd-demo.XXXXXX)
sock=$dir/broker.sock
pids=()

cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$dir"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# Starts a program whose stderr goes to $dir/NAME.log and waits until that stderr shows
# PATTERN (read through a fifo, so there is no polling); the rest is drained in the background.
start() {
  local name=$1 pattern=$2
  shift 2
  mkfifo "$dir/$name.fifo"
  "$@" 2> "$dir/$name.fifo" > "$dir/$name.out" &
  pids+=($!)
  exec {fd}< "$dir/$name.fifo"
  local line
  while IFS= read -r line <&"$fd"; do
    echo "$line" >> "$dir/$name.log"
    [[ $line == *"$pattern"* ]] && break
  done
  cat <&"$fd" >> "$dir/$name.log" &
  exec {fd}<&-
  [[ $line == *"$pattern"* ]] || { echo "demo: $name did not start:"; cat "$dir/$name.log"; exit 1; }
}

start broker "listening on" "$bin/shmfd-broker" --socket "$sock"
broker_pid=${pids[0]}
start viewer "subscribed" "$bin/shmfd-sub" --socket "$sock" --topic demo/camera
start recorder "subscribed" "$bin/shmfd-sub" --socket "$sock" --topic demo/camera --block
echo "demo: broker on $sock; publishing $frames frames of 1280x720 rgba8 at 30 fps from a 4-slot pool"
"$bin/shmfd-pub" --socket "$sock" --topic demo/camera --frames "$frames" --fps 30 \
  --width 1280 --height 720 --pool 4 2> "$dir/pub.log"
wait "${pids[1]}" "${pids[2]}"  # the consumers stop at end of stream
kill -TERM "$broker_pid"
wait "$broker_pid"
status=$?
echo "viewer   (drop-oldest):    $(cat "$dir/viewer.out")"
echo "recorder (block-producer): $(cat "$dir/recorder.out")"
echo "broker exited with status $status; socket file removed: $([[ -e $sock ]] && echo no || echo yes)"
grep -v "listening on" "$dir/broker.log" | sed 's/^/  /' || true
