#!/usr/bin/env python3
"""IBD race: a fresh oni and a fresh bitcoind sync the same chain from the same bitcoind sources.

Each syncing node is timed from process start to its tip equal to the sources' (polled every
100 ms over RPC); at that moment its peak RSS (VmHWM) and CPU time (user + system, all threads)
are read from /proc. Sources are bitcoind datadirs holding the chain, made once by `submitblock`
from a hex-lines file (`oni chaingen` output, or the fixture's blocks.hex) and copied for each
further source. `--slow K` puts K of the sources behind a proxy that holds every `block` message
for `--delay` seconds (v1 transport then, so the proxy can read the stream).

    python3 benches/ibd_race.py --chain /tmp/heavy.hex --work /tmp/race --sources 4 --slow 1

Prints one line per node and a table row for REPORT-ibd.md. Standard library only.
"""
import argparse
import base64
import json
import os
import shutil
import socket
import struct
import subprocess
import sys
import threading
import time
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
USER, PASSWORD = "race", "race"


def rpc(port, method, params=(), timeout=600, cookie=None):
    auth = cookie or f"{USER}:{PASSWORD}"
    req = urllib.request.Request(
        f"http://127.0.0.1:{port}",
        data=json.dumps({"jsonrpc": "1.0", "id": 1, "method": method, "params": list(params)}).encode(),
        headers={"Authorization": "Basic " + base64.b64encode(auth.encode()).decode()},
    )
    return json.loads(urllib.request.urlopen(req, timeout=timeout).read())["result"]


def wait_rpc(port, proc, what, timeout=120):
    end = time.time() + timeout
    while time.time() < end:
        if proc.poll() is not None:
            sys.exit(f"{what} exited with {proc.returncode}")
        try:
            return rpc(port, "getblockcount", timeout=5)
        except Exception:
            time.sleep(0.05)
    sys.exit(f"{what}: no RPC after {timeout} s")


def bitcoind(exe, datadir, port, rpcport, extra=(), log=None):
    os.makedirs(datadir, exist_ok=True)
    args = [exe, "-regtest", f"-datadir={datadir}", f"-port={port}", f"-rpcport={rpcport}", "-bind=127.0.0.1",
            f"-rpcuser={USER}", f"-rpcpassword={PASSWORD}", "-maxtipage=4000000000", "-printtoconsole=0",
            "-dnsseed=0", "-fixedseeds=0", "-discover=0", "-natpmp=0", *extra]
    return subprocess.Popen(args, stdout=log or subprocess.DEVNULL, stderr=subprocess.STDOUT)


def stop(proc, port=None):
    if proc.poll() is None:
        if port:
            try:
                rpc(port, "stop", timeout=10)
            except Exception:
                proc.terminate()
        else:
            proc.terminate()
        try:
            proc.wait(timeout=120)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def make_source(args, first):
    """The first source's datadir holding the whole chain (loaded once, kept between runs)."""
    marker = os.path.join(first, "loaded")
    lines = sum(1 for _ in open(args.chain))
    if os.path.exists(marker) and open(marker).read().strip() == str(lines):
        return lines
    shutil.rmtree(first, ignore_errors=True)
    proc = bitcoind(args.bitcoind, first, 29590, 29591)
    wait_rpc(29591, proc, "source loader")
    started = time.time()
    for n, line in enumerate(open(args.chain), 1):
        result = rpc(29591, "submitblock", [line.strip()])
        if result is not None:
            sys.exit(f"source refused block {n}: {result}")
    print(f"source loaded {lines} blocks in {time.time() - started:.1f} s", flush=True)
    stop(proc, 29591)
    open(marker, "w").write(str(lines))
    return lines


def proxy(listen_port, target_port, delay):
    """Forwards both ways; from the source to the syncer every `block` message waits `delay` s."""
    server = socket.socket()
    server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    server.bind(("127.0.0.1", listen_port))
    server.listen()

    def pump(src, dst, slow):
        buf = b""
        try:
            while True:
                data = src.recv(1 << 16)
                if not data:
                    break
                if not slow:
                    dst.sendall(data)
                    continue
                buf += data
                while len(buf) >= 24:
                    length = struct.unpack("<I", buf[16:20])[0]
                    if len(buf) < 24 + length:
                        break
                    if buf[4:16].rstrip(b"\0") == b"block":
                        time.sleep(delay)
                    dst.sendall(buf[: 24 + length])
                    buf = buf[24 + length:]
        except OSError:
            pass
        for s in (src, dst):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    while True:
        client, _ = server.accept()
        upstream = socket.create_connection(("127.0.0.1", target_port))
        threading.Thread(target=pump, args=(client, upstream, False), daemon=True).start()
        threading.Thread(target=pump, args=(upstream, client, True), daemon=True).start()


def resident_by_mapping(pid):
    """Resident MB by mapped file (or [anon])."""
    by_file, name = {}, "[anon]"
    for line in open(f"/proc/{pid}/smaps"):
        parts = line.split()
        if "-" in parts[0] and len(parts) >= 5:
            name = parts[5] if len(parts) > 5 else "[anon]"
        elif parts[0] == "Rss:":
            by_file[name] = by_file.get(name, 0) + int(parts[1]) / 1024
    return by_file


def print_mappings(by_file):
    for name, mb in sorted(by_file.items(), key=lambda kv: -kv[1])[:8]:
        print(f"    {mb:7.1f} MB  {name}")


def rss_now(pid):
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0


def proc_figures(pid):
    """Peak RSS in MB, CPU seconds, and the RSS now split into anonymous and file-backed MB."""
    rss, split = 0, {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                rss = int(line.split()[1]) / 1024
            if line.startswith(("RssAnon:", "RssFile:")):
                split[line.split(":")[0]] = int(line.split()[1]) / 1024
    fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    cpu = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    if os.environ.get("RACE_SMAPS"):
        print_mappings(resident_by_mapping(pid))
    return rss, cpu, split


def race(name, cmd, rpcport, target, chain_bytes, log, cookie=None):
    started = time.time()
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)
    height, last, sampled, peak = 0, 0, 0, (0, None)
    while True:
        if proc.poll() is not None:
            sys.exit(f"{name} exited with {proc.returncode} (log: {log.name})")
        try:
            height = rpc(rpcport, "getblockcount", timeout=5, cookie=cookie)
        except Exception:
            pass
        if height >= target:
            break
        if os.environ.get("RACE_SMAPS") and time.time() - sampled > 1:
            # Where the memory is when it is highest: the split at the largest RSS seen.
            sampled = time.time()
            try:
                now = rss_now(proc.pid)
                if now > peak[0]:
                    peak = (now, resident_by_mapping(proc.pid))
            except OSError:
                pass
        if time.time() - last > 30:
            last = time.time()
            print(f"  {name}: {height} of {target} after {time.time() - started:.0f} s", flush=True)
        time.sleep(0.1)
    wall = time.time() - started
    if peak[1]:
        print(f"  {name}: largest RSS sampled {peak[0]:.0f} MB, by mapping:")
        print_mappings(peak[1])
        print(f"  {name}: at the tip, by mapping:")
    rss, cpu, split = proc_figures(proc.pid)
    print(f"{name}: {target} blocks in {wall:.1f} s, {target / wall:.0f} blocks/s, "
          f"{chain_bytes / wall / 1e6:.2f} MB/s, peak RSS {rss:.1f} MB (at the tip: anonymous "
          f"{split.get('RssAnon', 0):.0f} MB, file-backed {split.get('RssFile', 0):.0f} MB), CPU {cpu:.1f} s", flush=True)
    return proc, dict(wall=wall, rss=rss, cpu=cpu)


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--chain", required=True, help="hex lines, one block each (oni chaingen --out)")
    p.add_argument("--work", required=True, help="scratch directory (the loaded source is kept here)")
    p.add_argument("--sources", type=int, default=1)
    p.add_argument("--slow", type=int, default=0, help="how many sources sit behind the delaying proxy")
    p.add_argument("--delay", type=float, default=2.0, help="seconds each block waits at the proxy")
    p.add_argument("--oni", default=os.path.join(HERE, "..", "target", "release", "oni"))
    p.add_argument("--bitcoind", default=os.environ.get("BITCOIND_EXE", "bitcoind"))
    p.add_argument("--only", choices=["oni", "core"], help="run one of the two")
    p.add_argument("--v1", action="store_true", help="v1 transport even with no slow source (a baseline for --slow)")
    p.add_argument("--oni-args", default="", help="extra flags for oni, space separated")
    p.add_argument("--core-args", default="", help="extra flags for the syncing bitcoind, space separated")
    args = p.parse_args()
    os.makedirs(args.work, exist_ok=True)
    first = os.path.join(args.work, "source0")
    target = make_source(args, first)
    chain_bytes = sum(len(line.strip()) // 2 for line in open(args.chain))
    sources, peer_ports = [], []
    for i in range(args.sources):
        d = os.path.join(args.work, f"source{i}")
        if i > 0:
            shutil.rmtree(d, ignore_errors=True)
            shutil.copytree(first, d)
        sources.append((bitcoind(args.bitcoind, d, 29600 + i, 29700 + i), 29700 + i))
        if i < args.slow:
            threading.Thread(target=proxy, args=(29650 + i, 29600 + i, args.delay), daemon=True).start()
            peer_ports.append(29650 + i)
        else:
            peer_ports.append(29600 + i)
    for proc, rpcport in sources:
        if wait_rpc(rpcport, proc, "source") != target:
            sys.exit("a source does not hold the whole chain")
    v1 = args.slow > 0 or args.v1
    print(f"chain: {target} blocks, {chain_bytes / 1e6:.1f} MB; {args.sources} sources, {args.slow} slow", flush=True)
    results = {}
    try:
        if args.only in (None, "oni"):
            d = os.path.join(args.work, "oni")
            shutil.rmtree(d, ignore_errors=True)
            cmd = [args.oni, "node", "--network", "regtest", "--datadir", d, "--listen", "127.0.0.1:29800",
                   "--rpcport", "29801", "--rpcuser", USER, "--rpcpassword", PASSWORD, "--max-tip-age", "4000000000"]
            cmd += [f"--connect=127.0.0.1:{port}" for port in peer_ports]
            cmd += ["--v2transport", "0"] if v1 else []
            cmd += args.oni_args.split()
            with open(os.path.join(args.work, "oni.log"), "w") as log:
                proc, results["oni"] = race("oni", cmd, 29801, target, chain_bytes, log)
                proc.send_signal(2)
                proc.wait(timeout=120)
        if args.only in (None, "core"):
            d = os.path.join(args.work, "core")
            shutil.rmtree(d, ignore_errors=True)
            os.makedirs(d)
            cmd = [args.bitcoind, "-regtest", f"-datadir={d}", "-port=29810", "-rpcport=29811", "-bind=127.0.0.1",
                   f"-rpcuser={USER}", f"-rpcpassword={PASSWORD}", "-maxtipage=4000000000", "-printtoconsole=0",
                   "-dnsseed=0", "-fixedseeds=0", "-discover=0", "-natpmp=0"]
            cmd += [f"-connect=127.0.0.1:{port}" for port in peer_ports]
            cmd += ["-v2transport=0"] if v1 else []
            cmd += args.core_args.split()
            with open(os.path.join(args.work, "core.log"), "w") as log:
                proc, results["core"] = race("bitcoind", cmd, 29811, target, chain_bytes, log)
                stop(proc, 29811)
    finally:
        for proc, rpcport in sources:
            stop(proc, rpcport)
    if len(results) == 2:
        o, c = results["oni"], results["core"]
        print(f"| {args.sources} ({args.slow} slow) | {o['wall']:.1f} s | {c['wall']:.1f} s | "
              f"**{o['wall'] / c['wall']:.2f}×** | {o['rss']:.1f} / {c['rss']:.1f} MB | "
              f"{o['cpu']:.0f} / {c['cpu']:.0f} s |")


if __name__ == "__main__":
    main()
