#!/usr/bin/env python3
"""Writes the seed corpus of the `world` fuzz target (fuzz/corpus/world/) from Core's regtest
fixture: handshakes, then real headers, blocks, inv and tx of /work/shared/fixtures/regtest-core.
The op bytes are those `fuzz_targets/world.rs` reads. Run from the repository root."""
import hashlib, os, struct, sys

FIX = os.environ.get("ONI_FIXTURES", "/work/shared/fixtures/regtest-core")
OUT = "fuzz/corpus/world"
CMD = {n: i for i, n in enumerate(
    "version verack ping pong sendheaders wtxidrelay sendaddrv2 feefilter sendcmpct getaddr mempool inv getdata "
    "notfound getheaders getblocks headers addr addrv2 tx block filterload filteradd filterclear getcfilters "
    "getcfheaders getcfcheckpt feature".split())}
DIR = {"inbound": 0, "full": 1, "blockonly": 2, "feeler": 3, "manual": 4}

chain = [bytes.fromhex(l) for l in open(f"{FIX}/chain.hex").read().split()]
# Lock times zeroed: the wallet set them to the fixture's tip height (anti fee sniping), so on a
# fresh world they are non-final and never reach the orphanage. Signatures break; orphan handling
# comes before script checks.
mempool = [bytes.fromhex(l)[:-4] + bytes(4) for l in open(f"{FIX}/mempool.hex").read().split()]
sha2 = lambda b: hashlib.sha256(hashlib.sha256(b).digest()).digest()
GENESIS = bytes.fromhex("0f9188f13cb7b2c71f2a335e3a4fc328bf5beb436012afca590b1a11466e2206")[::-1]

def cs(n):
    return bytes([n]) if n < 0xfd else b"\xfd" + struct.pack("<H", n)

def connect(s, d): return bytes([0, s, DIR[d]])
def hs(s, flags=0x07): return bytes([2, s, flags])
def msg(s, cmd, payload):
    assert len(payload) < 65536
    return bytes([3, s, CMD[cmd]]) + struct.pack("<H", len(payload)) + payload
def ping(s, n): return bytes([5, s, n])
TICK = bytes([8])
def elapse(ms): return bytes([9]) + struct.pack("<H", ms // 100)
def headers(a, b): return cs(b - a) + b"".join(blk[:80] + b"\0" for blk in chain[a:b])
def wtxid(tx): return sha2(tx)

def write(name, config, *ops):
    data = bytes([config]) + b"".join(ops)
    open(f"{OUT}/{name}", "wb").write(data)

os.makedirs(OUT, exist_ok=True)
write("inbound_handshake_ping", 0, connect(0, "inbound"), hs(0), TICK, ping(0, 1), TICK)
write("headers_then_blocks", 0, connect(0, "inbound"), hs(0), TICK, msg(0, "headers", headers(0, 20)), TICK,
      *[msg(0, "block", chain[i]) for i in range(3)], TICK, ping(0, 2), TICK)
inv = cs(4) + b"".join(struct.pack("<I", 5) + wtxid(t) for t in mempool[:4])
write("outbound_inv_and_orphans", 2, connect(1, "full"), hs(1), TICK, msg(1, "headers", headers(0, 10)), TICK,
      msg(1, "inv", inv), TICK, *[msg(1, "tx", t) for t in mempool[:3]], TICK, elapse(60_000), ping(1, 3), TICK)
locator = struct.pack("<I", 70016) + cs(1) + GENESIS + bytes(32)
getdata = cs(1) + struct.pack("<I", 0x40000002) + sha2(chain[0][:80])
addr = cs(3) + b"".join(struct.pack("<IQ", 1_795_620_000, 9) + bytes(10) + b"\xff\xff" + bytes([50, 1, 2, i])
                        + struct.pack(">H", 8333) for i in range(3))
write("two_peers_getheaders_getdata_addr", 0, connect(0, "inbound"), connect(2, "full"), hs(0), hs(2), TICK,
      msg(0, "getheaders", locator), msg(2, "headers", headers(0, 5)), TICK, msg(2, "block", chain[0]), TICK,
      msg(0, "getdata", getdata), msg(0, "addr", addr), TICK, ping(0, 4), ping(2, 5), TICK)
write("small_bounds_big_getdata", 1 | 4, connect(0, "inbound"), hs(0), TICK,
      bytes([6, 0, 1]) + struct.pack("<H", 6000) + b"\x07", ping(0, 6), TICK, TICK, TICK)
write("garbage_then_ping", 1, connect(3, "inbound"), hs(3), TICK, bytes([4, 3, 30]) + b"\xfa\xbf\xb5\xda" + b"x" * 26,
      ping(3, 7), TICK)
write("mined_headers_fork", 0, connect(0, "full"), hs(0), TICK, bytes([12, 0, 40, 0]), TICK,
      bytes([12, 0, 20, 30]), TICK, ping(0, 8), TICK)
write("mempool_txs_out_of_ibd", 2, connect(0, "inbound"), hs(0, 0x03), TICK,
      *[msg(0, "tx", t) for t in mempool[:6]], TICK, msg(0, "mempool", b""), TICK)
write("addrv2_flood_blockonly", 1, connect(1, "blockonly"), hs(1), connect(0, "inbound"), hs(0), TICK,
      bytes([7, 0, 1]) + struct.pack("<H", 1000) + b"\x03", bytes([7, 0, 0]) + struct.pack("<H", 1001) + b"\x04",
      TICK, elapse(3_000_000), TICK)
write("close_and_reconnect", 0, connect(0, "inbound"), hs(0), TICK, bytes([10, 0]), connect(0, "manual"), hs(0), TICK,
      ping(0, 9), TICK)
# The address answer to `getaddr` (from a book three outbound peers filled) puts the inbound peer's
# send queue over the small soft bound before `serve_txs` runs, so the 6,000-entry tx getdata in the
# same tick waits in its queue, capped at its bound: the one path that holds that queue past a tick.
def addr_flood(s, seed): return bytes([7, s, 0]) + struct.pack("<H", 1000) + bytes([seed])
write("getaddr_answer_holds_big_getdata", 1 | 2,
      *[connect(s, "full") + hs(s, 0x02) for s in (0, 2, 3)], TICK, TICK,
      addr_flood(0, 5), addr_flood(2, 17), addr_flood(3, 29), TICK,
      connect(1, "inbound"), hs(1, 0x01), TICK, msg(1, "getaddr", b""),
      bytes([6, 1, 1]) + struct.pack("<H", 6000) + b"\x07", TICK, TICK)
print("wrote", len(os.listdir(OUT)), "seeds to", OUT, file=sys.stderr)
