#!/usr/bin/env python3
"""Latency and messages per decision of `synod node` on loopback (docs/BENCHMARKS.md).

    python3 scripts/node-bench.py [--sizes 4,7,10] [--runs 3] [--synod target/release/synod]

For each n: n peers (f = (n - 1) // 3) with the recorded agents of examples/peers (peer i
uses agents-(i mod 4)), all correct, started together; read back from every certificate,
per decided height, the time from the peer's instance start to its decision, the time its
validation checks took, and the BFT messages it sent. Prints one Markdown row per n.
"""
import argparse, json, os, platform, socket, statistics, subprocess, sys, tempfile, time

HERE = os.path.dirname(os.path.abspath(__file__))
EXAMPLE = os.path.join(HERE, "..", "examples", "peers")


def cluster(synod, n, work):
    f = (n - 1) // 3
    socks = [socket.socket() for _ in range(n)]
    for s in socks:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    peers = [f"f = {f}", f'python = "{platform.python_version()}"']
    for i in range(n):
        key = os.path.join(work, f"peer{i}.key")
        line = subprocess.run([synod, "node", "keygen", "--out", key], check=True,
                              capture_output=True, text=True).stdout.strip()
        peers += ["", "[[peer]]", f"id = {i}", f'addr = "127.0.0.1:{ports[i]}"', line]
        with open(os.path.join(work, f"peer{i}.toml"), "w") as fh:
            fh.write(f'id = {i}\nkey = "peer{i}.key"\npeers = "peers.toml"\n'
                     f'agents = "{os.path.join(EXAMPLE, f"agents-{i % 4}.toml")}"\n')
    with open(os.path.join(work, "peers.toml"), "w") as fh:
        fh.write("\n".join(peers) + "\n")
    return f


def run(synod, n):
    with tempfile.TemporaryDirectory() as work:
        f = cluster(synod, n, work)
        t0 = time.monotonic()
        procs = [subprocess.Popen([synod, "node", "--config", os.path.join(work, f"peer{i}.toml"),
                                   "--prompt", os.path.join(EXAMPLE, "prompt.md"),
                                   "--out", os.path.join(work, f"out{i}"), "--linger-ms", "500"],
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                 for i in range(n)]
        codes = [p.wait(timeout=300) for p in procs]
        wall = time.monotonic() - t0
        if any(codes):
            sys.exit(f"n = {n}: a peer failed: {codes}")
        rows = []
        for i in range(n):
            with open(os.path.join(work, f"out{i}", "certificate.json")) as fh:
                rows.append(json.load(fh)["body"]["timings"])
        return f, wall, rows


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", default="4,7,10")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--synod", default=os.path.join(HERE, "..", "target", "release", "synod"))
    a = ap.parse_args()
    print("| n | f | heights | latency per decision, ms (median over peers and runs) | of it validation, ms | BFT messages per decision | n - 1 + 2n(n - 1) | whole run, s |")
    print("|---|---|---|---|---|---|---|---|")
    for n in [int(x) for x in a.sizes.split(",")]:
        lat, val, msgs, walls, heights, f = [], [], [], [], 0, 0
        for _ in range(a.runs):
            f, wall, rows = run(a.synod, n)
            walls.append(wall)
            heights = len(rows[0])
            for h in range(heights):
                per = [r[h] for r in rows if h < len(r)]
                lat += [p["decided_ms"] - p["started_ms"] for p in per if p.get("started_ms") is not None]
                val += [p["validate_ms"] for p in per]
                msgs.append(sum(p["bft_messages_sent"] for p in per))
        theory = (n - 1) + 2 * n * (n - 1)
        print(f"| {n} | {f} | {heights} | {statistics.median(lat):.0f} | {statistics.median(val):.0f} "
              f"| {statistics.median(msgs):.0f} | {theory} | {statistics.median(walls):.1f} |")


if __name__ == "__main__":
    main()
