#!/usr/bin/env bash
# tests/fuzz/run.sh [SECONDS]: builds each libFuzzer target with clang
# (ASan + UBSan) and runs it for SECONDS (default 60) from its seed corpus in
# tests/fuzz/corpus/<target>/ (new inputs go to a temporary copy, the repo's
# corpus is not modified). Exits non-zero on a crash, hang or sanitizer report.
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=$(pwd)
SECONDS_EACH=${1:-${FUZZ_SECONDS:-60}}
OUT=$(mktemp -d /tmp/pgcourier-fuzz.XXXXXX)
trap 'rm -rf "$OUT"' EXIT
CXX=${FUZZ_CXX:-clang++}
FLAGS=(-std=c++20 -O1 -g -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined -I"$ROOT/daemon")

declare -A SOURCES=(
  [fuzz_policies]="daemon/config/policies.cpp daemon/config/policy_endpoint.cpp daemon/config/settings.cpp daemon/config/duration.cpp daemon/config/yaml_support.cpp daemon/netguard/ip_address.cpp daemon/netguard/address_policy.cpp daemon/netguard/egress.cpp daemon/base/file.cpp daemon/model/delivery.cpp"
  [fuzz_netguard]="daemon/netguard/ip_address.cpp daemon/netguard/address_policy.cpp"
  [fuzz_retry_after]="daemon/retry/retry_after.cpp"
  [fuzz_secrets]="daemon/signing/secret_box.cpp daemon/signing/webhook_signature.cpp daemon/base/file.cpp"
)
declare -A LIBS=([fuzz_policies]="-lyaml-cpp" [fuzz_netguard]="" [fuzz_retry_after]="" [fuzz_secrets]="-lcrypto")

status=0
total_runs=0
for target in fuzz_policies fuzz_netguard fuzz_retry_after fuzz_secrets; do
  echo "== $target: building"
  # shellcheck disable=SC2086
  "$CXX" "${FLAGS[@]}" "tests/fuzz/$target.cpp" ${SOURCES[$target]} ${LIBS[$target]} -o "$OUT/$target"
  mkdir -p "$OUT/corpus-$target"
  cp -r "tests/fuzz/corpus/$target/." "$OUT/corpus-$target/" 2>/dev/null || true
  echo "== $target: fuzzing for ${SECONDS_EACH}s"
  if ! "$OUT/$target" "$OUT/corpus-$target" -max_total_time="$SECONDS_EACH" -timeout=10 -rss_limit_mb=2048 \
      -max_len=4096 -print_final_stats=1 -artifact_prefix="$OUT/$target-" > "$OUT/$target.log" 2>&1; then
    echo "FAILED: $target"; tail -40 "$OUT/$target.log"
    for a in "$OUT/$target"-*; do [[ -f "$a" ]] && { echo "reproducer: $a"; xxd "$a" | head -20; }; done
    status=1
  fi
  runs=$(grep -E '^stat::number_of_executed_units' "$OUT/$target.log" | awk '{print $2}')
  echo "   $target: ${runs:-0} executions"
  total_runs=$((total_runs + ${runs:-0}))
done
echo "fuzzing: $total_runs executions in total"
exit $status
