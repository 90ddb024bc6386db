//! The request model: LLM serving simulated request by request, each replica
//! running continuous batching.
//!
//! Requests wait in one FIFO queue (the load balancer's); a replica takes the
//! head whenever it has a free sequence slot and KV-cache room for the whole
//! request (prompt plus output, reserved at admission, so nothing is ever
//! preempted). Each iteration a replica decodes one token for every running
//! sequence and spends the rest of its token budget on prefill, in FIFO order
//! and in chunks (Sarathi-style chunked prefill, as vLLM does). A request's
//! first token comes at the end of the iteration that finishes its prefill;
//! each further token takes one iteration.
//!
//! An iteration's time is a function of the batch ([`EngineModel::iteration_ms`]):
//! the linear layers' time for the batch's tokens, measured by Vidur, plus
//! attention: decode reads every running sequence's KV cache (memory-bound),
//! and prefill attention is quadratic in the chunk (compute-bound).
//!
//! Every request's TTFT, end-to-end latency and every token's inter-token gap
//! is counted twice: in the window the policy reads next (as a serving
//! engine's Prometheus histograms would report it) and in the minute it
//! belongs to (a request's arrival minute; a token's minute), which is how the
//! SLO is scored.

use serde::{Deserialize, Serialize};
use std::cmp::Reverse;
use std::collections::{BinaryHeap, VecDeque};

/// One request: when it arrives (ns after the trace's start) and its tokens.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Request {
    pub at_ns: u64,
    pub prompt: u32,
    pub output: u32,
}

/// One replica of the served model, calibrated by default for Meta-Llama-3-8B
/// on one A100-80GB (tensor parallelism 1). See the README's "Request model".
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EngineModel {
    /// What the defaults describe (for the report).
    pub name: String,
    /// Most sequences in a batch (Vidur's `batch_size_cap` default).
    pub max_batch: u32,
    /// Tokens one iteration processes, decode first, the rest prefill
    /// (Vidur's Sarathi `chunk_size` default).
    pub token_budget: u32,
    /// KV-cache room, tokens.
    pub kv_capacity_tokens: u64,
    /// Time of the linear layers (all of them, every layer) for a batch of N
    /// tokens, ms, as (N, ms) points; linear in between and beyond.
    pub linear_ms: Vec<(u32, f64)>,
    /// Decode attention per token of KV cache read, µs.
    pub decode_us_per_context_token: f64,
    /// Prefill attention FLOPs per (query token x key token), all layers.
    pub prefill_attention_flops_per_pair: f64,
    /// Achieved FLOP rate for prefill attention, TFLOP/s.
    pub attention_tflops: f64,
}

/// Vidur's measured linear-layer times for Meta-Llama-3-8B on an A100 (TP 1):
/// the median of every per-layer operation in
/// `data/profiling/compute/a100/meta-llama/Meta-Llama-3-8B/mlp.csv`, summed
/// and times 32 layers, plus the embedding.
const LLAMA3_8B_A100_LINEAR_MS: [(u32, f64); 14] = [
    (1, 9.699),
    (8, 9.992),
    (16, 10.142),
    (32, 10.917),
    (64, 11.238),
    (128, 13.193),
    (256, 19.503),
    (384, 27.767),
    (512, 34.667),
    (768, 52.990),
    (1024, 75.199),
    (1536, 107.007),
    (2048, 141.913),
    (4096, 273.169),
];

impl Default for EngineModel {
    fn default() -> Self {
        // Llama-3-8B: 32 layers, 8 KV heads of 128, fp16: 2 x 2 x 8 x 128 x 32
        // = 131,072 bytes of KV cache per token.
        let kv_bytes_per_token = 131_072.0;
        // A100-80GB SXM: 2,039 GB/s of HBM; attention kernels reach about 70 %.
        let decode_us = kv_bytes_per_token / (2_039e9 * 0.7) * 1e6;
        // Vidur's memory planner: 80 GB less a 10 % margin less 8.03 B fp16
        // parameters, over the KV bytes per token.
        let kv_tokens = (80.0 * 1024f64.powi(3) * 0.9 - 2.0 * 8.03e9) / kv_bytes_per_token;
        EngineModel {
            name: "Meta-Llama-3-8B on A100-80GB (Vidur profile)".into(),
            max_batch: 128,
            token_budget: 512,
            kv_capacity_tokens: kv_tokens.floor() as u64,
            linear_ms: LLAMA3_8B_A100_LINEAR_MS.to_vec(),
            decode_us_per_context_token: (decode_us * 1e4).round() / 1e4,
            // QK^T and AV, 2 FLOPs each per pair per model dimension (4,096), 32 layers.
            prefill_attention_flops_per_pair: 4.0 * 4096.0 * 32.0,
            // Half the A100's 312 TFLOP/s fp16 peak.
            attention_tflops: 156.0,
        }
    }
}

impl EngineModel {
    pub fn validate(&self) -> Result<(), String> {
        if self.max_batch == 0 || self.token_budget == 0 || self.kv_capacity_tokens == 0 {
            return Err(
                "engine: max_batch, token_budget and kv_capacity_tokens must be > 0".into(),
            );
        }
        if self.linear_ms.is_empty() {
            return Err("engine: linear_ms needs at least one (tokens, ms) point".into());
        }
        if self
            .linear_ms
            .windows(2)
            .any(|w| w[1].0 <= w[0].0 || w[1].1 < w[0].1)
        {
            return Err("engine: linear_ms points must rise in tokens and not fall in time".into());
        }
        let positive = [
            ("linear_ms", self.linear_ms[0].1),
            ("attention_tflops", self.attention_tflops),
        ];
        let non_negative = [
            (
                "decode_us_per_context_token",
                self.decode_us_per_context_token,
            ),
            (
                "prefill_attention_flops_per_pair",
                self.prefill_attention_flops_per_pair,
            ),
        ];
        for (name, v) in positive {
            if !(v.is_finite() && v > 0.0) {
                return Err(format!("engine: {name} must be > 0, got {v}"));
            }
        }
        for (name, v) in non_negative {
            if !(v.is_finite() && v >= 0.0) {
                return Err(format!("engine: {name} must be >= 0, got {v}"));
            }
        }
        Ok(())
    }

    /// The linear layers' time for a batch of `tokens`, ms.
    pub fn linear_time_ms(&self, tokens: u32) -> f64 {
        let points = &self.linear_ms;
        let i = points.partition_point(|p| p.0 < tokens);
        let (a, b) = match i {
            0 => return points[0].1,
            i if i >= points.len() => match points.len() {
                1 => return points[0].1,
                n => (points[n - 2], points[n - 1]),
            },
            i => (points[i - 1], points[i]),
        };
        let x = f64::from(tokens.saturating_sub(a.0)) / f64::from(b.0 - a.0);
        a.1 + (b.1 - a.1) * x
    }

    /// One iteration's time: `decode` sequences reading `context` KV tokens
    /// in all, and `prefill` tokens whose attention covers `pairs` (query,
    /// key) pairs.
    pub fn iteration_ms(&self, decode: u32, context: u64, prefill: u32, pairs: f64) -> f64 {
        self.linear_time_ms(decode + prefill)
            + self.decode_us_per_context_token * context as f64 / 1000.0
            + pairs * self.prefill_attention_flops_per_pair / (self.attention_tflops * 1e9)
    }

    /// Tokens (prompt and output) a replica processes per second with every
    /// iteration at its full token budget: its capacity, for scaling a trace
    /// to "replicas needed" and for the policies' params.
    pub fn tokens_per_second(&self) -> f64 {
        f64::from(self.token_budget) / self.linear_time_ms(self.token_budget) * 1000.0
    }
}

/// SLO thresholds, ms: a minute meets the SLO when each set one holds at p95.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct SloLimits {
    pub ttft_ms: Option<f64>,
    pub itl_ms: Option<f64>,
    pub e2e_ms: Option<f64>,
}

/// Per-minute counts behind the SLO verdict: how many observations, and how
/// many were over their limit.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MinuteCounts {
    /// The plotted SLO metric's values ([`SloLimits::plotted`]) around its
    /// limit, for the plot's latency panel (not for the verdict).
    pub plotted: LimitHistogram,
    /// Requests with a first token (or known to be late for one).
    pub ttft_n: u32,
    pub ttft_over: u32,
    /// Requests finished (or known to be late).
    pub e2e_n: u32,
    pub e2e_over: u32,
    pub tokens: u64,
    pub itl_over: u64,
}

/// Values relative to a limit in 32 buckets 25 % wide, from 1/35 of it to 35
/// times it (beyond: the end buckets). Coarse, and 128 bytes a minute.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LimitHistogram([u32; 32]);

impl LimitHistogram {
    const RATIO: f64 = 1.25;

    pub fn add(&mut self, value: f64, limit: f64, weight: u32) {
        let k = ((value.max(1e-9) / limit).ln() / Self::RATIO.ln()).floor() + 16.0;
        let i = k.clamp(0.0, 31.0) as usize;
        self.0[i] = self.0[i].saturating_add(weight);
    }

    /// The upper edge of the bucket holding the p95, in the limit's unit.
    pub fn p95(&self, limit: f64) -> Option<f64> {
        let total: u64 = self.0.iter().map(|&c| u64::from(c)).sum();
        if total == 0 {
            return None;
        }
        let rank = (total * 95).div_ceil(100);
        let mut seen = 0;
        for (i, &c) in self.0.iter().enumerate() {
            seen += u64::from(c);
            if seen >= rank {
                return Some(limit * Self::RATIO.powi(i as i32 - 15));
            }
        }
        None
    }
}

impl SloLimits {
    /// The metric the plot draws against its limit: TTFT, else ITL, else end
    /// to end.
    pub fn plotted(&self) -> Option<(&'static str, f64)> {
        self.ttft_ms
            .map(|l| ("TTFT p95", l))
            .or(self.itl_ms.map(|l| ("ITL p95", l)))
            .or(self.e2e_ms.map(|l| ("end-to-end p95", l)))
    }
}

/// At most this many of `n` may be over the limit for the p95 to be within it
/// (nearest rank: the p95 is the `ceil(0.95 n)`-th smallest).
fn allowed_over(n: u64) -> u64 {
    n - (n * 95).div_ceil(100)
}

impl MinuteCounts {
    /// Whether every configured p95 is within its limit.
    pub fn meets(&self, slo: &SloLimits) -> bool {
        let ok = |set: Option<f64>, over: u64, n: u64| set.is_none() || over <= allowed_over(n);
        ok(
            slo.ttft_ms,
            u64::from(self.ttft_over),
            u64::from(self.ttft_n),
        ) && ok(slo.e2e_ms, u64::from(self.e2e_over), u64::from(self.e2e_n))
            && ok(slo.itl_ms, self.itl_over, self.tokens)
    }
}

/// A log-bucketed histogram (1 % wide buckets from 1 ms to about 8 hours) of
/// weighted latencies.
#[derive(Debug, Clone)]
pub struct Histogram {
    buckets: Vec<u64>,
    total: u64,
}

impl Histogram {
    const BUCKETS: usize = 1700;

    pub fn new() -> Self {
        Histogram {
            buckets: vec![0; Self::BUCKETS],
            total: 0,
        }
    }

    fn bucket(ms: f64) -> usize {
        ((ms.max(1.0).ln() * 100.0) as usize).min(Self::BUCKETS - 1)
    }

    pub fn add(&mut self, ms: f64, weight: u64) {
        self.buckets[Self::bucket(ms)] += weight;
        self.total += weight;
    }

    pub fn is_empty(&self) -> bool {
        self.total == 0
    }

    /// The upper edge of the bucket holding the 95th percentile (None when empty).
    pub fn p95(&self) -> Option<f64> {
        if self.total == 0 {
            return None;
        }
        let rank = (self.total * 95).div_ceil(100);
        let mut seen = 0;
        for (i, w) in self.buckets.iter().enumerate() {
            seen += w;
            if seen >= rank {
                let edge = ((i + 1) as f64 / 100.0).exp();
                return Some((edge * 1000.0).round() / 1000.0);
            }
        }
        None
    }

    pub fn clear(&mut self) {
        if self.total > 0 {
            self.buckets.fill(0);
            self.total = 0;
        }
    }
}

impl Default for Histogram {
    fn default() -> Self {
        Self::new()
    }
}

/// What the engine saw since the policy last read it.
#[derive(Debug, Clone, Default)]
pub struct EngineWindow {
    pub ttft: Histogram,
    pub itl: Histogram,
    pub e2e: Histogram,
    /// Prompt and output tokens processed.
    pub tokens: u64,
    /// Replica-time spent iterating, ns.
    pub busy_ns: u64,
}

/// The same over the whole run (for the report).
#[derive(Debug, Clone, Default)]
pub struct EngineTotals {
    pub ttft: Histogram,
    pub itl: Histogram,
    pub e2e: Histogram,
    pub completed: u64,
    /// Requests larger than one replica's whole KV cache: never served.
    pub rejected: u64,
}

/// A sequence admitted to a replica.
#[derive(Debug, Clone, Copy)]
struct Prefilling {
    arrival_ns: u64,
    prompt: u32,
    output: u32,
    /// Prompt tokens not yet prefilled.
    left: u32,
}

/// A sequence decoding: it finishes when its replica's iteration count
/// reaches `finish_iter`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct Decoding {
    finish_iter: u64,
    arrival_ns: u64,
    /// Its KV tokens (prompt plus output).
    kv: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ReplicaState {
    Serving,
    /// Takes no new requests; gone once its batch is done.
    Draining,
    Gone,
}

#[derive(Debug, Clone)]
struct Replica {
    state: ReplicaState,
    /// Iterations done.
    iter: u64,
    /// An iteration is under way (its end is in the event heap).
    busy: bool,
    prefilling: VecDeque<Prefilling>,
    decoding: BinaryHeap<Reverse<Decoding>>,
    /// KV tokens the running decodes read per iteration.
    context: u64,
    /// KV tokens reserved by every admitted sequence.
    kv_reserved: u64,
    /// The event under way: decode tokens per iteration, its iterations
    /// (more than one only when nothing can change the batch before it
    /// ends: see [`Engine::plan`]) and its length.
    decode_now: u32,
    iterations_now: u32,
    iteration_ns: u64,
}

impl Replica {
    fn new() -> Self {
        Replica {
            state: ReplicaState::Serving,
            iter: 0,
            busy: false,
            prefilling: VecDeque::new(),
            decoding: BinaryHeap::new(),
            context: 0,
            kv_reserved: 0,
            decode_now: 0,
            iterations_now: 1,
            iteration_ns: 0,
        }
    }

    fn running(&self) -> usize {
        self.prefilling.len() + self.decoding.len()
    }
}

/// The replicas, the queue in front of them, and what they measured.
#[derive(Debug, Clone)]
pub struct Engine {
    model: EngineModel,
    slo: SloLimits,
    queue: VecDeque<Request>,
    replicas: Vec<Replica>,
    /// Iteration ends: (time, replica).
    events: BinaryHeap<Reverse<(u64, usize)>>,
    /// Serving replicas with nothing to do, lowest index last.
    idle: Vec<usize>,
    serving: u32,
    now_ns: u64,
    /// The next arrival (or the end of the run): a replica may run several
    /// decode iterations as one event only up to here.
    horizon_ns: u64,
    pub window: EngineWindow,
    pub totals: EngineTotals,
    /// Counts per minute, from minute `minute_base` of the trace on (grows
    /// as needed; counts for earlier minutes are dropped).
    pub minutes: Vec<MinuteCounts>,
    pub minute_base: usize,
    /// Where counts for a minute before `minute_base` go.
    dropped: MinuteCounts,
}

const MINUTE_NS: u64 = 60_000_000_000;

impl Engine {
    pub fn new(model: EngineModel, slo: SloLimits) -> Self {
        Engine {
            model,
            slo,
            queue: VecDeque::new(),
            replicas: Vec::new(),
            events: BinaryHeap::new(),
            idle: Vec::new(),
            serving: 0,
            now_ns: 0,
            horizon_ns: 0,
            window: EngineWindow::default(),
            totals: EngineTotals::default(),
            minutes: Vec::new(),
            minute_base: 0,
            dropped: MinuteCounts::default(),
        }
    }

    /// A copy to try something on, keeping counts from minute `from` on
    /// only (a full clone would copy every minute so far).
    pub fn trial(&self, from: usize) -> Engine {
        Engine {
            model: self.model.clone(),
            slo: self.slo,
            queue: self.queue.clone(),
            replicas: self.replicas.clone(),
            events: self.events.clone(),
            idle: self.idle.clone(),
            serving: self.serving,
            now_ns: self.now_ns,
            horizon_ns: self.horizon_ns,
            window: EngineWindow::default(),
            totals: EngineTotals::default(),
            minutes: Vec::new(),
            minute_base: from,
            dropped: MinuteCounts::default(),
        }
    }

    pub fn model(&self) -> &EngineModel {
        &self.model
    }

    /// Replicas taking requests.
    pub fn serving(&self) -> u32 {
        self.serving
    }

    /// Requests waiting for a replica.
    pub fn waiting(&self) -> usize {
        self.queue.len()
    }

    /// Requests waiting or running.
    pub fn in_system(&self) -> usize {
        self.queue.len()
            + self
                .replicas
                .iter()
                .filter(|r| r.state != ReplicaState::Gone)
                .map(Replica::running)
                .sum::<usize>()
    }

    /// How long the oldest waiting request has waited, seconds.
    pub fn oldest_waiting_seconds(&self) -> f64 {
        self.queue
            .front()
            .map_or(0.0, |r| self.now_ns.saturating_sub(r.at_ns) as f64 / 1e9)
    }

    /// KV cache reserved over the serving replicas' capacity.
    pub fn kv_utilization(&self) -> f64 {
        if self.serving == 0 {
            return 0.0;
        }
        let reserved: u64 = self
            .replicas
            .iter()
            .filter(|r| r.state == ReplicaState::Serving)
            .map(|r| r.kv_reserved)
            .sum();
        reserved as f64 / (f64::from(self.serving) * self.model.kv_capacity_tokens as f64)
    }

    fn minute(&mut self, at_ns: u64) -> &mut MinuteCounts {
        let m = (at_ns / MINUTE_NS) as usize;
        let Some(i) = m.checked_sub(self.minute_base) else {
            self.dropped = MinuteCounts::default();
            return &mut self.dropped;
        };
        if self.minutes.len() <= i {
            self.minutes.resize(i + 1, MinuteCounts::default());
        }
        &mut self.minutes[i]
    }

    /// Minute `m`'s counts (of the trace), if kept.
    pub fn minute_counts(&self, m: usize) -> MinuteCounts {
        m.checked_sub(self.minute_base)
            .and_then(|i| self.minutes.get(i).copied())
            .unwrap_or_default()
    }

    /// Set the number of serving replicas: new ones start empty (and take
    /// waiting requests at once); removed ones finish their batch first.
    pub fn set_serving(&mut self, n: u32) {
        while self.serving < n {
            let slot = match self
                .replicas
                .iter()
                .position(|r| r.state == ReplicaState::Gone)
            {
                Some(i) => {
                    self.replicas[i] = Replica::new();
                    i
                }
                None => {
                    self.replicas.push(Replica::new());
                    self.replicas.len() - 1
                }
            };
            self.serving += 1;
            self.idle.push(slot);
        }
        while self.serving > n {
            // Drain the serving replica with the least running, newest first.
            let Some(slot) = self
                .replicas
                .iter()
                .enumerate()
                .rev()
                .filter(|(_, r)| r.state == ReplicaState::Serving)
                .min_by_key(|(_, r)| r.running())
                .map(|(i, _)| i)
            else {
                break;
            };
            self.serving -= 1;
            let r = &mut self.replicas[slot];
            if r.busy || r.running() > 0 {
                r.state = ReplicaState::Draining;
            } else {
                r.state = ReplicaState::Gone;
            }
            self.idle.retain(|&i| i != slot);
        }
        self.start_idle();
    }

    /// Run until `until_ns`, taking `arrivals` (in time order, none before
    /// now) as they come.
    pub fn run(&mut self, arrivals: &[Request], until_ns: u64) {
        let mut next = arrivals.iter().peekable();
        loop {
            let event = self.events.peek().map(|Reverse(e)| *e);
            let arrival = next.peek().map(|r| r.at_ns);
            self.horizon_ns = arrival.unwrap_or(until_ns).min(until_ns);
            match (event, arrival) {
                (Some((t, slot)), a) if t <= until_ns && a.is_none_or(|a| t <= a) => {
                    self.events.pop();
                    self.now_ns = t;
                    self.finish_iteration(slot);
                }
                (_, Some(a)) if a <= until_ns => {
                    if let Some(r) = next.next() {
                        self.horizon_ns = next.peek().map_or(until_ns, |n| n.at_ns.min(until_ns));
                        self.now_ns = self.now_ns.max(r.at_ns);
                        self.arrive(*r);
                    }
                }
                _ => break,
            }
        }
        for r in next {
            // Past the horizon: still queued, in order.
            self.arrive(*r);
        }
        self.now_ns = self.now_ns.max(until_ns);
    }

    fn arrive(&mut self, r: Request) {
        if u64::from(r.prompt) + u64::from(r.output) > self.model.kv_capacity_tokens {
            self.totals.rejected += 1;
            let m = self.minute(r.at_ns);
            m.ttft_n += 1;
            m.ttft_over += 1;
            m.e2e_n += 1;
            m.e2e_over += 1;
            return;
        }
        self.queue.push_back(r);
        self.start_idle();
    }

    /// Give waiting requests to idle serving replicas.
    fn start_idle(&mut self) {
        while !self.queue.is_empty() {
            let Some(slot) = self.idle.pop() else { break };
            self.admit(slot);
            if !self.plan(slot) {
                // Could not take the head (KV room): it stays idle.
                self.idle.push(slot);
                break;
            }
        }
    }

    /// Take waiting requests into `slot`'s batch while it has a free slot,
    /// KV room, and prefill work for less than its next iteration: the rest
    /// stay queued for whichever replica frees up first (a router sending
    /// each request to the least-loaded replica).
    fn admit(&mut self, slot: usize) {
        let model = &self.model;
        let r = &mut self.replicas[slot];
        if r.state != ReplicaState::Serving {
            return;
        }
        let room = model
            .token_budget
            .saturating_sub(r.decoding.len() as u32)
            .max(1);
        let mut pending: u32 = r.prefilling.iter().map(|p| p.left).sum();
        while r.running() < model.max_batch as usize && pending < room {
            let Some(head) = self.queue.front() else {
                break;
            };
            let need = u64::from(head.prompt) + u64::from(head.output);
            if r.kv_reserved + need > model.kv_capacity_tokens {
                break;
            }
            let head = *head;
            self.queue.pop_front();
            r.kv_reserved += need;
            pending = pending.saturating_add(head.prompt);
            r.prefilling.push_back(Prefilling {
                arrival_ns: head.at_ns,
                prompt: head.prompt,
                output: head.output,
                left: head.prompt,
            });
        }
    }

    /// Start `slot`'s next iteration, if it has work. Returns whether it did.
    fn plan(&mut self, slot: usize) -> bool {
        let model = &self.model;
        let r = &mut self.replicas[slot];
        let decode = r.decoding.len() as u32;
        let mut budget = model.token_budget.saturating_sub(decode);
        let mut prefill = 0u32;
        let mut pairs = 0.0;
        for p in r.prefilling.iter_mut() {
            if budget == 0 {
                break;
            }
            let take = p.left.min(budget);
            let done = f64::from(p.prompt - p.left);
            pairs += f64::from(take) * (done + f64::from(take) / 2.0);
            p.left -= take;
            budget -= take;
            prefill += take;
        }
        if decode == 0 && prefill == 0 {
            r.busy = false;
            return false;
        }
        let ms = model.iteration_ms(decode, r.context, prefill, pairs);
        let mut iterations = 1u32;
        let mut ns = (ms * 1e6).round().max(1.0) as u64;
        // Decode only, and nothing to admit: the batch stays as it is until a
        // sequence finishes or a request arrives, so run those iterations as
        // one event (each a little longer than the last, as the context
        // grows). This is most of the speed on long, lightly batched runs.
        let head_fits = self.queue.front().is_some_and(|h| {
            r.state == ReplicaState::Serving
                && r.running() < model.max_batch as usize
                && r.kv_reserved + u64::from(h.prompt) + u64::from(h.output)
                    <= model.kv_capacity_tokens
        });
        if prefill == 0 && !head_fits {
            let to_finish = r
                .decoding
                .peek()
                .map_or(1, |Reverse(d)| d.finish_iter.saturating_sub(r.iter).max(1));
            let budget_ns = self.horizon_ns.saturating_sub(self.now_ns) as f64;
            // Iteration j lasts first + slope x j.
            let slope = model.decode_us_per_context_token * f64::from(decode) / 1000.0;
            let total_ms = |k: f64| k * ms + slope * k * (k - 1.0) / 2.0;
            let mut k = ((budget_ns / 1e6) / ms)
                .floor()
                .min(to_finish as f64)
                .max(1.0);
            while k > 1.0 && total_ms(k) * 1e6 > budget_ns {
                k -= 1.0;
            }
            if k > 1.0 {
                iterations = k as u32;
                ns = (total_ms(k) * 1e6).round().max(1.0) as u64;
            }
        }
        r.busy = true;
        r.decode_now = decode;
        r.iterations_now = iterations;
        r.iteration_ns = ns;
        self.window.tokens += u64::from(decode) * u64::from(iterations) + u64::from(prefill);
        self.window.busy_ns += ns;
        self.events.push(Reverse((self.now_ns + ns, slot)));
        true
    }

    /// An iteration of `slot` ended now: tokens out, first tokens, finished
    /// requests; then admit and start the next.
    fn finish_iteration(&mut self, slot: usize) {
        let now = self.now_ns;
        let (decode, iterations, gap_ns) = {
            let r = &mut self.replicas[slot];
            let k = r.iterations_now;
            r.iter += u64::from(k);
            r.context += u64::from(r.decode_now) * u64::from(k);
            (r.decode_now, k, r.iteration_ns)
        };
        if decode > 0 {
            // Several iterations as one event: each token's gap is their
            // mean (they differ by the context's growth, well under 1 %).
            let tokens = u64::from(decode) * u64::from(iterations);
            let gap_ms = gap_ns as f64 / 1e6 / f64::from(iterations);
            self.window.itl.add(gap_ms, tokens);
            self.totals.itl.add(gap_ms, tokens);
            let over = self.slo.itl_ms.is_some_and(|l| gap_ms > l);
            let plot = self.slo.itl_ms.filter(|_| self.slo.ttft_ms.is_none());
            let m = self.minute(now);
            if let Some(l) = plot {
                m.plotted
                    .add(gap_ms, l, u32::try_from(tokens).unwrap_or(u32::MAX));
            }
            m.tokens += tokens;
            if over {
                m.itl_over += tokens;
            }
        }
        // Prefills that finished: their first token is out now.
        while let Some(p) = self.replicas[slot].prefilling.front().copied() {
            if p.left > 0 {
                break;
            }
            self.replicas[slot].prefilling.pop_front();
            let ttft_ms = (now - p.arrival_ns) as f64 / 1e6;
            self.window.ttft.add(ttft_ms, 1);
            self.totals.ttft.add(ttft_ms, 1);
            let over = self.slo.ttft_ms.is_some_and(|l| ttft_ms > l);
            let plot = self.slo.ttft_ms;
            let m = self.minute(p.arrival_ns);
            if let Some(l) = plot {
                m.plotted.add(ttft_ms, l, 1);
            }
            m.ttft_n += 1;
            m.ttft_over += u32::from(over);
            let kv = u64::from(p.prompt) + u64::from(p.output);
            let r = &mut self.replicas[slot];
            if p.output <= 1 {
                r.kv_reserved -= kv;
                self.complete(p.arrival_ns);
            } else {
                r.context += u64::from(p.prompt) + 1;
                r.decoding.push(Reverse(Decoding {
                    finish_iter: r.iter + u64::from(p.output) - 1,
                    arrival_ns: p.arrival_ns,
                    kv,
                }));
            }
        }
        loop {
            let r = &mut self.replicas[slot];
            let Some(Reverse(d)) = r.decoding.peek().copied() else {
                break;
            };
            if d.finish_iter > r.iter {
                break;
            }
            r.decoding.pop();
            r.context -= d.kv;
            r.kv_reserved -= d.kv;
            self.complete(d.arrival_ns);
        }
        self.admit(slot);
        if !self.plan(slot) {
            let r = &mut self.replicas[slot];
            match r.state {
                ReplicaState::Serving => self.idle.push(slot),
                ReplicaState::Draining => r.state = ReplicaState::Gone,
                ReplicaState::Gone => {}
            }
        }
    }

    fn complete(&mut self, arrival_ns: u64) {
        let e2e_ms = (self.now_ns - arrival_ns) as f64 / 1e6;
        self.window.e2e.add(e2e_ms, 1);
        self.totals.e2e.add(e2e_ms, 1);
        self.totals.completed += 1;
        let over = self.slo.e2e_ms.is_some_and(|l| e2e_ms > l);
        let plot = self
            .slo
            .e2e_ms
            .filter(|_| self.slo.ttft_ms.is_none() && self.slo.itl_ms.is_none());
        let m = self.minute(arrival_ns);
        if let Some(l) = plot {
            m.plotted.add(e2e_ms, l, 1);
        }
        m.e2e_n += 1;
        m.e2e_over += u32::from(over);
    }

    /// [`Self::close`], and the per-minute counts from minute 0 (the engine
    /// must have kept every minute).
    pub fn close_minutes(&mut self) -> Vec<MinuteCounts> {
        self.close();
        std::mem::take(&mut self.minutes)
    }

    /// Requests never finished by the end count against their minute when
    /// they have already waited past a limit (they can only be later).
    pub fn close(&mut self) {
        let now = self.now_ns;
        let slo = self.slo;
        let mut late: Vec<(u64, bool, bool)> = Vec::new();
        let over = |limit: Option<f64>, at: u64| {
            limit.is_some_and(|l| (now.saturating_sub(at)) as f64 / 1e6 > l)
        };
        for q in &self.queue {
            late.push((
                q.at_ns,
                over(slo.ttft_ms, q.at_ns),
                over(slo.e2e_ms, q.at_ns),
            ));
        }
        for r in self
            .replicas
            .iter()
            .filter(|r| r.state != ReplicaState::Gone)
        {
            for p in &r.prefilling {
                late.push((
                    p.arrival_ns,
                    over(slo.ttft_ms, p.arrival_ns),
                    over(slo.e2e_ms, p.arrival_ns),
                ));
            }
            for Reverse(d) in r.decoding.iter() {
                late.push((d.arrival_ns, false, over(slo.e2e_ms, d.arrival_ns)));
            }
        }
        for (at, ttft, e2e) in late {
            let m = self.minute(at);
            m.ttft_n += u32::from(ttft);
            m.ttft_over += u32::from(ttft);
            m.e2e_n += u32::from(e2e);
            m.e2e_over += u32::from(e2e);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn engine(slo: SloLimits) -> Engine {
        Engine::new(EngineModel::default(), slo)
    }

    fn req(at_ms: u64, prompt: u32, output: u32) -> Request {
        Request {
            at_ns: at_ms * 1_000_000,
            prompt,
            output,
        }
    }

    #[test]
    fn the_default_calibration_is_vidurs_llama3_8b_on_an_a100() {
        let m = EngineModel::default();
        assert!(m.validate().is_ok());
        assert_eq!(m.linear_time_ms(512), 34.667);
        // Between points: linear.
        assert!((m.linear_time_ms(448) - (27.767 + 34.667) / 2.0).abs() < 1e-9);
        // Beyond the last point: the last slope.
        assert!(m.linear_time_ms(8192) > 273.169 * 1.9);
        // 131,072 B per KV token at 70 % of 2,039 GB/s.
        assert!((m.decode_us_per_context_token - 0.0918).abs() < 1e-4);
        assert_eq!(m.kv_capacity_tokens, 467_295);
        // A full-budget iteration: 512 tokens in 34.7 ms, about 14,770 tokens/s.
        assert!((m.tokens_per_second() - 14_769.0).abs() < 1.0);
    }

    #[test]
    fn a_lone_request_prefills_in_chunks_then_decodes_one_token_per_iteration() {
        let mut e = engine(SloLimits::default());
        e.set_serving(1);
        // 1,000 prompt tokens: chunks of 512 and 488; then 9 more tokens.
        e.run(&[req(0, 1000, 10)], 60_000_000_000);
        let m = EngineModel::default();
        let first = m.iteration_ms(0, 0, 512, 512.0 * 256.0);
        let second = m.iteration_ms(0, 0, 488, 488.0 * (512.0 + 244.0));
        let ttft = e.totals.ttft.p95().unwrap();
        // The histogram's bucket edge is within 1 % above the true value.
        assert!(
            ttft >= first + second && ttft <= (first + second) * 1.011,
            "{ttft}"
        );
        assert_eq!(e.totals.completed, 1);
        let m0 = e.minutes[0];
        assert_eq!(
            (m0.ttft_n, m0.e2e_n, m0.tokens),
            (1, 1, 9),
            "9 decode tokens"
        );
        // Every decode iteration is one token: about 9.7 ms plus attention.
        let itl = e.totals.itl.p95().unwrap();
        assert!((9.7..10.0).contains(&itl), "{itl}");
        assert_eq!(e.in_system(), 0);
    }

    #[test]
    fn a_full_batch_queues_the_rest_and_ttft_includes_the_wait() {
        let model = EngineModel {
            max_batch: 2,
            ..EngineModel::default()
        };
        let mut e = Engine::new(
            model,
            SloLimits {
                ttft_ms: Some(500.0),
                ..SloLimits::default()
            },
        );
        e.set_serving(1);
        let burst: Vec<Request> = (0..3).map(|_| req(0, 100, 200)).collect();
        e.run(&burst, 1_000_000_000);
        // Two run, one waits for a slot (200 tokens at ~10 ms each).
        assert_eq!(e.waiting(), 1);
        assert!(e.oldest_waiting_seconds() > 0.9);
        e.run(&[], 60_000_000_000);
        assert_eq!(e.totals.completed, 3);
        let m0 = e.minutes[0];
        assert_eq!(m0.ttft_n, 3);
        assert_eq!(m0.ttft_over, 1, "the third waited about 2 s");
        // 1 of 3 over the limit: the p95 is over it.
        assert!(!m0.meets(&SloLimits {
            ttft_ms: Some(500.0),
            ..SloLimits::default()
        }));
        assert!(m0.meets(&SloLimits::default()), "no limit set: met");
    }

    #[test]
    fn more_replicas_serve_a_burst_sooner_and_removed_ones_finish_their_batch() {
        let burst: Vec<Request> = (0..64).map(|i| req(i, 2000, 50)).collect();
        let ttft = |n: u32| {
            let mut e = engine(SloLimits::default());
            e.set_serving(n);
            e.run(&burst, 120_000_000_000);
            assert_eq!(e.totals.completed, 64);
            e.totals.ttft.p95().unwrap()
        };
        let (one, four) = (ttft(1), ttft(4));
        assert!(four < one / 3.0, "1 replica {one} ms, 4 replicas {four} ms");
        // Scale in while busy: nothing is lost.
        let mut e = engine(SloLimits::default());
        e.set_serving(4);
        e.run(&burst, 1_000_000_000);
        e.set_serving(1);
        assert_eq!(e.serving(), 1);
        e.run(&[], 600_000_000_000);
        assert_eq!(e.totals.completed, 64);
        assert_eq!(e.in_system(), 0);
    }

    #[test]
    fn a_request_larger_than_the_cache_is_rejected_and_counted_against_its_minute() {
        let model = EngineModel {
            kv_capacity_tokens: 1000,
            ..EngineModel::default()
        };
        let slo = SloLimits {
            ttft_ms: Some(2000.0),
            ..SloLimits::default()
        };
        let mut e = Engine::new(model, slo);
        e.set_serving(1);
        e.run(&[req(0, 900, 200), req(1, 10, 10)], 60_000_000_000);
        assert_eq!((e.totals.rejected, e.totals.completed), (1, 1));
        assert_eq!(e.minutes[0].ttft_over, 1);
        assert!(!e.minutes[0].meets(&slo));
    }

    #[test]
    fn unfinished_requests_count_at_the_end_only_when_already_late() {
        let slo = SloLimits {
            ttft_ms: Some(2000.0),
            ..SloLimits::default()
        };
        let mut e = Engine::new(EngineModel::default(), slo);
        // No replica: everything waits.
        e.run(&[req(0, 10, 10), req(59_000, 10, 10)], 60_000_000_000);
        e.close();
        assert_eq!(e.minutes[0].ttft_n, 1, "only the one waiting 60 s");
        assert!(!e.minutes[0].meets(&slo));
    }

    #[test]
    fn p95_allows_five_in_a_hundred() {
        assert_eq!(allowed_over(100), 5);
        assert_eq!(allowed_over(19), 0);
        assert_eq!(allowed_over(20), 1);
        assert_eq!(allowed_over(0), 0);
    }
}
