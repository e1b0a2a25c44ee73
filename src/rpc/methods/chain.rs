//! Chain calls. The world knows only its tip height (`ChainTip`) until the header tree lands, so
//! `getblockcount` answers from it and the calls that need hashes or headers answer a clear error
//! rather than anything made up; each becomes a lookup here once the header tree is a resource.

use super::{gone, Ctx};
use crate::rpc::jsonrpc::{codes, RpcError};
use crate::rpc::params::Args;
use oni_systems::resources::ChainTip;
use serde_json::{json, Value};

/// Why the hash-based chain calls cannot answer yet.
pub const NOT_AVAILABLE: &str = "not available: headers sync not implemented";

/// `getblockcount`: the tip height.
pub async fn getblockcount(ctx: &Ctx) -> Result<Value, RpcError> {
    let h = ctx.node.with_world_async(|w| w.resource::<ChainTip>().height).await.map_err(gone)?;
    Ok(json!(h))
}

/// `getblockchaininfo`, `getbestblockhash`, `getblockhash`, `getblockheader`: parameters are
/// checked as Core would (a negative height is out of range), then the honest answer is an error.
pub fn unavailable(method: &str, args: &Args) -> Result<Value, RpcError> {
    if method == "getblockhash" && args.int(0)?.is_some_and(|h| h < 0) {
        return Err(RpcError::new(codes::INVALID_PARAMETER, "Block height out of range"));
    }
    if method == "getblockheader" {
        let hash = args.str(0).unwrap_or("");
        if hash.len() != 64 || !hash.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(RpcError::new(
                codes::INVALID_PARAMETER,
                format!("blockhash must be of length 64 (not {}, for '{hash}')", hash.len()),
            ));
        }
    }
    Err(RpcError::new(codes::MISC_ERROR, NOT_AVAILABLE))
}
