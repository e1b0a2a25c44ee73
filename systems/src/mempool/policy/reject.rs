//! Why a transaction is refused, as one closed enum. Each variant maps to the reject-reason string
//! Bitcoin Core uses for it (several variants share one string where Core lumps causes together,
//! so tests can tell causes apart while operators see Core's wording), and to whether Core classes
//! it as invalid by consensus (its `TX_CONSENSUS` result).

labelled! {
    /// A rejection reason. Checks return these without building strings; [`TxReject::label`] gives
    /// Core's reason for logs, metrics labels and RPC.
    TxReject {
        // ---- Context-free consensus checks (Core's CheckTransaction): TX_CONSENSUS.
        /// No inputs.
        VinEmpty = "bad-txns-vin-empty",
        /// No outputs.
        VoutEmpty = "bad-txns-vout-empty",
        /// Stripped size × 4 over the block weight limit.
        Oversize = "bad-txns-oversize",
        /// An output value that is negative as a signed 64-bit amount.
        VoutNegative = "bad-txns-vout-negative",
        /// An output value above 21 million BTC.
        VoutTooLarge = "bad-txns-vout-toolarge",
        /// The outputs' running total above 21 million BTC.
        TxoutTotalTooLarge = "bad-txns-txouttotal-toolarge",
        /// The same outpoint spent twice (CVE-2018-17144).
        InputsDuplicate = "bad-txns-inputs-duplicate",
        /// A coinbase whose scriptSig is not 2..=100 bytes.
        CoinbaseLength = "bad-cb-length",
        /// A non-coinbase input spending the null outpoint.
        PrevoutNull = "bad-txns-prevout-null",
        /// A coinbase offered as a loose transaction: only valid inside a block.
        Coinbase = "coinbase",

        // ---- Input amounts (Core's CheckTxInputs).
        /// A spent coin value, or the inputs' running total, outside 0..=21 million BTC (TX_CONSENSUS).
        InputValuesOutOfRange = "bad-txns-inputvalues-outofrange",
        /// Inputs worth less than the outputs (TX_CONSENSUS).
        InBelowOut = "bad-txns-in-belowout",
        /// Spends a coinbase output less than 100 blocks deep; may become valid (TX_PREMATURE_SPEND).
        PrematureCoinbaseSpend = "bad-txns-premature-spend-of-coinbase",

        // ---- Standardness of the transaction itself (Core's IsStandardTx and PreChecks): TX_NOT_STANDARD.
        /// Version outside 1..=3.
        Version = "version",
        /// Weight over the standard maximum (400,000).
        TxSize = "tx-size",
        /// Stripped size under 65 bytes (64-byte transactions can pose as Merkle nodes, CVE-2017-12842).
        TxSizeSmall = "tx-size-small",
        /// A scriptSig over 1,650 bytes.
        ScriptSigSize = "scriptsig-size",
        /// A scriptSig with an opcode other than a push.
        ScriptSigNotPushOnly = "scriptsig-not-pushonly",
        /// An output script of no standard type (or bare multisig over 3 keys).
        ScriptPubKey = "scriptpubkey",
        /// A bare multisig output while the node does not permit them.
        BareMultisig = "bare-multisig",
        /// OP_RETURN outputs over the data-carrier budget (or any while data carrying is off).
        Datacarrier = "datacarrier",
        /// More dust outputs than the one ephemeral dust output allowed.
        Dust = "dust",
        /// A dust output on a transaction paying a fee: ephemeral dust must be zero-fee so it is only
        /// mined with the child that spends it.
        DustWithFee = "dust",
        /// Sigop cost over 16,000 (a fifth of the block's budget).
        TooManySigops = "bad-txns-too-many-sigops",

        // ---- Standardness of the spent outputs (Core's ValidateInputsStandardness): TX_INPUTS_NOT_STANDARD.
        /// Potentially executed legacy sigops over 2,500 (BIP54's per-transaction limit).
        LegacySigopsOverLimit = "bad-txns-nonstandard-inputs",
        /// Spends an output script of no standard type.
        InputScriptUnknown = "bad-txns-nonstandard-inputs",
        /// Spends a witness program of an undefined version or length.
        InputWitnessProgramUnknown = "bad-txns-nonstandard-inputs",
        /// A P2SH scriptSig that does not evaluate (bad push, element over 520 bytes, stack over 1,000).
        P2shScriptSigMalformed = "bad-txns-nonstandard-inputs",
        /// A P2SH spend whose scriptSig pushes nothing (no redeem script).
        P2shRedeemScriptMissing = "bad-txns-nonstandard-inputs",
        /// A P2SH redeem script with more than 15 sigops.
        P2shSigopsOverLimit = "bad-txns-nonstandard-inputs",

        // ---- Witness standardness (Core's IsWitnessStandard): TX_WITNESS_MUTATED.
        /// A witness that is not standard for the output it spends (stuffed, oversized, annex, ...).
        WitnessNonstandard = "bad-witness-nonstandard",

        // ---- Scripts.
        /// Scripts failed under the standard (policy) flags only; Core's mempool result (TX_NOT_STANDARD).
        ScriptFailed = "mempool-script-verify-flag-failed",
        /// Scripts failed under the consensus flags alone: invalid in any block (TX_CONSENSUS). Core up to
        /// v29 reported this after re-checking with mandatory flags; oni's engine checks consensus flags.
        ConsensusScriptFailed = "mandatory-script-verify-flag-failed",
        /// Scripts failed and the transaction has no witness though it spends a witness program: the
        /// sender may have stripped a valid witness, so the txid is not to be remembered as bad
        /// (TX_WITNESS_STRIPPED).
        WitnessStripped = "mempool-script-verify-flag-failed",

        // ---- Time locks: TX_PREMATURE_SPEND (may become valid later).
        /// nLockTime not yet reached for the next block.
        NonFinal = "non-final",
        /// A BIP68 relative lock not yet met for the next block.
        NonBip68Final = "non-BIP68-final",

        // ---- Missing inputs: TX_MISSING_INPUTS (an orphan, or spends something already spent).
        /// An input's coin is neither in the chain's coins nor in the pool.
        MissingInputs = "bad-txns-inputs-missingorspent",

        // ---- Already known: TX_CONFLICT.
        /// The same wtxid is already in the pool.
        AlreadyInMempool = "txn-already-in-mempool",
        /// The same txid with another witness is already in the pool.
        SameNonwitnessDataInMempool = "txn-same-nonwitness-data-in-mempool",
        /// Outputs of this txid are already in the chain's coins (it was mined).
        AlreadyKnown = "txn-already-known",

        // ---- Pool policy: TX_MEMPOOL_POLICY.
        /// Spends an outpoint a pool transaction already spends, where replacement is not allowed.
        ReplacementDisallowed = "bip125-replacement-disallowed",
        /// Spends an outpoint a pool transaction already spends (Core's pre-v28 wording for conflicts).
        MempoolConflict = "txn-mempool-conflict",
        /// A replacement that would evict too many transactions or clusters.
        TooManyReplacements = "too many potential replacements",
        /// Breaks the version-3 (TRUC) topology or size rules.
        TrucViolation = "TRUC-violation",
        /// Would make a cluster over the count or size limit.
        TooLargeCluster = "too-large-cluster",
        /// Would exceed the ancestor or descendant count/size limits (pre-cluster pools).
        TooLongMempoolChain = "too-long-mempool-chain",
        /// The pool is full and this transaction does not pay enough to stay.
        MempoolFull = "mempool full",
        /// A child that leaves its parent's ephemeral dust unspent.
        MissingEphemeralSpends = "missing-ephemeral-spends",
        /// A package that leaves ephemeral dust unspent.
        UnspentDust = "unspent-dust",

        // ---- Fees: TX_RECONSIDERABLE (may pass in a package or later).
        /// Fee below the pool's dynamic minimum feerate.
        MempoolMinFeeNotMet = "mempool min fee not met",
        /// Fee below the minimum relay feerate.
        MinRelayFeeNotMet = "min relay fee not met",
        /// A replacement that does not pay more than what it replaces plus its own relay.
        InsufficientFee = "insufficient fee",
        /// A replacement that does not improve the pool's feerate diagram.
        ReplacementFailed = "replacement-failed",

    }
}

impl TxReject {
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
        f.write_str(self.label())
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
