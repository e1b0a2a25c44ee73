//! BIP324 v2 transport, as pure state the IO bridge and the simulator drive: the ciphers and key
//! schedule ([`cipher`]), the short message ids ([`ids`]) and the handshake and packet framing of
//! one connection ([`transport`]). No sockets, no clock: randomness comes in as bytes.

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
