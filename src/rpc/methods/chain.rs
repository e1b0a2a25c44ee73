//! Chain calls, answered from the world's header tree: the validated chain (what Core calls the
//! active chain) for counts, hashes and confirmations, the best header for `headers`.

use super::{gone, node_warnings, Ctx};
use crate::rpc::jsonrpc::{codes, RpcError};
use crate::rpc::params::Args;
use bevy_ecs::world::World;
use bitcoin::BlockHash;
use oni_systems::chain::{BlockIdx, HeaderTree, Ibd};
use serde_json::{json, Value};
use std::str::FromStr;

/// Core's `GetDifficulty`: how many times harder than the easiest target (bits 0x1d00ffff).
pub fn difficulty(bits: u32) -> f64 {
    let mut shift = (bits >> 24) & 0xff;
    let mut d = 65_535.0 / f64::from(bits & 0x00ff_ffff).max(1.0);
    while shift < 29 {
        d *= 256.0;
        shift += 1;
    }
    while shift > 29 {
        d /= 256.0;
        shift -= 1;
    }
    d
}

fn hex_be(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The validated-chain block at `height`, if the chain is that long.
fn validated_at(tree: &HeaderTree, height: u32) -> Option<BlockIdx> {
    tree.ancestor(tree.validated_tip(), height)
}

/// `getblockcount`: height of the validated tip.
pub async fn getblockcount(ctx: &Ctx) -> Result<Value, RpcError> {
    ctx.node
        .with_world_async(|w| {
            let tree = w.resource::<HeaderTree>();
            json!(tree.entry(tree.validated_tip()).height)
        })
        .await
        .map_err(gone)
}

/// `getbestblockhash`.
pub async fn getbestblockhash(ctx: &Ctx) -> Result<Value, RpcError> {
    ctx.node
        .with_world_async(|w| {
            let tree = w.resource::<HeaderTree>();
            json!(tree.entry(tree.validated_tip()).hash.to_string())
        })
        .await
        .map_err(gone)
}

/// `getblockhash height`.
pub async fn getblockhash(ctx: &Ctx, args: &Args) -> Result<Value, RpcError> {
    let height = args.int(0)?.unwrap_or(-1);
    let found = ctx
        .node
        .with_world_async(move |w| {
            let tree = w.resource::<HeaderTree>();
            u32::try_from(height).ok().and_then(|h| validated_at(tree, h)).map(|i| tree.entry(i).hash.to_string())
        })
        .await
        .map_err(gone)?;
    found.map(Value::String).ok_or_else(|| RpcError::new(codes::INVALID_PARAMETER, "Block height out of range"))
}

/// `getblockheader hash (verbose)`.
pub async fn getblockheader(ctx: &Ctx, args: &Args) -> Result<Value, RpcError> {
    let text = args.str(0).unwrap_or("").to_string();
    if text.len() != 64 || !text.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(RpcError::new(
            codes::INVALID_PARAMETER,
            format!("blockhash must be of length 64 (not {}, for '{text}')", text.len()),
        ));
    }
    let hash = BlockHash::from_str(&text).map_err(|e| RpcError::new(codes::INVALID_PARAMETER, e.to_string()))?;
    let verbose = args.bool(1).unwrap_or(true);
    ctx.node.with_world_async(move |w| header_json(w, &hash, verbose)).await.map_err(gone)?
}

fn header_json(w: &World, hash: &BlockHash, verbose: bool) -> Result<Value, RpcError> {
    let tree = w.resource::<HeaderTree>();
    let idx = tree.get(hash).ok_or_else(|| RpcError::new(codes::INVALID_ADDRESS_OR_KEY, "Block not found"))?;
    // The version, merkle root and nonce of an archived header come back from the header store.
    let header = tree
        .header(idx)
        .ok_or_else(|| RpcError::new(codes::MISC_ERROR, "Cannot read the block header back from the header store"))?;
    if !verbose {
        return Ok(json!(hex_be(&bitcoin::consensus::serialize(&header))));
    }
    let e = tree.entry(idx);
    let version = header.version.to_consensus();
    let tip = tree.entry(tree.validated_tip()).height;
    let on_chain = validated_at(tree, e.height) == Some(idx);
    let mut v = json!({
        "hash": e.hash.to_string(),
        "confirmations": if on_chain { i64::from(tip) - i64::from(e.height) + 1 } else { -1 },
        "height": e.height,
        "version": version,
        "versionHex": format!("{version:08x}"),
        "merkleroot": header.merkle_root.to_string(),
        "time": e.time,
        "mediantime": tree.median_time_past(idx),
        "nonce": header.nonce,
        "bits": format!("{:08x}", e.bits),
        "difficulty": difficulty(e.bits),
        "chainwork": hex_be(&e.chainwork().to_be_bytes()),
    });
    if e.height > 0 {
        v["previousblockhash"] = json!(tree.entry(e.parent).hash.to_string());
    }
    if on_chain {
        if let Some(next) = validated_at(tree, e.height + 1) {
            v["nextblockhash"] = json!(tree.entry(next).hash.to_string());
        }
    }
    Ok(v)
}

/// `getblockchaininfo`.
pub async fn getblockchaininfo(ctx: &Ctx) -> Result<Value, RpcError> {
    let chain = ctx.network.name();
    ctx.node
        .with_world_async(move |w| {
            let tree = w.resource::<HeaderTree>();
            let tip_idx = tree.validated_tip();
            let tip = tree.entry(tip_idx);
            let best = tree.best_entry();
            json!({
                "chain": chain,
                "blocks": tip.height,
                "headers": best.height,
                "bestblockhash": tip.hash.to_string(),
                "bits": format!("{:08x}", tip.bits),
                "difficulty": difficulty(tip.bits),
                "time": tip.time,
                "mediantime": tree.median_time_past(tip_idx),
                // The validated tip's share of the best header chain's work.
                "verificationprogress": crate::node::progress::work_share(tip.chainwork(), best.chainwork()),
                "initialblockdownload": w.resource::<Ibd>().active,
                "chainwork": hex_be(&tip.chainwork().to_be_bytes()),
                "pruned": false,
                "warnings": node_warnings(w),
            })
        })
        .await
        .map_err(gone)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn difficulty_matches_core() {
        assert_eq!(difficulty(0x1d00ffff), 1.0);
        assert!((difficulty(0x207fffff) - 4.656542373906925e-10).abs() < 1e-20);
        assert!((difficulty(0x1b0404cb) - 16_307.420938523983).abs() < 1e-6);
    }
}
