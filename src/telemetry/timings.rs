//! Tick and per-system timings, measured in the shell so the systems stay free of the wall clock.
//! bevy (feature `trace`) gives every system a span that it enters for each run; a private tracing
//! subscriber, current only while the schedule is built, owns those spans and adds up the time spent
//! inside each. After every tick the world loop copies the totals into [`SystemTimings`], with the
//! whole tick's duration in a histogram.

use bevy_ecs::prelude::*;
use oni_systems::resources::Histogram;
use serde::{Deserialize, Serialize};
use std::fmt::Write;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Metadata, Subscriber};

/// The span bevy opens around each system run.
const SYSTEM_SPAN: &str = "system";

/// One system's time.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct SystemTiming {
    /// Its name, as bevy gives it (the function's path).
    pub name: String,
    /// Runs counted.
    pub runs: u64,
    /// Time spent in all runs, ns.
    pub total_ns: u64,
    /// Time of its last run, ns.
    pub last_ns: u64,
}

/// Per-system and per-tick time, filled by the shell after each tick.
#[derive(Resource, Clone, Debug, Serialize, Deserialize)]
pub struct SystemTimings {
    /// Each system, in schedule order.
    pub systems: Vec<SystemTiming>,
    /// Whole schedule runs, microseconds.
    pub tick_us: Histogram,
}

impl Default for SystemTimings {
    fn default() -> Self {
        SystemTimings {
            systems: Vec::new(),
            tick_us: Histogram::with_bounds(&[10, 25, 50, 100, 250, 500, 1_000, 2_500, 5_000, 10_000, 50_000, 250_000]),
        }
    }
}

impl SystemTimings {
    /// Appends the timing families to a Prometheus exposition.
    pub fn render_into(&self, s: &mut String) {
        s.push_str("# HELP oni_system_seconds_total Time spent in each system.\n");
        s.push_str("# TYPE oni_system_seconds_total counter\n");
        for t in &self.systems {
            let _ =
                writeln!(s, "oni_system_seconds_total{{system=\"{}\"}} {}", short(&t.name), t.total_ns as f64 / 1e9);
        }
        s.push_str("# HELP oni_system_runs_total Runs of each system.\n# TYPE oni_system_runs_total counter\n");
        for t in &self.systems {
            let _ = writeln!(s, "oni_system_runs_total{{system=\"{}\"}} {}", short(&t.name), t.runs);
        }
        s.push_str("# HELP oni_tick_seconds Duration of one schedule run.\n# TYPE oni_tick_seconds histogram\n");
        let h = &self.tick_us;
        let mut cumulative = 0;
        for (i, c) in h.counts.iter().enumerate() {
            cumulative += c;
            let le = h.bounds.get(i).map_or("+Inf".to_string(), |b| format!("{}", *b as f64 / 1e6));
            let _ = writeln!(s, "oni_tick_seconds_bucket{{le=\"{le}\"}} {cumulative}");
        }
        let _ = writeln!(s, "oni_tick_seconds_sum {}\noni_tick_seconds_count {}", h.sum as f64 / 1e6, h.count);
    }
}

/// The system's last path segment (`oni_systems::systems::ingest::ingest` → `ingest`).
fn short(name: &str) -> &str {
    name.rsplit("::").next().unwrap_or(name)
}

#[derive(Default)]
struct State {
    /// Per span (id − 1): the timing and when it was entered.
    spans: Vec<(SystemTiming, Option<Instant>)>,
}

/// The subscriber that times system spans. Cheap to clone; all clones share the totals.
#[derive(Clone, Default)]
pub struct SpanTimer {
    state: Arc<Mutex<State>>,
}

impl SpanTimer {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Runs `f` (building a schedule) with this timer current, so the systems' spans are its own.
    pub fn capture<R>(&self, f: impl FnOnce() -> R) -> R {
        tracing::dispatcher::with_default(&tracing::Dispatch::new(self.clone()), f)
    }

    /// Copies the totals into the world's [`SystemTimings`], with one tick of `tick` duration.
    pub fn publish(&self, world: &mut World, tick: Duration) {
        let systems: Vec<SystemTiming> = self.lock().spans.iter().map(|(t, _)| t.clone()).collect();
        let mut t = world.get_resource_or_insert_with(SystemTimings::default);
        t.systems = systems;
        t.tick_us.record(tick.as_micros() as u64);
    }
}

struct NameVisitor(String);

impl tracing::field::Visit for NameVisitor {
    fn record_str(&mut self, field: &tracing::field::Field, value: &str) {
        if field.name() == "name" {
            self.0 = value.to_string();
        }
    }

    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        if field.name() == "name" {
            self.0 = format!("{value:?}").trim_matches('"').to_string();
        }
    }
}

impl Subscriber for SpanTimer {
    fn enabled(&self, m: &Metadata<'_>) -> bool {
        m.is_span() && m.name() == SYSTEM_SPAN
    }

    fn max_level_hint(&self) -> Option<tracing::level_filters::LevelFilter> {
        Some(tracing::level_filters::LevelFilter::INFO)
    }

    fn new_span(&self, attrs: &Attributes<'_>) -> Id {
        let mut v = NameVisitor(String::new());
        attrs.record(&mut v);
        let mut s = self.lock();
        s.spans.push((SystemTiming { name: v.0, ..Default::default() }, None));
        Id::from_u64(s.spans.len() as u64)
    }

    fn record(&self, _: &Id, _: &Record<'_>) {}

    fn record_follows_from(&self, _: &Id, _: &Id) {}

    fn event(&self, _: &Event<'_>) {}

    fn enter(&self, id: &Id) {
        if let Some(e) = self.lock().spans.get_mut(id.into_u64() as usize - 1) {
            e.1 = Some(Instant::now());
        }
    }

    fn exit(&self, id: &Id) {
        if let Some((t, entered)) = self.lock().spans.get_mut(id.into_u64() as usize - 1) {
            if let Some(at) = entered.take() {
                let ns = at.elapsed().as_nanos() as u64;
                t.runs += 1;
                t.total_ns += ns;
                t.last_ns = ns;
            }
        }
    }

    // Spans live as long as the schedule: ids are never reused, so nothing to drop.
    fn try_close(&self, _: Id) -> bool {
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use oni_systems::harness::TestNode;

    #[test]
    fn every_system_of_the_schedule_is_timed() {
        let timer = SpanTimer::default();
        let mut schedule = timer.capture(oni_systems::schedule::build_schedule);
        let mut node = TestNode::regtest();
        for _ in 0..3 {
            schedule.run(&mut node.world);
        }
        timer.publish(&mut node.world, Duration::from_micros(40));
        let t = node.world.resource::<SystemTimings>();
        let names: Vec<&str> = t.systems.iter().map(|s| short(&s.name)).collect();
        assert!(names.contains(&"ingest") && names.contains(&"telemetry"), "{names:?}");
        assert!(t.systems.iter().all(|s| s.runs == 3), "{:?}", t.systems);
        assert_eq!(t.tick_us.count, 1);
        let mut text = String::new();
        t.render_into(&mut text);
        assert!(text.contains("oni_system_runs_total{system=\"egress\"} 3"), "{text}");
    }
}
