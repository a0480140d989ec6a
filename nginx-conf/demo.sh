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
sed -e "s|@MODULE@|$module|" -e "s|@PORT@|$port|g" \
    -e "s|@B1@|$((port + 1))|g" -e "s|@B2@|$((port + 2))|g" -e "s|@B3@|$((port + 3))|g" \
    -e "s|@CLOSED@|$((port + 9))|g" "$conf_src" > "$prefix/conf/nginx.conf"

"$nginx_bin" -p "$prefix" -c conf/nginx.conf -t
"$nginx_bin" -p "$prefix" -c conf/nginx.conf &
nginx_pid=$!

traffic() {
    local base="http://127.0.0.1:$port"
    while sleep 1; do
        for i in 1 2 3 4 5; do
            curl -s -o /dev/null -H 'Host: example.com' "$base/" || true
            curl -s -o /dev/null -H 'Host: static.example.com' "$base/" || true
        done
        curl -s -o /dev/null -H 'Host: example.com' "$base/api/users" || true
        curl -s -o /dev/null -H 'Host: static.example.com' "$base/missing" || true
        curl -s -o /dev/null -H 'Host: shop.example.com' "$base/" || true
        curl -s -o /dev/null -H 'Host: shop.example.com' "$base/checkout" || true
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
