//! Target 1: bytes a peer sends → frame splitter → `Message::decode`, for every command.
//! No panic; the splitter never takes more than it was given nor allocates what a header only
//! claims; a decoded message re-encodes to the bytes it came from wherever the encoding is
//! canonical and always decodes back to itself; decoding allocates at most twice its input plus
//! a small constant.

#![no_main]

use libfuzzer_sys::fuzz_target;
use oni_fuzz::peak_heap_of;
use oni_systems::wire::{
    checksum, AddrV2Entry, Command, FrameHeader, FrameSplitter, Message, Network, HEADER_LEN, MAX_ADDR_ENTRIES,
};

/// What a decode may hold beyond twice its input: one `Vec` header per list plus small structs.
const DECODE_SLACK_BYTES: usize = 4096;

/// `addrv2` is the one message whose entries are larger in memory than on the wire (a 13-byte
/// IPv4 entry takes a 56-byte `AddrV2Entry`, sized for 32-byte Tor and I2P keys), so its slack
/// is its whole bounded list: at most 1,000 entries, 56 kB, whatever the input.
fn slack(command: Command) -> usize {
    match command {
        Command::AddrV2 => DECODE_SLACK_BYTES + MAX_ADDR_ENTRIES * std::mem::size_of::<AddrV2Entry>(),
        _ => DECODE_SLACK_BYTES,
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&selector, body)) = data.split_first() else { return };
    raw_stream(selector, body);
    let command = Command::ALL[selector as usize % Command::COUNT];
    framed(command, body);
});

/// The bytes as one peer's stream (our network's magic first, so the fuzzer starts past it), cut
/// into reads whose sizes come from `selector`.
fn raw_stream(selector: u8, body: &[u8]) {
    let mut stream = Network::Regtest.magic().to_vec();
    stream.extend_from_slice(body);
    let read = 1 + (selector as usize >> 2);
    let mut splitter = FrameSplitter::new(Network::Regtest);
    let mut failed = false;
    for chunk in stream.chunks(read) {
        let mut at = 0;
        while at < chunk.len() {
            let (used, result) = splitter.push(&chunk[at..]);
            assert!(used <= chunk.len() - at, "the splitter took bytes it was not given");
            match result {
                Err(_) => {
                    failed = true;
                    break;
                }
                Ok(Some(frame)) => {
                    assert_eq!(frame.header.len as usize, frame.wire_len() - HEADER_LEN);
                    assert!(frame.payload.len() == frame.header.len as usize || frame.payload.is_empty());
                    if frame.header.checksum == checksum(&frame.payload) {
                        let _ = Message::decode(frame.header.command, &frame.payload);
                    }
                }
                Ok(None) => {
                    assert_eq!(used, chunk.len() - at, "an unfinished frame left input unread");
                    // A header may claim up to 4 MB: what is held is what arrived, or the first chunk.
                    assert!(splitter.buffered_capacity() <= (256 * 1024).max(stream.len()));
                }
            }
            at += used;
        }
        if failed {
            // A failed splitter stays failed: the connection closes.
            assert!(splitter.push(&[0]).1.is_err());
            break;
        }
    }
}

/// `payload` framed correctly for `command`, so every decoder is reached without the fuzzer
/// having to find checksums.
fn framed(command: Command, payload: &[u8]) {
    let mut header = [0u8; HEADER_LEN];
    FrameHeader::write(Network::Regtest, command, payload.len() as u32, checksum(payload), &mut header);
    let parsed = FrameHeader::parse(&header, Network::Regtest);
    if payload.len() > command.max_payload() as usize {
        assert!(parsed.is_err(), "an oversized {command:?} passed the header check");
        return;
    }
    let parsed = parsed.expect("a well-formed header within bounds");
    assert_eq!(parsed.command, command);

    let mut splitter = FrameSplitter::new(Network::Regtest);
    let mut stream = header.to_vec();
    stream.extend_from_slice(payload);
    let (used, frame) = splitter.push(&stream);
    let frame = frame.expect("a well-formed frame").expect("the whole frame was given");
    assert_eq!(used, stream.len());
    if command != Command::Unknown {
        assert_eq!(frame.payload, payload);
    }

    // Measured on the node's path: the decode system hands each frame's payload buffer over
    // (`decode_owned`), so `tx` and `block` keep it rather than copy it.
    let owned = payload.to_vec();
    let (decoded, peak) = peak_heap_of(move || Message::decode_owned(command, owned).map(|(m, _)| m));
    assert!(
        peak <= 2 * payload.len() + slack(command),
        "decoding {} bytes of {command:?} held {peak} bytes",
        payload.len()
    );
    let Ok(Some(message)) = decoded else { return };
    assert_eq!(message.command(), command);
    let mut encoded = Vec::new();
    message.encode_payload(&mut encoded);
    let again = Message::decode(command, &encoded);
    // Skipped addrv2 entries are not written back: only the kept ones must survive.
    let mut expected = message.clone();
    if let Message::AddrV2(list) = &mut expected {
        list.skipped = 0;
    }
    assert_eq!(again.as_ref(), Ok(&Some(expected)), "decode(encode(m)) != m for {command:?}");

    let (_, ignored) = Message::decode_owned(command, payload.to_vec()).expect("decoded once already");
    let mut original = payload[..payload.len() - ignored].to_vec();
    if command == Command::Version && encoded.len() == original.len() {
        // The relay flag is a bool: any non-zero byte reads as true (as in Core) and is written as 1.
        if let Some(relay) = original.last_mut() {
            *relay = (*relay != 0) as u8;
        }
    }
    if let Message::Headers(list) = &message {
        // Each header's transaction count is read and ignored (as in Core) and written as 0: with
        // one-byte counts the original matches once they are zeroed; wider ones cannot match.
        let start = encoded.len() - 81 * list.len();
        if encoded.len() == original.len() {
            for i in 0..list.len() {
                original[start + 81 * i + 80] = 0;
            }
        }
    }
    let same_length_needed = matches!(command, Command::Version | Command::Headers);
    if canonical(command, payload) && (!same_length_needed || encoded.len() == original.len()) {
        assert_eq!(encoded, original, "encode(decode(b)) != b for {command:?}");
    }
}

/// Whether a command's payload has exactly one encoding that oni writes back: not for messages
/// whose body oni skips (filters, `feature`, BIP157 requests), a short `pong` (read as nonce 0),
/// or `addrv2`, whose entries for networks oni does not keep are dropped. A `version` is canonical
/// only with all its optional trailing fields (without them each takes its default when decoded).
fn canonical(command: Command, payload: &[u8]) -> bool {
    match command {
        Command::FilterLoad
        | Command::FilterAdd
        | Command::Feature
        | Command::GetCFilters
        | Command::GetCFHeaders
        | Command::GetCFCheckpt
        | Command::AddrV2 => false,
        Command::Pong => payload.len() >= 8,
        _ => true,
    }
}
