//! Framing attacks: a header that lies about its length, frames whose checksum is wrong, and bytes
//! that are not frames at all. The node must refuse the first and the last from the header alone
//! and score the second until the threshold.

use super::{Behaviour, BotIo, Handshaker, HsState, Paced};
use oni_systems::wire::{checksum, Command, FrameHeader, Message, HEADER_LEN};

/// Waits for the handshake (when asked to) before the attack starts.
fn attack_ready(hs: &Handshaker, handshake: bool) -> bool {
    !handshake || hs.state == HsState::Ready
}

/// Sends one header whose length is over the command's bound, then nothing.
#[derive(Debug)]
pub struct OversizedFrame {
    command: [u8; 12],
    len: u32,
    handshake: bool,
    hs: Handshaker,
    sent: bool,
}

impl OversizedFrame {
    /// The scenario file's parameters: a command of 1–12 printable ASCII bytes.
    pub(crate) fn check(command: &str) -> Result<(), String> {
        let ok = !command.is_empty() && command.len() <= 12 && command.bytes().all(|b| (0x20..0x7f).contains(&b));
        if !ok {
            return Err(format!("OversizedFrame: command {command:?} is not 1-12 printable ASCII bytes"));
        }
        Ok(())
    }
}

impl OversizedFrame {
    /// `command` (1–12 printable bytes, checked by the loader) claiming `len` payload bytes.
    pub fn new(command: &str, len: u32, handshake: bool) -> Self {
        let mut name = [0u8; 12];
        let n = command.len().min(12);
        name[..n].copy_from_slice(&command.as_bytes()[..n]);
        OversizedFrame { command: name, len, handshake, hs: Handshaker::default(), sent: false }
    }
}

impl Behaviour for OversizedFrame {
    fn tick(&mut self, io: &mut BotIo) {
        if !io.connected() {
            if !self.sent && self.hs.state == HsState::Idle {
                io.connect();
            }
            return;
        }
        if !self.sent && attack_ready(&self.hs, self.handshake) {
            let mut h = [0u8; HEADER_LEN];
            FrameHeader::write(io.network, Command::Unknown, self.len, [0; 4], &mut h);
            h[4..16].copy_from_slice(&self.command);
            self.sent = io.write_raw(&h, 1);
        }
    }

    fn on_connected(&mut self, io: &mut BotIo) {
        if self.handshake {
            self.hs.start(io);
        }
    }

    fn on_message(&mut self, msg: Message, io: &mut BotIo) {
        self.hs.on_message(&msg, io);
    }
}

/// Repeats well-framed pings whose checksum does not match.
#[derive(Debug)]
pub struct BadChecksum {
    life: Paced,
}

impl BadChecksum {
    /// `msgs_per_s` bad frames per second.
    pub fn new(msgs_per_s: f64, handshake: bool) -> Self {
        BadChecksum { life: Paced::new(msgs_per_s, handshake) }
    }
}

impl Behaviour for BadChecksum {
    fn tick(&mut self, io: &mut BotIo) {
        for _ in 0..self.life.due(io) {
            let mut frame = Vec::new();
            Message::Ping(io.rng.next_u64()).encode_frame(io.network, &mut frame);
            // Flip one checksum bit: the frame is well delimited, the payload does not match.
            let sum = checksum(&frame[HEADER_LEN..]);
            frame[20] = sum[0] ^ 0x01;
            if !io.write_raw(&frame, 1) {
                break;
            }
        }
    }

    fn on_connected(&mut self, io: &mut BotIo) {
        self.life.on_connected(io);
    }

    fn on_message(&mut self, msg: Message, io: &mut BotIo) {
        self.life.on_message(&msg, io);
    }
}

/// Writes seeded random bytes.
#[derive(Debug)]
pub struct GarbageBytes {
    life: Paced,
}

impl GarbageBytes {
    /// `bytes_per_s` random bytes per second.
    pub fn new(bytes_per_s: u64, handshake: bool) -> Self {
        GarbageBytes { life: Paced::new(bytes_per_s as f64, handshake) }
    }
}

impl Behaviour for GarbageBytes {
    fn tick(&mut self, io: &mut BotIo) {
        let n = (self.life.due(io) as usize).min(io.window_free());
        let bytes: Vec<u8> = (0..n).map(|_| io.rng.next_u64() as u8).collect();
        if !bytes.is_empty() {
            io.write_raw(&bytes, 0);
        }
    }

    fn on_connected(&mut self, io: &mut BotIo) {
        self.life.on_connected(io);
    }

    fn on_message(&mut self, msg: Message, io: &mut BotIo) {
        self.life.on_message(&msg, io);
    }
}

/// Frames of a command nobody speaks, each carrying `len` payload bytes (checksum right): the node
/// must skip each payload as it arrives and never hold it, whatever the frame's size.
#[derive(Debug)]
pub struct UnknownCommand {
    len: u32,
    life: Paced,
    frame: Option<Vec<u8>>,
}

impl UnknownCommand {
    /// The scenario file's parameters: a payload of 1 byte to 4 MB.
    pub(crate) fn check(len: u32) -> Result<(), String> {
        if !(1..=4_000_000).contains(&len) {
            return Err(format!("UnknownCommand: len must be in 1..=4000000, got {len}"));
        }
        Ok(())
    }
}

impl UnknownCommand {
    /// `msgs_per_s` frames of `len` zero bytes under the command `junkjunk`.
    pub fn new(len: u32, msgs_per_s: f64, handshake: bool) -> Self {
        UnknownCommand { len, life: Paced::new(msgs_per_s, handshake), frame: None }
    }
}

impl Behaviour for UnknownCommand {
    fn tick(&mut self, io: &mut BotIo) {
        for _ in 0..self.life.due(io) {
            let (network, len) = (io.network, self.len as usize);
            let frame = self.frame.get_or_insert_with(|| {
                let payload = vec![0u8; len];
                let mut h = [0u8; HEADER_LEN];
                FrameHeader::write(network, Command::Unknown, len as u32, checksum(&payload), &mut h);
                h[4..16].copy_from_slice(b"junkjunk\0\0\0\0");
                let mut f = h.to_vec();
                f.extend_from_slice(&payload);
                f
            });
            if !io.write_raw(frame, 1) {
                break;
            }
        }
    }

    fn on_connected(&mut self, io: &mut BotIo) {
        self.life.on_connected(io);
    }

    fn on_message(&mut self, msg: Message, io: &mut BotIo) {
        self.life.on_message(&msg, io);
    }
}
