#!/usr/bin/env python3
"""Writes the committed seed corpora of the codec fuzz targets from real data: Core's fixture
chain and mempool (../shared/fixtures/regtest-core) and, when BITCOIND_EXE is set, the frames a
live bitcoind sends in its handshake. Run from the repository root:

    python3 fuzz/seeds/make.py [FIXTURE_DIR]

The other targets' seeds are written by hand or taken from short fuzz runs (fuzz/REPORT.md).
"""

import hashlib
import os
import re
import socket
import struct
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
FIXTURES = sys.argv[1] if len(sys.argv) > 1 else os.path.join(ROOT, "..", "shared", "fixtures", "regtest-core")
CORPUS = os.path.join(ROOT, "fuzz", "corpus")
REGTEST_MAGIC = bytes.fromhex("fabfb5da")


def commands():
    """Command names in oni's order (the frame_message target picks one by index)."""
    src = open(os.path.join(ROOT, "systems", "src", "wire", "command.rs")).read()
    return re.findall(r'^\s+\w+ = "(\w+)", max', src, re.M)


def write(target, name, data):
    d = os.path.join(CORPUS, target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


def sha256d(b):
    return hashlib.sha256(hashlib.sha256(b).digest()).digest()


def compact(n):
    if n < 0xFD:
        return bytes([n])
    if n <= 0xFFFF:
        return b"\xfd" + struct.pack("<H", n)
    return b"\xfe" + struct.pack("<I", n)


def frame(command, payload):
    return REGTEST_MAGIC + command.encode().ljust(12, b"\0") + struct.pack("<I", len(payload)) + sha256d(payload)[:4] + payload


def lines(name):
    return [bytes.fromhex(l.strip()) for l in open(os.path.join(FIXTURES, name)) if l.strip()]


def block_txids_and_headers(blocks):
    """Headers, and the txids are not needed: headers are the first 80 bytes of each block."""
    return [b[:80] for b in blocks]


def core_handshake():
    """The frames a live bitcoind sends after our version: its version, verack, wtxidrelay,
    sendaddrv2, sendcmpct, ping, getheaders, feefilter... as raw stream bytes."""
    exe = os.environ.get("BITCOIND_EXE")
    if not exe:
        return b""
    with tempfile.TemporaryDirectory() as datadir:
        port = 20000 + os.getpid() % 20000
        proc = subprocess.Popen([exe, "-regtest", f"-datadir={datadir}", f"-port={port}", "-listen=1",
                                 "-bind=127.0.0.1", "-server=0", "-v2transport=0"],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            s = None
            for _ in range(300):
                try:
                    s = socket.create_connection(("127.0.0.1", port), timeout=5)
                    break
                except OSError:
                    time.sleep(0.1)
            if s is None:
                return b""
            addr = struct.pack("<Q", 0) + bytes(10) + b"\xff\xff" + bytes([127, 0, 0, 1]) + struct.pack(">H", port)
            version = (struct.pack("<iQq", 70016, 8 | 1, int(time.time())) + addr + addr
                       + struct.pack("<Q", 0x5eed) + compact(11) + b"/oni-seeds/" + struct.pack("<i", 0) + b"\x01")
            s.sendall(frame("version", version) + frame("wtxidrelay", b"") + frame("sendaddrv2", b"") + frame("verack", b""))
            got = b""
            deadline = time.time() + 3
            while time.time() < deadline:
                s.settimeout(max(0.05, deadline - time.time()))
                try:
                    chunk = s.recv(65536)
                except socket.timeout:
                    break
                if not chunk:
                    break
                got += chunk
            s.close()
            return got
        finally:
            proc.terminate()
            proc.wait()


def split_frames(stream):
    out = []
    while len(stream) >= 24:
        n = struct.unpack("<I", stream[16:20])[0]
        out.append((stream[4:16].rstrip(b"\0").decode(), stream[24:24 + n]))
        stream = stream[24 + n:]
    return out


def main():
    names = commands()
    blocks = lines("chain.hex")
    fork = lines("fork.hex")
    mempool = lines("mempool.hex")

    # tx_diff: every fixture mempool transaction and the largest block's transactions' first few.
    for i, tx in enumerate(mempool):
        write("tx_diff", f"mempool-{i:02}", tx)

    # block_diff: selector byte 0 (header kept as is), then the block; varied sizes and the fork.
    by_size = sorted(range(len(blocks)), key=lambda i: len(blocks[i]))
    picks = sorted(set([0, 1, 149, 150, 2099] + by_size[-8:] + by_size[:2]))
    for i in picks:
        write("block_diff", f"block-{i + 1:04}", b"\x00" + blocks[i])
    for i, b in enumerate(fork[:2]):
        write("block_diff", f"fork-{i}", b"\x00" + b)

    # frame_message: one seed per command payload from real data, selector = the command's index.
    def framed(cmd, payload, tag=""):
        write("frame_message", f"{cmd}{tag}", bytes([names.index(cmd)]) + payload)

    framed("tx", mempool[0])
    framed("tx", mempool[-1], "-last")
    framed("block", blocks[by_size[-1]])
    headers = b"".join(b[:80] + b"\0" for b in blocks[:20])
    framed("headers", compact(20) + headers)
    inv = b"".join(struct.pack("<I", 5) + sha256d(tx) for tx in mempool[:10])
    framed("inv", compact(10) + inv)
    framed("getdata", compact(10) + inv)
    locator = b"".join(sha256d(b[:80]) for b in reversed(blocks[-10:]))
    framed("getheaders", struct.pack("<I", 70016) + compact(10) + locator + bytes(32))
    ipv4 = b"".join(struct.pack("<I", 1700000000) + compact(9) + b"\x01\x04" + bytes([10, 0, 0, i]) + struct.pack(">H", 8333) for i in range(5))
    tor = struct.pack("<I", 1700000000) + compact(9) + b"\x04\x20" + bytes(range(32)) + struct.pack(">H", 8333)
    framed("addrv2", compact(6) + ipv4 + tor)
    old = b"".join(struct.pack("<IQ", 1700000000, 9) + bytes(10) + b"\xff\xff" + bytes([10, 0, 0, i]) + struct.pack(">H", 8333) for i in range(5))
    framed("addr", compact(5) + old)

    # A live bitcoind's handshake: the raw stream (selector 0 reads byte by byte) and each frame.
    stream = core_handshake()
    if stream:
        write("frame_message", "core-handshake-stream", b"\x00" + stream[4:])
        for cmd, payload in split_frames(stream):
            if cmd in names:
                framed(cmd, payload, "-core")
    else:
        print("BITCOIND_EXE not set or bitcoind did not answer: no handshake seeds", file=sys.stderr)

    for t in ("tx_diff", "block_diff", "frame_message"):
        print(t, len(os.listdir(os.path.join(CORPUS, t))))


if __name__ == "__main__":
    main()
