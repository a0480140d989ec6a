#!/usr/bin/env python3
"""Helpers for benches/vozlt.sh (standard library only).

    vozlt_tool.py count URL ZONE          requestCounter of server zone ZONE in the JSON at URL
    vozlt_tool.py shm URL                 sharedZones of the JSON at URL: usedSize usedNode
                                          freeSize maxSize
    vozlt_tool.py seedshm URL             the seed Prometheus text's nginx_vts_shm_bytes:
                                          used free size
    vozlt_tool.py written URL KIND MIN    JSON at URL: server zones named kN.e2e (KIND=server), or
                                          peers of upstream groups named uN (KIND=upstream), whose
                                          requestCounter is >= MIN
    vozlt_tool.py seedwritten URL MIN     the same for server zones in the seed Prometheus text
    vozlt_tool.py report RESULTS          the final table, from vozlt.sh's key=value results file

Every HTTP call has a timeout (VOZLT_HTTP_TIMEOUT, default 120 s).
"""
import json
import os
import re
import statistics
import sys
import urllib.request

TIMEOUT = float(os.environ.get("VOZLT_HTTP_TIMEOUT", "120"))


def fetch(url):
    with urllib.request.urlopen(url, timeout=TIMEOUT) as r:
        return r.read()


def fetch_json(url):
    return json.loads(fetch(url))


def count(url, zone):
    print(fetch_json(url).get("serverZones", {}).get(zone, {}).get("requestCounter", 0))


def shm(url):
    s = fetch_json(url)["sharedZones"]
    print(s["usedSize"], s["usedNode"], s["freeSize"], s["maxSize"])


def seedshm(url):
    text = fetch(url).decode()
    vals = {}
    for line in text.splitlines():
        m = re.match(r'nginx_vts_shm_bytes\{[^}]*state="(\w+)"\} (\d+)', line)
        if m:
            vals[m.group(1)] = int(m.group(2))
    print(vals.get("used", 0), vals.get("free", 0), vals.get("size", 0))


def written(url, kind, least):
    doc = fetch_json(url)
    least = int(least)
    n = 0
    if kind == "server":
        for name, z in doc.get("serverZones", {}).items():
            if re.fullmatch(r"k\d+\.e2e", name) and z.get("requestCounter", 0) >= least:
                n += 1
    else:
        for name, peers in doc.get("upstreamZones", {}).items():
            if re.fullmatch(r"u\d+", name):
                n += sum(1 for p in peers if p.get("requestCounter", 0) >= least)
    print(n)


def seedwritten(url, least):
    n = 0
    for line in fetch(url).decode().splitlines():
        m = re.match(r'nginx_vts_server_requests_total\{zone="k\d+\.e2e"\} (\d+)$', line)
        if m and int(m.group(1)) >= int(least):
            n += 1
    print(n)


# --- report ------------------------------------------------------------------------------------

def load(path):
    res = {}
    with open(path, encoding="utf-8") as f:
        for line in f:
            line = line.rstrip("\n")
            if "=" in line:
                k, _, v = line.partition("=")
                res[k] = v
    return res


def verdict(ok):
    return "met" if ok else "MISSED"


def report(path):
    res = load(path)
    have_c = res.get("oracle") == "yes"
    rows = []  # part, case, variant, result, comparison, target
    targets = []

    # 1. scrapes
    keys = res.get("scrape.keys")
    if keys:
        case = f"{int(keys):,} server zones, each written by both of 2 workers"
        series = [
            ("vts.json", "ngx_vts vozlt", "GET /status/format/json", "c.json"),
            ("c.json", "C module", "GET /status/format/json", None),
            ("vts.prom", "ngx_vts vozlt", "GET /status/format/prometheus", "c.prom"),
            ("c.prom", "C module", "GET /status/format/prometheus", None),
            ("seed.prom", "ngx_vts seed (vts_zone)", "GET /status (vts_status)", None),
        ]
        med = {}
        for sid, who, what, _ in series:
            lat = res.get(f"scrape.{sid}")
            if lat:
                ms = [float(x) * 1000 for x in lat.split()]
                med[sid] = statistics.median(ms)
        for sid, who, what, vs_c in series:
            lat = res.get(f"scrape.{sid}")
            if not lat:
                if sid.startswith("c.") and not have_c:
                    rows.append(("1. scrape (idle)", case, f"{who}: {what}", "skipped: no C module (VOZLT_ORACLE)", "", ""))
                continue
            ms = [float(x) * 1000 for x in lat.split()]
            cpu = float(res[f"scrape.{sid}.cpu"])
            size = int(res[f"scrape.{sid}.bytes"])
            result = (f"median {med[sid]:.2f} ms [{min(ms):.2f}..{max(ms):.2f}], n={len(ms)}; "
                      f"workers' CPU {cpu:.2f} ms/scrape; {size:,} bytes")
            comp = ""
            if vs_c and vs_c in med:
                ccpu = float(res[f"scrape.{vs_c}.cpu"])
                comp = (f"latency x{med[sid] / med[vs_c]:.2f} of C's, CPU x{cpu / max(ccpu, 0.001):.2f}")
            elif vs_c and not have_c:
                comp = "C: skipped"
            target = ""
            if sid == "vts.json":
                ok = med[sid] <= 15.0
                target = f"<= 15 ms: {verdict(ok)}" + ("" if ok else f" by {med[sid] - 15:.2f} ms")
                targets.append((f"ngx_vts JSON scrape, {int(keys):,} zones, 2 workers: <= 15 ms median (the target is for 10,000)",
                                f"{med[sid]:.2f} ms (workers' CPU {cpu:.2f} ms/scrape)", verdict(ok)))
            rows.append(("1. scrape (idle)", case, f"{who}: {what}", result, comp, target))

    # 2. instructions per request
    labels = [
        ("plain", "plain nginx (no module)", None),
        ("noz", "ngx_vts loaded, no zone", "noz"),
        ("seed", "ngx_vts seed: vts_zone main 1m", "noz"),
        ("vozlt", "ngx_vts: vhost_traffic_status_zone; (defaults)", "noz"),
        ("codes", "ngx_vts: + measure_status_codes all", "noz"),
        ("cnoz", "C module loaded, no zone", "cnoz"),
        ("c", "C module: vhost_traffic_status_zone; (defaults)", "cnoz"),
    ]
    plain = res.get("cg.plain")
    if plain:
        pa, pall = (float(x) for x in plain.split())
        case = f"return 200, one server zone, keep-alive (W={res.get('cg.warm')}, N={res.get('cg.n')})"
        for v, label, base in labels:
            val = res.get(f"cg.{v}")
            if val is None:
                if v in ("cnoz", "c") and not have_c:
                    rows.append(("2. instr/req (callgrind)", case, label, "skipped: no C module (VOZLT_ORACLE)", "", ""))
                continue
            a, al = (float(x) for x in val.split())
            result = f"all {al:,.0f}; attributed {a:,.0f}"
            comp = target = ""
            if v != "plain":
                comp = f"vs plain: all {al - pall:+.0f}, attributed {a - pa:+.0f}"
                if base and base != v and res.get(f"cg.{base}"):
                    ba, ball = (float(x) for x in res[f"cg.{base}"].split())
                    comp += f"; vs loaded without a zone: all {al - ball:+.0f}, attributed {a - ba:+.0f}"
                if v == "vozlt":
                    ok_plain = al - pall <= 250
                    txt = f"<= +250: vs plain all {verdict(ok_plain)}, attributed {verdict(a - pa <= 250)}"
                    measured = f"all {al - pall:+.0f}, attributed {a - pa:+.0f} vs plain nginx"
                    if res.get("cg.noz"):
                        ba, ball = (float(x) for x in res["cg.noz"].split())
                        txt += f"; vs no zone all {verdict(al - ball <= 250)}"
                        measured += f"; all {al - ball:+.0f}, attributed {a - ba:+.0f} vs the module loaded without a zone"
                    target = txt
                    targets.append(("ngx_vts vozlt defaults, added instructions per request: <= +250", measured, txt.split(": ", 1)[1]))
            rows.append(("2. instr/req (callgrind)", case, label, result, comp, target))

    # 3. memory per key
    for kind, label in (("server", "server zone"), ("upstream", "upstream peer"),
                        ("codes", "server zone, measure_status_codes all")):
        for who, name in (("vts", "ngx_vts vozlt"), ("c", "C module"), ("seed", "ngx_vts seed (vts_zone)")):
            val = res.get(f"mem.{kind}.{who}")
            if val is None:
                if who == "c" and not have_c and f"mem.{kind}.vts" in res:
                    rows.append(("3. memory per key", label, name, "skipped: no C module (VOZLT_ORACLE)", "", ""))
                continue
            f = val.split()
            if who in ("vts", "seed"):
                # d_used keys workers used_at_start max_size
                d_used, n, w, start, size = (int(x) for x in f)
                per_kw = d_used / (n * w)
                result = (f"{per_kw:,.0f} bytes per key per worker ({d_used / n:,.0f} per key with {w} workers; "
                          f"used grew {d_used:,} for {n:,} keys)")
                comp = f"used at start {start:,} of {size:,} (directory, hash index and configured names, preallocated)"
            else:
                # d_used d_node d_free keys workers used_at_start max_size
                d_used, d_node, d_free, n, w, start, size = (int(x) for x in f)
                result = (f"{d_used / max(d_node, 1):,.0f} bytes per key (usedSize/usedNode, shared by all workers;"
                          f" {d_used / max(d_node, 1) / w:,.0f} per key per worker with {w}); "
                          f"{d_free / max(d_node, 1):,.0f} bytes of freeSize per key")
                comp = f"{d_node:,} nodes for {n:,} keys; used at start {start:,} of {size:,}"
            rows.append(("3. memory per key", label, name, result, comp, ""))

    head = ("part", "case", "variant", "result", "comparison", "target")
    widths = [max(len(str(r[i])) for r in rows + [head]) for i in range(len(head))]
    line = lambda r: "| " + " | ".join(str(c).ljust(w) for c, w in zip(r, widths)) + " |"
    print(res.get("title", "ngx_vts vs nginx-module-vts"))
    print(line(head))
    print("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    for r in rows:
        print(line(r))
    if targets:
        print("Targets:")
        for what, measured, how in targets:
            print(f"  {what}: {measured} -> {how}")
    for k in sorted(k for k in res if k.startswith("note")):
        print(res[k])


def main():
    cmd, args = sys.argv[1], sys.argv[2:]
    fns = {"count": count, "shm": shm, "seedshm": seedshm, "written": written,
           "seedwritten": seedwritten, "report": report}
    if cmd not in fns:
        print(__doc__, file=sys.stderr)
        return 2
    fns[cmd](*args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
