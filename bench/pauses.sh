#!/usr/bin/env bash
# Stalls after receivers' estimates collapse: a meeting where everyone publishes simulcast with
# browser-style feedback, and the generator (every participant at once) is stopped for PAUSE_MS
# three times, 4 s apart. While it is stopped no feedback arrives, the server's downlink
# estimates fall, and what it queued meanwhile is sent at the fallen rate. Runs alternate between
# the binaries (so a busy machine affects each alike); every run's latency is listed.
#
# Usage: bench/pauses.sh BINARY_A BINARY_B [...]
# Environment: RUNS [4], PARTICIPANTS [20], PAUSE_MS [300], VIDEO_KBPS [2500], DURATION [15s],
#              WORKERS [number of cores], LOAD [target/release/conclave-load], OUT [temp dir]
set -euo pipefail
cd "$(dirname "$0")/.."

RUNS=${RUNS:-4}
PARTICIPANTS=${PARTICIPANTS:-20}
PAUSE_MS=${PAUSE_MS:-300}
VIDEO_KBPS=${VIDEO_KBPS:-2500}
DURATION=${DURATION:-15s}
WORKERS=${WORKERS:-$(nproc)}
LOAD=${LOAD:-target/release/conclave-load}
OUT=${OUT:-$(mktemp -d)}
mkdir -p "$OUT"
[ $# -ge 1 ] || { echo "usage: $0 BINARY..." >&2; exit 2; }

PID=
trap '[ -n "$PID" ] && kill "$PID" 2>/dev/null; true' EXIT
pause=$(python3 -c "print($PAUSE_MS / 1000)")

for run in $(seq 1 "$RUNS"); do
  i=0
  for bin in "$@"; do
    i=$((i + 1))
    "$bin" --listen 127.0.0.1:18090 --udp 127.0.0.1:41090 --workers "$WORKERS" \
      --metrics-listen 127.0.0.1:18091 >/dev/null 2>&1 &
    PID=$!
    for _ in $(seq 1 100); do (exec 3<>/dev/tcp/127.0.0.1/18090) 2>/dev/null && break; sleep 0.1; done
    "$LOAD" --url 127.0.0.1:18090 --publishers "$PARTICIPANTS" --subscribers 0 \
      --video-kbps "$VIDEO_KBPS" --duration "$DURATION" --ramp 100 --server-pid "$PID" \
      --simulcast --twcc --json "$OUT/$i-$run.json" >/dev/null 2>&1 &
    LOADPID=$!
    # The measurement starts once everyone is connected and 2 s have settled (about 3 s in).
    sleep 5
    for _ in 1 2 3; do
      kill -STOP "$LOADPID"; sleep "$pause"; kill -CONT "$LOADPID"; sleep 4
    done
    wait "$LOADPID" || echo "run $run of $bin failed" >&2
    curl -s 127.0.0.1:18091/metrics > "$OUT/$i-$run.metrics" || true
    kill "$PID"; wait "$PID" 2>/dev/null || true; PID=
  done
done

i=0
for bin in "$@"; do
  i=$((i + 1))
  python3 - "$bin" "$OUT" "$i" <<'EOF'
import glob, json, sys
bin, out, i = sys.argv[1:]
def counter(path, name):
    try:
        return sum(float(l.split()[-1]) for l in open(path) if l.startswith(name))
    except OSError:
        return float("nan")
rows = []
for f in sorted(glob.glob(f"{out}/{i}-*.json")):
    r = json.load(open(f))
    lat = r["latency"]
    dropped = counter(f[:-5] + ".metrics", "conclave_paced_video_dropped_total")
    rows.append(f"{lat['p50_us']/1000:.0f} / {lat['p99_us']/1000:.0f} / {lat['max_us']/1000:.0f} ms, "
                f"loss {r['forwarded']['loss_pct']:.2f}%, {r['forwarded']['packets_per_s']:.0f} packets/s, "
                f"{r['server']['cpu_us_per_packet']:.2f} us/packet, dropped from queues {dropped:.0f}")
print(f"{bin} (latency p50 / p99 / max):")
for row in rows:
    print("  " + row)
EOF
done
