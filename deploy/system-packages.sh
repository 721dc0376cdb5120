#!/usr/bin/env bash
# Installs the Debian/Ubuntu packages iotcloud needs, only those missing. Usage: system-packages.sh run|test
set -euo pipefail
purpose="${1:-run}"

need=()
have_cmd() { command -v "$1" >/dev/null 2>&1; }
# .venv's interpreter (deploy/python.sh), and its venv module: Debian ships ensurepip apart.
if py="$(bash "$(dirname "$0")/python.sh" 2>/dev/null)"; then
  "$py" -c 'import ensurepip, venv' 2>/dev/null || need+=("python$("$py" -c 'import sys; print("%d.%d" % sys.version_info[:2])')-venv")
else
  need+=(python3 python3-venv)
fi
have_cmd openssl || need+=(openssl)
have_cmd curl || need+=(curl)
[[ -x /usr/lib/rabbitmq/bin/rabbitmq-server ]] || need+=(rabbitmq-server)
have_cmd node || need+=(nodejs)  # builds the web app (make run)
have_cmd npm || need+=(npm)
have_cmd timeout || need+=(coreutils)  # bounds the web app's device emulators
if [[ "$purpose" == test ]]; then
  [[ -x /usr/bin/chromium ]] || need+=(chromium)  # tests/webapp (Playwright drives Debian's browser)
  have_cmd mosquitto || [[ -x /usr/sbin/mosquitto ]] || need+=(mosquitto)
  [[ -x /usr/lib/postgresql/15/bin/initdb || -n "$(ls /usr/lib/postgresql/*/bin/initdb 2>/dev/null)" ]] || need+=(postgresql)
  # firmware/: the POSIX device (libmosquitto, OpenSSL), its fuzzers (clang 14 + libFuzzer runtime,
  # llvm-14 for coverage), cppcheck, and the Cortex-M build tested in QEMU.
  have_cmd gcc || need+=(gcc)
  have_cmd make || need+=(make)
  [[ -f /usr/include/mosquitto.h ]] || need+=(libmosquitto-dev)
  [[ -f /usr/include/openssl/ssl.h ]] || need+=(libssl-dev)
  have_cmd clang-14 || need+=(clang-14)
  [[ -n "$(ls /usr/lib/llvm-14/lib/clang/*/lib/linux/libclang_rt.fuzzer-x86_64.a 2>/dev/null)" ]] || need+=(libclang-rt-14-dev)
  have_cmd llvm-cov-14 || need+=(llvm-14)
  have_cmd cppcheck || need+=(cppcheck)
  have_cmd arm-none-eabi-gcc || need+=(gcc-arm-none-eabi)
  [[ -f /usr/lib/arm-none-eabi/newlib/thumb/v7-m/nofp/libc_nano.a || -d /usr/lib/arm-none-eabi/newlib ]] || need+=(libnewlib-arm-none-eabi)
  have_cmd qemu-system-arm || need+=(qemu-system-arm)
fi

if ((${#need[@]})); then
  if [[ $(id -u) -ne 0 ]]; then
    echo "iotcloud needs these packages: ${need[*]} (run: sudo apt-get install -y ${need[*]})" >&2
    exit 1
  fi
  echo "==> installing ${need[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
