#!/usr/bin/env python3
"""BIP324 v2 checks of a node under test, driven by Bitcoin Core's own P2P test peer and its v2
state (the `verystable` package: Core's test_framework, `v2_p2p.EncryptedP2PState`). The cases are
those of Core's p2p_v2_misbehaving.py and p2p_v2_transport.py that a peer can send, each on a fresh
connection while one well-behaved v2 connection stays open alongside:

    v2_checks.py --port PORT --peertimeout S

The node must run with `--peertimeout S` (Core: `-peertimeout=S`): a peer that stalls inside the
handshake is dropped after it. Exit status 0 when every check passed; otherwise 1 with
`FAILED <check>: <why>` on stderr.
"""
import argparse
import logging
import random
import socket
import sys
import time

from verystable.core.messages import MAGIC_BYTES, msg_ping
from verystable.core.p2p import NetworkThread, P2PInterface, p2p_lock
from verystable.core.v2_p2p import MAX_GARBAGE_LEN, EncryptedP2PState

NET = "regtest"
TIMEOUT_S = 10
# A refused handshake is closed within this (oni decides as the bytes arrive).
DISCONNECT_S = 5


class ShortLog(logging.Handler):
    def emit(self, record):
        try:
            msg = record.getMessage()
        except Exception:
            msg = f"{record.msg} {record.args!r}"
        print(f"[{record.levelname.lower()} {record.name}] {msg[:200]}", file=sys.stderr, flush=True)


def bitflip(b):
    """`b` with one random bit flipped."""
    i = random.randrange(len(b) * 8)
    out = bytearray(b)
    out[i // 8] ^= 1 << (i % 8)
    return bytes(out)


class ExcessGarbage(EncryptedP2PState):
    def generate_keypair_and_garbage(self, garbage_len=None):
        return super().generate_keypair_and_garbage(MAX_GARBAGE_LEN + random.randrange(1, MAX_GARBAGE_LEN + 1))


class WrongTerminator(EncryptedP2PState):
    def generate_keypair_and_garbage(self, garbage_len=None):
        return super().generate_keypair_and_garbage(random.randrange(MAX_GARBAGE_LEN // 2))

    def complete_handshake(self, response):
        length, out = super().complete_handshake(response)
        return length, bitflip(out[:16]) + out[16:]


class TamperedGarbage(EncryptedP2PState):
    def generate_keypair_and_garbage(self, garbage_len=None):
        sent = super().generate_keypair_and_garbage(random.randrange(1, MAX_GARBAGE_LEN))
        # The node receives other garbage than we authenticate.
        return sent[:64] + bitflip(sent[64:])


class NoAad(EncryptedP2PState):
    def generate_keypair_and_garbage(self, garbage_len=None):
        return super().generate_keypair_and_garbage(random.randrange(1, MAX_GARBAGE_LEN))

    def complete_handshake(self, response):
        self.sent_garbage = b""
        return super().complete_handshake(response)


class NonEmptyVersion(EncryptedP2PState):
    def complete_handshake(self, response):
        self.transport_version = random.randbytes(5)
        return super().complete_handshake(response)


class Decoys(EncryptedP2PState):
    """Always five decoys between the terminator and the version packet, the first carrying the
    garbage as AAD (the framework sends a random 0-10)."""

    def complete_handshake(self, response):
        theirs = self.received_prefix + response.read(64 - len(self.received_prefix))
        if len(theirs) != 64:
            return 0, b""
        self.initialize_v2_transport(self.v2_ecdh(self.privkey_ours, theirs, self.ellswift_ours, self.initiating))
        out = self.peer["send_garbage_terminator"]
        aad = self.sent_garbage
        for n in (1, 50, 100, 3, 999):
            out += self.v2_enc_packet(b"\x00" * n, aad=aad, ignore=True)
            aad = b""
        out += self.v2_enc_packet(self.transport_version, aad=aad)
        return 64 - len(self.received_prefix), out


class Peer(P2PInterface):
    """A v2 test peer whose handshake state is `state` (a subclass of EncryptedP2PState)."""

    def __init__(self, state=EncryptedP2PState):
        super().__init__()
        self.state_class = state
        self.got_bytes = 0
        self.pongs = []
        self.made = False
        self.lost = False

    def connection_made(self, transport):
        if self.state_class is not None:
            self.v2_state = self.state_class(initiating=True, net=NET)
        self.made = True
        super().connection_made(transport)

    def connection_lost(self, exc):
        self.lost = True
        super().connection_lost(exc)

    def data_received(self, t):
        with p2p_lock:
            self.got_bytes += len(t)
        if self.state_class is not None:
            super().data_received(t)

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

    def connect(self, state=EncryptedP2PState, send_version=True, wait=True):
        peer = Peer(state)
        peer.p2p_connected_to_node = True
        peer.peer_connect(dstaddr=self.args.host, dstport=self.args.port, net=NET, send_version=send_version,
                          timeout_factor=1, supports_v2_p2p=True)()
        if wait:
            peer.wait_for_connect(timeout=TIMEOUT_S)
        return peer

    def handshaked(self, state=EncryptedP2PState):
        peer = self.connect(state)
        peer.wait_until(lambda: peer.v2_state is not None and peer.v2_state.tried_v2_handshake, timeout=TIMEOUT_S)
        peer.wait_for_verack(timeout=TIMEOUT_S)
        return peer

    def expect_disconnect(self, peer, name, within):
        start = time.monotonic()
        try:
            peer.wait_for_disconnect(timeout=within)
        except AssertionError:
            raise CheckFailed(name, f"connection still open after {within} s")
        return time.monotonic() - start

    def expect_alive(self, peer, name):
        try:
            peer.sync_with_ping(timeout=TIMEOUT_S)
        except AssertionError:
            raise CheckFailed(name, "no pong: the connection did not stay up")

    # --- checks ----------------------------------------------------------------------------------

    def v2_handshake(self):
        peer = self.handshaked()
        self.expect_alive(peer, "v2_handshake")
        self.ok("v2_handshake", "version, verack and ping over v2")
        return peer

    def early_key_response(self):
        """The responder says nothing while the bytes could still be a v1 version header."""
        name = "early_key_response"
        peer = Peer(state=None)  # raw bytes, no framework v2 state
        peer.p2p_connected_to_node = True
        peer.peer_connect(dstaddr=self.args.host, dstport=self.args.port, net=NET, send_version=False,
                          timeout_factor=1, supports_v2_p2p=False)()
        peer.wait_for_connect(timeout=TIMEOUT_S)
        prefix = MAGIC_BYTES[NET] + b"version\x00\x00\x00\x00"  # 15 bytes of the v1 prefix
        peer.send_raw_message(prefix)
        time.sleep(1.0)
        with p2p_lock:
            early = peer.got_bytes
        self.check(early == 0, name, f"{early} bytes came back after 15 matching bytes")
        self.check(peer.is_connected, name, "closed while still detecting")
        # The 16th byte differs: the node answers with its key (64 bytes) and garbage.
        peer.send_raw_message(b"\x01")
        peer.wait_until(lambda: peer.got_bytes >= 64, timeout=TIMEOUT_S)
        # Nothing more comes from us: the handshake times out.
        took = self.expect_disconnect(peer, name, self.args.peertimeout + DISCONNECT_S)
        self.ok(name, f"silent for 15 prefix bytes, key after the 16th, dropped {took:.1f} s later")

    def expect_refused(self, name, state, within, detail):
        # The node may close before the framework sees the connection up: wait for it to have been
        # made and lost, not for it to be up.
        peer = self.connect(state, send_version=False, wait=False)
        start = time.monotonic()
        while time.monotonic() - start < within:
            if peer.made and peer.lost:
                break
            time.sleep(0.05)
        self.check(peer.made, name, "never connected")
        self.check(peer.lost, name, f"connection still open after {within} s")
        self.ok(name, f"{detail}, closed in {time.monotonic() - start:.2f} s")

    def v1_wrong_network(self):
        name = "v1_wrong_network"
        s = socket.create_connection((self.args.host, self.args.port), timeout=TIMEOUT_S)
        s.sendall(MAGIC_BYTES["mainnet"] + b"version\x00\x00\x00\x00\x00" + b"\x00" * 80)
        start = time.monotonic()
        s.settimeout(DISCONNECT_S)
        try:
            data = s.recv(4096)
        except (ConnectionResetError, socket.timeout) as e:
            data = e
        took = time.monotonic() - start
        s.close()
        # The node may have sent its key before the 16th byte settled it (as Core does): read to EOF.
        self.check(not isinstance(data, socket.timeout), name, "connection still open")
        self.ok(name, f"mainnet v1 version header closed in {took:.2f} s")

    def decoys(self):
        name = "decoys"
        peer = self.handshaked(Decoys)
        for nonce in range(1, 6):
            peer.send_message(msg_ping(nonce=1000 + nonce), is_decoy=True)
            peer.send_message(msg_ping(nonce=nonce))
        peer.wait_until(lambda: len(peer.pongs) >= 5, timeout=TIMEOUT_S)
        time.sleep(0.5)
        with p2p_lock:
            pongs = list(peer.pongs)
        self.check(pongs == [1, 2, 3, 4, 5], name, f"pongs {pongs}: decoys must not be answered")
        self.ok(name, "five decoys before the version packet and one before each ping, all ignored")

    def run(self):
        good = self.v2_handshake()
        self.early_key_response()
        self.expect_refused("excess_garbage", ExcessGarbage, DISCONNECT_S, "missing garbage terminator")
        self.expect_refused("wrong_garbage_terminator", WrongTerminator, self.args.peertimeout + DISCONNECT_S,
                            "handshake timeout")
        self.expect_refused("tampered_garbage", TamperedGarbage, DISCONNECT_S, "decryption failure")
        self.expect_refused("no_aad", NoAad, DISCONNECT_S, "decryption failure")
        peer = self.handshaked(NonEmptyVersion)
        self.expect_alive(peer, "non_empty_version_packet")
        self.ok("non_empty_version_packet", "contents ignored, connection up")
        self.decoys()
        self.v1_wrong_network()
        self.expect_alive(good, "well_behaved_alongside")
        self.ok("well_behaved_alongside", "still answers ping after every other check")


class CheckFailed(Exception):
    def __init__(self, name, why):
        super().__init__(f"FAILED {name}: {why}")


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--peertimeout", type=int, required=True)
    args = p.parse_args()
    logging.getLogger("TestFramework").addHandler(ShortLog())
    logging.getLogger("TestFramework").setLevel(logging.WARNING)
    thread = NetworkThread()
    thread.start()
    checks = Checks(args)
    try:
        checks.run()
    except CheckFailed as e:
        print(e, file=sys.stderr, flush=True)
        print(f"{len(checks.passed)} passed, 1 failed", flush=True)
        return 1
    finally:
        NetworkThread.network_event_loop.call_soon_threadsafe(NetworkThread.network_event_loop.stop)
    print(f"{len(checks.passed)} passed, 0 failed", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
