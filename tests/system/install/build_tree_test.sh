#!/usr/bin/env bash
# Builds a producer, a consumer and a C program against the build tree, not installed, with
# the build tree's pkg-config files (BUILD/pkgconfig, as the README's Install section says),
# and runs them through the build tree's broker.
#   tests/system/install/build_tree_test.sh BUILD_DIR
set -euo pipefail
build=$(realpath "$1")
here=$(dirname "$(realpath "$0")")
work=$(mktemp -d /tmp/shmfd-build-tree-XXXXXX)
broker_pid=
cleanup() {
  [[ -n $broker_pid ]] && kill "$broker_pid" 2>/dev/null && wait "$broker_pid" 2>/dev/null
  rm -rf "$work"
}
trap cleanup EXIT
fail() { echo "build_tree_test: $*" >&2; exit 1; }

export PKG_CONFIG_PATH=$build/pkgconfig
for pc in shmfd shmfd-c; do
  pkg-config --exists "$pc" || fail "pkg-config finds no $pc in $PKG_CONFIG_PATH"
  for dir in $(pkg-config --variable=libdir "$pc") $(pkg-config --variable=includedir "$pc"); do
    [[ -d $dir ]] || fail "$pc.pc names $dir, which does not exist"
  done
done
[[ -e $(pkg-config --variable=includedir shmfd)/shmfd/producer.hpp ]] || fail "no producer.hpp"
[[ -e $(pkg-config --variable=includedir shmfd-c)/shmfd.h ]] || fail "no shmfd.h"
for p in producer consumer; do
  # shellcheck disable=SC2046
  g++ -std=c++20 -o "$work/$p" "$here/app/$p.cpp" $(pkg-config --cflags --libs shmfd) \
    -Wl,-rpath,"$(pkg-config --variable=libdir shmfd)" || fail "g++ with pkg-config failed ($p)"
done
# shellcheck disable=SC2046
gcc -std=c11 -Wall -Wextra -Werror -Wpedantic -o "$work/c-app" "$here/app/c_app.c" \
  $(pkg-config --cflags --libs shmfd-c) -Wl,-rpath,"$(pkg-config --variable=libdir shmfd-c)" ||
  fail "gcc with pkg-config shmfd-c failed"

sock=$work/broker.sock
"$build/bin/shmfd-broker" --socket "$sock" 2>"$work/broker.log" &
broker_pid=$!
for _ in $(seq 100); do [[ -S $sock ]] && break; sleep 0.05; done
[[ -S $sock ]] || fail "the broker did not start: $(cat "$work/broker.log")"
"$work/consumer" "$sock" tree 200 >"$work/consumer.out" 2>&1 &
consumer=$!
for _ in $(seq 100); do grep -q subscribed "$work/consumer.out" && break; sleep 0.05; done
"$work/producer" "$sock" tree 200 || fail "the producer failed"
wait "$consumer" || fail "the consumer failed: $(cat "$work/consumer.out")"
grep -q "received 200 frames, all intact" "$work/consumer.out" || fail "$(cat "$work/consumer.out")"
"$work/c-app" "$sock" c-tree 100 | grep -q "100 frames, all intact" || fail "the C program failed"

# The README's samples (examples/readme/): shown whole in the README, built the same way, and
# run in pairs through the broker.
src=$(realpath "$here/../../..")
readme=$src/README.md
for f in producer.cpp consumer.cpp producer.c consumer.c; do
  python3 -c 'import sys; sys.exit(open(sys.argv[2]).read() not in open(sys.argv[1]).read())' \
    "$readme" "$src/examples/readme/$f" || fail "README.md does not show examples/readme/$f as it is"
done
for p in producer consumer; do
  # shellcheck disable=SC2046
  g++ -std=c++20 -Wall -Wextra -Werror -o "$work/readme-$p" "$src/examples/readme/$p.cpp" \
    $(pkg-config --cflags --libs shmfd) -Wl,-rpath,"$(pkg-config --variable=libdir shmfd)" ||
    fail "the README's $p.cpp does not build"
  # shellcheck disable=SC2046
  gcc -std=c11 -Wall -Wextra -Werror -Wpedantic -o "$work/readme-$p-c" "$src/examples/readme/$p.c" \
    $(pkg-config --cflags --libs shmfd-c) -Wl,-rpath,"$(pkg-config --variable=libdir shmfd-c)" ||
    fail "the README's $p.c does not build"
done
for lang in "" "-c"; do
  "$work/readme-consumer$lang" "$sock" >"$work/readme$lang.out" 2>&1 &
  consumer=$!
  for _ in $(seq 100); do grep -q subscribed "$work/readme$lang.out" && break; sleep 0.05; done
  "$work/readme-producer$lang" "$sock" || fail "the README's producer$lang failed"
  wait "$consumer" || fail "the README's consumer$lang failed: $(cat "$work/readme$lang.out")"
  grep -q "^100 frames, 100 intact, 0 dropped" "$work/readme$lang.out" ||
    fail "the README's consumer$lang: $(cat "$work/readme$lang.out")"
done
echo "build_tree_test: built with $PKG_CONFIG_PATH (and the README's samples) and ran through the build tree's broker"
