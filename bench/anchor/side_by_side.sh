#!/usr/bin/env bash
# Performance against the anchor, in one run on one machine: the project (`make run`, SQLite) and
# the HAPI FHIR 8.8.0 JPA server (bench/anchor/, H2), one after the other, under the same wrk load
# on the same CarePlan bodies: GET CarePlan/{id} and POST CarePlan, $CONN connections, $DUR each
# after a 10 s warm-up, and gRPC GetCarePlan and CreateCarePlan against careplan's health-check
# floor (bench/anchor/grpc_floor.py). Prints the ratio table (bench/anchor/ratios.py); raw wrk output in $OUT.
# Run from the project root: `make bench-anchor` (about 7 minutes; ports 8080, 5005x, 9092 and
# 8090 must be free). Env: OUT (/tmp/iopcare-side-by-side), DUR (30s), CONN (16), WARM (10s).
set -u
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
cd "$ROOT"
OUT=${OUT:-/tmp/iopcare-side-by-side}; DUR=${DUR:-30s}; CONN=${CONN:-16}; WARM=${WARM:-10s}
PY=${PY:-.venv/bin/python}
mkdir -p "$OUT"; rm -f "$OUT"/*.txt
command -v wrk > /dev/null || { echo "wrk is needed (apt-get install wrk)"; exit 1; }
PORTS=':(8080|50051|50052|50053|9092) '
load() {  # name url script [body]
  BODY=${4:-} wrk -t2 -c"$CONN" -d"$WARM" -s "$HERE/wrk/$3.lua" "$2" > /dev/null 2>&1
  BODY=${4:-} wrk -t2 -c"$CONN" -d"$DUR" --latency -s "$HERE/wrk/$3.lua" "$2" > "$OUT/$1.txt" 2>&1
  grep -E 'Requests/sec|^ +50%|^ +99%|Non-2xx|Socket errors' "$OUT/$1.txt" | tr -s ' ' | tr '\n' ' '; echo " <- $1"
}
ss -ltn | grep -qE "$PORTS" && { echo "ports 8080/5005x/9092 busy: stop the running system first"; exit 1; }
for _ in $(seq 1 70); do ss -Htan state time-wait | awk '{print $4}' | grep -qE ':(8080|50051|50052|50053|9092)$' || break; sleep 1; done
# The project's data (databases, Kafka log, dev keys) in a fresh folder of its own: the demo is
# loaded anew and a developer's var/ is left alone. `iopcare token` reads the keys from there too.
export IOPCARE_DATA_DIR="$OUT/var"; rm -rf "$IOPCARE_DATA_DIR"
setsid bash -c 'echo $$ > "$0"; exec make run' "$OUT/run.pid" > "$OUT/run.log" 2>&1 < /dev/null &
sleep 1; RUN=$(cat "$OUT/run.pid")
for _ in $(seq 1 900); do
  curl -sf -o /dev/null http://127.0.0.1:8080/fhir/metadata && break
  kill -0 "$RUN" 2>/dev/null || { echo "make run stopped; see $OUT/run.log"; tail -5 "$OUT/run.log"; exit 1; }
  sleep 1
done
sleep 20   # let the demo finish
export TOKEN; TOKEN=$(.venv/bin/iopcare token --system --scope 'system/*.cruds' --lifetime 3600)
ADMIN=$(.venv/bin/iopcare token --role admin --practitioner demo-admin --scope 'user/*.cruds' --lifetime 3600)
IDS=$($PY "$HERE/setup_bodies.py" http://127.0.0.1:8080/fhir "$TOKEN" iopcare "$OUT" "$ADMIN")
PLAN=$(echo "$IDS" | $PY -c 'import json,sys; print(json.load(sys.stdin)["plan"])')
load iopcare-get "http://127.0.0.1:8080/fhir/CarePlan/$PLAN" get
load iopcare-post http://127.0.0.1:8080/fhir/CarePlan post "$OUT/careplan-iopcare.json"
# gRPC on careplan directly, against its health-check floor (issue 16's other targets)
SECOND=$(.venv/bin/iopcare token --system --subject system:bench-2 --scope 'system/*.cruds' --lifetime 3600)
$PY "$HERE/grpc_floor.py" 127.0.0.1:50051 "$TOKEN,$SECOND" "$PLAN" "$OUT/careplan-iopcare.json" 15 | tee "$OUT/grpc.txt"
T0=$(date +%s.%N)
kill -INT -- "-$RUN"; for _ in $(seq 1 600); do kill -0 "$RUN" 2>/dev/null || break; sleep 0.1; done
echo "make run stopped $(echo "$(date +%s.%N) - $T0" | bc) s after Ctrl-C (SIGINT)" | tee "$OUT/stop.txt"
kill -KILL -- "-$RUN" 2>/dev/null
for _ in $(seq 1 30); do ss -ltn | grep -qE "$PORTS" || break; sleep 1; done
ss -ltn | grep -qE "$PORTS" && { echo "ports still held: the anchor would be measured beside another system"; exit 1; }
export TOKEN=
"$HERE/hapi.sh" start --fresh > "$OUT/hapi-start.log" 2>&1 || { cat "$OUT/hapi-start.log"; exit 1; }
IDS=$($PY "$HERE/setup_bodies.py" http://127.0.0.1:8090/fhir "" hapi "$OUT")
PLAN=$(echo "$IDS" | $PY -c 'import json,sys; print(json.load(sys.stdin)["plan"])')
load hapi-get "http://127.0.0.1:8090/fhir/CarePlan/$PLAN" get
load hapi-post http://127.0.0.1:8090/fhir/CarePlan post "$OUT/careplan-hapi.json"
"$HERE/hapi.sh" stop
$PY "$HERE/ratios.py" "$OUT" | tee "$OUT/ratios.md"
