#!/usr/bin/env bash
# The broker under systemd, without a running systemd:
# - socket activation: systemd-socket-activate holds the listening SOCK_SEQPACKET socket and
#   starts shmfd-broker on the first connection; a consumer that connected before the broker
#   ran, and a producer after it, are served;
# - readiness: the broker sends READY=1 to $NOTIFY_SOCKET (a stand-in made here), and STOPPING=1
#   when stopped; it leaves the socket file, which is systemd's, in place;
# - the units: systemd-analyze verify, with ExecStart pointed at this build's broker.
#   tests/system/service/activation_test.sh BIN_DIR UNIT_DIR SOURCE_UNIT_DIR
set -euo pipefail
bin=$(realpath "$1")
units=$(realpath "$2")
src_units=$(realpath "$3")
# A private directory ($dir), and every program started (pids) stopped on any exit.
source "$(dirname "$(realpath "$0")")/../../../examples/common/demo_lib.sh"
work=$dir
fail() { echo "activation_test: $*" >&2; exit 1; }

# A stand-in for systemd's notify socket: prints each datagram it gets, one per line.
python3 - "$work/notify" >"$work/notify.log" <<'PY' &
import socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(sys.argv[1])
s.settimeout(60)
while True:
    try:
        print(s.recv(4096).decode().replace("\n", " "), flush=True)
    except socket.timeout:
        break
PY
pids+=($!)
for _ in $(seq 100); do [[ -S $work/notify ]] && break; sleep 0.05; done

sock=$work/broker.sock
systemd-socket-activate --seqpacket -l "$sock" -E NOTIFY_SOCKET="$work/notify" \
  "$bin/shmfd-broker" --log-level info 2>"$work/broker.log" &
activator=$!
pids+=($activator)
for _ in $(seq 100); do [[ -S $sock ]] && break; sleep 0.05; done
[[ -S $sock ]] || fail "systemd-socket-activate did not listen on $sock"
sleep 0.2
! grep -q "shmfd-broker: listening" "$work/broker.log" || fail "the broker ran before anyone connected"

# The first client connects to systemd's socket; that starts the broker, which serves it.
"$bin/shmfd-sub" --socket "$sock" --topic act --frames 50 --block >"$work/sub.out" 2>&1 &
sub=$!
pids+=($sub)
for _ in $(seq 200); do grep -q subscribed "$work/sub.out" && break; sleep 0.05; done
grep -q subscribed "$work/sub.out" || fail "the consumer was not served: $(cat "$work/sub.out" "$work/broker.log")"
"$bin/shmfd-pub" --socket "$sock" --topic act --frames 50 --fps 0 --width 64 --height 64 \
  >"$work/pub.out" 2>&1 || fail "shmfd-pub: $(cat "$work/pub.out")"
wait "$sub" || fail "shmfd-sub: $(cat "$work/sub.out")"
grep -q "shmfd-sub: 50 frames" "$work/sub.out" || fail "shmfd-sub: $(cat "$work/sub.out")"
grep -q "listening on $sock (socket from systemd)" "$work/broker.log" ||
  fail "the broker did not take systemd's socket: $(cat "$work/broker.log")"

# Readiness, then a clean stop that leaves systemd's socket file alone.
for _ in $(seq 100); do grep -q "READY=1" "$work/notify.log" && break; sleep 0.05; done
grep -q "READY=1" "$work/notify.log" || fail "no READY=1 on NOTIFY_SOCKET: $(cat "$work/notify.log")"
kill -TERM "$activator"  # the broker runs in its place (systemd-socket-activate execs it)
wait "$activator" || fail "the broker did not exit 0 on SIGTERM: $(cat "$work/broker.log")"
grep -q "STOPPING=1" "$work/notify.log" || fail "no STOPPING=1: $(cat "$work/notify.log")"
[[ -S $sock ]] || fail "the broker removed the socket file systemd owns"

# The units, as installed, but with this build's broker.
mkdir "$work/units"
sed "s|^ExecStart=[^ ]*|ExecStart=$bin/shmfd-broker|" "$units/shmfd-broker.service" \
  >"$work/units/shmfd-broker.service"
cp "$src_units/shmfd-broker.socket" "$work/units/"
# Documentation=man:shmfd-broker(1) must resolve: the build's generated man pages.
out=$(MANPATH=$units/../man: systemd-analyze verify "$work/units/shmfd-broker.socket" "$work/units/shmfd-broker.service" 2>&1) ||
  fail "systemd-analyze verify: $out"
# Warnings it prints that are about the units themselves (not this machine) fail too.
if grep -E "shmfd-broker\.(service|socket):[0-9]+:" <<<"$out"; then
  fail "systemd-analyze verify complained about the units"
fi
echo "activation_test: activated on first connection, served, READY=1 and STOPPING=1 sent; units verify"
