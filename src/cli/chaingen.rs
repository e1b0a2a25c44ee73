//! `oni chaingen`: writes a heavy regtest chain ([`crate::chaingen`]) as hex lines, one block per
//! line in height order (the fixture's `chain.hex` format), for IBD measurements; prints its size,
//! transaction count and unspent outputs.

use crate::chaingen::ChainGen;
use std::io::Write;
use std::path::PathBuf;

/// Flags of `oni chaingen`.
#[derive(clap::Args, Debug)]
pub struct ChainGenArgs {
    /// Blocks to make.
    #[arg(long, default_value_t = 20_000, value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pub blocks: u32,
    /// Transaction bytes each block holds at least (once coins matured), up to a full block.
    #[arg(long, default_value_t = 10_000, value_parser = clap::value_parser!(u64).range(0..=3_900_000))]
    pub block_bytes: u64,
    /// Seed: the same seed makes the same chain.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Where to write the hex lines.
    #[arg(long, value_name = "FILE")]
    pub out: PathBuf,
}

/// Runs `oni chaingen`; returns the exit code.
pub fn run_chaingen(args: &ChainGenArgs) -> i32 {
    match write_chain(args) {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("error: {e}");
            1
        }
    }
}

fn write_chain(args: &ChainGenArgs) -> Result<(), String> {
    let started = std::time::Instant::now();
    let file = std::fs::File::create(&args.out).map_err(|e| format!("cannot create {}: {e}", args.out.display()))?;
    let mut out = std::io::BufWriter::new(file);
    let mut gen = ChainGen::new(args.seed);
    for _ in 0..args.blocks {
        let block = gen.next_block(args.block_bytes as usize);
        writeln!(out, "{}", bitcoin::consensus::encode::serialize_hex(&block))
            .map_err(|e| format!("cannot write {}: {e}", args.out.display()))?;
    }
    out.flush().map_err(|e| format!("cannot write {}: {e}", args.out.display()))?;
    let s = gen.stats();
    println!(
        "{} blocks, {} bytes, {} transactions, {} unspent outputs, in {:.1} s",
        s.blocks,
        s.bytes,
        s.txs,
        s.utxos,
        started.elapsed().as_secs_f64()
    );
    Ok(())
}
