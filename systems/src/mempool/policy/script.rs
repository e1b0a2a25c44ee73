//! Just enough script reading for policy: Core's opcode parser (pushes with their data), push-only
//! tests, output-type classification (Core's Solver), sigop counting, witness-program detection,
//! and the stack a push-only scriptSig leaves (to find a P2SH redeem script). Works on raw bytes so
//! the rules are Core's exactly, whatever rust-bitcoin's helpers decide at the edges.

/// OP_0 / OP_FALSE.
pub const OP_0: u8 = 0x00;
const OP_PUSHDATA1: u8 = 0x4c;
const OP_PUSHDATA2: u8 = 0x4d;
const OP_PUSHDATA4: u8 = 0x4e;
const OP_1NEGATE: u8 = 0x4f;
const OP_RESERVED: u8 = 0x50;
/// OP_1 / OP_TRUE.
pub const OP_1: u8 = 0x51;
/// OP_16, the last opcode counted as a push.
pub const OP_16: u8 = 0x60;
/// OP_RETURN: the script is unspendable.
pub const OP_RETURN: u8 = 0x6a;
const OP_DUP: u8 = 0x76;
const OP_EQUAL: u8 = 0x87;
const OP_EQUALVERIFY: u8 = 0x88;
const OP_HASH160: u8 = 0xa9;
/// OP_CHECKSIG.
pub const OP_CHECKSIG: u8 = 0xac;
const OP_CHECKSIGVERIFY: u8 = 0xad;
/// OP_CHECKMULTISIG.
pub const OP_CHECKMULTISIG: u8 = 0xae;
const OP_CHECKMULTISIGVERIFY: u8 = 0xaf;

/// Largest script the interpreter runs; longer ones are unspendable.
pub const MAX_SCRIPT_BYTES: usize = 10_000;
/// Largest element a push may put on the stack.
pub const MAX_SCRIPT_ELEMENT_BYTES: usize = 520;
/// Stack depth limit of the interpreter.
pub const MAX_STACK_ITEMS: usize = 1_000;
/// Keys a CHECKMULTISIG may name (and what an inaccurate count charges for one).
pub const MAX_PUBKEYS_PER_MULTISIG: u32 = 20;

/// One parsed opcode and the data it pushes (empty for non-push opcodes and OP_n).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Op<'a> {
    /// The opcode byte.
    pub opcode: u8,
    /// Pushed bytes, for OP_0 and the data pushes.
    pub data: &'a [u8],
}

/// Iterates a script's opcodes the way Core's parser does: yields `Err(())` once on a push that runs
/// past the end, then stops.
pub struct Ops<'a> {
    script: &'a [u8],
    pos: usize,
    failed: bool,
}

/// The opcodes of `script`.
pub fn ops(script: &[u8]) -> Ops<'_> {
    Ops { script, pos: 0, failed: false }
}

impl<'a> Iterator for Ops<'a> {
    type Item = Result<Op<'a>, ()>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed || self.pos >= self.script.len() {
            return None;
        }
        let rest = &self.script[self.pos..];
        let opcode = rest[0];
        let (header, len) = match opcode {
            0..=0x4b => (1usize, opcode as usize),
            OP_PUSHDATA1 => (2, rest.get(1).map(|b| *b as usize).unwrap_or(usize::MAX)),
            OP_PUSHDATA2 => {
                (3, rest.get(1..3).map(|b| u16::from_le_bytes([b[0], b[1]]) as usize).unwrap_or(usize::MAX))
            }
            OP_PUSHDATA4 => {
                (5, rest.get(1..5).map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize).unwrap_or(usize::MAX))
            }
            _ => {
                self.pos += 1;
                return Some(Ok(Op { opcode, data: &[] }));
            }
        };
        match header.checked_add(len).filter(|end| *end <= rest.len()) {
            Some(end) => {
                self.pos += end;
                Some(Ok(Op { opcode, data: &rest[header..end] }))
            }
            None => {
                self.failed = true;
                Some(Err(()))
            }
        }
    }
}

/// Core's IsPushOnly: every opcode parses and is at most OP_16 (OP_RESERVED included, as in Core).
pub fn is_push_only(script: &[u8]) -> bool {
    ops(script).all(|op| matches!(op, Ok(op) if op.opcode <= OP_16))
}

/// Provably unspendable: starts with OP_RETURN or is longer than the interpreter accepts.
pub fn is_unspendable(script: &[u8]) -> bool {
    script.first() == Some(&OP_RETURN) || script.len() > MAX_SCRIPT_BYTES
}

/// Pay-to-script-hash: `OP_HASH160 <20 bytes> OP_EQUAL`.
pub fn is_p2sh(script: &[u8]) -> bool {
    script.len() == 23 && script[0] == OP_HASH160 && script[1] == 0x14 && script[22] == OP_EQUAL
}

/// Pay-to-anchor: the witness v1 program `4e73`, spendable by anyone with an empty witness.
pub fn is_p2a(script: &[u8]) -> bool {
    script == [OP_1, 0x02, 0x4e, 0x73]
}

/// `(version, program)` when the script is a witness program: a version opcode then one push of 2..=40 bytes.
pub fn witness_program(script: &[u8]) -> Option<(u8, &[u8])> {
    if !(4..=42).contains(&script.len()) {
        return None;
    }
    let version = match script[0] {
        OP_0 => 0,
        OP_1..=OP_16 => script[0] - OP_1 + 1,
        _ => return None,
    };
    (script[1] as usize + 2 == script.len()).then(|| (version, &script[2..]))
}

/// Core's output-type classification.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ScriptType {
    /// None of the kinds below.
    NonStandard,
    /// `<pubkey> OP_CHECKSIG`.
    PubKey,
    /// P2PKH.
    PubKeyHash,
    /// P2SH.
    ScriptHash,
    /// Bare `m <keys> n OP_CHECKMULTISIG` (n ≤ 20).
    Multisig {
        /// Signatures required.
        required: u8,
        /// Keys named.
        keys: u8,
    },
    /// `OP_RETURN` followed by pushes only.
    NullData,
    /// Pay-to-anchor.
    Anchor,
    /// P2WPKH.
    WitnessV0KeyHash,
    /// P2WSH.
    WitnessV0ScriptHash,
    /// P2TR.
    WitnessV1Taproot,
    /// A witness program of a version ≥ 1 not defined yet (upgrade hook).
    WitnessUnknown,
}

/// Classifies an output script as Core's Solver does.
pub fn classify(script: &[u8]) -> ScriptType {
    if is_p2sh(script) {
        return ScriptType::ScriptHash;
    }
    if let Some((version, program)) = witness_program(script) {
        return match (version, program.len()) {
            (0, 20) => ScriptType::WitnessV0KeyHash,
            (0, 32) => ScriptType::WitnessV0ScriptHash,
            (1, 32) => ScriptType::WitnessV1Taproot,
            _ if is_p2a(script) => ScriptType::Anchor,
            (0, _) => ScriptType::NonStandard,
            _ => ScriptType::WitnessUnknown,
        };
    }
    if script.first() == Some(&OP_RETURN) && is_push_only(&script[1..]) {
        return ScriptType::NullData;
    }
    if is_p2pk(script) {
        return ScriptType::PubKey;
    }
    if script.len() == 25
        && script[0] == OP_DUP
        && script[1] == OP_HASH160
        && script[2] == 20
        && script[23] == OP_EQUALVERIFY
        && script[24] == OP_CHECKSIG
    {
        return ScriptType::PubKeyHash;
    }
    match multisig(script) {
        Some((required, keys)) => ScriptType::Multisig { required, keys },
        None => ScriptType::NonStandard,
    }
}

/// A public key of a length its first byte allows (33 for 02/03, 65 for 04/06/07), as Core checks.
fn valid_pubkey_size(key: &[u8]) -> bool {
    match key.first() {
        Some(2 | 3) => key.len() == 33,
        Some(4 | 6 | 7) => key.len() == 65,
        _ => false,
    }
}

fn is_p2pk(script: &[u8]) -> bool {
    let n = script.len();
    (n == 67 || n == 35)
        && script[0] as usize == n - 2
        && script[n - 1] == OP_CHECKSIG
        && valid_pubkey_size(&script[1..n - 1])
}

/// A small number written as OP_n or as a minimal push, in `min..=max` (Core's multisig counts).
fn script_number(op: Op<'_>, min: i64, max: i64) -> Option<i64> {
    let n = if (OP_1..=OP_16).contains(&op.opcode) {
        (op.opcode - OP_1 + 1) as i64
    } else if op.opcode > OP_0 && op.opcode <= OP_PUSHDATA4 {
        if !minimal_push(op) {
            return None;
        }
        script_num(op.data)?
    } else {
        return None;
    };
    (min..=max).contains(&n).then_some(n)
}

/// Whether a push uses the shortest encoding for its data.
fn minimal_push(op: Op<'_>) -> bool {
    let d = op.data;
    match d.len() {
        0 => op.opcode == OP_0,
        1 if (1..=16).contains(&d[0]) => false,
        1 if d[0] == 0x81 => false,
        len if len <= 75 => op.opcode as usize == len,
        len if len <= 255 => op.opcode == OP_PUSHDATA1,
        len if len <= 65_535 => op.opcode == OP_PUSHDATA2,
        _ => true,
    }
}

/// A minimally encoded script number of at most 4 bytes.
fn script_num(d: &[u8]) -> Option<i64> {
    if d.len() > 4 {
        return None;
    }
    if let Some(last) = d.last() {
        if last & 0x7f == 0 && (d.len() <= 1 || d[d.len() - 2] & 0x80 == 0) {
            return None;
        }
    }
    let mut v: i64 = 0;
    for (i, b) in d.iter().enumerate() {
        v |= (*b as i64) << (8 * i);
    }
    if d.last().is_some_and(|b| b & 0x80 != 0) {
        v = -(v & !(0x80_i64 << (8 * (d.len() - 1))));
    }
    Some(v)
}

/// `(required, keys)` of a bare multisig script, as Core matches it.
fn multisig(script: &[u8]) -> Option<(u8, u8)> {
    if script.last() != Some(&OP_CHECKMULTISIG) {
        return None;
    }
    let mut it = ops(script);
    let required = script_number(it.next()?.ok()?, 1, MAX_PUBKEYS_PER_MULTISIG as i64)?;
    let mut keys = 0i64;
    let count_op = loop {
        match it.next() {
            Some(Ok(op)) if valid_pubkey_size(op.data) => keys += 1,
            Some(Ok(op)) => break op,
            _ => return None,
        }
    };
    let n = script_number(count_op, required, MAX_PUBKEYS_PER_MULTISIG as i64)?;
    // Exactly the final OP_CHECKMULTISIG must remain.
    (n == keys && it.pos + 1 == script.len()).then_some((required as u8, keys as u8))
}

/// Core's sigop count of one script: CHECKSIG(VERIFY) counts 1; CHECKMULTISIG(VERIFY) counts 20, or
/// the preceding OP_n when `accurate`. Counting stops at a push that runs past the end.
pub fn sigop_count(script: &[u8], accurate: bool) -> u32 {
    let mut n = 0;
    let mut last = 0xff;
    for op in ops(script) {
        let Ok(op) = op else { break };
        match op.opcode {
            OP_CHECKSIG | OP_CHECKSIGVERIFY => n += 1,
            OP_CHECKMULTISIG | OP_CHECKMULTISIGVERIFY => {
                n += if accurate && (OP_1..=OP_16).contains(&last) {
                    (last - OP_1 + 1) as u32
                } else {
                    MAX_PUBKEYS_PER_MULTISIG
                }
            }
            _ => {}
        }
        last = op.opcode;
    }
    n
}

/// The data of the last push of a push-only scriptSig (empty when it ends in OP_n or pushes
/// nothing); `None` when the script has a non-push opcode or a bad push. This is what Core's sigop
/// counters take as the P2SH redeem script.
pub fn last_push(script_sig: &[u8]) -> Option<&[u8]> {
    let mut data: &[u8] = &[];
    for op in ops(script_sig) {
        let op = op.ok()?;
        if op.opcode > OP_16 {
            return None;
        }
        data = if op.opcode <= OP_PUSHDATA4 { op.data } else { &[] };
    }
    Some(data)
}

/// Sigops of the P2SH redeem script `script_sig` pushes last (Core's count of a P2SH spend).
pub fn p2sh_sigop_count(script_sig: &[u8]) -> u32 {
    last_push(script_sig).map_or(0, |redeem| sigop_count(redeem, true))
}

/// Sigops of spending `script_pubkey` with `script_sig`: the redeem script's for P2SH, else the
/// output script's own (accurate count).
pub fn spend_sigop_count(script_pubkey: &[u8], script_sig: &[u8]) -> u32 {
    if is_p2sh(script_pubkey) {
        p2sh_sigop_count(script_sig)
    } else {
        sigop_count(script_pubkey, true)
    }
}

const SMALL_NUMS: [u8; 17] = [0x81, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16];

/// Why evaluating a push-only scriptSig failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PushEvalError {
    /// Longer than the interpreter runs.
    ScriptSize,
    /// A push that runs past the end, or an opcode that is not a push (or OP_RESERVED).
    BadOpcode,
    /// A pushed element over 520 bytes.
    PushSize,
    /// More than 1,000 stack items.
    StackSize,
}

/// The top of the stack after running a push-only scriptSig with no flags (`None` for an empty
/// stack), as Core's interpreter would leave it; used to extract a P2SH redeem script. Non-push
/// opcodes are refused here (standardness has already rejected them).
pub fn push_only_stack_top(script_sig: &[u8]) -> Result<Option<&[u8]>, PushEvalError> {
    if script_sig.len() > MAX_SCRIPT_BYTES {
        return Err(PushEvalError::ScriptSize);
    }
    let mut depth = 0usize;
    let mut top: Option<&[u8]> = None;
    for op in ops(script_sig) {
        let op = op.map_err(|_| PushEvalError::BadOpcode)?;
        top = Some(match op.opcode {
            0..=OP_PUSHDATA4 if op.data.len() > MAX_SCRIPT_ELEMENT_BYTES => return Err(PushEvalError::PushSize),
            0..=OP_PUSHDATA4 => op.data,
            OP_1NEGATE => &SMALL_NUMS[0..1],
            OP_RESERVED => return Err(PushEvalError::BadOpcode),
            OP_1..=OP_16 => {
                let i = (op.opcode - OP_1 + 1) as usize;
                &SMALL_NUMS[i..i + 1]
            }
            _ => return Err(PushEvalError::BadOpcode),
        });
        depth += 1;
        if depth > MAX_STACK_ITEMS {
            return Err(PushEvalError::StackSize);
        }
    }
    Ok(top)
}
