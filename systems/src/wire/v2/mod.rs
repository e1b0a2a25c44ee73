//! BIP324 v2 transport, as pure state the IO bridge and the simulator drive: the ciphers and key
//! schedule ([`cipher`]), the short message ids ([`ids`]) and the handshake and packet framing of
//! one connection ([`transport`]). No sockets, no clock: randomness comes in as bytes.
//!
//! Why our own layer rather than the `bip324` crate (the rust-bitcoin organisation's sans-IO
//! implementation): the parts that decide robustness are exactly the ones we would have to write
//! around it — v1 detection on 16 bytes as they arrive (it reads 64 and compares the magic only),
//! a packet's length decrypted and bounded before room is made for it so the reader can wait for
//! receive credit in between, frames handed over as the same `RawFrame`s the v1 reader makes, one
//! state machine the bridge, the simulator and the fuzzer all drive. What is left below that is
//! the cryptography, which we take from vetted crates (RustCrypto's ChaCha20 and Poly1305,
//! libsecp256k1's ElligatorSwift through `bitcoin`); BIP324's published vectors pin the rest.

pub mod cipher;
pub mod ids;
pub mod transport;

#[cfg(test)]
mod cipher_tests;
#[cfg(test)]
mod transport_tests;
#[cfg(test)]
mod vectors;

pub use cipher::{KeyExchange, RecvCipher, SendCipher, SessionInfo, EXPANSION, KEY_LEN, LENGTH_LEN, TERMINATOR_LEN};
