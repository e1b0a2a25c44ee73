//! Network calls: `getpeerinfo` (Core's fields plus oni's state, score, handshake_ms and
//! sendqueue_bytes), `getnettotals`, `getnetworkinfo`, `getconnectioncount`, `disconnectnode`,
//! `addnode`, `getaddednodeinfo`. Figures come straight from the peer components and `Metrics`.

use super::values::btc;
use super::{gone, node_warnings, Ctx};
use crate::rpc::jsonrpc::{codes, RpcError};
use crate::rpc::params::Args;
use bevy_ecs::prelude::*;
use oni_systems::chain::{HeaderTree, PeerBlocks, PeerChain};
use oni_systems::components::{
    AddrRelay, ConnId, Direction, Disconnect, Negotiated, PeerState, Permissions, PingState, Score, SendQueue, Socket,
    Stats, Transport,
};
use oni_systems::mempool::pool::Mempool;
use oni_systems::resources::{Clock, Config, IoCommand, Metrics, Outbox, PeerPolicy};
use oni_systems::systems::is_routable;
use oni_systems::wire::services::*;
use oni_systems::wire::Command;
use serde_json::{json, Map, Value};
use std::net::{IpAddr, SocketAddr};

/// Core's names of service bits, in bit order.
const SERVICE_NAMES: &[(u64, &str)] = &[
    (NODE_NETWORK, "NETWORK"),
    (NODE_BLOOM, "BLOOM"),
    (NODE_WITNESS, "WITNESS"),
    (NODE_COMPACT_FILTERS, "COMPACT_FILTERS"),
    (NODE_NETWORK_LIMITED, "NETWORK_LIMITED"),
    (NODE_P2P_V2, "P2P_V2"),
];

/// Service bits as Core lists them; unknown bits as `UNKNOWN[2^n]`.
pub fn service_names(services: u64) -> Vec<String> {
    (0..64)
        .map(|bit| 1u64 << bit)
        .filter(|b| services & b != 0)
        .map(|b| match SERVICE_NAMES.iter().find(|(v, _)| *v == b) {
            Some((_, n)) => n.to_string(),
            None => format!("UNKNOWN[2^{}]", b.trailing_zeros()),
        })
        .collect()
}

/// Core's `network` of a peer address.
fn network_name(addr: SocketAddr) -> &'static str {
    if !is_routable(addr) {
        return "not_publicly_routable";
    }
    match addr.ip() {
        IpAddr::V4(_) => "ipv4",
        IpAddr::V6(v6) if v6.to_ipv4_mapped().is_some() => "ipv4",
        IpAddr::V6(v6) if v6.octets()[0] == 0xfc => "cjdns",
        IpAddr::V6(_) => "ipv6",
    }
}

fn state_name(s: PeerState) -> &'static str {
    match s {
        PeerState::Connecting => "connecting",
        PeerState::Handshaking => "handshaking",
        PeerState::Ready => "ready",
        PeerState::Disconnecting => "disconnecting",
    }
}

/// Per-command counters as Core's `*_per_msg`: only commands with traffic.
fn per_msg(bytes: &[u64]) -> Value {
    let mut m = Map::new();
    for (cmd, &b) in Command::ALL.iter().zip(bytes) {
        if b > 0 {
            m.insert(cmd.name().to_string(), json!(b));
        }
    }
    Value::Object(m)
}

type PeerRow<'a> = (
    &'a Socket,
    &'a PeerState,
    &'a Direction,
    &'a Stats,
    &'a Score,
    &'a Negotiated,
    &'a SendQueue,
    &'a Permissions,
    &'a PingState,
    Option<&'a AddrRelay>,
    Option<&'a PeerChain>,
    Option<&'a PeerBlocks>,
    Option<&'a Transport>,
);

fn peer_json(row: PeerRow<'_>, tree: &HeaderTree, now_ms: u64) -> Value {
    let (socket, state, direction, stats, score, neg, sq, perms, ping, addr_relay, chain, blocks, transport) = row;
    let secs = |ms: u64| ms / 1000;
    let mut o = Map::new();
    o.insert("id".into(), json!(socket.conn.0));
    o.insert("addr".into(), json!(socket.addr.to_string()));
    if let Some(local) = socket.local {
        o.insert("addrlocal".into(), json!(local.to_string()));
    }
    o.insert("network".into(), json!(network_name(socket.addr)));
    o.insert("services".into(), json!(format!("{:016x}", neg.services)));
    o.insert("servicesnames".into(), json!(service_names(neg.services)));
    o.insert("relaytxes".into(), json!(neg.relay));
    o.insert("lastsend".into(), json!(secs(stats.last_send_ms)));
    o.insert("lastrecv".into(), json!(secs(ping.last_recv_ms)));
    o.insert("bytessent".into(), json!(stats.bytes_out));
    o.insert("bytesrecv".into(), json!(stats.bytes_in));
    o.insert("conntime".into(), json!(secs(socket.connected_ms)));
    o.insert("timeoffset".into(), json!(neg.time_offset_s));
    if let Some(rtt) = stats.ping_rtt_ms {
        o.insert("pingtime".into(), json!(rtt as f64 / 1000.0));
    }
    if let Some(min) = stats.min_ping_ms {
        o.insert("minping".into(), json!(min as f64 / 1000.0));
    }
    if let Some((_, sent_ms)) = ping.outstanding {
        o.insert("pingwait".into(), json!(now_ms.saturating_sub(sent_ms) as f64 / 1000.0));
    }
    o.insert("version".into(), json!(neg.version));
    o.insert("subver".into(), json!(String::from_utf8_lossy(&neg.user_agent)));
    o.insert("inbound".into(), json!(*direction == Direction::Inbound));
    o.insert("bip152_hb_to".into(), json!(neg.cmpct_hb_to));
    o.insert("bip152_hb_from".into(), json!(neg.cmpct_hb_from));
    o.insert("startingheight".into(), json!(neg.start_height));
    // What it is known to have (its announcements, blocks, getheaders locators) and what we ask of it.
    o.insert("presynced_headers".into(), json!(chain.map_or(-1, |c| c.presynced_headers())));
    o.insert("synced_headers".into(), json!(chain.map_or(-1, |c| c.synced_headers(tree))));
    o.insert("synced_blocks".into(), json!(chain.map_or(-1, |c| c.synced_blocks(tree))));
    let inflight: Vec<u32> = blocks.map_or(vec![], |b| b.in_flight.iter().map(|r| tree.entry(r.idx).height).collect());
    o.insert("inflight".into(), json!(inflight));
    let permissions: Vec<&str> = if perms.noban { vec!["noban"] } else { vec![] };
    o.insert("permissions".into(), json!(permissions));
    // The peer's feefilter in BTC/kvB (Core shows 0 until one arrives).
    o.insert("minfeefilter".into(), btc(neg.feefilter.unwrap_or(0).max(0) as u64));
    // When it last gave us a new block / a transaction the pool took (0: never), as Core's.
    o.insert("last_block".into(), json!(secs(stats.last_block_ms.unwrap_or(0))));
    o.insert("last_transaction".into(), json!(secs(stats.last_tx_ms.unwrap_or(0))));
    if let Some(a) = addr_relay {
        o.insert("addr_processed".into(), json!(a.processed));
        o.insert("addr_rate_limited".into(), json!(a.rate_limited));
    }
    o.insert("bytessent_per_msg".into(), per_msg(&stats.bytes_out_by_cmd));
    o.insert("bytesrecv_per_msg".into(), per_msg(&stats.bytes_in_by_cmd));
    o.insert("connection_type".into(), json!(direction.label()));
    let transport = transport.copied().unwrap_or_default();
    o.insert("transport_protocol_type".into(), json!(transport.label()));
    let session_id = match transport {
        // In derivation order, as Core's HexStr prints it.
        Transport::V2 { session_id } => session_id.iter().map(|b| format!("{b:02x}")).collect::<String>(),
        _ => String::new(),
    };
    o.insert("session_id".into(), json!(session_id));
    // oni's own.
    o.insert("state".into(), json!(state_name(*state)));
    o.insert("score".into(), json!(score.points));
    let handshake_ms = stats.handshake_done_ms.map(|d| d.saturating_sub(stats.handshake_started_ms));
    o.insert("handshake_ms".into(), json!(handshake_ms));
    o.insert("sendqueue_bytes".into(), json!(sq.bytes()));
    o.insert("msgssent_per_msg".into(), per_msg(&stats.msgs_out.map(u64::from)));
    o.insert("msgsrecv_per_msg".into(), per_msg(&stats.msgs_in.map(u64::from)));
    Value::Object(o)
}

/// `getpeerinfo`: every peer past dialing, by id.
pub async fn getpeerinfo(ctx: &Ctx) -> Result<Value, RpcError> {
    let peers = ctx.node.with_world_async(|world| {
        let now_ms = world.resource::<Clock>().now_ms;
        let mut q = world.query::<PeerRow>();
        let tree = world.resource::<HeaderTree>();
        let mut rows: Vec<(ConnId, Value)> = q
            .iter(world)
            .filter(|r| *r.1 != PeerState::Connecting)
            .map(|r| (r.0.conn, peer_json(r, tree, now_ms)))
            .collect();
        rows.sort_by_key(|(id, _)| *id);
        rows.into_iter().map(|(_, v)| v).collect::<Vec<Value>>()
    });
    Ok(Value::Array(peers.await.map_err(gone)?))
}

/// `getnettotals`: wire bytes over all peers since start (no upload target: oni has none).
pub async fn getnettotals(ctx: &Ctx) -> Result<Value, RpcError> {
    let v = ctx.node.with_world_async(|world| {
        let m = world.resource::<Metrics>();
        json!({
            "totalbytesrecv": m.bytes_in.iter().sum::<u64>(),
            "totalbytessent": m.bytes_out.iter().sum::<u64>(),
            "timemillis": world.resource::<Clock>().now_ms,
            "uploadtarget": {
                "timeframe": 86400,
                "target": 0,
                "target_reached": false,
                "serve_historical_blocks": true,
                "bytes_left_in_cycle": 0,
                "time_left_in_cycle": 0,
            },
        })
    });
    v.await.map_err(gone)
}

/// Peers past dialing: (inbound, outbound).
fn connection_counts(world: &mut World) -> (usize, usize) {
    let mut q = world.query::<(&Direction, &PeerState)>();
    let (mut inbound, mut outbound) = (0, 0);
    for (d, s) in q.iter(world) {
        if *s == PeerState::Connecting {
            continue;
        }
        if d.is_outbound() {
            outbound += 1;
        } else {
            inbound += 1;
        }
    }
    (inbound, outbound)
}

/// `getconnectioncount`.
pub async fn getconnectioncount(ctx: &Ctx) -> Result<Value, RpcError> {
    let (i, o) = ctx.node.with_world_async(connection_counts).await.map_err(gone)?;
    Ok(json!(i + o))
}

/// What `getnetworkinfo.version` says: the Bitcoin Core release whose RPC answers oni's follow
/// (field names, types and error codes of the calls it has), in Core's numbering (10000 × major +
/// 100 × minor). Tools such as `bitcoin-cli -netinfo` read this number to decide which fields they
/// may expect; oni's own name and version are in `subversion` (`/oni:0.1.0/`).
pub const RPC_COMPAT_VERSION: u64 = 310_000;

/// `getnetworkinfo`; the fee fields are the pool's relay floor and increment, in BTC/kvB.
pub async fn getnetworkinfo(ctx: &Ctx) -> Result<Value, RpcError> {
    let v = ctx.node.with_world_async(|world| {
        let (inbound, outbound) = connection_counts(world);
        let mut offsets: Vec<i64> = world
            .query::<(&Direction, &PeerState, &Negotiated)>()
            .iter(world)
            .filter(|(d, s, _)| d.is_outbound() && **s == PeerState::Ready)
            .map(|(_, _, n)| n.time_offset_s)
            .collect();
        offsets.sort_unstable();
        let timeoffset = offsets.get(offsets.len() / 2).copied().unwrap_or(0);
        let limits = world.resource::<Mempool>().limits().clone();
        let cfg = world.resource::<Config>();
        let nets: Vec<Value> = [("ipv4", true), ("ipv6", true), ("onion", false), ("i2p", false), ("cjdns", false)]
            .iter()
            .map(|(name, reachable)| {
                json!({"name": name, "limited": !reachable, "reachable": reachable, "proxy": "",
                       "proxy_randomize_credentials": false})
            })
            .collect();
        json!({
            "version": RPC_COMPAT_VERSION,
            "subversion": cfg.user_agent,
            "protocolversion": cfg.protocol_version,
            "localservices": format!("{:016x}", cfg.services),
            "localservicesnames": service_names(cfg.services),
            "localrelay": cfg.relay,
            "timeoffset": timeoffset,
            "networkactive": true,
            "connections": inbound + outbound,
            "connections_in": inbound,
            "connections_out": outbound,
            "networks": nets,
            "relayfee": btc(limits.min_relay_feerate),
            "incrementalfee": btc(limits.incremental_feerate),
            "localaddresses": [],
            "warnings": node_warnings(world),
        })
    });
    v.await.map_err(gone)
}

/// `disconnectnode ( "address" nodeid )`: exactly one of the two.
pub async fn disconnectnode(ctx: &Ctx, args: &Args) -> Result<Value, RpcError> {
    let address = args.str(0).map(str::to_string);
    let nodeid = args.int(1)?;
    enum Target {
        Addr(String),
        Id(u64),
    }
    let target = match (address, nodeid) {
        (Some(a), None) => Target::Addr(a),
        (None | Some(_), Some(id)) if args.str(0).is_none_or(str::is_empty) => Target::Id(id.max(0) as u64),
        _ => return Err(RpcError::new(codes::INVALID_PARAMETER, "Only one of address and nodeid should be provided.")),
    };
    let found = ctx.node.with_world_async(move |world| {
        let mut q = world.query_filtered::<(Entity, &Socket), Without<Disconnect>>();
        let hit = q.iter(world).find(|(_, s)| match &target {
            Target::Id(id) => s.conn.0 == *id,
            Target::Addr(a) => s.addr.to_string() == *a || a.parse::<SocketAddr>().is_ok_and(|p| p == s.addr),
        });
        let Some((e, _)) = hit else { return false };
        world.entity_mut(e).insert(Disconnect { reason: oni_systems::resources::DisconnectReason::Manual });
        true
    });
    if !found.await.map_err(gone)? {
        return Err(RpcError::new(codes::CLIENT_NODE_NOT_CONNECTED, "Node not found in connected nodes"));
    }
    Ok(Value::Null)
}

/// Parses `ip`, `ip:port` or `[ipv6]:port`; no port means the network's. Public (re-exported from
/// [`super`]) for the `rpc_json` fuzz target.
pub fn parse_node(s: &str, default_port: u16) -> Result<SocketAddr, RpcError> {
    if let Ok(a) = s.parse::<SocketAddr>() {
        return Ok(a);
    }
    s.trim_start_matches('[')
        .trim_end_matches(']')
        .parse::<IpAddr>()
        .map(|ip| SocketAddr::new(ip, default_port))
        .map_err(|_| {
            RpcError::new(codes::INVALID_PARAMETER, format!("Error: '{s}' is not an IP address with an optional port"))
        })
}

/// `addnode "node" "add"|"remove"|"onetry" ( v2transport )`: add/remove edit the manual peers the
/// connections system keeps dialed; onetry dials once. `v2transport` (default: the node's
/// `--v2transport`) tries BIP324 first; asking for it on a node without it is an error, as in Core.
pub async fn addnode(ctx: &Ctx, args: &Args, bad_command: impl Fn() -> RpcError) -> Result<Value, RpcError> {
    let command = args.str(1).unwrap_or("").to_string();
    if !matches!(command.as_str(), "add" | "remove" | "onetry") {
        return Err(bad_command());
    }
    let addr = parse_node(args.str(0).unwrap_or(""), ctx.network.default_port())?;
    let asked_v2 = args.bool(2);
    let r = ctx.node.with_world_async(move |world| {
        let node_v2 = world.resource::<oni_systems::resources::Config>().v2();
        let v2 = asked_v2.unwrap_or(node_v2);
        if v2 && !node_v2 && command != "remove" {
            return Err(RpcError::new(
                codes::INVALID_PARAMETER,
                "Error: v2transport requested but not enabled (see -v2transport)",
            ));
        }
        match command.as_str() {
            "onetry" => {
                world.resource_mut::<Outbox>().0.push(IoCommand::Connect { addr, direction: Direction::Manual, v2 })
            }
            "add" => {
                if world.resource::<PeerPolicy>().manual.contains(&addr) {
                    return Err(RpcError::new(codes::CLIENT_NODE_ALREADY_ADDED, "Error: Node already added"));
                }
                let mut policy = world.resource_mut::<PeerPolicy>();
                policy.manual.push(addr);
                if !v2 {
                    policy.manual_v1.push(addr);
                }
            }
            _ => {
                let mut policy = world.resource_mut::<PeerPolicy>();
                let Some(i) = policy.manual.iter().position(|a| *a == addr) else {
                    return Err(RpcError::new(
                        codes::CLIENT_NODE_NOT_ADDED,
                        "Error: Node could not be removed. It has not been added previously.",
                    ));
                };
                policy.manual.remove(i);
                policy.manual_v1.retain(|a| *a != addr);
            }
        }
        Ok(())
    });
    r.await.map_err(gone)?.map(|()| Value::Null)
}

/// `getaddednodeinfo ( "node" )`.
pub async fn getaddednodeinfo(ctx: &Ctx, args: &Args) -> Result<Value, RpcError> {
    let only = match args.str(0) {
        Some(s) => Some(parse_node(s, ctx.network.default_port())?),
        None => None,
    };
    let r = ctx.node.with_world_async(move |world| {
        let added = world.resource::<PeerPolicy>().manual.clone();
        if let Some(a) = only {
            if !added.contains(&a) {
                return Err(RpcError::new(codes::CLIENT_NODE_NOT_ADDED, "Error: Node has not been added."));
            }
        }
        let mut q = world.query::<(&Socket, &Direction, &PeerState)>();
        let live: Vec<SocketAddr> = q
            .iter(world)
            .filter(|(_, d, s)| d.is_outbound() && **s != PeerState::Connecting)
            .map(|(s, _, _)| s.addr)
            .collect();
        let rows = added
            .iter()
            .filter(|a| only.is_none_or(|o| o == **a))
            .map(|a| {
                let connected = live.contains(a);
                let addresses =
                    if connected { json!([{"address": a.to_string(), "connected": "outbound"}]) } else { json!([]) };
                json!({"addednode": a.to_string(), "connected": connected, "addresses": addresses})
            })
            .collect::<Vec<Value>>();
        Ok(Value::Array(rows))
    });
    r.await.map_err(gone)?
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn service_names_follow_core() {
        assert_eq!(
            service_names(NODE_NETWORK | NODE_WITNESS | NODE_NETWORK_LIMITED),
            ["NETWORK", "WITNESS", "NETWORK_LIMITED"]
        );
        assert_eq!(service_names(1 << 5), ["UNKNOWN[2^5]"]);
        assert!(service_names(0).is_empty());
    }

    #[test]
    fn networks_are_named_as_core_names_them() {
        assert_eq!(network_name("127.0.0.1:1".parse().unwrap()), "not_publicly_routable");
        assert_eq!(network_name("8.8.8.8:1".parse().unwrap()), "ipv4");
        assert_eq!(network_name("[2a00::1]:1".parse().unwrap()), "ipv6");
    }
}
