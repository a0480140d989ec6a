# Process helpers of the bench scripts (sourced by benches/e2e.sh and benches/vozlt.sh): every
# pid a script starts is tracked, and stopped by pid on exit. The script defines `log`.

PIDS=()
track() { PIDS+=("$1"); }
untrack() {
    local keep=() p
    for p in "${PIDS[@]+"${PIDS[@]}"}"; do [ "$p" = "$1" ] || keep+=("$p"); done
    PIDS=("${keep[@]+"${keep[@]}"}")
}

# stop PID SIGNAL SECONDS: signal, wait up to SECONDS, then SIGKILL.
stop() {
    local pid="$1" sig="$2" secs="$3" i
    kill "-$sig" "$pid" 2>/dev/null || true
    for ((i = 0; i < secs * 10; i++)); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    kill -0 "$pid" 2>/dev/null && kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
    untrack "$pid"
}

# wait_pidfile DIR PID SECONDS: nginx writes its pid file after its sockets listen.
wait_pidfile() {
    local dir="$1" pid="$2" secs="$3" i
    for ((i = 0; i < secs * 10; i++)); do
        [ -s "$dir/logs/nginx.pid" ] && return 0
        if ! kill -0 "$pid" 2>/dev/null; then
            log "nginx in $dir died:"; cat "$dir/logs/error.log" "$dir/vg.log" 2>/dev/null | tail -20 >&2
            return 1
        fi
        sleep 0.1
    done
    log "nginx in $dir did not start in ${secs}s"; return 1
}
