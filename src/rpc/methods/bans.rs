//! `setban`, `listbanned`, `clearbanned`: changes go through the world's `BanList` and are committed
//! to the store inside the same world call, so the answer comes only once the change is on disk.

use super::{gone, Ctx};
use crate::node::persist::commit_bans;
use crate::rpc::jsonrpc::{codes, RpcError};
use crate::rpc::params::Args;
use bevy_ecs::prelude::*;
use oni_systems::components::{Disconnect, Permissions, Socket};
use oni_systems::resources::{BanEntry, BanList, BanReason, Clock, DisconnectReason, PeerPolicy, Subnet};
use serde_json::{json, Value};

fn commit(world: &mut World) -> Result<(), RpcError> {
    commit_bans(world).map_err(|e| RpcError::new(codes::DATABASE_ERROR, format!("Database error: {e}")))
}

/// `setban "subnet" "add"|"remove" ( bantime absolute )`.
pub async fn setban(ctx: &Ctx, args: &Args, bad_command: impl Fn() -> RpcError) -> Result<Value, RpcError> {
    let subnet: Subnet = args
        .str(0)
        .unwrap_or("")
        .parse()
        .map_err(|_| RpcError::new(codes::CLIENT_INVALID_IP_OR_SUBNET, "Error: Invalid IP/Subnet"))?;
    let add = match args.str(1) {
        Some("add") => true,
        Some("remove") => false,
        _ => return Err(bad_command()),
    };
    let bantime = args.int(2)?.unwrap_or(0);
    let absolute = args.bool(3).unwrap_or(false);
    let r = ctx.node.with_world_async(move |world| {
        let now_s = world.resource::<Clock>().unix_s();
        if !add {
            if !world.resource_mut::<BanList>().unban(&subnet) {
                return Err(RpcError::new(
                    codes::CLIENT_INVALID_IP_OR_SUBNET,
                    "Error: Unban failed. Requested address/subnet was not previously manually banned.",
                ));
            }
            return commit(world);
        }
        if world.resource::<BanList>().bans().any(|(s, e)| *s == subnet && e.until_s > now_s) {
            return Err(RpcError::new(codes::CLIENT_NODE_ALREADY_ADDED, "Error: IP/Subnet already banned"));
        }
        if absolute && bantime < now_s {
            return Err(RpcError::new(codes::INVALID_PARAMETER, "Error: Absolute timestamp is in the past"));
        }
        let until_s = match (bantime, absolute) {
            (t, _) if t <= 0 => now_s + world.resource::<PeerPolicy>().ban_s,
            (t, true) => t,
            (t, false) => now_s.saturating_add(t),
        };
        world.resource_mut::<BanList>().ban(subnet, BanEntry { created_s: now_s, until_s, reason: BanReason::Manual });
        commit(world)?;
        // Core drops matching peers at once; the next tick tears them down.
        let mut q = world.query_filtered::<(Entity, &Socket, &Permissions), Without<Disconnect>>();
        let hit: Vec<Entity> =
            q.iter(world).filter(|(_, s, p)| !p.noban && subnet.contains(s.addr.ip())).map(|(e, _, _)| e).collect();
        for e in hit {
            world.entity_mut(e).insert(Disconnect { reason: DisconnectReason::Banned });
        }
        Ok(())
    });
    r.await.map_err(gone)?.map(|()| Value::Null)
}

/// `listbanned`: Core's fields, in subnet order.
pub async fn listbanned(ctx: &Ctx) -> Result<Value, RpcError> {
    let list = ctx.node.with_world_async(|world| {
        let now_s = world.resource::<Clock>().unix_s();
        world
            .resource::<BanList>()
            .bans()
            .map(|(s, e)| {
                json!({
                    "address": s.to_string(),
                    "ban_created": e.created_s,
                    "banned_until": e.until_s,
                    "ban_duration": e.until_s - e.created_s,
                    "time_remaining": (e.until_s - now_s).max(0),
                })
            })
            .collect::<Vec<Value>>()
    });
    Ok(Value::Array(list.await.map_err(gone)?))
}

/// `clearbanned`.
pub async fn clearbanned(ctx: &Ctx) -> Result<Value, RpcError> {
    let r = ctx.node.with_world_async(|world| {
        world.resource_mut::<BanList>().clear();
        commit(world)
    });
    r.await.map_err(gone)?.map(|()| Value::Null)
}
