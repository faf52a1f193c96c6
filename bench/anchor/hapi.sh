#!/usr/bin/env bash
# The performance anchor: HAPI FHIR 8.8.0 JPA server (R4, H2 file database) on
# 127.0.0.1:$HAPI_PORT/fhir, built with Maven from Maven Central out of bench/anchor/{pom.xml,src}.
# The jar and its dependencies are cached under .cache/hapi-jpa/<hash of pom and sources>/ (built
# once per source version, like the Kafka jars under .cache/kafka/).
#   bench/anchor/hapi.sh build          build (or reuse) the cached jar; prints its folder
#   bench/anchor/hapi.sh start [--fresh] build if needed, start in the background, wait until ready
#   bench/anchor/hapi.sh stop           stop the server started by `start` (by its pid file only)
# Env: HAPI_WORK (/tmp/iopcare-hapi-anchor: data, logs, pid), HAPI_HEAP (2g), HAPI_PORT (8090),
#   HAPI_SEARCH_REUSE_MS (0: HAPI's default 60000 answers a repeated search from a cache)
set -euo pipefail
SRC=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$SRC/../.." && pwd)
WORK=${HAPI_WORK:-/tmp/iopcare-hapi-anchor}
HEAP=${HAPI_HEAP:-2g}
PORT=${HAPI_PORT:-8090}
HASH=$(cd "$SRC" && find pom.xml src -type f | LC_ALL=C sort | xargs sha256sum | sha256sum | cut -c1-16)
CACHE="$ROOT/.cache/hapi-jpa/$HASH"

build() {
  [ -f "$CACHE/.complete" ] && { echo "$CACHE"; return; }
  command -v mvn > /dev/null || { echo "Maven (mvn) and Java 17 are needed to build the anchor" >&2; exit 1; }
  mkdir -p "$(dirname "$CACHE")"
  local partial; partial=$(mktemp -d "$CACHE.partial-XXXX")   # never looks complete if interrupted
  cp -r "$SRC/pom.xml" "$SRC/src" "$partial/"
  (cd "$partial" && mvn -B -q package dependency:copy-dependencies \
      -DoutputDirectory=target/lib -DincludeScope=runtime >&2)
  mkdir -p "$partial/out" && mv "$partial/target/hapi-jpa-bench-1.0.jar" "$partial/target/lib" "$partial/out/"
  touch "$partial/out/.complete"
  rm -rf "$CACHE"; mv "$partial/out" "$CACHE"; rm -rf "$partial"
  echo "$CACHE"
}

start() {
  build > /dev/null
  mkdir -p "$WORK/logs" "$WORK/data"
  [ "${1:-}" = "--fresh" ] && rm -rf "$WORK/data/h2"
  if [ -f "$WORK/server.pid" ] && kill -0 "$(cat "$WORK/server.pid")" 2>/dev/null; then echo "already running"; return; fi
  nohup java -Xms"$HEAP" -Xmx"$HEAP" -XX:+UseG1GC -XX:+ExitOnOutOfMemoryError -Dfile.encoding=UTF-8 \
    -Dhapi.work="$WORK" -Dhapi.port="$PORT" -Dhapi.host=127.0.0.1 \
    -Dhapi.search.reuse.ms="${HAPI_SEARCH_REUSE_MS:-0}" \
    -cp "$CACHE/hapi-jpa-bench-1.0.jar:$CACHE/lib/*" bench.hapi.HapiServerMain \
    > "$WORK/logs/server.log" 2>&1 < /dev/null &
  local pid=$!; echo "$pid" > "$WORK/server.pid"
  for _ in $(seq 1 600); do
    kill -0 "$pid" 2>/dev/null || { echo "HAPI exited; see $WORK/logs/server.log" >&2; exit 1; }
    [ "$(curl -s -o /dev/null -w '%{http_code}' --max-time 30 "http://127.0.0.1:$PORT/fhir/metadata")" = 200 ] \
      && { echo "HAPI ready (pid $pid)"; return; }
    sleep 1
  done
  echo "HAPI not ready after 600 s" >&2; exit 1
}

stop() {
  [ -f "$WORK/server.pid" ] || return 0
  local pid; pid=$(cat "$WORK/server.pid")
  if kill -0 "$pid" 2>/dev/null && tr '\0' ' ' < "/proc/$pid/cmdline" | grep -q bench.hapi.HapiServerMain; then
    kill -TERM "$pid"
    for _ in $(seq 1 60); do kill -0 "$pid" 2>/dev/null || break; sleep 1; done
    kill -0 "$pid" 2>/dev/null && kill -KILL "$pid"
  fi
  rm -f "$WORK/server.pid"
}

case "${1:-}" in
  build) build ;;
  start) shift; start "$@" ;;
  stop) stop ;;
  *) echo "usage: $0 build|start [--fresh]|stop" >&2; exit 2 ;;
esac
