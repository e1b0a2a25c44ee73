//! JSON-RPC envelopes as Bitcoin Core shapes them: 1.0 (legacy) and 2.0 requests, single or batched;
//! replies with `result`/`error`/`id` (legacy carries all three, 2.0 one of result/error plus
//! `"jsonrpc": "2.0"`); Core's error codes; and the HTTP status a failed legacy call gets (400 for an
//! invalid request, 404 for an unknown method, 500 otherwise), while 2.0 and batches answer 200.

use serde_json::{json, Map, Value};

/// Core's RPC error codes (rpc/protocol.h) that oni uses.
pub mod codes {
    /// Standard JSON-RPC: the request object is malformed.
    pub const INVALID_REQUEST: i32 = -32600;
    /// Standard JSON-RPC: no such method.
    pub const METHOD_NOT_FOUND: i32 = -32601;
    /// Standard JSON-RPC: bad parameters.
    pub const INVALID_PARAMS: i32 = -32602;
    /// Standard JSON-RPC: internal error.
    pub const INTERNAL_ERROR: i32 = -32603;
    /// Standard JSON-RPC: the body is not JSON.
    pub const PARSE_ERROR: i32 = -32700;
    /// Anything else (Core also answers wrong parameter counts with this and the help text).
    pub const MISC_ERROR: i32 = -1;
    /// A parameter of the wrong JSON type.
    pub const TYPE_ERROR: i32 = -3;
    /// A parameter with a bad value.
    pub const INVALID_PARAMETER: i32 = -8;
    /// The database (oni's store) failed.
    pub const DATABASE_ERROR: i32 = -20;
    /// Unknown block, address or key (Core's RPC_INVALID_ADDRESS_OR_KEY).
    pub const INVALID_ADDRESS_OR_KEY: i32 = -5;
    /// addnode add / setban add: already there.
    pub const CLIENT_NODE_ALREADY_ADDED: i32 = -23;
    /// addnode remove / getaddednodeinfo: not there.
    pub const CLIENT_NODE_NOT_ADDED: i32 = -24;
    /// disconnectnode: no such peer.
    pub const CLIENT_NODE_NOT_CONNECTED: i32 = -29;
    /// setban: not an IP or subnet, or not banned.
    pub const CLIENT_INVALID_IP_OR_SUBNET: i32 = -30;
}

/// An error reply: Core's code and message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RpcError {
    /// Core's code.
    pub code: i32,
    /// What went wrong.
    pub message: String,
}

impl RpcError {
    /// An error with `code`.
    pub fn new(code: i32, message: impl Into<String>) -> RpcError {
        RpcError { code, message: message.into() }
    }

    /// The error object of a reply.
    pub fn to_json(&self) -> Value {
        json!({ "code": self.code, "message": self.message })
    }

    /// The HTTP status of a failed legacy (1.0) call, as Core chooses it.
    pub fn http_status(&self) -> u16 {
        match self.code {
            codes::INVALID_REQUEST => 400,
            codes::METHOD_NOT_FOUND => 404,
            _ => 500,
        }
    }
}

/// Which JSON-RPC version a request spoke.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Version {
    /// 1.0 / 1.1: errors are HTTP errors too; replies carry result, error and id.
    Legacy,
    /// 2.0: errors in a 200 reply; notifications (no id) get no reply.
    V2,
}

/// A parsed request object.
#[derive(Clone, Debug)]
pub struct Call {
    /// The method name.
    pub method: String,
    /// `params`: an array, an object (named), or empty.
    pub params: Value,
    /// `id`, if the request had one (`null` counts as present).
    pub id: Option<Value>,
    /// The version spoken.
    pub version: Version,
}

impl Call {
    /// A 2.0 request without an id: executed, never answered.
    pub fn is_notification(&self) -> bool {
        self.id.is_none() && self.version == Version::V2
    }
}

/// What could be learned of a request before it failed to parse: its id and version, so the error
/// reply carries them.
#[derive(Debug)]
pub struct Partial {
    /// The id, if found.
    pub id: Option<Value>,
    /// The version, if found.
    pub version: Version,
}

/// Parses one request object as Core's `JSONRPCRequest::parse` does.
pub fn parse_call(v: &Value) -> Result<Call, (RpcError, Partial)> {
    let mut partial = Partial { id: None, version: Version::Legacy };
    let Some(obj) = v.as_object() else {
        return Err((RpcError::new(codes::INVALID_REQUEST, "Invalid Request object"), partial));
    };
    let fail = |msg: &str, p: Partial| Err((RpcError::new(codes::INVALID_REQUEST, msg), p));
    match obj.get("jsonrpc") {
        None | Some(Value::Null) => {}
        Some(Value::String(s)) if s == "1.0" => {}
        Some(Value::String(s)) if s == "2.0" => partial.version = Version::V2,
        Some(Value::String(_)) => return fail("JSON-RPC version not supported", partial),
        Some(_) => return fail("jsonrpc field must be a string", partial),
    }
    partial.id = obj.get("id").cloned();
    let method = match obj.get("method") {
        None | Some(Value::Null) => return fail("Missing method", partial),
        Some(Value::String(m)) => m.clone(),
        Some(_) => return fail("Method must be a string", partial),
    };
    let params = match obj.get("params") {
        None | Some(Value::Null) => Value::Array(Vec::new()),
        Some(p @ (Value::Array(_) | Value::Object(_))) => p.clone(),
        Some(_) => return fail("Params must be an array or object", partial),
    };
    Ok(Call { method, params, id: partial.id, version: partial.version })
}

/// A reply object for `id` in `version`'s shape.
pub fn reply(result: Result<Value, RpcError>, id: Option<Value>, version: Version) -> Value {
    let id = id.unwrap_or(Value::Null);
    let mut o = Map::new();
    match version {
        Version::V2 => {
            o.insert("jsonrpc".into(), Value::from("2.0"));
            match result {
                Ok(r) => o.insert("result".into(), r),
                Err(e) => o.insert("error".into(), e.to_json()),
            };
        }
        Version::Legacy => {
            let (r, e) = match result {
                Ok(r) => (r, Value::Null),
                Err(e) => (Value::Null, e.to_json()),
            };
            o.insert("result".into(), r);
            o.insert("error".into(), e);
        }
    }
    o.insert("id".into(), id);
    Value::Object(o)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_and_shapes_follow_core() {
        let c = parse_call(&json!({"method": "uptime", "id": 1})).unwrap();
        assert_eq!(c.version, Version::Legacy);
        assert_eq!(reply(Ok(json!(5)), c.id, c.version), json!({"result": 5, "error": null, "id": 1}));
        let c = parse_call(&json!({"jsonrpc": "2.0", "method": "uptime", "id": "x"})).unwrap();
        assert_eq!(reply(Ok(json!(5)), c.id.clone(), c.version), json!({"jsonrpc": "2.0", "result": 5, "id": "x"}));
        let e = RpcError::new(codes::METHOD_NOT_FOUND, "Method not found");
        assert_eq!(
            reply(Err(e.clone()), c.id, c.version),
            json!({"jsonrpc": "2.0", "error": {"code": -32601, "message": "Method not found"}, "id": "x"})
        );
        assert_eq!(e.http_status(), 404);
        assert!(parse_call(&json!({"jsonrpc": "2.0", "method": "x"})).unwrap().is_notification());
        assert!(!parse_call(&json!({"method": "x"})).unwrap().is_notification(), "1.0 has no notifications");
    }

    #[test]
    fn malformed_requests_are_invalid_requests_with_their_id() {
        for (req, msg) in [
            (json!([1]), "Invalid Request object"),
            (json!({"id": 3}), "Missing method"),
            (json!({"id": 3, "method": 7}), "Method must be a string"),
            (json!({"id": 3, "method": "x", "params": 1}), "Params must be an array or object"),
            (json!({"id": 3, "method": "x", "jsonrpc": "3.0"}), "JSON-RPC version not supported"),
            (json!({"id": 3, "method": "x", "jsonrpc": 2}), "jsonrpc field must be a string"),
        ] {
            let (e, p) = parse_call(&req).err().unwrap();
            assert_eq!((e.code, e.message.as_str()), (codes::INVALID_REQUEST, msg));
            assert_eq!(e.http_status(), 400);
            if req.is_object() && msg != "jsonrpc field must be a string" && msg != "JSON-RPC version not supported" {
                assert_eq!(p.id, Some(json!(3)));
            }
        }
    }
}
