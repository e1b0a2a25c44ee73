//! The boundary with the shell: events in ([`Inbox`]) and IO commands out ([`Outbox`]). Four hosts
//! carry the commands out through one [`IoCarrier`] each: the node's tokio bridge, the scenario
//! simulator's links, the network simulator's pipes and the test harness's instant writer.

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

impl Outbox {
    /// Takes this tick's commands out of the world and hands each, in the order the systems
    /// pushed them, to `carrier`: every host (the node's bridge, both simulators, the test harness)
    /// drains the world the same way and differs only in what a command means to its links.
    pub fn carry_out(world: &mut World, carrier: &mut impl IoCarrier) {
        let commands = std::mem::take(&mut world.resource_mut::<Outbox>().0);
        carry_out(commands, carrier);
    }
}

/// Hands each command to `carrier` in order. For hosts whose carrier borrows the same struct that
/// owns the world (take the commands first with `std::mem::take`, then carry them out).
pub fn carry_out(commands: Vec<IoCommand>, carrier: &mut impl IoCarrier) {
    for command in commands {
        match command {
            IoCommand::Send { conn, bytes } => carrier.send(conn, bytes),
            IoCommand::Close { conn, reason } => carrier.close(conn, reason),
            IoCommand::PauseRead { conn } => carrier.set_paused(conn, true),
            IoCommand::ResumeRead { conn } => carrier.set_paused(conn, false),
            IoCommand::Consumed { conn, bytes } => carrier.consumed(conn, bytes),
            IoCommand::RecvLimit { conn, bytes } => carrier.recv_limit(conn, bytes),
            IoCommand::Connect { addr, direction, v2 } => carrier.connect(addr, direction, v2),
        }
    }
}

/// What a host does with the world's IO commands. No method has a default: a new command makes
/// every host decide what it means there (a simulator that hands frames over whole has no reader to
/// credit, and says so in its `consumed`).
pub trait IoCarrier {
    /// Write this frame to the connection (dropped when the connection is gone).
    fn send(&mut self, conn: ConnId, bytes: Vec<u8>);
    /// Close the connection; `reason` is for the host's log and records.
    fn close(&mut self, conn: ConnId, reason: DisconnectReason);
    /// Stop (`true`) or restart reading the connection.
    fn set_paused(&mut self, conn: ConnId, paused: bool);
    /// The world took `bytes` frame bytes of the connection out of its receive buffer.
    fn consumed(&mut self, conn: ConnId, bytes: usize);
    /// The connection's reader may now hold `bytes` frame bytes not yet taken.
    fn recv_limit(&mut self, conn: ConnId, bytes: usize);
    /// Dial `addr` (BIP324 v2 first when `v2`).
    fn connect(&mut self, addr: SocketAddr, direction: Direction, v2: bool);
}

/// Maps the shell's connection ids to peer entities.
#[derive(Resource, Debug, Default)]
pub struct ConnIndex(pub AHashMap<ConnId, Entity>);

#[cfg(test)]
mod tests {
    use super::*;

    /// Writes down what it was asked, in order.
    #[derive(Default)]
    struct Recorder(Vec<String>);

    impl IoCarrier for Recorder {
        fn send(&mut self, conn: ConnId, bytes: Vec<u8>) {
            self.0.push(format!("send {} {}", conn.0, bytes.len()));
        }
        fn close(&mut self, conn: ConnId, reason: DisconnectReason) {
            self.0.push(format!("close {} {}", conn.0, reason.label()));
        }
        fn set_paused(&mut self, conn: ConnId, paused: bool) {
            self.0.push(format!("paused {} {paused}", conn.0));
        }
        fn consumed(&mut self, conn: ConnId, bytes: usize) {
            self.0.push(format!("consumed {} {bytes}", conn.0));
        }
        fn recv_limit(&mut self, conn: ConnId, bytes: usize) {
            self.0.push(format!("limit {} {bytes}", conn.0));
        }
        fn connect(&mut self, addr: SocketAddr, direction: Direction, v2: bool) {
            self.0.push(format!("connect {addr} {direction:?} {v2}"));
        }
    }

    #[test]
    fn every_command_reaches_the_carrier_in_order_and_the_outbox_is_left_empty() {
        let mut world = World::new();
        let addr: SocketAddr = "10.0.0.1:8333".parse().unwrap();
        world.insert_resource(Outbox(vec![
            IoCommand::Connect { addr, direction: Direction::Manual, v2: true },
            IoCommand::Send { conn: ConnId(2), bytes: vec![0; 24] },
            IoCommand::PauseRead { conn: ConnId(2) },
            IoCommand::Consumed { conn: ConnId(2), bytes: 24 },
            IoCommand::ResumeRead { conn: ConnId(2) },
            IoCommand::RecvLimit { conn: ConnId(3), bytes: 4_000_000 },
            IoCommand::Close { conn: ConnId(3), reason: DisconnectReason::PingTimeout },
        ]));
        let mut carrier = Recorder::default();
        Outbox::carry_out(&mut world, &mut carrier);
        let close = format!("close 3 {}", DisconnectReason::PingTimeout.label());
        assert_eq!(
            carrier.0,
            [
                "connect 10.0.0.1:8333 Manual true",
                "send 2 24",
                "paused 2 true",
                "consumed 2 24",
                "paused 2 false",
                "limit 3 4000000",
                close.as_str(),
            ]
        );
        assert!(world.resource::<Outbox>().0.is_empty());
        Outbox::carry_out(&mut world, &mut carrier);
        assert_eq!(carrier.0.len(), 7, "a second drain carries nothing again");
    }
}
