#!/usr/bin/env bash
# The Debian packages as a user meets them: installed with apt, the installed broker and tools
# run, a program built against libshmfd-dev with find_package, the units verified, and then
# everything removed and purged, leaving nothing behind. Needs root; changes /usr while it
# runs, and refuses to run if shmfd packages are installed already.
#   tests/system/install/deb_test.sh DEB_BUILD_DIR
set -euo pipefail
debs=$(realpath "$1")
here=$(dirname "$(realpath "$0")")
work=$(mktemp -d /tmp/shmfd-deb-XXXXXX)
broker_pid=
installed=0
fail() { echo "deb_test: $*" >&2; exit 1; }
cleanup() {
  [[ -n $broker_pid ]] && kill "$broker_pid" 2>/dev/null && wait "$broker_pid" 2>/dev/null
  [[ $installed == 1 ]] && dpkg --purge shmfd libshmfd-dev libshmfd-c1 python3-shmfd gstreamer1.0-shmfd libshmfd0.5 libshmfd0.4 libshmfd0.3 libshmfd0.2 >/dev/null 2>&1
  rm -rf "$work"
}
trap cleanup EXIT
[[ $(id -u) == 0 ]] || fail "needs root (it installs packages)"
if dpkg-query -W -f='${Status}\n' shmfd libshmfd-dev 2>/dev/null | grep -q "install ok"; then
  fail "shmfd packages are installed already; remove them first"
fi

shopt -s nullglob
packages=("$debs"/*.deb)
[[ ${#packages[@]} == 6 ]] || fail "expected 6 packages in $debs, found ${#packages[@]}"
for p in "${packages[@]}"; do
  echo "deb_test: $(dpkg-deb -f "$p" Package Version Depends | tr '\n' ' ')"
done
# Debian 12's lintian: no error on any package (a copyright file, changelogs, shlibs, the
# ldconfig trigger, a real Maintainer, ...). Its warnings are printed, not fatal.
lintian_log="$work/lintian.log"
lintian --fail-on error --tag-display-limit 0 "${packages[@]}" >"$lintian_log" 2>&1 ||
  lintian_failed=1
grep -E '^[EWI]: ' "$lintian_log" | sed 's/^/deb_test: lintian: /' || true
[[ -z ${lintian_failed:-} ]] || fail "lintian reports errors on the packages (above)"

dpkg-deb -f "$debs"/shmfd_*.deb Depends | grep -q "libshmfd0.5 (= 0.5.0" ||
  fail "shmfd does not depend on its library"
dpkg-deb -f "$debs"/shmfd_*.deb Depends | grep -q "libsystemd0" ||
  fail "shmfd's dependencies do not come from what it links (no libsystemd0)"

export DEBIAN_FRONTEND=noninteractive
apt-get install -y -qq --no-install-recommends "${packages[@]}" >"$work/apt.log" 2>&1 ||
  { cat "$work/apt.log"; fail "apt-get install failed"; }
installed=1

# What landed, and where.
multiarch=$(dpkg-architecture -qDEB_HOST_MULTIARCH)
for f in /usr/bin/shmfd-broker /usr/bin/shmfdctl /usr/bin/shmfd-pub /usr/bin/shmfd-sub \
         /usr/bin/shmfd-dds-bridge /usr/share/man/man1/shmfd-dds-bridge.1.gz \
         "/usr/lib/$multiarch/libshmfd.so.0.5" "/usr/lib/$multiarch/libshmfd.so" \
         "/usr/lib/$multiarch/libshmfd-c.so.1" "/usr/lib/$multiarch/libshmfd-c.so" \
         "/usr/lib/$multiarch/pkgconfig/shmfd-c.pc" /usr/include/shmfd.h \
         "/usr/lib/$multiarch/cmake/shmfd/shmfdConfig.cmake" "/usr/lib/$multiarch/pkgconfig/shmfd.pc" \
         /usr/include/shmfd/producer.hpp /usr/include/shmfd/wire/wire.hpp \
         /usr/include/shmfd/proto/protocol.capnp.h \
         /usr/share/shmfd/proto/protocol.capnp /usr/share/man/man1/shmfd-broker.1.gz \
         /usr/lib/systemd/system/shmfd-broker.socket /usr/lib/systemd/system/shmfd-broker.service \
         /usr/lib/tmpfiles.d/shmfd.conf /usr/lib/sysusers.d/shmfd.conf /etc/shmfd/policy \
         "/usr/lib/$multiarch/gstreamer-1.0/libgstshmfd.so"; do
  [[ -e $f ]] || fail "missing $f"
done
getent group shmfd >/dev/null || fail "the package did not create the group shmfd"
[[ $(readelf -d /usr/bin/shmfd-broker | grep -c 'RPATH\|RUNPATH') == 0 ]] ||
  fail "/usr/bin/shmfd-broker carries an RPATH"
man -w shmfd-broker >/dev/null || fail "man shmfd-broker finds nothing"
for p in libshmfd0.5 libshmfd-c1 libshmfd-dev shmfd python3-shmfd gstreamer1.0-shmfd; do
  for f in copyright changelog.gz changelog.Debian.gz; do
    [[ -f /usr/share/doc/$p/$f ]] || fail "$p has no /usr/share/doc/$p/$f"
  done
done
zcat /usr/share/doc/shmfd/changelog.Debian.gz | head -1 | grep -q "^shmfd (0.5.0-1) " ||
  fail "the Debian changelog's newest entry is not 0.5.0-1"
[[ $(shmfd-dds-bridge --help) == *"Bridges shmfd topics to a DDS domain"* ]] ||
  fail "the installed shmfd-dds-bridge does not run"
dpkg-deb -f "$debs"/shmfd_*.deb Depends | grep -q "libddsc0debian" ||
  fail "shmfd does not depend on Cyclone DDS's library (the bridge links it)"
systemd-analyze verify /usr/lib/systemd/system/shmfd-broker.socket \
  /usr/lib/systemd/system/shmfd-broker.service || fail "systemd-analyze verify"

# The installed broker, under socket activation as the unit runs it, with the installed tools
# and the example policy.
sock=$work/broker.sock
systemd-socket-activate --seqpacket -l "$sock" /usr/bin/shmfd-broker --policy /etc/shmfd/policy \
  2>"$work/broker.log" &
broker_pid=$!
for _ in $(seq 100); do [[ -S $sock ]] && break; sleep 0.05; done
shmfd-sub --socket "$sock" --topic deb --frames 30 >"$work/sub.out" 2>&1 &
sub=$!
for _ in $(seq 200); do grep -q subscribed "$work/sub.out" && break; sleep 0.05; done
shmfd-pub --socket "$sock" --topic deb --frames 30 --fps 0 --pool 4 >/dev/null 2>&1 ||
  fail "the installed shmfd-pub failed"
wait "$sub" || fail "the installed shmfd-sub: $(cat "$work/sub.out")"
shmfdctl --socket "$sock" status >/dev/null || fail "the installed shmfdctl status"

# A program built against libshmfd-dev, found by CMake with no hints.
cp -r "$here/app" "$work/src"
cmake -S "$work/src" -B "$work/build" -G Ninja >"$work/cmake.log" 2>&1 &&
  cmake --build "$work/build" >>"$work/cmake.log" 2>&1 || { cat "$work/cmake.log"; fail "build against libshmfd-dev"; }
"$work/build/app-consumer" "$sock" app 100 >"$work/app.out" 2>&1 &
consumer=$!
for _ in $(seq 100); do grep -q subscribed "$work/app.out" && break; sleep 0.05; done
"$work/build/app-producer" "$sock" app 100 >/dev/null || fail "app-producer"
wait "$consumer" || fail "app-consumer: $(cat "$work/app.out")"
"$work/build/c-app" "$sock" c-app 100 | grep -q "100 frames, all intact" || fail "c-app (the C API)"
py_out=$(cd / && /usr/bin/python3 "$here/app/py_app.py" "$sock" py-app 100) || fail "python3-shmfd: $py_out"
[[ $py_out == *"shmfd from /usr/lib/python3/dist-packages/shmfd/"* ]] || fail "py_app: $py_out"
# The plugin, found by GStreamer in its own directory with no GST_PLUGIN_PATH (a private
# registry, so root's ~/.cache is left alone).
export GST_REGISTRY=$work/registry.bin
unset GST_PLUGIN_PATH
inspected=$(gst-inspect-1.0 shmfdsink 2>&1) || fail "gst-inspect-1.0 shmfdsink: $inspected"
# (On a merged /usr, GStreamer may name it /lib/...: the same file.)
plugin_file=$(awk '/^  Filename/ {print $2}' <<<"$inspected")
[[ -n $plugin_file && $(realpath "$plugin_file") == $(realpath "/usr/lib/$multiarch/gstreamer-1.0/libgstshmfd.so") ]] ||
  fail "gst-inspect-1.0 found shmfdsink elsewhere: $inspected"
shmfd-sub --socket "$sock" --topic gst-deb --frames 10 --block >"$work/gst-sub.out" 2>&1 &
sub=$!
for _ in $(seq 200); do grep -q subscribed "$work/gst-sub.out" && break; sleep 0.05; done
gst-launch-1.0 -q videotestsrc num-buffers=10 ! video/x-raw,format=RGBA,width=64,height=48 ! \
  shmfdsink socket-path="$sock" topic=gst-deb sync=false >"$work/gst.out" 2>&1 ||
  fail "a pipeline into the installed shmfdsink: $(cat "$work/gst.out")"
wait "$sub" || fail "shmfd-sub on the installed shmfdsink's frames: $(cat "$work/gst-sub.out")"
kill "$broker_pid"
wait "$broker_pid" || fail "the installed broker did not stop cleanly"
broker_pid=

# Removal leaves the conffile until purge; purge leaves nothing.
apt-get remove -y -qq shmfd libshmfd-dev libshmfd-c1 python3-shmfd gstreamer1.0-shmfd "libshmfd0.5" >"$work/apt.log" 2>&1 ||
  { cat "$work/apt.log"; fail "apt-get remove failed"; }
[[ ! -e /usr/bin/shmfd-broker && ! -e /usr/lib/$multiarch/libshmfd.so.0.5 ]] ||
  fail "files left after remove"
[[ -e /etc/shmfd/policy ]] || fail "remove took the conffile /etc/shmfd/policy (only purge may)"
# (dpkg, not apt: apt forgets local packages once they are removed.)
dpkg --purge shmfd libshmfd-dev libshmfd-c1 python3-shmfd gstreamer1.0-shmfd libshmfd0.5 >"$work/apt.log" 2>&1 ||
  { cat "$work/apt.log"; fail "dpkg --purge failed"; }
installed=0
[[ ! -e /etc/shmfd/policy ]] || fail "purge left /etc/shmfd/policy"
if dpkg-query -W -f='${Status}\n' shmfd libshmfd-dev libshmfd-c1 python3-shmfd gstreamer1.0-shmfd libshmfd0.5 2>/dev/null | grep -qv "not-installed"; then
  fail "packages still installed after purge"
fi
echo "deb_test: installed, ran, built against, removed and purged the 6 packages"
