use super::*;

fn v4(a: u8, b: u8, c: u8, d: u8) -> PeerAddr {
    PeerAddr { addr: NetAddress::Ipv4([a, b, c, d]), port: 8333 }
}

const NOW: i64 = 1_700_000_000;

#[test]
fn groups_are_slash16_for_ipv4_and_slash32_for_ipv6() {
    assert_eq!(v4(1, 2, 3, 4).addr.group(), v4(1, 2, 200, 9).addr.group());
    assert_ne!(v4(1, 2, 3, 4).addr.group(), v4(1, 3, 3, 4).addr.group());
    let a = NetAddress::from_ip("2001:db8:1:2::1".parse().unwrap());
    let b = NetAddress::from_ip("2001:db8:ffff::1".parse().unwrap());
    assert_eq!(a.group(), b.group());
    assert_eq!(NetAddress::from_ip("::ffff:1.2.3.4".parse().unwrap()), NetAddress::Ipv4([1, 2, 3, 4]));
}

#[test]
fn add_good_select_round() {
    let mut rng = Rng::seeded(1);
    let mut book = AddrBook::random(&mut rng);
    assert!(book.select(&mut rng, false, NOW).is_none());
    let a = v4(8, 8, 8, 8);
    assert!(book.add(a, 9, NOW - 100, [1, 9, 9, 0, 0], NOW));
    assert!(!book.add(a, 9, NOW - 50, [1, 9, 9, 0, 0], NOW), "known address is not new");
    assert_eq!(book.counts(), (1, 0));
    assert_eq!(book.select(&mut rng, false, NOW).map(|i| i.addr), Some(a));
    book.good(&a, NOW);
    assert_eq!(book.counts(), (0, 1));
    assert!(book.get(&a).is_some_and(|i| i.tried));
    assert!(book.select(&mut rng, true, NOW).is_none(), "feelers only pick new addresses");
}

#[test]
fn the_book_is_bounded_by_its_tables() {
    let mut rng = Rng::seeded(2);
    let mut book = AddrBook::random(&mut rng);
    // one source group can only reach 64 of the 1,024 new buckets
    let src = [1, 66, 66, 0, 0];
    for i in 0..100_000u32 {
        let b = i.to_be_bytes();
        book.add(v4(b[3], b[2], b[1], 7), 1, NOW, src, NOW);
    }
    assert!(book.len() <= 64 * BUCKET_SIZE, "one source fills at most 64 buckets: {}", book.len());
    assert!(book.len() > 1_000);
}

#[test]
fn placement_depends_on_the_secret_key() {
    let a = v4(5, 6, 7, 8);
    let k1 = AddrBook::new([1; 32]);
    let k2 = AddrBook::new([2; 32]);
    let slots1: Vec<usize> = (0..8).map(|i| k1.new_slot(&v4(5, 6, 7, i), &[1, 0, 0, 0, 0])).collect();
    let slots2: Vec<usize> = (0..8).map(|i| k2.new_slot(&v4(5, 6, 7, i), &[1, 0, 0, 0, 0])).collect();
    assert_ne!(slots1, slots2);
    assert_eq!(k1.tried_slot(&a), AddrBook::new([1; 32]).tried_slot(&a));
}

#[test]
fn terrible_entries_age_out_and_sample_is_bounded() {
    let mut rng = Rng::seeded(3);
    let mut book = AddrBook::random(&mut rng);
    for i in 0..200u8 {
        book.add(v4(20 + (i % 50), i, 1, 1), 1, NOW - 10, [1, i, 0, 0, 0], NOW);
    }
    let old = v4(99, 99, 99, 99);
    book.add(old, 1, NOW - HORIZON_S - 10, [1, 1, 1, 0, 0], NOW);
    let n = book.len();
    let s = book.sample(&mut rng, 1000, 23, NOW);
    assert!(s.len() <= n * 23 / 100 && !s.is_empty());
    assert!(s.iter().all(|i| i.addr != old));
    assert_eq!(book.age_out(NOW), 1);
    assert!(book.get(&old).is_none());
}

#[test]
fn restore_puts_tried_entries_back_in_tried() {
    let mut rng = Rng::seeded(4);
    let mut book = AddrBook::random(&mut rng);
    let a = v4(8, 8, 4, 4);
    let b = v4(9, 9, 4, 4);
    book.add(a, 1, NOW, [1, 0, 0, 0, 0], NOW);
    book.add(b, 1, NOW, [1, 0, 0, 0, 0], NOW);
    book.good(&a, NOW);
    let saved: Vec<AddrInfo> = book.entries().into_iter().cloned().collect();
    let mut again = AddrBook::new(book.key());
    again.restore(saved, NOW);
    assert_eq!(again.counts(), (1, 1));
    assert!(again.get(&a).is_some_and(|i| i.tried && i.last_success_s == NOW));
}

#[test]
fn a_slot_is_four_bytes_and_ids_start_at_one_so_empty_tables_are_zeroed_memory() {
    // `vec![None; n]` of a type whose None is zero bytes is allocated zeroed, not written: the
    // tables' pages stay unmapped until slots fill.
    assert_eq!(std::mem::size_of::<Slot>(), 4);
    assert_eq!(slot_of(0), None, "id 0 would read as an empty slot");
    let mut book = AddrBook::new([3; 32]);
    assert_eq!(book.next_id, 1);
    book.next_id = u32::MAX;
    assert!(book.add(v4(11, 1, 0, 1), 1, NOW, [1; 5], NOW));
    assert!(book.add(v4(11, 2, 0, 1), 1, NOW, [2; 5], NOW));
    assert_eq!(book.next_id, 2, "after u32::MAX the ids go on from 1, never 0");
    assert_eq!(book.len(), 2);
}
