#!/usr/bin/env bash
# A pool of workers behind one service: shmfd-broker, then shmfd-workers with three worker
# processes, one of them killed mid-call; the client calls again and checks every answer.
#   examples/workers/demo.sh [BIN_DIR] [CALLS]
set -euo pipefail
bin=${1:-build/bin}
calls=${2:-30}
source "$(dirname "$0")/../common/demo_lib.sh"
sock=$dir/broker.sock

start broker "listening on" "$bin/shmfd-broker" --socket "$sock"
"$bin/shmfd-workers" --socket "$sock" --workers 3 --calls "$calls"
