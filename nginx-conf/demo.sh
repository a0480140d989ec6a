#!/usr/bin/env bash
# Builds nginx and the module, starts nginx with the demo configuration on 127.0.0.1, sends it
# a little traffic every second, and keeps running until you press Ctrl-C.
#
#   bash nginx-conf/demo.sh            # the demo (nginx-conf/demo.conf)
#   bash nginx-conf/demo.sh --seed     # the seed README's example (nginx-conf/seed-example.conf)
#   VTS_DEMO_PORT=9090 bash nginx-conf/demo.sh
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

bash .ci/install-deps
cargo build --release

nginx_bin="$(cat target/release/nginx-path)"
module="$root/target/release/libngx_vts.so"
port="${VTS_DEMO_PORT:-8080}"
conf_src="nginx-conf/demo.conf"
[ "${1:-}" = "--seed" ] && conf_src="nginx-conf/seed-example.conf"

prefix="$root/target/demo"
rm -rf "$prefix"
mkdir -p "$prefix/logs" "$prefix/conf"
bash nginx-conf/render-conf.sh "$conf_src" "$module" "$port" > "$prefix/conf/nginx.conf"

"$nginx_bin" -p "$prefix" -c conf/nginx.conf -t
"$nginx_bin" -p "$prefix" -c conf/nginx.conf &
nginx_pid=$!

# One round of requests a second: the lines of nginx-conf/demo-traffic.txt ("HOST PATH").
traffic() {
    local base="http://127.0.0.1:$port" host path
    while sleep 1; do
        while read -r host path; do
            case "$host" in '' | '#'*) continue ;; esac
            curl -s -o /dev/null -H "Host: $host" "$base$path" < /dev/null || true
        done < "$root/nginx-conf/demo-traffic.txt"
    done
}
traffic &
traffic_pid=$!

stop() {
    trap - INT TERM EXIT
    kill "$traffic_pid" 2>/dev/null || true
    kill -QUIT "$nginx_pid" 2>/dev/null || true
    wait "$nginx_pid" 2>/dev/null || true
    echo "stopped"
}
trap stop INT TERM EXIT

cat <<MSG

ngx_vts demo: nginx $("$nginx_bin" -v 2>&1 | sed 's|.*/||') with the module, on 127.0.0.1:$port
(configuration: $prefix/conf/nginx.conf, error log: $prefix/logs/error.log)

    curl http://127.0.0.1:$port/status

Traffic is sent every second. Press Ctrl-C to stop.
MSG
wait "$nginx_pid"
