//! The world loop: the only thread that touches the World. Each turn it waits for IO events or
//! control requests (at most one tick interval), moves them into the `Inbox`, sets the clock from
//! the wall clock, runs the schedule, and hands the `Outbox` to the bridge. Control requests (dial,
//! run a closure on the world, shut down) run between ticks.

use super::chain_io::ChainIo;
use super::NodeConfig;
use super::StartError;
use crate::bridge::Bridge;
use crate::store::Store;
use bevy_ecs::prelude::*;
use oni_systems::chain::HeaderTree;
use oni_systems::components::{ConnId, Direction, Disconnect, RecvBuffer, SendQueue};
use oni_systems::resources::{AddrBook, BanList, Clock, Config, Inbox, NetEvent, Outbox};
use oni_systems::schedule::{build_schedule, build_world, WorldSettings};
use std::net::SocketAddr;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// A closure run on the world thread.
pub(super) type Job = Box<dyn FnOnce(&mut World) + Send>;

/// Requests from other threads.
pub(super) enum Control {
    /// Dial an address; reply with the connection id.
    Connect {
        /// Where.
        addr: SocketAddr,
        /// What kind of outbound.
        direction: Direction,
        /// Gets the id.
        reply: flume::Sender<ConnId>,
    },
    /// Run a closure on the world.
    Call(Job),
    /// Stop.
    Shutdown,
}

/// What one wait produced.
enum Woken {
    Event(NetEvent),
    Control(Control),
    Verdict(oni_systems::chain::ValidationEvent),
    /// The coin store applied a block: the pool hears of it.
    BlockTx(oni_systems::mempool::BlockTxEvent),
    /// A block a peer asked for was read: it goes out in the next tick.
    BlockRead(oni_systems::chain::BlockData),
    Timeout,
    /// Every handle is gone: nobody can stop us any more, so stop.
    Orphaned,
}

/// The world, its schedule and the IO around it.
pub(super) struct WorldLoop {
    world: World,
    schedule: Schedule,
    bridge: Bridge,
    events: flume::Receiver<NetEvent>,
    control: flume::Receiver<Control>,
    /// Events for the next tick, in order (dials' `Dialing` first, then what the tasks reported).
    pending: Vec<NetEvent>,
    store: Option<std::sync::Arc<Store>>,
    /// Times each system and the whole tick (telemetry).
    timer: crate::telemetry::timings::SpanTimer,
    chain: Option<ChainIo>,
    next_addr_save: Instant,
    /// Peers with frames left over after a tick (the decode budget ran out).
    backlog: QueryState<(&'static RecvBuffer, &'static SendQueue), Without<Disconnect>>,
    tick_interval: Duration,
    events_per_tick_max: usize,

    last_now_ms: u64,
    /// Where the pool is saved at a clean stop (with a datadir).
    mempool_path: Option<std::path::PathBuf>,
}

impl WorldLoop {
    pub(super) fn new(
        cfg: &NodeConfig,
        bridge: Bridge,
        events: flume::Receiver<NetEvent>,
        control: flume::Receiver<Control>,
        store: Option<Store>,
    ) -> Result<WorldLoop, StartError> {
        let seed = cfg.seed.unwrap_or_else(os_seed);
        let mut settings = WorldSettings::new(cfg.config.clone(), seed);
        settings.policy = cfg.policy.clone();
        for addr in &cfg.manual_peers {
            if !settings.policy.manual.contains(addr) {
                settings.policy.manual.push(*addr);
            }
        }
        settings.policy.manual_retry_ms = cfg.manual_redial_ms;
        settings.pool = cfg.mempool.clone();
        settings.tx_policy = cfg.tx_policy.clone();
        // Callers may read or change the world before its first tick: give them the real time.
        settings.start_ms = wall_ms();
        if let Some(age) = cfg.max_tip_age_s {
            settings.sync.max_tip_age_s = age;
        }
        // Blocks waiting in memory for the validator (a block's place frees once the validator has
        // processed it, not when its verdict comes out of the checkpoint that holds it): 32 keep it
        // as busy as 256 did on the heavy chain and on the 2,100-block fixture, with 1 or 4
        // sources, and hold 2-3 MB less there; at mainnet's ~1.5 MB blocks, 48 MB instead of the
        // 128 MB byte bound.
        settings.sync.validation_pending_blocks_max = 32;
        settings.minimum_chain_work = cfg.minimum_chain_work;
        let mut world = build_world(settings);
        let store = store.map(std::sync::Arc::new);
        let timer = crate::telemetry::timings::SpanTimer::default();
        if let Some(store) = &store {
            let bans = store.load_bans().map_err(StartError::Store)?;
            if !bans.is_empty() {
                tracing::info!(bans = bans.len(), "bans loaded");
            }
            world.insert_resource(BanList::load(bans));
            // RPC calls that change bans commit through it before they answer.
            world.insert_resource(super::persist::DurableStore(store.clone()));
            if let Some((key, entries)) = store.load_addrs().map_err(StartError::Store)? {
                let now_s = (wall_ms() / 1000) as i64;
                let mut book = AddrBook::new(key);
                book.restore(entries, now_s);
                tracing::info!(addresses = book.len(), "address book loaded");
                world.insert_resource(book);
            }
        }
        let warnings = super::faults::NodeWarnings::default();
        world.insert_resource(warnings.clone());
        let chain = ChainIo::open(cfg.config.network, cfg.datadir.as_deref(), warnings)?;
        chain.install(&mut world);
        if let Some(store) = &store {
            // Before the headers stream in, so the tree keeps none of what the store holds.
            world.resource_mut::<HeaderTree>().attach_archive(store.clone());
        }
        chain.restore(&mut world, store.as_deref());
        let mempool_path = cfg.datadir.as_ref().map(|d| d.join(super::mempool_file::FILE_NAME));
        if let Some(path) = mempool_path.as_ref().filter(|p| p.exists()) {
            match super::mempool_file::load(path) {
                Ok(txs) => {
                    tracing::info!(
                        transactions = txs.len(),
                        "pool saved at the last stop loaded; checked once at the tip"
                    );
                    super::mempool_file::restore(&mut world, txs);
                }
                Err(e) => tracing::warn!("{}: ignored: {e}", path.display()),
            }
        }
        let backlog = world.query_filtered();
        Ok(WorldLoop {
            world,
            backlog,
            schedule: timer.capture(build_schedule),
            timer,
            bridge,
            events,
            control,
            pending: Vec::new(),
            store,
            chain: Some(chain),
            next_addr_save: Instant::now() + ADDR_SAVE_INTERVAL,
            tick_interval: Duration::from_millis(cfg.tick_interval_ms.max(1)),
            events_per_tick_max: cfg.events_per_tick_max.max(1),

            last_now_ms: wall_ms(),
            mempool_path,
        })
    }

    /// Whether to ask DNS seeds: enabled, not regtest, and the book is empty.
    pub(super) fn wants_seeds(&self, cfg: &NodeConfig) -> bool {
        cfg.dnsseed
            && cfg.config.network != oni_systems::wire::Network::Regtest
            && cfg.policy.auto_outbound
            && self.world.resource::<AddrBook>().is_empty()
    }

    /// Commits ban changes made during the last tick or call, through the one commit path the RPC
    /// calls use too: a failed commit keeps the changes queued, and they are tried again after the
    /// next tick (the bans themselves hold in memory meanwhile).
    fn persist_bans(&mut self) {
        if let Err(e) = super::persist::commit_bans(&mut self.world) {
            self.world.resource_mut::<oni_systems::resources::Metrics>().ban_commit_failures += 1;
            tracing::error!("cannot persist bans (kept, retried after the next tick): {e}");
        }
    }

    /// Saves the address book (periodically and at shutdown).
    fn save_addrs(&mut self) {
        let Some(store) = &self.store else { return };
        let book = self.world.resource::<AddrBook>();
        match store.save_addrs(book.key(), book.entries()) {
            Ok(n) => tracing::debug!(addresses = n, "address book saved"),
            Err(e) => tracing::error!("cannot save the address book: {e}"),
        }
    }

    /// Runs until shutdown, then closes every socket.
    pub(super) fn run(mut self) {
        let mut next_tick = Instant::now();
        loop {
            let woken = self.wait(next_tick);
            let mut stop = false;
            match woken {
                Woken::Event(e) => self.pending.push(e),
                Woken::Control(c) => stop = self.control(c),
                Woken::Verdict(v) => {
                    if let Some(chain) = &self.chain {
                        chain.forward(&v);
                    }
                    self.world.resource_mut::<oni_systems::chain::ValidationInbox>().0.push(v)
                }
                Woken::BlockTx(e) => self.world.get_resource_or_init::<oni_systems::mempool::BlockTxInbox>().0.push(e),
                Woken::BlockRead(d) => self.world.resource_mut::<oni_systems::chain::BlockReadInbox>().0.push(d),
                Woken::Timeout => {}
                Woken::Orphaned => stop = true,
            }
            // Take whatever else is ready, bounded, then tick once for the batch.
            while !stop {
                match self.control.try_recv() {
                    Ok(c) => stop = self.control(c),
                    Err(flume::TryRecvError::Empty) => break,
                    Err(flume::TryRecvError::Disconnected) => stop = true,
                }
            }
            if stop {
                break;
            }
            let room = self.events_per_tick_max.saturating_sub(self.pending.len());
            self.pending.extend(self.events.try_iter().take(room));
            // Frames left undecoded (budget spent) are served on the next turn, not a timer later.
            let busy = self.tick() || self.chain.as_ref().is_some_and(ChainIo::has_news);
            next_tick = if busy { Instant::now() } else { Instant::now() + self.tick_interval };
        }
        tracing::info!("shutting down: closing all connections");
        self.bridge.shutdown();
        self.persist_bans();
        self.save_addrs();
        if let Some(path) = &self.mempool_path {
            match super::mempool_file::save(&self.world, path) {
                Ok(n) => tracing::info!(transactions = n, "pool saved"),
                Err(e) => tracing::error!("cannot save the pool to {}: {e}", path.display()),
            }
        }
        if let Some(mut chain) = self.chain.take() {
            chain.flush_headers(&mut self.world, self.store.as_deref());
            chain.shutdown();
        }
    }

    fn wait(&self, deadline: Instant) -> Woken {
        let timeout = deadline.saturating_duration_since(Instant::now());
        if timeout.is_zero() {
            return Woken::Timeout;
        }
        let r = flume::Selector::new()
            .recv(&self.control, |r| match r {
                Ok(c) => Woken::Control(c),
                Err(_) => Woken::Orphaned,
            })
            // The bridge holds the event sender for as long as this loop runs.
            .recv(&self.events, |r| r.map_or(Woken::Timeout, Woken::Event));
        // A verdict from the validator wakes the loop too: the download window moves at once.
        let r = match self.chain.as_ref() {
            Some(chain) => r
                .recv(chain.events(), |r| r.map_or(Woken::Timeout, Woken::Verdict))
                .recv(chain.block_events(), |r| r.map_or(Woken::Timeout, Woken::BlockTx))
                .recv(chain.read_answers(), |r| r.map_or(Woken::Timeout, Woken::BlockRead)),
            None => r,
        }
        .wait_timeout(timeout);
        r.unwrap_or(Woken::Timeout)
    }

    /// Handles one request; returns true to stop.
    fn control(&mut self, c: Control) -> bool {
        match c {
            Control::Connect { addr, direction, reply } => {
                let v2 = self.world.resource::<oni_systems::resources::Config>().v2();
                let conn = self.bridge.dial(addr, direction, v2, &mut self.pending);
                let _ = reply.send(conn);
            }
            Control::Call(job) => {
                job(&mut self.world);
                self.persist_bans();
            }
            Control::Shutdown => return true,
        }
        false
    }

    /// One run of the schedule with the events gathered so far; returns whether frames that could
    /// be decoded are left over.
    fn tick(&mut self) -> bool {
        let now_ms = self.now_ms();
        self.world.resource_mut::<Clock>().now_ms = now_ms;
        self.world.resource_mut::<Inbox>().0.append(&mut self.pending);
        {
            let (used, peak) = self.bridge.inbound_pool_bytes();
            let mut m = self.world.resource_mut::<oni_systems::resources::Metrics>();
            m.inbound_recv_pool_bytes = used as u64;
            m.inbound_recv_pool_peak_bytes = peak as u64;
        }
        if let Some(chain) = self.chain.as_mut() {
            chain.before_tick(&mut self.world);
        }
        let started = Instant::now();
        self.schedule.run(&mut self.world);
        // Removal messages (RemovedComponents) live two ticks; without this every component of
        // every despawned peer stayed in the world for good (~0.3 kB per connection: 160 MiB
        // after 424,000 connects and disconnects in the flood bench's churn row).
        self.world.clear_trackers();
        self.timer.publish(&mut self.world, started.elapsed());
        super::progress::Progress::after_tick(&mut self.world, Instant::now());
        // Bans are durable before any socket is closed for them: whoever sees the close can rely on it.
        self.persist_bans();
        Outbox::carry_out(&mut self.world, &mut self.bridge.carrier(&mut self.pending));
        // Then the chain's IO, whose header writes sync the store (milliseconds): frames of this
        // tick (a getdata for a new block, an announcement) must not wait behind them.
        if let Some(chain) = self.chain.as_mut() {
            chain.after_tick(&mut self.world, self.store.as_deref());
        }
        if Instant::now() >= self.next_addr_save {
            self.next_addr_save = Instant::now() + ADDR_SAVE_INTERVAL;
            self.save_addrs();
        }
        // A peer over its send-queue soft bound is not served until its writer drains, which
        // `Written` events announce: it is no reason to spin.
        let soft_bytes = self.world.resource::<Config>().limits.send_queue_bytes_soft;
        self.backlog.iter(&self.world).any(|(rb, sq)| !rb.frames.is_empty() && sq.bytes() <= soft_bytes)
    }

    /// Wall-clock unix ms, never going backwards (timeouts compare against earlier readings).
    fn now_ms(&mut self) -> u64 {
        self.last_now_ms = self.last_now_ms.max(wall_ms());
        self.last_now_ms
    }
}

/// How often the address book is written to the store (Core dumps peers.dat every 15 min).
const ADDR_SAVE_INTERVAL: Duration = Duration::from_secs(15 * 60);

fn wall_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

/// A seed for the world's rng from the OS: /dev/urandom, else std's per-process random hash keys.
fn os_seed() -> u64 {
    use std::io::Read;
    let mut buf = [0u8; 8];
    let from_urandom = std::fs::File::open("/dev/urandom").and_then(|mut f| f.read_exact(&mut buf)).is_ok();
    if from_urandom {
        return u64::from_le_bytes(buf);
    }
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_nanos()));
    h.finish()
}
