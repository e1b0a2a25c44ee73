//! Mining in the simulator: a valid regtest block on a given tip — a BIP34 coinbase paying the
//! subsidy and the fees, the witness commitment, the merkle root, `bits` at regtest's limit
//! (`0x207fffff`) and a nonce looped until the hash meets it (about two tries).

use bitcoin::block::{Header, Version as BlockVersion};
use bitcoin::hashes::Hash;
use bitcoin::script::Builder;
use bitcoin::transaction::Version;
use bitcoin::{
    absolute, Amount, Block, BlockHash, CompactTarget, OutPoint, ScriptBuf, Sequence, Transaction, TxIn, TxMerkleNode,
    TxOut, WPubkeyHash, Witness,
};
use std::sync::Arc;

/// Regtest's proof-of-work limit in compact form.
pub const REGTEST_BITS: u32 = 0x207f_ffff;
/// Regtest's first subsidy (halving every 150 blocks).
const SUBSIDY_SAT: u64 = 50 * 100_000_000;

/// A block on `prev` at `height` with timestamp `time_s`, confirming `txs` that pay `fees_sat`
/// together; `tag` goes into the coinbase so two miners never build the same block.
pub fn build_block(
    prev: BlockHash,
    height: u32,
    time_s: u32,
    txs: &[Arc<Transaction>],
    fees_sat: u64,
    tag: u64,
) -> Block {
    let payout = ScriptBuf::new_p2wpkh(&WPubkeyHash::from_byte_array([0x51; 20]));
    build_block_paying(prev, height, time_s, txs, fees_sat, tag, payout)
}

/// [`build_block`] with the coinbase paying `payout` (a key the caller can spend with).
pub fn build_block_paying(
    prev: BlockHash,
    height: u32,
    time_s: u32,
    txs: &[Arc<Transaction>],
    fees_sat: u64,
    tag: u64,
    payout: ScriptBuf,
) -> Block {
    let subsidy = SUBSIDY_SAT >> (height / 150).min(63);
    let coinbase = Transaction {
        version: Version::TWO,
        lock_time: absolute::LockTime::ZERO,
        input: vec![TxIn {
            previous_output: OutPoint::null(),
            script_sig: Builder::new().push_int(height as i64).push_slice(tag.to_le_bytes()).into_script(),
            sequence: Sequence::MAX,
            witness: Witness::from_slice(&[[0u8; 32]]),
        }],
        output: vec![TxOut { value: Amount::from_sat(subsidy + fees_sat), script_pubkey: payout }],
    };
    let mut txdata = Vec::with_capacity(txs.len() + 1);
    txdata.push(coinbase);
    txdata.extend(txs.iter().map(|t| (**t).clone()));
    let header = Header {
        version: BlockVersion::from_consensus(0x2000_0000),
        prev_blockhash: prev,
        merkle_root: TxMerkleNode::all_zeros(),
        time: time_s,
        bits: CompactTarget::from_consensus(REGTEST_BITS),
        nonce: 0,
    };
    let mut block = Block { header, txdata };
    seal(&mut block);
    block
}

/// The witness commitment's output script prefix: OP_RETURN, a 36-byte push, BIP141's magic.
const COMMITMENT_PREFIX: [u8; 6] = [0x6a, 0x24, 0xaa, 0x21, 0xa9, 0xed];

/// Makes `block` commit to its transactions again after they changed: the coinbase's witness
/// commitment output (replaced, or added), the merkle root, then a nonce meeting regtest's target.
pub fn seal(block: &mut Block) {
    block.txdata[0].output.retain(|o| !o.script_pubkey.as_bytes().starts_with(&COMMITMENT_PREFIX));
    if let Some(root) = block.witness_root() {
        let commitment = Block::compute_witness_commitment(&root, &[0u8; 32]);
        let mut script = COMMITMENT_PREFIX.to_vec();
        script.extend_from_slice(commitment.as_byte_array());
        block.txdata[0].output.push(TxOut { value: Amount::ZERO, script_pubkey: ScriptBuf::from_bytes(script) });
    }
    block.header.merkle_root = block.compute_merkle_root().unwrap_or_else(TxMerkleNode::all_zeros);
    while block.header.validate_pow(block.header.target()).is_err() {
        block.header.nonce = block.header.nonce.wrapping_add(1);
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A block on regtest genesis spending `fund` in one transaction (for other modules' tests).
    pub(crate) fn block_spending(fund: OutPoint) -> Block {
        let tx = Transaction {
            version: Version::TWO,
            lock_time: absolute::LockTime::ZERO,
            input: vec![TxIn { previous_output: fund, ..Default::default() }],
            output: vec![TxOut {
                value: Amount::from_sat(1),
                script_pubkey: ScriptBuf::new_p2wpkh(&WPubkeyHash::all_zeros()),
            }],
        };
        let genesis = bitcoin::constants::genesis_block(bitcoin::Network::Regtest).block_hash();
        build_block(genesis, 1, 1_800_000_000, &[Arc::new(tx)], 0, 7)
    }

    #[test]
    fn the_block_is_valid_in_structure_and_work() {
        let block = block_spending(OutPoint::null());
        assert!(block.header.validate_pow(block.header.target()).is_ok());
        assert!(block.check_merkle_root());
        assert!(block.check_witness_commitment());
        // Heights up to 16 are OP_1..OP_16, as Core writes them (rust-bitcoin reads pushes only).
        assert_eq!(block.txdata[0].input[0].script_sig.as_bytes()[0], 0x51);
        let tall = build_block(block.block_hash(), 300, 1_800_000_000, &[], 0, 1);
        assert_eq!(tall.bip34_block_height().ok(), Some(300));
        assert_eq!(tall.txdata[0].output[0].value.to_sat(), SUBSIDY_SAT / 4, "two halvings by 300");
        let again = block_spending(OutPoint::null());
        assert_eq!(again.block_hash(), block.block_hash(), "deterministic");
    }
}
