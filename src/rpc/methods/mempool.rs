//! Pool calls in Core's shapes: `getmempoolinfo`, `getrawmempool` (txids, or entries keyed by txid)
//! and `getmempoolentry`. Entries carry Core's fields from the pool's links: in-pool ancestor and
//! descendant counts, sizes and fees include the entry itself; `depends`/`spentby` are sorted.
//! oni's pool has no clusters, so Core's chunk fields are left out.

use super::values::{btc, parse_hash};
use super::{gone, Ctx};
use crate::rpc::jsonrpc::{codes, RpcError};
use crate::rpc::params::Args;
use bevy_ecs::world::World;
use bitcoin::Txid;
use oni_systems::mempool::local::Unbroadcast;
use oni_systems::mempool::policy::PolicyConfig;
use oni_systems::mempool::pool::{Mempool, PoolEntry};
use oni_systems::resources::Clock;
use serde_json::{json, Map, Value};

/// Highest nSequence that signals BIP125 replaceability.
const MAX_BIP125_RBF_SEQUENCE: u32 = 0xffff_fffd;

/// `getmempoolinfo`.
pub async fn getmempoolinfo(ctx: &Ctx) -> Result<Value, RpcError> {
    ctx.node.with_world_async(mempool_info).await.map_err(gone)
}

fn mempool_info(world: &mut World) -> Value {
    let now_ms = world.resource::<Clock>().now_ms;
    let unbroadcast = world.resource::<Unbroadcast>().txids.len();
    let policy = world.resource::<PolicyConfig>().clone();
    let mut pool = world.resource_mut::<Mempool>();
    let min_fee = pool.min_feerate(now_ms);
    let limits = pool.limits().clone();
    json!({
        "loaded": true,
        "size": pool.len(),
        "bytes": pool.total_vsize(),
        "usage": pool.usage_bytes(),
        "total_fee": btc(pool.total_fee_sat()),
        "maxmempool": limits.max_bytes,
        "mempoolminfee": btc(min_fee.max(limits.min_relay_feerate)),
        "minrelaytxfee": btc(limits.min_relay_feerate),
        "incrementalrelayfee": btc(limits.incremental_feerate),
        "unbroadcastcount": unbroadcast,
        "permitbaremultisig": policy.permit_bare_multisig,
        "maxdatacarriersize": policy.max_datacarrier_bytes.unwrap_or(0),
        "fullrbf": true,
    })
}

/// Whether `e` or an in-pool ancestor signals BIP125 (Core's `IsRBFOptIn`).
fn signals_rbf(pool: &Mempool, e: &PoolEntry) -> bool {
    let signals = |e: &PoolEntry| e.tx.input.iter().any(|i| i.sequence.0 <= MAX_BIP125_RBF_SEQUENCE);
    signals(e) || pool.ancestors(&e.txid).iter().filter_map(|t| pool.get(t)).any(signals)
}

/// One entry as Core's `entryToJSON` writes it.
pub fn entry_json(pool: &Mempool, unbroadcast: &Unbroadcast, e: &PoolEntry) -> Value {
    let ancestors: Vec<&PoolEntry> = pool.ancestors(&e.txid).iter().filter_map(|t| pool.get(t)).collect();
    let descendants: Vec<&PoolEntry> = pool.descendants(&e.txid).iter().filter_map(|t| pool.get(t)).collect();
    let sum = |v: &[&PoolEntry], f: fn(&PoolEntry) -> u64| v.iter().map(|x| f(x)).sum::<u64>();
    let mut depends: Vec<String> = e.parents.iter().map(Txid::to_string).collect();
    depends.sort_unstable();
    let mut spentby: Vec<String> = e.children.iter().map(Txid::to_string).collect();
    spentby.sort_unstable();
    json!({
        "vsize": e.vsize,
        "weight": e.tx.weight().to_wu(),
        "time": e.entered_ms / 1000,
        "height": e.entered_height,
        "descendantcount": descendants.len() + 1,
        "descendantsize": sum(&descendants, |x| x.vsize) + e.vsize,
        "ancestorcount": ancestors.len() + 1,
        "ancestorsize": sum(&ancestors, |x| x.vsize) + e.vsize,
        "wtxid": e.wtxid.to_string(),
        "fees": {
            "base": btc(e.fee_sat),
            "modified": btc(e.fee_sat),
            "ancestor": btc(sum(&ancestors, |x| x.fee_sat) + e.fee_sat),
            "descendant": btc(sum(&descendants, |x| x.fee_sat) + e.fee_sat),
        },
        "depends": depends,
        "spentby": spentby,
        "bip125-replaceable": signals_rbf(pool, e),
        "unbroadcast": unbroadcast.txids.contains(&e.txid),
    })
}

/// `getrawmempool ( verbose mempool_sequence )`: txids in arrival order, or entries by txid.
pub async fn getrawmempool(ctx: &Ctx, args: &Args) -> Result<Value, RpcError> {
    let verbose = args.bool(0).unwrap_or(false);
    let with_sequence = args.bool(1).unwrap_or(false);
    if verbose && with_sequence {
        return Err(RpcError::new(codes::INVALID_PARAMETER, "Verbose results cannot contain mempool sequence values."));
    }
    let v = ctx.node.with_world_async(move |world| {
        let pool = world.resource::<Mempool>();
        let mut entries: Vec<&PoolEntry> = pool.iter().collect();
        entries.sort_unstable_by_key(|e| e.sequence);
        if verbose {
            let unbroadcast = world.resource::<Unbroadcast>();
            let map: Map<String, Value> =
                entries.iter().map(|e| (e.txid.to_string(), entry_json(pool, unbroadcast, e))).collect();
            return Value::Object(map);
        }
        let txids: Vec<String> = entries.iter().map(|e| e.txid.to_string()).collect();
        if !with_sequence {
            return json!(txids);
        }
        // Core's sequence counts every addition and every removal.
        let sequence = pool.next_sequence() + pool.removed.iter().sum::<u64>();
        json!({"txids": txids, "mempool_sequence": sequence})
    });
    v.await.map_err(gone)
}

/// `getmempoolentry txid`.
pub async fn getmempoolentry(ctx: &Ctx, args: &Args) -> Result<Value, RpcError> {
    let txid: Txid = parse_hash(args.str(0).unwrap_or(""), "txid")?;
    let v = ctx.node.with_world_async(move |world| {
        let pool = world.resource::<Mempool>();
        pool.get(&txid).map(|e| entry_json(pool, world.resource::<Unbroadcast>(), e))
    });
    v.await.map_err(gone)?.ok_or_else(|| RpcError::new(codes::INVALID_ADDRESS_OR_KEY, "Transaction not in mempool"))
}
