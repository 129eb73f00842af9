#!/usr/bin/env bash
# A newcomer's first answer: a fresh clone, an empty model store and no pip cache, `make serve`,
# then POST /censor until it answers 200. Prints the seconds from `make serve` to that answer.
#
#   benchmarks/newcomer.sh [REPOSITORY] [PORT]      # default: this repository, port 3300
set -euo pipefail
repo=${1:-$(cd "$(dirname "$0")/.." && pwd)}
port=${2:-3300}
work=$(mktemp -d /tmp/gore-newcomer-XXXX)
git clone -q "$repo" "$work/clone"
cd "$work/clone"
export BENTOML_HOME=$work/bentoml PIP_NO_CACHE_DIR=1
log=$work/serve.log
start=$(date +%s.%N)
elapsed() { echo "$(date +%s.%N) - $start" | bc; }
# Each line of `make serve` with the seconds since the start: where the time goes.
(setsid make serve PORT="$port" 2>&1 | while IFS= read -r line; do printf '%6.1f %s\n' "$(elapsed)" "$line"; done >"$log") &
trap 'pkill -f "bentoml serve service:Censor --host 127.0.0.1 -p $port" || true' EXIT
until grep -q "FIRST START" "$log" 2>/dev/null; do sleep 1; done
token=$(grep -a -o "gc_[A-Za-z0-9_-]\{40,\}" "$log" | head -1)
until [ "$(curl -s -m 30 -o "$work/answer.json" -w "%{http_code}" -H "Authorization: Bearer $token" \
  -F image=@docs/demo/positive.png "localhost:$port/censor")" = "200" ]; do sleep 1; done
echo "first answer after $(elapsed) s (log: $log)"
head -c 300 "$work/answer.json"
echo
