//! BIP324's ciphers: the length cipher (FSChaCha20), the packet AEAD (FSChaCha20Poly1305), both
//! rekeyed every 224 uses so a key taken later cannot read what went before, and the session's key
//! schedule (x-only ECDH over ElligatorSwift keys, HKDF-SHA256 salted with the network magic).
//! Each direction is its own value, so the reader owns the receiving half and the writer the
//! sending one, with no lock between them.

use bitcoin::hashes::{hmac, sha256, Hash, HashEngine};
use bitcoin::secp256k1::ellswift::{ElligatorSwift, ElligatorSwiftParty};
use bitcoin::secp256k1::{All, Secp256k1, SecretKey};
use chacha20::cipher::{KeyIvInit, StreamCipher, StreamCipherSeek};
use chacha20::ChaCha20;
use chacha20poly1305::aead::AeadInPlace;
use chacha20poly1305::{ChaCha20Poly1305, KeyInit, Tag};

/// Packets (or length chunks) between two rekeys.
pub const REKEY_INTERVAL: u32 = 224;
/// Encrypted length prefix of a packet.
pub const LENGTH_LEN: usize = 3;
/// Bytes a packet adds to its contents: length, header byte and Poly1305 tag.
pub const EXPANSION: usize = LENGTH_LEN + 1 + TAG_LEN;
/// Poly1305 tag.
pub const TAG_LEN: usize = 16;
/// The header byte's flag for a decoy packet, which the receiver drops.
pub const IGNORE_BIT: u8 = 0x80;
/// Each side's garbage terminator.
pub const TERMINATOR_LEN: usize = 16;
/// An ElligatorSwift-encoded public key, the first thing each side sends.
pub const KEY_LEN: usize = 64;

/// ChaCha20's 96-bit nonce as BIP324 lays it out: a 32-bit and a 64-bit counter, little endian.
fn nonce(low: u32, high: u64) -> [u8; 12] {
    let mut n = [0u8; 12];
    n[..4].copy_from_slice(&low.to_le_bytes());
    n[4..].copy_from_slice(&high.to_le_bytes());
    n
}

/// FSChaCha20: one ChaCha20 keystream across chunks; after 224 chunks the next 32 keystream bytes
/// are the new key and the nonce's high counter moves on.
struct FsChaCha20 {
    stream: ChaCha20,
    chunks: u32,
    rekeys: u64,
}

impl FsChaCha20 {
    fn new(key: [u8; 32]) -> Self {
        FsChaCha20 { stream: ChaCha20::new(&key.into(), &nonce(0, 0).into()), chunks: 0, rekeys: 0 }
    }

    fn crypt(&mut self, chunk: &mut [u8]) {
        self.stream.apply_keystream(chunk);
        self.chunks += 1;
        if self.chunks == REKEY_INTERVAL {
            let mut key = [0u8; 32];
            self.stream.apply_keystream(&mut key);
            self.rekeys += 1;
            self.stream = ChaCha20::new(&key.into(), &nonce(0, self.rekeys).into());
            self.chunks = 0;
        }
    }
}

/// FSChaCha20Poly1305: RFC 8439 ChaCha20-Poly1305 with the nonce (packet in period, period);
/// after 224 packets the new key is the first 32 bytes of the AEAD's keystream (which starts at
/// block 1: block 0 keys Poly1305) at nonce (2³²−1, period).
struct FsAead {
    key: [u8; 32],
    aead: ChaCha20Poly1305,
    packets: u32,
    rekeys: u64,
}

impl FsAead {
    fn new(key: [u8; 32]) -> Self {
        FsAead { key, aead: ChaCha20Poly1305::new(&key.into()), packets: 0, rekeys: 0 }
    }

    fn seal(&mut self, aad: &[u8], buf: &mut [u8]) -> [u8; TAG_LEN] {
        let n = nonce(self.packets, self.rekeys);
        // Cannot fail: BIP324 packets are far below the AEAD's 256 GiB limit.
        let tag = self.aead.encrypt_in_place_detached(&n.into(), aad, buf).unwrap_or_default();
        self.next_packet();
        tag.into()
    }

    fn open(&mut self, aad: &[u8], buf: &mut [u8], tag: &[u8; TAG_LEN]) -> bool {
        let n = nonce(self.packets, self.rekeys);
        let ok = self.aead.decrypt_in_place_detached(&n.into(), aad, buf, Tag::from_slice(tag)).is_ok();
        self.next_packet();
        ok
    }

    fn next_packet(&mut self) {
        self.packets += 1;
        if self.packets == REKEY_INTERVAL {
            let mut key = [0u8; 32];
            let mut stream = ChaCha20::new(&self.key.into(), &nonce(u32::MAX, self.rekeys).into());
            stream.seek(64u32);
            stream.apply_keystream(&mut key);
            *self = FsAead { packets: 0, rekeys: self.rekeys + 1, ..FsAead::new(key) };
        }
    }
}

/// The sending half of a session: frames packets.
pub struct SendCipher {
    len: FsChaCha20,
    pkt: FsAead,
}

impl SendCipher {
    /// Seals the packet laid out in `buf` as `[3 bytes of room][header byte][contents]`: writes and
    /// encrypts the length, encrypts header and contents in place with `aad`, appends the tag.
    /// The header byte is the caller's (0, or [`IGNORE_BIT`] for a decoy).
    pub fn seal(&mut self, buf: &mut Vec<u8>, aad: &[u8]) {
        let contents = buf.len() - LENGTH_LEN - 1;
        debug_assert!(contents < 1 << 24, "a packet's length has 24 bits");
        buf[..LENGTH_LEN].copy_from_slice(&(contents as u32).to_le_bytes()[..LENGTH_LEN]);
        self.len.crypt(&mut buf[..LENGTH_LEN]);
        let tag = self.pkt.seal(aad, &mut buf[LENGTH_LEN..]);
        buf.extend_from_slice(&tag);
    }
}

/// The receiving half of a session: opens packets.
pub struct RecvCipher {
    len: FsChaCha20,
    pkt: FsAead,
}

impl RecvCipher {
    /// The contents length a packet's 3 encrypted length bytes announce (the packet is that plus
    /// [`EXPANSION`] on the wire). Called once per packet, in order.
    pub fn open_len(&mut self, enc: [u8; LENGTH_LEN]) -> u32 {
        let mut len = enc;
        self.len.crypt(&mut len);
        u32::from_le_bytes([len[0], len[1], len[2], 0])
    }

    /// Authenticates and decrypts, in place, the rest of a packet (`[header][contents][tag]`, as
    /// many bytes as [`open_len`](Self::open_len) said plus 17). Returns whether the header marks
    /// a decoy, or `None` when the tag does not match (the connection must close).
    pub fn open(&mut self, packet: &mut [u8], aad: &[u8]) -> Option<bool> {
        let body = packet.len().checked_sub(TAG_LEN)?;
        let (body, tag) = packet.split_at_mut(body);
        let tag: &[u8; TAG_LEN] = (&*tag).try_into().ok()?;
        if body.is_empty() || !self.pkt.open(aad, body, tag) {
            return None;
        }
        Some(body[0] & IGNORE_BIT != 0)
    }
}

/// What the key exchange gives a session besides its ciphers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SessionInfo {
    /// Both sides derive it; shown by `getpeerinfo` so operators can compare ends.
    pub session_id: [u8; 32],
    /// What we send after our garbage.
    pub send_terminator: [u8; TERMINATOR_LEN],
    /// What ends the peer's garbage.
    pub recv_terminator: [u8; TERMINATOR_LEN],
}

/// The keys HKDF derives from the shared secret, before they are split by side.
struct Keys {
    initiator_l: [u8; 32],
    initiator_p: [u8; 32],
    responder_l: [u8; 32],
    responder_p: [u8; 32],
    terminators: [u8; 32],
    session_id: [u8; 32],
}

/// HKDF-SHA256 (RFC 5869) for 32-byte outputs: extract once, expand per label.
struct Hkdf([u8; 32]);

impl Hkdf {
    fn extract(salt: &[u8], ikm: &[u8]) -> Hkdf {
        let mut e = hmac::HmacEngine::<sha256::Hash>::new(salt);
        e.input(ikm);
        Hkdf(hmac::Hmac::from_engine(e).to_byte_array())
    }

    fn expand32(&self, info: &[u8]) -> [u8; 32] {
        let mut e = hmac::HmacEngine::<sha256::Hash>::new(&self.0);
        e.input(info);
        e.input(&[1]);
        hmac::Hmac::from_engine(e).to_byte_array()
    }
}

impl Keys {
    fn derive(shared_secret: &[u8; 32], magic: [u8; 4]) -> Keys {
        let mut salt = [0u8; 28];
        salt[..24].copy_from_slice(b"bitcoin_v2_shared_secret");
        salt[24..].copy_from_slice(&magic);
        let hkdf = Hkdf::extract(&salt, shared_secret);
        Keys {
            initiator_l: hkdf.expand32(b"initiator_L"),
            initiator_p: hkdf.expand32(b"initiator_P"),
            responder_l: hkdf.expand32(b"responder_L"),
            responder_p: hkdf.expand32(b"responder_P"),
            terminators: hkdf.expand32(b"garbage_terminators"),
            session_id: hkdf.expand32(b"session_id"),
        }
    }

    /// The ciphers of one side: its own keys to send, the other side's to receive.
    fn split(&self, initiating: bool) -> (SendCipher, RecvCipher, SessionInfo) {
        let (ours, theirs) = if initiating {
            ((self.initiator_l, self.initiator_p), (self.responder_l, self.responder_p))
        } else {
            ((self.responder_l, self.responder_p), (self.initiator_l, self.initiator_p))
        };
        let mut first = [0u8; TERMINATOR_LEN];
        let mut second = [0u8; TERMINATOR_LEN];
        first.copy_from_slice(&self.terminators[..TERMINATOR_LEN]);
        second.copy_from_slice(&self.terminators[TERMINATOR_LEN..]);
        let (send_terminator, recv_terminator) = if initiating { (first, second) } else { (second, first) };
        (
            SendCipher { len: FsChaCha20::new(ours.0), pkt: FsAead::new(ours.1) },
            RecvCipher { len: FsChaCha20::new(theirs.0), pkt: FsAead::new(theirs.1) },
            SessionInfo { session_id: self.session_id, send_terminator, recv_terminator },
        )
    }
}

/// Our side of the key exchange, until the peer's key arrives.
pub struct KeyExchange {
    secret: SecretKey,
    ours: [u8; KEY_LEN],
}

impl KeyExchange {
    /// A fresh exchange from 32 random bytes for the secret key and 32 for the encoding. `None`
    /// only if the bytes are not a valid secret key (zero or above the group order: about 2⁻¹²⁸
    /// for random bytes; the caller draws again).
    pub fn new(secret: [u8; 32], encoding_entropy: [u8; 32]) -> Option<KeyExchange> {
        let secret = SecretKey::from_slice(&secret).ok()?;
        static SECP: std::sync::OnceLock<Secp256k1<All>> = std::sync::OnceLock::new();
        let secp = SECP.get_or_init(Secp256k1::new);
        let ours = ElligatorSwift::from_seckey(secp, secret, Some(encoding_entropy)).to_array();
        Some(KeyExchange { secret, ours })
    }

    /// A fresh exchange and its garbage (0–4,095 bytes), all drawn from one 32-byte random seed
    /// expanded by ChaCha20: one small draw from the OS per connection, and the elliptic-curve
    /// work only when this is called.
    pub fn from_seed(seed: [u8; 32]) -> (KeyExchange, Vec<u8>) {
        let mut stream = ChaCha20::new(&seed.into(), &nonce(0, 0).into());
        let mut draw = |n: usize| {
            let mut b = vec![0u8; n];
            stream.apply_keystream(&mut b);
            b
        };
        let kex = loop {
            let (secret, entropy) = (draw(32), draw(32));
            // All but ~2^-128 of draws are valid secrets.
            if let Some(k) =
                KeyExchange::new(secret.try_into().unwrap_or([0; 32]), entropy.try_into().unwrap_or([0; 32]))
            {
                break k;
            }
        };
        let len = draw(2);
        let len = usize::from(u16::from_le_bytes([len[0], len[1]])) % (super::transport::MAX_GARBAGE_LEN + 1);
        (kex, draw(len))
    }

    /// An exchange with a given key and encoding (the published test vectors).
    pub fn with_encoding(secret: [u8; 32], ours: [u8; KEY_LEN]) -> Option<KeyExchange> {
        Some(KeyExchange { secret: SecretKey::from_slice(&secret).ok()?, ours })
    }

    /// The 64 bytes we send first.
    pub fn our_key(&self) -> &[u8; KEY_LEN] {
        &self.ours
    }

    /// Combines our key with the peer's: the session's two halves and what both sides share.
    pub fn finish(
        self,
        theirs: &[u8; KEY_LEN],
        initiating: bool,
        magic: [u8; 4],
    ) -> (SendCipher, RecvCipher, SessionInfo) {
        Self::keys(&self, theirs, initiating, magic).split(initiating)
    }

    fn keys(&self, theirs: &[u8; KEY_LEN], initiating: bool, magic: [u8; 4]) -> Keys {
        let ours = ElligatorSwift::from_array(self.ours);
        let theirs = ElligatorSwift::from_array(*theirs);
        let (a, b, party) =
            if initiating { (ours, theirs, ElligatorSwiftParty::A) } else { (theirs, ours, ElligatorSwiftParty::B) };
        let secret = ElligatorSwift::shared_secret(a, b, self.secret, party, None);
        Keys::derive(secret.as_secret_bytes(), magic)
    }

    /// The receiving half that opens what this side's own sending half seals (tests only: BIP324's
    /// vectors are checked by decrypting them again).
    #[cfg(test)]
    pub(super) fn self_decrypting(&self, theirs: &[u8; KEY_LEN], initiating: bool, magic: [u8; 4]) -> RecvCipher {
        self.keys(theirs, initiating, magic).split(!initiating).1
    }
}
