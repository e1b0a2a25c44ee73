//! The transaction pool and what it stands on: the chain's coins (read through [`coins::CoinView`],
//! kept by the shell), script verification ([`coins::ScriptVerifier`], Bitcoin Core's engine in the
//! shell), standardness ([`policy`]), the pool itself ([`pool`]) and the orphanage ([`orphanage`]).
//! The systems that move transactions between peers and the pool live in `crate::systems`.

pub mod accept;
pub mod coins;
pub mod extra;
pub mod intake;
pub mod local;
pub mod orphanage;
pub mod policy;
pub mod pool;

pub use coins::{
    BlockTxEvent, BlockTxInbox, ChainCoins, Coin, CoinView, CoinsTip, MemoryCoins, ScriptFailure, ScriptVerifier,
    Scripts, SkipScripts,
};
