//! Target: what a JSON-RPC client controls after HTTP — the body as JSON → envelope (single object
//! or batch, `rpc::jsonrpc::parse_call`) → the method table and parameter binding (positional or
//! named, `rpc::params::bind`) → the value parsers the calls use (amounts and feerates, integers,
//! hashes, `setban`'s subnets, `addnode`'s addresses) → the reply envelope; and the same parsers on
//! the raw text. No panic; every error is one of Core's codes; a bound call has one argument per
//! declared parameter, the required ones present and every one of its declared JSON type; replies
//! have the shape of their version; round trips: an amount parsed and formatted back parses to the
//! same satoshis (any amount ≤ 21M BTC formatted parses back to itself), a subnet's display parses
//! back to itself and holds its own network, an address's display parses back to itself, a hash's
//! display is its text.

#![no_main]

use bitcoin::Txid;
use libfuzzer_sys::fuzz_target;
use oni::rpc::jsonrpc::{codes, parse_call, reply, RpcError, Version};
use oni::rpc::methods::values::{btc, parse_amount, parse_feerate, parse_hash, COIN_SAT, MAX_MONEY_SAT};
use oni::rpc::methods::{parse_node, usage, METHODS};
use oni::rpc::params::{bind, Kind};
use oni_systems::resources::Subnet;
use serde_json::Value;

/// Codes a call's input side may answer with.
const INPUT_CODES: [i32; 8] = [
    codes::INVALID_REQUEST,
    codes::METHOD_NOT_FOUND,
    codes::MISC_ERROR,
    codes::TYPE_ERROR,
    codes::INVALID_PARAMETER,
    codes::CLIENT_INVALID_IP_OR_SUBNET,
    codes::INVALID_ADDRESS_OR_KEY,
    codes::PARSE_ERROR,
];

fuzz_target!(|data: &[u8]| {
    if data.len() >= 8 {
        formatted_amount(u64::from_le_bytes(data[..8].try_into().expect("8 bytes")));
    }
    if let Ok(body) = serde_json::from_slice::<Value>(data) {
        envelope(&body);
    }
    if let Ok(text) = std::str::from_utf8(data) {
        text_parsers(text);
    }
});

/// The server's walk over a parsed body: one request object, or a batch of them.
fn envelope(body: &Value) {
    match body {
        Value::Array(items) => {
            for item in items {
                call(item);
            }
        }
        other => call(other),
    }
}

/// One request object, as far as it goes without the node.
fn call(v: &Value) {
    let (id, version, result) = match parse_call(v) {
        Ok(c) => {
            assert!(c.params.is_array() || c.params.is_object(), "params {}", c.params);
            assert_eq!(c.id.as_ref(), v.get("id"));
            assert_eq!(c.version == Version::V2, v.get("jsonrpc").and_then(Value::as_str) == Some("2.0"));
            let r = bound(&c.method, &c.params);
            (c.id, c.version, r)
        }
        Err((e, partial)) => {
            assert_eq!(e.code, codes::INVALID_REQUEST, "{e:?}");
            assert_eq!(e.http_status(), 400);
            (partial.id, partial.version, Err(e))
        }
    };
    if let Err(e) = &result {
        assert!(INPUT_CODES.contains(&e.code), "unexpected code {e:?}");
    }
    let failed = result.is_err();
    let r = reply(result, id.clone(), version);
    let o = r.as_object().expect("a reply is an object");
    assert_eq!(o.get("id"), Some(&id.unwrap_or(Value::Null)));
    match version {
        Version::V2 => {
            assert_eq!(o.get("jsonrpc"), Some(&Value::from("2.0")));
            assert_eq!(o.len(), 3, "2.0: jsonrpc, id and one of result/error: {r}");
            assert_eq!(o.contains_key("error"), failed);
        }
        Version::Legacy => {
            assert_eq!(o.len(), 3, "legacy: result, error and id: {r}");
            assert_eq!(o.get("error").is_some_and(|e| !e.is_null()), failed);
        }
    }
    // What goes on the wire reads back as the same reply.
    let text = r.to_string();
    assert_eq!(serde_json::from_str::<Value>(&text).ok().as_ref(), Some(&r), "{text}");
}

/// Binds `params` for `method` and runs the value parsers its handler would run on them.
fn bound(method: &str, params: &Value) -> Result<Value, RpcError> {
    let Some(m) = METHODS.iter().find(|m| m.name == method) else {
        return Err(RpcError::new(codes::METHOD_NOT_FOUND, "Method not found"));
    };
    let help = usage(m);
    let args = bind(params, m.params, &help)?;
    assert_eq!(args.0.len(), m.params.len());
    for (i, p) in m.params.iter().enumerate() {
        let Some(v) = args.get(i) else {
            assert!(!p.required, "{method}: required {} missing", p.name);
            continue;
        };
        match p.kind {
            Kind::Str => {
                let s = args.str(i).expect("a string was checked");
                match p.name {
                    "subnet" => {
                        let _ = subnet(s);
                    }
                    "node" | "address" => {
                        let _ = node(s);
                    }
                    "txid" | "blockhash" => {
                        let _ = hash(s);
                    }
                    _ => {}
                }
            }
            Kind::Num => {
                assert!(v.is_number());
                if let Ok(Some(n)) = args.int(i) {
                    // An integral number reads as itself.
                    assert!(v.as_i64().is_none_or(|i| i == n), "{v} read as {n}");
                }
            }
            Kind::Bool => assert!(args.bool(i).is_some()),
            Kind::Arr => assert!(v.is_array()),
            Kind::Amount => {
                assert!(v.is_number() || v.is_string());
                if let Ok(sat) = amount(v) {
                    let rate = parse_feerate(v);
                    assert_eq!(rate.is_ok(), sat < COIN_SAT, "{v}: feerate {rate:?}");
                }
            }
            Kind::NumOrBool => assert!(v.is_number() || v.is_boolean()),
        }
    }
    Ok(Value::Null)
}

/// `parse_amount`, checked: in range, and formatted back it parses to the same satoshis.
fn amount(v: &Value) -> Result<u64, RpcError> {
    let r = parse_amount(v);
    match &r {
        Ok(sat) => {
            assert!(*sat <= MAX_MONEY_SAT, "{v} parsed to {sat}");
            let out = btc(*sat);
            assert_eq!(parse_amount(&out).ok(), Some(*sat), "{v} → {sat} → {out}");
        }
        Err(e) => assert_eq!(e.code, codes::TYPE_ERROR, "{v}: {e:?}"),
    }
    r
}

/// Every amount there can be, formatted as Core writes it, parses back to itself (as a number and
/// as a string).
fn formatted_amount(raw: u64) {
    let sat = raw % (MAX_MONEY_SAT + 1);
    let v = btc(sat);
    let text = v.to_string();
    let (whole, frac) = text.split_once('.').expect("eight decimals");
    assert_eq!(frac.len(), 8, "{text}");
    assert_eq!(whole.parse::<u64>().ok(), Some(sat / COIN_SAT));
    assert_eq!(parse_amount(&v).ok(), Some(sat), "{text}");
    assert_eq!(parse_amount(&Value::String(text.clone())).ok(), Some(sat), "\"{text}\"");
}

fn subnet(s: &str) -> Result<Subnet, ()> {
    let Ok(n) = s.parse::<Subnet>() else { return Err(()) };
    let width = if n.network.is_ipv4() { 32 } else { 128 };
    assert!(n.prefix <= width, "{s} → prefix {}", n.prefix);
    assert!(n.contains(n.network), "{s} → {n} does not hold its own network");
    let shown = n.to_string();
    assert_eq!(shown.parse::<Subnet>().ok(), Some(n), "{s} → {n} does not parse back");
    let json = serde_json::to_string(&n).expect("a subnet serializes");
    assert_eq!(serde_json::from_str::<Subnet>(&json).ok(), Some(n), "{json}");
    Ok(n)
}

fn node(s: &str) -> Result<std::net::SocketAddr, RpcError> {
    let r = parse_node(s, 18444);
    match &r {
        Ok(a) => assert_eq!(parse_node(&a.to_string(), 1).ok(), Some(*a), "{s} → {a}"),
        Err(e) => assert_eq!(e.code, codes::INVALID_PARAMETER),
    }
    r
}

fn hash(s: &str) -> Result<Txid, RpcError> {
    let r = parse_hash::<Txid>(s, "txid");
    match &r {
        Ok(h) => assert!(h.to_string().eq_ignore_ascii_case(s), "{s} → {h}"),
        Err(e) => assert_eq!(e.code, codes::INVALID_PARAMETER),
    }
    r
}

/// The parsers on the body's text as it is (what `bitcoin-cli` passes on from a command line).
fn text_parsers(text: &str) {
    let as_string = amount(&Value::String(text.to_string()));
    // A JSON number's text reads as the same amount as that text in a string. Only a number
    // literal: with `arbitrary_precision`, serde_json also reads its private object form
    // (`{"$serde_json::private::Number":"8"}`) as a number, which is no number's text.
    let literal = text.trim_start().starts_with(|c: char| c == '-' || c.is_ascii_digit());
    if let Ok(n) =
        serde_json::from_str::<serde_json::Number>(text).map_err(|_| ()).and_then(|n| literal.then_some(n).ok_or(()))
    {
        let as_number = amount(&Value::Number(n));
        assert_eq!(as_number.ok(), as_string.clone().ok(), "{text} as number and as string");
    }
    // A plain decimal with at most eight places: what rust-bitcoin reads it as.
    let plain = |s: &str| !s.is_empty() && s.len() <= 12 && s.bytes().all(|b| b.is_ascii_digit());
    let simple = match text.split_once('.') {
        Some((w, f)) => plain(w) && plain(f) && f.len() <= 8,
        None => plain(text),
    };
    if simple {
        let theirs = bitcoin::Amount::from_str_in(text, bitcoin::Denomination::Bitcoin).ok().map(|a| a.to_sat());
        let theirs = theirs.filter(|s| *s <= MAX_MONEY_SAT);
        assert_eq!(as_string.ok(), theirs, "{text}: oni and rust-bitcoin disagree");
    }
    let _ = subnet(text);
    let _ = node(text);
    let _ = hash(text);
}
