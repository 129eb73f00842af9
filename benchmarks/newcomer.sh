#!/usr/bin/env bash
# A newcomer's first answer, RUNS times (default 3): a fresh clone, an empty model store, no pip
# cache (PIP_NO_CACHE_DIR=1), `make serve`, then POST /censor until it answers 200. Prints each
# run's phases, then the minimum, median and maximum of each:
#   install      `make serve` starting, to its first command after the install (`models ensure`)
#   models       the demo models prepared (from the repository, or trained), to `bentoml serve`
#   start-up     `bentoml serve` starting, to the first answer
#   first answer everything, from `make serve` to the first 200
#
#   benchmarks/newcomer.sh [REPOSITORY] [RUNS] [PORT]     # default: this repository, 3 runs, port 3300
set -euo pipefail
repo=${1:-$(cd "$(dirname "$0")/.." && pwd)}
runs=${2:-3}
port=${3:-3300}
results=$(mktemp /tmp/gore-newcomer-results-XXXX)

one_run() {
  local work start log
  work=$(mktemp -d /tmp/gore-newcomer-XXXX)
  git clone -q "$repo" "$work/clone"
  cd "$work/clone"
  export BENTOML_HOME=$work/bentoml PIP_NO_CACHE_DIR=1
  log=$work/serve.log
  start=$(date +%s.%N)
  elapsed() { echo "$(date +%s.%N) - $start" | bc; }
  # Each line of `make serve` with the seconds since the start: where the time goes.
  (setsid make serve PORT="$port" 2>&1 | while IFS= read -r line; do printf '%6.1f %s\n' "$(elapsed)" "$line"; done >"$log") &
  until grep -q "FIRST START" "$log" 2>/dev/null; do sleep 1; done
  token=$(grep -a -o "gc_[A-Za-z0-9_-]\{40,\}" "$log" | head -1)
  until [ "$(curl -s -m 30 -o "$work/answer.json" -w "%{http_code}" -H "Authorization: Bearer $token" \
    -F image=@docs/demo/positive.png "localhost:$port/censor")" = "200" ]; do sleep 0.5; done
  local total ensure serve
  total=$(elapsed)
  pkill -f "bentoml serve service:Censor --host 127.0.0.1 -p $port" || true
  sleep 3
  ensure=$(grep -m1 "gore-censor models ensure" "$log" | awk '{print $1}')
  serve=$(grep -m1 "bentoml serve service:Censor" "$log" | awk '{print $1}')
  printf '%s %s %s %s\n' "$ensure" "$(echo "$serve - $ensure" | bc)" "$(echo "$total - $serve" | bc)" "$total" >>"$results"
  echo "run: install ${ensure} s, models $(echo "$serve - $ensure" | bc) s, start-up $(echo "$total - $serve" | bc) s, first answer ${total} s (log: $log)"
  grep -o '"demo":[a-z]*\|"notice":"[^"]*"' "$work/answer.json" | head -2
  cd - >/dev/null
}

for _ in $(seq "$runs"); do one_run; done
python3 - "$results" <<'EOF'
import statistics, sys
rows = [list(map(float, line.split())) for line in open(sys.argv[1]) if line.strip()]
print(f"\n{len(rows)} runs | min | median | max")
print("--- | --- | --- | ---")
for i, name in enumerate(("install", "models", "start-up", "first answer")):
    values = [row[i] for row in rows]
    print(f"{name} | {min(values):.0f} s | {statistics.median(values):.0f} s | {max(values):.0f} s")
EOF
