#!/usr/bin/env bash
# Reproduce the README's simulation results: each built-in's default run and
# its frontier (cost vs oracle at 99 / 99.5 / 99.9 % SLO attainment, found by
# sweeping its main parameter) on the multi-day traces. Prints Markdown rows.
# Usage: examples/sim/frontier.sh [path/to/wasmscale]   (about 5 minutes)
set -euo pipefail
cd "$(dirname "$0")/../.."
bin=${1:-target/debug/wasmscale}
traces=(
  examples/traces/alibaba_servegen_m_small_10min.csv
  examples/traces/alibaba_servegen_m_large_10min.csv
  ../shared/traces/nasa_http_1995_per_minute.csv
)
declare -A sweep=(
  [builtin:target-tracking]="metrics.0.target.value=0.3:0.72:0.06"
  [builtin:step-scaling]="alarms.0.threshold=0.3:0.8:0.1"
  [builtin:predictive]="target_utilization=0.4:0.85:0.05"
)
out=$(mktemp -d)
for t in "${traces[@]}"; do
  name=$(basename "$t" .csv)
  "$bin" simulate --trace "$t" --json > "$out/$name.default.json"
  for p in builtin:target-tracking builtin:step-scaling builtin:predictive; do
    "$bin" simulate --trace "$t" --policy "$p" --sweep "${sweep[$p]}" --json > "$out/$name.${p#builtin:}.json"
  done
done
python3 - "$out" <<'PY'
import json, sys, glob, os
out = sys.argv[1]
print("| trace | policy | default: SLO % | viol. min | cost vs oracle | frontier 99 % | 99.5 % | 99.9 % |")
print("|---|---|---:|---:|---:|---:|---:|---:|")
for default in sorted(glob.glob(os.path.join(out, "*.default.json"))):
    name = os.path.basename(default)[: -len(".default.json")]
    d = json.load(open(default))
    for run in d["policies"]:
        policy = run["label"].removeprefix("builtin:")
        s = run["score"]
        sweep = json.load(open(os.path.join(out, f"{name}.{policy}.json")))
        cells = []
        for f in sweep["frontier"]:
            cells.append(f"{f['cost_vs_oracle']:.2f}x" if f["cost_vs_oracle"] is not None else "not reached")
        print(f"| {name} | {policy} | {s['slo_attainment_pct']:.2f} | {s['violation_minutes']} | "
              f"{s['cost_vs_oracle']:.2f}x | " + " | ".join(cells) + " |")
PY
