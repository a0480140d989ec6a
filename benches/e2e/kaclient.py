#!/usr/bin/env python3
"""Sends N sequential GET requests over one keep-alive connection and checks each answer.

    kaclient.py PORT PATH N [HOST]

Exits non-zero on any non-2xx answer or connection error. Used by e2e.sh to drive nginx
under callgrind: the client runs outside valgrind, so only nginx's instructions are counted.
"""
import http.client
import sys


def main() -> int:
    port, path, n = int(sys.argv[1]), sys.argv[2], int(sys.argv[3])
    host = sys.argv[4] if len(sys.argv) > 4 else "bench.local"
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    for i in range(n):
        conn.request("GET", path, headers={"Host": host, "User-Agent": "e2e"})
        resp = conn.getresponse()
        resp.read()
        if not 200 <= resp.status < 300:
            print(f"kaclient: request {i}: status {resp.status}", file=sys.stderr)
            return 1
        if resp.will_close:
            print(f"kaclient: request {i}: server closed the keep-alive connection", file=sys.stderr)
            return 1
    conn.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
