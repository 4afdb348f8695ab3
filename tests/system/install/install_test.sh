#!/usr/bin/env bash
# Installs shmfd from BUILD into a temporary prefix, then builds a producer and a consumer out
# of tree twice, with CMake's find_package(shmfd) and with pkg-config and plain g++, and runs
# each pair through the installed broker. Nothing from the build tree may be used.
#   tests/system/install/install_test.sh BUILD_DIR
set -euo pipefail
build=$(realpath "$1")
here=$(dirname "$(realpath "$0")")
work=$(mktemp -d /tmp/shmfd-install-XXXXXX)
broker_pid=
cleanup() {
  [[ -n $broker_pid ]] && kill "$broker_pid" 2>/dev/null && wait "$broker_pid" 2>/dev/null
  rm -rf "$work"
}
trap cleanup EXIT
fail() { echo "install_test: $*" >&2; exit 1; }

prefix=$work/prefix
cmake --install "$build" --prefix "$prefix" >"$work/install.log"

# What lands where (the README's Install section lists the same).
libdir=$(find "$prefix" -name 'libshmfd.so.*.*.*' -printf '%h\n' | head -1)
[[ -n $libdir ]] || fail "no libshmfd.so.X.Y.Z under $prefix"
for f in bin/shmfd-broker bin/shmfdctl bin/shmfd-pub bin/shmfd-sub share/man/man1/shmfd-broker.1.gz \
         bin/shmfd-dds-bridge share/man/man1/shmfd-dds-bridge.1.gz \
         include/shmfd/producer.hpp include/shmfd/consumer.hpp include/shmfd.h \
         include/shmfd/wire/wire.hpp include/shmfd/wire/transport.hpp \
         include/shmfd/proto/protocol.capnp.h include/shmfd/proto/layout.capnp.h \
         share/shmfd/proto/protocol.capnp share/shmfd/proto/layout.capnp; do
  [[ -e $prefix/$f ]] || fail "missing $f"
done
for f in libshmfd.so libshmfd-c.so libshmfd-c.so.1 cmake/shmfd/shmfdConfig.cmake \
         cmake/shmfd/shmfdConfigVersion.cmake pkgconfig/shmfd.pc pkgconfig/shmfd-c.pc; do
  [[ -e $libdir/$f ]] || fail "missing ${libdir#"$prefix"/}/$f"
done
soname=$(objdump -p "$libdir/libshmfd.so" | awk '/SONAME/ {print $2}')
[[ $soname == libshmfd.so.0.3 ]] || fail "SONAME is '$soname', not libshmfd.so.0.3"

pydir=$(find "$prefix" -name '_shmfd.cpython-*.so' -printf '%h\n' | head -1)
[[ -n $pydir && -e $pydir/__init__.py && -e $pydir/__init__.pyi && -e $pydir/py.typed ]] ||
  fail "the Python package shmfd is not installed whole under $prefix"
[[ -e $libdir/gstreamer-1.0/libgstshmfd.so ]] || fail "the GStreamer plugin is not installed"
soname=$(objdump -p "$libdir/libshmfd-c.so" | awk '/SONAME/ {print $2}')
[[ $soname == libshmfd-c.so.1 ]] || fail "libshmfd-c's SONAME is '$soname', not libshmfd-c.so.1"

# The installed programs use the installed library.
loaded=$(ldd "$prefix/bin/shmfd-broker" | awk '/libshmfd/ {print $3}')
[[ -n $loaded && $(realpath "$loaded") == $(realpath "$libdir")/libshmfd.so.* ]] ||
  fail "shmfd-broker does not load $libdir/libshmfd.so: $(ldd "$prefix/bin/shmfd-broker")"
"$prefix/bin/shmfdctl" --help >/dev/null

# 1. CMake: find_package(shmfd 0.3 CONFIG REQUIRED), from a copy outside the source tree.
cp -r "$here/app" "$work/src"
cmake -S "$work/src" -B "$work/cmake-build" -G Ninja -DCMAKE_PREFIX_PATH="$prefix" \
  >"$work/cmake.log" 2>&1 || { cat "$work/cmake.log"; fail "configuring with find_package failed"; }
cmake --build "$work/cmake-build" >"$work/cmake-build.log" 2>&1 ||
  { cat "$work/cmake-build.log"; fail "building with find_package failed"; }
! grep -q "$build" "$work/cmake-build/build.ninja" || fail "the CMake build used the build tree"
# A version the package does not serve (0.4: another ABI) is refused.
cp -r "$here/app" "$work/src-0.4"
sed -i 's/find_package(shmfd 0.3/find_package(shmfd 0.4/' "$work/src-0.4/CMakeLists.txt"
if cmake -S "$work/src-0.4" -B "$work/cmake-0.4" -DCMAKE_PREFIX_PATH="$prefix" >/dev/null 2>&1; then
  fail "find_package(shmfd 0.4) accepted version 0.3"
fi

# 2. pkg-config and plain g++.
export PKG_CONFIG_PATH=$libdir/pkgconfig
[[ $(pkg-config --modversion shmfd) == 0.3.0 ]] || fail "pkg-config says $(pkg-config --modversion shmfd)"
for p in producer consumer; do
  # shellcheck disable=SC2046
  g++ -std=c++20 -o "$work/pc-$p" "$here/app/$p.cpp" $(pkg-config --cflags --libs shmfd) \
    -Wl,-rpath,"$(pkg-config --variable=libdir shmfd)" || fail "g++ with pkg-config failed ($p)"
done

# The C API with pkg-config and plain gcc, strictly C11.
# shellcheck disable=SC2046
gcc -std=c11 -Wall -Wextra -Werror -Wpedantic -o "$work/pc-c-app" "$here/app/c_app.c" \
  $(pkg-config --cflags --libs shmfd-c) -Wl,-rpath,"$(pkg-config --variable=libdir shmfd-c)" ||
  fail "gcc with pkg-config shmfd-c failed"

# 3. Through the installed broker: each consumer with the other build's producer.
sock=$work/broker.sock
"$prefix/bin/shmfd-broker" --socket "$sock" 2>"$work/broker.log" &
broker_pid=$!
for _ in $(seq 100); do [[ -S $sock ]] && break; sleep 0.05; done
[[ -S $sock ]] || fail "the installed broker did not start: $(cat "$work/broker.log")"
run_pair() {  # CONSUMER PRODUCER TOPIC
  local out=$work/$3.out
  "$1" "$sock" "$3" 200 >"$out" 2>&1 &
  local consumer=$!
  for _ in $(seq 100); do grep -q subscribed "$out" && break; sleep 0.05; done
  "$2" "$sock" "$3" 200 || fail "$2 failed"
  wait "$consumer" || fail "$1 failed: $(cat "$out")"
  grep -q "received 200 frames, all intact" "$out" || fail "$1: $(cat "$out")"
}
run_pair "$work/cmake-build/app-consumer" "$work/pc-producer" cmake-consumer
run_pair "$work/pc-consumer" "$work/cmake-build/app-producer" pc-consumer
for app in "$work/cmake-build/c-app" "$work/pc-c-app"; do
  "$app" "$sock" "c-app-$(basename "$(dirname "$app")")" 100 | grep -q "100 frames, all intact" ||
    fail "$app failed"
done
# The installed Python package, which finds the installed library on its own (RPATH).
py_out=$(PYTHONPATH=$(dirname "$pydir") /usr/bin/python3 "$here/app/py_app.py" "$sock" py-app 100) ||
  fail "the installed Python package failed: $py_out"
[[ $py_out == *"100 frames, all intact, shmfd from $pydir/"* ]] || fail "py_app: $py_out"
# The installed plugin, which finds the installed library on its own (RPATH).
gst_out=$(GST_PLUGIN_PATH=$libdir/gstreamer-1.0 GST_REGISTRY=$work/registry.bin \
  gst-launch-1.0 -q videotestsrc num-buffers=5 ! video/x-raw,width=32,height=32 ! \
  shmfdsink socket-path="$sock" topic=gst-install sync=false 2>&1) ||
  fail "a pipeline into the installed shmfdsink failed: $gst_out"
"$prefix/bin/shmfdctl" --socket "$sock" status >/dev/null || fail "installed shmfdctl status failed"
echo "install_test: installed into $prefix; find_package and pkg-config builds ran through the installed broker"
