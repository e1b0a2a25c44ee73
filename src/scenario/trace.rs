//! The run's record: one entry per connection (who opened it, who closed it, why, and what crossed
//! it) and a running hash over every event in order, bytes included. Same seed, same hash: the hash
//! is how a run is shown to replay.

use oni_systems::resources::DisconnectReason;

/// How a connection ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Closed {
    /// The bot closed it first.
    ByBot {
        /// When (virtual ms).
        at_ms: u64,
    },
    /// The node closed it first.
    ByNode {
        /// When (virtual ms).
        at_ms: u64,
        /// Why, as the node said.
        reason: DisconnectReason,
        /// Frames the bot had written by then.
        frames_sent: u64,
        /// Bytes the bot had written by then.
        bytes_sent: u64,
    },
}

/// One connection, from the bot's connect to the first close.
#[derive(Clone, Debug)]
pub struct ConnRecord {
    /// Index of the instance that opened it.
    pub instance: usize,
    /// When (virtual ms).
    pub opened_ms: u64,
    /// How it ended; `None` when still open at the end.
    pub closed: Option<Closed>,
    /// Frames the bot wrote.
    pub frames_sent: u64,
    /// Bytes the bot wrote.
    pub bytes_sent: u64,
    /// Messages the bot received and decoded.
    pub msgs_recv: u64,
    /// Bytes the bot received.
    pub bytes_recv: u64,
}

impl ConnRecord {
    /// A connection instance `instance` just opened, nothing through it yet.
    pub fn opened(instance: usize, opened_ms: u64) -> Self {
        ConnRecord { instance, opened_ms, closed: None, frames_sent: 0, bytes_sent: 0, msgs_recv: 0, bytes_recv: 0 }
    }
}

/// FNV-1a, 64 bit: tiny, stable across platforms and releases (unlike std's hasher).
#[derive(Clone, Copy, Debug)]
pub struct TraceHash(u64);

impl Default for TraceHash {
    fn default() -> Self {
        TraceHash(0xcbf2_9ce4_8422_2325)
    }
}

impl TraceHash {
    /// Folds bytes in.
    pub fn bytes(&mut self, b: &[u8]) {
        for &x in b {
            self.0 ^= x as u64;
            self.0 = self.0.wrapping_mul(0x0000_0100_0000_01b3);
        }
    }

    /// Folds an event: a tag and its numbers.
    pub fn event(&mut self, tag: u8, fields: &[u64]) {
        self.bytes(&[tag]);
        for f in fields {
            self.bytes(&f.to_le_bytes());
        }
    }

    /// The hash so far.
    pub fn value(&self) -> u64 {
        self.0
    }
}

/// Event tags folded into the hash.
pub mod tag {
    /// A bot connected: t, conn, instance.
    pub const CONNECT: u8 = 1;
    /// A bot closed: t, conn.
    pub const BOT_CLOSE: u8 = 2;
    /// The node closed: t, conn, reason.
    pub const NODE_CLOSE: u8 = 3;
    /// Bytes the node sent arrived at a bot: t, conn, then the bytes.
    pub const DELIVER: u8 = 4;
    /// A connection's final record: conn, frames/bytes sent, msgs/bytes received.
    pub const RECORD: u8 = 5;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_depends_on_order_and_content() {
        let mut a = TraceHash::default();
        a.event(tag::CONNECT, &[1, 2]);
        let mut b = TraceHash::default();
        b.event(tag::CONNECT, &[2, 1]);
        assert_ne!(a.value(), b.value());
        let mut c = TraceHash::default();
        c.event(tag::CONNECT, &[1, 2]);
        assert_eq!(a.value(), c.value());
    }
}
