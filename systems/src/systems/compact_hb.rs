//! compact_hb: chooses the (at most 3) peers we ask to send new blocks as `cmpctblock` unasked
//! (BIP152 high-bandwidth mode), as Core does: a peer that offered compact blocks and just gave us
//! a block that became our tip, while nothing else was being fetched, goes to the back of the
//! list with `sendcmpct(1)`; past three, the longest-standing one gets `sendcmpct(0)`. An inbound
//! peer never takes the place of our last outbound one. A node that does not relay transactions
//! asks no one: without a pool, compact blocks would not rebuild.

use crate::chain::compact_relay::HB_PEERS_MAX;
use crate::chain::CompactRelay;
use crate::components::{ConnId, Direction, Disconnect, Negotiated, SendQueue};
use crate::resources::{Config, ConnIndex};
use crate::wire::version::CMPCTBLOCKS_VERSION;
use crate::wire::Message;
use bevy_ecs::prelude::*;

/// The peers this system looks at.
type HbPeers<'w, 's> =
    Query<'w, 's, (&'static Direction, &'static mut Negotiated, &'static mut SendQueue), Without<Disconnect>>;

/// Whether `conn` is a live inbound peer.
fn inbound(peers: &HbPeers, index: &ConnIndex, conn: ConnId) -> bool {
    index.0.get(&conn).and_then(|&e| peers.get(e).ok()).is_some_and(|p| *p.0 == Direction::Inbound)
}

/// Updates the high-bandwidth set from the peers that just delivered new tips.
pub fn compact_hb(mut peers: HbPeers, index: Res<ConnIndex>, config: Res<Config>, mut compact: ResMut<CompactRelay>) {
    if compact.block_sources.is_empty() {
        return;
    }
    let sources = std::mem::take(&mut compact.block_sources);
    if !config.relay || !config.compact_blocks {
        return;
    }
    for conn in sources {
        let Some(&entity) = index.0.get(&conn) else { continue };
        let Ok((direction, neg, _)) = peers.get(entity) else { continue };
        if neg.cmpct_version.is_none() {
            continue;
        }
        let is_inbound = *direction == Direction::Inbound;
        if let Some(pos) = compact.hb_to.iter().position(|c| *c == conn) {
            // Already in: it moves to the back (the most recent to deliver).
            compact.hb_to.remove(pos);
            compact.hb_to.push_back(conn);
            continue;
        }
        let outbound_in = compact.hb_to.iter().filter(|&&c| !inbound(&peers, &index, c)).count();
        if is_inbound && compact.hb_to.len() >= HB_PEERS_MAX && outbound_in == 1 {
            if let Some(front) = compact.hb_to.front().copied() {
                if !inbound(&peers, &index, front) {
                    // Keep our last outbound one: it moves to second place, out of the way.
                    compact.hb_to.swap(0, 1);
                }
            }
        }
        let Ok((_, mut neg, mut sq)) = peers.get_mut(entity) else { continue };
        sq.push(config.network, &Message::SendCmpct { announce: 1, version: CMPCTBLOCKS_VERSION });
        neg.cmpct_hb_to = true;
        compact.hb_to.push_back(conn);
        tracing::debug!(peer = conn.0, "asked for high-bandwidth compact blocks");
        if compact.hb_to.len() > HB_PEERS_MAX {
            let Some(out) = compact.hb_to.pop_front() else { continue };
            if let Some(Ok((_, mut neg, mut sq))) = index.0.get(&out).map(|&e| peers.get_mut(e)) {
                sq.push(config.network, &Message::SendCmpct { announce: 0, version: CMPCTBLOCKS_VERSION });
                neg.cmpct_hb_to = false;
            }
        }
    }
}
