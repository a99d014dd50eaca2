#!/usr/bin/env python3
"""Render bench/compare.sh results: a Markdown table (stdout) and an SVG chart of server CPU
against the number of subscribers for each server (docs/benchmark-cpu.svg).

Usage: python3 bench/report.py [RESULTS_DIR] [SVG_PATH]
RESULTS_DIR may hold several runs of each load (`RUNS` > 1: one sub-directory per run). Each
row is then the run with the median CPU per packet, and lists every run's figure.
Only the Python standard library is used, so it runs anywhere the benchmark does.
"""

import glob
import json
import os
import statistics
import sys

results = sys.argv[1] if len(sys.argv) > 1 else "bench/results"
svg_path = sys.argv[2] if len(sys.argv) > 2 else "docs/benchmark-cpu.svg"

by_load = {}
ceilings = []
for path in sorted(glob.glob(os.path.join(results, "**", "*.json"), recursive=True)):
    with open(path) as f:
        r = json.load(f)
    if "target" not in r:
        # `conclave-load --ceiling`: the machine's own limit, measured before each run.
        if "packets_per_cpu_s" in r:
            ceilings.append(r)
        continue
    r["_name"] = os.path.basename(path)[:-5]
    r["_round"] = os.path.dirname(path)
    by_load.setdefault((r["target"], r.get("label", r["_name"])), []).append(r)


def cpu(r):
    return (r.get("server") or {}).get("cpu_us_per_packet") or 0.0


# One row per load and server: the run with the median CPU per packet (the lower middle one
# of an even count), with every run's figure alongside.
runs = []
for group in by_load.values():
    group.sort(key=cpu)
    r = group[(len(group) - 1) // 2]
    r["_all"] = [cpu(g) for g in group]
    runs.append(r)


def load_key(r):
    kind = 0 if r["publishers_per_room"] == 1 else 1
    return (kind, r["participants"], r["target"])


def fmt(v, spec):
    return "-" if v is None else format(v, spec)


def spread(r):
    return "" if len(r["_all"]) < 2 else " (" + ", ".join(f"{v:.2f}" for v in r["_all"]) + ")"


print("| load | server | connected | forwarded pkt/s | Mbit/s | loss | latency p50 / p95 / p99 ms "
      "| server CPU (% of a core) | CPU-µs / packet | packets / CPU-s | peak RSS MiB | KiB / participant |")
print("|---|---|---|---|---|---|---|---|---|---|---|---|")
for r in sorted(runs, key=load_key):
    s = r.get("server") or {}
    f = r["forwarded"]
    lat = r["latency"]
    print(
        f"| {r.get('label', r['_name'])} | {r['target']} | {r['connected']}/{r['peer_connections']} "
        f"| {f['packets_per_s']:.0f} / {f['expected_packets_per_s']:.0f} | {f['mbit_per_s']:.0f} "
        f"| {f['loss_pct']:.2f}% | {lat['p50_us'] / 1000:.1f} / {lat['p95_us'] / 1000:.1f} / "
        f"{lat['p99_us'] / 1000:.1f} | {fmt(s.get('cpu_pct'), '.0f')} "
        f"| {fmt(s.get('cpu_us_per_packet'), '.2f')}{spread(r)} "
        f"| {fmt(s.get('packets_per_cpu_s'), ',.0f')} "
        f"| {fmt(s.get('rss_peak_mib'), '.0f')} | {fmt(s.get('kib_per_participant'), '.0f')} |"
    )

# Conclave's CPU per packet against Janus' on each load, run by run medians.
pairs = {}
for r in runs:
    pairs.setdefault(r.get("label", r["_name"]), {})[r["target"]] = r
ratios = [(k, v) for k, v in pairs.items() if cpu(v.get("conclave", {})) and cpu(v.get("janus", {}))]
if ratios:
    print("\n| load | Conclave / Janus CPU per packet (median runs) | round by round (median) |")
    print("|---|---|---|")
    for label, v in sorted(ratios, key=lambda kv: load_key(kv[1]["conclave"])):
        c, j = v["conclave"], v["janus"]
        line = f"{cpu(c) / cpu(j):.2f}"
        if len(c["_all"]) == len(j["_all"]) > 1:
            # Runs pair up in order of CPU, not of time: the spread, not run-by-run ratios.
            lo = min(c["_all"]) / max(j["_all"])
            hi = max(c["_all"]) / min(j["_all"])
            line += f" (extremes {lo:.2f}–{hi:.2f})"
        # Each round runs both servers on the load minutes apart, so a machine that runs
        # faster or slower for a while affects both alike: ratios within a round.
        rounds = {}
        for target in ("conclave", "janus"):
            for g in by_load.get((target, label), []):
                rounds.setdefault(g["_round"], {})[target] = cpu(g)
        within = [pair["conclave"] / pair["janus"] for _, pair in sorted(rounds.items())
                  if pair.get("conclave") and pair.get("janus")]
        by_round = ""
        if len(within) > 1:
            by_round = ", ".join(f"{x:.2f}" for x in within) + f" ({statistics.median(within):.2f})"
        print(f"| {label} | {line} | {by_round} |")

# The machine's ceiling (the kernel's send path alone), and each load's Conclave figure beside it:
# the machine's speed drifts from hour to hour, the share of its ceiling much less.
if ceilings:
    per_s = sorted(c["packets_per_cpu_s"] for c in ceilings)
    ceiling = per_s[(len(per_s) - 1) // 2]
    c0 = ceilings[0]
    print(f"\nCeiling: {ceiling:,.0f} packets per CPU-second (median of "
          f"{', '.join(f'{v:,.0f}' for v in per_s)}): the kernel's send path alone, "
          f"{c0['segments']} x {c0['datagram_bytes']}-byte datagrams per GSO message to each of "
          f"{c0['destinations']} sockets.")
    print("\n| load | Conclave packets / CPU-s (median run) | share of the ceiling |")
    print("|---|---|---|")
    for r in sorted(runs, key=load_key):
        s = r.get("server") or {}
        if r["target"] == "conclave" and s.get("packets_per_cpu_s"):
            p = s["packets_per_cpu_s"]
            print(f"| {r.get('label', r['_name'])} | {p:,.0f} | {p / ceiling:.2f} |")

# Chart: server CPU (% of one core) against subscribers, 1 -> N loads only.
series = {}
for r in runs:
    if r["publishers_per_room"] != 1 or not r.get("server"):
        continue
    series.setdefault(r["target"], []).append(
        (r["subscribers_per_room"], r["server"]["cpu_pct"], r["forwarded"]["loss_pct"])
    )
if not series:
    sys.exit(0)
for pts in series.values():
    pts.sort()

W, H, L, R, T, B = 640, 400, 70, 20, 40, 60
max_x = max(x for pts in series.values() for x, _, _ in pts)
max_y = max(y for pts in series.values() for _, y, _ in pts)
step_y = 25 if max_y <= 200 else 50
max_y = (int(max_y // step_y) + 1) * step_y
sx = lambda x: L + (W - L - R) * x / max_x
sy = lambda y: H - B - (H - T - B) * y / max_y
colors = {"conclave": "#1f77b4", "janus": "#d62728"}

out = [
    f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" font-family="sans-serif" '
    f'font-size="12">',
    f'<rect width="{W}" height="{H}" fill="white"/>',
    f'<text x="{W / 2}" y="22" text-anchor="middle" font-size="14">Server CPU, one publisher '
    f"to N subscribers</text>",
]
for i in range(0, max_y + 1, step_y):
    y = sy(i)
    out.append(f'<line x1="{L}" y1="{y:.1f}" x2="{W - R}" y2="{y:.1f}" stroke="#ddd"/>')
    out.append(f'<text x="{L - 8}" y="{y + 4:.1f}" text-anchor="end">{i}%</text>')
xs = sorted({x for pts in series.values() for x, _, _ in pts})
for x in xs:
    out.append(f'<text x="{sx(x):.1f}" y="{H - B + 18}" text-anchor="middle">{x}</text>')
out.append(f'<line x1="{L}" y1="{H - B}" x2="{W - R}" y2="{H - B}" stroke="#333"/>')
out.append(f'<line x1="{L}" y1="{T}" x2="{L}" y2="{H - B}" stroke="#333"/>')
out.append(f'<text x="{(L + W - R) / 2}" y="{H - 20}" text-anchor="middle">subscribers</text>')
out.append(
    f'<text transform="translate(18 {(T + H - B) / 2}) rotate(-90)" text-anchor="middle">'
    f"server CPU, % of one core</text>"
)
for i, (name, pts) in enumerate(sorted(series.items())):
    c = colors.get(name, "#555")
    path = " ".join(f"{sx(x):.1f},{sy(y):.1f}" for x, y, _ in pts)
    out.append(f'<polyline points="{path}" fill="none" stroke="{c}" stroke-width="2"/>')
    for x, y, loss in pts:
        # Hollow markers where the server lost packets.
        fill = "white" if loss > 0.1 else c
        out.append(f'<circle cx="{sx(x):.1f}" cy="{sy(y):.1f}" r="4" fill="{fill}" stroke="{c}"/>')
    ly = T + 10 + 18 * i
    out.append(f'<line x1="{L + 15}" y1="{ly}" x2="{L + 40}" y2="{ly}" stroke="{c}" stroke-width="2"/>')
    out.append(f'<text x="{L + 46}" y="{ly + 4}">{name}</text>')
out.append(f'<text x="{L + 15}" y="{T + 10 + 18 * len(series)}" fill="#555">hollow marker: '
           f"loss above 0.1%</text>")
out.append("</svg>")
with open(svg_path, "w") as f:
    f.write("\n".join(out) + "\n")
print(f"\nchart written to {svg_path}", file=sys.stderr)
