#!/usr/bin/env bash
# Conclave against Janus' VideoRoom on identical loads, one server after the other, on this machine.
#
# Both servers and the load generator run inside a network namespace this script creates, where a
# veth interface carries 127.0.0.2/32: Janus skips loopback interfaces when gathering ICE
# candidates, so it is told to use only that interface (no STUN), and Conclave gets the same
# address for fairness. Everything is torn down at exit.
#
# Usage (as root): bench/compare.sh
# Environment (defaults in brackets; set a list empty to skip those loads):
#   SERVERS      servers to run                        [conclave janus]
#   FANOUT       subscriber counts for 1 -> N loads    [10 50 100 200 499]
#   MEETING      participant counts, all publishing    [10 20]
#   DURATION     measurement window per load           [30s]
#   VIDEO_KBPS   video bit rate per publisher          [500]
#   RAMP         joins per second                      [50]
#   WORKERS      Conclave media workers                [number of cores]
#   OUT          where JSON results go                 [bench/results]
#   JANUS_DEBUG  Janus log level (0-7)                 [3]
#   LOGS         keep each run's server log in this directory  [not kept]
#   LOAD_ARGS    more conclave-load options, e.g. --no-gro      [none]
#   CONCLAVE_ARGS  more options for Conclave's server, e.g. --audio-last-n 20 so that it
#                forwards every microphone as Janus does                 [none]
#   RUNS         runs of every load; with more than one, run k goes to OUT/rk and the report
#                shows the median run of each load                  [1]
#   CEILING      seconds of the machine's own ceiling measured before each run's loads
#                (`conclave-load --ceiling`: the kernel's cost of sending alone); 0 to skip [5]
# Then: python3 bench/report.py  (table and chart for docs/benchmarks.md)
set -euo pipefail
cd "$(dirname "$0")/.."

SERVERS=${SERVERS-"conclave janus"}
FANOUT=${FANOUT-"10 50 100 200 499"}
MEETING=${MEETING-"10 20"}
DURATION=${DURATION:-30s}
VIDEO_KBPS=${VIDEO_KBPS:-500}
RAMP=${RAMP:-50}
WORKERS=${WORKERS:-$(nproc)}
OUT=${OUT:-bench/results}
JANUS_DEBUG=${JANUS_DEBUG:-3}
LOGS=${LOGS:-}
LOAD_ARGS=${LOAD_ARGS:-}
CONCLAVE_ARGS=${CONCLAVE_ARGS:-}
RUNS=${RUNS:-1}
CEILING=${CEILING:-5}
NS=conclave-bench
IP=127.0.0.2
VETH=cbench0
HTTP_PORT=8088

log() { printf '\n==> %s\n' "$*" >&2; }

[ "$(id -u)" = 0 ] || { echo "needs root (network namespace)" >&2; exit 1; }
command -v janus >/dev/null || { log "installing janus"; DEBIAN_FRONTEND=noninteractive apt-get install -y janus; }

log "building release binaries"
cargo build --release --locked -p conclave-server -p conclave-load
BIN=$PWD/target/release
mkdir -p "$OUT"

TMP=$(mktemp -d)
SERVER_PID=
teardown() {
  if [ -n "$SERVER_PID" ]; then kill "$SERVER_PID" 2>/dev/null || true; wait "$SERVER_PID" 2>/dev/null || true; fi
  ip netns del "$NS" 2>/dev/null || true
  rm -rf "$TMP"
}
trap teardown EXIT

log "network namespace $NS with $VETH carrying $IP/32"
ip netns del "$NS" 2>/dev/null || true
ip netns add "$NS"
ip -n "$NS" link set lo up
ip -n "$NS" link add "$VETH" type veth peer name "${VETH}p"
ip -n "$NS" addr add "$IP/32" dev "$VETH"
ip -n "$NS" link set "$VETH" up
ip -n "$NS" link set "${VETH}p" up
in_ns() { ip netns exec "$NS" "$@"; }

# Janus: only the VideoRoom plugin and the HTTP transport; ICE only on the veth; no STUN; one
# event loop per core (like Conclave's one worker per core) instead of a thread per handle.
write_janus_config() {
  local lib=/usr/lib/x86_64-linux-gnu/janus
  local plugins transports
  plugins=$(cd "$lib/plugins" && ls lib*.so | grep -v videoroom | paste -sd, -)
  transports=$(cd "$lib/transports" && ls lib*.so | grep -v http | paste -sd, -)
  cat >"$TMP/janus.jcfg" <<EOF
general: {
  configs_folder = "$TMP"
  plugins_folder = "$lib/plugins"
  transports_folder = "$lib/transports"
  events_folder = "$lib/events"
  loggers_folder = "$lib/loggers"
  debug_level = $JANUS_DEBUG
  session_timeout = 0
  event_loops = $WORKERS
}
certificates: {
}
media: {
  rtp_port_range = "20000-60000"
}
nat: {
  ice_enforce_list = "$VETH"
  ignore_mdns = true
  nice_debug = false
}
plugins: {
  disable = "$plugins"
}
transports: {
  disable = "$transports"
}
loggers: {
  disable = "libjanus_jsonlog.so"
}
events: {
  broadcast = false
}
EOF
  cat >"$TMP/janus.transport.http.jcfg" <<EOF
general: {
  json = "plain"
  base_path = "/janus"
  http = true
  port = $HTTP_PORT
  ip = "$IP"
  https = false
}
admin: {
  admin_http = false
}
EOF
  cat >"$TMP/janus.plugin.videoroom.jcfg" <<EOF
general: {
}
EOF
}
write_janus_config

wait_http() {
  for _ in $(seq 1 100); do
    if in_ns bash -c "exec 3<>/dev/tcp/$IP/$1" 2>/dev/null; then return 0; fi
    sleep 0.1
  done
  echo "server did not start listening on $IP:$1" >&2
  return 1
}

start_server() {
  case $1 in
    conclave)
      ip netns exec "$NS" "$BIN/conclave" --listen "$IP:$HTTP_PORT" --udp "$IP:40000" --workers "$WORKERS" \
        $CONCLAVE_ARGS >"$TMP/conclave.log" 2>&1 &
      ;;
    janus)
      ip netns exec "$NS" janus -C "$TMP/janus.jcfg" -F "$TMP" -o >"$TMP/janus.log" 2>&1 &
      ;;
  esac
  # `ip netns exec` execs in place, so this is the server's own pid (for its CPU time and memory).
  SERVER_PID=$!
  wait_http "$HTTP_PORT"
}

stop_server() {
  kill "$SERVER_PID" 2>/dev/null || true
  wait "$SERVER_PID" 2>/dev/null || true
  SERVER_PID=
}

# run_load SERVER NAME PUBLISHERS SUBSCRIBERS DIR
run_load() {
  local server=$1 name=$2 pubs=$3 subs=$4 dir=$5
  log "$server: $name ($pubs publishers, $subs subscribers)"
  start_server "$server"
  mkdir -p "$dir"
  in_ns "$BIN/conclave-load" --target "$server" --url "$IP:$HTTP_PORT" --bind "$IP" \
    --publishers "$pubs" --subscribers "$subs" --duration "$DURATION" --ramp "$RAMP" \
    --video-kbps "$VIDEO_KBPS" --server-pid "$SERVER_PID" \
    --label "$name" --json "$dir/$server-$name.json" $LOAD_ARGS || echo "load $name failed on $server" >&2
  stop_server
  if [ -n "$LOGS" ]; then mkdir -p "$LOGS" && cp "$TMP/$server.log" "$LOGS/$server-$name.log"; fi
  sleep 1
}

# Each load on every server back to back (a drifting machine affects both alike), then the next.
for run in $(seq 1 "$RUNS"); do
  dir=$OUT
  if [ "$RUNS" -gt 1 ]; then dir=$OUT/r$run; fi
  if [ "$CEILING" != 0 ]; then
    log "ceiling: the kernel's send path alone, ${CEILING}s"
    mkdir -p "$dir"
    in_ns "$BIN/conclave-load" --ceiling --bind "$IP" --duration "${CEILING}s" \
      --json "$dir/ceiling.json" || echo "ceiling measurement failed" >&2
  fi
  for n in $FANOUT; do
    for server in $SERVERS; do run_load "$server" "fanout-$n" 1 "$n" "$dir"; done
  done
  for n in $MEETING; do
    for server in $SERVERS; do run_load "$server" "meeting-$n" "$n" 0 "$dir"; done
  done
done
log "results in $OUT; python3 bench/report.py renders the table and chart"
