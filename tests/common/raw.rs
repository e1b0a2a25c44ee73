//! A scripted peer on a real TCP socket speaking oni's codec: for tests that need a peer with
//! choices Core's nodes do not make (txid-only relay, say).

use oni_systems::harness::TestNode;
use oni_systems::wire::{FrameSplitter, Message, Network};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

/// One connection, framed.
pub struct RawPeer {
    stream: TcpStream,
    splitter: FrameSplitter,
    /// Every message received so far, in order.
    pub received: Vec<Message>,
}

impl RawPeer {
    /// Connects and completes the handshake; `wtxidrelay` chooses BIP339.
    pub fn handshake(addr: SocketAddr, wtxidrelay: bool) -> RawPeer {
        let stream = TcpStream::connect(addr).unwrap();
        stream.set_read_timeout(Some(Duration::from_millis(200))).unwrap();
        let mut peer = RawPeer { stream, splitter: FrameSplitter::new(Network::Regtest), received: Vec::new() };
        peer.send(&TestNode::peer_version(0x7a7a));
        if wtxidrelay {
            peer.send(&Message::WtxidRelay);
        }
        peer.send(&Message::Verack);
        assert!(peer.wait_for(Duration::from_secs(10), |m| matches!(m, Message::Verack)).is_some(), "no verack");
        peer
    }

    /// The socket (to write raw bytes on a clone of it).
    pub fn stream(&self) -> &TcpStream {
        &self.stream
    }

    /// Sends one message.
    pub fn send(&mut self, msg: &Message) {
        let mut frame = Vec::new();
        msg.encode_frame(Network::Regtest, &mut frame);
        self.stream.write_all(&frame).unwrap();
    }

    /// Reads until a message matching `want` arrives (answering pings), or the timeout.
    pub fn wait_for(&mut self, timeout: Duration, want: impl Fn(&Message) -> bool) -> Option<Message> {
        let start = Instant::now();
        let mut buf = vec![0u8; 64 * 1024];
        let mut seen = self.received.len();
        while start.elapsed() < timeout {
            while seen < self.received.len() {
                seen += 1;
                if want(&self.received[seen - 1]) {
                    return Some(self.received[seen - 1].clone());
                }
            }
            let n = match self.stream.read(&mut buf) {
                Ok(0) => return None,
                Ok(n) => n,
                Err(_) => continue,
            };
            let mut at = 0;
            while at < n {
                let (used, frame) = self.splitter.push(&buf[at..n]);
                at += used;
                if let Ok(Some(f)) = frame {
                    if let Ok(Some(m)) = Message::decode(f.header.command, &f.payload) {
                        if let Message::Ping(nonce) = m {
                            self.send(&Message::Pong(nonce));
                        }
                        self.received.push(m);
                    }
                }
            }
        }
        None
    }
}
