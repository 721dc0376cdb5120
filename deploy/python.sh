#!/usr/bin/env bash
# Prints the real path of the Python (3.11, which requirements.lock is for) that `make` builds .venv on.
#
# IOTCLOUD_PYTHON, when set, is taken as it is. Otherwise the distribution's /usr/bin/python3.11 comes
# before the first python3 on PATH: Debian and Ubuntu build it with profile-guided and link-time
# optimisation into a static interpreter, while pyenv and plain source builds (./configure
# --enable-shared, the usual way) have neither, and the same Python code then costs a fifth to a third
# more CPU (docs/benchmarks.md, issue 7 step 110). The official python images the Dockerfile uses
# are built optimised already.
set -euo pipefail

ok() { "$1" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; }
real() { "$1" -c 'import os, sys; print(os.path.realpath(sys.executable))'; }

if [[ -n "${IOTCLOUD_PYTHON:-}" ]]; then
  ok "$IOTCLOUD_PYTHON" || { echo "IOTCLOUD_PYTHON=$IOTCLOUD_PYTHON is not Python 3.11 or newer" >&2; exit 1; }
  real "$IOTCLOUD_PYTHON"
  exit 0
fi
for candidate in /usr/bin/python3.11 "$(command -v python3.11 || true)" "$(command -v python3 || true)"; do
  if [[ -n "$candidate" && -x "$candidate" ]] && ok "$candidate"; then
    real "$candidate"
    exit 0
  fi
done
echo "no Python 3.11 or newer found (install python3.11, or set IOTCLOUD_PYTHON)" >&2
exit 1
