#!/usr/bin/env python3
"""Wire checks of a node under test, driven by Bitcoin Core's own P2P test peer (the `verystable`
package: Core's test_framework). Each check runs on a fresh connection while one well-behaved
connection stays open alongside; at the end it must still answer a ping.

    wire_checks.py --port PORT --services N --height H [--profile oni|core]

Profile `oni` (the default) expects oni's rules: a `ping` header longer than 8 bytes is refused from
the header alone, and ten messages before `version` reach the misbehavior threshold (10 points each
of 100). Profile `core` expects Bitcoin Core's, which tolerates both; it exists so the script itself
can be checked against the reference node.

Exit status 0 when every check passed; otherwise 1 with `FAILED <check>: <why>` on stderr.
"""
import argparse
import logging
import os
import sys
import time

from verystable.core.messages import MAGIC_BYTES, hash256, msg_ping, msg_sendaddrv2, msg_version, msg_wtxidrelay
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
        """A v1 frame whose length and checksum fields may lie about the payload."""
        name = command.encode("ascii")
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
        nonce = 0xBAD0C0DE
        payload = nonce.to_bytes(8, "little")
        peer.send_raw_message(self.raw_frame("ping", payload, checksum=b"\x00\x00\x00\x00"))
        self.expect_alive(peer, name)
        with p2p_lock:
            answered = nonce in peer.pongs
        self.check(not answered, name, "the ping with a bad checksum was answered: it must be dropped")
        self.ok(name, "frame dropped, connection up")
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
        self.ok(name, "scored, connection up, handshake completes after it")
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

    def run(self):
        good = self.handshake()
        self.bad_checksum()
        self.pings_before_version(1, expect_close=False)
        if self.args.profile == "oni":
            self.oversized_ping()
        self.oversized_block()
        self.feature_after_verack("wtxidrelay", msg_wtxidrelay())
        self.feature_after_verack("sendaddrv2", msg_sendaddrv2())
        self.bad_magic()
        # Last: the one that may get this address discouraged.
        self.pings_before_version(10, expect_close=self.args.profile == "oni")
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
