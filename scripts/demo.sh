#!/usr/bin/env bash
# Drives the dev environment (`edgefort-dev`, with the product binary
# `edgefort` beside it) non-interactively and asserts what a newcomer would
# see: every component running, readyz 200, metrics scrapeable, the hub
# virtual host over TLS and its certificate replaced with no restart, files
# deployed over the update channel (`edgefort-dev deploy` against devcloud's
# Mender server), cloud events and jobs, the cloud's limits played with
# `edgefort-dev fault` (a 429 with Retry-After, AWS IoT's connect quota),
# the client API (user tokens through
# the node to the local engine, with identity; 401, 403, anonymous, a
# WebSocket; a header login from the trusted proxy address and the same
# header from another address refused; a ticket login through the dev
# authentication module, the ticket refused the second time, sessions
# listed and revoked, a portal session), federated logins (alice through
# the dev SAML IdP and the dev OpenID provider, with a browser's steps, to
# the engine's page; a wrong password refused), a full system update of a
# simulated A/B device (a rootfs-image Artifact, a reboot, the commit; a
# system that never comes up and a corrupted payload, both reported and
# rolled back), and a clean exit on Ctrl-C
# (SIGINT) that removes the temporary state directory and stops the IdPs.
set -euo pipefail
cd "$(dirname "$0")/.."

work=$(mktemp -d)
dev_pid=""
cleanup() {
  if [ -n "$dev_pid" ] && kill -0 "$dev_pid" 2>/dev/null; then kill -9 "$dev_pid" 2>/dev/null || true; fi
  rm -rf "$work"
}
trap cleanup EXIT

passed=0
failed=0
check() { # check NAME COMMAND...: runs the command, records the result
  local name=$1; shift
  if "$@"; then
    echo "ok   $name"; passed=$((passed + 1))
  else
    echo "FAIL $name"; failed=$((failed + 1))
  fi
}
dump() { echo "--- edgefort-dev stdout"; cat "$work/out" >&2; echo "--- stderr"; cat "$work/err" >&2; }

go build -o "$work/edgefort" ./cmd/edgefort
go build -o "$work/edgefort-dev" ./cmd/edgefort-dev
ef="$work/edgefort"
efdev="$work/edgefort-dev"

"$efdev" >"$work/out" 2>"$work/err" &
dev_pid=$!

# Wait for the banner (bounded: 300 s; the first start runs npm ci for the
# dev IdPs).
for _ in $(seq 3000); do
  grep -q 'Ctrl-C stops it' "$work/out" 2>/dev/null && break
  kill -0 "$dev_pid" 2>/dev/null || { dump; echo "edgefort-dev exited before it was ready" >&2; exit 1; }
  sleep 0.1
done
grep -q 'Ctrl-C stops it' "$work/out" || { dump; echo "edgefort-dev did not become ready in 300 s" >&2; exit 1; }

field() { awk -v k="$1" '$1 == k { print $2 }' "$work/out"; }
socket=$(awk '$1 == "admin" && $2 == "socket" { print $3 }' "$work/out")
metrics=$(field metrics)
state_dir=$(awk '$1 == "state" && $2 == "dir" { print $3 }' "$work/out")
echo "socket=$socket metrics=$metrics state_dir=$state_dir"

check "banner names the admin socket" test -S "$socket"
check "admin socket is mode 0600" test "$(stat -c %a "$socket")" = 600
"$ef" status --socket "$socket" >"$work/status" || true
cat "$work/status"
check "status lists admin running" grep -Eq '^admin +running' "$work/status"
check "status lists metrics running" grep -Eq '^metrics +running' "$work/status"
check "status lists keystore running" grep -Eq '^keystore +running' "$work/status"
check "status lists clientapi running" grep -Eq '^clientapi +running' "$work/status"
check "status --json says ready" sh -c "'$ef' status --json --socket '$socket' | grep -q '\"ready\": true'"
check "readyz answers 200" test "$(curl -s -o /dev/null -w '%{http_code}' --unix-socket "$socket" http://edgefort/readyz)" = 200
check "healthz answers 200" test "$(curl -s -o /dev/null -w '%{http_code}' --unix-socket "$socket" http://edgefort/healthz)" = 200
curl -sf "$metrics" >"$work/metrics" || true
check "metrics are scrapeable" grep -q '^edgefort_supervisor_component_up{component="admin"} 1' "$work/metrics"
check "metrics include the Go runtime" grep -q '^go_goroutines ' "$work/metrics"
check "metrics include the process" grep -q '^process_resident_memory_bytes ' "$work/metrics"

# The expired-certificate walkthrough the banner prints: a new keystore, the
# new certificate under the same alias, the reference repointed; the virtual
# host serves it from the next handshake, with no restart.
export EDGEFORT_CONFIG=$(awk '$1 == "config" { print $2 }' "$work/out")
hub=$(awk '$1 == "virtual" && $2 == "host" { print $4 }' "$work/out")
ca="$state_dir/dev-ca/ca.crt"
served() { openssl s_client -connect "${hub#https://}" -CAfile "$ca" -verify_return_error </dev/null 2>/dev/null | openssl x509 -noout -serial; }
before=$(served)
check "the hub serves a certificate the dev CA vouches for ($before)" test -n "$before"
check "status warns that it expires soon" sh -c "'$ef' status | grep -q '^CERTIFICATE dev-hub-1/hub: certificate CN=localhost expires in'"
check "healthz over TLS" test "$(curl -s --cacert "$ca" "$hub/healthz")" = ok
openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj /CN=localhost \
  -keyout "$work/new.key" -out "$work/new.csr" 2>/dev/null
printf 'subjectAltName=DNS:localhost,IP:127.0.0.1' >"$work/san.ext"
openssl x509 -req -in "$work/new.csr" -CA "$ca" -CAkey "$state_dir/dev-ca/ca.key" -days 365 \
  -extfile "$work/san.ext" -out "$work/new.crt" 2>/dev/null
check "keystore create dev-hub-2" "$ef" keystore create dev-hub-2
check "keystore import under the same alias" "$ef" keystore import dev-hub-2 hub --key "$work/new.key" --cert "$work/new.crt"
check "ref set hub-tls dev-hub-2" "$ef" ref set hub-tls dev-hub-2
after=$(served)
want=$(openssl x509 -in "$work/new.crt" -noout -serial)
check "the hub now serves the new certificate ($after)" test "$after" = "$want"
check "the old keystore can go once nothing points at it" "$ef" keystore delete dev-hub-1
check "status has no certificate warning left" sh -c "! '$ef' status | grep -q '^CERTIFICATE'"
walk_end=$(sed -n '/Replace it with no restart/,/Ctrl-C stops it/p' "$work/out" | grep '^  ' | tail -2 | awk '{ print $(NF-1), $NF }' | tr '\n' ' ')
check "the banner's walkthrough ends so too (got: $walk_end)" test "$walk_end" = "delete dev-hub-1 edgefort status "
# The update channel: `edgefort-dev deploy` builds a single-file Artifact,
# uploads it to the dev update server, deploys it and follows the statuses.
check "banner names the update server" grep -Eq '^  update server https://127\.0\.0\.1:[0-9]+ ' "$work/out"
printf 'hello from the update channel\n' >"$work/hello.txt"
deploy() { # deploy OUT ARGS...: runs `edgefort-dev deploy ARGS` with its output in OUT
  local out=$1; shift
  "$efdev" deploy "$@" >"$out" 2>&1
}
rc=0; deploy "$work/deploy1" "$work/hello.txt" || rc=$?
cat "$work/deploy1"
check "dev deploy of a file ends in success (exit $rc)" sh -c "test $rc = 0 && grep -qx '  success' '$work/deploy1'"
name1=$(awk '$1 == "built" { sub(":$", "", $2); print $2 }' "$work/deploy1")
check "the file lands in the state dir's deployed/ with its content" cmp -s "$work/hello.txt" "$state_dir/deployed/hello.txt"
check "update status names the new Artifact ($name1)" sh -c "'$ef' update status | grep -qx 'artifact:   $name1'"

# A second version, built with `edgefort artifact write` and deployed with
# --artifact; then the same Artifact again, which the server answers with
# already-installed (names are unique, and the device runs it).
mkdir "$work/v2"
printf 'hello again, version 2\n' >"$work/v2/hello.txt"
printf '%s' "$state_dir/deployed" >"$work/v2/dest_dir"
printf 'hello.txt' >"$work/v2/filename"
printf '644' >"$work/v2/permissions"
check "artifact write module-image builds version 2" "$ef" artifact write module-image -T single-file -t edgefort-dev \
  -n demo-hello-2 -o "$work/hello-2.mender" \
  -f "$work/v2/hello.txt" -f "$work/v2/dest_dir" -f "$work/v2/filename" -f "$work/v2/permissions"
rc=0; deploy "$work/deploy2" --artifact "$work/hello-2.mender" || rc=$?
cat "$work/deploy2"
check "dev deploy --artifact of version 2 ends in success (exit $rc)" test "$rc" = 0
check "the deployed file now holds version 2" cmp -s "$work/v2/hello.txt" "$state_dir/deployed/hello.txt"
check "update status names demo-hello-2" sh -c "'$ef' update status | grep -qx 'artifact:   demo-hello-2'"
rc=0; deploy "$work/deploy3" --artifact "$work/hello-2.mender" || rc=$?
cat "$work/deploy3"
check "the same Artifact again ends already-installed, exit 1 (exit $rc)" \
  sh -c "test $rc = 1 && grep -qx '  already-installed' '$work/deploy3' && grep -q 'on the update server already' '$work/deploy3'"
check "the deployed file still holds version 2" cmp -s "$work/v2/hello.txt" "$state_dir/deployed/hello.txt"

# A destination that cannot be created: the deployment fails, says why, and
# the device keeps what it ran.
: >"$work/not-a-dir"
rc=0; deploy "$work/deploy4" --dest "$work/not-a-dir/sub" "$work/hello.txt" || rc=$?
cat "$work/deploy4"
check "a deployment into an impossible dest ends failure, exit 1 (exit $rc)" \
  sh -c "test $rc = 1 && grep -qx '  failure' '$work/deploy4' && grep -q 'ended failure: .*ArtifactInstall' '$work/deploy4'"
check "after the failure update status still names demo-hello-2" sh -c "'$ef' update status | grep -qx 'artifact:   demo-hello-2'"

# The control plane link: `edgefort-dev` enrolled the node with devcloud's
# control plane; decisions come from its policy (and then the node's
# cache); reports go through the durable outbox to its sink.
check "banner names the control plane and the enrollment" grep -Eq '^  control plane https://127\.0\.0\.1:[0-9]+ \(devcloud; enrolled as dev-[0-9a-f]+;' "$work/out"
"$ef" cloud status >"$work/cloud" 2>&1 || true
cat "$work/cloud"
check "cloud status shows the enrolled device" grep -Eq '^device +dev-[0-9a-f]+ \(enrolled ' "$work/cloud"
check "the device certificate is behind ref://device-tls" sh -c "'$ef' ref list | grep -Eq '^ref://device-tls +device-dev-'"
rc=0; "$ef" cloud authorize --user alice --action app.reload --space sales --app q3-report >"$work/allow" 2>&1 || rc=$?
cat "$work/allow"
check "alice may reload an app in sales (exit $rc)" sh -c "test $rc = 0 && grep -q '^ALLOW alice has role developer in space sales (cloud)' '$work/allow'"
rc=0; "$ef" cloud authorize --user bob --group analysts --action app.reload --space sales --app q3-report >"$work/deny" 2>&1 || rc=$?
cat "$work/deny"
check "bob (a viewer through analysts) may not, exit 1 (exit $rc)" sh -c "test $rc = 1 && grep -q '^DENY ' '$work/deny'"
check "the same question again comes from the cache" sh -c "'$ef' cloud authorize --user alice --action app.reload --space sales --app q3-report | grep -q '(cache)$'"
check "a report is queued in the outbox" sh -c "'$ef' cloud report app.reloaded '{\"app\":\"q3-report\"}' | grep -Eq '^queued [A-Za-z0-9_-]+$'"
delivered=false
for _ in $(seq 50); do
  if "$ef" cloud status | grep -Eq '^outbox +0 queued'; then delivered=true; break; fi
  sleep 0.1
done
check "the report is delivered and acknowledged (outbox empty)" test "$delivered" = true
# The running stack describes itself in one file; the control plane's part:
stack_json="$state_dir/devcloud/stack.json"
check "the banner names the stack's info file" grep -q "^  stack info    $stack_json " "$work/out"
cp_field() { sed -n "/\"control_plane\": {/,/}/ s/.*\"$1\": \"\(.*\)\".*/\1/p" "$stack_json"; }
cp_url=$(cp_field url)
cp_dev=$(cp_field device_id)
cp_tok=$(cp_field management_token)
curl -s --cacert "$state_dir/dev-ca/ca.crt" -H "Authorization: Bearer $cp_tok" "$cp_url/api/management/dev/devices/$cp_dev/reports" >"$work/sink" || true
cat "$work/sink"; echo
check "the control plane's sink recorded the report, once" sh -c "grep -q '\"type\":\"app.reloaded\"' '$work/sink' && grep -Eq '\"deliveries\":\{\"[A-Za-z0-9_-]+\":1\}' '$work/sink'"
check "the outbox metrics count one report sent" sh -c "curl -s '$metrics' | grep -q '^edgefort_cloud_outbox_sent_total 1'"

# The event link: a cloud event published on devcloud's SigV4-checking
# broker reaches the node over its own outbound connection; a webhook
# event is POSTed to the local engine stand-in and its result comes back to
# the control plane's sink through the outbox.
check "banner names the event link" grep -Eq '^  event link    wss://127\.0\.0\.1:[0-9]+/mqtt ' "$work/out"
check "status shows the event link connected" sh -c "'$ef' status | grep -Eq '^event link connected '"
rc=0; "$efdev" event webhook '{"app":"q3-report","action":"reload"}' >"$work/event1" 2>&1 || rc=$?
cat "$work/event1"
check "a webhook event ends done, its result back in the sink (exit $rc)" sh -c "test $rc = 0 && grep -q '^result done' '$work/event1'"
ev1=$(awk '$1 == "published" { print $2 }' "$work/event1")
check "the local engine received the webhook ($ev1) once" sh -c "test \$(grep -c '\"event_id\":\"$ev1\"' '$state_dir/dev-engine/requests.jsonl') = 1 && grep -q '\"app\":\"q3-report\"' '$state_dir/dev-engine/requests.jsonl'"
rc=0; "$efdev" event launch.rocket >"$work/event2" 2>&1 || rc=$?
cat "$work/event2"
check "an unknown event type is rejected, exit 1 (exit $rc)" sh -c "test $rc = 1 && grep -q '^result rejected unknown event type' '$work/event2'"

printf '{"operation":"webhook","app":"q3-report","action":"reload"}' >"$work/job.json"
rc=0; "$efdev" job "$work/job.json" >"$work/job1" 2>&1 || rc=$?
cat "$work/job1"
check "an AWS IoT job runs to SUCCEEDED (exit $rc)" sh -c "test $rc = 0 && grep -q '^  SUCCEEDED' '$work/job1'"
printf '{"operation":"self.destruct"}' >"$work/job2.json"
rc=0; "$efdev" job "$work/job2.json" >"$work/job2" 2>&1 || rc=$?
cat "$work/job2"
check "a job with an unknown operation is REJECTED, exit 1 (exit $rc)" sh -c "test $rc = 1 && grep -q '^  REJECTED .*unknown operation' '$work/job2'"

# The cloud's limits, played with `edgefort-dev fault`: Hosted Mender's 429
# with Retry-After on the update channel's poll (the node does not ask
# again before it ends, not even when told to check), then AWS IoT's connect quota spent and the connections
# cut (the event link counts its attempts throttled and backs off), then
# both cleared: the link back within seconds (the dev config's short
# reconnect windows), the polls answered again. Each wait is bounded.
next_polls() { "$efdev" fault mender | sed -n 's/.* next=\([0-9]*\) .*/\1/p' || true; }
waitfor() { # waitfor TENTHS COMMAND...: until COMMAND succeeds, at most TENTHS tenths of a second
  local n=$1; shift
  for _ in $(seq "$n"); do "$@" && return 0; sleep 0.1; done
  return 1
}
rc=0; "$efdev" fault mender --429 --retry-after 15s >"$work/fault1" 2>&1 || rc=$?
cat "$work/fault1"
check "fault mender --429 answers the poll 429 (exit $rc)" \
  sh -c "test $rc = 0 && grep -q '^faults:   429 on next (Retry-After 15s) until cleared' '$work/fault1'"
"$ef" update check >/dev/null || true
got=0; waitfor 100 sh -c "'$ef' update status | grep -q '^last check: .*(failed: .*too many requests, retry after 15s)'" || got=$?
"$ef" update status >"$work/us429" || true
cat "$work/us429"
check "update status shows the 429 and its Retry-After" test "$got" = 0
last=$(sed -n 's/^last check: \([^ ]*\) .*/\1/p' "$work/us429")
next=$(sed -n 's/^next check: //p' "$work/us429")
wait_s=$(( $(date -d "${next:-1970-01-01T00:00:00Z}" +%s) - $(date -d "${last:-now}" +%s) ))
check "the next check is at least the Retry-After away (${wait_s}s)" test "$wait_s" -ge 15
polls=$(next_polls)
# Asked again inside the Retry-After, the check waits for its end.
rc=0; "$ef" update check >"$work/held" 2>&1 || rc=$?
cat "$work/held"
check "update check inside the Retry-After is held until it ends (exit $rc)" \
  sh -c "test $rc = 0 && grep -q 'the server answered 429, so it runs when its Retry-After ends, at ' '$work/held'"
polls2=$(next_polls)
check "the node did not poll while the 429 was on ($polls, then $polls2)" test "$polls2" = "$polls"
rc=0; "$efdev" fault mender --clear >"$work/fault4" 2>&1 || rc=$?
check "fault mender --clear (exit $rc)" sh -c "test $rc = 0 && grep -q '^faults:   none' '$work/fault4'"
got=0; waitfor 300 sh -c "test \$('$efdev' fault mender | sed -n 's/.* next=\([0-9]*\) .*/\1/p') -gt '$polls' && ! '$ef' update status | grep -q '(failed:'" || got=$?
check "after the Retry-After, the held check is answered" test "$got" = 0
rc=0; "$efdev" fault broker --connect-rate 0.01 --spent --drop >"$work/fault2" 2>&1 || rc=$?
cat "$work/fault2"
check "fault broker spends the connect quota and cuts the link (exit $rc)" \
  sh -c "test $rc = 0 && grep -q '^faults:   connect rate 0.01/s, bucket spent at the start' '$work/fault2'"
got=0; waitfor 200 sh -c "'$ef' status | grep -Eq '^event link .* \([1-9][0-9]* throttled by the service\)'" || got=$?
"$ef" status | grep '^event link' || true
check "status shows the event link throttled by the service" test "$got" = 0
check "the metrics count the throttled connects" sh -c "curl -s '$metrics' | grep -Eq '^edgefort_iot_connects_throttled_total [1-9]'"
rc=0; "$efdev" fault broker --clear >"$work/fault3" 2>&1 || rc=$?
cat "$work/fault3"
check "fault broker --clear; the broker counted the refusals (exit $rc)" \
  sh -c "test $rc = 0 && grep -q '^faults:   none' '$work/fault3' && grep -Eq 'refused .*throttled=[1-9]' '$work/fault3'"
# A throttled attempt waits up to 5 s, then 10 s, ... in the dev config.
got=0; waitfor 300 sh -c "'$ef' status | grep -q '^event link connected '" || got=$?
check "the event link is connected again after the clear" test "$got" = 0

# The client API: the hub authenticates the control plane's user tokens
# (then the anonymous user on the public route), asks the policy about every
# route, and proxies to the local engine with the user's identity: headers
# and a JWT the node signs, which the engine verifies against the node's
# JWKS. The engine answers with what it received.
alice=$(cp_field user_token)
bob=$(cp_field viewer_token)
check "the banner hands out alice's and bob's tokens" sh -c "grep -q '^  export EDGEFORT_USER_TOKEN=$alice\$' '$work/out' && grep -q '^  BOB_TOKEN=$bob\$' '$work/out'"
hubreq() { # hubreq OUT ARGS...: curl ARGS against the hub, body in OUT, prints the status
  local out=$1; shift
  curl -s --cacert "$ca" -o "$out" -w '%{http_code}' "$@" || true
}
app="$hub/api/v1/apps/q3-report"
code=$(hubreq "$work/alice.json" -H "Authorization: Bearer $alice" -H 'X-Edgefort-User: admin' "$app")
cat "$work/alice.json"
check "alice's request is proxied to the engine, 200 (got $code)" test "$code" = 200
check "the engine received X-Edgefort-User alice" grep -q '"user": "alice"' "$work/alice.json"
check "the engine verified the node's identity JWT for alice" sh -c "grep -q '\"verified\": true' '$work/alice.json' && grep -q '\"sub\": \"alice\"' '$work/alice.json'"
check "a client-sent X-Edgefort-User: admin does not reach the engine" sh -c "! grep -q admin '$work/alice.json'"
code=$(hubreq "$work/bob-read.json" -H "Authorization: Bearer $bob" "$app")
check "bob (a viewer) may read the app, 200 (got $code)" sh -c "test $code = 200 && grep -q '\"user\": \"bob\"' '$work/bob-read.json'"
code=$(hubreq "$work/bob-reload.json" -H "Authorization: Bearer $bob" -X POST "$app/reload")
check "bob may not reload it, 403 (got $code)" test "$code" = 403
code=$(hubreq "$work/alice-reload.json" -H "Authorization: Bearer $alice" -X POST "$app/reload")
check "alice (a developer) may, 200 (got $code)" sh -c "test $code = 200 && grep -q '\"reloaded\": true' '$work/alice-reload.json'"
code=$(hubreq "$work/none.json" "$app")
check "a request without a token is 401 (got $code)" test "$code" = 401
code=$(hubreq "$work/anon.json" -H 'X-Edgefort-User: admin' "$hub/public/api/v1/whoami")
cat "$work/anon.json"
check "the public route answers 200 as the anonymous user (got $code)" sh -c "test $code = 200 && grep -q '\"user\": \"anonymous\"' '$work/anon.json' && ! grep -q admin '$work/anon.json'"
rc=0; EDGEFORT_USER_TOKEN=$alice "$efdev" ws "wss://${hub#https://}/api/v1/apps/q3-report/ws" --message 'hello engine' >"$work/ws" 2>&1 || rc=$?
cat "$work/ws"
check "a WebSocket round trip through the node with edgefort-dev ws (exit $rc)" sh -c "test $rc = 0 && grep -qx 'echo hello engine' '$work/ws'"
check "the WebSocket hello shows alice's identity" sh -c "grep '^hello ' '$work/ws' | grep -q '\"headers\":{\"user\":\"alice\"' && grep '^hello ' '$work/ws' | grep -q '\"sub\":\"alice\"'"
rc=0; EDGEFORT_USER_TOKEN= "$efdev" ws "wss://${hub#https://}/api/v1/apps/q3-report/ws" --message x >"$work/ws-none" 2>&1 || rc=$?
check "without a token edgefort-dev ws is refused, exit 3 (exit $rc)" sh -c "test $rc = 3 && grep -q '^refused: 401' '$work/ws-none'"

# The header solution: the virtual host proxied takes the user from
# X-Remote-User, believed only from the dev reverse proxy's address
# 127.0.0.2 (curl --interface); the same header from 127.0.0.1 is refused
# and never reaches the engine, whose API numbers the requests it receives.
proxied=$(awk '$1 == "proxied" && $2 == "host" { print $3 }' "$work/out")
check "banner names the proxied virtual host ($proxied)" sh -c "echo '$proxied' | grep -Eq '^https://127\.0\.0\.1:[0-9]+$'"
seq_of() { sed -n 's/^  "seq": \([0-9]*\),*$/\1/p' "$1"; }
code=$(hubreq "$work/hdr1.json" --interface 127.0.0.2 -H 'X-Remote-User: alice' "$proxied/api/v1/whoami")
cat "$work/hdr1.json"
check "a header login from the trusted proxy reaches the engine as alice, 200 (got $code)" \
  sh -c "test $code = 200 && grep -q '\"user\": \"alice\"' '$work/hdr1.json' && grep -q '\"directory\": \"proxy\"' '$work/hdr1.json'"
check "the engine received the Host the client sent" grep -q "\"host\": \"${proxied#https://}\"" "$work/hdr1.json"
code=$(hubreq "$work/hdr2.json" --interface 127.0.0.1 -H 'X-Remote-User: alice' "$proxied/api/v1/whoami")
cat "$work/hdr2.json"
check "the same header from 127.0.0.1 is refused, 401 (got $code)" \
  sh -c "test $code = 401 && grep -q '\"reason\":\"untrusted_header_source\"' '$work/hdr2.json'"
code=$(hubreq "$work/hdr3.json" --interface 127.0.0.2 -H 'X-Remote-User: alice' "$proxied/api/v1/whoami")
seq1=$(seq_of "$work/hdr1.json"); seq3=$(seq_of "$work/hdr3.json")
check "the refused request never reached the engine (its requests $seq1 then $seq3)" \
  sh -c "test $code = 200 && test -n '$seq1' && test '$seq3' = \$(($seq1 + 1))"
check "the refusal is audited with the solution's name" \
  sh -c "grep 'msg=authentication' '$work/err' | grep 'virtual_host=proxied' | grep -q 'client=127.0.0.1 solution=dev-proxy result=refused reason=untrusted_header_source'"
code=$(hubreq "$work/signin.json" "$proxied/.edgefort/signin?return_to=/public/")
check "sign-in there says no interactive solution is configured, 404 (got $code)" \
  sh -c "test $code = 404 && grep -q no_interactive_solution '$work/signin.json'"

# Ticket logins on the hub: a browser without credentials is sent to the
# dev authentication module, which gets a ticket from the node's auth API
# over mutual TLS and sends the browser back with it; the node redeems it
# once for a session cookie. A portal registers a session token through the
# same API and sets it in its own cookie, which the hub accepts.
module=$(awk '$1 == "auth" && $2 == "module" { print $3 }' "$work/out")
authapi=$(awk '$1 == "auth" && $2 == "API" { print $3 }' "$work/out")
check "banner names the auth module ($module) and the auth API ($authapi)" \
  sh -c "echo '$module $authapi' | grep -Eq '^https://127\.0\.0\.1:[0-9]+ https://127\.0\.0\.1:[0-9]+$'"
page="$hub/api/v1/apps/q3-report"
enc=$(printf '%s' "$page" | sed 's/:/%3A/g; s#/#%2F#g')
got=$(curl -s --cacert "$ca" -H 'Accept: text/html' -o /dev/null -w '%{http_code} %{redirect_url}' "$page" || true)
check "a browser without credentials is sent to the module's login page (got $got)" test "$got" = "303 $module/login?return_to=$enc"
got=$(curl -s --cacert "$ca" -o /dev/null -w '%{http_code} %{redirect_url}' "$module/login?user=bob&return_to=$page" || true)
ticket=${got#"303 $page?qlikTicket="}
tlen=${#ticket}; [ "$got" != "$ticket" ] || tlen=0
check "the module logs bob in and sends him back to the page with a ticket ($tlen characters)" test "$tlen" -ge 22
got=$(curl -s --cacert "$ca" -c "$work/jar" -D "$work/tk.hdr" -o /dev/null -w '%{http_code} %{redirect_url}' "$page?qlikTicket=$ticket" || true)
check "the ticket is redeemed: 303 to the page without it (got $got)" test "$got" = "303 $page"
check "with a Secure HttpOnly session cookie" sh -c "grep -i '^set-cookie: edgefort-session-hub=' '$work/tk.hdr' | grep -i secure | grep -qi httponly"
code=$(hubreq "$work/tk.json" -b "$work/jar" "$page")
cat "$work/tk.json"
check "the session cookie reaches the engine as bob, 200 (got $code)" \
  sh -c "test $code = 200 && grep -q '\"user\": \"bob\"' '$work/tk.json' && grep -q '\"groups\": \"analysts\"' '$work/tk.json' && grep -q '\"verified\": true' '$work/tk.json'"
code=$(hubreq "$work/tk2.json" "$page?qlikTicket=$ticket")
check "the same ticket again is refused, 401 ticket_already_used (got $code)" \
  sh -c "test $code = 401 && grep -q ticket_already_used '$work/tk2.json'"
mcert="$state_dir/devcloud/auth-module.crt"; mkey="$state_dir/devcloud/auth-module.key"
rc=0; curl -s --cacert "$ca" -H 'Content-Type: application/json' -d '{"user_id":"alice","user_directory":"dev"}' \
  -o "$work/nocert" "$authapi/v1/tickets" || rc=$?
check "a ticket asked for without a client certificate: the handshake fails (curl exit $rc)" sh -c "test $rc != 0 && ! grep -q ticket '$work/nocert'"
code=$(curl -s --cacert "$ca" --cert "$mcert" --key "$mkey" -H 'Content-Type: application/json' \
  -d '{"user_id":"alice","user_directory":"dev","groups":["staff"]}' -o "$work/ticket.json" -w '%{http_code}' "$authapi/v1/tickets" || true)
check "the module's certificate gets a ticket straight from the auth API, 201 (got $code)" test "$code" = 201
ticket2=$(sed -n 's/.*"ticket":"\([^"]*\)".*/\1/p' "$work/ticket.json")
code=$(hubreq "$work/tk3.json" -L -c "$work/jar2" -b "$work/jar2" "$page?qlikTicket=$ticket2")
check "followed with a cookie jar it serves alice, 200 (got $code)" sh -c "test $code = 200 && grep -q '\"user\": \"alice\"' '$work/tk3.json'"
"$ef" sessions list >"$work/sessions" 2>&1 || true
cat "$work/sessions"
check "sessions list shows bob's and alice's ticket sessions" \
  sh -c "grep -Eq ' hub +dev/bob ' '$work/sessions' && grep -Eq ' hub +dev/alice ' '$work/sessions'"
check "sessions revoke --user dev/bob" sh -c "'$ef' sessions revoke --user dev/bob | grep -q '^revoked session .* of dev/bob on hub'"
code=$(hubreq "$work/tk4.json" -b "$work/jar" "$page")
check "bob's cookie fails at the next request, 401 (got $code)" test "$code" = 401
code=$(hubreq "$work/tk5.json" -b "$work/jar2" "$page")
check "alice's session still works, 200 (got $code)" test "$code" = 200
code=$(curl -s --cacert "$ca" -c "$work/portal.jar" -d user=alice -o "$work/portal" -w '%{http_code}' "$module/portal/login" || true)
check "the portal registers a session for alice and sets its cookie, 200 (got $code)" \
  sh -c "test $code = 200 && grep -q PortalSession '$work/portal.jar'"
code=$(hubreq "$work/portal.json" -b "$work/portal.jar" "$page")
check "the portal's cookie reaches the engine as alice, 200 (got $code)" \
  sh -c "test $code = 200 && grep -q '\"user\": \"alice\"' '$work/portal.json' && grep -q '\"directory\": \"dev\"' '$work/portal.json'"
check "no ticket or session id in the agent's log" sh -c "! grep -qF -e '$ticket' -e '$ticket2' '$work/err'"

# Federated logins: edgefort-dev runs npm samlify (a SAML IdP with a login
# form) and npm oidc-provider (ID tokens encrypted to the node's key pair)
# as its children; the virtual host sso signs browsers in through either.
# curl shows the first steps; `edgefort-dev login` takes all of a
# browser's (the IdP's login form, OIDC's consent page, the way back
# through the node's ACS or callback, the engine's page).
sso=$(awk '$1 == "sso" && $2 == "host" { print $3 }' "$work/out")
samlidp=$(awk '$1 == "SAML" && $2 == "IdP" { print $3 }' "$work/out")
check "banner names the sso host ($sso) and the SAML IdP ($samlidp)" \
  sh -c "echo '$sso $samlidp' | grep -Eq '^https://localhost:[0-9]+ http://127\.0\.0\.1:[0-9]+$'"
got=$(curl -s --cacert "$ca" -H 'Accept: text/html' -o /dev/null -w '%{http_code} %{redirect_url}' "$sso/" || true)
check "a browser without a session is sent to the node's login chooser (got $got)" \
  sh -c "echo '$got' | grep -q '^303 $sso/.edgefort/login?return_to=%2F$'"
curl -s --cacert "$ca" -H 'Accept: text/html' -o "$work/chooser.html" "$sso/.edgefort/login?return_to=%2F" || true
check "the chooser links to the SAML IdP and the OpenID provider by name" \
  sh -c "grep -q '>Dev SAML IdP (samlify)</a>' '$work/chooser.html' && grep -q '>Dev OpenID provider (oidc-provider)</a>' '$work/chooser.html'"
samllink=$(sed -n 's|.*<a href="\([^"]*\)">Dev SAML IdP (samlify)</a>.*|\1|p' "$work/chooser.html" | sed 's/&amp;/\&/g')
got=$(curl -s --cacert "$ca" -H 'Accept: text/html' -o /dev/null -w '%{http_code} %{redirect_url}' "$sso$samllink" || true)
check "its SAML link sends the browser to the SAML IdP with an AuthnRequest (got ${got%%SAMLRequest=*}...)" \
  sh -c "echo '$got' | grep -Eq '^30[23] $samlidp/sso[?]SAMLRequest='"
curl -s -L --cacert "$ca" -H 'Accept: text/html' -c "$work/sso.jar" -b "$work/sso.jar" -o "$work/idp-form.html" "$sso$samllink" || true
check "which shows its login form (user name and password)" \
  sh -c "grep -q 'name=\"username\"' '$work/idp-form.html' && grep -q 'type=\"password\"' '$work/idp-form.html'"
for idp in saml oidc; do
  rc=0; "$efdev" login "$idp" --user alice --password alice-dev >"$work/login-$idp" 2>&1 || rc=$?
  cat "$work/login-$idp"
  check "alice signs in through $idp and reaches the engine's page as herself (exit $rc)" \
    sh -c "test $rc = 0 && grep -qx '  user: alice' '$work/login-$idp' && grep -q '^  identity token: verified' '$work/login-$idp'"
  rc=0; "$efdev" login "$idp" --user alice --password not-her-password >"$work/login-$idp-bad" 2>&1 || rc=$?
  check "a wrong password at the $idp IdP is refused, exit 1 (exit $rc)" \
    sh -c "test $rc = 1 && grep -q 'refused the user name or password' '$work/login-$idp-bad'"
done
check "the OIDC login's user came from the ID token encrypted to the node's key pair (directory dev-oidc)" \
  grep -qx '  directory: dev-oidc' "$work/login-oidc"
rc=0; "$efdev" login oidc --user bob --password bob-dev >"$work/login-bob" 2>&1 || rc=$?
check "bob signs in through oidc with his groups (analysts) (exit $rc)" \
  sh -c "test $rc = 0 && grep -qx '  user: bob' '$work/login-bob' && grep -qx '  groups: analysts' '$work/login-bob'"
"$ef" sessions list >"$work/sessions2" 2>&1 || true
check "sessions list shows the sso host's SAML and OIDC sessions" \
  sh -c "grep -Eq ' sso +corp/alice ' '$work/sessions2' && grep -Eq ' sso +dev-oidc/alice ' '$work/sessions2'"
# A full system update on the simulated A/B device (partition files part2
# and part3 under the state dir, a GRUB grub-mender-grubenv environment):
# a rootfs-image Artifact written by the real mender-artifact goes into the
# partition not booted; the "reboot" (the agent's reboot_command) stops the
# agent, the device boots the partition GRUB picks, and a new agent
# verifies and commits. Then two that fail, the device staying on the
# committed system: a system that never comes up (GRUB falls back; written
# with `edgefort artifact write`), and a corrupted payload (its checksum
# fails before anything boots). Last in the demo: the agent's ports change
# at each boot.
device="$state_dir/device"
grubenv() { grub-editenv "$device/boot/EFI/BOOT/mender_grubenv1/env" list >"$work/grubenv" || true; }
check "banner names the A/B device, booted from part2" grep -q "^  A/B device    $device (simulated: .*; booted part2)$" "$work/out"
head -c 1048576 /dev/urandom >"$work/rootfs.img"
check "mender-artifact writes a rootfs-image Artifact" sh -c "mender-artifact write rootfs-image -f '$work/rootfs.img' -n demo-rootfs-1 -t edgefort-dev -o '$work/rootfs-1.mender' >/dev/null 2>&1"
rc=0; deploy "$work/deploy-rootfs1" --artifact "$work/rootfs-1.mender" || rc=$?
cat "$work/deploy-rootfs1"
check "the rootfs-image deployment reboots and ends in success (exit $rc)" \
  sh -c "test $rc = 0 && grep -qx '  rebooting' '$work/deploy-rootfs1' && grep -qx '  success' '$work/deploy-rootfs1'"
check "the update server's inventory has rootfs-image.version=demo-rootfs-1" grep -qx '  inventory: rootfs-image.version=demo-rootfs-1' "$work/deploy-rootfs1"
check "the image is in part3, the partition not booted before" cmp -s -n 1048576 "$work/rootfs.img" "$device/part3"
check "the device runs part3 now" grep -q "root=$device/part3 " "$device/cmdline"
grubenv
check "grub-editenv reads part3 committed (mender_boot_part=3, upgrade_available=0)" \
  sh -c "grep -qx mender_boot_part=3 '$work/grubenv' && grep -qx upgrade_available=0 '$work/grubenv'"
check "the log shows the reboot and the commit" \
  sh -c "grep -q 'msg=\"simulated device booted\".*part3' '$work/err' && grep -q 'msg=\"artifact committed\" .*artifact=demo-rootfs-1' '$work/err'"
check "update status names demo-rootfs-1 and its version" \
  sh -c "'$ef' update status | grep -qx 'artifact:   demo-rootfs-1' && '$ef' update status | grep -qx 'provides:   rootfs-image.version=demo-rootfs-1'"
{ printf 'EDGEFORT-DEV-KERNEL-PANIC'; head -c 65536 /dev/urandom; } >"$work/panic.img"
check "edgefort artifact write rootfs-image builds a system that panics" \
  "$ef" artifact write rootfs-image -f "$work/panic.img" -n demo-rootfs-panic -t edgefort-dev -o "$work/rootfs-panic.mender"
rc=0; deploy "$work/deploy-rootfs2" --artifact "$work/rootfs-panic.mender" || rc=$?
cat "$work/deploy-rootfs2"
check "a new system that never comes up: rebooting, then failure, exit 1 (exit $rc)" \
  sh -c "test $rc = 1 && grep -qx '  rebooting' '$work/deploy-rootfs2' && grep -qx '  failure' '$work/deploy-rootfs2' && grep -q 'ended failure: .*the boot loader fell back' '$work/deploy-rootfs2'"
grubenv
check "the device is back on part3, committed" \
  sh -c "grep -q 'root=$device/part3 ' '$device/cmdline' && grep -qx mender_boot_part=3 '$work/grubenv' && grep -qx upgrade_available=0 '$work/grubenv'"
check "part3 still holds demo-rootfs-1" cmp -s -n 1048576 "$work/rootfs.img" "$device/part3"
check "update status still names demo-rootfs-1" sh -c "'$ef' update status | grep -qx 'artifact:   demo-rootfs-1'"
# The corrupted payload: one byte of the image flipped inside an
# uncompressed Artifact, after the manifest recorded its checksum.
{ printf 'DEMO-CORRUPT-ME'; head -c 65536 /dev/urandom; } >"$work/corrupt.img"
mender-artifact write rootfs-image -f "$work/corrupt.img" -n demo-rootfs-corrupt -t edgefort-dev --compression none -o "$work/rootfs-corrupt.mender" >/dev/null 2>&1
off=$(grep -obUa 'DEMO-CORRUPT-ME' "$work/rootfs-corrupt.mender" | head -1 | cut -d: -f1)
printf 'X' | dd of="$work/rootfs-corrupt.mender" bs=1 seek="$off" conv=notrunc status=none
rc=0; deploy "$work/deploy-rootfs3" --artifact "$work/rootfs-corrupt.mender" || rc=$?
cat "$work/deploy-rootfs3"
check "a corrupted payload fails its checksum: failure without a reboot, exit 1 (exit $rc)" \
  sh -c "test $rc = 1 && grep -qx '  failure' '$work/deploy-rootfs3' && ! grep -qx '  rebooting' '$work/deploy-rootfs3' && grep -qi 'checksum' '$work/deploy-rootfs3'"
grubenv
check "the device still runs demo-rootfs-1 on part3" \
  sh -c "grep -q 'root=$device/part3 ' '$device/cmdline' && grep -qx mender_boot_part=3 '$work/grubenv' && '$ef' update status | grep -qx 'artifact:   demo-rootfs-1'"

idp_pids=""
for st in /proc/[0-9]*/stat; do
  { read -r pid comm _ ppid _ <"$st"; } 2>/dev/null || continue
  if [ "$ppid" = "$dev_pid" ] && [ "$comm" = "(node)" ]; then idp_pids="$idp_pids $pid"; fi
done
check "the dev IdPs are edgefort-dev's children (node pids: $idp_pids)" test "$(echo $idp_pids | wc -w)" = 2

check "the agent never restarted a component" sh -c "'$ef' status --json | grep -q '\"restarts\": [1-9]' && exit 1 || exit 0"

kill -INT "$dev_pid"
rc=0
for _ in $(seq 150); do kill -0 "$dev_pid" 2>/dev/null || break; sleep 0.1; done
if kill -0 "$dev_pid" 2>/dev/null; then
  rc=timeout
else
  wait "$dev_pid" || rc=$?
fi
dev_pid=""
check "Ctrl-C exits 0 within 15 s (got $rc)" test "$rc" = 0
check "the temporary state directory is removed" test ! -e "$state_dir"
left=""; for p in $idp_pids; do kill -0 "$p" 2>/dev/null && left="$left $p"; done
check "the dev IdPs stopped with it (left:${left:- none})" test -z "$left"
check "shutdown is logged" grep -q 'msg=stopped' "$work/err"

[ "$failed" = 0 ] || dump
echo "demo: $passed passed, $failed failed"
[ "$failed" = 0 ]
