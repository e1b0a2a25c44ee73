//! Values as Core reads and writes them on its RPC: amounts in BTC as JSON numbers with exactly
//! eight decimals (feerates in BTC/kvB the same way), amounts read from a number or a string, and
//! 256-bit hashes read from 64 hex characters with Core's two error messages.

use crate::rpc::jsonrpc::{codes, RpcError};
use serde_json::{Number, Value};
use std::str::FromStr;

/// Satoshis per bitcoin.
pub const COIN_SAT: u64 = 100_000_000;
/// Most satoshis that can exist (Core's `MAX_MONEY`).
pub const MAX_MONEY_SAT: u64 = 21_000_000 * COIN_SAT;

/// `sat` as a BTC number with eight decimals (Core's `ValueFromAmount`): `0.00001000`. A feerate in
/// sat/kvB gives BTC/kvB the same way.
pub fn btc(sat: u64) -> Value {
    let text = format!("{}.{:08}", sat / COIN_SAT, sat % COIN_SAT);
    // With serde_json's arbitrary precision the digits are kept as written.
    Number::from_str(&text).map(Value::Number).unwrap_or(Value::Null)
}

/// An amount in BTC (a number or a numeric string, at most eight decimals) in satoshis, with
/// Core's errors: `Invalid amount` for anything unparsable, `Amount out of range` beyond 0..=21M.
pub fn parse_amount(v: &Value) -> Result<u64, RpcError> {
    let text = match v {
        Value::Number(n) => n.to_string(),
        Value::String(s) => s.clone(),
        _ => return Err(RpcError::new(codes::TYPE_ERROR, "Amount is not a number or string")),
    };
    let invalid = || RpcError::new(codes::TYPE_ERROR, "Invalid amount");
    let out_of_range = || RpcError::new(codes::TYPE_ERROR, "Amount out of range");
    let t = text.trim();
    let (negative, t) = match t.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, t),
    };
    // An exponent (JSON writers use one for small numbers: 1e-08) moves the decimal point.
    let (mantissa, exp) = match t.split_once(['e', 'E']) {
        Some((m, e)) => (m, e.parse::<i32>().ok().filter(|e| e.abs() <= 18).ok_or_else(invalid)?),
        None => (t, 0),
    };
    let (w, f) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    let digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    if w.is_empty() && f.is_empty() || !digits(w) || !digits(f) {
        return Err(invalid());
    }
    let all = format!("{w}{f}");
    let point = w.len() as i32 + exp;
    let (whole, frac) = if point <= 0 {
        (String::new(), format!("{}{all}", "0".repeat((-point) as usize)))
    } else if point as usize >= all.len() {
        (format!("{all}{}", "0".repeat(point as usize - all.len())), String::new())
    } else {
        (all[..point as usize].to_string(), all[point as usize..].to_string())
    };
    let whole = whole.trim_start_matches('0');
    if whole.len() > 10 {
        return Err(out_of_range());
    }
    // Trailing zeros past eight places are harmless; other digits there are not.
    let frac = frac.trim_end_matches('0');
    if frac.len() > 8 {
        return Err(invalid());
    }
    let whole_sat = whole.parse::<u64>().unwrap_or(0).checked_mul(COIN_SAT).ok_or_else(out_of_range)?;
    let frac_sat = if frac.is_empty() { 0 } else { format!("{frac:0<8}").parse::<u64>().map_err(|_| invalid())? };
    let sat = whole_sat + frac_sat;
    if negative && sat > 0 || sat > MAX_MONEY_SAT {
        return Err(out_of_range());
    }
    Ok(sat)
}

/// A feerate argument in BTC/kvB, as sat/kvB; 1 BTC/kvB or more is refused as Core refuses it.
pub fn parse_feerate(v: &Value) -> Result<u64, RpcError> {
    let rate = parse_amount(v)?;
    if rate >= COIN_SAT {
        return Err(RpcError::new(
            codes::INVALID_PARAMETER,
            "Fee rates larger than or equal to 1BTC/kvB are not accepted",
        ));
    }
    Ok(rate)
}

/// A hash parameter named `name` (64 hex characters, shown byte-reversed as Core shows them).
pub fn parse_hash<H: FromStr>(text: &str, name: &str) -> Result<H, RpcError> {
    if text.len() != 64 {
        return Err(RpcError::new(
            codes::INVALID_PARAMETER,
            format!("{name} must be of length 64 (not {}, for '{text}')", text.len()),
        ));
    }
    match text.bytes().all(|b| b.is_ascii_hexdigit()).then(|| H::from_str(text).ok()).flatten() {
        Some(h) => Ok(h),
        None => {
            Err(RpcError::new(codes::INVALID_PARAMETER, format!("{name} must be hexadecimal string (not '{text}')")))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn amounts_go_out_with_eight_decimals() {
        assert_eq!(btc(1_000).to_string(), "0.00001000");
        assert_eq!(btc(0).to_string(), "0.00000000");
        assert_eq!(btc(2_100_000_000_000_000).to_string(), "21000000.00000000");
        assert_eq!(btc(123_456_789).to_string(), "1.23456789");
    }

    #[test]
    fn amounts_come_in_as_core_reads_them() {
        assert_eq!(parse_amount(&json!(0.1)).unwrap(), 10_000_000);
        assert_eq!(parse_amount(&json!("0.00000001")).unwrap(), 1);
        assert_eq!(parse_amount(&json!(0)).unwrap(), 0);
        assert_eq!(parse_amount(&json!("1.100000000")).unwrap(), 110_000_000);
        assert_eq!(parse_amount(&json!(0.00000001)).unwrap(), 1, "written 1e-8");
        assert_eq!(parse_amount(&json!("1E3")).unwrap(), 100_000_000_000);
        assert_eq!(parse_amount(&json!("0.5e-8")).unwrap_err().message, "Invalid amount");
        for bad in [json!("0.000000001"), json!("abc"), json!(""), json!("1e"), json!("."), json!("1.2.3")] {
            assert_eq!(parse_amount(&bad).unwrap_err().message, "Invalid amount", "{bad}");
        }
        for bad in [json!(-1), json!("21000000.00000001")] {
            assert_eq!(parse_amount(&bad).unwrap_err().message, "Amount out of range", "{bad}");
        }
        assert_eq!(parse_amount(&json!(true)).unwrap_err().code, codes::TYPE_ERROR);
        assert_eq!(parse_feerate(&json!(1)).unwrap_err().code, codes::INVALID_PARAMETER);
        assert_eq!(parse_feerate(&json!(0.99999999)).unwrap(), 99_999_999);
    }

    #[test]
    fn hashes_are_checked_for_length_then_hex() {
        let e = parse_hash::<bitcoin::Txid>("abc", "txid").unwrap_err();
        assert_eq!(e.message, "txid must be of length 64 (not 3, for 'abc')");
        let e = parse_hash::<bitcoin::Txid>(&"z".repeat(64), "txid").unwrap_err();
        assert!(e.message.starts_with("txid must be hexadecimal string"), "{}", e.message);
        assert!(parse_hash::<bitcoin::Txid>(&"ab".repeat(32), "txid").is_ok());
    }
}
