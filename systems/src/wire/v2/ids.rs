//! BIP324 short message ids: a v2 packet's contents open with one byte naming the command (1–28,
//! and 37 for `feature` as Core assigns it), or with 0 and the 12-byte NUL-padded name v1 uses.

use crate::wire::Command;

/// Names by short id as Core's table has them; "" marks ids with no command (0 is the long form).
const NAMES: [&str; 38] = [
    "",
    "addr",
    "block",
    "blocktxn",
    "cmpctblock",
    "feefilter",
    "filteradd",
    "filterclear",
    "filterload",
    "getblocks",
    "getblocktxn",
    "getdata",
    "getheaders",
    "headers",
    "inv",
    "mempool",
    "merkleblock",
    "notfound",
    "ping",
    "pong",
    "sendcmpct",
    "tx",
    "getcfilters",
    "cfilter",
    "getcfheaders",
    "cfheaders",
    "getcfcheckpt",
    "cfcheckpt",
    "addrv2",
    "",
    "",
    "",
    "",
    "",
    "",
    "",
    "",
    "feature",
];

/// Bytes of the long form's name.
pub const NAME_LEN: usize = 12;

/// The short id we send `command` under, if it has one.
pub fn short_id(command: Command) -> Option<u8> {
    let name = command.name();
    NAMES.iter().skip(1).position(|n| !n.is_empty() && *n == name).map(|i| i as u8 + 1)
}

/// The command a packet's contents name and how many bytes the naming took; `None` when it names
/// nothing valid (empty contents, an id with no command, a long name that is not printable ASCII
/// followed only by NULs): Core drops such a message and keeps the connection.
pub fn command_of(contents: &[u8]) -> Option<(Command, usize)> {
    match *contents.first()? {
        0 => {
            let name = contents.get(1..1 + NAME_LEN)?;
            let end = name.iter().position(|&b| b == 0).unwrap_or(NAME_LEN);
            let printable = name[..end].iter().all(|b| (0x20..0x80).contains(b));
            if !printable || name[end..].iter().any(|&b| b != 0) {
                return None;
            }
            Some((Command::from_name_bytes(&name[..end]), 1 + NAME_LEN))
        }
        id => {
            let name = NAMES.get(id as usize).filter(|n| !n.is_empty())?;
            Some((Command::from_name_bytes(name.as_bytes()), 1))
        }
    }
}

/// Writes the naming of `command` (its short id, or 0 and its padded name) to `out`.
pub fn write_command(command: Command, out: &mut Vec<u8>) {
    match short_id(command) {
        Some(id) => out.push(id),
        None => {
            out.push(0);
            out.extend_from_slice(&command.name_bytes());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_ids_are_the_bips_and_cores() {
        assert_eq!(short_id(Command::Addr), Some(1));
        assert_eq!(short_id(Command::Block), Some(2));
        assert_eq!(short_id(Command::GetHeaders), Some(12));
        assert_eq!(short_id(Command::Ping), Some(18));
        assert_eq!(short_id(Command::Tx), Some(21));
        assert_eq!(short_id(Command::AddrV2), Some(28));
        assert_eq!(short_id(Command::Feature), Some(37));
        assert_eq!(short_id(Command::Version), None, "version and verack have no short id");
        assert_eq!(short_id(Command::WtxidRelay), None);
    }

    #[test]
    fn every_command_round_trips_through_its_naming() {
        for c in Command::ALL.into_iter().filter(|c| *c != Command::Unknown) {
            let mut out = Vec::new();
            write_command(c, &mut out);
            out.extend_from_slice(b"payload");
            assert_eq!(command_of(&out), Some((c, out.len() - 7)), "{}", c.name());
        }
    }

    #[test]
    fn namings_core_rejects_name_nothing_and_unknown_ones_are_unknown() {
        assert_eq!(command_of(&[]), None);
        assert_eq!(command_of(&[29]), None, "unassigned id");
        assert_eq!(command_of(&[38]), None);
        assert_eq!(command_of(&[255, 1, 2]), None);
        assert_eq!(command_of(&[0, b'p', b'i']), None, "a long name needs 12 bytes");
        let mut bad = vec![0u8];
        bad.extend_from_slice(b"ping\0x\0\0\0\0\0\0");
        assert_eq!(command_of(&bad), None, "bytes after the NUL");
        let mut ctrl = vec![0u8];
        ctrl.extend_from_slice(b"pi\x01g\0\0\0\0\0\0\0\0");
        assert_eq!(command_of(&ctrl), None);
        assert_eq!(command_of(&[16, 9]), Some((Command::Unknown, 1)), "merkleblock: a real id oni does not speak");
        assert_eq!(command_of(&[3, 9]), Some((Command::BlockTxn, 1)));
        assert_eq!(command_of(&[4]), Some((Command::CmpctBlock, 1)));
        assert_eq!(command_of(&[10]), Some((Command::GetBlockTxn, 1)));
        let mut other = vec![0u8];
        other.extend_from_slice(b"foo\0\0\0\0\0\0\0\0\0");
        assert_eq!(command_of(&other), Some((Command::Unknown, 13)));
    }
}
