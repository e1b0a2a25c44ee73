//! Why a frame or payload was refused. Each variant is a distinct reason that tests match on,
//! counters are labelled with, and operators see.

use serde::{Deserialize, Serialize};

/// What is wrong with a frame header. `BadMagic` and `Oversized` end the connection (nothing after
/// them can be trusted to be framed); `BadCommand` is only counted: the frame is still delimited,
/// and Core drops it and reads on, so it is skipped like an unknown command.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum HeaderError {
    /// The first four bytes are not this network's magic (also what a BIP324 v2 attempt looks like).
    BadMagic,
    /// The command is not printable ASCII followed only by NUL padding (counted; see
    /// [`super::FrameHeader::bad_name`]).
    BadCommand,
    /// The length is over the absolute maximum or over the command's own bound.
    Oversized,
}

impl HeaderError {
    /// Stable label for metrics and logs.
    pub const fn label(self) -> &'static str {
        match self {
            HeaderError::BadMagic => "bad_magic",
            HeaderError::BadCommand => "bad_command",
            HeaderError::Oversized => "oversized",
        }
    }
}

/// A payload that does not decode. The frame was well delimited, so the connection can go on: as
/// Core, the message is dropped and counted (only `TooManyEntries`, a list really over its limit,
/// is a violation Core punishes).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum DecodeError {
    /// sha256d of the payload does not match the header's checksum.
    BadChecksum,
    /// The payload ended before the message did.
    Truncated,
    /// Bytes were left after the message. Refused only where a buffer must hold exactly one item
    /// (stored blocks); on the wire they are ignored and counted, as Core ignores them.
    TrailingBytes,
    /// A CompactSize used more bytes than its value needs.
    NonCanonicalCompactSize,
    /// A count is over the limit for its list.
    TooManyEntries,
    /// A length-prefixed string or byte field is over its bound.
    FieldTooLong,
    /// A value no valid message can carry (unknown inv type, bad addrv2 length for its network...).
    InvalidValue,
}

impl DecodeError {
    /// Stable label for metrics and logs.
    pub const fn label(self) -> &'static str {
        match self {
            DecodeError::BadChecksum => "bad_checksum",
            DecodeError::Truncated => "truncated",
            DecodeError::TrailingBytes => "trailing_bytes",
            DecodeError::NonCanonicalCompactSize => "noncanonical_compactsize",
            DecodeError::TooManyEntries => "too_many_entries",
            DecodeError::FieldTooLong => "field_too_long",
            DecodeError::InvalidValue => "invalid_value",
        }
    }
}
