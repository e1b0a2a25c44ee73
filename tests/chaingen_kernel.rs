//! The heavy chain generator's blocks are valid to Bitcoin Core's own engine (libbitcoinkernel):
//! every block connects, signatures of every kind included (P2WPKH, taproot key path, P2SH 2-of-3
//! multisig) — and a block whose signature is broken is refused, so the scripts really are checked.

use bitcoin::consensus::serialize;
use oni::chaingen::ChainGen;
use oni::validation::{BlockValidator, KernelConfig, KernelValidator, RejectReason, ValidationEvent};
use oni_systems::wire::Network;

#[test]
fn the_kernel_connects_every_generated_block_and_refuses_a_broken_signature() {
    let dir = tempfile::tempdir().unwrap();
    let mut kernel = KernelValidator::open(KernelConfig::new(Network::Regtest, dir.path())).unwrap();
    let mut gen = ChainGen::new(11);
    let mut events = Vec::new();
    let (mut segwit_v0, mut taproot, mut multisig) = (0usize, 0usize, 0usize);
    for height in 1..=140u32 {
        let block = gen.next_block(30_000);
        for tx in block.txdata.iter().skip(1) {
            for input in &tx.input {
                match input.witness.len() {
                    2 => segwit_v0 += 1,
                    1 => taproot += 1,
                    0 if input.script_sig.len() > 200 => multisig += 1,
                    n => panic!("unexpected witness of {n} items"),
                }
            }
        }
        let hash = block.block_hash();
        events.clear();
        kernel.submit(hash, &serialize(&block), &mut events);
        assert!(
            events.iter().any(
                |e| matches!(e, ValidationEvent::Connected { hash: h, height: at } if *h == hash && *at == height)
            ),
            "block {height} not connected: {events:?}"
        );
    }
    assert_eq!(kernel.tip().height, 140);
    let stats = gen.stats();
    assert!(stats.txs > 500, "{stats:?}");
    assert!(
        segwit_v0 > 100 && taproot > 100 && multisig > 50,
        "every kind of spend: {segwit_v0} P2WPKH, {taproot} P2TR, {multisig} P2SH 2-of-3"
    );

    // The next block with one signature byte flipped: refused, and the tip stays.
    let mut bad = gen.next_block(30_000);
    assert!(bad.txdata.len() > 1);
    let (t, i) = (1..bad.txdata.len())
        .find_map(|t| bad.txdata[t].input.iter().position(|i| !i.witness.is_empty()).map(|i| (t, i)))
        .expect("a witness spend in the block");
    let input = &mut bad.txdata[t].input[i];
    let mut items: Vec<Vec<u8>> = input.witness.iter().map(|w| w.to_vec()).collect();
    items[0][10] ^= 1;
    input.witness = bitcoin::Witness::from_slice(&items);
    // Commitment, merkle root and work made right again, so only the signature is wrong.
    oni::scenario::network::mine::seal(&mut bad);
    events.clear();
    kernel.submit(bad.block_hash(), &serialize(&bad), &mut events);
    let want = ValidationEvent::Rejected { hash: bad.block_hash(), reason: RejectReason::Consensus };
    assert!(events.contains(&want), "{events:?}");
    assert_eq!(kernel.tip().height, 140, "the tip stays");
}
