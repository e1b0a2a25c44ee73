use super::*;
use oni_systems::resources::{BanReason, NetAddress, PeerAddr};

fn entry(until_s: i64) -> BanEntry {
    BanEntry { created_s: 1, until_s, reason: BanReason::Manual }
}

#[test]
fn bans_survive_reopen_and_changes_apply_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store");
    let a: Subnet = "10.0.0.0/8".parse().unwrap();
    let b: Subnet = "2001:db8::/32".parse().unwrap();
    {
        let s = Store::open(&path).unwrap();
        s.apply_ban_changes(&[BanChange::Set(a, entry(100)), BanChange::Set(b, entry(200))]).unwrap();
        s.apply_ban_changes(&[BanChange::Remove(a)]).unwrap();
    }
    let s = Store::open(&path).unwrap();
    assert_eq!(s.load_bans().unwrap(), vec![(b, entry(200))]);
    s.apply_ban_changes(&[BanChange::Clear]).unwrap();
    assert!(s.load_bans().unwrap().is_empty());
}

#[test]
fn the_address_book_round_trips() {
    let dir = tempfile::tempdir().unwrap();
    let s = Store::open(dir.path()).unwrap();
    assert!(s.load_addrs().unwrap().is_none());
    let infos: Vec<AddrInfo> = (0..50u8)
        .map(|i| AddrInfo {
            addr: PeerAddr { addr: NetAddress::Ipv4([1, 2, 3, i]), port: 8333 },
            services: 9,
            time_s: 1000 + i as i64,
            last_try_s: 0,
            last_success_s: 0,
            attempts: 1,
            source_group: [1, 9, 9, 0, 0],
            tried: i % 2 == 0,
        })
        .collect();
    assert_eq!(s.save_addrs([7; 32], &infos).unwrap(), 50);
    let (key, mut back) = s.load_addrs().unwrap().unwrap();
    assert_eq!(key, [7; 32]);
    back.sort_by_key(|i| i.addr);
    assert_eq!(back, infos);
}

#[test]
fn a_truncated_store_is_a_clear_error_and_reset_keeps_a_copy() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store");
    {
        let s = Store::open(&path).unwrap();
        let many: Vec<_> =
            (0..2000u32).map(|i| BanChange::Set(Subnet::host(std::net::Ipv4Addr::from(i).into()), entry(9))).collect();
        s.apply_ban_changes(&many).unwrap();
    }
    let data = path.join("data.mdb");
    let len = std::fs::metadata(&data).unwrap().len();
    std::fs::OpenOptions::new().write(true).open(&data).unwrap().set_len(len / 2).unwrap();
    let err = Store::open(&path).err().expect("a truncated store must not open");
    let msg = err.to_string();
    assert!(matches!(err, StoreError::Corrupt { .. }), "{msg}");
    assert!(msg.contains("--reset-store"), "{msg}");
    let aside = Store::reset(&path, 42).unwrap().unwrap();
    assert!(aside.join("data.mdb").exists(), "the damaged store is kept");
    let s = Store::open(&path).unwrap();
    assert!(s.load_bans().unwrap().is_empty());
}

#[test]
fn garbage_in_place_of_the_store_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("data.mdb"), vec![0x5a; 10_000]).unwrap();
    assert!(matches!(Store::open(dir.path()), Err(StoreError::Corrupt { .. })));
}

#[test]
fn headers_come_back_parents_first() {
    let dir = tempfile::tempdir().unwrap();
    let s = Store::open(dir.path()).unwrap();
    let h = |n: u8| [n; 80];
    s.save_headers(&[(2, [2; 32], h(2)), (1, [9; 32], h(1))]).unwrap();
    s.save_headers(&[(300, [1; 32], h(3))]).unwrap();
    drop(s);
    let s = Store::open(dir.path()).unwrap();
    assert_eq!(s.load_headers().unwrap(), vec![h(1), h(2), h(3)]);
}

#[test]
fn headers_are_read_back_by_height_and_hash_up_to_the_first_missing() {
    let dir = tempfile::tempdir().unwrap();
    let s = Store::open(dir.path()).unwrap();
    let h = |n: u8| [n; 80];
    s.save_headers(&[(1, [1; 32], h(1)), (2, [2; 32], h(2)), (2, [3; 32], h(3)), (3, [4; 32], h(4))]).unwrap();
    let mut out = Vec::new();
    s.read_headers(&[(2, [3; 32]), (1, [1; 32]), (3, [4; 32])], &mut out).unwrap();
    assert_eq!(out, vec![h(3), h(1), h(4)], "in the order asked, side branches too");
    // The hash must match at that height: a wrong one (or height) ends the read there.
    out.clear();
    s.read_headers(&[(2, [2; 32]), (3, [2; 32]), (1, [1; 32])], &mut out).unwrap();
    assert_eq!(out, vec![h(2)]);
    // Through the archive trait the tree uses.
    out.clear();
    let hash = |b: u8| bitcoin::BlockHash::from_byte_array([b; 32]);
    HeaderArchive::read(&s, &[(1, hash(1)), (2, hash(3))], &mut out);
    assert_eq!(out, vec![h(1), h(3)]);
    #[cfg(target_os = "linux")]
    assert_eq!(s.mapped_resident_bytes(), Some(0), "nothing left mapped after a read");
}

#[cfg(target_os = "linux")]
#[test]
fn loading_and_saving_headers_leaves_none_of_the_store_mapped() {
    let dir = tempfile::tempdir().unwrap();
    let s = Store::open(dir.path()).unwrap();
    for batch in 0u32..20 {
        let headers: Vec<_> = (0u32..1000)
            .map(|i| {
                let height = batch * 1000 + i;
                let mut hash = [0u8; 32];
                hash[..4].copy_from_slice(&height.to_le_bytes());
                (height, hash, [height as u8; 80])
            })
            .collect();
        s.save_headers(&headers).unwrap();
        assert_eq!(s.mapped_resident_bytes(), Some(0), "after save {batch}");
    }
    drop(s);
    let s = Store::open(dir.path()).unwrap();
    let loaded = s.load_headers().unwrap();
    assert_eq!(loaded.len(), 20_000);
    assert_eq!(loaded[19_999], [(19_999u32 as u8); 80]);
    // 20,000 records of 116 bytes were read through the map; none of it stays resident.
    assert_eq!(s.mapped_resident_bytes(), Some(0), "after the full read");
}

#[cfg(target_os = "linux")]
#[test]
fn streaming_the_stored_headers_keeps_little_of_the_store_mapped_at_any_time() {
    let dir = tempfile::tempdir().unwrap();
    let s = Store::open(dir.path()).unwrap();
    let headers: Vec<_> = (0u32..60_000)
        .map(|height| {
            let mut hash = [0u8; 32];
            hash[..4].copy_from_slice(&height.to_le_bytes());
            let mut raw = [0u8; 80];
            raw[..4].copy_from_slice(&height.to_le_bytes());
            (height, hash, raw)
        })
        .collect();
    s.save_headers(&headers).unwrap();
    let file_bytes = std::fs::metadata(dir.path().join("data.mdb")).unwrap().len();
    assert!(file_bytes > 6 << 20, "a store much larger than the bound: {file_bytes} bytes");
    let (mut seen, mut most_mapped) = (0u32, 0u64);
    let count = s
        .for_each_header(|raw| {
            assert_eq!(raw[..4], seen.to_le_bytes(), "lowest height first");
            seen += 1;
            if seen.is_multiple_of(1000) {
                most_mapped = most_mapped.max(s.mapped_resident_bytes().unwrap());
            }
        })
        .unwrap();
    assert_eq!((count, seen), (60_000, 60_000));
    assert!(most_mapped > 0, "the scan reads through the map");
    assert!(most_mapped < 1 << 20, "at most {most_mapped} of {file_bytes} bytes mapped during the scan");
    assert_eq!(s.mapped_resident_bytes(), Some(0), "and none after it");
}
