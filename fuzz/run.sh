#!/usr/bin/env bash
# Runs fuzz targets one after another for a bounded time each.
# Usage: fuzz/run.sh [seconds] [target...]   (default 180 s, every target)
# Logs go to fuzz/logs/<target>.log; crashes to fuzz/artifacts/<target>/.
set -euo pipefail
cd "$(dirname "$0")"
secs=${1:-180}
shift || true
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
    mapfile -t targets < <(cargo fuzz list)
fi
declare -A max_len=(
    [audit_log]=16384 [datasets_readers]=8192 [datasets_csv_schema]=8192
)
mkdir -p logs
for t in "${targets[@]}"; do
    mkdir -p "corpus/$t"
    RUSTC_BOOTSTRAP=1 cargo fuzz run "$t" "corpus/$t" "seeds/$t" -- \
        -max_total_time="$secs" -rss_limit_mb=4096 -timeout=10 \
        -max_len="${max_len[$t]:-4096}" -print_final_stats=1 \
        >"logs/$t.log" 2>&1 || echo "$t: exit $? (see logs/$t.log)"
    grep -E '^#[0-9]+ +DONE|stat::number_of_executed_units|stat::average_exec_per_sec' "logs/$t.log" || true
done
