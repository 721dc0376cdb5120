#!/usr/bin/env bash
# make test's pytest part. The suite mostly waits (broker nodes booting, processes restarting, devices
# reconnecting): on 2 cores it left 60 % of the CPU idle when run one test at a time, so it runs on
# TEST_WORKERS workers (default 2), each folder that shares a session-wide platform, broker node or
# browser on one worker (tests/conftest.py: worker_group). Tests marked `serial` bound a wall-clock
# time or a score, or burn every core on purpose: they run afterwards, alone on the machine.
# Arguments go to both runs (e.g. a path, -k, -x).
set -uo pipefail
python="${PYTHON:-.venv/bin/python}"
workers="${TEST_WORKERS:-2}"
limit="${TEST_TIME_LIMIT:-45m}"

echo "==> the suite on $workers workers (tests marked serial afterwards)"
# A worker that dies while a process it started still holds its pipe is never noticed by xdist (seen
# once: a segfault, with broker nodes left running); the limit turns such a hang into a failure.
timeout --kill-after=60 "$limit" "$python" -m pytest -q -n "$workers" --dist loadgroup -m "not long and not serial" "$@"
parallel=$?
(( parallel == 124 )) && echo "make test: the parallel part did not end within $limit (TEST_TIME_LIMIT)" >&2
echo "==> tests marked serial (a time, a score or CPU burners), one at a time"
"$python" -m pytest -q -m "serial and not long" "$@"
serial=$?
[[ $serial -eq 5 ]] && serial=0   # none selected (arguments that name only other tests)
[[ $parallel -eq 5 ]] && parallel=0
if (( parallel || serial )); then
  echo "make test: pytest failed (parallel part: exit $parallel, serial part: exit $serial)" >&2
  exit 1
fi
