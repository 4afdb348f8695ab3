#!/usr/bin/env bash
# `pip install .` from the checkout, as the README says, into a fresh virtual environment
# (with Debian's numpy from the system site; --no-build-isolation: offline, Debian's setuptools
# and pybind11), then the installed package through a real broker, from outside the checkout.
#   tests/system/install/pip_test.sh SOURCE_DIR SHMFD_BROKER
set -euo pipefail
src=$(realpath "$1")
broker_bin=$2
name=pip_test
# shellcheck source=tests/system/install/common.sh
source "$src/tests/system/install/common.sh"

/usr/bin/python3 -m venv --system-site-packages "$work/venv"
"$work/venv/bin/pip" install --no-build-isolation --no-index "$src" >"$work/pip.log" 2>&1 ||
  { tail -40 "$work/pip.log"; fail "pip install failed"; }
site=$("$work/venv/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["platlib"])')
ls "$site"/shmfd/_shmfd*.so "$site"/shmfd/libshmfd.so.* "$site"/shmfd/__init__.pyi >/dev/null ||
  fail "the wheel lacks the extension, its library or the type stubs: $(ls "$site/shmfd")"

sock=$work/broker.sock
start_broker "$broker_bin" "$sock"
out=$(cd "$work" && "$work/venv/bin/python" "$src/tests/system/install/app/py_app.py" "$sock" pip 100) ||
  fail "the pip-installed package failed: $out"
[[ $out == *"100 frames, all intact, shmfd from $site/shmfd/"* ]] || fail "py_app: $out"
"$work/venv/bin/pip" uninstall -y shmfd >/dev/null || fail "pip uninstall failed"
[[ ! -e $site/shmfd ]] || fail "pip uninstall left $site/shmfd"
echo "pip_test: pip install . built, installed, ran and uninstalled shmfd"
