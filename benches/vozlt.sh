#!/usr/bin/env bash
# Side-by-side benchmark of ngx_vts's nginx-module-vts compatibility (the vhost_traffic_status_*
# directives) against the C module (nginx-module-vts 0.2.7), both loaded into the SAME nginx
# binary, in one run. Not part of the test suite. Prints one table at the end and writes it to
# target/vozlt-report.txt. Reuses benches/e2e's clients (kaclient.py, tool.py) unchanged.
#
#   bash benches/vozlt.sh                       # everything, about 2 minutes on 2 cores (+ build)
#   VOZLT_PARTS="cg" bash benches/vozlt.sh      # one part
#
# Parts:
#   scrape  Scrape latency (curl's time_total; median) and the workers' CPU time per scrape (/proc)
#           with VOZLT_KEYS (10,000) server zones and 2 workers, every key written by both workers
#           (kaclient.py --keys: one request per key through each worker; the key servers listen
#           with `reuseport`). Three nginx instances, each with a 64m zone: ngx_vts with
#           `vhost_traffic_status_zone shared:vts:64m;` (JSON and vozlt Prometheus at
#           /status/format/...), the C module with the same configuration, and ngx_vts with
#           `vts_zone main 64m;` (the seed's Prometheus at a `vts_status` location). Scrapes are
#           sequential on one keep-alive connection per batch; batches of every series are
#           interleaved over VOZLT_ROUNDS rounds (order rotated), so drift hits all alike.
#   mem     Bytes per key: the zone's usedSize (JSON sharedZones; seed: nginx_vts_shm_bytes) after
#           key 1 was written through both workers, and again after all keys were: ngx_vts's
#           growth / (keys - 1) / 2 workers; the C module's growth of usedSize / growth of
#           usedNode (one node per key, shared by the workers) and of freeSize (the slab pages
#           the nodes really take). Server zones come from the scrape part's instances (run
#           `scrape` too); upstream peers from two more instances with VOZLT_UP_KEYS upstream
#           groups u1..uN of one peer each, reached by proxy_pass http://u$n from one server;
#           server zones with `vhost_traffic_status_measure_status_codes all` from two more
#           (VOZLT_CODES_KEYS keys: a slot then holds 501 more counters).
#   cg      Instructions per request (callgrind, single-process nginx, `return 200`, one server
#           zone, one keep-alive connection): (total of W + N requests - total of W) / N, as in
#           e2e.sh. Variants: plain nginx, ngx_vts loaded without a zone, ngx_vts `vts_zone`,
#           ngx_vts `vhost_traffic_status_zone;` (defaults), the same with
#           `vhost_traffic_status_measure_status_codes all;`, the C module loaded without a zone,
#           the C module with `vhost_traffic_status_zone;`. "all" = every instruction; "attributed"
#           = without nginx's own calls to glibc's allocator (see e2e.sh: a loaded module shifts
#           nginx's heap layout, which moves malloc's cost by up to +-250/request), so each module
#           is also compared with itself loaded without a zone.
#
# Knobs: VOZLT_PARTS="scrape mem cg"  VOZLT_BUILD=1 (cargo build --release first)
#   VOZLT_TARGET_DIR=/tmp/target-bench (CARGO_TARGET_DIR of that build: a private one, so that
#     other builds in the work tree never swap the module measured)
#   VOZLT_DEPS=1 (bash .ci/install-deps valgrind when something is missing)
#   VOZLT_ORACLE=<repo>/../shared/oracle/ngx_http_vhost_traffic_status_module.so (the C module;
#     when absent, its rows say "skipped")
#   VOZLT_KEYS=10000  VOZLT_UP_KEYS=10000  VOZLT_CODES_KEYS=2000  VOZLT_ROUNDS=5
#     VOZLT_SAMPLES=9 (scrapes per series per round)  VOZLT_N=2000  VOZLT_WARM=200 (callgrind requests)
#
# Listens on free ports of 127.0.0.1 only; every process it starts is tracked and stopped by its
# pid on exit; every client call has a time limit.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

PARTS="${VOZLT_PARTS:-scrape mem cg}"
TARGET_DIR="${VOZLT_TARGET_DIR:-/tmp/target-bench}"
ORACLE="${VOZLT_ORACLE:-$root/../shared/oracle/ngx_http_vhost_traffic_status_module.so}"
KEYS="${VOZLT_KEYS:-10000}"
UP_KEYS="${VOZLT_UP_KEYS:-10000}"
CODES_KEYS="${VOZLT_CODES_KEYS:-2000}"
ROUNDS="${VOZLT_ROUNDS:-5}"
SAMPLES="${VOZLT_SAMPLES:-9}"
N="${VOZLT_N:-2000}"
WARM="${VOZLT_WARM:-200}"
SCRAPE_WORKERS=2

if [ "${VOZLT_DEPS:-1}" = 1 ]; then
    for tool in valgrind curl python3; do
        command -v "$tool" >/dev/null || { bash "$root/.ci/install-deps" valgrind; break; }
    done
fi
for tool in valgrind curl python3 timeout; do
    command -v "$tool" >/dev/null || { echo "vozlt: $tool is required" >&2; exit 1; }
done
if [ "${VOZLT_BUILD:-1}" = 1 ]; then
    CARGO_TARGET_DIR="$TARGET_DIR" cargo build --release
fi

OUT="$root/target/vozlt"
TOOL="python3 $root/benches/e2e/tool.py"
VT="timeout 300 python3 $root/benches/e2e/vozlt_tool.py"
CURL="curl -s --connect-timeout 5"
CLIENT="timeout 900 python3 $root/benches/e2e/kaclient.py"
rm -rf "$OUT"
mkdir -p "$OUT/bin" "$OUT/run"
# Private copies: a concurrent build must not swap a binary under a running nginx.
cp "$(cat "$TARGET_DIR/release/nginx-path")" "$OUT/bin/nginx"
cp "$TARGET_DIR/release/libngx_vts.so" "$OUT/bin/libngx_vts.so"
NGINX="$OUT/bin/nginx"
MODULE="$OUT/bin/libngx_vts.so"
CMOD=""
if [ -f "$ORACLE" ]; then
    cp "$ORACLE" "$OUT/bin/ngx_http_vhost_traffic_status_module.so"
    CMOD="$OUT/bin/ngx_http_vhost_traffic_status_module.so"
fi
RESULTS="$OUT/results.txt"
: > "$RESULTS"
result() { echo "$1=$2" >> "$RESULTS"; }
log() { echo "vozlt: $*" >&2; }
have_c() { [ -n "$CMOD" ]; }

# --- processes: every pid started is tracked and stopped on exit -------------------------------
# shellcheck source=benches/e2e/procs.sh
source "$root/benches/e2e/procs.sh"
cleanup() {
    local p
    for p in "${PIDS[@]+"${PIDS[@]}"}"; do stop "$p" QUIT 20; done
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# --- configuration ----------------------------------------------------------------------------
# conf DIR MODE VARIANT PORT BPORT [KEYS KPORT [UPSTREAM]]
#   MODE: cg (single process, for valgrind) | srv (master + 2 workers, foreground)
#   VARIANT: plain | noz (ngx_vts loaded, no zone) | seed (vts_zone) | vozlt
#            (vhost_traffic_status_zone) | codes (vozlt + measure_status_codes all) |
#            cnoz (C module loaded, no zone) | c (C module, vhost_traffic_status_zone)
#   cg mode uses each module's default zone (`vhost_traffic_status_zone;`, `vts_zone main 1m;`),
#   srv mode a 64m zone.
#   KEYS > 0, UPSTREAM=0: server blocks k1.e2e .. kKEYS.e2e (one server zone each) on KPORT with
#   `reuseport`, answering 404 with the worker's pid (kaclient.py --keys).
#   KEYS > 0, UPSTREAM=1: one server for every kN.e2e on KPORT that proxies to upstream group uN
#   (one peer each: the backend server, which answers 404 with the proxying worker's pid, sent to
#   it in a header), so that every key is an upstream peer.
conf() {
    local dir="$1" mode="$2" variant="$3" port="$4" bport="$5" keys="${6:-0}" kport="${7:-0}"
    local upstream="${8:-0}" i size
    mkdir -p "$dir/logs"
    {
        case "$variant" in
            noz | seed | vozlt | codes) echo "load_module $MODULE;" ;;
            cnoz | c | ccodes) echo "load_module $CMOD;" ;;
        esac
        if [ "$mode" = cg ]; then
            echo "master_process off; daemon off; worker_processes 1;"
        else
            echo "daemon off; worker_processes $SCRAPE_WORKERS;"
        fi
        cat <<EOF
error_log logs/error.log warn;
pid logs/nginx.pid;
events { worker_connections 4096; }
http {
    access_log off;
    keepalive_requests 1000000;
    keepalive_timeout 300s;
EOF
        if [ "$mode" = cg ]; then size=""; else size=" shared:vts:64m"; fi
        case "$variant" in
            seed) if [ "$mode" = cg ]; then echo "    vts_zone main 1m;"; else echo "    vts_zone main 64m;"; fi ;;
            vozlt | c) echo "    vhost_traffic_status_zone$size;" ;;
            codes | ccodes) echo "    vhost_traffic_status_zone$size; vhost_traffic_status_measure_status_codes all;" ;;
        esac
        [ "$keys" -gt 0 ] && echo "    server_names_hash_max_size 262144; server_names_hash_bucket_size 64;"
        cat <<EOF
    server {
        listen 127.0.0.1:$port default_server;
        server_name bench.local;
        location = / { return 200 "ok\n"; }
EOF
        case "$variant" in
            seed) echo "        location = /status { vts_status; }" ;;
            vozlt | codes | c | ccodes) echo "        location /status { vhost_traffic_status_display; vhost_traffic_status_display_format json; }" ;;
            *) echo "        location /status { return 404; }" ;;
        esac
        echo "    }"
        if [ "$keys" -gt 0 ] && [ "$upstream" = 1 ]; then
            cat <<EOF
    server {
        listen 127.0.0.1:$bport;
        server_name backend.local;
        location / { return 404 "\$http_x_front_pid\n"; }
    }
    server {
        listen 127.0.0.1:$kport reuseport;
        server_name ~^k(?<n>[0-9]+)\.e2e\$;
        location / { proxy_set_header X-Front-Pid \$pid; proxy_pass http://u\$n; }
    }
EOF
            for ((i = 1; i <= keys; i++)); do echo "    upstream u$i { server 127.0.0.1:$bport; }"; done
        elif [ "$keys" -gt 0 ]; then
            echo "    server { listen 127.0.0.1:$kport reuseport; server_name k1.e2e; return 404 \"\$pid\\n\"; }"
            for ((i = 2; i <= keys; i++)); do
                echo "    server { listen 127.0.0.1:$kport; server_name k$i.e2e; return 404 \"\$pid\\n\"; }"
            done
        fi
        echo "}"
    } > "$dir/nginx.conf"
}

# start_srv DIR PORT: a native nginx (master + workers) in the foreground, tracked. Sets SRV_PID.
start_srv() {
    local dir="$1" port="$2" i
    timeout 120 "$NGINX" -p "$dir" -c nginx.conf -t -q 2>"$dir/t.log" || { cat "$dir/t.log" >&2; return 1; }
    "$NGINX" -p "$dir" -c nginx.conf 2>>"$dir/logs/stderr.log" &
    SRV_PID=$!
    track "$SRV_PID"
    wait_pidfile "$dir" "$SRV_PID" 60
    for ((i = 0; i < 100; i++)); do
        $CURL -m 2 -o /dev/null "http://127.0.0.1:$port/" && return 0
        sleep 0.1
    done
    log "nginx in $dir does not answer"; return 1
}

# workers_cpu MASTER_PID: CPU clock ticks (user + system) used so far by the master's workers.
workers_cpu() {
    local w total=0
    for w in $(ps -o pid= --ppid "$1"); do
        total=$((total + $(awk '{print $14 + $15}' "/proc/$w/stat")))
    done
    echo "$total"
}

# usage KIND PORT: the zone's use. KIND vozlt: "usedSize usedNode freeSize maxSize" (JSON);
# KIND seed: "used free size" (the seed's Prometheus text).
usage() {
    if [ "$1" = seed ]; then
        $VT seedshm "http://127.0.0.1:$2/status"
    else
        $VT shm "http://127.0.0.1:$2/status/format/json"
    fi
}

# --- 1. scrapes (and 3. memory of server zones) ------------------------------------------------
declare -A SPORT SPID SKPORT
# key_server ID VARIANT KEYS UPSTREAM MEMKEY: starts an instance with KEYS keys, writes key 1 through both
# workers, reads the zone's use, writes every key through both workers, reads it again, checks
# that every key counted >= 2 requests. Records mem.MEMKEY.{vts,c,seed}.
key_server() {
    local id="$1" variant="$2" keys="$3" upstream="$4" memkey="$5" d p b k before after got kind
    d="$OUT/run/$id"
    read -r p b k <<<"$($TOOL ports 3)"
    conf "$d" srv "$variant" "$p" "$b" "$keys" "$k" "$upstream"
    start_srv "$d" "$p"
    SPORT[$id]="$p" SPID[$id]="$SRV_PID" SKPORT[$id]="$k"
    local kv=vozlt; [ "$variant" = seed ] && kv=seed
    $CLIENT --keys "$k" 1 "$SCRAPE_WORKERS" >/dev/null || { log "$id: writing key 1 failed"; return 1; }
    before="$(usage "$kv" "$p")"
    local out
    out="$($CLIENT --keys "$k" "$keys" "$SCRAPE_WORKERS")" || { log "$id: writing the keys failed"; return 1; }
    log "$id: $out"
    after="$(usage "$kv" "$p")"
    if [ "$upstream" = 1 ]; then kind=upstream; else kind=server; fi
    if [ "$kv" = seed ]; then
        got="$($VT seedwritten "http://127.0.0.1:$p/status" "$SCRAPE_WORKERS")"
    else
        got="$($VT written "http://127.0.0.1:$p/status/format/json" "$kind" "$SCRAPE_WORKERS")"
    fi
    if [ "$got" != "$keys" ]; then
        log "$id: only $got of $keys $kind keys count >= $SCRAPE_WORKERS requests"; return 1
    fi
    read -r -a B <<<"$before"; read -r -a A <<<"$after"
    case "$variant" in
        seed) result "mem.$memkey.seed" "$((A[0] - B[0])) $((keys - 1)) $SCRAPE_WORKERS ${B[0]} ${B[2]}" ;;
        vozlt | codes) result "mem.$memkey.vts" "$((A[0] - B[0])) $((keys - 1)) $SCRAPE_WORKERS ${B[0]} ${B[3]}" ;;
        c | ccodes) result "mem.$memkey.c" "$((A[0] - B[0])) $((A[1] - B[1])) $((B[2] - A[2])) $((keys - 1)) $SCRAPE_WORKERS ${B[0]} ${B[3]}" ;;
    esac
    log "$id: zone use before '$before', after '$after'"
}

part_scrape() {
    log "part 1: scrapes of $KEYS server zones, $SCRAPE_WORKERS workers; $ROUNDS rounds x $SAMPLES scrapes per series"
    result scrape.keys "$KEYS"
    result note4 "Load average when the scrapes started: $(cut -d' ' -f1-3 /proc/loadavg) ($(nproc) cores; other processes' CPU lengthens latency more than the workers' CPU per scrape)."
    local ids=(vts seed) id
    have_c && ids=(vts c seed)
    for id in "${ids[@]}"; do
        case "$id" in vts) key_server vts vozlt "$KEYS" 0 server ;; c) key_server c c "$KEYS" 0 server ;; seed) key_server seed seed "$KEYS" 0 server ;; esac
    done
    # Series: ID instance path
    local series=("vts.json vts /status/format/json" "vts.prom vts /status/format/prometheus"
        "seed.prom seed /status")
    have_c && series+=("c.json c /status/format/json" "c.prom c /status/format/prometheus")
    declare -A LAT TICKS BYTES
    local s sid inst path url r i ns=${#series[@]} out c0 c1 urls
    for s in "${series[@]}"; do
        read -r sid inst path <<<"$s"
        url="http://127.0.0.1:${SPORT[$inst]}$path"
        $CURL -m 120 -o /dev/null "$url" -o /dev/null "$url"   # warm-up
        LAT[$sid]="" TICKS[$sid]=0
    done
    for ((r = 0; r < ROUNDS; r++)); do
        for ((i = 0; i < ns; i++)); do
            read -r sid inst path <<<"${series[$(((i + r) % ns))]}"
            url="http://127.0.0.1:${SPORT[$inst]}$path"
            urls="$(for ((j = 0; j < SAMPLES; j++)); do echo "-o /dev/null $url"; done)"
            c0="$(workers_cpu "${SPID[$inst]}")"
            out="$($CURL -m 300 -w '%{time_total} %{size_download} %{http_code}\n' $urls)"
            c1="$(workers_cpu "${SPID[$inst]}")"
            if [ "$(echo "$out" | awk '$3 == 200' | wc -l)" != "$SAMPLES" ]; then
                log "$sid: scrapes failed: $(echo "$out" | sort | uniq -c | head -3)"; return 1
            fi
            LAT[$sid]="${LAT[$sid]} $(echo "$out" | awk '{print $1}' | tr '\n' ' ')"
            TICKS[$sid]=$((TICKS[$sid] + c1 - c0))
            BYTES[$sid]="$(echo "$out" | tail -1 | awk '{print $2}')"
        done
        log "round $r done"
    done
    local tck; tck="$(getconf CLK_TCK)"
    for s in "${series[@]}"; do
        read -r sid inst path <<<"$s"
        result "scrape.$sid" "$(echo ${LAT[$sid]})"
        result "scrape.$sid.bytes" "${BYTES[$sid]}"
        result "scrape.$sid.cpu" "$(python3 -c "print(${TICKS[$sid]} / $tck * 1000 / ($ROUNDS * $SAMPLES))")"
        log "$sid: median $(echo ${LAT[$sid]} | tr ' ' '\n' | sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}') s, ${BYTES[$sid]} bytes"
    done
    for id in "${ids[@]}"; do stop "${SPID[$id]}" QUIT 30; done
}

# --- 3. memory of upstream peers, and of server zones with measure_status_codes all ----------------
part_mem() {
    log "part 3: memory per upstream peer ($UP_KEYS upstream groups of one peer) and per server zone with measure_status_codes all ($CODES_KEYS keys), $SCRAPE_WORKERS workers"
    key_server vts.up vozlt "$UP_KEYS" 1 upstream
    stop "${SPID[vts.up]}" QUIT 30
    key_server vts.codes codes "$CODES_KEYS" 0 codes
    stop "${SPID[vts.codes]}" QUIT 30
    if have_c; then
        key_server c.up c "$UP_KEYS" 1 upstream
        stop "${SPID[c.up]}" QUIT 30
        key_server c.codes ccodes "$CODES_KEYS" 0 codes
        stop "${SPID[c.codes]}" QUIT 30
    fi
}

# --- 2. instructions per request ----------------------------------------------------------------
# cg_cell VARIANT: the W and W+N runs under callgrind concurrently; records (difference) / N.
cg_cell() {
    local variant="$1" p1 b1 p2 b2 p3 b3 d1 d2 pid1 pid2 rc1=0 rc2=0 t1 t2
    read -r p1 b1 p2 b2 p3 b3 <<<"$($TOOL ports 6)"
    d1="$OUT/run/cg.$variant.small" d2="$OUT/run/cg.$variant.big"
    conf "$d1" cg "$variant" "$p1" "$b1"
    conf "$d2" cg "$variant" "$p2" "$b2"
    timeout 120 "$NGINX" -p "$d1" -c nginx.conf -t -q || return 1

    # A native run of the same configuration first: the module must count the requests.
    case "$variant" in seed | vozlt | codes | c)
        local d0="$OUT/run/cg.$variant.check" pid0 got
        conf "$d0" cg "$variant" "$p3" "$b3"
        "$NGINX" -p "$d0" -c nginx.conf 2>"$d0/stderr.log" &
        pid0=$!; track "$pid0"
        wait_pidfile "$d0" "$pid0" 30
        $CLIENT "$p3" / 10
        if [ "$variant" = seed ]; then
            got="$($CURL -m 60 "http://127.0.0.1:$p3/status" | grep -E '^nginx_vts_server_requests_total\{zone="bench.local"\} ' | awk '{print $2}')"
        else
            got="$($VT count "http://127.0.0.1:$p3/status/format/json" bench.local)"
        fi
        stop "$pid0" QUIT 20
        [ "$got" = 10 ] || { log "check failed for $variant: counted '$got', expected 10"; return 1; }
    esac

    valgrind --tool=callgrind --callgrind-out-file="$d1/callgrind.out" \
        "$NGINX" -p "$d1" -c nginx.conf 2>"$d1/vg.log" &
    pid1=$!; track "$pid1"
    valgrind --tool=callgrind --callgrind-out-file="$d2/callgrind.out" \
        "$NGINX" -p "$d2" -c nginx.conf 2>"$d2/vg.log" &
    pid2=$!; track "$pid2"
    wait_pidfile "$d1" "$pid1" 120
    wait_pidfile "$d2" "$pid2" 120
    $CLIENT "$p1" / "$WARM" & t1=$!; track "$t1"
    $CLIENT "$p2" / "$((WARM + N))" & t2=$!; track "$t2"
    wait "$t1" || rc1=$?
    wait "$t2" || rc2=$?
    untrack "$t1"; untrack "$t2"
    stop "$pid1" QUIT 120
    stop "$pid2" QUIT 120
    [ "$rc1" = 0 ] && [ "$rc2" = 0 ] || { log "client failed for $variant"; return 1; }
    local small big per
    small="$($TOOL totals "$d1/callgrind.out")"
    big="$($TOOL totals "$d2/callgrind.out")"
    per="$(python3 -c "
s, sa = $(echo "$small" | tr ' ' ','); b, ba = $(echo "$big" | tr ' ' ',')
print(f'{((b - ba) - (s - sa)) / $N:.1f} {(b - s) / $N:.1f}')")"
    result "cg.$variant" "$per"
    log "instr/req $variant (attributed; all): $per"
}

part_cg() {
    log "part 2: callgrind, W=$WARM N=$N"
    result cg.warm "$WARM"
    result cg.n "$N"
    local v vs=(plain noz seed vozlt codes)
    have_c && vs+=(cnoz c)
    for v in "${vs[@]}"; do cg_cell "$v"; done
    {
        echo "Callgrind attribution per request (W=$WARM, N=$N), vs plain nginx."
        for v in vozlt codes; do
            echo; echo "== ngx_vts $v"
            $TOOL attrib "$N" libngx_vts.so "$OUT/run/cg.$v.big/callgrind.out" "$OUT/run/cg.$v.small/callgrind.out" \
                "$OUT/run/cg.plain.big/callgrind.out" "$OUT/run/cg.plain.small/callgrind.out"
        done
        if have_c; then
            echo; echo "== C module"
            $TOOL attrib "$N" ngx_http_vhost_traffic_status_module.so "$OUT/run/cg.c.big/callgrind.out" "$OUT/run/cg.c.small/callgrind.out" \
                "$OUT/run/cg.plain.big/callgrind.out" "$OUT/run/cg.plain.small/callgrind.out"
        fi
    } > "$root/target/vozlt-attribution.txt"
}

started=$SECONDS
load_start="$(cut -d' ' -f1-3 /proc/loadavg)"
if have_c; then result oracle yes; else result oracle no; fi
result title "ngx_vts vs nginx-module-vts 0.2.7, same nginx ($("$NGINX" -v 2>&1 | sed 's|.*/||')): module $(git -C "$root" describe --always --dirty 2>/dev/null || echo '?'), $(date -u +%Y-%m-%dT%H:%MZ), $(uname -m) $(nproc) cores ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//'))"
for part in $PARTS; do
    "part_$part"
done
have_c || result note0 "C module not found at $ORACLE (VOZLT_ORACLE): its rows are skipped."
case " $PARTS " in *" scrape "* | *" mem "*) result note1 "Scrapes: curl time_total, sequential on one keep-alive connection, $ROUNDS rounds x $SAMPLES per series, interleaved; workers' CPU = user+sys of both workers (/proc, 10 ms ticks) over the scrapes / their count. Zones 64m. Memory: server zones from the scrape instances ($KEYS keys), upstream peers from $UP_KEYS groups of one peer (their front server and backend are written before the first reading, so the growth is the peers' alone). ngx_vts preallocates its key directory at zone creation and registers the configured server zones and upstream peers (directory entry, hash index, name) when a worker starts: both are in 'used at start', so its growth is the counter slots alone, one per key per worker that wrote it (an upstream peer has two: counters, and its response-time queue). The C module makes one node per key (name included) shared by all workers, at its first request; each node takes a whole 4 KiB slab page (and a second one for measure_status_codes all), which freeSize shows and usedSize does not." ;; esac
case " $PARTS " in *" cg "*) result note2 "instr/req: callgrind, (total of W+N - total of W)/N, one keep-alive connection, access_log off. all = every instruction; attributed = without nginx's own calls to glibc's allocator (e2e.sh's note). The C module at defaults takes a shared-memory lock per request. Attribution by function: target/vozlt-attribution.txt." ;; esac
result note3 "Load average $load_start at the start, $(cut -d' ' -f1-3 /proc/loadavg) at the end. Elapsed: $((SECONDS - started)) s. Work files: $OUT."
echo
python3 "$root/benches/e2e/vozlt_tool.py" report "$RESULTS" | tee "$root/target/vozlt-report.txt"
