//! NetgroupEclipse: many inbounds from one /16 (the simulator gives every instance an address in
//! the kind's subnet), each a correct peer that completes the handshake, answers pings and stays,
//! trying to hold every inbound slot; refused ones retry. Until eviction by netgroup lands, the
//! expectation is the node stays at `max_inbound` and keeps serving the honest peers it has.

use super::{Behaviour, BotIo, Handshaker, HsState};
use oni_systems::wire::Message;

/// One eclipse connection.
#[derive(Debug)]
pub struct NetgroupEclipse {
    retry_ms: u64,
    hs: Handshaker,
    next_try_ms: Option<u64>,
}

impl NetgroupEclipse {
    /// Retries `retry_ms` after the node closes it; 0 = gives up.
    pub fn new(retry_ms: u64) -> Self {
        NetgroupEclipse { retry_ms, hs: Handshaker::default(), next_try_ms: Some(0) }
    }
}

impl Behaviour for NetgroupEclipse {
    fn tick(&mut self, io: &mut BotIo) {
        if !io.connected() && self.hs.state == HsState::Idle && self.next_try_ms.is_some_and(|t| io.now_ms >= t) {
            io.connect();
        }
    }

    fn on_connected(&mut self, io: &mut BotIo) {
        self.hs.start(io);
    }

    fn on_message(&mut self, msg: Message, io: &mut BotIo) {
        self.hs.on_message(&msg, io);
    }

    fn on_closed(&mut self, io: &mut BotIo) {
        self.hs.reset();
        self.next_try_ms = (self.retry_ms > 0).then(|| io.now_ms + self.retry_ms);
    }
}
