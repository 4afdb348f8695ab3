#!/usr/bin/env bash
# Installs shmfd from BUILD into a temporary prefix, then builds a producer and a consumer out
# of tree twice, with CMake's find_package(shmfd) and with pkg-config and plain g++, and runs
# each pair through the installed broker. Nothing from the build tree may be used.
#   tests/system/install/install_test.sh BUILD_DIR
set -euo pipefail
build=$(realpath "$1")
here=$(dirname "$(realpath "$0")")
name=install_test
# shellcheck source=tests/system/install/common.sh
source "$here/common.sh"

prefix=$work/prefix
cmake --install "$build" --prefix "$prefix" >"$work/install.log"

# What lands where (docs/install.md lists the same).
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
# Every installed program has its man page (made from its --help: cmake/ShmfdInstall.cmake).
for program in "$prefix"/bin/*; do
  [[ -e $prefix/share/man/man1/$(basename "$program").1.gz ]] ||
    fail "$(basename "$program") is installed without a man page"
done
soname=$(objdump -p "$libdir/libshmfd.so" | awk '/SONAME/ {print $2}')
[[ $soname == libshmfd.so.0.5 ]] || fail "SONAME is '$soname', not libshmfd.so.0.5"

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

# 1. CMake: find_package(shmfd 0.5 CONFIG REQUIRED), from a copy outside the source tree.
cp -r "$here/app" "$work/src"
cmake -S "$work/src" -B "$work/cmake-build" -G Ninja -DCMAKE_PREFIX_PATH="$prefix" \
  >"$work/cmake.log" 2>&1 || { cat "$work/cmake.log"; fail "configuring with find_package failed"; }
cmake --build "$work/cmake-build" >"$work/cmake-build.log" 2>&1 ||
  { cat "$work/cmake-build.log"; fail "building with find_package failed"; }
! grep -q "$build" "$work/cmake-build/build.ninja" || fail "the CMake build used the build tree"
# A version the package does not serve (0.6: another ABI) is refused.
cp -r "$here/app" "$work/src-0.6"
sed -i 's/find_package(shmfd 0.5/find_package(shmfd 0.6/' "$work/src-0.6/CMakeLists.txt"
if cmake -S "$work/src-0.6" -B "$work/cmake-0.6" -DCMAKE_PREFIX_PATH="$prefix" >/dev/null 2>&1; then
  fail "find_package(shmfd 0.6) accepted version 0.5"
fi

# 2. pkg-config and plain g++.
export PKG_CONFIG_PATH=$libdir/pkgconfig
[[ $(pkg-config --modversion shmfd) == 0.5.0 ]] || fail "pkg-config says $(pkg-config --modversion shmfd)"
# The C API with plain gcc, strictly C11.
build_with_pkgconfig "$work/pc-" "$here/app/producer.cpp" "$here/app/consumer.cpp" \
  "$here/app/c_app.c"

# 3. Through the installed broker: each consumer with the other build's producer.
sock=$work/broker.sock
start_broker "$prefix/bin/shmfd-broker" "$sock"
intact_pair() {  # CONSUMER PRODUCER TOPIC
  run_pair "$1" "$2" "$work/$3.out" "$sock" "$3" 200
  grep -q "received 200 frames, all intact" "$work/$3.out" || fail "$1: $(cat "$work/$3.out")"
}
intact_pair "$work/cmake-build/app-consumer" "$work/pc-producer" cmake-consumer
intact_pair "$work/pc-consumer" "$work/cmake-build/app-producer" pc-consumer
for app in "$work/cmake-build/c-app" "$work/pc-c_app"; do
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
