#!/usr/bin/env bash
# `pip install .` from the checkout, as the README says, into a fresh virtual environment
# (with Debian's numpy from the system site; --no-build-isolation: offline, Debian's setuptools
# and pybind11), then the installed package through a real broker, from outside the checkout.
#   tests/system/install/pip_test.sh SOURCE_DIR SHMFD_BROKER
set -euo pipefail
src=$(realpath "$1")
broker_bin=$2
work=$(mktemp -d /tmp/shmfd-pip-XXXXXX)
broker_pid=
cleanup() {
  [[ -n $broker_pid ]] && kill "$broker_pid" 2>/dev/null && wait "$broker_pid" 2>/dev/null
  rm -rf "$work"
}
trap cleanup EXIT
fail() { echo "pip_test: $*" >&2; exit 1; }

/usr/bin/python3 -m venv --system-site-packages "$work/venv"
"$work/venv/bin/pip" install --no-build-isolation --no-index "$src" >"$work/pip.log" 2>&1 ||
  { tail -40 "$work/pip.log"; fail "pip install failed"; }
site=$("$work/venv/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["platlib"])')
ls "$site"/shmfd/_shmfd*.so "$site"/shmfd/libshmfd.so.* "$site"/shmfd/__init__.pyi >/dev/null ||
  fail "the wheel lacks the extension, its library or the type stubs: $(ls "$site/shmfd")"

sock=$work/broker.sock
"$broker_bin" --socket "$sock" --log-level warn &
broker_pid=$!
for _ in $(seq 200); do [[ -S $sock ]] && break; sleep 0.02; done
out=$(cd "$work" && "$work/venv/bin/python" "$src/tests/system/install/app/py_app.py" "$sock" pip 100) ||
  fail "the pip-installed package failed: $out"
[[ $out == *"100 frames, all intact, shmfd from $site/shmfd/"* ]] || fail "py_app: $out"
"$work/venv/bin/pip" uninstall -y shmfd >/dev/null || fail "pip uninstall failed"
[[ ! -e $site/shmfd ]] || fail "pip uninstall left $site/shmfd"
echo "pip_test: pip install . built, installed, ran and uninstalled shmfd"
