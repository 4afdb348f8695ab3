#!/usr/bin/env bash
# libshmfd-c's ABI: its SONAME is libshmfd-c.so.1, it exports exactly the functions shmfd.h
# declares (in version node SHMFD_C_1.0, and those added since in SHMFD_C_1.1 to SHMFD_C_1.3), and no other
# symbol: no C++ and nothing of the libraries it links.
#   libshmfd/c/tests/exports_test.sh LIBSHMFD_C SHMFD_H
set -euo pipefail
lib=$1
header=$2
fail() { echo "exports_test: $*" >&2; exit 1; }

soname=$(objdump -p "$lib" | awk '/SONAME/ {print $2}')
[[ $soname == libshmfd-c.so.1 ]] || fail "SONAME is '$soname', not libshmfd-c.so.1"

exported=$(nm -D --defined-only "$lib" | awk '{print $3}' | sort)
strange=$(grep -v -E '^(shmfd_[a-z0-9_]+@@SHMFD_C_1\.[0123]|SHMFD_C_1\.[0123])$' <<<"$exported" || true)
# Added in 1.1, so exported in that node (a program built against 1.1 asks for it there).
[[ $(grep '^shmfd_event_dropped@@' <<<"$exported") == shmfd_event_dropped@@SHMFD_C_1.1 ]] ||
  fail "shmfd_event_dropped is not in version node SHMFD_C_1.1"
for f in shmfd_producer_advertise_options shmfd_producer_publish_slot_meta \
         shmfd_producer_publish_buffer_meta shmfd_frame_get_meta; do
  [[ $(grep "^$f@@" <<<"$exported") == "$f@@SHMFD_C_1.2" ]] ||
    fail "$f is not in version node SHMFD_C_1.2"
done
# Services, added in 1.3.
for f in shmfd_last_call_error shmfd_buffer_create shmfd_caller_connect shmfd_caller_call \
         shmfd_server_connect shmfd_server_respond shmfd_request_free shmfd_response_free \
         shmfd_restrict_syscalls shmfd_allowed_syscalls shmfd_caller_create_pool \
         shmfd_caller_call_slot shmfd_server_acquire shmfd_server_respond_slot; do
  [[ $(grep "^$f@@" <<<"$exported") == "$f@@SHMFD_C_1.3" ]] ||
    fail "$f is not in version node SHMFD_C_1.3"
done
[[ -z $strange ]] || fail "exports symbols outside the C API: $strange"

# Every function the header declares is exported, and nothing it does not declare.
declared=$(grep -o -E '\bshmfd_[a-z0-9_]+\(' "$header" | tr -d '(' | sort -u)
defined=$(sed -n 's/@@SHMFD_C_1\.[0123]$//p' <<<"$exported" | sort -u)
missing=$(comm -23 <(echo "$declared") <(echo "$defined"))
extra=$(comm -13 <(echo "$declared") <(echo "$defined"))
[[ -z $missing ]] || fail "declared in shmfd.h but not exported: $missing"
[[ -z $extra ]] || fail "exported but not declared in shmfd.h: $extra"
echo "exports_test: $(wc -l <<<"$defined") functions, SONAME $soname"
