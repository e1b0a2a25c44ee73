//! Typed reasons: why a peer was disconnected and what it did wrong. Tests match on them, counters
//! are labelled with them, operators read them. The score of each violation lives in one table.

use crate::wire::{DecodeError, HeaderError};
use bevy_ecs::prelude::*;
use serde::{Deserialize, Serialize};

labelled! {
    /// How a new block was announced to a peer.
    AnnounceKind {
        /// BIP130 `headers` (the peer sent `sendheaders` and the headers connect).
        Headers = "headers",
        /// An `inv` of the tip.
        Inv = "inv",
        /// A BIP152 `cmpctblock` (a high-bandwidth peer, one new block).
        Compact = "compact",
    }
}

labelled! {
    /// How a block announced as `cmpctblock` was completed.
    CompactOutcome {
        /// From the compact block and the transactions we held.
        NoRoundTrip = "no_round_trip",
        /// After one `getblocktxn`/`blocktxn` exchange.
        RoundTrip = "round_trip",
        /// Fetched whole (short ids crowded, a rebuilt block that did not match, a block asked
        /// for too far ahead).
        FullFallback = "full_fallback",
    }
}

labelled! {
    /// Why a connection ended.
    DisconnectReason {
        /// The frame did not start with this network's magic (also a BIP324 v2 attempt).
        BadMagic = "bad_magic",
        /// A frame length over the absolute or the command's bound.
        Oversized = "oversized",
        /// The peer closed the socket or it failed.
        PeerClosed = "peer_closed",
        /// The outbound dial failed.
        ConnectFailed = "connect_failed",
        /// No verack within the handshake timeout.
        HandshakeTimeout = "handshake_timeout",
        /// A ping went unanswered for the ping timeout.
        PingTimeout = "ping_timeout",
        /// Nothing received for the inactivity timeout.
        InactivityTimeout = "inactivity_timeout",
        /// We connected to ourselves (nonce match).
        SelfConnection = "self_connection",
        /// Its protocol version is below our floor.
        ObsoleteVersion = "obsolete_version",
        /// Its misbehavior score reached the threshold.
        Misbehavior = "misbehavior",
        /// Its send queue passed the hard bound: it asks more than it reads.
        SendQueueOverflow = "send_queue_overflow",
        /// Outbound peer lacks services we need.
        MissingServices = "missing_services",
        /// Refused: no free inbound slot.
        NoSlot = "no_slot",
        /// Evicted to make room for a new inbound.
        Evicted = "evicted",
        /// Refused or dropped: address banned.
        Banned = "banned",
        /// Refused: address discouraged and the inbound slots (nearly) full (Core's rule).
        Discouraged = "discouraged",
        /// A feeler's job was done.
        FeelerDone = "feeler_done",
        /// Operator asked (RPC disconnectnode).
        Manual = "manual",
        /// The node is stopping.
        Shutdown = "shutdown",
        /// It held up the block download window past the stalling timeout.
        BlockStalling = "block_stalling",
        /// Its oldest block request went unanswered past the download timeout.
        BlockDownloadTimeout = "block_download_timeout",
        /// As our only headers sync peer it did not bring our headers near today in time.
        HeadersSyncTimeout = "headers_sync_timeout",
        /// It sent `mempool` without the permission (we offer no bloom filters).
        MempoolRequest = "mempool_request",
        /// It sent a feature negotiation (`wtxidrelay`, `sendaddrv2`) after `verack`: Core
        /// disconnects for it (no discouragement).
        NegotiationAfterVerack = "negotiation_after_verack",
        /// It announced or sent a transaction though we asked for none (a block-relay-only or
        /// feeler connection, or our relay flag off): Core disconnects for it ("transaction sent in
        /// violation of protocol"), without discouragement.
        TxRelayViolation = "tx_relay_violation",
        /// It asked for a service we do not offer: BIP37 bloom filters (`filterload`,
        /// `filteradd`, `filterclear`) or BIP157 compact filters (`getcfilters`...). Core
        /// disconnects for it without discouragement, freeing the slot.
        ServiceNotOffered = "service_not_offered",
        /// It sent `feature` (protocol 70017) though our version is 70016: Core disconnects a
        /// peer that does so to a node of a lower common version (and anyone after `verack`).
        UnsupportedFeature = "unsupported_feature",
        /// (v2) We dialed v2 and the peer hung up before answering: dialed again with v1.
        V2Refused = "v2_refused",
        /// (v2) A v1 `version` header with another network's magic reached our v2 responder.
        V2WrongNetwork = "v2_wrong_network",
        /// (v2) No garbage terminator within 4,095 bytes of garbage.
        V2NoTerminator = "v2_missing_garbage_terminator",
        /// (v2) A packet length over the largest message.
        V2TooLarge = "v2_packet_too_large",
        /// (v2) A packet failed authentication.
        V2BadTag = "v2_decryption_failure",
    }
}

impl DisconnectReason {
    /// The reason a failed v2 transport ends the connection for.
    pub fn from_v2(e: crate::wire::v2::transport::V2Error) -> DisconnectReason {
        use crate::wire::v2::transport::V2Error;
        match e {
            V2Error::WrongNetwork => DisconnectReason::V2WrongNetwork,
            V2Error::NoTerminator => DisconnectReason::V2NoTerminator,
            V2Error::TooLarge => DisconnectReason::V2TooLarge,
            V2Error::BadTag => DisconnectReason::V2BadTag,
            V2Error::Oversized => DisconnectReason::Oversized,
        }
    }

    /// The reason a header error ends the connection for; `None` for one that does not (a bad
    /// command name: the frame is skipped, as Core skips it).
    pub fn from_header(e: HeaderError) -> Option<DisconnectReason> {
        match e {
            HeaderError::BadMagic => Some(DisconnectReason::BadMagic),
            HeaderError::BadCommand => None,
            HeaderError::Oversized => Some(DisconnectReason::Oversized),
        }
    }
}

labelled! {
    /// A protocol violation. Each has a score in [`ScoreTable`].
    Misbehavior {
        /// Payload did not match the header's checksum (Core drops the message and goes on:
        /// counted, never scored).
        BadChecksum = "bad_checksum",
        /// Payload ended early (Core's read fails and the message is dropped: counted, never
        /// scored).
        Truncated = "truncated",
        /// CompactSize not minimally encoded (as Truncated).
        NonCanonicalCompactSize = "noncanonical_compactsize",
        /// A list really over its limit (addrv2 > 1,000 entries; the others' frame bounds refuse
        /// such a list from its header). Core discourages at once.
        TooManyEntries = "too_many_entries",
        /// A string or byte field over its bound (as Truncated).
        FieldTooLong = "field_too_long",
        /// A value no valid message carries (as Truncated).
        InvalidValue = "invalid_value",
        /// A message other than version before the handshake started (Core ignores it: counted,
        /// never scored).
        MessageBeforeVersion = "message_before_version",
        /// A message other than the negotiation ones before verack (Core ignores it: counted,
        /// never scored).
        MessageBeforeVerack = "message_before_verack",
        /// A second version (Core ignores it: counted, never scored).
        DuplicateVersion = "duplicate_version",
        /// A second verack (Core ignores it: counted, never scored).
        DuplicateVerack = "duplicate_verack",
        /// A `sendcmpct` whose high-bandwidth flag is neither 0 nor 1 (BIP152's MUST; Core
        /// discourages at once).
        InvalidSendCmpct = "invalid_sendcmpct",
        /// A pong whose nonce matches no ping of ours (Core ignores it: counted, never scored; of
        /// nonce 0, it cancels our ping, as in Core).
        UnsolicitedPong = "unsolicited_pong",
        /// A `headers` message whose first header's parent we do not know (Core no longer
        /// punishes it: counted, never scored).
        UnconnectingHeaders = "unconnecting_headers",
        /// Headers in one message that do not chain to each other.
        NonContinuousHeaders = "noncontinuous_headers",
        /// A header whose hash does not meet its target, or whose target is out of range.
        HeaderBadPow = "header_bad_pow",
        /// A header whose bits are not what the retarget rules require.
        HeaderBadDifficulty = "header_bad_difficulty",
        /// A header not later than the median of its last 11 ancestors (or a BIP94 timewarp).
        HeaderTimeTooOld = "header_time_too_old",
        /// A header more than 2 h ahead of our clock (Core does not score it: clocks differ).
        HeaderTimeTooNew = "header_time_too_new",
        /// A header whose version is below the BIP34/66/65 floor at its height.
        HeaderObsoleteVersion = "header_obsolete_version",
        /// A header building on a block known to be invalid (Core: BLOCK_INVALID_PREV).
        HeaderInvalidParent = "header_invalid_parent",
        /// A header or block we already know to be invalid, from a peer we dialed (Core:
        /// BLOCK_CACHED_INVALID discourages outbound peers only).
        KnownInvalid = "known_invalid",
        /// The same from an inbound peer: Core does not punish it (the peer may simply be on a
        /// fork we rejected long ago). Counted, never scored.
        KnownInvalidInbound = "known_invalid_inbound",
        /// A low-work header chain that stopped or changed during PRESYNC/REDOWNLOAD (Core aborts
        /// the sync and punishes nothing: counted, never scored).
        LowWorkHeaders = "low_work_headers",
        /// A block the validator rejected.
        InvalidBlock = "invalid_block",
        /// A block we did not ask for that does not extend our tip.
        UnrequestedBlock = "unrequested_block",
        /// A transaction broke a consensus rule, or did not decode (Core, since v30, punishes
        /// neither: counted, never scored).
        InvalidTransaction = "invalid_transaction",
        /// A compact block that cannot describe a block: a prefilled index past the block or
        /// beyond 16 bits, an empty prefilled transaction, a null header, nothing in it (Core:
        /// "invalid compact block").
        InvalidCompactBlock = "invalid_compact_block",
        /// A `blocktxn` for our request with more or fewer transactions than asked for, or one
        /// that does not parse (Core: "invalid compact block/non-matching block transactions").
        InvalidBlockTxn = "invalid_blocktxn",
        /// A `getblocktxn` naming a position past the block (Core: "getblocktxn with
        /// out-of-bounds tx indices").
        GetBlockTxnOutOfBounds = "getblocktxn_out_of_bounds",
        /// A `cmpctblock` we neither asked for nor accept unasked (from a peer not in
        /// high-bandwidth mode, or before its `sendcmpct`), or a `blocktxn` we did not ask for:
        /// Core ignores both (counted, never scored).
        UnrequestedCompact = "unrequested_compact",
    }
}

impl Misbehavior {
    /// The violation a payload that failed to decode is counted as; `None` for bytes after a
    /// message, which are no violation (the message is taken, as Core takes it).
    pub fn from_decode(e: DecodeError) -> Option<Misbehavior> {
        Some(match e {
            DecodeError::BadChecksum => Misbehavior::BadChecksum,
            DecodeError::Truncated => Misbehavior::Truncated,
            DecodeError::TrailingBytes => return None,
            DecodeError::NonCanonicalCompactSize => Misbehavior::NonCanonicalCompactSize,
            DecodeError::TooManyEntries => Misbehavior::TooManyEntries,
            DecodeError::FieldTooLong => Misbehavior::FieldTooLong,
            DecodeError::InvalidValue => Misbehavior::InvalidValue,
        })
    }
}

/// Score per violation and the threshold at which a peer is disconnected. One place, readable by
/// operators and tests. Core (since v28) has no score: it discourages on any violation it punishes
/// and ignores the rest. By default every violation Core punishes scores the full 100 here and every
/// one it ignores scores 0 (counted, so operators see it), so the same cases disconnect; the table
/// lets an operator grade one differently. `systems/CONFORMANCE.md` gives Core's reaction to each.
#[derive(Resource, Clone, Debug, Serialize, Deserialize)]
pub struct ScoreTable {
    /// Score of each violation, indexed by `Misbehavior as usize`.
    pub scores: Vec<u32>,
    /// Points at which the peer is disconnected (and discouraged).
    pub threshold: u32,
}

impl ScoreTable {
    /// The score of one violation.
    pub fn score(&self, m: Misbehavior) -> u32 {
        self.scores.get(m as usize).copied().unwrap_or(0)
    }
}

impl Default for ScoreTable {
    fn default() -> Self {
        let scores = Misbehavior::ALL
            .iter()
            .map(|m| match m {
                // Core drops a frame with a bad checksum, and a payload its reads fail on, and goes
                // on: such a message costs no more than a well-formed one (which the byte and decode
                // budgets bound), so punishing it protects nothing and could drop a quirky peer.
                Misbehavior::BadChecksum
                | Misbehavior::Truncated
                | Misbehavior::NonCanonicalCompactSize
                | Misbehavior::FieldTooLong
                | Misbehavior::InvalidValue => 0,
                // Core: Misbehaving (a list over MAX_ADDR_TO_SEND, MAX_INV_SZ...).
                Misbehavior::TooManyEntries => 100,
                // Ordering mistakes: Core drops the message and goes on, so do we (counted).
                Misbehavior::MessageBeforeVersion
                | Misbehavior::MessageBeforeVerack
                | Misbehavior::DuplicateVersion
                | Misbehavior::DuplicateVerack => 0,
                // Core: Misbehaving, so one is enough.
                Misbehavior::InvalidSendCmpct => 100,
                // Pings may overlap: Core ignores a pong of another nonce.
                Misbehavior::UnsolicitedPong => 0,
                // Core no longer punishes them (they happen around reorgs); counted.
                Misbehavior::UnconnectingHeaders => 0,
                // Consensus failures: no honest node relays them.
                Misbehavior::NonContinuousHeaders
                | Misbehavior::HeaderBadPow
                | Misbehavior::HeaderBadDifficulty
                | Misbehavior::HeaderTimeTooOld
                | Misbehavior::HeaderObsoleteVersion
                | Misbehavior::HeaderInvalidParent
                | Misbehavior::InvalidBlock => 100,
                // Core's BLOCK_CACHED_INVALID: punished from peers we dialed only.
                Misbehavior::KnownInvalid => 100,
                Misbehavior::KnownInvalidInbound => 0,
                // Our clock may be the wrong one.
                Misbehavior::HeaderTimeTooNew => 0,
                // Core aborts a low-work sync that stops or changes and punishes nothing; counted.
                Misbehavior::LowWorkHeaders => 0,
                // Counted, never scored (as Core): a peer's copy of a block it was asked for turns
                // "unrequested" when a third party delivered it first.
                Misbehavior::UnrequestedBlock => 0,
                // Core (since v30) punishes no invalid transaction: rejected, remembered, counted.
                Misbehavior::InvalidTransaction => 0,
                // Core: Misbehaving, each.
                Misbehavior::InvalidCompactBlock
                | Misbehavior::InvalidBlockTxn
                | Misbehavior::GetBlockTxnOutOfBounds => 100,
                // Core ignores them (a late answer, a peer we just took out of HB mode).
                Misbehavior::UnrequestedCompact => 0,
            })
            .collect();
        ScoreTable { scores, threshold: 100 }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Core has no score: a violation discourages at once or not at all. By default the table
    /// follows: nothing accumulates towards the threshold (CONFORMANCE.md).
    #[test]
    fn every_default_score_is_zero_or_the_whole_threshold_as_cores_all_or_nothing() {
        let t = ScoreTable::default();
        assert_eq!(t.scores.len(), Misbehavior::COUNT);
        for &m in Misbehavior::ALL {
            let s = t.score(m);
            assert!(s == 0 || s >= t.threshold, "{}: {s}", m.label());
        }
        // The ones Core punishes.
        for m in [
            Misbehavior::TooManyEntries,
            Misbehavior::InvalidSendCmpct,
            Misbehavior::NonContinuousHeaders,
            Misbehavior::HeaderBadPow,
            Misbehavior::HeaderBadDifficulty,
            Misbehavior::HeaderTimeTooOld,
            Misbehavior::HeaderObsoleteVersion,
            Misbehavior::HeaderInvalidParent,
            Misbehavior::KnownInvalid,
            Misbehavior::InvalidBlock,
            Misbehavior::InvalidCompactBlock,
            Misbehavior::InvalidBlockTxn,
            Misbehavior::GetBlockTxnOutOfBounds,
        ] {
            assert_eq!(t.score(m), t.threshold, "{}", m.label());
        }
    }
}
