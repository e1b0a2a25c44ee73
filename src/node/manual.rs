//! Manual peers (`--connect`, `--addnode`): kept connected by the shell until the peer manager
//! system owns them. Each is dialed at start and redialed a fixed wait after it goes away, as
//! Bitcoin Core keeps retrying its added nodes.

use crate::bridge::Bridge;
use bevy_ecs::world::World;
use oni_systems::components::{ConnId, Direction};
use oni_systems::resources::{ConnIndex, NetEvent};
use std::net::SocketAddr;

/// One manual peer's state.
struct ManualPeer {
    addr: SocketAddr,
    /// The live connection, if any (dialing counts).
    conn: Option<ConnId>,
    /// When to dial next while not connected (clock ms).
    next_dial_ms: u64,
}

/// The manual peers and their redial schedule.
pub(super) struct ManualPeers {
    peers: Vec<ManualPeer>,
    redial_ms: u64,
}

impl ManualPeers {
    pub(super) fn new(addrs: &[SocketAddr], redial_ms: u64) -> ManualPeers {
        let peers = addrs.iter().map(|&addr| ManualPeer { addr, conn: None, next_dial_ms: 0 }).collect();
        ManualPeers { peers, redial_ms }
    }

    /// After a tick: notices manual peers the world has torn down and dials the ones that are due.
    /// A dial's `Dialing` goes into `pending`, so the next tick knows the connection before any
    /// check here runs again.
    pub(super) fn after_tick(&mut self, world: &World, now_ms: u64, bridge: &Bridge, pending: &mut Vec<NetEvent>) {
        let index = &world.resource::<ConnIndex>().0;
        for p in &mut self.peers {
            if let Some(conn) = p.conn {
                if index.contains_key(&conn) {
                    continue;
                }
                p.conn = None;
                p.next_dial_ms = now_ms + self.redial_ms;
                tracing::debug!(addr = %p.addr, redial_in_ms = self.redial_ms, "manual peer gone");
            }
            if now_ms >= p.next_dial_ms {
                tracing::debug!(addr = %p.addr, "dialing manual peer");
                p.conn = Some(bridge.dial(p.addr, Direction::Manual, pending));
            }
        }
    }
}
