//! One direction of a node-to-node connection: the sender's writer (what its world handed over and
//! the wire has not taken yet), the wire (chunks that arrive a latency after they left, drained
//! from the writer at the link's bandwidth), and the receiver's reader (the same [`FrameSplitter`]
//! the tokio reader and the bot simulator use, paused and resumed as the receiving world asks).
//! Both worlds speak v1 through the real codec: frames are split, checksummed and decoded by the
//! systems exactly as they are from a socket.

use oni_systems::components::ConnId;
use oni_systems::resources::NetEvent;
use oni_systems::wire::{Command, FrameSplitter, Network};
use std::collections::VecDeque;

/// Bytes on the wire, readable from `ready_ms`, `off` of them already read.
struct Chunk {
    ready_ms: u64,
    bytes: Vec<u8>,
    off: usize,
}

/// A frame the reader handed to the receiving world (for the byte counts and the trace).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Framed {
    /// Its command.
    pub command: Command,
    /// Its size on the wire, header included.
    pub wire_bytes: usize,
    /// Its header's checksum (folds the payload into the trace at no cost).
    pub checksum: [u8; 4],
}

/// One direction of a connection.
pub struct Pipe {
    writer: Vec<u8>,
    wire: VecDeque<Chunk>,
    reader: FrameSplitter,
    reader_failed: bool,
    /// The receiving world asked its reader to stop.
    pub paused: bool,
}

impl Pipe {
    /// An empty pipe.
    pub fn new(network: Network) -> Self {
        Pipe {
            writer: Vec::new(),
            wire: VecDeque::new(),
            reader: FrameSplitter::new(network),
            reader_failed: false,
            paused: false,
        }
    }

    /// The sender's world hands bytes to its writer.
    pub fn write(&mut self, bytes: &[u8]) {
        self.writer.extend_from_slice(bytes);
    }

    /// The writer puts up to `budget` bytes on the wire, arriving at `ready_ms`; returns how many
    /// (the `Written` the sender's world is told).
    pub fn drain(&mut self, ready_ms: u64, budget: usize) -> usize {
        let n = self.writer.len().min(budget);
        if n == 0 {
            return 0;
        }
        let bytes =
            if n == self.writer.len() { std::mem::take(&mut self.writer) } else { self.writer.drain(..n).collect() };
        self.wire.push_back(Chunk { ready_ms, bytes, off: 0 });
        n
    }

    /// Bytes the sender handed over that are not on the wire yet.
    pub fn unsent(&self) -> usize {
        self.writer.len()
    }

    /// Whether nothing is held: writer and wire empty.
    pub fn is_empty(&self) -> bool {
        self.writer.is_empty() && self.wire.is_empty()
    }

    /// The receiver's reader takes up to `budget` due bytes, framing them into `events`; each frame
    /// is also reported to `seen`. A refused header stops the reader for good (the world closes).
    pub fn read(
        &mut self,
        conn: ConnId,
        now_ms: u64,
        budget: usize,
        events: &mut Vec<NetEvent>,
        seen: &mut impl FnMut(Framed),
    ) {
        let mut read = 0;
        while !self.paused && !self.reader_failed && read < budget {
            let Some(ch) = self.wire.front_mut() else { break };
            if ch.ready_ms > now_ms {
                break;
            }
            let take = (ch.bytes.len() - ch.off).min(budget - read);
            let mut rest = &ch.bytes[ch.off..ch.off + take];
            while !rest.is_empty() {
                let (used, r) = self.reader.push(rest);
                rest = &rest[used..];
                match r {
                    Ok(Some(frame)) => {
                        seen(Framed {
                            command: frame.header.command,
                            wire_bytes: frame.wire_len(),
                            checksum: frame.header.checksum,
                        });
                        events.push(NetEvent::Frame { conn, frame });
                    }
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
            if ch.off == ch.bytes.len() {
                self.wire.pop_front();
            }
        }
        if self.reader_failed {
            self.wire.clear();
        }
    }

    /// The receiver closed: whatever is still coming is lost.
    pub fn drop_all(&mut self) {
        self.writer.clear();
        self.wire.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use oni_systems::wire::Message;

    #[test]
    fn frames_arrive_after_latency_within_bandwidth_and_budget() {
        let mut p = Pipe::new(Network::Regtest);
        let mut bytes = Vec::new();
        for i in 0..3 {
            Message::Ping(i).encode_frame(Network::Regtest, &mut bytes);
        }
        p.write(&bytes);
        assert_eq!(p.drain(50, 40), 40, "bandwidth");
        assert_eq!(p.drain(60, 1_000), 56);
        let (mut ev, mut seen) = (Vec::new(), Vec::new());
        p.read(ConnId(1), 49, 1_000, &mut ev, &mut |f| seen.push(f));
        assert!(ev.is_empty(), "not due yet");
        p.read(ConnId(1), 50, 1_000, &mut ev, &mut |f| seen.push(f));
        assert_eq!(ev.len(), 1, "one whole ping in the first 40 bytes");
        p.paused = true;
        p.read(ConnId(1), 60, 1_000, &mut ev, &mut |f| seen.push(f));
        assert_eq!(ev.len(), 1, "paused");
        p.paused = false;
        p.read(ConnId(1), 60, 32, &mut ev, &mut |f| seen.push(f));
        assert_eq!(ev.len(), 2, "the read budget");
        p.read(ConnId(1), 60, 1_000, &mut ev, &mut |f| seen.push(f));
        assert_eq!(ev.len(), 3);
        assert!(p.is_empty());
        assert!(seen.iter().all(|f| f.command == Command::Ping && f.wire_bytes == 32));
    }
}
