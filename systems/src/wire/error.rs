//! Why a frame or payload was refused. Each variant is a distinct reason that tests match on,
//! counters are labelled with, and operators see.

labelled! {
    /// What is wrong with a frame header. `BadMagic` and `Oversized` end the connection (nothing
    /// after them can be trusted to be framed); `BadCommand` is only counted: the frame is still
    /// delimited, and Core drops it and reads on, so it is skipped like an unknown command.
    HeaderError {
        /// The first four bytes are not this network's magic (also what a BIP324 v2 attempt looks
        /// like).
        BadMagic = "bad_magic",
        /// The command is not printable ASCII followed only by NUL padding (counted; see
        /// [`super::FrameHeader::bad_name`]).
        BadCommand = "bad_command",
        /// The length is over the absolute maximum or over the command's own bound.
        Oversized = "oversized",
    }
}

labelled! {
    /// A payload that does not decode. The frame was well delimited, so the connection can go on:
    /// as Core, the message is dropped and counted (only `TooManyEntries`, a list really over its
    /// limit, is a violation Core punishes).
    DecodeError {
        /// sha256d of the payload does not match the header's checksum.
        BadChecksum = "bad_checksum",
        /// The payload ended before the message did.
        Truncated = "truncated",
        /// Bytes were left after the message. Refused only where a buffer must hold exactly one
        /// item (stored blocks); on the wire they are ignored and counted, as Core ignores them.
        TrailingBytes = "trailing_bytes",
        /// A CompactSize used more bytes than its value needs.
        NonCanonicalCompactSize = "noncanonical_compactsize",
        /// A count is over the limit for its list.
        TooManyEntries = "too_many_entries",
        /// A length-prefixed string or byte field is over its bound.
        FieldTooLong = "field_too_long",
        /// A value no valid message can carry (unknown inv type, bad addrv2 length for its
        /// network...).
        InvalidValue = "invalid_value",
    }
}
