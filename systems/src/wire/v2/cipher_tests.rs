//! BIP324's published packet vectors: keys, session id, terminators and ciphertext must match
//! byte for byte, and every ciphertext must open again — and fail to open with a flipped bit, the
//! wrong side's keys, a changed AAD or the wrong packet index.

use super::cipher::*;
use super::vectors::VECTORS;
use crate::wire::Network;

/// One row of the BIP's `packet_encoding_test_vectors.csv`.
pub(super) struct Vector {
    pub idx: u32,
    pub priv_ours: &'static str,
    pub ellswift_ours: &'static str,
    pub ellswift_theirs: &'static str,
    pub initiating: bool,
    pub contents: &'static str,
    pub multiply: usize,
    pub aad: &'static str,
    pub ignore: bool,
    pub send_garbage_terminator: &'static str,
    pub recv_garbage_terminator: &'static str,
    pub session_id: &'static str,
    pub ciphertext: &'static str,
    pub ciphertext_endswith: &'static str,
}

fn hex(s: &str) -> Vec<u8> {
    (0..s.len()).step_by(2).map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap()).collect()
}

fn arr<const N: usize>(s: &str) -> [u8; N] {
    hex(s).try_into().unwrap()
}

fn exchange(v: &Vector) -> KeyExchange {
    KeyExchange::with_encoding(arr(v.priv_ours), arr(v.ellswift_ours)).unwrap()
}

/// Seals `contents` as one packet.
fn seal(send: &mut SendCipher, contents: &[u8], aad: &[u8], ignore: bool) -> Vec<u8> {
    let mut buf = vec![0u8; LENGTH_LEN];
    buf.push(if ignore { IGNORE_BIT } else { 0 });
    buf.extend_from_slice(contents);
    send.seal(&mut buf, aad);
    buf
}

/// Opens one packet: its contents and decoy flag, or `None` if it fails.
fn open(recv: &mut RecvCipher, packet: &[u8], aad: &[u8]) -> Option<(Vec<u8>, bool)> {
    let len = recv.open_len(packet[..LENGTH_LEN].try_into().unwrap()) as usize;
    let mut body = packet.get(LENGTH_LEN..LENGTH_LEN + len + 1 + TAG_LEN)?.to_vec();
    let ignore = recv.open(&mut body, aad)?;
    Some((body[1..1 + len].to_vec(), ignore))
}

#[test]
fn bip324_packet_vectors_encrypt_to_the_published_bytes() {
    let magic = Network::Main.magic();
    for v in &VECTORS {
        let theirs = arr(v.ellswift_theirs);
        let (mut send, _, info) = exchange(v).finish(&theirs, v.initiating, magic);
        assert_eq!(info.session_id, arr::<32>(v.session_id), "session id, vector {}", v.idx);
        assert_eq!(info.send_terminator, arr::<16>(v.send_garbage_terminator));
        assert_eq!(info.recv_terminator, arr::<16>(v.recv_garbage_terminator));
        for _ in 0..v.idx {
            seal(&mut send, &[], &[], true);
        }
        let contents = hex(v.contents).repeat(v.multiply);
        let packet = seal(&mut send, &contents, &hex(v.aad), v.ignore);
        assert_eq!(packet.len(), contents.len() + EXPANSION);
        if v.ciphertext.is_empty() {
            assert!(packet.ends_with(&hex(v.ciphertext_endswith)), "vector {}", v.idx);
        } else {
            assert_eq!(packet, hex(v.ciphertext), "vector {}", v.idx);
        }
    }
}

#[test]
fn bip324_packet_vectors_open_again_and_any_damage_is_refused() {
    let magic = Network::Main.magic();
    for v in &VECTORS {
        let theirs = arr(v.ellswift_theirs);
        let aad = hex(v.aad);
        let contents = hex(v.contents).repeat(v.multiply);
        let (mut send, _, _) = exchange(v).finish(&theirs, v.initiating, magic);
        let dummies: Vec<Vec<u8>> = (0..v.idx).map(|_| seal(&mut send, &[], &[], true)).collect();
        let packet = seal(&mut send, &contents, &aad, v.ignore);

        // A receiver that has opened the same dummies first, `skip` of them when given.
        let receiver = |wrong_side: bool, skip: Option<u32>| {
            let mut recv = exchange(v).self_decrypting(&theirs, v.initiating ^ wrong_side, magic);
            for d in dummies.iter().take(skip.unwrap_or(v.idx) as usize) {
                let _ = open(&mut recv, d, &[]);
            }
            for _ in v.idx..skip.unwrap_or(v.idx) {
                // Advance both ciphers by one packet, whatever the (now misplaced) bytes say.
                let _ = recv.open_len(dummies[0][..LENGTH_LEN].try_into().unwrap());
                let _ = recv.open(&mut dummies[0][LENGTH_LEN..].to_vec(), &[]);
            }
            recv
        };

        let (got, ignore) = open(&mut receiver(false, None), &packet, &aad).expect("opens");
        assert_eq!((got, ignore), (contents.clone(), v.ignore), "vector {}", v.idx);

        assert!(open(&mut receiver(true, None), &packet, &aad).is_none(), "wrong side, vector {}", v.idx);
        for bit in 0..8 {
            let mut damaged = packet.clone();
            let at = (v.idx as usize * 7 + bit * 131) % damaged.len();
            damaged[at] ^= 1 << bit;
            assert!(open(&mut receiver(false, None), &damaged, &aad).is_none(), "bit {bit} at {at}");
        }
        if !aad.is_empty() {
            let mut bad = aad.clone();
            bad[aad.len() / 2] ^= 0x10;
            assert!(open(&mut receiver(false, None), &packet, &bad).is_none());
        }
        let mut longer = aad.clone();
        longer.push(0);
        assert!(open(&mut receiver(false, None), &packet, &longer).is_none(), "an extra AAD byte");
        if v.idx > 0 {
            assert!(open(&mut receiver(false, Some(v.idx - 1)), &packet, &aad).is_none(), "one packet early");
            assert!(open(&mut receiver(false, Some(v.idx + 1)), &packet, &aad).is_none(), "one packet late");
        }
    }
}

#[test]
fn both_ends_of_a_fresh_exchange_agree_across_many_rekeys() {
    let magic = Network::Regtest.magic();
    let a = KeyExchange::new([7; 32], [1; 32]).unwrap();
    let b = KeyExchange::new([9; 32], [2; 32]).unwrap();
    let (a_key, b_key) = (*a.our_key(), *b.our_key());
    let (mut a_send, mut a_recv, a_info) = a.finish(&b_key, true, magic);
    let (mut b_send, mut b_recv, b_info) = b.finish(&a_key, false, magic);
    assert_eq!(a_info.session_id, b_info.session_id);
    assert_eq!(a_info.send_terminator, b_info.recv_terminator);
    assert_eq!(a_info.recv_terminator, b_info.send_terminator);
    // Well past two rekeys of both ciphers in each direction.
    for i in 0..3 * REKEY_INTERVAL as usize + 5 {
        let msg = vec![i as u8; i % 300];
        let p = seal(&mut a_send, &msg, &[], i % 5 == 0);
        assert_eq!(open(&mut b_recv, &p, &[]), Some((msg.clone(), i % 5 == 0)), "packet {i} a→b");
        let p = seal(&mut b_send, &msg, &[], false);
        assert_eq!(open(&mut a_recv, &p, &[]), Some((msg, false)), "packet {i} b→a");
    }
    // Another network's magic gives other keys: nothing opens.
    let c = KeyExchange::new([7; 32], [1; 32]).unwrap();
    let (mut c_send, _, c_info) = c.finish(&b_key, true, Network::Main.magic());
    assert_ne!(c_info.session_id, b_info.session_id);
    let d = KeyExchange::new([9; 32], [2; 32]).unwrap();
    let (_, mut d_recv, _) = d.finish(&a_key, false, magic);
    assert!(open(&mut d_recv, &seal(&mut c_send, b"x", &[], false), &[]).is_none());
}
