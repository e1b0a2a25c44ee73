//! The component dump: every peer entity with all its serializable components, and the node-wide
//! resources, as one serde structure. Written as RON (default, for people) or JSON (for programs)
//! by `oni dump`, served as JSON by the RPC `dumpcomponents`, and loadable back into these very
//! structs. Field names are the component and resource types' own, so they stay stable with them.

use bevy_ecs::prelude::*;
use oni_systems::components::{
    AddrRelay, Direction, Disconnect, Handshake, Negotiated, PeerState, Permissions, PingState, RecvBuffer, Score,
    SendQueue, Socket, Stats,
};
use oni_systems::resources::{
    AddrBook, BanEntry, BanList, ChainTip, Clock, Config, Metrics, PeerPolicy, ScoreTable, Subnet,
};
use serde::{Deserialize, Serialize};

/// One peer entity.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct PeerDump {
    /// The link (its `conn` is the peer id of RPC).
    pub socket: Socket,
    /// Lifecycle.
    pub state: PeerState,
    /// Role.
    pub direction: Direction,
    /// Traffic counters and timings.
    pub stats: Stats,
    /// Misbehavior.
    pub score: Score,
    /// What the handshake agreed.
    pub negotiated: Negotiated,
    /// Handshake progress.
    pub handshake: Handshake,
    /// Keep-alive.
    pub ping: PingState,
    /// Operator permissions.
    pub permissions: Permissions,
    /// Set when the peer is being torn down.
    pub disconnect: Option<Disconnect>,
    /// Address gossip state (rate limit, queued addresses).
    pub addr_relay: Option<AddrRelay>,
    /// Bytes waiting in its send queue (frames are not dumped).
    pub send_queue_bytes: usize,
    /// Bytes waiting in its receive buffer.
    pub recv_buffer_bytes: usize,
}

/// One ban.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BanDump {
    /// The banned subnet.
    pub subnet: Subnet,
    /// Its times and reason.
    pub entry: BanEntry,
}

/// Address book sizes (the entries themselves stay in the store).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AddrBookCounts {
    /// Addresses heard of.
    pub new: usize,
    /// Addresses connected to.
    pub tried: usize,
}

/// The node-wide resources.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ResourcesDump {
    /// Network, identity and limits.
    pub config: Config,
    /// Counters and histograms.
    pub metrics: Metrics,
    /// Score per violation.
    pub score_table: ScoreTable,
    /// Connection policy.
    pub peer_policy: PeerPolicy,
    /// Bans, by subnet.
    pub bans: Vec<BanDump>,
    /// Addresses discouraged now.
    pub discouraged: usize,
    /// Address book sizes.
    pub addr_book: AddrBookCounts,
    /// Our tip.
    pub chain_tip: ChainTip,
    /// Per-system and tick times, when the shell measures them.
    pub timings: Option<crate::telemetry::timings::SystemTimings>,
}

/// The whole dump.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Dump {
    /// The world's clock when taken, unix ms.
    pub clock_ms: u64,
    /// Peers by id.
    pub peers: Vec<PeerDump>,
    /// Node-wide state.
    pub resources: ResourcesDump,
}

type Row<'a> = (
    &'a Socket,
    &'a PeerState,
    &'a Direction,
    &'a Stats,
    &'a Score,
    &'a Negotiated,
    &'a Handshake,
    &'a PingState,
    &'a Permissions,
    Option<&'a Disconnect>,
    &'a SendQueue,
    &'a RecvBuffer,
    Option<&'a AddrRelay>,
);

impl Dump {
    /// Reads everything from `world`.
    pub fn capture(world: &mut World) -> Dump {
        let mut q = world.query::<Row>();
        let mut peers: Vec<PeerDump> = q
            .iter(world)
            .map(|(so, st, d, stats, score, neg, hs, ping, perms, disc, sq, rb, addr)| PeerDump {
                socket: so.clone(),
                state: *st,
                direction: *d,
                stats: stats.clone(),
                score: score.clone(),
                negotiated: neg.clone(),
                handshake: hs.clone(),
                ping: ping.clone(),
                permissions: *perms,
                disconnect: disc.copied(),
                addr_relay: addr.cloned(),
                send_queue_bytes: sq.bytes(),
                recv_buffer_bytes: rb.bytes,
            })
            .collect();
        peers.sort_by_key(|p| p.socket.conn);
        let bans = world.resource::<BanList>();
        let (new, tried) = world.resource::<AddrBook>().counts();
        let resources = ResourcesDump {
            config: world.resource::<Config>().clone(),
            metrics: world.resource::<Metrics>().clone(),
            score_table: world.resource::<ScoreTable>().clone(),
            peer_policy: world.resource::<PeerPolicy>().clone(),
            bans: bans.bans().map(|(s, e)| BanDump { subnet: *s, entry: *e }).collect(),
            discouraged: bans.discouraged_len(),
            addr_book: AddrBookCounts { new, tried },
            chain_tip: world.resource::<ChainTip>().clone(),
            timings: world.get_resource::<crate::telemetry::timings::SystemTimings>().cloned(),
        };
        Dump { clock_ms: world.resource::<Clock>().now_ms, peers, resources }
    }

    /// As pretty RON.
    pub fn to_ron(&self) -> Result<String, ron::Error> {
        ron::ser::to_string_pretty(self, ron::ser::PrettyConfig::default().struct_names(true))
    }

    /// As pretty JSON.
    pub fn to_json(&self) -> Result<String, serde_json::Error> {
        serde_json::to_string_pretty(self)
    }

    /// Reads a RON dump back.
    pub fn from_ron(s: &str) -> Result<Dump, ron::error::SpannedError> {
        ron::from_str(s)
    }

    /// Reads a JSON dump back.
    pub fn from_json(s: &str) -> Result<Dump, serde_json::Error> {
        serde_json::from_str(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use oni_systems::harness::TestNode;

    #[test]
    fn a_dump_round_trips_through_ron_and_json() {
        let mut node = TestNode::regtest();
        node.connect_inbound("10.0.0.1:8333");
        node.connect_inbound("10.0.0.2:8333");
        let s: Subnet = "1.2.3.0/24".parse().unwrap();
        node.world
            .resource_mut::<BanList>()
            .ban(s, BanEntry { created_s: 5, until_s: 50, reason: oni_systems::resources::BanReason::Manual });
        let d = Dump::capture(&mut node.world);
        assert_eq!(d.peers.len(), 2);
        assert_eq!(d.resources.bans, vec![BanDump { subnet: s, entry: d.resources.bans[0].entry }]);
        let original = serde_json::to_value(&d).unwrap();
        let ron = d.to_ron().unwrap();
        assert!(ron.contains("negotiated"), "field names are the components'");
        let back = Dump::from_ron(&ron).unwrap();
        assert_eq!(serde_json::to_value(&back).unwrap(), original);
        let back = Dump::from_json(&d.to_json().unwrap()).unwrap();
        assert_eq!(serde_json::to_value(&back).unwrap(), original);
    }
}
