#!/usr/bin/env bash
# Builds a producer, a consumer and a C program against the build tree, not installed, with
# the build tree's pkg-config files (BUILD/pkgconfig, as docs/install.md says),
# and runs them through the build tree's broker.
#   tests/system/install/build_tree_test.sh BUILD_DIR
set -euo pipefail
build=$(realpath "$1")
here=$(dirname "$(realpath "$0")")
src=$(realpath "$here/../../..")
name=build_tree_test
# shellcheck source=tests/system/install/common.sh
source "$here/common.sh"

export PKG_CONFIG_PATH=$build/pkgconfig
for pc in shmfd shmfd-c; do
  pkg-config --exists "$pc" || fail "pkg-config finds no $pc in $PKG_CONFIG_PATH"
  for dir in $(pkg-config --variable=libdir "$pc") $(pkg-config --variable=includedir "$pc"); do
    [[ -d $dir ]] || fail "$pc.pc names $dir, which does not exist"
  done
done
[[ -e $(pkg-config --variable=includedir shmfd)/shmfd/producer.hpp ]] || fail "no producer.hpp"
[[ -e $(pkg-config --variable=includedir shmfd-c)/shmfd.h ]] || fail "no shmfd.h"
build_with_pkgconfig "$work/" "$here/app/producer.cpp" "$here/app/consumer.cpp" "$here/app/c_app.c"
sock=$work/broker.sock
start_broker "$build/bin/shmfd-broker" "$sock"
run_pair "$work/consumer" "$work/producer" "$work/consumer.out" "$sock" tree 200
grep -q "received 200 frames, all intact" "$work/consumer.out" || fail "$(cat "$work/consumer.out")"
"$work/c_app" "$sock" c-tree 100 | grep -q "100 frames, all intact" || fail "the C program failed"

# The README's samples (examples/readme/): shown whole in the README (C++) and docs/c-api.md
# (C), built the same way, and run in pairs through the broker.
for f in producer.cpp consumer.cpp producer.c consumer.c; do
  shown=$src/README.md
  [[ $f == *.c ]] && shown=$src/docs/c-api.md
  python3 -c 'import sys; sys.exit(open(sys.argv[2]).read() not in open(sys.argv[1]).read())' \
    "$shown" "$src/examples/readme/$f" || fail "$shown does not show examples/readme/$f as it is"
done
mkdir "$work/cpp" "$work/c"
build_with_pkgconfig "$work/cpp/" "$src/examples/readme/producer.cpp" "$src/examples/readme/consumer.cpp"
build_with_pkgconfig "$work/c/" "$src/examples/readme/producer.c" "$src/examples/readme/consumer.c"
for lang in cpp c; do
  run_pair "$work/$lang/consumer" "$work/$lang/producer" "$work/readme-$lang.out" "$sock"
  grep -q "^100 frames, 100 intact, 0 dropped" "$work/readme-$lang.out" ||
    fail "the README's $lang consumer: $(cat "$work/readme-$lang.out")"
done
echo "build_tree_test: built with $PKG_CONFIG_PATH (and the README's samples) and ran through the build tree's broker"
