#!/usr/bin/env bash
# End-to-end comparison of the vendored nginx with and without ngx_vts, and with stub_status,
# on the same configuration. Not part of the test suite. Prints one table at the end and writes
# it to target/e2e-report.txt (the callgrind attribution goes to target/e2e-attribution.txt).
#
#   bash benches/e2e.sh                   # everything, about 4 minutes on 2 cores (+ the build)
#   E2E_QUICK=1 bash benches/e2e.sh       # shorter runs, about 2.5 minutes
#   E2E_PARTS="cg wrk" bash benches/e2e.sh
#
# Parts:
#   cg      Instructions per request (valgrind --tool=callgrind, single-process nginx): total
#           instructions of a run with W warm-up + N requests minus those of a run with W
#           requests, divided by N. Deterministic. Cases: `return 200`, a small static file,
#           a proxy_pass to a backend server in the same nginx. The client (one keep-alive
#           connection) runs outside valgrind.
#   cgscrape  Instructions of one scrape of E2E_KEYS keys (1 + 2 scrapes minus 1), by function,
#           every key written first (one request each).
#   wrk     Interleaved wrk runs (plain, stub_status, vts, round after round, order rotated) on
#           `return 200`: req/s and per-round ratios to plain nginx, and requests per second of
#           the workers' CPU time (/proc), which holds up when wrk or other processes are the limit.
#   scrape  The scrape latency and the workers' CPU time per scrape at 10, 1,000 and E2E_KEYS
#           server zones, with E2E_SCRAPE_WORKERS (2) workers, every key written in every worker's
#           shard first (kaclient.py --keys: one request per key through each worker; the key
#           servers listen on their own port with `reuseport`). Then the serving throughput of a
#           vhost with E2E_WORKERS workers while a curl loop scrapes /status back to back (20
#           scrapes per keep-alive connection), E2E_KEYS server zones, each written through every
#           worker, against the same without scrapes (interleaved).
#
# Knobs (defaults, quick defaults in brackets):
#   E2E_PARTS="cg cgscrape wrk scrape"  E2E_BUILD=1 (run cargo build --release first)
#   E2E_DEPS=1 (install the missing Debian packages first: bash .ci/install-deps valgrind)
#   E2E_STATUS_CACHE=1s (vts_status_cache on the module's /status; default: not set)
#   E2E_STATUS_EXTRA="sendfile_max_chunk 128k;" (more directives in the module's /status)
#   E2E_N=2000 [1000] requests measured, E2E_WARM=200 [100] warm-up requests
#   E2E_WORKERS=1 nginx workers for wrk and the throughput under scrapes, E2E_WRK_CONNS=32
#   E2E_SCRAPE_WORKERS=2 nginx workers for the scrape latency (issue 6's target: 2 workers)
#   E2E_WRK_SECS=5 [2], E2E_WRK_ROUNDS=5 [5]
#   E2E_SCRAPE_SECS=5 [2], E2E_SCRAPE_ROUNDS=5 [3], E2E_KEYS=10000, E2E_LAT_SAMPLES=21 [9]
#
# Needs: valgrind, wrk, curl, python3 (installed by .ci/install-deps when missing, with the build
# dependencies). Listens on free ports of 127.0.0.1 only; every process it starts is stopped by
# its pid on exit; every client call has a time limit.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

quick="${E2E_QUICK:-0}"
q() { if [ "$quick" = 1 ]; then echo "$2"; else echo "$1"; fi; }
PARTS="${E2E_PARTS:-cg cgscrape wrk scrape}"
N="${E2E_N:-$(q 2000 1000)}"
WARM="${E2E_WARM:-$(q 200 100)}"
WORKERS="${E2E_WORKERS:-1}"
SCRAPE_WORKERS="${E2E_SCRAPE_WORKERS:-2}"
WRK_CONNS="${E2E_WRK_CONNS:-32}"
WRK_SECS="${E2E_WRK_SECS:-$(q 5 2)}"
WRK_ROUNDS="${E2E_WRK_ROUNDS:-5}"
SCRAPE_SECS="${E2E_SCRAPE_SECS:-$(q 5 2)}"
SCRAPE_ROUNDS="${E2E_SCRAPE_ROUNDS:-$(q 5 3)}"
KEYS="${E2E_KEYS:-10000}"
# vts_status_cache for the module's /status (empty: not set, every scrape renders).
STATUS_CACHE="${E2E_STATUS_CACHE:-}"
# More directives for the module's /status location.
STATUS_EXTRA="${E2E_STATUS_EXTRA:-}"
LAT_SAMPLES="${E2E_LAT_SAMPLES:-$(q 21 9)}"

if [ "${E2E_DEPS:-1}" = 1 ]; then
    bash "$root/.ci/install-deps" valgrind
fi
for tool in valgrind wrk curl python3; do
    command -v "$tool" >/dev/null || { echo "e2e: $tool is required" >&2; exit 1; }
done

if [ "${E2E_BUILD:-1}" = 1 ]; then
    cargo build --release
fi

E2E="$root/target/e2e"
TOOL="python3 $root/benches/e2e/tool.py"
# Every client call is bounded: curl has a connect timeout here and a -m limit at each call;
# kaclient.py has socket timeouts and a deadline, and runs under timeout(1) as well.
CURL="curl -s --connect-timeout 5"
CLIENT="timeout 900 python3 $root/benches/e2e/kaclient.py"
rm -rf "$E2E"
mkdir -p "$E2E/bin" "$E2E/html/static" "$E2E/run"
# Private copies: a concurrent `cargo build` must not swap the module under a running nginx.
cp "$(cat target/release/nginx-path)" "$E2E/bin/nginx"
cp target/release/libngx_vts.so "$E2E/bin/libngx_vts.so"
NGINX="$E2E/bin/nginx"
MODULE="$E2E/bin/libngx_vts.so"
head -c 512 /dev/zero | tr '\0' 'x' > "$E2E/html/static/small.txt"
RESULTS="$E2E/results.txt"
: > "$RESULTS"
result() { echo "$1=$2" >> "$RESULTS"; }
log() { echo "e2e: $*" >&2; }

# --- processes: every pid we start is tracked and stopped on exit -----------------------------
# shellcheck source=benches/e2e/procs.sh
source "$root/benches/e2e/procs.sh"
cleanup() {
    local p
    touch "$E2E"/run/*/stop-scrapes 2>/dev/null || true
    for p in "${PIDS[@]+"${PIDS[@]}"}"; do stop "$p" QUIT 20; done
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# --- configuration ----------------------------------------------------------------------------
# conf DIR MODE VARIANT PORT BPORT [KEYS KPORT [WORKERS]]
#   MODE: cg (single process, for valgrind) or srv (master + WORKERS workers, default $WORKERS,
#         foreground)
#   VARIANT: plain | stub | noz (module loaded, no vts_zone) | vts | vtsup
#   KEYS server blocks k1.e2e .. kKEYS.e2e (one server zone each) listen on KPORT, with
#   `reuseport` (one listening socket per worker, so that a client can reach every worker), and
#   answer 404 with the pid of the worker as the body (kaclient.py --keys).
conf() {
    local dir="$1" mode="$2" variant="$3" port="$4" bport="$5" keys="${6:-0}" kport="${7:-0}"
    local workers="${8:-$WORKERS}" i
    mkdir -p "$dir/logs"
    {
        case "$variant" in noz | vts | vtsup) echo "load_module $MODULE;" ;; esac
        if [ "$mode" = cg ]; then
            echo "master_process off; daemon off; worker_processes 1;"
        else
            echo "daemon off; worker_processes $workers;"
        fi
        cat <<EOF
error_log logs/error.log warn;
pid logs/nginx.pid;
events { worker_connections 1024; }
http {
    access_log off;
    keepalive_requests 1000000;
    keepalive_timeout 300s;
EOF
        case "$variant" in vts | vtsup) echo "    vts_zone main 32m;" ;; esac
        [ "$variant" = vtsup ] && echo "    vts_upstream_stats on;"
        [ "$keys" -gt 0 ] && echo "    server_names_hash_max_size 262144; server_names_hash_bucket_size 64;"
        cat <<EOF
    upstream backend { server 127.0.0.1:$bport; }
    server {
        listen 127.0.0.1:$port default_server;
        server_name bench.local;
        location = / { return 200 "ok\n"; }
        location /static/ { root $E2E/html; }
        location /proxy/ { proxy_pass http://backend; }
EOF
        # The same location tree in every variant: only the handler of /status differs.
        case "$variant" in
            stub) echo "        location = /status { stub_status; }" ;;
            vts | vtsup) echo "        location = /status { vts_status;${STATUS_CACHE:+ vts_status_cache $STATUS_CACHE;}${STATUS_EXTRA:+ $STATUS_EXTRA} }" ;;
            *) echo "        location = /status { return 404; }" ;;
        esac
        cat <<EOF
    }
    server {
        listen 127.0.0.1:$bport;
        server_name backend.local;
        location / { return 200 "ok\n"; }
    }
EOF
        if [ "$keys" -gt 0 ]; then
            echo "    server { listen 127.0.0.1:$kport reuseport; server_name k1.e2e; return 404 \"\$pid\\n\"; }"
        fi
        for ((i = 2; i <= keys; i++)); do
            echo "    server { listen 127.0.0.1:$kport; server_name k$i.e2e; return 404 \"\$pid\\n\"; }"
        done
        echo "}"
    } > "$dir/nginx.conf"
}

# start_srv DIR: a native nginx (master + workers) in the foreground, tracked. Sets SRV_PID.
start_srv() {
    local dir="$1" i
    timeout 120 "$NGINX" -p "$dir" -c nginx.conf -t -q 2>"$dir/t.log" || { cat "$dir/t.log" >&2; return 1; }
    "$NGINX" -p "$dir" -c nginx.conf 2>>"$dir/logs/stderr.log" &
    SRV_PID=$!
    track "$SRV_PID"
    wait_pidfile "$dir" "$SRV_PID" 60
    # The workers accept once they have started: wait for an answer.
    local port
    port="$(sed -n 's/.*listen 127.0.0.1:\([0-9]*\) default_server.*/\1/p' "$dir/nginx.conf")"
    for ((i = 0; i < 100; i++)); do
        $CURL -m 2 -o /dev/null "http://127.0.0.1:$port/" && return 0
        sleep 0.1
    done
    log "nginx in $dir does not answer"; return 1
}

# workers_cpu MASTER_PID: CPU seconds (user + system) used so far by the master's workers.
workers_cpu() {
    local tck w total=0
    tck="$(getconf CLK_TCK)"
    for w in $(ps -o pid= --ppid "$1"); do
        total=$((total + $(awk '{print $14 + $15}' "/proc/$w/stat")))
    done
    python3 -c "print($total / $tck)"
}

# wrk_window MASTER_PID PORT SECS OUT: one wrk run on /; prints "req/s requests worker-CPU-s".
wrk_window() {
    local cpu0 cpu1 out
    cpu0="$(workers_cpu "$1")"
    timeout $(($3 + 30)) wrk -t1 -c"$WRK_CONNS" -d"$3s" "http://127.0.0.1:$2/" > "$4"
    cpu1="$(workers_cpu "$1")"
    out="$($TOOL wrkrps "$4")"
    echo "$out $(python3 -c "print(round($cpu1 - $cpu0, 2))")"
}

metric() { # metric URL REGEX: the value of the first series matching REGEX
    $CURL -m 60 "$1" | grep -E "^$2 " | head -1 | awk '{print $2}'
}

# warm_keys PORT KEYS WORKERS: one request to every key server through each of the WORKERS
# workers (kaclient.py --keys), so that every key's slot is written in every worker's shard, as
# in production, where a scrape sums written slots (an unwritten slot is skipped). Logs the time.
warm_keys() {
    local out
    out="$($CLIENT --keys "$1" "$2" "$3")" || { log "writing the keys failed"; return 1; }
    log "keys written: $out"
    WARM_KEYS_OUT="$out"
}

# --- 1. instructions per request --------------------------------------------------------------
# cg_cell CASE VARIANT PATH: runs the W and W+N runs concurrently, records the difference / N.
cg_cell() {
    local case="$1" variant="$2" path="$3" p1 b1 p2 b2 p3 b3 d1 d2 pid1 pid2 rc1=0 rc2=0 t1 t2
    read -r p1 b1 p2 b2 p3 b3 <<<"$($TOOL ports 6)"
    d1="$E2E/run/cg.$case.$variant.small" d2="$E2E/run/cg.$case.$variant.big"
    conf "$d1" cg "$variant" "$p1" "$b1"
    conf "$d2" cg "$variant" "$p2" "$b2"
    timeout 120 "$NGINX" -p "$d1" -c nginx.conf -t -q || return 1

    # A native run of the same configuration first: the counts must be right.
    if [ "$variant" = vts ] || [ "$variant" = vtsup ]; then
        local d0="$E2E/run/cg.$case.$variant.check" pid0 got want
        conf "$d0" cg "$variant" "$p3" "$b3"
        "$NGINX" -p "$d0" -c nginx.conf 2>"$d0/stderr.log" &
        pid0=$!; track "$pid0"
        wait_pidfile "$d0" "$pid0" 30
        $CLIENT "$p3" "$path" 10
        got="$(metric "http://127.0.0.1:$p3/status" 'nginx_vts_server_requests_total\{zone="bench.local"\}')"
        want=10
        if [ "$case" = proxy ]; then
            got="$got $(metric "http://127.0.0.1:$p3/status" 'nginx_vts_server_requests_total\{zone="backend.local"\}')"
            want="10 10"
            if [ "$variant" = vtsup ]; then
                got="$got $(metric "http://127.0.0.1:$p3/status" "nginx_vts_upstream_requests_total\\{upstream=\"backend\",server=\"127.0.0.1:$b3\"\\}")"
                want="10 10 10"
            fi
        fi
        stop "$pid0" QUIT 20
        if [ "$got" != "$want" ]; then
            log "check failed for $case/$variant: counted '$got', expected '$want'"; return 1
        fi
    fi

    valgrind --tool=callgrind --callgrind-out-file="$d1/callgrind.out" \
        "$NGINX" -p "$d1" -c nginx.conf 2>"$d1/vg.log" &
    pid1=$!; track "$pid1"
    valgrind --tool=callgrind --callgrind-out-file="$d2/callgrind.out" \
        "$NGINX" -p "$d2" -c nginx.conf 2>"$d2/vg.log" &
    pid2=$!; track "$pid2"
    wait_pidfile "$d1" "$pid1" 120
    wait_pidfile "$d2" "$pid2" 120
    $CLIENT "$p1" "$path" "$WARM" & t1=$!; track "$t1"
    $CLIENT "$p2" "$path" "$((WARM + N))" & t2=$!; track "$t2"
    wait "$t1" || rc1=$?
    wait "$t2" || rc2=$?
    untrack "$t1"; untrack "$t2"
    stop "$pid1" QUIT 120
    stop "$pid2" QUIT 120
    [ "$rc1" = 0 ] && [ "$rc2" = 0 ] || { log "client failed for $case/$variant"; return 1; }
    # Two figures per request: "attributed" = all instructions except those of the nginx binary's
    # own calls to the allocator (malloc, free, posix_memalign... called from nginx, not from the
    # module), and "all" = every instruction (the raw difference).
    local small big per
    small="$($TOOL totals "$d1/callgrind.out")"
    big="$($TOOL totals "$d2/callgrind.out")"
    per="$(python3 -c "
s, sa = $(echo "$small" | tr ' ' ','); b, ba = $(echo "$big" | tr ' ' ',')
print(f'{((b - ba) - (s - sa)) / $N:.1f} {(b - s) / $N:.1f}')")"
    result "cg.$case.$variant" "$per"
    log "instr/req $case $variant (attributed: excl. nginx's own malloc/free; all instructions): $per"
}

part_cg() {
    log "part 1: callgrind, W=$WARM N=$N"
    local v
    for v in plain stub noz vts; do cg_cell r200 "$v" /; done
    for v in plain stub vts; do cg_cell static "$v" /static/small.txt; done
    for v in plain stub vts vtsup; do cg_cell proxy "$v" /proxy/; done
    {
        echo "Callgrind attribution of ngx_vts's cost per request (W=$WARM, N=$N)."
        local case v
        for case in r200 static proxy; do
            for v in vts vtsup; do
                [ -d "$E2E/run/cg.$case.$v.big" ] || continue
                echo
                echo "== $case, $v (vs plain nginx on the same path)"
                $TOOL attrib "$N" libngx_vts.so \
                    "$E2E/run/cg.$case.$v.big/callgrind.out" "$E2E/run/cg.$case.$v.small/callgrind.out" \
                    "$E2E/run/cg.$case.plain.big/callgrind.out" "$E2E/run/cg.$case.plain.small/callgrind.out"
            done
        done
        echo
        echo "Raw callgrind files: $E2E/run/cg.*/callgrind.out (callgrind_annotate --inclusive=yes FILE)"
    } >> "$root/target/e2e-attribution.txt"
    cat "$root/target/e2e-attribution.txt"
}

# --- 1b. instructions per scrape -------------------------------------------------------------
part_cgscrape() {
    log "part 1b: callgrind, instructions per scrape of $KEYS keys (every key written)"
    local p1 b1 k1 p2 b2 k2 d1="$E2E/run/cgscrape.small" d2="$E2E/run/cgscrape.big" pid1 pid2 k=2 small big
    local w1 w2 rc1=0 rc2=0
    read -r p1 b1 k1 p2 b2 k2 <<<"$($TOOL ports 6)"
    conf "$d1" cg vts "$p1" "$b1" "$KEYS" "$k1"
    conf "$d2" cg vts "$p2" "$b2" "$KEYS" "$k2"
    valgrind --tool=callgrind --callgrind-out-file="$d1/callgrind.out" \
        "$NGINX" -p "$d1" -c nginx.conf 2>"$d1/vg.log" &
    pid1=$!; track "$pid1"
    valgrind --tool=callgrind --callgrind-out-file="$d2/callgrind.out" \
        "$NGINX" -p "$d2" -c nginx.conf 2>"$d2/vg.log" &
    pid2=$!; track "$pid2"
    wait_pidfile "$d1" "$pid1" 300
    wait_pidfile "$d2" "$pid2" 300
    # Every key written once (the same in both runs, so it cancels out).
    $CLIENT --keys "$k1" "$KEYS" 1 > "$d1/keys.log" & w1=$!; track "$w1"
    $CLIENT --keys "$k2" "$KEYS" 1 > "$d2/keys.log" & w2=$!; track "$w2"
    wait "$w1" || rc1=$?
    wait "$w2" || rc2=$?
    untrack "$w1"; untrack "$w2"
    [ "$rc1" = 0 ] && [ "$rc2" = 0 ] || { log "writing the keys failed (cgscrape)"; return 1; }
    log "keys written under callgrind: $(cat "$d2/keys.log")"
    # One scrape (the warm-up) against 1 + k scrapes, on one keep-alive connection each.
    $CURL -m 300 -o /dev/null "http://127.0.0.1:$p1/status" &
    local c1=$!
    $CURL -m 300 $(for ((i = 0; i <= k; i++)); do echo "-o /dev/null http://127.0.0.1:$p2/status"; done)
    wait "$c1"
    stop "$pid1" QUIT 120
    stop "$pid2" QUIT 120
    small="$($TOOL totals "$d1/callgrind.out" | awk '{print $1}')"
    big="$($TOOL totals "$d2/callgrind.out" | awk '{print $1}')"
    result "cgscrape" "$(( (big - small) / k ))"
    log "instructions per scrape of $KEYS keys: $(( (big - small) / k ))"
    {
        echo
        echo "== one scrape of $KEYS server zones (/status, Prometheus text), per scrape"
        $TOOL scrapeattrib "$k" "$d2/callgrind.out" "$d1/callgrind.out"
    } >> "$root/target/e2e-attribution.txt"
}

# --- 2. interleaved wrk -------------------------------------------------------------------------
part_wrk() {
    log "part 2: wrk -t1 -c$WRK_CONNS, $WORKERS worker(s), $WRK_ROUNDS rounds of ${WRK_SECS}s"
    local variants=(plain stub vts) v r i port
    local rps req cpu
    declare -A PORT SPID RPS EFF BUSY
    for v in "${variants[@]}"; do
        read -r p b <<<"$($TOOL ports 2)"
        PORT[$v]="$p"
        conf "$E2E/run/wrk.$v" srv "$v" "$p" "$b"
        start_srv "$E2E/run/wrk.$v"
        SPID[$v]="$SRV_PID"
        RPS[$v]="" EFF[$v]="" BUSY[$v]=""
        timeout 30 wrk -t1 -c"$WRK_CONNS" -d1s "http://127.0.0.1:$p/" >/dev/null
    done
    for ((r = 0; r < WRK_ROUNDS; r++)); do
        for ((i = 0; i < ${#variants[@]}; i++)); do
            v="${variants[$(((i + r) % ${#variants[@]}))]}"  # rotate the order every round
            read -r rps req cpu <<<"$(wrk_window "${SPID[$v]}" "${PORT[$v]}" "$WRK_SECS" "$E2E/run/wrk.$v/wrk.$r.txt")"
            RPS[$v]="${RPS[$v]} $rps"
            EFF[$v]="${EFF[$v]} $(python3 -c "print(round($req / max($cpu, 0.01)))")"
            BUSY[$v]="${BUSY[$v]} $(python3 -c "print(round($cpu / $WRK_SECS, 3))")"
        done
        log "round $r req/s: plain${RPS[plain]##* } stub${RPS[stub]##* } vts${RPS[vts]##* }; req per worker CPU-s: plain${EFF[plain]##* } stub${EFF[stub]##* } vts${EFF[vts]##* }"
    done
    local counted
    counted="$(metric "http://127.0.0.1:${PORT[vts]}/status" 'nginx_vts_server_requests_total\{zone="bench.local"\}')"
    log "vts counted $counted requests on bench.local"
    for v in "${variants[@]}"; do
        stop "${SPID[$v]}" QUIT 30
        result "wrk.$v" "${RPS[$v]# }"
        result "wrk.$v.eff" "${EFF[$v]# }"
        result "wrk.$v.busy" "${BUSY[$v]# }"
    done
    result wrk.desc "return 200, wrk -t1 -c$WRK_CONNS, $WORKERS worker(s), ${WRK_ROUNDS}x${WRK_SECS}s"
}

# --- 3. scrapes ---------------------------------------------------------------------------------
# wait_exit PID SECONDS: waits up to SECONDS for PID to end by itself; false if it is still there.
wait_exit() {
    local i
    for ((i = 0; i < $2 * 10; i++)); do
        kill -0 "$1" 2>/dev/null || return 0
        sleep 0.1
    done
    return 1
}

# scrape_server DIR KEYS WORKERS: a native nginx with KEYS key servers and WORKERS workers,
# started, with every key written through each worker. Sets SRV_PID and SRV_PORT.
scrape_server() {
    local d="$1" keys="$2" workers="$3" p b k written
    read -r p b k <<<"$($TOOL ports 3)"
    conf "$d" srv vts "$p" "$b" "$keys" "$k" "$workers"
    start_srv "$d"
    SRV_PORT="$p"
    warm_keys "$k" "$keys" "$workers"
    result "warm.$keys.$workers" "$WARM_KEYS_OUT"
    # Every key server's zone must now count at least one request per worker.
    written="$($CURL -m 120 "http://127.0.0.1:$p/status" \
        | grep -E '^nginx_vts_server_requests_total\{zone="k[0-9]+\.e2e"\} ' \
        | awk -v w="$workers" '$2 >= w' | wc -l)"
    if [ "$written" != "$keys" ]; then
        log "only $written of $keys key zones count >= $workers requests"; return 1
    fi
}

part_scrape() {
    log "part 3: scrape latency at 10, 1000, $KEYS keys with $SCRAPE_WORKERS worker(s); serving under scrapes with $WORKERS worker(s)"
    local keys d p pid i
    for keys in 10 1000 "$KEYS"; do
        d="$E2E/run/scrape.$keys"
        scrape_server "$d" "$keys" "$SCRAPE_WORKERS"
        pid="$SRV_PID" p="$SRV_PORT"
        local url="http://127.0.0.1:$p/status" lat bytes out cpu0 cpu1 t0 t1 m
        # Sequential scrapes on one keep-alive connection (as Prometheus does): each one's time,
        # and the workers' CPU time (user + system, from /proc) per scrape.
        $CURL -m 120 -o /dev/null "$url" -o /dev/null "$url"
        m=$((keys >= 10000 ? LAT_SAMPLES : LAT_SAMPLES * 10))
        cpu0="$(workers_cpu "$pid")"; t0="$(date +%s%N)"
        out="$($CURL -m 300 -w '%{time_total} %{size_download} %{http_code}\n' $(for ((i = 0; i < m; i++)); do echo "-o /dev/null $url"; done))"
        cpu1="$(workers_cpu "$pid")"; t1="$(date +%s%N)"
        if [ "$(echo "$out" | awk '$3 == 200' | wc -l)" != "$m" ]; then
            log "scrapes failed: $(echo "$out" | sort | uniq -c | head -3)"; return 1
        fi
        lat="$(echo "$out" | awk '{print $1}' | tr '\n' ' ')"
        bytes="$(echo "$out" | tail -1 | awk '{print $2}')"
        result "latency.$keys" "${lat% }"
        result "latency.$keys.bytes" "$bytes"
        result "latency.$keys.workers" "$SCRAPE_WORKERS"
        result "latency.$keys.cpu" "$(python3 -c "print(f'{($cpu1 - $cpu0) / $m * 1000:.2f} {($t1 - $t0) / $m / 1e6:.2f}')")"
        local zones
        zones="$($CURL -m 120 "$url" | grep -c '^nginx_vts_server_requests_total{' || true)"
        log "$keys keys, $SCRAPE_WORKERS worker(s): $zones server zones listed, $bytes bytes, median of $m: $(echo $lat | tr ' ' '\n' | sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}') s"
        if [ "$keys" != "$KEYS" ]; then
            stop "$pid" QUIT 30
            continue
        fi
        if [ "$SCRAPE_WORKERS" != "$WORKERS" ]; then
            stop "$pid" QUIT 30
            d="$E2E/run/scrape.$keys.w$WORKERS"
            scrape_server "$d" "$keys" "$WORKERS"
            pid="$SRV_PID" p="$SRV_PORT" url="http://127.0.0.1:$SRV_PORT/status"
        fi

        # Serving throughput with and without back-to-back scrapes, interleaved. The scrape
        # loop ends by itself when its stop file appears (after its current batch of 20).
        local scrapes=0 scrape_ns=0 r order mode cpid n stopf="$d/stop-scrapes" urls20 rps req cpu s0
        declare -A RPS=([with]="" [without]="") EFF=([with]="" [without]="") BUSY=([with]="" [without]="")
        urls20="$(for ((i = 0; i < 20; i++)); do echo "-o /dev/null $url"; done)"
        timeout 30 wrk -t1 -c"$WRK_CONNS" -d1s "http://127.0.0.1:$p/" >/dev/null
        for ((r = 0; r < SCRAPE_ROUNDS; r++)); do
            if ((r % 2 == 0)); then order="without with"; else order="with without"; fi
            for mode in $order; do
                if [ "$mode" = with ]; then
                    rm -f "$stopf"
                    s0="$(date +%s%N)"
                    (while [ ! -e "$stopf" ]; do
                        $CURL -m 60 -w '%{http_code}\n' $urls20 || true
                    done) > "$d/scrapes.$r.txt" &
                    cpid=$!; track "$cpid"
                    sleep 0.5
                fi
                read -r rps req cpu <<<"$(wrk_window "$pid" "$p" "$SCRAPE_SECS" "$d/wrk.$mode.$r.txt")"
                if [ "$mode" = with ]; then
                    # Let the loop finish its batch, so that no scrape runs into the next window.
                    touch "$stopf"
                    wait_exit "$cpid" 70 || log "the scrape loop did not stop by itself in 70 s"
                    stop "$cpid" TERM 5
                    scrape_ns=$((scrape_ns + $(date +%s%N) - s0))
                    n="$(grep -c '^200$' "$d/scrapes.$r.txt" || true)"
                    scrapes=$((scrapes + n))
                fi
                RPS[$mode]="${RPS[$mode]} $rps"
                EFF[$mode]="${EFF[$mode]} $(python3 -c "print(round($req / max($cpu, 0.01)))")"
                BUSY[$mode]="${BUSY[$mode]} $(python3 -c "print(round($cpu / $SCRAPE_SECS, 3))")"
            done
            log "round $r: without${RPS[without]##* } with${RPS[with]##* } req/s; worker busy without${BUSY[without]##* } with${BUSY[with]##* }"
        done
        stop "$pid" QUIT 30
        for mode in without with; do
            result "scrape.$mode" "${RPS[$mode]# }"
            result "scrape.$mode.eff" "${EFF[$mode]# }"
            result "scrape.$mode.busy" "${BUSY[$mode]# }"
        done
        # Scrapes per second of the loop's whole life (from its start to its last answer).
        result scrape.rate "$(python3 -c "print(f'{$scrapes / max($scrape_ns / 1e9, 0.001):.1f}')")"
        result scrape.desc "$KEYS keys (each written through every worker), return 200, wrk -t1 -c$WRK_CONNS, $WORKERS worker(s), ${SCRAPE_ROUNDS}x${SCRAPE_SECS}s"
    done
}

started=$SECONDS
load_start="$(cut -d' ' -f1-3 /proc/loadavg)"
: > "$root/target/e2e-attribution.txt"
result title "ngx_vts end-to-end: nginx $("$NGINX" -v 2>&1 | sed 's|.*/||'), module $(git -C "$root" describe --always --dirty 2>/dev/null || echo '?'), $(date -u +%Y-%m-%dT%H:%MZ), $(nproc) cores"
for part in $PARTS; do
    "part_$part"
done
result note1 "instr/req: (callgrind total of W+N requests - total of W) / N on one keep-alive connection, access_log off, W=$WARM N=$N. Two figures: 'all' = every instruction nginx ran (the raw difference); 'attributed' = the same without the instructions inside the nginx binary's own calls to glibc's allocator (malloc, free, posix_memalign...: nginx's request pools, which plain nginx makes too; their cost moves by up to +-250/request with the heap layout, which any configuration change shifts); the module's own allocations, if any, stay counted in both. Proxy rows count two server zones (front + backend) and, with vts_upstream_stats, one peer."
if [ -n "$(grep '^cgscrape=' "$RESULTS" || true)" ]; then
    result note2 "One scrape of $KEYS keys: $(grep '^cgscrape=' "$RESULTS" | cut -d= -f2 | python3 -c 'import sys; print(f"{int(sys.stdin.read()):,}")') instructions in nginx (callgrind)."
fi
result note4 "Wall-clock parts: load average $load_start at the start, $(cut -d' ' -f1-3 /proc/loadavg) at the end ($(nproc) cores). 'busy' is the nginx workers' CPU time (user+sys, /proc) per second of wrk; 'per worker CPU-s' rows divide the requests served by that time: they hold up better than req/s when other processes take CPU, but include the workers' scrape work."
result note5 "The module's /status location: vts_status;${STATUS_CACHE:+ vts_status_cache $STATUS_CACHE;}${STATUS_EXTRA:+ $STATUS_EXTRA}"
result note3 "Attribution by function: target/e2e-attribution.txt. Elapsed: $((SECONDS - started)) s."
echo
$TOOL report "$RESULTS" | tee "$root/target/e2e-report.txt"
