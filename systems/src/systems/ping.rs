//! ping: keeps connections alive and measures them. Answers pings, sends ours on the interval with a
//! random nonce, checks pong nonces, records the round trip, and ends silent peers. As Core: a pong
//! of another nonce is ignored (pings may overlap), and one of nonce 0 — or too short to carry a
//! nonce, which decodes as 0 — cancels our ping (a bug elsewhere, not a dead link).

use crate::components::{Disconnect, PeerState, PingState, Received, SendQueue, Socket, Stats, Violations};
use crate::resources::{Clock, Config, DisconnectReason, Metrics, Misbehavior, Rng};
use crate::wire::Message;
use bevy_ecs::prelude::*;

/// The peer entity's parts the ping system uses.
type PingPeer<'a> = (
    Entity,
    &'a Socket,
    &'a PeerState,
    &'a mut PingState,
    &'a mut Received,
    &'a mut SendQueue,
    &'a mut Stats,
    &'a mut Violations,
);

/// Pings, pongs and the ping/inactivity timeouts.
pub fn ping(
    mut peers: Query<PingPeer, Without<Disconnect>>,
    config: Res<Config>,
    clock: Res<Clock>,
    mut rng: ResMut<Rng>,
    mut metrics: ResMut<Metrics>,
    mut commands: Commands,
) {
    let now = clock.now_ms;
    let limits = &config.limits;
    for (entity, socket, state, mut ps, mut received, mut sq, mut stats, mut violations) in &mut peers {
        if *state != PeerState::Ready {
            continue;
        }
        if !received.0.is_empty() {
            received.0.retain(|msg| match *msg {
                Message::Ping(nonce) => {
                    sq.push(config.network, &Message::Pong(nonce));
                    false
                }
                Message::Pong(nonce) => {
                    match ps.outstanding {
                        Some((sent_nonce, sent_ms)) if sent_nonce == nonce => {
                            let rtt = now.saturating_sub(sent_ms);
                            stats.ping_rtt_ms = Some(rtt);
                            stats.min_ping_ms = Some(stats.min_ping_ms.map_or(rtt, |m| m.min(rtt)));
                            metrics.ping_rtt_ms.record(rtt);
                            ps.outstanding = None;
                            ps.next_ping_ms = now + limits.ping_interval_ms;
                        }
                        Some((_, sent_ms)) if nonce == 0 => {
                            // Core's "Nonce zero": cancel the ping; the next one goes out on time.
                            ps.outstanding = None;
                            ps.next_ping_ms = sent_ms + limits.ping_interval_ms;
                            violations.0.push(Misbehavior::UnsolicitedPong);
                        }
                        _ => violations.0.push(Misbehavior::UnsolicitedPong),
                    }
                    false
                }
                _ => true,
            });
        }
        let reason = match ps.outstanding {
            Some((_, sent)) if now.saturating_sub(sent) > limits.ping_timeout_ms => Some(DisconnectReason::PingTimeout),
            _ if now.saturating_sub(ps.last_recv_ms) > limits.inactivity_timeout_ms => {
                Some(DisconnectReason::InactivityTimeout)
            }
            _ => None,
        };
        if let Some(reason) = reason {
            tracing::debug!(peer = socket.conn.0, reason = reason.label(), "keep-alive failed");
            commands.entity(entity).insert(Disconnect { reason });
            continue;
        }
        if ps.outstanding.is_none() && now >= ps.next_ping_ms {
            let nonce = rng.next_u64() | 1;
            ps.outstanding = Some((nonce, now));
            sq.push(config.network, &Message::Ping(nonce));
        }
    }
}
