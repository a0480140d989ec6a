#!/usr/bin/env python3
"""Helpers for benches/e2e.sh (standard library only).

    tool.py ports K                      K free TCP ports on 127.0.0.1
    tool.py totals FILE                  total instructions of a callgrind output file, and those
                                         of nginx's calls to the allocator
    tool.py attrib N MODULE VB VS PB PS  per-request attribution of the module's cost: callgrind
                                         outputs of the module variant with W+N (VB) and W (VS)
                                         requests, and of plain nginx (PB, PS)
    tool.py scrapeattrib K BIG SMALL     functions by cost per scrape: 1 + K scrapes (BIG) minus 1
    tool.py wrkrps FILE                  Requests/sec of a wrk output
    tool.py report RESULTS               the final table, from e2e.sh's key=value results file
"""
import collections
import re
import socket
import statistics
import sys


def ports(k):
    socks = []
    for _ in range(k):
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        socks.append(s)
    print(" ".join(str(s.getsockname()[1]) for s in socks))
    for s in socks:
        s.close()


ALLOCATOR = {"malloc", "free", "calloc", "realloc", "posix_memalign", "memalign", "aligned_alloc"}


def totals(path):
    """Prints the run's total instructions, and those spent in the allocator on nginx's own
    calls (malloc & co. called from the nginx binary). glibc's malloc costs a request more or
    less depending on the heap's layout, which any change of configuration shifts (by +-250
    instructions per request here); the module's own allocations are not in the second figure.
    """
    p = Profile(path)
    total = sum(p.self_cost.values())
    alloc = sum(c for (caller, callee, fn), c in p.calls.items()
                if (caller or "").endswith("/nginx") and (callee or "").rsplit("/", 1)[-1].startswith("libc")
                and fn.split("@")[0] in ALLOCATOR)
    print(total, alloc)


class Profile:
    """Self cost per (object, function) and inclusive cost of calls, from a callgrind file."""

    def __init__(self, path):
        self.self_cost = collections.Counter()
        # (caller object, callee object, callee function) -> inclusive cost
        self.calls = collections.Counter()
        names = {"ob": {}, "fn": {}}
        ob = fn = cob = cfn = None
        after_calls = False

        def name(kind, value):
            m = re.match(r"\((\d+)\)(?: (.*))?$", value)
            if not m:
                return value
            if m.group(2) is not None:
                names[kind][m.group(1)] = m.group(2)
            return names[kind].get(m.group(1), value)

        with open(path, encoding="utf-8", errors="replace") as f:
            for line in f:
                line = line.rstrip("\n")
                if not line:
                    continue
                c = line[0]
                if c.isdigit() or c in "+-*":
                    parts = line.split()
                    cost = int(parts[1]) if len(parts) > 1 else 0
                    if after_calls:
                        # cob= names the callee's object only when it differs from the caller's.
                        self.calls[(ob, cob or ob, cfn)] += cost
                        after_calls = False
                        cob = None
                    else:
                        self.self_cost[(ob, fn)] += cost
                    continue
                key, _, value = line.partition("=")
                if key == "ob":
                    ob = name("ob", value)
                elif key == "fn":
                    fn = name("fn", value)
                    cob = None
                elif key in ("cob", "cfo"):
                    cob = name("ob", value)
                elif key == "cfn":
                    cfn = name("fn", value)
                elif key == "calls":
                    after_calls = True

    def module_functions(self, module):
        return {fn for (ob, fn) in self.self_cost if ob and ob.endswith(module)}


def short(fn, width=90):
    fn = re.sub(r"::h[0-9a-f]{16}$", "", fn)
    return fn if len(fn) <= width else "..." + fn[-(width - 3):]


def attrib(n, module, vb, vs, pb, ps):
    n = int(n)
    VB, VS, PB, PS = (Profile(p) for p in (vb, vs, pb, ps))
    per_req = lambda big, small, key: (big.get(key, 0) - small.get(key, 0)) / n

    print(f"Entry points into {module} (inclusive instructions per request):")
    entries = set()
    for (cob_caller, cob, cfn) in set(VB.calls) | set(VS.calls):
        if cob and cob.endswith(module) and not (cob_caller or "").endswith(module):
            entries.add((cob_caller, cob, cfn))
    rows = sorted(((per_req(VB.calls, VS.calls, k), k[2]) for k in entries), reverse=True)
    for cost, fn in rows:
        if abs(cost) >= 0.5:
            print(f"  {cost:9.1f}  {short(fn)}")

    print(f"Self instructions per request in {module}:")
    keys = {k for k in set(VB.self_cost) | set(VS.self_cost) if k[0] and k[0].endswith(module)}
    rows = sorted(((per_req(VB.self_cost, VS.self_cost, k), k[1]) for k in keys), reverse=True)
    total = sum(c for c, _ in rows)
    for cost, fn in rows:
        if abs(cost) >= 0.5:
            print(f"  {cost:9.1f}  {short(fn)}")
    print(f"  {total:9.1f}  (all self instructions in the module)")

    print(f"Calls from {module} into other objects (inclusive instructions per request):")
    rows = []
    for k in set(VB.calls) | set(VS.calls):
        caller, callee, fn = k
        if (caller or "").endswith(module) and not (callee or "").endswith(module):
            c = per_req(VB.calls, VS.calls, k)
            if abs(c) >= 0.5:
                rows.append((c, f"{short(fn, 70)}  [{(callee or '?').rsplit('/', 1)[-1]}]"))
    for c, what in sorted(rows, reverse=True):
        print(f"  {c:9.1f}  {what}")
    if not rows:
        print("      none")

    print("Every function whose self cost per request differs from plain nginx (|delta| >= 1);")
    print("  (*) = glibc allocator internals, whose cost follows the heap layout (see the report's note)")
    keys = set(VB.self_cost) | set(VS.self_cost) | set(PB.self_cost) | set(PS.self_cost)
    rows = []
    for k in keys:
        d = per_req(VB.self_cost, VS.self_cost, k) - per_req(PB.self_cost, PS.self_cost, k)
        if abs(d) >= 1:
            obj = (k[0] or "?").rsplit("/", 1)[-1]
            alloc = obj.startswith("libc") and re.match(
                r"(_int_|malloc|free|unlink_chunk|sysmalloc|posix_memalign|_mid_memalign|tcache)", k[1])
            rows.append((d, f"{short(k[1], 70)}  [{obj}]{' (*)' if alloc else ''}", bool(alloc)))
    rows.sort(reverse=True)
    for d, what, _ in rows[:25]:
        print(f"  {d:+9.1f}  {what}")
    print(f"  {sum(d for d, _, a in rows if not a):+9.1f}  (sum without (*))")


def scrapeattrib(k, big, small):
    k = int(k)
    B, S = Profile(big), Profile(small)
    incl = collections.Counter()
    for prof, sign in ((B, 1), (S, -1)):
        for (_, callee_ob, fn), c in prof.calls.items():
            incl[(callee_ob, fn)] += sign * c
    selfc = collections.Counter()
    for prof, sign in ((B, 1), (S, -1)):
        for key, c in prof.self_cost.items():
            selfc[key] += sign * c
    for title, counter in (("inclusive", incl), ("self", selfc)):
        print(f"Top functions by {title} instructions per scrape:")
        rows = sorted(((c / k, key) for key, c in counter.items()), reverse=True)
        shown = 0
        for c, (ob, fn) in rows:
            if title == "inclusive" and not (ob or "").endswith("libngx_vts.so"):
                continue
            print(f"  {c:14,.0f}  {short(fn, 80)}  [{(ob or '?').rsplit('/', 1)[-1]}]")
            shown += 1
            if shown == 15:
                break


def wrkrps(path):
    """Prints wrk's Requests/sec and its count of requests."""
    rps, n = "0", "0"
    with open(path, encoding="utf-8", errors="replace") as f:
        for line in f:
            if line.startswith("Requests/sec:"):
                rps = line.split()[1]
            m = re.match(r"\s*(\d+) requests in", line)
            if m:
                n = m.group(1)
    print(rps, n)


def floats(res, key):
    return [float(x) for x in res.get(key, "").split()]


def spread(xs, fmt):
    return f"{fmt(statistics.median(xs))} [{fmt(min(xs))}..{fmt(max(xs))}]"


def ratios(xs, base):
    rs = [a / b for a, b in zip(xs, base) if b > 0]
    return f"x{statistics.median(rs):.3f} [{min(rs):.3f}..{max(rs):.3f}]", statistics.median(rs)


def fmt_int(x):
    return f"{x:,.0f}"


def report(path):
    res = collections.OrderedDict()
    with open(path, encoding="utf-8") as f:
        for line in f:
            line = line.rstrip("\n")
            if "=" in line:
                k, _, v = line.partition("=")
                res[k] = v
    rows = []  # (part, case, variant, result, vs plain, target)
    targets = []  # (target, measured, verdict): the summary under the table
    verdict = lambda ok: "met" if ok else "MISSED"

    # 1. instructions per request
    labels = {
        "plain": "plain nginx",
        "stub": "stub_status (not requested)",
        "noz": "vts loaded, no vts_zone",
        "vts": "vts server zone",
        "vtsup": "vts zone + vts_upstream_stats",
    }
    cases = {"r200": "return 200", "static": "static file", "proxy": "proxy to local backend"}
    for case, case_label in cases.items():
        plain = res.get(f"cg.{case}.plain")
        for v, v_label in labels.items():
            val = res.get(f"cg.{case}.{v}")
            if val is None:
                continue
            val, raw = (float(x) for x in val.split())
            vs = target = ""
            if v != "plain" and plain is not None:
                p, praw = (float(x) for x in plain.split())
                added, added_raw = val - p, raw - praw
                vs = f"attributed {added:+.0f} ({added / p * 100:+.2f}%); all {added_raw:+.0f}"
                if case == "r200" and v == "vts":
                    target = (f"<= +250: attributed {verdict(added <= 250)}, all {verdict(added_raw <= 250)}"
                              " (C vts: +843)")
                    measured = f"attributed {added:+.0f}, all instructions {added_raw:+.0f}"
                    noz = res.get(f"cg.{case}.noz")
                    if noz is not None:
                        # The same binary and modules, only the zone differs: the heap layout moves less.
                        d = raw - float(noz.split()[1])
                        vs += f" (all vs 'vts loaded, no vts_zone': {d:+.0f})"
                        measured += f" (all instructions vs the module loaded without a zone: {d:+.0f})"
                    targets.append(("added instructions per request, server zone, return 200: <= 250",
                                    measured, f"attributed {verdict(added <= 250)}, all {verdict(added_raw <= 250)}"))
            rows.append(("instr/req (callgrind)", case_label, v_label,
                         f"attributed {val:,.0f}; all {raw:,.0f}", vs, target))

    # 2. interleaved wrk
    if "wrk.desc" in res:
        pct = lambda x: f"{x * 100:.0f}%"
        for metric, label in (("", "wrk req/s (interleaved)"), (".eff", "wrk req per worker CPU-s")):
            base = floats(res, f"wrk.plain{metric}")
            for v, v_label in (("plain", "plain nginx"), ("stub", "stub_status (not requested)"),
                               ("vts", "vts server zone")):
                xs = floats(res, f"wrk.{v}{metric}")
                if not xs:
                    continue
                result = spread(xs, fmt_int)
                if not metric:
                    result += f", busy {spread(floats(res, f'wrk.{v}.busy'), pct)}"
                vs = ratios(xs, base)[0] if v != "plain" and len(base) == len(xs) else ""
                rows.append((label, res["wrk.desc"], v_label, result, vs, ""))

    # 3. scrapes
    if "scrape.desc" in res:
        pct = lambda x: f"{x * 100:.0f}%"
        rate = res.get("scrape.rate", "")
        for metric, label in (("", "serving req/s during scrapes"), (".eff", "serving req per worker CPU-s")):
            base, loaded = floats(res, f"scrape.without{metric}"), floats(res, f"scrape.with{metric}")
            for mode, xs in (("without", base), ("with", loaded)):
                if not xs:
                    continue
                result = spread(xs, fmt_int)
                if not metric:
                    result += f", busy {spread(floats(res, f'scrape.{mode}.busy'), pct)}"
                vs = target = ""
                if mode == "with" and len(base) == len(xs):
                    vs, med = ratios(xs, base)
                    if not metric:
                        target = f">= 0.80: {verdict(med >= 0.80)}"
                        targets.append(("serving throughput under back-to-back 10k-key scrapes: >= 0.80",
                                        f"{med:.2f} (median of per-round ratios; {res['scrape.desc']})",
                                        verdict(med >= 0.80)
                                        + ("" if res["scrape.desc"].startswith("10000 keys") else
                                           " (not 10,000 keys: E2E_KEYS)")))
                v_label = "no scrapes" if mode == "without" else f"back-to-back scrapes ({rate}/s)"
                rows.append((label, res["scrape.desc"], v_label, result, vs, target))
        for k, v in res.items():
            m = re.match(r"latency\.(\d+)$", k)
            if m:
                keys = int(m.group(1))
                ms = [float(x) * 1000 for x in v.split()]
                med = statistics.median(ms)
                size = res.get(f"latency.{keys}.bytes", "?")
                cpu = res.get(f"latency.{keys}.cpu", "?").split()[0]
                workers = res.get(f"latency.{keys}.workers", "?")
                if cpu == "0.00":
                    cpu = "< 1 tick"
                target = ""
                if keys == 10000:
                    ok = med <= 10.0 and workers == "2"
                    how = verdict(ok) if workers == "2" else f"not measured: {workers} worker(s), the target is for 2"
                    if workers == "2" and not ok:
                        how += f" by {med - 10.0:.2f} ms"
                    target = f"<= 10 ms with 2 workers: {how}"
                    targets.append(("10k-key scrape with 2 workers: <= 10 ms",
                                    f"median {med:.2f} ms with {workers} worker(s), every key written", how))
                rows.append(("scrape latency (idle)", f"{keys:,} keys, each written by every worker",
                             f"GET /status, {workers} workers",
                             f"median {med:.2f} ms [{min(ms):.2f}..{max(ms):.2f}]",
                             f"{int(size):,} bytes; workers' CPU {cpu} ms/scrape"
                             if size.isdigit() else "", target))

    head = ("part", "case", "variant", "result", "vs plain nginx", "target")
    widths = [max(len(str(r[i])) for r in rows + [head]) for i in range(len(head))]
    line = lambda r: "| " + " | ".join(str(c).ljust(w) for c, w in zip(r, widths)) + " |"
    print(res.get("title", "ngx_vts end-to-end"))
    print(line(head))
    print("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    for r in rows:
        print(line(r))
    if targets:
        print("Issue 6's targets:")
        for what, measured, how in targets:
            print(f"  {what}: {measured} -> {how}")
    for k, v in res.items():
        if k.startswith("note"):
            print(v)
    warm = [v for k, v in res.items() if k.startswith("warm.")]
    if warm:
        print("Keys written before the scrape measurements (kaclient.py --keys, one request per key"
              " through each worker):")
        for v in warm:
            print(f"  {v}")


def main():
    cmd, args = sys.argv[1], sys.argv[2:]
    {"ports": lambda: ports(int(args[0])), "totals": lambda: totals(args[0]),
     "attrib": lambda: attrib(*args), "scrapeattrib": lambda: scrapeattrib(*args), "wrkrps": lambda: wrkrps(args[0]),
     "report": lambda: report(args[0])}[cmd]()


if __name__ == "__main__":
    main()
