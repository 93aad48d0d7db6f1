#!/usr/bin/env bash
# Runs Tally's libFuzzer targets (fuzz/targets) with cargo-fuzz on the nightly toolchain, each
# for a time budget, from the seed corpus and every earlier crash, and prints a table of
# executions per target. Exits non-zero on any crash, leak, timeout or out-of-memory, naming the
# input to keep as a regression (fuzz/regressions/<target>/).
#
#   scripts/fuzz.sh                       every target for 60 s, one at a time
#   scripts/fuzz.sh --seconds 1200 --jobs 2 apply snapshot
#   scripts/fuzz.sh --list
#
# New corpus entries and crash inputs go under $FUZZ_WORK (default tally-data/fuzz), never into
# the repository: add an input to fuzz/corpus or fuzz/regressions by hand when it earns a place.
set -euo pipefail
cd "$(dirname "$0")/.."

usage() {
  sed -n '2,13p' "$0" | sed 's/^# \{0,1\}//'
}

seconds=60
jobs=1
targets=()
while [ $# -gt 0 ]; do
  case "$1" in
    --seconds) seconds="$2"; shift 2 ;;
    --jobs) jobs="$2"; shift 2 ;;
    --list) ls fuzz/targets/fuzz_targets | sed 's/\.rs$//'; exit 0 ;;
    -h|--help) usage; exit 0 ;;
    -*) echo "error: unknown option $1 (see --help)" >&2; exit 2 ;;
    *) targets+=("$1"); shift ;;
  esac
done
if ! [[ "$seconds" =~ ^[1-9][0-9]*$ && "$jobs" =~ ^[1-9][0-9]*$ ]]; then
  echo "error: --seconds and --jobs take positive whole numbers" >&2
  exit 2
fi
if [ ${#targets[@]} -eq 0 ]; then
  mapfile -t targets < <(ls fuzz/targets/fuzz_targets | sed 's/\.rs$//')
fi
for target in "${targets[@]}"; do
  if [ ! -f "fuzz/targets/fuzz_targets/$target.rs" ]; then
    echo "error: no fuzz target $target (scripts/fuzz.sh --list)" >&2
    exit 2
  fi
done

if ! rustup toolchain list 2>/dev/null | grep -q '^nightly'; then
  echo "error: cargo-fuzz needs a nightly toolchain: rustup toolchain install nightly" >&2
  exit 1
fi
if ! cargo +nightly fuzz --version >/dev/null 2>&1; then
  echo "installing cargo-fuzz ..." >&2
  cargo install cargo-fuzz --locked --version 0.13.2 >&2
fi

# Its own target dir: the fuzz build's instrumentation flags must never touch the main build.
target_dir="${CARGO_FUZZ_TARGET_DIR:-$HOME/.cache/tally-fuzz-target}"
work="${FUZZ_WORK:-tally-data/fuzz}"
# Debug assertions on, so integer overflow is a crash too; the address sanitizer catches
# memory errors in the C code (ring) and any unsafe Rust under the parsers.
fuzz=(cargo +nightly fuzz)
build_flags=(--fuzz-dir fuzz/targets --target-dir "$target_dir" --debug-assertions)

echo "building ${#targets[@]} fuzz target(s) ..." >&2
for target in "${targets[@]}"; do
  "${fuzz[@]}" build "${build_flags[@]}" "$target"
done

run_one() {
  local target="$1"
  local log="$work/logs/$target.log"
  mkdir -p "$work/corpus/$target" "$work/artifacts/$target" "$work/logs"
  local corpora=("$work/corpus/$target" "fuzz/corpus/$target")
  [ -d "fuzz/regressions/$target" ] && corpora+=("fuzz/regressions/$target")
  # -timeout: an input that takes 10 s is a hang; -rss_limit_mb: one that needs 2 GiB is a leak.
  if "${fuzz[@]}" run "${build_flags[@]}" "$target" "${corpora[@]}" -- \
      -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 \
      -artifact_prefix="$work/artifacts/$target/" -print_final_stats=1 >"$log" 2>&1; then
    echo ok >"$work/logs/$target.status"
  else
    echo failed >"$work/logs/$target.status"
  fi
}

echo "running each target for $seconds s, $jobs at a time; logs in $work/logs" >&2
running=0
for target in "${targets[@]}"; do
  run_one "$target" &
  running=$((running + 1))
  if [ "$running" -ge "$jobs" ]; then
    wait -n || true
    running=$((running - 1))
  fi
done
wait || true

failed=0
printf '%-16s %8s %14s %10s %8s %s\n' target seconds executions exec/s corpus result
for target in "${targets[@]}"; do
  log="$work/logs/$target.log"
  runs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | tail -n 1 | awk '{print $2}')
  rate=$(grep -o 'stat::average_exec_per_sec: *[0-9]*' "$log" | tail -n 1 | awk '{print $2}')
  corpus=$(ls "$work/corpus/$target" | wc -l)
  status=$(cat "$work/logs/$target.status" 2>/dev/null || echo failed)
  printf '%-16s %8s %14s %10s %8s %s\n' "$target" "$seconds" "${runs:-?}" "${rate:-?}" "$corpus" "$status"
  if [ "$status" != ok ]; then
    failed=1
    echo "  $target failed; the end of its log ($log):" >&2
    tail -n 25 "$log" | sed 's/^/    /' >&2
    for artifact in "$work/artifacts/$target"/*; do
      [ -e "$artifact" ] || continue
      echo "  input: $artifact (keep it in fuzz/regressions/$target/ once fixed)" >&2
    done
  fi
done
exit "$failed"
