#!/usr/bin/env bash
# The broker demo behind `make demo`: shmfd-broker, two shmfd-sub consumers (one drop-oldest,
# one block-producer) and one shmfd-pub producer of 1280x720 RGBA frames from a 4-slot pool at
# 30 fps for five seconds, then a clean stop. Nothing is left behind: no process, no socket, no temp file,
# also when interrupted with Ctrl+C.
#   examples/pubsub/demo.sh [BIN_DIR] [FRAMES]
set -euo pipefail
bin=${1:-build/bin}
frames=${2:-150}
sock_name=broker.sock
source "$(dirname "$0")/../common/demo_lib.sh"
sock=$dir/$sock_name

start broker "listening on" "$bin/shmfd-broker" --socket "$sock"
broker_pid=${pids[0]}
start viewer "subscribed" "$bin/shmfd-sub" --socket "$sock" --topic demo/camera --check-pattern
start recorder "subscribed" "$bin/shmfd-sub" --socket "$sock" --topic demo/camera --block --check-pattern
echo "demo: broker on $sock; publishing $frames frames of 1280x720 rgba8 at 30 fps from a 4-slot pool"
"$bin/shmfd-pub" --socket "$sock" --topic demo/camera --frames "$frames" --fps 30 \
  --width 1280 --height 720 --pool 4 2> "$dir/pub.log" &
pids+=($!)
wait "${pids[3]}"
wait "${pids[1]}" "${pids[2]}"  # the consumers stop at end of stream
kill -TERM "$broker_pid"
wait "$broker_pid"
status=$?
echo "viewer   (drop-oldest):    $(cat "$dir/viewer.out")"
echo "recorder (block-producer): $(cat "$dir/recorder.out")"
echo "broker exited with status $status; socket file removed: $([[ -e $sock ]] && echo no || echo yes)"
grep -v "listening on" "$dir/broker.log" | sed 's/^/  /' || true
