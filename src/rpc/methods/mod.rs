//! The method table: every call oni answers, with Core's name, parameter names and a help text, and
//! the dispatcher that binds parameters and runs a call. Calls read or change the world through
//! [`crate::node::NodeHandle::with_world_async`], between two ticks.

mod bans;
mod chain;
mod mempool;
mod net;
mod package;
mod rawtx;
pub mod values;

/// `addnode`'s address parser, for the `rpc_json` fuzz target.
#[doc(hidden)]
pub use net::parse_node;

use super::jsonrpc::{codes, RpcError};
use super::params::{bind, opt, req, Args, Kind, Param};
use crate::node::NodeHandle;
use oni_systems::wire::Network;
use serde_json::{json, Value};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

/// What every call may use.
pub struct Ctx {
    /// The node.
    pub node: NodeHandle,
    /// Its network.
    pub network: Network,
    /// When the node started (uptime).
    pub started: Instant,
    /// Set by `stop`, so the CLI tells a requested stop from a crash.
    pub stop_requested: Arc<AtomicBool>,
}

/// One method.
pub struct Method {
    /// Core's name.
    pub name: &'static str,
    /// Help category, as Core groups them.
    pub category: &'static str,
    /// Parameters in positional order.
    pub params: &'static [Param],
    /// One-paragraph help.
    pub help: &'static str,
}

use Kind::{Amount, Arr, Bool, Num, NumOrBool, Str};

/// Every method, in help order.
pub const METHODS: &[Method] = &[
    Method { name: "getbestblockhash", category: "Blockchain", params: &[], help: "Returns the hash of the best (tip) block in the most-work fully-validated chain." },
    Method { name: "getblockchaininfo", category: "Blockchain", params: &[], help: "Returns an object containing various state info regarding blockchain processing." },
    Method { name: "getblockcount", category: "Blockchain", params: &[], help: "Returns the height of the most-work fully-validated chain." },
    Method { name: "getblockhash", category: "Blockchain", params: &[req("height", Num)], help: "Returns hash of block in best-block-chain at height provided." },
    Method { name: "getblockheader", category: "Blockchain", params: &[req("blockhash", Str), opt("verbose", Bool)], help: "Returns information about the block header with the given hash." },
    Method { name: "getmempoolentry", category: "Blockchain", params: &[req("txid", Str)], help: "Returns mempool data for given transaction." },
    Method { name: "getmempoolinfo", category: "Blockchain", params: &[], help: "Returns details on the active state of the TX memory pool." },
    Method { name: "getrawmempool", category: "Blockchain", params: &[opt("verbose", Bool), opt("mempool_sequence", Bool)], help: "Returns all transaction ids in memory pool as a json array of string transaction ids, in arrival order; verbose: an object of entries keyed by txid." },
    Method { name: "testmempoolaccept", category: "Blockchain", params: &[req("rawtxs", Arr), opt("maxfeerate", Amount)], help: "Returns result of mempool acceptance tests indicating if raw transaction(s) (serialized, hex-encoded) would be accepted by mempool. Several are tested as a package (parents first, per-transaction fees); maxfeerate in BTC/kvB, default 0.10, 0 for none." },
    Method { name: "dumpcomponents", category: "Control", params: &[], help: "Returns every peer entity with all its components and the node-wide resources (oni)." },
    Method { name: "help", category: "Control", params: &[opt("command", Str)], help: "List all commands, or get help for a specified command." },
    Method { name: "stop", category: "Control", params: &[], help: "Request a graceful shutdown of oni." },
    Method { name: "uptime", category: "Control", params: &[], help: "Returns the total uptime of the server, in seconds." },
    Method { name: "addnode", category: "Network", params: &[req("node", Str), req("command", Str), opt("v2transport", Bool)], help: "Attempts to add or remove a node from the addnode list, or to try a connection to a node once. command: 'add' | 'remove' | 'onetry'." },
    Method { name: "clearbanned", category: "Network", params: &[], help: "Clear all banned IPs." },
    Method { name: "disconnectnode", category: "Network", params: &[opt("address", Str), opt("nodeid", Num)], help: "Immediately disconnects from the specified peer node. Give either address or nodeid, not both." },
    Method { name: "getaddednodeinfo", category: "Network", params: &[opt("node", Str)], help: "Returns information about the given added node, or all added nodes." },
    Method { name: "getconnectioncount", category: "Network", params: &[], help: "Returns the number of connections to other nodes." },
    Method { name: "getnettotals", category: "Network", params: &[], help: "Returns information about network traffic, including bytes in, bytes out, and current system time." },
    Method { name: "getnetworkinfo", category: "Network", params: &[], help: "Returns an object containing various state info regarding P2P networking." },
    Method { name: "getpeerinfo", category: "Network", params: &[], help: "Returns data about each connected network peer as a json array of objects." },
    Method { name: "listbanned", category: "Network", params: &[], help: "List all manually banned IPs/Subnets." },
    Method { name: "setban", category: "Network", params: &[req("subnet", Str), req("command", Str), opt("bantime", Num), opt("absolute", Bool)], help: "Attempts to add or remove an IP/Subnet from the banned list. command: 'add' | 'remove'; bantime in seconds (0 or absent: 24 h), absolute: bantime is a unix time." },
    Method { name: "getrawtransaction", category: "Rawtransactions", params: &[req("txid", Str), opt("verbosity", NumOrBool)], help: "Return the raw transaction data of a transaction in the mempool (oni keeps no transaction index). verbosity 0: hex; 1 or true: a JSON object." },
    Method { name: "sendrawtransaction", category: "Rawtransactions", params: &[req("hexstring", Str), opt("maxfeerate", Amount), opt("maxburnamount", Amount)], help: "Submit a raw transaction (serialized, hex-encoded) to the local node and network. maxfeerate in BTC/kvB (default 0.10, 0 for none); maxburnamount in BTC (default 0)." },
];

/// The usage text of a method: its signature and help.
pub fn usage(m: &Method) -> String {
    let mut sig = m.name.to_string();
    for p in m.params {
        if p.required {
            sig.push_str(&format!(" \"{}\"", p.name));
        } else {
            sig.push_str(&format!(" ( \"{}\" )", p.name));
        }
    }
    format!("{sig}\n\n{}\n", m.help)
}

fn help(args: &Args) -> Value {
    if let Some(name) = args.str(0) {
        return match METHODS.iter().find(|m| m.name == name) {
            Some(m) => Value::from(usage(m)),
            None => Value::from(format!("help: unknown command: {name}")),
        };
    }
    let mut out = String::new();
    let mut category = "";
    for m in METHODS {
        if m.category != category {
            if !category.is_empty() {
                out.push('\n');
            }
            category = m.category;
            out.push_str(&format!("== {category} ==\n"));
        }
        let sig = usage(m);
        out.push_str(sig.lines().next().unwrap_or(m.name));
        out.push('\n');
    }
    Value::from(out.trim_end().to_string())
}

/// Maps a gone node to an error (the node stopped while the call waited).
pub(crate) fn gone(_: crate::node::NodeGone) -> RpcError {
    RpcError::new(codes::MISC_ERROR, "the node is shutting down")
}

/// The node's current warnings (faults it is retrying through), as Core 28+ lists them in
/// `getblockchaininfo` and `getnetworkinfo`: an array of strings, empty when all is well.
pub(crate) fn node_warnings(world: &bevy_ecs::world::World) -> Value {
    let list = world.get_resource::<crate::node::faults::NodeWarnings>().map(|w| w.list()).unwrap_or_default();
    json!(list)
}

/// Runs one call.
pub async fn dispatch(ctx: &Ctx, method: &str, params: &Value) -> Result<Value, RpcError> {
    let Some(m) = METHODS.iter().find(|m| m.name == method) else {
        return Err(RpcError::new(codes::METHOD_NOT_FOUND, "Method not found"));
    };
    let args = bind(params, m.params, &usage(m))?;
    let bad_command = || RpcError::new(codes::MISC_ERROR, usage(m));
    match method {
        "help" => Ok(help(&args)),
        "uptime" => Ok(json!(ctx.started.elapsed().as_secs())),
        "stop" => {
            ctx.stop_requested.store(true, Ordering::SeqCst);
            let node = ctx.node.clone();
            // The answer goes out first; the node stops right after (Core does the same).
            std::thread::spawn(move || {
                std::thread::sleep(std::time::Duration::from_millis(200));
                node.shutdown();
            });
            Ok(json!("oni stopping"))
        }
        "dumpcomponents" => {
            let dump = ctx.node.with_world_async(crate::dump::Dump::capture).await.map_err(gone)?;
            serde_json::to_value(dump).map_err(|e| RpcError::new(codes::INTERNAL_ERROR, e.to_string()))
        }
        "getpeerinfo" => net::getpeerinfo(ctx).await,
        "getnettotals" => net::getnettotals(ctx).await,
        "getnetworkinfo" => net::getnetworkinfo(ctx).await,
        "getconnectioncount" => net::getconnectioncount(ctx).await,
        "disconnectnode" => net::disconnectnode(ctx, &args).await,
        "addnode" => net::addnode(ctx, &args, bad_command).await,
        "getaddednodeinfo" => net::getaddednodeinfo(ctx, &args).await,
        "setban" => bans::setban(ctx, &args, bad_command).await,
        "listbanned" => bans::listbanned(ctx).await,
        "clearbanned" => bans::clearbanned(ctx).await,
        "getblockcount" => chain::getblockcount(ctx).await,
        "getblockchaininfo" => chain::getblockchaininfo(ctx).await,
        "getbestblockhash" => chain::getbestblockhash(ctx).await,
        "getblockhash" => chain::getblockhash(ctx, &args).await,
        "getblockheader" => chain::getblockheader(ctx, &args).await,
        "getmempoolinfo" => mempool::getmempoolinfo(ctx).await,
        "getrawmempool" => mempool::getrawmempool(ctx, &args).await,
        "getmempoolentry" => mempool::getmempoolentry(ctx, &args).await,
        "sendrawtransaction" => rawtx::sendrawtransaction(ctx, &args).await,
        "testmempoolaccept" => rawtx::testmempoolaccept(ctx, &args).await,
        "getrawtransaction" => rawtx::getrawtransaction(ctx, &args).await,
        _ => Err(RpcError::new(codes::METHOD_NOT_FOUND, "Method not found")),
    }
}

#[cfg(test)]
mod readme_tests {
    use super::METHODS;
    use std::collections::BTreeSet;

    /// The README's list of calls (from "Calls:" to the end of that paragraph, what is in
    /// parentheses being about a call's fields) names exactly the methods of the table: a call
    /// added or removed on one side only fails here.
    #[test]
    fn the_readmes_rpc_list_is_the_method_table() {
        let readme = include_str!("../../../README.md");
        let start = readme.find("Calls: ").expect("README has a `Calls:` list");
        let end = readme[start..].find("\n- ").map_or(readme.len(), |e| start + e);
        let mut depth = 0i32;
        let outside: String = readme[start..end]
            .chars()
            .filter(|&c| {
                depth += i32::from(c == '(') - i32::from(c == ')');
                depth == 0 && c != ')'
            })
            .collect();
        let listed: BTreeSet<&str> = outside
            .split('`')
            .skip(1)
            .step_by(2)
            .filter(|w| !w.is_empty() && w.bytes().all(|b| b.is_ascii_lowercase()))
            .collect();
        let table: BTreeSet<&str> = METHODS.iter().map(|m| m.name).collect();
        let missing: Vec<_> = table.difference(&listed).collect();
        let unknown: Vec<_> = listed.difference(&table).collect();
        assert!(missing.is_empty() && unknown.is_empty(), "not in README: {missing:?}; not a method: {unknown:?}");
    }
}
