#!/usr/bin/env bash
# Compare builds of the Conclave server on one load: runs alternate between the binaries (so a
# busy machine affects each alike) and the median server CPU per forwarded packet is reported.
#
# Usage: bench/ab.sh BINARY_A BINARY_B [...]
# Environment: RUNS [3], PUBLISHERS [1], SUBSCRIBERS [200], VIDEO_KBPS [500], DURATION [15s],
#              WORKERS [number of cores], LOAD [target/release/conclave-load], OUT [temp dir],
#              LOAD_ARGS [more conclave-load options, e.g. "--simulcast --twcc"]
set -euo pipefail
cd "$(dirname "$0")/.."

RUNS=${RUNS:-3}
PUBLISHERS=${PUBLISHERS:-1}
SUBSCRIBERS=${SUBSCRIBERS:-200}
VIDEO_KBPS=${VIDEO_KBPS:-500}
DURATION=${DURATION:-15s}
WORKERS=${WORKERS:-$(nproc)}
LOAD=${LOAD:-target/release/conclave-load}
OUT=${OUT:-$(mktemp -d)}
LOAD_ARGS=${LOAD_ARGS:-}
mkdir -p "$OUT"
[ $# -ge 1 ] || { echo "usage: $0 BINARY..." >&2; exit 2; }

PID=
trap '[ -n "$PID" ] && kill "$PID" 2>/dev/null; true' EXIT

for run in $(seq 1 "$RUNS"); do
  i=0
  for bin in "$@"; do
    i=$((i + 1))
    "$bin" --listen 127.0.0.1:18090 --udp 127.0.0.1:41090 --workers "$WORKERS" >/dev/null 2>&1 &
    PID=$!
    for _ in $(seq 1 100); do (exec 3<>/dev/tcp/127.0.0.1/18090) 2>/dev/null && break; sleep 0.1; done
    "$LOAD" --url 127.0.0.1:18090 --publishers "$PUBLISHERS" --subscribers "$SUBSCRIBERS" \
      --video-kbps "$VIDEO_KBPS" --duration "$DURATION" --ramp 100 --server-pid "$PID" $LOAD_ARGS \
      --json "$OUT/$i-$run.json" >/dev/null 2>&1 || echo "run $run of $bin failed" >&2
    kill "$PID"; wait "$PID" 2>/dev/null || true; PID=
  done
done

i=0
for bin in "$@"; do
  i=$((i + 1))
  python3 - "$bin" "$OUT" "$i" <<'EOF'
import glob, json, statistics, sys
bin, out, i = sys.argv[1:]
runs = [json.load(open(f)) for f in sorted(glob.glob(f"{out}/{i}-*.json"))]
us = [r["server"]["cpu_us_per_packet"] for r in runs]
pps = [r["forwarded"]["packets_per_s"] for r in runs]
loss = [r["forwarded"]["loss_pct"] for r in runs]
p50 = [r["latency"]["p50_us"] / 1000 for r in runs]
p99 = [r["latency"]["p99_us"] / 1000 for r in runs]
rss = [r["server"]["rss_peak_mib"] or 0 for r in runs]
kib = [r["server"]["kib_per_participant"] or 0 for r in runs]
print(f"{bin}: {statistics.median(us):.2f} us/packet (runs: {', '.join(f'{u:.2f}' for u in us)}), "
      f"{statistics.median(pps):.0f} packets/s, loss max {max(loss):.3f}%, "
      f"latency p50 {statistics.median(p50):.1f} ms, p99 {statistics.median(p99):.1f} ms, "
      f"peak RSS {statistics.median(rss):.0f} MiB ({statistics.median(kib):.0f} KiB/participant; "
      f"runs: {', '.join(f'{k:.0f}' for k in kib)})")
EOF
done
