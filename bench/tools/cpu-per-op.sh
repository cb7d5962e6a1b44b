#!/usr/bin/env bash
# CPU time per operation of every process of a fresh `borealis up` (user + system, from
# /proc/PID/stat around the load), under a closed-loop Hrana load from bench/tools/hrana-load.mjs.
#   bench/tools/cpu-per-op.sh [DIST] [w|r] [CLIENTS] [SECS]     (defaults: dist w 32 6)
# DIST is a compiled tree (dist, or .out/x from `npx tsc -p . --outDir .out/x`) to compare builds
# back to back on the same machine. Ports 18670/18700/18701-18706 on 127.0.0.1.
set -euo pipefail
cd "$(dirname "$0")/../.."
dist="${1:-dist}" mode="${2:-w}" clients="${3:-32}" secs="${4:-6}"
data="$(mktemp -d)"
node "$dist/src/cli/main.js" up --data "$data" --port 18700 --control-plane-port 18670 --storage-base-port 18701 > "$data/up.out" 2>&1 &
up=$!
trap 'kill -INT $up 2>/dev/null; wait $up 2>/dev/null; rm -rf "$data"' EXIT
for _ in $(seq 1 240); do grep -q "Connect with" "$data/up.out" && break; sleep 0.5; done
grep -q "Connect with" "$data/up.out" || { echo "cpu-per-op: the cluster did not start; see $data/up.out" >&2; exit 1; }
node bench/tools/hrana-load.mjs http://127.0.0.1:18700 setup
pids="$(ps -o pid= --ppid $up) $up"
snap() { for p in $pids; do echo "$p $(awk '{print $14, $15}' /proc/$p/stat) $(tr '\0' ' ' < /proc/$p/cmdline | awk '{print $3, $5}')"; done | sort; }
snap > "$data/before"
node bench/tools/hrana-load.mjs http://127.0.0.1:18700 "$mode" "$clients" "$secs" | tee "$data/load"
snap > "$data/after"
ops="$(awk '{print $5}' "$data/load")"
tick="$(getconf CLK_TCK)"
join "$data/before" "$data/after" | awk -v ops="$ops" -v tick="$tick" '{
  u = ($6 - $2) * 1000 / tick; s = ($7 - $3) * 1000 / tick; t += u + s
  printf "%-14s %-24s user %6.0f ms  sys %6.0f ms  %7.0f µs/op\n", $4, $5, u, s, (u + s) * 1000 / ops
} END { printf "all processes: %.0f µs of CPU per operation\n", t * 1000 / ops }'
