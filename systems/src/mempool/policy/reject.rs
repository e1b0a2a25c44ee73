//! Why a transaction is refused, as one closed enum. Each variant maps to the reject-reason string
//! Bitcoin Core uses for it (several variants share one string where Core lumps causes together,
//! so tests can tell causes apart while operators see Core's wording), and to whether Core classes
//! it as invalid by consensus (its `TX_CONSENSUS` result).

/// A rejection reason. Checks return these without building strings; [`TxReject::as_str`] gives
/// Core's reason for logs, metrics labels and RPC.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum TxReject {
    // ---- Context-free consensus checks (Core's CheckTransaction): TX_CONSENSUS.
    /// No inputs.
    VinEmpty,
    /// No outputs.
    VoutEmpty,
    /// Stripped size × 4 over the block weight limit.
    Oversize,
    /// An output value that is negative as a signed 64-bit amount.
    VoutNegative,
    /// An output value above 21 million BTC.
    VoutTooLarge,
    /// The outputs' running total above 21 million BTC.
    TxoutTotalTooLarge,
    /// The same outpoint spent twice (CVE-2018-17144).
    InputsDuplicate,
    /// A coinbase whose scriptSig is not 2..=100 bytes.
    CoinbaseLength,
    /// A non-coinbase input spending the null outpoint.
    PrevoutNull,
    /// A coinbase offered as a loose transaction: only valid inside a block.
    Coinbase,

    // ---- Input amounts (Core's CheckTxInputs).
    /// A spent coin value, or the inputs' running total, outside 0..=21 million BTC (TX_CONSENSUS).
    InputValuesOutOfRange,
    /// Inputs worth less than the outputs (TX_CONSENSUS).
    InBelowOut,
    /// Spends a coinbase output less than 100 blocks deep; may become valid (TX_PREMATURE_SPEND).
    PrematureCoinbaseSpend,

    // ---- Standardness of the transaction itself (Core's IsStandardTx and PreChecks): TX_NOT_STANDARD.
    /// Version outside 1..=3.
    Version,
    /// Weight over the standard maximum (400,000).
    TxSize,
    /// Stripped size under 65 bytes (64-byte transactions can pose as Merkle nodes, CVE-2017-12842).
    TxSizeSmall,
    /// A scriptSig over 1,650 bytes.
    ScriptSigSize,
    /// A scriptSig with an opcode other than a push.
    ScriptSigNotPushOnly,
    /// An output script of no standard type (or bare multisig over 3 keys).
    ScriptPubKey,
    /// A bare multisig output while the node does not permit them.
    BareMultisig,
    /// OP_RETURN outputs over the data-carrier budget (or any while data carrying is off).
    Datacarrier,
    /// More dust outputs than the one ephemeral dust output allowed.
    Dust,
    /// A dust output on a transaction paying a fee: ephemeral dust must be zero-fee so it is only
    /// mined with the child that spends it.
    DustWithFee,
    /// Sigop cost over 16,000 (a fifth of the block's budget).
    TooManySigops,

    // ---- Standardness of the spent outputs (Core's ValidateInputsStandardness): TX_INPUTS_NOT_STANDARD.
    /// Potentially executed legacy sigops over 2,500 (BIP54's per-transaction limit).
    LegacySigopsOverLimit,
    /// Spends an output script of no standard type.
    InputScriptUnknown,
    /// Spends a witness program of an undefined version or length.
    InputWitnessProgramUnknown,
    /// A P2SH scriptSig that does not evaluate (bad push, element over 520 bytes, stack over 1,000).
    P2shScriptSigMalformed,
    /// A P2SH spend whose scriptSig pushes nothing (no redeem script).
    P2shRedeemScriptMissing,
    /// A P2SH redeem script with more than 15 sigops.
    P2shSigopsOverLimit,

    // ---- Witness standardness (Core's IsWitnessStandard): TX_WITNESS_MUTATED.
    /// A witness that is not standard for the output it spends (stuffed, oversized, annex, ...).
    WitnessNonstandard,

    // ---- Scripts.
    /// Scripts failed under the standard (policy) flags only; Core's mempool result (TX_NOT_STANDARD).
    ScriptFailed,
    /// Scripts failed under the consensus flags alone: invalid in any block (TX_CONSENSUS). Core up to
    /// v29 reported this after re-checking with mandatory flags; oni's engine checks consensus flags.
    ConsensusScriptFailed,
    /// Scripts failed and the transaction has no witness though it spends a witness program: the
    /// sender may have stripped a valid witness, so the txid is not to be remembered as bad
    /// (TX_WITNESS_STRIPPED).
    WitnessStripped,

    // ---- Time locks: TX_PREMATURE_SPEND (may become valid later).
    /// nLockTime not yet reached for the next block.
    NonFinal,
    /// A BIP68 relative lock not yet met for the next block.
    NonBip68Final,

    // ---- Missing inputs: TX_MISSING_INPUTS (an orphan, or spends something already spent).
    /// An input's coin is neither in the chain's coins nor in the pool.
    MissingInputs,

    // ---- Already known: TX_CONFLICT.
    /// The same wtxid is already in the pool.
    AlreadyInMempool,
    /// The same txid with another witness is already in the pool.
    SameNonwitnessDataInMempool,
    /// Outputs of this txid are already in the chain's coins (it was mined).
    AlreadyKnown,

    // ---- Pool policy: TX_MEMPOOL_POLICY.
    /// Spends an outpoint a pool transaction already spends, where replacement is not allowed.
    ReplacementDisallowed,
    /// Spends an outpoint a pool transaction already spends (Core's pre-v28 wording for conflicts).
    MempoolConflict,
    /// A replacement that would evict too many transactions or clusters.
    TooManyReplacements,
    /// Breaks the version-3 (TRUC) topology or size rules.
    TrucViolation,
    /// Would make a cluster over the count or size limit.
    TooLargeCluster,
    /// Would exceed the ancestor or descendant count/size limits (pre-cluster pools).
    TooLongMempoolChain,
    /// The pool is full and this transaction does not pay enough to stay.
    MempoolFull,
    /// A child that leaves its parent's ephemeral dust unspent.
    MissingEphemeralSpends,
    /// A package that leaves ephemeral dust unspent.
    UnspentDust,

    // ---- Fees: TX_RECONSIDERABLE (may pass in a package or later).
    /// Fee below the pool's dynamic minimum feerate.
    MempoolMinFeeNotMet,
    /// Fee below the minimum relay feerate.
    MinRelayFeeNotMet,
    /// A replacement that does not pay more than what it replaces plus its own relay.
    InsufficientFee,
    /// A replacement that does not improve the pool's feerate diagram.
    ReplacementFailed,
}

impl TxReject {
    /// Number of reasons (metrics arrays are indexed by `reason as usize`).
    pub const COUNT: usize = TxReject::ReplacementFailed as usize + 1;

    /// Every reason, in declaration order (`ALL[r as usize] == r`), for labelled metrics.
    pub const ALL: [TxReject; TxReject::COUNT] = {
        use TxReject::*;
        [
            VinEmpty,
            VoutEmpty,
            Oversize,
            VoutNegative,
            VoutTooLarge,
            TxoutTotalTooLarge,
            InputsDuplicate,
            CoinbaseLength,
            PrevoutNull,
            Coinbase,
            InputValuesOutOfRange,
            InBelowOut,
            PrematureCoinbaseSpend,
            Version,
            TxSize,
            TxSizeSmall,
            ScriptSigSize,
            ScriptSigNotPushOnly,
            ScriptPubKey,
            BareMultisig,
            Datacarrier,
            Dust,
            DustWithFee,
            TooManySigops,
            LegacySigopsOverLimit,
            InputScriptUnknown,
            InputWitnessProgramUnknown,
            P2shScriptSigMalformed,
            P2shRedeemScriptMissing,
            P2shSigopsOverLimit,
            WitnessNonstandard,
            ScriptFailed,
            ConsensusScriptFailed,
            WitnessStripped,
            NonFinal,
            NonBip68Final,
            MissingInputs,
            AlreadyInMempool,
            SameNonwitnessDataInMempool,
            AlreadyKnown,
            ReplacementDisallowed,
            MempoolConflict,
            TooManyReplacements,
            TrucViolation,
            TooLargeCluster,
            TooLongMempoolChain,
            MempoolFull,
            MissingEphemeralSpends,
            UnspentDust,
            MempoolMinFeeNotMet,
            MinRelayFeeNotMet,
            InsufficientFee,
            ReplacementFailed,
        ]
    };

    /// Whether the same transaction with another witness could fare differently. Then only its
    /// wtxid is remembered as rejected; for the others its txid too, so txid-relay peers cannot
    /// make us fetch it again.
    pub fn may_be_witness_specific(self) -> bool {
        use TxReject::*;
        !matches!(
            self,
            VinEmpty
                | VoutEmpty
                | VoutNegative
                | VoutTooLarge
                | TxoutTotalTooLarge
                | InputsDuplicate
                | PrevoutNull
                | Coinbase
                | InputValuesOutOfRange
                | InBelowOut
                | PrematureCoinbaseSpend
                | Version
                | ScriptPubKey
                | BareMultisig
                | Datacarrier
                | Dust
                | NonFinal
                | MissingInputs
        )
    }

    /// Bitcoin Core's reject-reason string for this reason (without Core's debug detail).
    pub fn as_str(self) -> &'static str {
        use TxReject::*;
        match self {
            VinEmpty => "bad-txns-vin-empty",
            VoutEmpty => "bad-txns-vout-empty",
            Oversize => "bad-txns-oversize",
            VoutNegative => "bad-txns-vout-negative",
            VoutTooLarge => "bad-txns-vout-toolarge",
            TxoutTotalTooLarge => "bad-txns-txouttotal-toolarge",
            InputsDuplicate => "bad-txns-inputs-duplicate",
            CoinbaseLength => "bad-cb-length",
            PrevoutNull => "bad-txns-prevout-null",
            Coinbase => "coinbase",
            InputValuesOutOfRange => "bad-txns-inputvalues-outofrange",
            InBelowOut => "bad-txns-in-belowout",
            PrematureCoinbaseSpend => "bad-txns-premature-spend-of-coinbase",
            Version => "version",
            TxSize => "tx-size",
            TxSizeSmall => "tx-size-small",
            ScriptSigSize => "scriptsig-size",
            ScriptSigNotPushOnly => "scriptsig-not-pushonly",
            ScriptPubKey => "scriptpubkey",
            BareMultisig => "bare-multisig",
            Datacarrier => "datacarrier",
            Dust | DustWithFee => "dust",
            TooManySigops => "bad-txns-too-many-sigops",
            LegacySigopsOverLimit
            | InputScriptUnknown
            | InputWitnessProgramUnknown
            | P2shScriptSigMalformed
            | P2shRedeemScriptMissing
            | P2shSigopsOverLimit => "bad-txns-nonstandard-inputs",
            WitnessNonstandard => "bad-witness-nonstandard",
            ScriptFailed | WitnessStripped => "mempool-script-verify-flag-failed",
            ConsensusScriptFailed => "mandatory-script-verify-flag-failed",
            NonFinal => "non-final",
            NonBip68Final => "non-BIP68-final",
            MissingInputs => "bad-txns-inputs-missingorspent",
            AlreadyInMempool => "txn-already-in-mempool",
            SameNonwitnessDataInMempool => "txn-same-nonwitness-data-in-mempool",
            AlreadyKnown => "txn-already-known",
            ReplacementDisallowed => "bip125-replacement-disallowed",
            MempoolConflict => "txn-mempool-conflict",
            TooManyReplacements => "too many potential replacements",
            TrucViolation => "TRUC-violation",
            TooLargeCluster => "too-large-cluster",
            TooLongMempoolChain => "too-long-mempool-chain",
            MempoolFull => "mempool full",
            MissingEphemeralSpends => "missing-ephemeral-spends",
            UnspentDust => "unspent-dust",
            MempoolMinFeeNotMet => "mempool min fee not met",
            MinRelayFeeNotMet => "min relay fee not met",
            InsufficientFee => "insufficient fee",
            ReplacementFailed => "replacement-failed",
        }
    }

    /// Whether Core classes this as invalid by consensus (`TX_CONSENSUS`): no block could ever
    /// include the transaction as sent. Core up to v29 punished the sender for exactly these; the
    /// v30+ reference no longer punishes for any transaction. Policy, standardness, time locks,
    /// missing inputs, conflicts and fees are never consensus: a peer with other settings, or at
    /// another tip, may rightly relay them.
    pub fn is_consensus(self) -> bool {
        use TxReject::*;
        matches!(
            self,
            VinEmpty
                | VoutEmpty
                | Oversize
                | VoutNegative
                | VoutTooLarge
                | TxoutTotalTooLarge
                | InputsDuplicate
                | CoinbaseLength
                | PrevoutNull
                | Coinbase
                | InputValuesOutOfRange
                | InBelowOut
                | ConsensusScriptFailed
        )
    }
}

impl std::fmt::Display for TxReject {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::TxReject;

    #[test]
    fn all_is_in_index_order() {
        for (i, r) in TxReject::ALL.iter().enumerate() {
            assert_eq!(*r as usize, i, "{r:?}");
        }
    }
}
