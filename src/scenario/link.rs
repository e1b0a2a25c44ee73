//! One simulated TCP connection: a byte pipe each way with a one-way latency, the node's reader
//! side (a [`FrameSplitter`], paused and resumed like the tokio reader, refused headers stop it),
//! the node's writer side (drained at a modelled bandwidth), the bot's reader side (the same splitter
//! and `Message::decode`), and who has closed which end.

use super::trace::{tag, TraceHash};
use oni_systems::components::ConnId;
use oni_systems::resources::NetEvent;
use oni_systems::wire::{FrameSplitter, Message, Network};
use std::collections::VecDeque;

/// Bytes in flight, usable from `ready_ms` on; `off` of them already taken.
struct Chunk {
    ready_ms: u64,
    bytes: Vec<u8>,
    off: usize,
}

/// What reached the bot in one delivery.
#[derive(Default)]
pub struct Delivery {
    /// Decoded messages, in order.
    pub msgs: Vec<Message>,
    /// Bytes delivered.
    pub bytes: u64,
    /// Frames that did not frame or decode (a node bug if ever non-zero).
    pub bad_frames: u64,
    /// The node's close reached the bot after everything it sent.
    pub eof: bool,
}

/// The connection.
pub struct Link {
    /// The instance that opened it.
    pub instance: usize,
    to_node: VecDeque<Chunk>,
    /// Bytes the bot wrote that the node has not read: its TCP send window in use.
    pub to_node_bytes: usize,
    reader: FrameSplitter,
    reader_failed: bool,
    /// The node asked to stop reading.
    pub paused: bool,
    bot_closed: bool,
    eof_reported: bool,
    writer: Vec<u8>,
    to_bot: VecDeque<Chunk>,
    /// Bytes on the wire towards the bot, not yet delivered.
    to_bot_bytes: usize,
    /// Whether the bot reads now; while it does not, what the node sends stays on the wire.
    pub bot_reads: bool,
    /// Bytes the wire holds for a bot that does not read before the node's writer stalls.
    pub recv_window: usize,
    bot_reader: FrameSplitter,
    node_closed: bool,
    eof_delivered: bool,
}

impl Link {
    /// A fresh connection.
    pub fn new(instance: usize, network: Network) -> Self {
        Link {
            instance,
            to_node: VecDeque::new(),
            to_node_bytes: 0,
            reader: FrameSplitter::new(network),
            reader_failed: false,
            paused: false,
            bot_closed: false,
            eof_reported: false,
            writer: Vec::new(),
            to_bot: VecDeque::new(),
            to_bot_bytes: 0,
            bot_reads: true,
            recv_window: usize::MAX,
            bot_reader: FrameSplitter::new(network),
            node_closed: false,
            eof_delivered: false,
        }
    }

    /// The payload allocation the node's reader holds for the frame it is reading.
    pub fn reader_held(&self) -> usize {
        self.reader.buffered_capacity()
    }

    /// The bot writes `bytes`, readable by the node from `ready_ms`.
    pub fn bot_writes(&mut self, ready_ms: u64, bytes: Vec<u8>) {
        if !self.node_closed && !bytes.is_empty() {
            self.to_node_bytes += bytes.len();
            self.to_node.push_back(Chunk { ready_ms, bytes, off: 0 });
        }
    }

    /// The bot closes its socket: what it wrote still arrives, then EOF; what the node sends is lost.
    pub fn bot_closes(&mut self) {
        self.bot_closed = true;
        self.writer.clear();
        self.to_bot.clear();
        self.to_bot_bytes = 0;
    }

    /// The node closes: what the bot has in flight is lost; what the node wrote still arrives.
    /// False when it had already closed.
    pub fn node_closes(&mut self) -> bool {
        let first = !self.node_closed;
        self.node_closed = true;
        self.to_node.clear();
        self.to_node_bytes = 0;
        first
    }

    /// The node hands bytes to its writer.
    pub fn node_writes(&mut self, bytes: &[u8]) {
        if !self.bot_closed {
            self.writer.extend_from_slice(bytes);
        }
    }

    /// Both ends are closed and seen closed: the link can go.
    pub fn finished(&self) -> bool {
        self.node_closed && (self.bot_closed || self.eof_delivered)
    }

    /// The node's reader takes up to `budget` due bytes, framing them into events (a refused header
    /// stops the reader for good); then reports EOF once the bot closed and everything was read.
    pub fn node_reads(&mut self, conn: ConnId, now_ms: u64, budget: usize, events: &mut Vec<NetEvent>) {
        if self.node_closed {
            return;
        }
        let mut read = 0;
        while !self.paused && !self.reader_failed && read < budget {
            let Some(ch) = self.to_node.front_mut() else { break };
            if ch.ready_ms > now_ms {
                break;
            }
            let take = (ch.bytes.len() - ch.off).min(budget - read);
            let mut rest = &ch.bytes[ch.off..ch.off + take];
            while !rest.is_empty() {
                let (used, r) = self.reader.push(rest);
                rest = &rest[used..];
                match r {
                    Ok(Some(frame)) => events.push(NetEvent::Frame { conn, frame }),
                    Ok(None) => {}
                    Err(error) => {
                        events.push(NetEvent::BadHeader { conn, error });
                        self.reader_failed = true;
                        break;
                    }
                }
            }
            ch.off += take;
            read += take;
            self.to_node_bytes -= take;
            if ch.off == ch.bytes.len() {
                self.to_node.pop_front();
            }
        }
        if self.reader_failed {
            self.to_node.clear();
            self.to_node_bytes = 0;
        }
        if self.bot_closed && self.to_node.is_empty() && !self.eof_reported && !self.reader_failed {
            self.eof_reported = true;
            events.push(NetEvent::Closed { conn, connect_failed: false });
        }
    }

    /// The node's writer puts up to `budget` bytes on the wire, arriving at `ready_ms`; returns how
    /// many (the `Written` the shell would report). A bot that does not read takes at most its
    /// receive window.
    pub fn node_writer_drains(&mut self, ready_ms: u64, budget: usize) -> usize {
        let budget =
            if self.bot_reads { budget } else { budget.min(self.recv_window.saturating_sub(self.to_bot_bytes)) };
        if self.writer.is_empty() || budget == 0 {
            return 0;
        }
        let n = self.writer.len().min(budget);
        let bytes: Vec<u8> =
            if n == self.writer.len() { std::mem::take(&mut self.writer) } else { self.writer.drain(..n).collect() };
        self.to_bot.push_back(Chunk { ready_ms, bytes, off: 0 });
        self.to_bot_bytes += n;
        n
    }

    /// Everything due for the bot: framed and decoded like a peer would, folded into the trace. A bot
    /// that does not read gets nothing but the node's close (its next write would fail).
    pub fn deliver(&mut self, conn: u64, now_ms: u64, hash: &mut TraceHash) -> Delivery {
        let mut d = Delivery::default();
        if !self.bot_reads {
            if self.node_closed && !self.eof_delivered {
                self.writer.clear();
                self.to_bot.clear();
                self.to_bot_bytes = 0;
                self.eof_delivered = true;
                d.eof = true;
            }
            return d;
        }
        while self.to_bot.front().is_some_and(|ch| ch.ready_ms <= now_ms) {
            let Some(ch) = self.to_bot.pop_front() else { break };
            self.to_bot_bytes -= ch.bytes.len();
            hash.event(tag::DELIVER, &[now_ms, conn]);
            hash.bytes(&ch.bytes);
            d.bytes += ch.bytes.len() as u64;
            let mut rest = &ch.bytes[ch.off..];
            while !rest.is_empty() {
                let (used, r) = self.bot_reader.push(rest);
                rest = &rest[used..];
                match r {
                    Ok(Some(f)) => match Message::decode(f.header.command, &f.payload) {
                        Ok(Some(m)) => d.msgs.push(m),
                        Ok(None) => {}
                        Err(_) => d.bad_frames += 1,
                    },
                    Ok(None) => {}
                    Err(_) => {
                        d.bad_frames += 1;
                        break;
                    }
                }
            }
        }
        if self.node_closed && self.writer.is_empty() && self.to_bot.is_empty() && !self.eof_delivered {
            self.eof_delivered = true;
            d.eof = true;
        }
        d
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use oni_systems::wire::HeaderError;

    fn ping_bytes(n: usize) -> Vec<u8> {
        let mut out = Vec::new();
        for i in 0..n {
            Message::Ping(i as u64).encode_frame(Network::Regtest, &mut out);
        }
        out
    }

    fn kinds(events: &[NetEvent]) -> Vec<&'static str> {
        events
            .iter()
            .map(|e| match e {
                NetEvent::Frame { .. } => "frame",
                NetEvent::BadHeader { .. } => "bad_header",
                NetEvent::Closed { .. } => "closed",
                _ => "other",
            })
            .collect()
    }

    #[test]
    fn bytes_wait_for_their_latency_and_the_read_budget() {
        let mut l = Link::new(0, Network::Regtest);
        l.bot_writes(30, ping_bytes(4));
        let mut ev = Vec::new();
        l.node_reads(ConnId(1), 20, 1_000, &mut ev);
        assert!(ev.is_empty(), "not due yet");
        l.node_reads(ConnId(1), 30, 64, &mut ev);
        assert_eq!(kinds(&ev), ["frame", "frame"], "64 bytes is two 32-byte pings");
        assert_eq!(l.to_node_bytes, 64);
        l.paused = true;
        l.node_reads(ConnId(1), 40, 1_000, &mut ev);
        assert_eq!(ev.len(), 2, "a paused reader reads nothing");
        l.paused = false;
        l.bot_closes();
        l.node_reads(ConnId(1), 50, 1_000, &mut ev);
        assert_eq!(kinds(&ev), ["frame", "frame", "frame", "frame", "closed"], "data, then EOF");
    }

    #[test]
    fn a_refused_header_stops_the_reader_for_good() {
        let mut l = Link::new(0, Network::Regtest);
        let mut bytes = vec![0xde, 0xad, 0xbe, 0xef];
        bytes.extend(ping_bytes(2));
        l.bot_writes(0, bytes);
        l.bot_writes(0, ping_bytes(1));
        let mut ev = Vec::new();
        l.node_reads(ConnId(1), 0, 1_000, &mut ev);
        assert!(matches!(ev[..], [NetEvent::BadHeader { error: HeaderError::BadMagic, .. }]));
        assert_eq!(l.to_node_bytes, 0, "the rest is dropped");
        l.bot_closes();
        l.node_reads(ConnId(1), 10, 1_000, &mut ev);
        assert_eq!(ev.len(), 1, "nothing after a failed header, not even EOF");
    }

    #[test]
    fn the_bot_sees_what_the_node_wrote_then_eof() {
        let mut l = Link::new(0, Network::Regtest);
        let mut h = TraceHash::default();
        l.node_writes(&ping_bytes(3));
        assert_eq!(l.node_writer_drains(10, 40), 40, "bandwidth budget");
        assert!(l.node_closes());
        assert!(!l.node_closes(), "closing twice is reported once");
        assert_eq!(l.deliver(1, 5, &mut h).msgs.len(), 0, "not due yet");
        let d = l.deliver(1, 10, &mut h);
        assert_eq!((d.msgs.len(), d.eof), (1, false), "one whole ping, more in the writer");
        assert_eq!(l.node_writer_drains(20, 1_000), 56);
        let d = l.deliver(1, 20, &mut h);
        assert_eq!((d.msgs.len(), d.eof, d.bad_frames), (2, true, 0));
        assert!(l.finished());
    }
}
