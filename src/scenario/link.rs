//! One simulated TCP connection: a byte pipe each way with a one-way latency, the node's reader
//! side (a [`FrameSplitter`], paused and resumed like the tokio reader, refused headers stop it),
//! the node's writer side (drained at a modelled bandwidth), the bot's reader side (the same splitter
//! and `Message::decode`), and who has closed which end. With BIP324 on, the node's side runs the
//! same v2 session the bridge runs (v1 detection, handshake, packets), byte for byte; a v2 bot's
//! side runs an initiator that seals what the bot sends and opens what the node sends.

use super::trace::{tag, TraceHash};
use oni_systems::components::{ConnId, Transport};
use oni_systems::resources::NetEvent;
use oni_systems::wire::v2::transport::{decoy_frame, seal_frame, Step, V2Session};
use oni_systems::wire::v2::SendCipher;
use oni_systems::wire::{FrameSplitter, Message, Network, HEADER_LEN};
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
    /// Bytes the bot's v2 session owes the node (its terminator and version packet, then the
    /// frames it queued before its cipher existed), written back by the simulator.
    pub wire_out: Vec<u8>,
}

/// A v2 bot's side of the transport.
pub struct BotV2 {
    session: V2Session,
    send: Option<SendCipher>,
    /// v1 frames the bot wrote before its cipher existed.
    pending: Vec<Vec<u8>>,
    failed: bool,
}

impl BotV2 {
    /// An initiator and the bytes it sends first (its key and garbage).
    pub fn initiator(session: V2Session, first: Vec<u8>) -> (BotV2, Vec<u8>) {
        (BotV2 { session, send: None, pending: Vec::new(), failed: false }, first)
    }

    /// What goes on the wire for `bytes` the bot wrote: its v1 frames sealed (or held until its
    /// cipher exists), anything that is not a whole frame as it is.
    pub fn outgoing(&mut self, bytes: &[u8], packet: &mut Vec<u8>) -> Vec<u8> {
        let (frames, tail) = frames_of(bytes);
        let mut wire = Vec::new();
        for frame in frames {
            match self.send.as_mut() {
                Some(cipher) => {
                    seal_frame(cipher, frame, packet);
                    wire.extend_from_slice(packet);
                }
                None => self.pending.push(frame.to_vec()),
            }
        }
        wire.extend_from_slice(tail);
        wire
    }

    /// Takes what the node sent: its handshake (our answer and the frames we held go to
    /// `wire_out`), then packets decoded as a peer decodes them into `msgs`. Returns what failed to
    /// open or decode: the node's fault.
    pub fn incoming(
        &mut self,
        mut rest: &[u8],
        packet: &mut Vec<u8>,
        msgs: &mut Vec<Message>,
        wire_out: &mut Vec<u8>,
    ) -> u64 {
        let mut bad = 0;
        while !rest.is_empty() && !self.failed {
            let Ok((used, step)) = self.session.push(rest) else {
                self.failed = true;
                return bad + 1;
            };
            rest = &rest[used..];
            match step {
                Step::Keyed(bytes, mut cipher) => {
                    wire_out.extend_from_slice(&bytes);
                    for frame in std::mem::take(&mut self.pending) {
                        seal_frame(&mut cipher, &frame, packet);
                        wire_out.extend_from_slice(packet);
                    }
                    self.send = Some(cipher);
                }
                Step::Frame(f) => match Message::decode(f.header.command, &f.payload) {
                    Ok(Some(m)) => msgs.push(m),
                    Ok(None) => {}
                    Err(_) => bad += 1,
                },
                // An initiator never detects v1 or answers a key first.
                Step::V1(_) | Step::Send(_) => bad += 1,
                Step::More | Step::Packet(_) | Step::Decoy(_) | Step::Established(_) => {}
            }
        }
        bad
    }
}

/// Splits concatenated v1 frames (as a bot's `send` writes them); what is not a whole frame is
/// returned as the tail.
fn frames_of(mut bytes: &[u8]) -> (Vec<&[u8]>, &[u8]) {
    let mut out = Vec::new();
    while bytes.len() >= HEADER_LEN {
        let len = u32::from_le_bytes([bytes[16], bytes[17], bytes[18], bytes[19]]) as usize;
        let Some(frame) = bytes.get(..HEADER_LEN + len) else { break };
        out.push(frame);
        bytes = &bytes[frame.len()..];
    }
    (out, bytes)
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
    /// The node's BIP324 responder while this connection may be, or is, v2 (`None`: v1).
    node_v2: Option<V2Session>,
    /// The node's sending cipher, once its v2 handshake gave it one.
    node_send: Option<SendCipher>,
    /// Frames the node queued before that (sealed and sent when it exists).
    node_pending: Vec<Vec<u8>>,
    /// Whether the world was told the transport.
    transport_reported: bool,
    /// Wire bytes in the writer and the frame bytes each stands for (the world's window counts its
    /// own frames); `credit_off` of the first already drained.
    writer_credit: VecDeque<(usize, usize)>,
    credit_off: usize,
    packet: Vec<u8>,
    /// A v2 bot's session.
    bot_v2: Option<BotV2>,
    /// The bot reads bytes, not frames (a raw v2 abuser): nothing it gets is framed or counted bad.
    pub bot_raw: bool,
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
            node_v2: None,
            node_send: None,
            node_pending: Vec::new(),
            transport_reported: false,
            writer_credit: VecDeque::new(),
            credit_off: 0,
            packet: Vec::new(),
            bot_v2: None,
            bot_raw: false,
        }
    }

    /// The node answers this connection as a BIP324 responder (v1 still detected).
    pub fn node_speaks_v2(&mut self, responder: V2Session) {
        self.node_v2 = Some(responder);
    }

    /// The bot speaks v2: its first bytes (key and garbage) go out, readable from `ready_ms`.
    pub fn bot_speaks_v2(&mut self, ready_ms: u64, bot: BotV2, first: Vec<u8>) {
        self.bot_v2 = Some(bot);
        self.bot_writes_wire(ready_ms, first);
    }

    /// Bytes straight onto the wire towards the node (a v2 bot's handshake, already sealed data).
    pub fn bot_writes_wire(&mut self, ready_ms: u64, bytes: Vec<u8>) {
        if !self.node_closed && !bytes.is_empty() {
            self.to_node_bytes += bytes.len();
            self.to_node.push_back(Chunk { ready_ms, bytes, off: 0 });
        }
    }

    /// The payload allocation the node's reader holds for the frame it is reading.
    pub fn reader_held(&self) -> usize {
        self.reader.buffered_capacity()
    }

    /// The bot writes `bytes`, readable by the node from `ready_ms`. A v2 bot's frames are sealed
    /// (or held until its cipher exists); anything that is not a whole frame goes out as it is.
    pub fn bot_writes(&mut self, ready_ms: u64, bytes: Vec<u8>) {
        let Some(bot) = self.bot_v2.as_mut() else { return self.bot_writes_wire(ready_ms, bytes) };
        let wire = bot.outgoing(&bytes, &mut self.packet);
        self.bot_writes_wire(ready_ms, wire);
    }

    /// The bot closes its socket: what it wrote still arrives, then EOF; what the node sends is lost.
    pub fn bot_closes(&mut self) {
        self.bot_closed = true;
        self.writer.clear();
        self.writer_credit.clear();
        self.credit_off = 0;
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

    /// The node hands a frame to its writer: as it is on v1, sealed on v2, held while a v2
    /// handshake has not given the node its cipher.
    pub fn node_writes(&mut self, bytes: &[u8]) {
        if self.bot_closed {
            return;
        }
        if let Some(cipher) = self.node_send.as_mut() {
            seal_frame(cipher, bytes, &mut self.packet);
            self.writer.extend_from_slice(&self.packet);
            self.writer_credit.push_back((self.packet.len(), bytes.len()));
        } else if self.node_v2.is_some() {
            self.node_pending.push(bytes.to_vec());
        } else {
            self.writer.extend_from_slice(bytes);
            self.writer_credit.push_back((bytes.len(), bytes.len()));
        }
    }

    /// Handshake bytes of the node's v2 session: on the wire, standing for no frame.
    fn node_writes_handshake(&mut self, bytes: &[u8]) {
        if !self.bot_closed {
            self.writer.extend_from_slice(bytes);
            self.writer_credit.push_back((bytes.len(), 0));
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
        if !self.transport_reported && self.node_v2.is_none() {
            // A v1-only connection: settled from the start, as the bridge reports it.
            self.transport_reported = true;
            events.push(NetEvent::Transport { conn, transport: Transport::V1 });
        }
        let mut read = 0;
        while !self.paused && !self.reader_failed && read < budget {
            let Some(ch) = self.to_node.front_mut() else { break };
            if ch.ready_ms > now_ms {
                break;
            }
            let take = (ch.bytes.len() - ch.off).min(budget - read);
            let (from, bytes) = (ch.off, std::mem::take(&mut ch.bytes));
            self.node_takes(conn, &bytes[from..from + take], events);
            let Some(ch) = self.to_node.front_mut() else { break };
            ch.bytes = bytes;
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

    /// The node's reader takes `rest`: through the v2 session while there is one, else the splitter.
    fn node_takes(&mut self, conn: ConnId, mut rest: &[u8], events: &mut Vec<NetEvent>) {
        while !rest.is_empty() && !self.reader_failed {
            let Some(session) = self.node_v2.as_mut() else {
                let (used, r) = self.reader.push(rest);
                rest = &rest[used..];
                match r {
                    Ok(Some(frame)) => events.push(NetEvent::Frame { conn, frame }),
                    Ok(None) => {}
                    Err(error) => {
                        events.push(NetEvent::BadHeader { conn, error });
                        self.reader_failed = true;
                    }
                }
                continue;
            };
            let (used, step) = match session.push(rest) {
                Ok(r) => r,
                Err(error) => {
                    events.push(match error.as_header_error() {
                        Some(error) => NetEvent::BadHeader { conn, error },
                        None => NetEvent::TransportFailed { conn, error },
                    });
                    self.reader_failed = true;
                    return;
                }
            };
            rest = &rest[used..];
            match step {
                Step::V1(prefix) => {
                    // A v1 peer: the 16 bytes (no whole frame yet) and the rest go to the splitter.
                    self.node_v2 = None;
                    self.transport_reported = true;
                    events.push(NetEvent::Transport { conn, transport: Transport::V1 });
                    let (_, r) = self.reader.push(&prefix);
                    debug_assert!(matches!(r, Ok(None)));
                    for frame in std::mem::take(&mut self.node_pending) {
                        self.node_writes(&frame);
                    }
                }
                Step::Send(bytes) => self.node_writes_handshake(&bytes),
                Step::Keyed(bytes, cipher) => {
                    self.node_writes_handshake(&bytes);
                    self.node_send = Some(cipher);
                    for frame in std::mem::take(&mut self.node_pending) {
                        self.node_writes(&frame);
                    }
                }
                Step::Established(info) => {
                    self.transport_reported = true;
                    events.push(NetEvent::Transport { conn, transport: Transport::V2 { session_id: info.session_id } });
                }
                Step::Frame(frame) => events.push(NetEvent::Frame { conn, frame }),
                Step::Decoy(len) => events.push(NetEvent::Frame { conn, frame: decoy_frame(len) }),
                Step::More | Step::Packet(_) => {}
            }
        }
    }

    /// The node's writer puts up to `budget` bytes on the wire, arriving at `ready_ms`; returns the
    /// frame bytes they stand for (the `Written` the shell would report: v1 bytes as they go, a v2
    /// packet's frame once the whole packet is out, handshake bytes nothing). A bot that does not
    /// read takes at most its receive window.
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
        self.credit(n)
    }

    /// The frame bytes `n` drained wire bytes stand for.
    fn credit(&mut self, mut n: usize) -> usize {
        let mut frames = 0;
        while n > 0 {
            let Some(&(wire, frame)) = self.writer_credit.front() else { break };
            let take = (wire - self.credit_off).min(n);
            if wire == frame {
                frames += take;
            }
            self.credit_off += take;
            n -= take;
            if self.credit_off == wire {
                if wire != frame {
                    frames += frame;
                }
                self.writer_credit.pop_front();
                self.credit_off = 0;
            }
        }
        frames
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
            if self.bot_raw {
                continue;
            }
            if let Some(bot) = self.bot_v2.as_mut() {
                d.bad_frames += bot.incoming(rest, &mut self.packet, &mut d.msgs, &mut d.wire_out);
                continue;
            }
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
        assert!(
            matches!(ev[..], [NetEvent::Transport { transport: Transport::V1, .. }]),
            "v1 settled, no data due yet"
        );
        ev.clear();
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
        assert!(matches!(
            ev[..],
            [NetEvent::Transport { .. }, NetEvent::BadHeader { error: HeaderError::BadMagic, .. }]
        ));
        assert_eq!(l.to_node_bytes, 0, "the rest is dropped");
        l.bot_closes();
        l.node_reads(ConnId(1), 10, 1_000, &mut ev);
        assert_eq!(ev.len(), 2, "nothing after a failed header, not even EOF");
    }

    #[test]
    fn a_v2_connection_runs_byte_for_byte_and_the_writer_credits_whole_frames() {
        use oni_systems::resources::Rng;
        let mut l = Link::new(0, Network::Regtest);
        let mut rng = Rng::seeded(5);
        let (kex, garbage) = crate::scenario::v2::keys(&mut rng);
        l.node_speaks_v2(V2Session::responder(Network::Regtest, kex, garbage));
        let (kex, garbage) = crate::scenario::v2::keys(&mut rng);
        let (session, first) = V2Session::initiator(Network::Regtest, kex, garbage);
        let (bot, first) = BotV2::initiator(session, first);
        l.bot_speaks_v2(0, bot, first);
        // The bot's ping waits for its cipher; the node's key and garbage go out first.
        l.bot_writes(0, ping_bytes(1));
        let mut ev = Vec::new();
        l.node_reads(ConnId(1), 0, usize::MAX, &mut ev);
        assert!(ev.is_empty(), "nothing settled yet");
        let drained = l.node_writer_drains(0, usize::MAX);
        assert_eq!(drained, 0, "handshake bytes stand for no frame");
        let mut h = TraceHash::default();
        let d = l.deliver(1, 0, &mut h);
        assert_eq!((d.msgs.len(), d.bad_frames), (0, 0));
        assert!(!d.wire_out.is_empty(), "the bot's terminator, version packet and held ping");
        l.bot_writes_wire(0, d.wire_out);
        l.node_reads(ConnId(1), 0, usize::MAX, &mut ev);
        let kinds: Vec<_> =
            ev.iter().map(|e| matches!(e, NetEvent::Transport { transport: Transport::V2 { .. }, .. })).collect();
        assert_eq!(kinds, [true, false], "v2 settled, then the ping");
        assert!(matches!(&ev[1], NetEvent::Frame { frame, .. } if frame.header.authenticated));
        // The node's pong is sealed; its 32-byte frame is credited once the packet is out.
        let mut pong = Vec::new();
        Message::Pong(0).encode_frame(Network::Regtest, &mut pong);
        l.node_writes(&pong);
        let wire = l.writer.len();
        assert_ne!(wire, pong.len(), "a packet, not the v1 frame");
        assert_eq!(l.node_writer_drains(0, wire - 1), 0, "part of a packet credits nothing");
        assert_eq!(l.node_writer_drains(0, usize::MAX), pong.len(), "the whole packet: its frame");
        let d = l.deliver(1, 0, &mut h);
        assert!(matches!(d.msgs[..], [Message::Pong(0)]), "{:?}", d.msgs);
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
