#!/usr/bin/env bash
# Fills in the placeholders of a configuration under nginx-conf/ and prints the result:
#
#   bash nginx-conf/render-conf.sh CONF MODULE PORT > nginx.conf
#
#   @MODULE@  the module's .so (an absolute path)
#   @PORT@    PORT, where the front listens (the status page is on it)
#   @B1@ @B2@ @B3@   PORT+1, PORT+2, PORT+3: the demo's backend servers
#   @CLOSED@  PORT+9: a port where nothing listens (the demo's dead peer)
#
# nginx-conf/demo.sh and tests/demo.rs both run the configuration this prints, so the test
# checks the very configuration the demo runs. Fails if a placeholder is left unfilled.
set -euo pipefail

if [ "$#" -ne 3 ]; then
    echo "usage: $0 CONF MODULE PORT" >&2
    exit 2
fi
conf="$1" module="$2" port="$3"

case "$port" in
    '' | *[!0-9]*) echo "$0: PORT must be a number, not \"$port\"" >&2; exit 2 ;;
esac
if [ "$port" -lt 1 ] || [ "$((port + 9))" -gt 65535 ]; then
    echo "$0: PORT must be between 1 and 65526 (the demo also uses PORT+1..PORT+3 and PORT+9)" >&2
    exit 2
fi

# The module path goes into a sed replacement: escape the characters special there.
module_sed="$(printf '%s' "$module" | sed -e 's/[\\|&]/\\&/g')"

out="$(sed -e "s|@MODULE@|$module_sed|g" -e "s|@PORT@|$port|g" \
    -e "s|@B1@|$((port + 1))|g" -e "s|@B2@|$((port + 2))|g" -e "s|@B3@|$((port + 3))|g" \
    -e "s|@CLOSED@|$((port + 9))|g" "$conf")"

if left="$(printf '%s\n' "$out" | grep -o '@[A-Z0-9_]*@' | sort -u | tr '\n' ' ')" && [ -n "$left" ]; then
    echo "$0: $conf has placeholders this script does not know: $left" >&2
    exit 1
fi
printf '%s\n' "$out"
