#!/usr/bin/env python3
"""HTTP/1.1 keep-alive clients for benches/e2e.sh (standard library only).

    kaclient.py PORT PATH N [HOST]
        N sequential GET requests over one keep-alive connection; each answer must be 2xx.
        Used to drive nginx under callgrind: the client runs outside valgrind, so only nginx's
        instructions are counted.

    kaclient.py --keys PORT COUNT WORKERS
        Writes every key of e2e.sh's key servers (Host k1.e2e .. kCOUNT.e2e, which answer 404
        with the worker's pid as the body) through each of WORKERS worker processes: opens
        connections until it has one to each of WORKERS distinct workers (the key port listens
        with `reuseport`, so the kernel spreads connections over the workers), then sends one
        request per key on each, pipelined in batches, in parallel. Every key's slot is then
        written in every worker's shard. Prints one line: keys, workers (pids), requests, seconds.

Every socket operation has a timeout (E2E_CLIENT_TIMEOUT, default 120 s) and the whole run a
deadline (E2E_CLIENT_DEADLINE, default 600 s). Exits non-zero on an unexpected answer, a
connection error or a timeout.
"""
import http.client
import os
import socket
import sys
import threading
import time

TIMEOUT = float(os.environ.get("E2E_CLIENT_TIMEOUT", "120"))
DEADLINE = time.monotonic() + float(os.environ.get("E2E_CLIENT_DEADLINE", "600"))


class Failed(Exception):
    pass


def check_deadline():
    if time.monotonic() > DEADLINE:
        raise Failed("deadline passed (E2E_CLIENT_DEADLINE)")


def sequential(port, path, n, host):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=TIMEOUT)
    for i in range(n):
        check_deadline()
        conn.request("GET", path, headers={"Host": host, "User-Agent": "e2e"})
        resp = conn.getresponse()
        resp.read()
        if not 200 <= resp.status < 300:
            raise Failed(f"request {i}: status {resp.status}")
        if resp.will_close:
            raise Failed(f"request {i}: server closed the keep-alive connection")
    conn.close()


class Reader:
    """Reads HTTP/1.1 responses with a Content-Length from a socket (nginx's `return` answers)."""

    def __init__(self, sock):
        self.sock = sock
        self.buf = b""

    def _fill(self):
        check_deadline()
        data = self.sock.recv(1 << 16)
        if not data:
            raise Failed("connection closed by the server")
        self.buf += data

    def response(self):
        """(status, body) of the next response."""
        while True:
            end = self.buf.find(b"\r\n\r\n")
            if end >= 0:
                break
            self._fill()
        head = self.buf[:end].decode("latin-1").split("\r\n")
        self.buf = self.buf[end + 4:]
        status = int(head[0].split()[1])
        length = None
        for h in head[1:]:
            name, _, value = h.partition(":")
            name = name.strip().lower()
            if name == "content-length":
                length = int(value)
            elif name == "connection" and value.strip().lower() == "close":
                raise Failed("server closes the keep-alive connection")
        if length is None:
            raise Failed(f"response without Content-Length: {head[0]}")
        while len(self.buf) < length:
            self._fill()
        body, self.buf = self.buf[:length], self.buf[length:]
        return status, body


def key_request(i):
    return f"GET / HTTP/1.1\r\nHost: k{i}.e2e\r\nUser-Agent: e2e\r\n\r\n".encode()


def connect(port):
    sock = socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


def worker_of(sock, reader, key):
    """Sends one request for `key` and returns the pid of the worker that answered it."""
    sock.sendall(key_request(key))
    status, body = reader.response()
    if status != 404 or not body.strip().isdigit():
        raise Failed(f"k{key}.e2e: unexpected answer {status} {body[:40]!r}")
    return body.strip().decode()


def keys(port, count, workers):
    t0 = time.monotonic()
    conns = {}  # pid -> (sock, reader)
    attempts = 0
    while len(conns) < workers:
        attempts += 1
        if attempts > 400:
            raise Failed(f"reached only {len(conns)} of {workers} workers in 400 connections")
        sock = connect(port)
        reader = Reader(sock)
        pid = worker_of(sock, reader, 1)
        if pid in conns:
            sock.close()
        else:
            conns[pid] = (sock, reader)

    errors = []
    sent = {}

    def run(pid, sock, reader, batch=200):
        try:
            n = 0
            for first in range(1, count + 1, batch):
                last = min(first + batch, count + 1)
                sock.sendall(b"".join(key_request(i) for i in range(first, last)))
                for i in range(first, last):
                    status, body = reader.response()
                    if status != 404 or body.strip().decode() != pid:
                        raise Failed(f"k{i}.e2e via worker {pid}: answer {status} {body[:40]!r}")
                    n += 1
            sent[pid] = n
        except (Failed, OSError, ValueError) as e:
            errors.append(f"worker {pid}: {e}")

    threads = [threading.Thread(target=run, args=(pid, s, r), daemon=True) for pid, (s, r) in conns.items()]
    for t in threads:
        t.start()
    for t in threads:
        t.join(max(0.0, DEADLINE - time.monotonic()))
        if t.is_alive():
            raise Failed("deadline passed (E2E_CLIENT_DEADLINE)")
    for sock, _ in conns.values():
        sock.close()
    if errors:
        raise Failed("; ".join(errors))
    pids = sorted(conns, key=int)
    print(f"{count} keys x {workers} worker(s) (pids {' '.join(pids)}): {sum(sent.values()) + attempts} requests"
          f" on {attempts} connection(s) in {time.monotonic() - t0:.2f} s")


def main() -> int:
    args = sys.argv[1:]
    try:
        if args[:1] == ["--keys"] and len(args) == 4:
            keys(int(args[1]), int(args[2]), int(args[3]))
        elif len(args) in (3, 4) and args[0] != "--keys":
            port, path, n = int(args[0]), args[1], int(args[2])
            sequential(port, path, n, args[3] if len(args) > 3 else "bench.local")
        else:
            print(__doc__, file=sys.stderr)
            return 2
    except (Failed, OSError, ValueError, http.client.HTTPException) as e:
        print(f"kaclient: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
