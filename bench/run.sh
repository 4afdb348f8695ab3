#!/usr/bin/env bash
# make bench: installs the peers from Debian, builds, runs every scenario of the suite for
# shmfd, its baselines and each peer side by side, and writes bench/results/results.md,
# results.json and chart.svg. A peer that cannot be installed or built is reported as not
# measured, with the reason, never left out silently.
#   bench/run.sh [--quick]        (--quick: a fifth of the iterations, for a smoke test)
set -uo pipefail
cd "$(dirname "$0")/.."
build=${BUILD:-build}
jobs=${JOBS:-2}
results=${RESULTS:-bench/results}
quick=()
[[ ${1:-} == --quick ]] && quick=(--quick)

tools/install-deps.sh || exit 1
skipped=()
want_peer() {  # name, packages...: installs them, or records why the peer is not measured
  local name=$1
  shift
  if ! tools/install-deps.sh "$@"; then
    skipped+=(--skipped "$name" "could not install the Debian packages: $*")
    echo "bench: $name will not be measured: could not install $*" >&2
    return 1
  fi
}
want_peer "iceoryx 2.0.3" iceoryx libiceoryx-posh-dev
want_peer "ZeroMQ" libzmq3-dev
want_peer "GStreamer shm" gstreamer1.0-tools gstreamer1.0-plugins-base gstreamer1.0-plugins-bad \
  libgstreamer1.0-dev libgstreamer-plugins-base1.0-dev
tools/install-deps.sh gnuplot-nox || echo "bench: gnuplot-nox could not be installed: no chart" >&2

# Configure again so CMake finds the peers installed just now.
cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null || exit 1
targets=(shmfd-bench-suite shmfd-bench-report shmfd-broker)
grep -q "shmfd-dds-bridge" "$build/build.ninja" && targets+=(shmfd-dds-bridge shmfd_python)
for peer in iceoryx zmq gst gst-pipelines; do
  grep -q "shmfd-bench-$peer" "$build/build.ninja" && targets+=("shmfd-bench-$peer")
done
cmake --build "$build" -j "$jobs" --target "${targets[@]}" || exit 1

raw=$(mktemp -d /tmp/shmfd-bench-raw-XXXXXX)
trap 'rm -rf "$raw"' EXIT
status=0
"$build/bin/shmfd-bench-suite" "${quick[@]}" --json "$raw/shmfd.json" || status=1
# gst-pipelines: S7, shmfdsink/shmfdsrc against shmsink/shmsrc in the same pipelines.
for peer in iceoryx zmq gst gst-pipelines; do
  bin=$build/bin/shmfd-bench-$peer
  if [[ ! -x $bin ]]; then
    skipped+=(--skipped "$peer" "not built: its development package was not found by CMake")
    echo "bench: $peer not built, not measured" >&2
    continue
  fi
  if ! "$bin" "${quick[@]}" --json "$raw/$peer.json"; then
    skipped+=(--skipped "$peer" "its benchmark failed (see the output of make bench)")
    status=1
  fi
done

mkdir -p "$results"
cpu=$(lscpu | sed -n 's/^Model name: *//p' | head -n1)
mem=$(awk '/MemTotal/ {printf "%.0f GiB", $2 / 1048576}' /proc/meminfo)
machine="$(nproc) × $cpu, $mem, Linux $(uname -r), $(. /etc/os-release && echo "$PRETTY_NAME")"
"$build/bin/shmfd-bench-report" --out "$results" --machine "$machine" \
  --command "make bench" "${skipped[@]}" "$raw/shmfd.json" \
  $(ls "$raw"/*.json | grep -v '/shmfd.json$') || status=1
# The DDS bridge beside the local path (Python; needs the package and the bridge built).
if [[ -x $build/bin/shmfd-dds-bridge && -d $build/python/shmfd ]]; then
  {
    echo
    echo "## DDS bridge: frames through two shmfd-dds-bridges over loopback DDS"
    echo
    PYTHONPATH=$build/python /usr/bin/python3 bench/suite/dds_bridge.py "$build"
  } >>"$results/results.md" || status=1
else
  echo "bench: the DDS bridge or the Python package is not built: no DDS rows" >&2
fi
if command -v gnuplot >/dev/null; then
  (cd "$results" && gnuplot chart.gp) || status=1
fi
echo "bench: wrote $results/results.md, $results/results.json and $results/chart.svg"
exit $status
