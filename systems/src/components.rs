//! What a peer entity is made of. One entity per connection, from the moment the shell reports it
//! (Connecting for outbound dials, Handshaking for accepted inbounds) until teardown despawns it.

use crate::resources::reasons::{DisconnectReason, Misbehavior};
use crate::wire::{version::UserAgent, Command, Message, Network, RawFrame};
use bevy_ecs::prelude::*;
use serde::{Deserialize, Serialize};
use smallvec::SmallVec;
use std::collections::VecDeque;
use std::net::SocketAddr;

/// Names a connection to the shell's IO tasks; never reused, also the peer id shown in RPC.
#[derive(Component, Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct ConnId(pub u64);

/// The link to the peer: which IO tasks carry its bytes, and where it is.
#[derive(Component, Clone, Debug, Serialize, Deserialize)]
pub struct Socket {
    /// The shell's handle.
    pub conn: ConnId,
    /// The peer's address.
    pub addr: SocketAddr,
    /// Our end of the socket, when known.
    pub local: Option<SocketAddr>,
    /// When the connection was reported (clock ms).
    pub connected_ms: u64,
}

/// Which transport carries a peer's messages, as `getpeerinfo` reports it.
#[derive(Component, Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum Transport {
    /// Not known yet: an inbound peer's first 16 bytes, or a v2 handshake, still to come.
    #[default]
    Detecting,
    /// Plaintext v1 framing.
    V1,
    /// BIP324 v2, with the session id both ends derive (operators compare it across the link).
    V2 {
        /// The session id.
        session_id: [u8; 32],
    },
}

impl Transport {
    /// Core's `transport_protocol_type` names.
    pub fn label(self) -> &'static str {
        match self {
            Transport::Detecting => "detecting",
            Transport::V1 => "v1",
            Transport::V2 { .. } => "v2",
        }
    }
}

/// Lifecycle of a peer.
#[derive(Component, Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum PeerState {
    /// Outbound dial in progress.
    Connecting,
    /// Socket up, version/verack not complete.
    Handshaking,
    /// Handshake done: all messages flow.
    Ready,
    /// Being torn down; nothing more is processed.
    Disconnecting,
}

/// Why the connection exists; decides slots, eviction protection and what we ask of the peer.
#[derive(Component, Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Direction {
    /// The peer dialed us.
    Inbound,
    /// We dialed: full relay of blocks, txs and addresses.
    OutboundFullRelay,
    /// We dialed: blocks only, no tx or addr relay (eclipse resistance).
    BlockRelayOnly,
    /// Short-lived dial to test an address, closed after the handshake.
    Feeler,
    /// Operator-requested (`--connect`, `addnode`); exempt from some policy.
    Manual,
}

impl Direction {
    /// Every direction, for per-direction counters.
    pub const ALL: [Direction; 5] = [
        Direction::Inbound,
        Direction::OutboundFullRelay,
        Direction::BlockRelayOnly,
        Direction::Feeler,
        Direction::Manual,
    ];

    /// Whether we dialed.
    pub fn is_outbound(self) -> bool {
        self != Direction::Inbound
    }

    /// Core's `connection_type` string in getpeerinfo.
    pub const fn label(self) -> &'static str {
        match self {
            Direction::Inbound => "inbound",
            Direction::OutboundFullRelay => "outbound-full-relay",
            Direction::BlockRelayOnly => "block-relay-only",
            Direction::Feeler => "feeler",
            Direction::Manual => "manual",
        }
    }
}

/// Frames waiting to be written, already encoded. Bounded by the limits in `Config`: over the soft
/// bound we stop serving the peer's requests, over the hard bound the peer is disconnected.
#[derive(Component, Debug, Default)]
pub struct SendQueue {
    frames: VecDeque<(Command, Vec<u8>)>,
    bytes: usize,
    /// Bytes handed to the writer task and not yet reported written.
    pub in_writer_bytes: usize,
    /// The peer's transport authenticates every message (BIP324 v2): frames go without a
    /// checksum, which the writer would drop anyway.
    pub authenticated: bool,
}

impl SendQueue {
    /// Encodes `msg` as a frame at the back of the queue.
    pub fn push(&mut self, network: Network, msg: &Message) {
        let mut frame = Vec::new();
        if self.authenticated {
            msg.encode_frame_unchecked(network, &mut frame);
        } else {
            msg.encode_frame(network, &mut frame);
        }
        self.push_frame(msg.command(), frame);
    }

    /// Queues an already-encoded frame (served blocks are encoded once and shared as bytes).
    pub fn push_frame(&mut self, command: Command, frame: Vec<u8>) {
        self.bytes += frame.len();
        self.frames.push_back((command, frame));
    }

    /// Takes the next frame.
    pub fn pop(&mut self) -> Option<(Command, Vec<u8>)> {
        let f = self.frames.pop_front()?;
        self.bytes -= f.1.len();
        Some(f)
    }

    /// Bytes queued (not yet handed to the writer).
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// Frames queued.
    pub fn len(&self) -> usize {
        self.frames.len()
    }

    /// Whether nothing is queued.
    pub fn is_empty(&self) -> bool {
        self.frames.is_empty()
    }
}

/// Delimited frames from the reader, waiting for the decode budget. Bounded in bytes: over the
/// bound the shell is told to pause reading this socket (TCP backpressure).
#[derive(Component, Debug, Default)]
pub struct RecvBuffer {
    /// Frames in arrival order.
    pub frames: VecDeque<RawFrame>,
    /// Wire bytes held.
    pub bytes: usize,
    /// Whether we asked the shell to stop reading.
    pub paused: bool,
}

/// Decoded messages waiting for the systems that own them; each system takes what is its own and
/// teardown drops whatever nobody took at the end of the tick.
#[derive(Component, Debug, Default)]
pub struct Received(pub Vec<Message>);

/// Per-peer traffic counters and timings.
#[derive(Component, Clone, Debug, Default, Serialize, Deserialize)]
pub struct Stats {
    /// Wire bytes received.
    pub bytes_in: u64,
    /// Wire bytes sent (written by the writer).
    pub bytes_out: u64,
    /// Messages received, indexed by `Command as usize`.
    pub msgs_in: [u32; Command::COUNT],
    /// Messages sent, by command.
    pub msgs_out: [u32; Command::COUNT],
    /// Wire bytes received, by command.
    pub bytes_in_by_cmd: [u64; Command::COUNT],
    /// Wire bytes sent, by command.
    pub bytes_out_by_cmd: [u64; Command::COUNT],
    /// When the handshake started (clock ms).
    pub handshake_started_ms: u64,
    /// When verack completed it.
    pub handshake_done_ms: Option<u64>,
    /// Last frame handed to the writer.
    pub last_send_ms: u64,
    /// Last measured ping round trip.
    pub ping_rtt_ms: Option<u64>,
    /// Best ping round trip seen.
    pub min_ping_ms: Option<u64>,
    /// Last time it gave us a block we did not have (eviction protects block relayers).
    pub last_block_ms: Option<u64>,
    /// Last time it gave us a tx we accepted (eviction protects tx relayers).
    pub last_tx_ms: Option<u64>,
}

/// Accumulated misbehavior; at the threshold the peer is disconnected (and discouraged by policy).
#[derive(Component, Clone, Debug, Default, Serialize, Deserialize)]
pub struct Score {
    /// Sum of the scores of all violations.
    pub points: u32,
    /// Each kind seen with how often.
    pub events: SmallVec<[(Misbehavior, u32); 4]>,
}

/// What the peer told us in its handshake and what we agreed.
#[derive(Component, Clone, Debug, Default, Serialize, Deserialize)]
pub struct Negotiated {
    /// Its protocol version (0 until its version arrives).
    pub version: i32,
    /// Its service bits.
    pub services: u64,
    /// Its user agent, as sent (bytes; rendered for operators only).
    pub user_agent: UserAgent,
    /// Its best height at connect.
    pub start_height: i32,
    /// Whether it wants tx announcements.
    pub relay: bool,
    /// Its clock minus ours, seconds (Core's timeoffset).
    pub time_offset_s: i64,
    /// BIP339 agreed.
    pub wtxidrelay: bool,
    /// BIP155 agreed.
    pub sendaddrv2: bool,
    /// BIP130: announce blocks to it by headers.
    pub sendheaders: bool,
    /// BIP133: its minimum feerate, sat/kvB.
    pub feefilter: Option<i64>,
    /// BIP152 compact block version it offered, if any.
    pub cmpct_version: Option<u64>,
    /// BIP152: its latest `sendcmpct` asked for new blocks as `cmpctblock` before it asks
    /// (high-bandwidth mode from us to it; Core's `bip152_hb_from`).
    pub cmpct_hb_from: bool,
    /// BIP152: we asked it for high-bandwidth mode (Core's `bip152_hb_to`).
    pub cmpct_hb_to: bool,
}

/// Handshake progress.
#[derive(Component, Clone, Debug, Default, Serialize, Deserialize)]
pub struct Handshake {
    /// The nonce in our version (self-connection detection).
    pub our_nonce: u64,
    /// We sent version.
    pub version_sent: bool,
    /// We received its version.
    pub version_received: bool,
    /// We received its verack.
    pub verack_received: bool,
}

/// Keep-alive state.
#[derive(Component, Clone, Debug, Default, Serialize, Deserialize)]
pub struct PingState {
    /// When the next ping is due (clock ms).
    pub next_ping_ms: u64,
    /// The ping awaiting its pong: nonce and when it was sent.
    pub outstanding: Option<(u64, u64)>,
    /// Last frame received (clock ms). Kept here, not in `Stats`, so the keep-alive check of every
    /// peer each tick reads one small component.
    pub last_recv_ms: u64,
}

/// Marks a peer for teardown with its reason; whoever decides a disconnect inserts this.
#[derive(Component, Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Disconnect {
    /// Why; counted and logged by teardown.
    pub reason: DisconnectReason,
}

/// Operator-granted permissions (Core's `-whitelist` flags).
#[derive(Component, Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Permissions {
    /// Scored but never disconnected or discouraged for misbehavior, never evicted.
    pub noban: bool,
    /// May send `mempool` (others are disconnected for it, as Core does without bloom filters).
    pub mempool: bool,
}

/// Address gossip state of one peer: its rate limit, whether getaddr was answered, what waits to
/// be relayed to it.
#[derive(Component, Clone, Debug, Default, Serialize, Deserialize)]
pub struct AddrRelay {
    /// Addresses it may still send us before the excess is dropped (token bucket).
    pub tokens: f64,
    /// Last refill of the bucket (clock ms).
    pub refilled_ms: u64,
    /// We answered its getaddr (once per connection).
    pub getaddr_answered: bool,
    /// We asked it for addresses.
    pub getaddr_sent: bool,
    /// Addresses queued for it, flushed at `next_send_ms`.
    pub queued: Vec<crate::resources::AddrInfo>,
    /// Next trickle (clock ms).
    pub next_send_ms: u64,
    /// Addresses it sent that were dropped by the rate limit.
    pub rate_limited: u64,
    /// Addresses it sent that the rate limit let through (Core's `addr_processed`).
    pub processed: u64,
}

/// What we know of a peer's transaction inventory and what waits to be announced to it. Filters
/// are made on first use (block-relay-only peers never need them).
#[derive(Component, Clone, Debug, Default)]
pub struct TxInventory {
    /// Hashes known to the peer (it announced them, or we did).
    pub known: Option<crate::resources::rolling_filter::RollingFilter>,
    /// Hashes we announced lately: the only pool transactions it may ask for (no mempool probing).
    pub announced: Option<crate::resources::rolling_filter::RollingFilter>,
    /// Pool transactions (txids) waiting for its next trickle.
    pub to_send: Vec<bitcoin::Txid>,
    /// Next trickle (clock ms); 0 until the first is scheduled.
    pub next_inv_ms: u64,
    /// Next `feefilter` we may send (clock ms); 0 sends one at once.
    pub next_feefilter_ms: u64,
    /// Last `feefilter` value we sent.
    pub sent_feefilter: Option<i64>,
    /// Set by a permitted `mempool` request: pool entries older than this arrival sequence may be
    /// asked for even if not announced to it.
    pub mempool_request_seq: Option<u64>,
    /// Transaction `getdata` entries not yet answered (bounded; answered as its send queue drains).
    pub getdata: std::collections::VecDeque<crate::wire::Inventory>,
}

/// Admitted while its address was discouraged (slots were free): evicted before any other
/// unprotected inbound peer when room is needed.
#[derive(Component, Clone, Copy, Debug, Default)]
pub struct PreferEvict;

/// Misbehavior reported by systems this tick, applied by the scoring system.
#[derive(Component, Debug, Default)]
pub struct Violations(pub SmallVec<[Misbehavior; 2]>);

/// Everything a new peer entity starts with.
#[derive(Bundle)]
pub struct PeerBundle {
    /// The link.
    pub socket: Socket,
    /// Its lifecycle.
    pub state: PeerState,
    /// Its role.
    pub direction: Direction,
    /// Outgoing frames.
    pub send: SendQueue,
    /// Incoming frames.
    pub recv: RecvBuffer,
    /// Decoded, unhandled messages.
    pub received: Received,
    /// Counters.
    pub stats: Stats,
    /// Misbehavior.
    pub score: Score,
    /// Violations this tick.
    pub violations: Violations,
    /// Negotiated features.
    pub negotiated: Negotiated,
    /// Handshake progress.
    pub handshake: Handshake,
    /// Keep-alive.
    pub ping: PingState,
    /// Permissions.
    pub permissions: Permissions,
    /// Address gossip.
    pub addr_relay: AddrRelay,
    /// Transaction inventory.
    pub tx_inventory: TxInventory,
    /// v1 or v2, once known.
    pub transport: Transport,
}

impl PeerBundle {
    /// A fresh peer.
    pub fn new(socket: Socket, state: PeerState, direction: Direction) -> Self {
        let connected_ms = socket.connected_ms;
        PeerBundle {
            stats: Stats { handshake_started_ms: connected_ms, ..Default::default() },
            socket,
            state,
            direction,
            send: SendQueue::default(),
            recv: RecvBuffer::default(),
            received: Received::default(),
            score: Score::default(),
            violations: Violations::default(),
            negotiated: Negotiated::default(),
            handshake: Handshake::default(),
            ping: PingState { last_recv_ms: connected_ms, ..Default::default() },
            permissions: Permissions::default(),
            addr_relay: AddrRelay { tokens: 1.0, refilled_ms: connected_ms, ..Default::default() },
            tx_inventory: TxInventory::default(),
            transport: Transport::default(),
        }
    }
}
