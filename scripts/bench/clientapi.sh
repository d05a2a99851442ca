#!/usr/bin/env bash
# Client API benchmark: wrk against one nginx backend serving a small file,
# in one run,
#   nginx direct (plain HTTP, the ceiling)
#   HAProxy TLS-only                 vs  edgefort TLS-only (anonymous route)
#   HAProxy TLS + jwt_verify RS256   vs  edgefort TLS + RS256 JWT + cloud
#                                        authorization (cached), with the
#                                        verified-token cache on, and off
# and a 1 GiB download through edgefort with its peak RSS (VmHWM).
#
# The same CPU budget for both proxies: HAProxy `nbthread 1`, edgefort
# GOMAXPROCS=1, the proxy under test pinned to core 0, nginx and wrk
# sharing core 1. The same TLS certificate (ECDSA P-256, from openssl) and
# the same RS256 token (RSA 2048) for both. HAProxy checks what edgefort
# checks: alg RS256, the signature, iss, aud, exp. Each measured run
# (wrk -t1 -c32 -d$DURATION --latency) follows a warm-up run ($WARMUP) on
# the same proxy process; ROUNDS rounds each run every configuration once,
# and the table shows, per configuration, the round with the median req/s
# (the machine is shared: every round's req/s is printed too). Before each proxy is measured, curl checks it
# answers 200 with the token and, for the JWT ones, 401 without a token
# and with a tampered signature.
#
# devcloud's control plane (the cloud that authorizes each request), the
# enrolled state directory, the token and edgefort's configurations come
# from a helper, scripts/bench/clientapi. Ports: edgefort listens on
# 127.0.0.1:0 and its port is read back (ss); nginx and HAProxy cannot, so
# the helper binds two free ports and releases them: another process
# could take one meanwhile, and then nginx or HAProxy fails to start and
# this script stops with its error.
#
#   DURATION=10s WARMUP=3s ROUNDS=3 [EDGEFORT=path/to/edgefort] scripts/bench/clientapi.sh
# EDGEFORT: a binary to measure instead of building the work tree's.
# PROFILE=DIR: perf records each measured edgefort run (call graphs, the
# whole run) into DIR/VARIANT-ROUND.perf.data with a report beside it
# (.txt); the work tree's binary is then built unstripped.
# DOWNLOAD_MIB=1024: the size of the proxied download (0 to skip).
set -euo pipefail
cd "$(dirname "$0")/../.."
duration=${DURATION:-10s}
rounds=${ROUNDS:-3}
warmup=${WARMUP:-3s}
download_mib=${DOWNLOAD_MIB:-1024}
profile=${PROFILE:-}
need() { # need TOOL PACKAGE
  command -v "$1" >/dev/null || { echo "clientapi.sh: $1 is required (apt-get install $2)" >&2; exit 1; }
}
need nginx nginx
need haproxy haproxy
need wrk wrk
need openssl openssl
need curl curl
need taskset util-linux
need ss iproute2
if [ -n "$profile" ]; then
  need perf linux-perf
  mkdir -p "$profile"
  profile=$(cd "$profile" && pwd)
fi
[ "$(nproc)" -ge 2 ] || { echo "clientapi.sh: needs 2 cores (proxy on 0, nginx and wrk on 1)" >&2; exit 1; }

work=$(mktemp -d)
pids=()
proxy_pid=""
cleanup() {
  local p
  [ -z "$proxy_pid" ] || pids+=("$proxy_pid")
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT
# nginx's workers run as nobody when started as root: they need to reach
# the files (x only on the work dir, nothing listable).
chmod 711 "$work"

if [ -n "${EDGEFORT:-}" ]; then
  ef=$EDGEFORT
elif [ -n "$profile" ]; then
  # perf needs the symbol table that -s strips.
  CGO_ENABLED=0 go build -trimpath -o "$work/edgefort" ./cmd/edgefort
  ef="$work/edgefort"
else
  CGO_ENABLED=0 go build -trimpath -ldflags='-s -w' -o "$work/edgefort" ./cmd/edgefort
  ef="$work/edgefort"
fi
go build -o "$work/helper" ./scripts/bench/clientapi
h="$work/h"
"$work/helper" -dir "$h" >"$work/helper.out" 2>"$work/helper.log" &
helper_pid=$!
pids+=("$helper_pid")
for _ in $(seq 300); do
  [ -e "$h/ready" ] && break
  kill -0 "$helper_pid" 2>/dev/null || { cat "$work/helper.log" >&2; exit 1; }
  sleep 0.1
done
[ -e "$h/ready" ] || { echo "clientapi.sh: the helper was not ready in 30 s" >&2; cat "$work/helper.log" >&2; exit 1; }
read -r nginx_port haproxy_port <"$h/ports"
token=$(cat "$h/token")
iss=$(cat "$h/issuer")
aud=$(cat "$h/audience")
# The token with the first character of its signature changed:
# well-formed, wrongly signed.
sig=${token##*.}
if [ "${sig:0:1}" = A ]; then c=B; else c=A; fi
bad_token="${token%.*}.$c${sig:1}"

# The TLS certificate both proxies serve.
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 90 \
  -keyout "$work/tls.key" -out "$work/tls.crt" -subj /CN=localhost \
  -addext 'subjectAltName=DNS:localhost,IP:127.0.0.1' 2>/dev/null
cat "$work/tls.crt" "$work/tls.key" >"$work/haproxy.pem"
"$ef" keystore create --config "$h/enroll.yaml" bench-tls >/dev/null
"$ef" keystore import --config "$h/enroll.yaml" --key "$work/tls.key" --cert "$work/tls.crt" bench-tls bench >/dev/null

# The backend: nginx on core 1, a small file and a sparse 1 GiB one.
mkdir -p "$work/www" "$work/nginx/logs"
chmod 755 "$work/www"
openssl rand -hex 512 | tr -d '\n' >"$work/www/small.txt"
truncate -s "${download_mib}M" "$work/www/big.bin"
chmod 644 "$work/www/"*
cat >"$work/nginx/nginx.conf" <<EOF
worker_processes 1;
pid $work/nginx/nginx.pid;
error_log $work/nginx/logs/error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  sendfile on;
  keepalive_requests 100000000;
  server {
    listen 127.0.0.1:$nginx_port;
    root $work/www;
  }
}
EOF
taskset -c 1 nginx -p "$work/nginx/" -e "$work/nginx/logs/error.log" -c "$work/nginx/nginx.conf" -g 'daemon off;' &
pids+=($!)

# listener PID: waits until PID listens on TCP and prints the port; fails
# when PID exits first.
listener() {
  local port
  for _ in $(seq 300); do
    port=$(ss -ltnpH 2>/dev/null | awk -v p="pid=$1," 'index($0, p) { n = split($4, a, ":"); print a[n]; exit }')
    if [ -n "$port" ]; then echo "$port"; return 0; fi
    kill -0 "$1" 2>/dev/null || return 1
    sleep 0.05
  done
  return 1
}
listener "${pids[-1]}" >/dev/null || { echo "clientapi.sh: nginx did not start:" >&2; cat "$work/nginx/logs/error.log" >&2; exit 1; }

haproxy_cfg() { # haproxy_cfg jwt|tls
  cat <<EOF
global
  nbthread 1
  maxconn 4096
  ssl-default-bind-options ssl-min-ver TLSv1.2
defaults
  mode http
  timeout connect 5s
  timeout client 30s
  timeout server 30s
frontend bench
  bind 127.0.0.1:$haproxy_port ssl crt $work/haproxy.pem
  default_backend nginx
EOF
  if [ "$1" = jwt ]; then
    cat <<EOF
  http-request set-var(txn.bearer) http_auth_bearer
  http-request set-var(txn.jwt_alg) var(txn.bearer),jwt_header_query('\$.alg')
  http-request deny deny_status 401 unless { var(txn.jwt_alg) -m str RS256 }
  http-request deny deny_status 401 unless { var(txn.bearer),jwt_payload_query('\$.iss') -m str $iss }
  http-request deny deny_status 401 unless { var(txn.bearer),jwt_payload_query('\$.aud') -m str $aud }
  http-request set-var(txn.exp) var(txn.bearer),jwt_payload_query('\$.exp','int')
  http-request set-var(txn.now) date()
  http-request deny deny_status 401 unless { var(txn.exp),sub(txn.now) -m int gt 0 }
  http-request deny deny_status 401 unless { var(txn.bearer),jwt_verify(txn.jwt_alg,"$h/jwt-pub.pem") -m int 1 }
EOF
  fi
  cat <<EOF
backend nginx
  server nginx 127.0.0.1:$nginx_port
EOF
}
for v in jwt tls; do
  haproxy_cfg $v >"$work/haproxy-$v.cfg"
  haproxy -c -q -f "$work/haproxy-$v.cfg"
done

# Proxy processes, one at a time: start_* set proxy_pid and proxy_url;
# stop_proxy ends it (and cleanup, if one is running).
proxy_url=""
start_haproxy() { # start_haproxy jwt|tls
  taskset -c 0 haproxy -db -f "$work/haproxy-$1.cfg" 2>"$work/haproxy.log" &
  proxy_pid=$!
  listener "$proxy_pid" >/dev/null || { echo "clientapi.sh: HAProxy did not start:" >&2; cat "$work/haproxy.log" >&2; exit 1; }
  proxy_url="https://127.0.0.1:$haproxy_port"
}
start_edgefort() { # start_edgefort VARIANT: returns 1 (the log in $work/edgefort.log) when it does not start
  local port
  GOMAXPROCS=1 taskset -c 0 "$ef" run --config "$h/edgefort-$1.yaml" 2>"$work/edgefort.log" >&2 &
  proxy_pid=$!
  port=$(listener "$proxy_pid") || { stop_proxy; return 1; }
  proxy_url="https://127.0.0.1:$port"
}
stop_proxy() {
  kill "$proxy_pid" 2>/dev/null || true
  wait "$proxy_pid" 2>/dev/null || true
  proxy_pid=""
}
peak_rss_mib() { awk '/^VmHWM:/ { printf "%.1f", $2 / 1024 }' "/proc/$1/status"; }
# cpu_ticks PID: the CPU time (user + system, all threads) PID has used,
# in clock ticks.
cpu_ticks() { awk '{ sub(/^.*\) /, ""); print $12 + $13 }' "/proc/$1/stat"; }
clk_tck=$(getconf CLK_TCK)

# check URL EXPECT_STATUS [TOKEN]: one request with curl; says what came
# back when it is not EXPECT_STATUS.
check() {
  local got
  got=$(curl -sk -o /dev/null -w '%{http_code}' ${3:+-H "Authorization: Bearer $3"} "$1/small.txt" || true)
  [ "$got" = "$2" ] || { echo "$1/small.txt answered $got, want $2"; return 1; }
}
checks() { # checks URL jwt|tls
  check "$1" 200 "$token" || return 1
  [ "$2" = tls ] && return 0
  check "$1" 401 || return 1
  check "$1" 401 "$bad_token"
}

# measure LABEL URL [TOKEN [PERF_NAME]]: a warm-up run, then the measured
# run (recorded by perf as PERF_NAME when given); appends
# "LABEL|req/s|p50 ms|p99 ms|peak RSS MiB|proxy CPU us per request" to
# $work/results. The CPU per request (the proxy's user + system time over
# the run, divided by the requests wrk completed) hardly depends on what
# else the machine runs, unlike req/s: on a shared machine it is the
# steadier comparison of the two proxies' cost.
measure() {
  local label=$1 url=$2 tok=${3:-} perf_name=${4:-} out rps p50 p99 rss=- perf_pid="" cpu=- t0=""
  local args=(-t1 -c32 ${tok:+-H "Authorization: Bearer $tok"})
  taskset -c 1 wrk "${args[@]}" -d"$warmup" "$url/small.txt" >/dev/null
  if [ -n "$perf_name" ]; then
    perf record -q -F 499 -g -p "$proxy_pid" -o "$profile/$perf_name.perf.data" 2>/dev/null &
    perf_pid=$!
  fi
  [ -z "$proxy_pid" ] || t0=$(cpu_ticks "$proxy_pid")
  out=$(taskset -c 1 wrk "${args[@]}" -d"$duration" --latency "$url/small.txt")
  if [ -n "$t0" ]; then
    cpu=$(awk -v t="$(($(cpu_ticks "$proxy_pid") - t0))" -v hz="$clk_tck" -v n="$(awk '/requests in/ { print $1 }' <<<"$out")" \
      'BEGIN { printf "%.1f", (n > 0 ? t / hz * 1e6 / n : 0) }')
  fi
  if [ -n "$perf_pid" ]; then
    kill -INT "$perf_pid" && wait "$perf_pid" || true
    perf report -i "$profile/$perf_name.perf.data" --stdio --no-children --percent-limit 1 -g none \
      >"$profile/$perf_name.txt" 2>/dev/null || true
  fi
  if grep -q 'Non-2xx' <<<"$out"; then
    echo "clientapi.sh: $label: $(grep 'Non-2xx' <<<"$out")" >&2
    echo "$label|failed|-|-|-|-" >>"$work/results"
    return
  fi
  if grep -q 'Socket errors' <<<"$out"; then
    echo "clientapi.sh: $label: $(grep 'Socket errors' <<<"$out")" >&2
  fi
  rps=$(awk '/^Requests\/sec/ { print $2 }' <<<"$out")
  p50=$(ms "$(awk '$1 == "50%" { print $2 }' <<<"$out")")
  p99=$(ms "$(awk '$1 == "99%" { print $2 }' <<<"$out")")
  [ -n "$proxy_pid" ] && rss=$(peak_rss_mib "$proxy_pid")
  echo "$label|$rps|$p50|$p99|$rss|$cpu" >>"$work/results"
}
ms() { # wrk's 1.23ms / 456.78us / 1.01s in milliseconds
  awk -v v="$1" 'BEGIN { n = v + 0; if (v ~ /us$/) n /= 1000; else if (v ~ /ms$/) n += 0; else if (v ~ /s$/) n *= 1000; printf "%.2f", n }'
}
skipped() { echo "$1|not run|-|-|-|-" >>"$work/results"; }

# edgefort_row LABEL VARIANT jwt|tls: a variant that did not start or
# failed its checks is not tried again in later rounds.
declare -A broken=()
edgefort_row() {
  if [ -n "${broken[$2]:-}" ]; then skipped "$1"; return; fi
  if ! start_edgefort "$2"; then
    echo "clientapi.sh: edgefort ($2) did not start: $(grep -m1 -i 'error\|invalid\|unknown' "$work/edgefort.log" || head -1 "$work/edgefort.log")" >&2
    broken[$2]=1
    skipped "$1"
    return
  fi
  if ! checks "$proxy_url" "$3" >&2; then
    stop_proxy
    broken[$2]=1
    skipped "$1"
    return
  fi
  measure "$1" "$proxy_url" "$([ "$3" = jwt ] && echo "$token")" "${profile:+$2-$round}"
  stop_proxy
}
haproxy_row() { # haproxy_row LABEL jwt|tls
  start_haproxy "$2"
  checks "$proxy_url" "$2" >&2 || exit 1
  measure "$1" "$proxy_url" "$([ "$2" = jwt ] && echo "$token")"
  stop_proxy
}

# Each round measures every configuration once, each edgefort right after
# the HAProxy it is compared with, so that both see the same machine.
: >"$work/results"
load=$(cut -d' ' -f1-3 /proc/loadavg)
for round in $(seq "$rounds"); do
  measure "nginx direct (HTTP)" "http://127.0.0.1:$nginx_port"
  haproxy_row "HAProxy TLS-only" tls
  edgefort_row "edgefort TLS-only" tls tls
  haproxy_row "HAProxy TLS + jwt_verify RS256" jwt
  edgefort_row "edgefort TLS + JWT, token cache" jwt-cached jwt
  edgefort_row "edgefort TLS + JWT, no token cache" jwt-uncached jwt
done

echo "# $(go version | awk '{print $3, $4}'), $(nproc) cores, $(haproxy -v | awk 'NR == 1 { print "HAProxy", $3 }'), $(nginx -v 2>&1 | sed 's/.*nginx\//nginx /'), $(wrk -v 2>&1 | awk 'NR == 1 { print $1, $2 }'), wrk -t1 -c32 -d$duration --latency after a $warmup warm-up, median of $rounds rounds, load average $load at the start, $(date -u +%Y-%m-%d)"
# Per configuration, the round with the median req/s gives the row (its
# p50, p99 and peak RSS); a configuration that did not run in every round
# shows that.
awk -F'|' '
  !($1 in n) { order[++k] = $1 }
  { i = ++n[$1]; rps[$1, i] = $2; p50[$1, i] = $3; p99[$1, i] = $4; rss[$1, i] = $5; cpu[$1, i] = $6
    eachcpu[$1] = eachcpu[$1] (eachcpu[$1] == "" ? "" : " ") $6
    each[$1] = each[$1] (each[$1] == "" ? "" : " ") ($2 + 0 > 0 ? sprintf("%.0f", $2) : $2)
    if (!($2 + 0 > 0)) bad[$1] = $2 }
  function median(l,    i, j, t, idx) {
    for (i = 1; i <= n[l]; i++) idx[i] = i
    for (i = 2; i <= n[l]; i++) for (j = i; j > 1 && rps[l, idx[j - 1]] + 0 > rps[l, idx[j]] + 0; j--) { t = idx[j]; idx[j] = idx[j - 1]; idx[j - 1] = t }
    return idx[int((n[l] + 1) / 2)]
  }
  function mediancpu(l,    i, j, t, v, c) {
    c = 0
    for (i = 1; i <= n[l]; i++) if (cpu[l, i] + 0 > 0) v[++c] = cpu[l, i] + 0
    for (i = 2; i <= c; i++) for (j = i; j > 1 && v[j - 1] > v[j]; j--) { t = v[j]; v[j] = v[j - 1]; v[j - 1] = t }
    return c ? v[int((c + 1) / 2)] : 0
  }
  END {
    peer["edgefort TLS-only"] = "HAProxy TLS-only"; goal["edgefort TLS-only"] = 0.7
    peer["edgefort TLS + JWT, token cache"] = "HAProxy TLS + jwt_verify RS256"; goal["edgefort TLS + JWT, token cache"] = 1.2
    peer["edgefort TLS + JWT, no token cache"] = "HAProxy TLS + jwt_verify RS256"; goal["edgefort TLS + JWT, no token cache"] = 0.9
    for (x = 1; x <= k; x++) { l = order[x]; m[l] = median(l) }
    printf "%-36s %8s %8s %8s %10s %7s %7s %-7s  %s\n", "configuration", "req/s", "p50 ms", "p99 ms", "peak RSS", "req/s", "p99", "goal", "req/s each round"
    printf "%-36s %8s %8s %8s %10s %7s %7s %-7s\n", "", "", "", "", "", "ratio", "ratio", ""
    for (x = 1; x <= k; x++) {
      l = order[x]; i = m[l]; r = "-"; q = "-"; g = ""
      if (l in bad) { printf "%-36s %8s %8s %8s %10s %7s %7s %-7s  %s\n", l, bad[l], "-", "-", "-", "-", "-", "", each[l]; continue }
      if ((l in peer) && !(peer[l] in bad)) {
        p = peer[l]; j = m[p]
        r = rps[l, i] / rps[p, j]; q = p99[l, i] / p99[p, j]
        g = (r >= goal[l] && q <= 1) ? "met" : "missed"
        r = sprintf("%.2fx", r); q = sprintf("%.2fx", q)
      }
      printf "%-36s %8.0f %8s %8s %10s %7s %7s %-7s  %s\n", l, rps[l, i], p50[l, i], p99[l, i], (rss[l, i] == "-" ? "-" : rss[l, i] " MiB"), r, q, g, each[l]
    }
    print "# ratios: edgefort / HAProxy in the same configuration. Goals: req/s ratio >= 0.7 TLS-only, >= 1.2 with the token cache, >= 0.9 without; p99 ratio <= 1"
    printf "%-36s %12s %9s  %s\n", "proxy CPU per request", "us (median)", "capacity", "us each round"
    for (x = 1; x <= k; x++) {
      l = order[x]; c = mediancpu(l)
      if (!c) continue
      r = "-"
      if ((l in peer) && mediancpu(peer[l]) > 0) r = sprintf("%.2fx", mediancpu(peer[l]) / c)
      printf "%-36s %12.1f %9s  %s\n", l, c, r, eachcpu[l]
    }
    print "# capacity: HAProxy CPU per request / edgefort CPU per request in the same configuration, the req/s ratio both would reach with the same CPU; load-independent"
  }' "$work/results"

# The proxied download: one GET of the sparse file with curl (on core 1,
# with nginx), direct, through a fresh HAProxy and a fresh edgefort (JWT,
# token cache), and the proxy's peak RSS since it started.
helper_stats() { # stops the helper, prints what its control plane answered
  local p keep=()
  kill "$helper_pid" 2>/dev/null && wait "$helper_pid" 2>/dev/null || true
  for p in "${pids[@]}"; do [ "$p" = "$helper_pid" ] || keep+=("$p"); done
  pids=("${keep[@]}")
  cat "$work/helper.out"
}
if [ "$download_mib" -le 0 ]; then helper_stats; exit 0; fi
dl() { # dl LABEL URL [TOKEN]
  local out
  out=$(taskset -c 1 curl -sk -o /dev/null ${3:+-H "Authorization: Bearer $3"} -w '%{http_code} %{size_download} %{time_total}' "$2/big.bin")
  read -r code size secs <<<"$out"
  [ "$code" = 200 ] && [ "$size" = $((download_mib * 1024 * 1024)) ] || { echo "clientapi.sh: $1: status $code, $size bytes" >&2; return 1; }
  printf '%-36s %8.2f s %9.0f MiB/s %10s\n' "$1" "$secs" "$(awk -v s="$size" -v t="$secs" 'BEGIN { print s / 1048576 / t }')" "$([ -n "$proxy_pid" ] && echo "$(peak_rss_mib "$proxy_pid") MiB" || echo -)"
}
# The file's (zero) pages into the page cache first, so that no download
# pays for it.
cat "$work/www/big.bin" >/dev/null
echo "# one GET of a ${download_mib} MiB file; peak RSS: the proxy's VmHWM since its start"
printf '%-36s %10s %15s %10s\n' "download" "time" "throughput" "peak RSS"
dl "nginx direct (HTTP)" "http://127.0.0.1:$nginx_port"
start_haproxy jwt
dl "HAProxy TLS + jwt_verify RS256" "$proxy_url" "$token"
stop_proxy
# Through edgefort with the token cache, or TLS-only when that variant does
# not start.
dl_variant=""
for v in jwt-cached tls; do
  if start_edgefort "$v"; then dl_variant=$v; break; fi
done
case $dl_variant in
jwt-cached) dl "edgefort TLS + JWT, token cache" "$proxy_url" "$token" || true ;;
tls) dl "edgefort TLS-only (anonymous)" "$proxy_url" || true ;;
*) printf '%-36s %10s\n' "edgefort" "not run (edgefort did not start)" ;;
esac
[ -z "$dl_variant" ] || stop_proxy
helper_stats
