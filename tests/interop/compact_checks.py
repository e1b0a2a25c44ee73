#!/usr/bin/env python3
"""BIP152 compact block checks of a node under test, driven by Bitcoin Core's own P2P test peer
(`verystable`), after the cases of Core's test/functional/p2p_compactblocks.py that apply to a
relaying node. The node holds a chain whose tip is given; the script mines fresh blocks on it
(regtest proof of work) and delivers them from its peers.

    compact_checks.py --port PORT --tip-hash HEX --tip-height N --old-hash HEX --deep-hash HEX \
        --lone-tx HEX

`--old-hash` is the block just below the tip (6 deep once five blocks are mined here), `--deep-hash`
one at least 11 deep by then, `--lone-tx` a transaction valid on the tip that the node has not seen.
The same expectations hold for bitcoind (the Rust driver runs both).

Exit status 0 when every check passed; otherwise 1 with `FAILED <check>: <why>` on stderr.
"""
import argparse
import logging
import os
import sys
import time

from verystable.core.blocktools import add_witness_commitment, create_block, create_coinbase
from verystable.core.messages import (
    MSG_BLOCK,
    MSG_CMPCT_BLOCK,
    MSG_WITNESS_FLAG,
    BlockTransactions,
    BlockTransactionsRequest,
    CBlockHeader,
    CInv,
    HeaderAndShortIDs,
    PrefilledTransaction,
    msg_block,
    msg_blocktxn,
    msg_cmpctblock,
    msg_getblocktxn,
    msg_getdata,
    msg_sendcmpct,
    tx_from_hex,
)
from verystable.core.p2p import NetworkThread, P2PInterface, p2p_lock

NET = "regtest"
TIMEOUT_S = 15
DISCONNECT_S = 5


class ShortLog(logging.Handler):
    def emit(self, record):
        try:
            msg = record.getMessage()
        except Exception:
            msg = f"{record.msg} {record.args!r}"
        print(f"[{record.levelname.lower()} {record.name}] {msg[:200]}", file=sys.stderr, flush=True)


class CheckFailed(Exception):
    def __init__(self, name, why):
        super().__init__(f"{name}: {why}")
        self.name = name
        self.why = why


class Peer(P2PInterface):
    """Records every sendcmpct (announce flag, version) and the getblocktxn requests it gets."""

    def __init__(self):
        super().__init__()
        self.sendcmpct = []
        self.getblocktxn = []

    def on_sendcmpct(self, message):
        self.sendcmpct.append((bool(message.announce), message.version))

    def on_getblocktxn(self, message):
        self.getblocktxn.append(message.block_txn_request)


class Checks:
    def __init__(self, args):
        self.args = args
        self.tip = int(args.tip_hash, 16)
        self.height = args.tip_height
        self.blocks = {}

    def check(self, cond, name, why):
        if not cond:
            raise CheckFailed(name, why)

    def ok(self, name, detail=""):
        print(f"ok {name}{': ' + detail if detail else ''}", flush=True)

    def peer(self, offer=True):
        """A handshaked peer that offered version 2 compact blocks (low-bandwidth) when `offer`."""
        p = Peer()
        p.p2p_connected_to_node = True
        p.peer_connect(dstaddr="127.0.0.1", dstport=self.args.port, net=NET, send_version=True, timeout_factor=1,
                       supports_v2_p2p=False)()
        p.wait_for_connect(timeout=TIMEOUT_S)
        p.wait_for_verack(timeout=TIMEOUT_S)
        if offer:
            p.send_message(msg_sendcmpct(announce=False, version=2))
        p.sync_with_ping(timeout=TIMEOUT_S)
        return p

    def mine(self, txs=()):
        """A fresh block on our view of the tip (not delivered)."""
        block = create_block(self.tip, create_coinbase(self.height + 1), int(time.time()), txlist=list(txs))
        if txs:
            add_witness_commitment(block)
        block.solve()
        return block

    def advance(self, block):
        self.tip = block.sha256
        self.height += 1
        self.blocks[block.sha256] = block

    def wait_tip(self, peer, block, name):
        """Waits until the node serves `block` (it connected it): asks for its header by getdata."""
        deadline = time.time() + TIMEOUT_S
        while time.time() < deadline:
            with p2p_lock:
                peer.last_message.pop("block", None)
            peer.send_message(msg_getdata([CInv(MSG_BLOCK | MSG_WITNESS_FLAG, block.sha256)]))
            try:
                peer.wait_until(lambda: "block" in peer.last_message, timeout=2)
                with p2p_lock:
                    got = peer.last_message["block"].block
                got.calc_sha256()
                if got.sha256 == block.sha256:
                    return
            except AssertionError:
                pass
            time.sleep(0.2)
        raise CheckFailed(name, f"block {block.hash} never served: not connected")

    def expect_disconnect(self, peer, name):
        try:
            peer.wait_for_disconnect(timeout=DISCONNECT_S)
        except AssertionError:
            raise CheckFailed(name, f"connection still open after {DISCONNECT_S} s")

    # --- checks ------------------------------------------------------------------------------

    def sendcmpct_offered(self, observer):
        name = "sendcmpct_offered"
        observer.wait_until(lambda: len(observer.sendcmpct) > 0, timeout=TIMEOUT_S)
        with p2p_lock:
            first = observer.sendcmpct[0]
        self.check(first == (False, 2), name, f"first sendcmpct {first}, want (announce False, version 2)")
        self.ok(name, "announce 0, version 2")

    def high_bandwidth_slots(self, observer):
        """Four peers deliver a new tip in turn: each is asked for high-bandwidth mode, and the first
        is let go when the fourth comes (BIP152: three at most)."""
        name = "high_bandwidth_slots"
        warm = self.mine()
        observer.send_message(msg_block(warm))
        self.wait_tip(observer, warm, name)
        self.advance(warm)
        peers = [self.peer() for _ in range(4)]
        for i, p in enumerate(peers):
            block = self.mine()
            p.send_message(msg_block(block))
            self.wait_tip(observer, block, name)
            self.advance(block)
            try:
                p.wait_until(lambda: (True, 2) in p.sendcmpct, timeout=TIMEOUT_S)
            except AssertionError:
                raise CheckFailed(name, f"peer {i} delivered a new tip but was not asked for high bandwidth")
        try:
            peers[0].wait_until(lambda: peers[0].sendcmpct[-1:] == [(False, 2)], timeout=TIMEOUT_S)
        except AssertionError:
            raise CheckFailed(name, f"the first peer was not let go: {peers[0].sendcmpct}")
        peers[0].sync_with_ping(timeout=TIMEOUT_S)
        with p2p_lock:
            still = [p.sendcmpct[-1] == (True, 2) for p in peers]
        # The longest-standing ones are let go first; the newest stays. (A node that also keeps an
        # outbound high-bandwidth peer lets one more of these go: an inbound one never takes the
        # last outbound slot.)
        self.check(still[3] and still == sorted(still), name, f"high-bandwidth states {still}")
        self.check(sum(still) in (2, 3), name, f"{sum(still)} of 4 kept, want 3 (or 2 beside an outbound one)")
        self.ok(name, f"sendcmpct(1) to each of four deliverers, sendcmpct(0) to the first {4 - sum(still)}")
        return peers

    def compact_block_served(self, observer):
        name = "compact_block_served"
        with p2p_lock:
            observer.last_message.pop("cmpctblock", None)
        observer.send_message(msg_getdata([CInv(MSG_CMPCT_BLOCK, self.tip)]))
        observer.wait_until(lambda: "cmpctblock" in observer.last_message, timeout=TIMEOUT_S)
        with p2p_lock:
            got = observer.last_message["cmpctblock"].header_and_shortids
        got.header.calc_sha256()
        self.check(got.header.sha256 == self.tip, name, f"header {got.header.sha256:064x}, want the tip")
        block = self.blocks[self.tip]
        want = HeaderAndShortIDs()
        want.initialize_from_block(block, nonce=got.nonce, use_witness=True)
        self.check(got.shortids == want.shortids, name, "short ids differ from the block's wtxids")
        self.check([p.index for p in got.prefilled_txn] == [0], name, "the coinbase alone is prefilled")
        self.ok(name, f"{len(got.shortids)} short ids, coinbase prefilled")

    def old_compact_is_whole(self, observer):
        name = "old_compact_block_is_whole"
        old = int(self.args.old_hash, 16)
        with p2p_lock:
            observer.last_message.pop("block", None)
            observer.last_message.pop("cmpctblock", None)
        observer.send_message(msg_getdata([CInv(MSG_CMPCT_BLOCK, old)]))
        observer.wait_until(lambda: "block" in observer.last_message or "cmpctblock" in observer.last_message,
                            timeout=TIMEOUT_S)
        with p2p_lock:
            whole = "block" in observer.last_message
        self.check(whole, name, "a block 6 deep came as cmpctblock")
        self.ok(name, "a block 6 deep is sent whole")

    def getblocktxn_served(self, observer):
        name = "getblocktxn_served"
        with p2p_lock:
            observer.last_message.pop("blocktxn", None)
        req = BlockTransactionsRequest(self.tip, [])
        req.from_absolute([0])
        observer.send_message(msg_getblocktxn_of(req))
        observer.wait_until(lambda: "blocktxn" in observer.last_message, timeout=TIMEOUT_S)
        with p2p_lock:
            txn = observer.last_message["blocktxn"].block_transactions
        block = self.blocks[self.tip]
        block.vtx[0].calc_sha256()
        txn.transactions[0].calc_sha256()
        self.check(txn.blockhash == self.tip, name, "answer for another block")
        self.check([t.sha256 for t in txn.transactions] == [block.vtx[0].sha256], name, "not the coinbase")
        self.ok(name, "the coinbase, by index")

    def deep_getblocktxn_is_whole(self, observer):
        name = "deep_getblocktxn_is_whole"
        deep = int(self.args.deep_hash, 16)
        with p2p_lock:
            observer.last_message.pop("block", None)
            observer.last_message.pop("blocktxn", None)
        req = BlockTransactionsRequest(deep, [])
        req.from_absolute([0])
        observer.send_message(msg_getblocktxn_of(req))
        observer.wait_until(lambda: "block" in observer.last_message or "blocktxn" in observer.last_message,
                            timeout=TIMEOUT_S)
        with p2p_lock:
            got = observer.last_message.get("block")
        if got is not None:
            got.block.calc_sha256()
        whole = got is not None and got.block.sha256 == deep
        self.check(whole, name, "a block more than 10 deep was answered with blocktxn")
        self.ok(name, "a block more than 10 deep is sent whole")

    def getblocktxn_out_of_bounds(self):
        name = "getblocktxn_out_of_bounds"
        p = self.peer()
        req = BlockTransactionsRequest(self.tip, [])
        req.from_absolute([1])  # the tip holds only its coinbase
        p.send_message(msg_getblocktxn_of(req))
        self.expect_disconnect(p, name)
        self.ok(name, "disconnected")

    def bad_prefilled_index(self, hb_peer, observer):
        name = "bad_prefilled_index"
        block = self.mine()
        cmpct = HeaderAndShortIDs()
        cmpct.header = CBlockHeader(block)
        cmpct.nonce = 0
        cmpct.use_witness = True
        cmpct.prefilled_txn = [PrefilledTransaction(1, block.vtx[0])]  # index 1 of a 1-tx block
        hb_peer.send_message(msg_cmpctblock(cmpct.to_p2p()))
        self.expect_disconnect(hb_peer, name)
        observer.sync_with_ping(timeout=TIMEOUT_S)
        self.ok(name, "high-bandwidth peer disconnected, the block not taken")

    def round_trip(self, hb_peer, observer):
        """A high-bandwidth peer's compact block with a transaction the node lacks: it is asked for
        with getblocktxn and the block connects once blocktxn answers."""
        name = "round_trip"
        lone = tx_from_hex(self.args.lone_tx)
        block = self.mine([lone])
        cmpct = HeaderAndShortIDs()
        cmpct.initialize_from_block(block, nonce=7, use_witness=True)
        hb_peer.send_message(msg_cmpctblock(cmpct.to_p2p()))
        try:
            hb_peer.wait_until(lambda: len(hb_peer.getblocktxn) > 0, timeout=TIMEOUT_S)
        except AssertionError:
            raise CheckFailed(name, "no getblocktxn for the missing transaction")
        with p2p_lock:
            req = hb_peer.getblocktxn[-1]
        self.check(req.blockhash == block.sha256 and req.to_absolute() == [1], name,
                   f"asked {req.to_absolute()} of {req.blockhash:064x}, want [1] of the new block")
        hb_peer.send_message(msg_blocktxn_of(BlockTransactions(block.sha256, [block.vtx[1]])))
        self.wait_tip(observer, block, name)
        self.advance(block)
        self.ok(name, "getblocktxn [1] answered, block connected")

    def run(self):
        observer = self.peer()
        self.sendcmpct_offered(observer)
        peers = self.high_bandwidth_slots(observer)
        self.compact_block_served(observer)
        self.old_compact_is_whole(observer)
        self.getblocktxn_served(observer)
        self.deep_getblocktxn_is_whole(observer)
        self.getblocktxn_out_of_bounds()
        self.round_trip(peers[3], observer)
        self.bad_prefilled_index(peers[3], observer)
        observer.sync_with_ping(timeout=TIMEOUT_S)


def msg_getblocktxn_of(req):
    m = msg_getblocktxn()
    m.block_txn_request = req
    return m


def msg_blocktxn_of(txn):
    m = msg_blocktxn()
    m.block_transactions = txn
    return m


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--tip-hash", required=True)
    ap.add_argument("--tip-height", type=int, required=True)
    ap.add_argument("--old-hash", required=True)
    ap.add_argument("--deep-hash", required=True)
    ap.add_argument("--lone-tx", required=True)
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING, handlers=[ShortLog()])
    net = NetworkThread()
    net.start()
    code = 0
    try:
        Checks(args).run()
        print("all compact block checks passed", flush=True)
    except CheckFailed as e:
        print(f"FAILED {e.name}: {e.why}", file=sys.stderr, flush=True)
        code = 1
    except Exception as e:  # the framework asserts inside its waits
        print(f"FAILED: {e!r}", file=sys.stderr, flush=True)
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
