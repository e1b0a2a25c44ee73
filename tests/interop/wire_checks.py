#!/usr/bin/env python3
"""Wire checks of a node under test, driven by Bitcoin Core's own P2P test peer (the `verystable`
package: Core's test_framework). Each check runs on a fresh connection while one well-behaved
connection stays open alongside; at the end it must still answer a ping.

    wire_checks.py --port PORT --services N --height H [--profile oni|core]

Both profiles expect the same reactions (systems/CONFORMANCE.md lists them against Core's source)
but for one: profile `oni` (the default) expects a `ping` header longer than 8 bytes to be refused
from the header alone (oni's per-command frame bounds), which Core, reading the nonce and ignoring
the rest, tolerates. Profile `core` exists so the script itself is checked against the reference
node: every other check holds on bitcoind too.

Exit status 0 when every check passed; otherwise 1 with `FAILED <check>: <why>` on stderr.
"""
import argparse
import logging
import os
import sys
import time

from verystable.core.messages import (
    MAGIC_BYTES,
    CBlock,
    CBlockHeader,
    hash256,
    msg_filterload,
    msg_getcfilters,
    msg_getheaders,
    msg_headers,
    msg_mempool,
    msg_ping,
    msg_sendaddrv2,
    msg_sendcmpct,
    msg_verack,
    msg_version,
    msg_wtxidrelay,
)
from verystable.core.p2p import P2P_SERVICES, NetworkThread, P2PInterface, p2p_lock

NET = "regtest"
TIMEOUT_S = 10
# A misbehaving connection must be dropped within this; oni decides from the first bytes or the header.
DISCONNECT_S = 5
BLOCK_MAX_PAYLOAD_BYTES = 4_000_000


class ShortLog(logging.Handler):
    """The framework logs whole receive buffers (and one of its calls has a broken format string):
    print one short line per record so a failure stays readable."""

    def emit(self, record):
        try:
            msg = record.getMessage()
        except Exception:
            msg = f"{record.msg} {record.args!r}"
        print(f"[{record.levelname.lower()} {record.name}] {msg[:200]}", file=sys.stderr, flush=True)


class Peer(P2PInterface):
    """A test peer that records every message's type in arrival order and every pong nonce."""

    def __init__(self):
        super().__init__()
        self.order = []
        self.pongs = []

    def on_message(self, message):
        # Runs on the network thread, under p2p_lock (taken by P2PInterface.on_message below: take it
        # here too so the test thread never sees a half-updated list).
        with p2p_lock:
            self.order.append(message.msgtype.decode("ascii"))
        super().on_message(message)

    def on_pong(self, message):
        self.pongs.append(message.nonce)


class Checks:
    def __init__(self, args):
        self.args = args
        self.passed = []

    def check(self, cond, name, why):
        if not cond:
            raise CheckFailed(name, why)

    def ok(self, name, detail=""):
        self.passed.append(name)
        print(f"ok {name}{': ' + detail if detail else ''}", flush=True)

    # --- connections -------------------------------------------------------------------------

    def connect(self, send_version=True):
        """Dials the node as Core's TestNode.add_p2p_connection would (three settings by hand)."""
        peer = Peer()
        peer.p2p_connected_to_node = True  # we dialed: the framework then sends our version first
        peer.peer_connect(dstaddr=self.args.host, dstport=self.args.port, net=NET, send_version=send_version,
                          timeout_factor=1, supports_v2_p2p=False)()
        peer.wait_for_connect(timeout=TIMEOUT_S)
        return peer

    def handshaked(self):
        peer = self.connect()
        peer.wait_for_verack(timeout=TIMEOUT_S)
        return peer

    @staticmethod
    def raw_frame(command, payload, *, length=None, checksum=None):
        """A v1 frame whose length and checksum fields may lie about the payload (`command` may be
        bytes, for a name that is not ASCII)."""
        name = command if isinstance(command, bytes) else command.encode("ascii")
        frame = MAGIC_BYTES[NET] + name + b"\x00" * (12 - len(name))
        frame += (len(payload) if length is None else length).to_bytes(4, "little")
        frame += hash256(payload)[:4] if checksum is None else checksum
        return frame + payload

    def expect_disconnect(self, peer, name):
        start = time.monotonic()
        try:
            peer.wait_for_disconnect(timeout=DISCONNECT_S)
        except AssertionError:
            raise CheckFailed(name, f"connection still open after {DISCONNECT_S} s")
        return time.monotonic() - start

    def expect_alive(self, peer, name):
        try:
            peer.sync_with_ping(timeout=TIMEOUT_S)
        except AssertionError:
            raise CheckFailed(name, "no pong: the connection did not stay up")

    # --- checks ------------------------------------------------------------------------------

    def handshake(self):
        name = "handshake"
        peer = self.handshaked()
        with p2p_lock:
            v = peer.last_message["version"]
            order = list(peer.order)
        a = self.args
        if a.profile == "oni":
            self.check(v.nVersion == 70016, name, f"nVersion {v.nVersion}, want 70016")
        else:  # Core master may be ahead of the version oni speaks
            self.check(v.nVersion >= 70016, name, f"nVersion {v.nVersion}, want at least 70016")
        self.check(v.nServices == a.services, name, f"services {v.nServices:#x}, want {a.services:#x}")
        self.check(v.strSubVer.startswith(a.subver_prefix), name,
                   f"strSubVer {v.strSubVer!r} does not start with {a.subver_prefix!r}")
        self.check(v.nStartingHeight == a.height, name, f"nStartingHeight {v.nStartingHeight}, want {a.height}")
        self.check(bool(v.relay) == a.relay, name, f"relay {v.relay}, want {a.relay}")
        self.check(order[:1] == ["version"], name, f"first message {order[:1]}, want version; order {order}")
        verack = order.index("verack")
        for feature in ("wtxidrelay", "sendaddrv2"):
            self.check(feature in order[:verack], name, f"{feature} not sent before verack; order {order}")
        self.expect_alive(peer, name)
        self.ok(name, f"version {v.nVersion} services {v.nServices:#x} subver {v.strSubVer} "
                f"height {v.nStartingHeight} relay {v.relay}; order {' '.join(order)}")
        return peer

    def bad_checksum(self):
        name = "bad_checksum"
        peer = self.handshaked()
        nonces = [0xBAD0C0DE + i for i in range(20)]
        for nonce in nonces:
            payload = nonce.to_bytes(8, "little")
            peer.send_raw_message(self.raw_frame("ping", payload, checksum=b"\x00\x00\x00\x00"))
        self.expect_alive(peer, name)
        with p2p_lock:
            answered = [n for n in nonces if n in peer.pongs]
        self.check(not answered, name, f"pings with a bad checksum were answered: {answered}")
        self.ok(name, "20 frames dropped, connection up")
        peer.peer_disconnect()

    def oversized_ping(self):
        name = "oversized_ping_header"
        peer = self.handshaked()
        payload = bytes(9)
        peer.send_raw_message(self.raw_frame("ping", payload))
        took = self.expect_disconnect(peer, name)
        self.ok(name, f"ping header with length 9 disconnected in {took:.2f} s")

    def oversized_block(self):
        name = "oversized_block_header"
        peer = self.handshaked()
        # The header alone: a node that waits for 4 MB of payload before judging it fails this check.
        peer.send_raw_message(self.raw_frame("block", b"", length=BLOCK_MAX_PAYLOAD_BYTES + 1, checksum=bytes(4)))
        took = self.expect_disconnect(peer, name)
        self.ok(name, f"block header with length {BLOCK_MAX_PAYLOAD_BYTES + 1} disconnected in {took:.2f} s")

    def pings_before_version(self, count, expect_close):
        name = f"ping_before_version_x{count}"
        peer = self.connect(send_version=False)
        nonces = [0xEA41 + i for i in range(count)]
        for n in nonces:
            peer.send_message(msg_ping(nonce=n))
        if expect_close:
            took = self.expect_disconnect(peer, name)
            self.ok(name, f"disconnected in {took:.2f} s")
            return
        # Still up: it can go on to a normal handshake, and the early pings went unanswered.
        peer.peer_connect_send_version(P2P_SERVICES)
        peer.send_version()
        try:
            peer.wait_for_verack(timeout=TIMEOUT_S)
        except AssertionError:
            raise CheckFailed(name, "no handshake after the early ping: the connection did not stay up")
        self.expect_alive(peer, name)
        with p2p_lock:
            answered = [n for n in nonces if n in peer.pongs]
        self.check(not answered, name, f"pings sent before version were answered: {answered}")
        self.ok(name, "ignored, connection up, handshake completes after it")
        peer.peer_disconnect()

    def feature_after_verack(self, feature, msg):
        name = f"{feature}_after_verack"
        peer = self.handshaked()
        # The node has taken our verack once it answers a ping sent after it.
        self.expect_alive(peer, name)
        peer.send_message(msg)
        took = self.expect_disconnect(peer, name)
        self.ok(name, f"disconnected in {took:.2f} s")

    def bad_magic(self):
        name = "bad_magic"
        peer = self.connect(send_version=False)
        # Not this network's magic, not a v1 version prefix. 4,200 bytes is past the garbage a BIP324
        # responder reads before giving up, so a node that takes it for a v2 attempt closes as well.
        garbage = (bytes(range(256)) * 17)[:4200]
        assert garbage[:4] != MAGIC_BYTES[NET]
        peer.send_raw_message(garbage)
        took = self.expect_disconnect(peer, name)
        self.ok(name, f"disconnected in {took:.2f} s")

    def expect_alive_after(self, name, send, detail):
        """A fresh handshaked connection gets `send(peer)` and must stay up and answer a ping."""
        peer = self.handshaked()
        self.expect_alive(peer, name)
        send(peer)
        self.expect_alive(peer, name)
        self.check(peer.is_connected, name, "the connection closed")
        self.ok(name, detail)
        peer.peer_disconnect()

    def expect_disconnect_after(self, name, send, detail):
        """A fresh handshaked connection gets `send(peer)` and must be closed."""
        peer = self.handshaked()
        self.expect_alive(peer, name)
        send(peer)
        took = self.expect_disconnect(peer, name)
        self.ok(name, f"{detail}: disconnected in {took:.2f} s")

    def duplicate_version_and_verack(self):
        def send(peer):
            for _ in range(5):
                v = msg_version()
                v.nVersion = 70016
                peer.send_message(v)
                peer.send_message(msg_verack())
        self.expect_alive_after("duplicate_version_verack_x5", send, "ignored")

    def bad_command_name(self):
        def send(peer):
            for _ in range(5):
                peer.send_raw_message(self.raw_frame(b"pi\xffg", bytes(8)))
        self.expect_alive_after("bad_command_name_x5", send, "frames skipped, connection up")

    def truncated_pings(self):
        def send(peer):
            for _ in range(20):
                peer.send_raw_message(self.raw_frame("ping", b"\x01\x02\x03"))
        self.expect_alive_after("truncated_ping_x20", send, "dropped, connection up")

    def getheaders_trailing_bytes(self):
        name = "getheaders_trailing_bytes"
        peer = self.handshaked()
        self.expect_alive(peer, name)
        with p2p_lock:
            before = peer.order.count("headers")
        gh = msg_getheaders()
        gh.locator.vHave = [int(self.args.genesis, 16)]
        peer.send_raw_message(self.raw_frame("getheaders", gh.serialize() + b"future field"))
        try:
            peer.wait_until(lambda: peer.order.count("headers") > before, timeout=TIMEOUT_S)
        except AssertionError:
            raise CheckFailed(name, "no headers answer: the bytes after the message were not ignored")
        self.ok(name, "answered, bytes after the message ignored")
        peer.peer_disconnect()

    def unconnecting_headers(self):
        def send(peer):
            for i in range(60):
                b = CBlock()
                b.nVersion = 0x20000000
                b.hashPrevBlock = int.from_bytes(hash256(b"nobody knows this parent %d" % i), "little")
                b.hashMerkleRoot = 0
                b.nTime = int(time.time())
                b.nBits = 0x207FFFFF
                b.vtx = []
                b.solve()
                peer.send_message(msg_headers([CBlockHeader(b)]))
        self.expect_alive_after("unconnecting_headers_x60", send, "counted, never punished")

    def version_without_optional_tail(self):
        name = "version_without_optional_tail"
        peer = self.connect(send_version=False)
        v = msg_version()
        v.nVersion = 70016
        v.nServices = P2P_SERVICES
        v.nTime = int(time.time())
        # version, services, time and the receiver's address: Core reads the rest only if present.
        peer.send_raw_message(self.raw_frame("version", v.serialize()[:46]))
        try:
            peer.wait_for_verack(timeout=TIMEOUT_S)
        except AssertionError:
            raise CheckFailed(name, "no verack: a version ending after the receiver's address was refused")
        self.expect_alive(peer, name)
        self.ok(name, "handshake completes")
        peer.peer_disconnect()

    def run(self):
        good = self.handshake()
        # What Core drops or reads leniently: the connection stays up.
        self.bad_checksum()
        self.pings_before_version(1, expect_close=False)
        self.pings_before_version(20, expect_close=False)
        self.duplicate_version_and_verack()
        self.bad_command_name()
        self.truncated_pings()
        self.getheaders_trailing_bytes()
        self.unconnecting_headers()
        self.version_without_optional_tail()
        # What Core disconnects for without discouraging.
        if self.args.profile == "oni":
            self.oversized_ping()
        self.oversized_block()
        self.feature_after_verack("wtxidrelay", msg_wtxidrelay())
        self.feature_after_verack("sendaddrv2", msg_sendaddrv2())
        feature = b"\x04test\x00"
        self.expect_disconnect_after("feature_after_verack", lambda p: p.send_raw_message(
            self.raw_frame("feature", feature)), "feature of protocol 70017")
        self.expect_disconnect_after("filterload", lambda p: p.send_message(msg_filterload(data=b"\xff" * 10)),
                                     "no bloom filters offered")
        self.expect_disconnect_after("getcfilters", lambda p: p.send_message(
            msg_getcfilters(filter_type=0, start_height=0, stop_hash=int(self.args.genesis, 16))),
            "no compact filters offered")
        self.expect_disconnect_after("mempool", lambda p: p.send_message(msg_mempool()), "no mempool permission")
        gh = msg_getheaders()
        gh.locator.vHave = [i + 1 for i in range(102)]
        self.expect_disconnect_after("getheaders_locator_102", lambda p: p.send_message(gh), "locator over 101")
        self.bad_magic()
        # Last: the one that may get this address discouraged (loopback is only disconnected).
        self.expect_disconnect_after("sendcmpct_flag_2", lambda p: p.send_message(msg_sendcmpct(announce=2, version=2)),
                                     "Misbehaving")
        self.expect_alive(good, "well_behaved_alongside")
        self.check(good.is_connected, "well_behaved_alongside", "the well-behaved connection closed")
        self.ok("well_behaved_alongside", "still answers ping after every other check")


class CheckFailed(Exception):
    def __init__(self, name, why):
        super().__init__(f"FAILED {name}: {why}")


def parse_args():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--services", type=lambda s: int(s, 0), required=True, help="expected services bits")
    p.add_argument("--height", type=int, default=0, help="expected nStartingHeight")
    p.add_argument("--genesis", default="0f9188f13cb7b2c71f2a335e3a4fc328bf5beb436012afca590b1a11466e2206",
                   help="genesis block hash (hex, as RPC shows it); regtest's by default")
    p.add_argument("--profile", choices=["oni", "core"], default="oni")
    args = p.parse_args()
    args.subver_prefix = "/oni:" if args.profile == "oni" else "/Satoshi:"
    args.relay = True  # both relay transactions (oni since its pool landed)
    return args


def main():
    args = parse_args()
    logging.basicConfig(level=logging.WARNING, handlers=[ShortLog()])
    net = NetworkThread()
    net.start()
    checks = Checks(args)
    code = 0
    try:
        checks.run()
        print(f"{len(checks.passed)} passed, 0 failed", flush=True)
    except CheckFailed as e:
        print(str(e), file=sys.stderr, flush=True)
        code = 1
    except Exception as e:  # the framework asserts inside its waits; name the check that was running
        print(f"FAILED after {checks.passed or 'no check'}: {e!r}", file=sys.stderr, flush=True)
        code = 1
    try:
        net.close(timeout=5)
    except Exception:
        pass
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)  # the framework's asyncio thread would otherwise keep the process alive


if __name__ == "__main__":
    main()
