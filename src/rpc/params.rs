//! Method parameters as Core takes them: positional (an array) or named (an object, `bitcoin-cli
//! -named`), mapped onto one list by each method's declared names; wrong counts answer with the
//! method's help (code -1, as Core's), unknown names with -8, wrong JSON types with -3.

use super::jsonrpc::{codes, RpcError};
use serde_json::Value;

/// The JSON type a parameter takes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// A string.
    Str,
    /// A number.
    Num,
    /// A boolean.
    Bool,
    /// An array (`testmempoolaccept`'s raw transactions).
    Arr,
    /// An amount: a number or a numeric string, as Core's `AmountFromValue` takes it.
    Amount,
    /// A verbosity: a number, or a boolean for older callers (`getrawtransaction`).
    NumOrBool,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Str => "string",
            Kind::Num => "number",
            Kind::Bool => "bool",
            Kind::Arr => "array",
            Kind::Amount => "number or string",
            Kind::NumOrBool => "number or bool",
        }
    }

    fn accepts(self, v: &Value) -> bool {
        match self {
            Kind::Str => v.is_string(),
            Kind::Num => v.is_number(),
            Kind::Bool => v.is_boolean(),
            Kind::Arr => v.is_array(),
            Kind::Amount => v.is_number() || v.is_string(),
            Kind::NumOrBool => v.is_number() || v.is_boolean(),
        }
    }
}

/// UniValue's type names, used in Core's type errors.
fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "bool",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// One declared parameter.
#[derive(Clone, Copy, Debug)]
pub struct Param {
    /// Its name (for named calls and help).
    pub name: &'static str,
    /// Its JSON type.
    pub kind: Kind,
    /// Whether a call must give it.
    pub required: bool,
}

/// Shorthand for a required parameter.
pub const fn req(name: &'static str, kind: Kind) -> Param {
    Param { name, kind, required: true }
}

/// Shorthand for an optional parameter.
pub const fn opt(name: &'static str, kind: Kind) -> Param {
    Param { name, kind, required: false }
}

/// A call's arguments, positional, `Null` where not given.
#[derive(Debug, Default)]
pub struct Args(pub Vec<Value>);

impl Args {
    /// Argument `i`, `None` when absent or null.
    pub fn get(&self, i: usize) -> Option<&Value> {
        self.0.get(i).filter(|v| !v.is_null())
    }

    /// A string argument (its type was checked).
    pub fn str(&self, i: usize) -> Option<&str> {
        self.get(i).and_then(Value::as_str)
    }

    /// An integer argument; a non-integral number is an invalid parameter.
    pub fn int(&self, i: usize) -> Result<Option<i64>, RpcError> {
        let Some(v) = self.get(i) else { return Ok(None) };
        v.as_i64()
            .or_else(|| v.as_f64().filter(|f| f.fract() == 0.0 && f.abs() < 9e15).map(|f| f as i64))
            .map(Some)
            .ok_or_else(|| RpcError::new(codes::TYPE_ERROR, format!("JSON number {v} is not an integer")))
    }

    /// A boolean argument.
    pub fn bool(&self, i: usize) -> Option<bool> {
        self.get(i).and_then(Value::as_bool)
    }
}

/// Maps `params` (array or object) onto `spec`, checking count, names and types. `help` is the
/// method's help text, Core's answer to a wrong count.
pub fn bind(params: &Value, spec: &[Param], help: &str) -> Result<Args, RpcError> {
    let usage = || RpcError::new(codes::MISC_ERROR, help.to_string());
    let mut args = match params {
        Value::Array(a) => {
            if a.len() > spec.len() {
                return Err(usage());
            }
            a.clone()
        }
        Value::Object(o) => {
            let mut out = vec![Value::Null; spec.len()];
            for (name, v) in o {
                let Some(i) = spec.iter().position(|p| p.name == name) else {
                    return Err(RpcError::new(codes::INVALID_PARAMETER, format!("Unknown named parameter {name}")));
                };
                out[i] = v.clone();
            }
            while out.last().is_some_and(Value::is_null) {
                out.pop();
            }
            out
        }
        _ => Vec::new(),
    };
    for (i, p) in spec.iter().enumerate() {
        match args.get(i) {
            None | Some(Value::Null) if p.required => return Err(usage()),
            None | Some(Value::Null) => {}
            Some(v) if !p.kind.accepts(v) => {
                return Err(RpcError::new(
                    codes::TYPE_ERROR,
                    format!(
                        "JSON value of type {} for field {} is not of expected type {}",
                        type_name(v),
                        p.name,
                        p.kind.name()
                    ),
                ))
            }
            Some(_) => {}
        }
    }
    args.resize(spec.len(), Value::Null);
    Ok(Args(args))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const SPEC: &[Param] = &[req("subnet", Kind::Str), req("command", Kind::Str), opt("bantime", Kind::Num)];

    #[test]
    fn positional_and_named_bind_to_the_same_args() {
        let a = bind(&json!(["1.2.3.4", "add", 60]), SPEC, "help").unwrap();
        let b = bind(&json!({"bantime": 60, "command": "add", "subnet": "1.2.3.4"}), SPEC, "help").unwrap();
        assert_eq!(a.0, b.0);
        assert_eq!(a.int(2).unwrap(), Some(60));
        let c = bind(&json!({"command": "add", "subnet": "1.2.3.4"}), SPEC, "help").unwrap();
        assert_eq!(c.get(2), None);
    }

    #[test]
    fn counts_names_and_types_are_checked() {
        let e = bind(&json!(["1.2.3.4"]), SPEC, "usage text").unwrap_err();
        assert_eq!((e.code, e.message.as_str()), (codes::MISC_ERROR, "usage text"));
        let e = bind(&json!(["a", "b", 1, 2]), SPEC, "usage text").unwrap_err();
        assert_eq!(e.code, codes::MISC_ERROR);
        let e = bind(&json!({"subnet": "a", "command": "add", "nope": 1}), SPEC, "h").unwrap_err();
        assert_eq!((e.code, e.message.as_str()), (codes::INVALID_PARAMETER, "Unknown named parameter nope"));
        let e = bind(&json!(["a", "add", "60"]), SPEC, "h").unwrap_err();
        assert_eq!(e.code, codes::TYPE_ERROR);
        assert!(e.message.contains("bantime"), "{}", e.message);
        let a = bind(&json!(["a", "add", 1.5]), SPEC, "h").unwrap();
        assert_eq!(a.int(2).unwrap_err().code, codes::TYPE_ERROR);
    }
}
