//! The boundary with the shell: events in ([`Inbox`]) and IO commands out ([`Outbox`]). The tokio
//! bridge and the simulator's pipes are the two producers and consumers.

use crate::components::{ConnId, Direction};
use crate::resources::reasons::DisconnectReason;
use crate::wire::{HeaderError, RawFrame};
use ahash::AHashMap;
use bevy_ecs::prelude::*;
use std::net::SocketAddr;

/// Something that happened on the network since the last tick.
#[derive(Debug)]
pub enum NetEvent {
    /// An outbound dial started (the shell allocated `conn`).
    Dialing {
        /// The connection.
        conn: ConnId,
        /// Where to.
        addr: SocketAddr,
        /// What kind of outbound.
        direction: Direction,
    },
    /// A socket is up: an accepted inbound, or an outbound dial that succeeded.
    Connected {
        /// The connection.
        conn: ConnId,
        /// The peer.
        addr: SocketAddr,
        /// Our end.
        local: Option<SocketAddr>,
        /// Inbound, or the outbound kind.
        direction: Direction,
    },
    /// A delimited frame (header checked, checksum not yet).
    Frame {
        /// The connection.
        conn: ConnId,
        /// The frame.
        frame: RawFrame,
    },
    /// A header the reader refused; the reader has stopped.
    BadHeader {
        /// The connection.
        conn: ConnId,
        /// Why.
        error: HeaderError,
    },
    /// The transport is settled: v1 (detected, or the only one tried) or an established v2 session.
    Transport {
        /// The connection.
        conn: ConnId,
        /// Which.
        transport: crate::components::Transport,
    },
    /// A v2 handshake or packet failed; the reader has stopped.
    TransportFailed {
        /// The connection.
        conn: ConnId,
        /// Why.
        error: crate::wire::v2::transport::V2Error,
    },
    /// We dialed with v2 and the peer closed before sending a byte: likely a v1-only peer that
    /// read our key as a bad header. The socket is gone; the world may dial again with v1.
    V2Refused {
        /// The connection.
        conn: ConnId,
    },
    /// Bytes the writer put on the socket.
    Written {
        /// The connection.
        conn: ConnId,
        /// How many.
        bytes: usize,
    },
    /// An inbound connection was closed at accept: the shell already holds its cap of inbound
    /// sockets (the world's slots plus a little room for eviction), so a connect flood cannot make
    /// it hold more sockets, or their readers' buffers, while the world decides.
    Refused {
        /// The peer.
        addr: SocketAddr,
    },
    /// The socket is gone (peer closed, IO error, or dial failed).
    Closed {
        /// The connection.
        conn: ConnId,
        /// True when the dial itself failed.
        connect_failed: bool,
    },
}

/// Events waiting for the ingest system.
#[derive(Resource, Debug, Default)]
pub struct Inbox(pub Vec<NetEvent>);

/// What the world asks the shell to do.
#[derive(Debug, PartialEq, Eq)]
pub enum IoCommand {
    /// Write this frame.
    Send {
        /// The connection.
        conn: ConnId,
        /// The encoded frame.
        bytes: Vec<u8>,
    },
    /// Close the socket; the reason is for the shell's log.
    Close {
        /// The connection.
        conn: ConnId,
        /// Why.
        reason: DisconnectReason,
    },
    /// Stop reading this socket (receive buffer full).
    PauseRead {
        /// The connection.
        conn: ConnId,
    },
    /// Read again.
    ResumeRead {
        /// The connection.
        conn: ConnId,
    },
    /// The world took this many frame bytes of the peer out of its receive buffer: the reader may
    /// read that many more. The shell's reader holds at most the peer's receive limit of frame
    /// bytes not yet taken (the frame it is reading included), so a stalled world cannot make it
    /// buffer more.
    Consumed {
        /// The connection.
        conn: ConnId,
        /// Frame bytes (header and payload) taken.
        bytes: usize,
    },
    /// The peer finished its handshake: its receive limit rises from the small pre-handshake one
    /// (a peer not yet admitted or handshaken cannot make us hold a 4 MB frame) to this.
    RecvLimit {
        /// The connection.
        conn: ConnId,
        /// Frame bytes the reader may hold, not yet taken by the world.
        bytes: usize,
    },
    /// Dial an address.
    Connect {
        /// Where.
        addr: SocketAddr,
        /// What kind of outbound.
        direction: Direction,
        /// Try BIP324 v2 first (the shell falls back to v1 once if the peer hangs up on it).
        v2: bool,
    },
}

/// Commands for the shell, drained after each tick.
#[derive(Resource, Debug, Default)]
pub struct Outbox(pub Vec<IoCommand>);

/// Maps the shell's connection ids to peer entities.
#[derive(Resource, Debug, Default)]
pub struct ConnIndex(pub AHashMap<ConnId, Entity>);
