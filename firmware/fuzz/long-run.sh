#!/usr/bin/env bash
# The long fuzz run of docs/fuzzing.md: RUNS executions of each target (one job, low priority),
# then line coverage of the core over the corpus that run grew (clang source-based coverage).
# Usage: fuzz/long-run.sh BUILD_DIR RUNS
set -euo pipefail
build=${1:-build}
runs=${2:-10000000}
work=$build/fuzz-long
rm -rf "$work" && mkdir -p "$work/json" "$work/request"
for target in json request; do
  max_len=$([[ $target == json ]] && echo 4096 || echo 1024)
  echo "== fuzz-$target: $runs executions =="
  start=$(date +%s)
  nice -n 19 "$build/fuzz-$target" -runs="$runs" -max_len="$max_len" -print_final_stats=1 \
    "$work/$target" "fuzz/corpus/$target" > "$work/$target.log" 2>&1 || { tail -40 "$work/$target.log"; exit 1; }
  end=$(date +%s)
  grep -E '^#[0-9]+.*DONE|^Done|stat::(number_of_executed_units|average_exec_per_sec|new_units_added|peak_rss_mb)' "$work/$target.log"
  echo "wall: $((end - start)) s; crashes: $(ls "$work"/crash-* "$work"/leak-* "$work"/timeout-* 2>/dev/null | wc -l);" \
       "sanitizer reports: $(grep -c -E 'ERROR: (Address|Undefined|Leak)Sanitizer|runtime error:' "$work/$target.log" || true)"
done

# Coverage: the same targets built with -fprofile-instr-generate, run once over every corpus input.
cc=$(command -v clang-14 || command -v clang)
profdata=$(command -v llvm-profdata-14 || command -v llvm-profdata)
cov=$(command -v llvm-cov-14 || command -v llvm-cov)
flags="-std=c99 -O1 -fsanitize=fuzzer -fprofile-instr-generate -fcoverage-mapping -Icore -Itests"
$cc $flags fuzz/fuzz_json.c core/iotc_json_read.c core/iotc_json_write.c -o "$work/cov-json"
$cc $flags fuzz/fuzz_request.c tests/fake_hal.c core/iotc_json_read.c core/iotc_json_write.c core/iotc_topic.c core/iotc_device.c -o "$work/cov-request"
for target in json request; do
  LLVM_PROFILE_FILE="$work/$target.profraw" "$work/cov-$target" -runs=0 "$work/$target" "fuzz/corpus/$target" >/dev/null 2>&1
done
$profdata merge -sparse "$work"/*.profraw -o "$work/all.profdata"
echo "== line/branch coverage of the core over the grown corpora =="
$cov report "$work/cov-request" -object "$work/cov-json" -instr-profile="$work/all.profdata" \
  core/iotc_json_read.c core/iotc_json_write.c core/iotc_topic.c core/iotc_device.c
