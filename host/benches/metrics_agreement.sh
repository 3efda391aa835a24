#!/usr/bin/env bash
# Compares Nebula's own CPU accounting (/metrics) with the kernel's (/proc)
# under a wrk load on loopback.
#
#   host/benches/metrics_agreement.sh [MANIFEST] [PATH] [CONNECTIONS] [SECONDS]
#
# e.g. host/benches/metrics_agreement.sh app.toml / 16 10
#      host/benches/metrics_agreement.sh host/tests/apps/probe.toml /hello/x 16 10
# Needs: target/release/nebula built, the manifest's components built, wrk.
set -euo pipefail
cd "$(dirname "$0")/../.."
manifest=${1:-app.toml}
path=${2:-/}
conns=${3:-16}
secs=${4:-10}
bin=${NEBULA_BIN:-target/release/nebula}
tmp=$(mktemp -d)
trap 'kill $pid 2>/dev/null || true; rm -rf "$tmp"' EXIT

extra=()
if grep -q spin_manifest_version "$manifest"; then
    extra=(--data-dir "$tmp")
else
    extra=(--db "$tmp/app.db")
fi
"$bin" up -f "$manifest" --no-build --listen 127.0.0.1:0 --admin 127.0.0.1:0 "${extra[@]}" \
    >"$tmp/out" 2>"$tmp/err" &
pid=$!
for _ in $(seq 100); do
    grep -q '^Serving ' "$tmp/out" 2>/dev/null && break
    sleep 0.1
done
base=$(sed -n 's/^Serving .* at \(http:[^ ]*\)\/$/\1/p' "$tmp/out")
admin=$(sed -n 's/^Metrics at \(http:[^ ]*\)$/\1/p' "$tmp/out")
[ -n "$base" ] && [ -n "$admin" ] || { cat "$tmp/out" "$tmp/err"; exit 1; }

metric() { curl -s "$admin" | awk -v m="$1" '$1 == m { print $2 }'; }
proc_cpu() { # utime + stime of the whole process, in seconds
    awk -v hz="$(getconf CLK_TCK)" '{ print ($14 + $15) / hz }' "/proc/$pid/stat"
}

wrk -t1 -c"$conns" -d2s "$base$path" >/dev/null # warm up
a0=$(metric nebula_accounted_cpu_seconds_total); p0=$(proc_cpu)
c0=$(metric nebula_connection_cpu_seconds_total)
wrk -t1 -c"$conns" -d"${secs}s" "$base$path" | grep -E 'Requests/sec|requests in'
a1=$(metric nebula_accounted_cpu_seconds_total); p1=$(proc_cpu)
c1=$(metric nebula_connection_cpu_seconds_total)
curl -s "$admin" | grep -E '^nebula_(background_cpu|request_cpu)' | grep -v ' 0\(\.0\)\?$' || true
python3 - "$a0" "$a1" "$p0" "$p1" "$c0" "$c1" <<'PY'
import sys
a0, a1, p0, p1, c0, c1 = map(float, sys.argv[1:])
da, dp, dc = a1 - a0, p1 - p0, c1 - c0
print(f"during the load: /proc utime+stime {dp:.3f} s, accounted {da:.3f} s "
      f"({(da - dp) / dp * 100:+.1f}%), of which connections {dc:.3f} s")
print(f"since start: /proc {p1:.3f} s, accounted {a1:.3f} s ({(a1 - p1) / p1 * 100:+.1f}%)")
PY
