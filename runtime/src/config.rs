//! The config file (TOML): many scalers, each a policy, a source, a target and
//! guardrails. One validation runs for `validate`, at `run` start and on reload,
//! and reports every error at once with file, line, column and a hint.
//!
//! ```toml
//! [[scaler]]
//! name = "llm-chat"
//! tenant = "acme"
//! policy = "builtin:target-tracking"
//! params = { metrics = [{ type = "object", name = "gpu_utilization", target = { value = 0.7 } }] }
//! min_replicas = 1
//! max_replicas = 16
//! interval_seconds = 15
//! source = { type = "static" }
//! metrics = { gpu_utilization = 0.82 }
//! target = { type = "log" }
//! ```

pub use crate::actuators::{KubernetesConfig, TargetConfig};
pub use crate::guard::FallbackConfig;
use crate::guard::{GuardConfig, GuardRules};
use crate::host::{Limits, PolicySource};
use crate::snapshot::{clip, clip_message, strsim};
pub use crate::sources::{MetricQuery, PrometheusConfig, ReplayConfig, SourceConfig};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use std::collections::BTreeMap;
use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};
use toml::de::{DeTable, DeValue};

/// A whole config file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Where guard and policy state is kept between restarts (per scaler).
    #[serde(default)]
    pub state_dir: Option<PathBuf>,
    #[serde(default)]
    pub audit: AuditSettings,
    #[serde(default)]
    pub admin: AdminSettings,
    /// Tenants' tiers: default quotas, built-ins and whether custom `.wasm`
    /// runs (`[tiers.free] custom_wasm = false`, `[tiers.free.quotas] scalers = 5`).
    #[serde(default)]
    pub tiers: BTreeMap<String, crate::tenants::Tier>,
    #[serde(default, rename = "scaler")]
    pub scalers: Vec<ScalerConfig>,
}

/// The audit log.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AuditSettings {
    pub path: PathBuf,
    /// Rotate when the file reaches this size.
    pub max_bytes: u64,
    /// Rotated files to keep (`audit.jsonl.1` ...).
    pub keep: u32,
}

impl Default for AuditSettings {
    fn default() -> Self {
        AuditSettings {
            path: "wasmscale-audit.jsonl".into(),
            max_bytes: 64 << 20,
            keep: 5,
        }
    }
}

/// The admin HTTP server (`/metrics`, `/healthz`, `/readyz`).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AdminSettings {
    /// Listen address (`IP:PORT` or `localhost:PORT`); empty disables the server.
    pub listen: String,
    /// Allow a non-loopback `listen` address. The admin endpoint can pause
    /// every scaler, so serving it beyond this machine must be asked for.
    pub allow_remote: bool,
    /// `none`: whoever reaches the port is the operator (a loopback-only
    /// setup). `tokens`: every API call needs a bearer token (tenants,
    /// roles; see `wasmscale tenant`), and the first operator token is
    /// written to `STATE_DIR/operator.token`.
    pub auth: AdminAuth,
}

/// How the admin API authenticates callers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum AdminAuth {
    #[default]
    None,
    Tokens,
}

impl Default for AdminSettings {
    fn default() -> Self {
        AdminSettings {
            listen: "127.0.0.1:9464".into(),
            allow_remote: false,
            auth: AdminAuth::None,
        }
    }
}

/// One scaler.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScalerConfig {
    pub name: String,
    #[serde(default = "default_tenant")]
    pub tenant: String,
    /// `builtin:NAME` or a path to a `.wasm` component (relative to the config file).
    pub policy: String,
    /// The policy's params (passed to it as JSON).
    #[serde(default)]
    pub params: toml::Table,
    pub min_replicas: u32,
    pub max_replicas: u32,
    #[serde(default = "default_interval")]
    pub interval_seconds: f64,
    #[serde(default)]
    pub target: TargetConfig,
    #[serde(default)]
    pub source: SourceConfig,
    /// Snapshot field (or custom metric name) -> a query (Prometheus) or a value (static).
    #[serde(default)]
    pub metrics: BTreeMap<String, MetricQuery>,
    #[serde(default)]
    pub guard: GuardRules,
    #[serde(default)]
    pub fallback: FallbackConfig,
    #[serde(default)]
    pub limits: Option<Limits>,
    /// A second, fast policy whose proposal is a floor: the scaler takes the
    /// larger of the two (e.g. step scaling on p95 latency under a slower
    /// target-tracking policy).
    #[serde(default)]
    pub safety_net: Option<SafetyNet>,
    /// Bounds of each capacity pool (`[scaler.pools.spot] max = 4`), for
    /// decisions that set a count per pool. A pool not named is unbounded.
    #[serde(default)]
    pub pools: crate::guard::PoolLimits,
    /// How a policy version swapped in while running is watched.
    #[serde(default)]
    pub rollout: Rollout,
    /// Ed25519 public keys (hex): the policy must be a registry version
    /// signed by one of them (`wasmscale policy sign`). Empty: any.
    #[serde(default)]
    pub require_signed_by: Vec<String>,
}

/// A hot-swapped policy version's probation: for its first
/// `probation_ticks`, a tick whose policy fails or proposes outside
/// `[band_min, band_max]` counts against it, and more than `max_failures`
/// such ticks bring the previous version back.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Rollout {
    pub probation_ticks: u32,
    pub max_failures: u32,
    /// The band a new version's proposals must stay in (default: the
    /// scaler's `min_replicas`).
    pub band_min: Option<u32>,
    /// Default: the scaler's `max_replicas`.
    pub band_max: Option<u32>,
}

impl Default for Rollout {
    fn default() -> Self {
        Rollout {
            probation_ticks: 10,
            max_failures: 3,
            band_min: None,
            band_max: None,
        }
    }
}

/// The most ticks a probation can last.
pub const MAX_PROBATION_TICKS: u32 = 100_000;

/// A safety-net policy and its params.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SafetyNet {
    pub policy: String,
    #[serde(default)]
    pub params: toml::Table,
}

impl SafetyNet {
    pub fn params_json(&self) -> String {
        serde_json::to_string(&self.params).unwrap_or_else(|_| "{}".into())
    }
}

fn default_tenant() -> String {
    "default".into()
}

fn default_interval() -> f64 {
    15.0
}

impl ScalerConfig {
    /// A scaler as a config file with only these keys would give it: default
    /// guardrails (HPA `behavior` with upstream's defaults), fallback and limits,
    /// a static source and the log target. `simulate` and `replay` start here.
    pub fn minimal(
        name: &str,
        policy: &str,
        params: &serde_json::Value,
        min_replicas: u32,
        max_replicas: u32,
        interval_seconds: f64,
    ) -> Result<Self, String> {
        let params: toml::Table = serde_json::from_value(params.clone())
            .map_err(|e| format!("{policy}: params must be a JSON object: {e}"))?;
        let mut table = toml::Table::new();
        table.insert("name".into(), name.into());
        table.insert("policy".into(), policy.into());
        table.insert("params".into(), toml::Value::Table(params));
        table.insert("min_replicas".into(), i64::from(min_replicas).into());
        table.insert("max_replicas".into(), i64::from(max_replicas).into());
        table.insert("interval_seconds".into(), interval_seconds.into());
        toml::Value::Table(table)
            .try_into::<ScalerConfig>()
            .map_err(|e| format!("{policy}: {e}"))
    }

    /// The params as the JSON string the policy receives.
    pub fn params_json(&self) -> String {
        serde_json::to_string(&self.params).unwrap_or_else(|_| "{}".into())
    }

    pub fn guard_config(&self) -> GuardConfig {
        GuardConfig::new(self.min_replicas, self.max_replicas, self.guard.clone())
            .with_fallback(self.fallback.clone())
            .with_pools(self.pools.clone())
    }

    /// The policy source, with a relative path taken from the config's directory.
    pub fn policy_source(&self, base: &Path) -> PolicySource {
        PolicySource::resolve(&self.policy, base)
    }
}

/// One problem in a config file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub line: usize,
    pub column: usize,
    pub message: String,
    pub hint: Option<String>,
}

/// Every problem found in a config file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigErrors {
    pub file: String,
    pub errors: Vec<ConfigError>,
}

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.errors.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{}:{}:{}: {}", self.file, e.line, e.column, e.message)?;
            if let Some(h) = &e.hint {
                write!(f, "\n    hint: {h}")?;
            }
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {}

/// Read and check a config file (the data alone: no policy is loaded).
pub fn load(path: &Path) -> Result<Config, ConfigErrors> {
    read(path).into_result()
}

/// Read a config file and check it, keeping what a later step needs to add
/// its own findings (see [`Checked`]).
pub fn read(path: &Path) -> Checked {
    let file = path.display().to_string();
    let base = path.parent().unwrap_or(Path::new("."));
    match std::fs::read_to_string(path) {
        Ok(src) => check(&file, &src, base),
        Err(e) => Checked::failed(
            &file,
            "",
            base,
            vec![ConfigError {
                line: 1,
                column: 1,
                message: format!("cannot read the config: {e}"),
                hint: None,
            }],
        ),
    }
}

/// Check config text. `base` resolves relative paths (traces, kubeconfigs).
pub fn validate(file: &str, src: &str, base: &Path) -> Result<Config, ConfigErrors> {
    check(file, src, base).into_result()
}

/// A config's text, checked: the config when it parsed, every problem found,
/// and the text, so that a later step (the controller's policy probe) can
/// place its own findings at a line and column.
#[derive(Debug)]
pub struct Checked {
    file: String,
    src: String,
    base: PathBuf,
    config: Option<Config>,
    errors: Vec<ConfigError>,
    /// Scalers (by index) with a problem already.
    flawed: Vec<bool>,
    /// Metrics nothing seems to read (scaler, metric, the error): problems
    /// unless the policy probe finds them in a 0.2 manifest.
    pending: Vec<(usize, String, ConfigError)>,
    /// A problem outside every `[[scaler]]` (audit, admin, state_dir).
    process_flawed: bool,
}

/// A config of which some scalers are good: what a reload applies.
#[derive(Debug)]
pub struct PartialConfig {
    /// The config with only its good scalers.
    pub config: Config,
    /// The scalers refused, by name.
    pub rejected: Vec<String>,
    /// Their problems, if any were found.
    pub errors: Option<ConfigErrors>,
}

impl Checked {
    /// Text that did not parse (or could not be read): only its errors.
    fn failed(file: &str, src: &str, base: &Path, errors: Vec<ConfigError>) -> Self {
        Checked {
            file: file.to_owned(),
            src: src.to_owned(),
            base: base.to_path_buf(),
            config: None,
            errors,
            flawed: Vec::new(),
            pending: Vec::new(),
            process_flawed: true,
        }
    }

    /// The config, when the text parsed (it may still have problems).
    pub fn config(&self) -> Option<&Config> {
        self.config.as_ref()
    }

    /// The directory relative paths are resolved from.
    pub fn base(&self) -> &Path {
        &self.base
    }

    /// Whether the `index`-th scaler has a problem already.
    pub fn is_flawed(&self, index: usize) -> bool {
        self.flawed.get(index).copied().unwrap_or(true)
    }

    /// Report a problem at `path` inside the `index`-th `[[scaler]]` (or the
    /// nearest enclosing key found).
    pub fn report(&mut self, index: usize, path: &[&str], message: &str, hint: Option<String>) {
        let doc = Doc::new(&self.src);
        let span = DeTable::parse(&self.src)
            .ok()
            .and_then(|t| doc.locate(t.get_ref(), index, path));
        let error = doc.error(span, message, hint);
        self.errors.push(error);
        if let Some(f) = self.flawed.get_mut(index) {
            *f = true;
        }
    }

    /// The `index`-th scaler's policy reads metric `name` (its 0.2 manifest
    /// says so): it is not an unused metric after all.
    pub fn read_by_policy(&mut self, index: usize, name: &str) {
        self.pending.retain(|(i, n, _)| !(*i == index && n == name));
    }

    /// The good scalers, apart from the bad: a reload applies one bad entry
    /// as that scaler refused, not the whole file. The whole file is refused
    /// only when it does not parse or its process settings are wrong.
    pub fn into_partial(mut self) -> Result<PartialConfig, ConfigErrors> {
        for (i, _, _) in &self.pending {
            if let Some(f) = self.flawed.get_mut(*i) {
                *f = true;
            }
        }
        let (Some(mut config), false) = (self.config.take(), self.process_flawed) else {
            return Err(self.into_result().err().unwrap_or_else(|| ConfigErrors {
                file: String::new(),
                errors: Vec::new(),
            }));
        };
        let flawed = std::mem::take(&mut self.flawed);
        let mut rejected = Vec::new();
        let mut i = 0;
        config.scalers.retain(|s| {
            let bad = flawed.get(i).copied().unwrap_or(true);
            i += 1;
            if bad {
                rejected.push(s.name.clone());
            }
            !bad
        });
        self.errors.extend(
            std::mem::take(&mut self.pending)
                .into_iter()
                .map(|(_, _, e)| e),
        );
        self.errors.sort_by_key(|e| (e.line, e.column));
        let errors = (!self.errors.is_empty()).then(|| ConfigErrors {
            file: self.file.clone(),
            errors: std::mem::take(&mut self.errors),
        });
        Ok(PartialConfig {
            config,
            rejected,
            errors,
        })
    }

    /// The config, or every problem in the order of the file (the probe's
    /// findings among the config's own, as a reader meets them).
    pub fn into_result(mut self) -> Result<Config, ConfigErrors> {
        self.errors.extend(
            std::mem::take(&mut self.pending)
                .into_iter()
                .map(|(_, _, e)| e),
        );
        match self.config {
            Some(config) if self.errors.is_empty() => Ok(config),
            _ => {
                self.errors.sort_by_key(|e| (e.line, e.column));
                Err(ConfigErrors {
                    file: self.file,
                    errors: self.errors,
                })
            }
        }
    }
}

/// Check one `[[scaler]]` entry given as JSON (an admin API body, or one
/// the registry stored): the same checks as an entry of the config file,
/// run on the entry written as TOML. Problems are placed in that TOML.
pub fn check_entry(origin: &str, entry: &serde_json::Value, base: &Path) -> Checked {
    let fail = |message: String, hint: Option<String>| {
        Checked::failed(
            origin,
            "",
            base,
            vec![ConfigError {
                line: 1,
                column: 1,
                message,
                hint,
            }],
        )
    };
    let table: toml::Table = match serde_json::from_value(entry.clone()) {
        Ok(t) => t,
        Err(e) => {
            return fail(
                format!("a scaler entry must be a JSON object without nulls: {e}"),
                Some("send the keys of one [[scaler]] table, e.g. {\"name\": \"chat\", \"policy\": \"builtin:queue-depth\", \"min_replicas\": 1, \"max_replicas\": 8}".into()),
            );
        }
    };
    let mut doc = toml::Table::new();
    doc.insert(
        "scaler".into(),
        toml::Value::Array(vec![toml::Value::Table(table)]),
    );
    match toml::to_string(&doc) {
        Ok(src) => check(origin, &src, base),
        Err(e) => fail(format!("this entry cannot be written as TOML: {e}"), None),
    }
}

/// Check config text, finding every problem at once.
pub fn check(file: &str, src: &str, base: &Path) -> Checked {
    let doc = Doc::new(src);
    let fail = |errors: Vec<ConfigError>| Checked::failed(file, src, base, errors);
    let tree = match DeTable::parse(src) {
        Ok(t) => t,
        Err(e) => {
            return fail(vec![doc.error(e.span(), first_line(e.message()), None)]);
        }
    };
    let mut errors = Vec::new();
    check_unknown_keys(&doc, tree.get_ref(), &mut errors);
    if !errors.is_empty() {
        return fail(errors);
    }
    let config: Config = match toml::from_str(src) {
        Ok(c) => c,
        Err(e) => {
            return fail(vec![doc.error(e.span(), first_line(e.message()), None)]);
        }
    };
    check_process_settings(&config, base, &mut |path, message, hint| {
        errors.push(doc.error(doc.locate_top(tree.get_ref(), path), &message, hint));
    });
    let process_flawed = !errors.is_empty();
    let mut names = std::collections::HashSet::new();
    let mut flawed = vec![false; config.scalers.len()];
    let mut pending = Vec::new();
    for (i, s) in config.scalers.iter().enumerate() {
        let at = |path: &[&str]| doc.locate(tree.get_ref(), i, path);
        let count = std::cell::Cell::new(0usize);
        let mut push = |span: Option<Range<usize>>, message: String, hint: Option<String>| {
            count.set(count.get() + 1);
            errors.push(doc.error(span, &message, hint));
        };
        if s.name.trim().is_empty() {
            push(
                at(&["name"]),
                "scaler name is empty".into(),
                Some("give every scaler a unique name".into()),
            );
        } else if !names.insert(s.name.clone()) {
            push(
                at(&["name"]),
                format!("scaler name `{}` is used twice", s.name),
                Some(
                    "names identify scalers in the audit log and /metrics; make them unique".into(),
                ),
            );
        }
        if s.min_replicas > s.max_replicas {
            push(
                at(&["min_replicas"]),
                format!(
                    "min_replicas ({}) is greater than max_replicas ({})",
                    s.min_replicas, s.max_replicas
                ),
                Some("swap them, or raise max_replicas".into()),
            );
        }
        if s.max_replicas == 0 {
            push(
                at(&["max_replicas"]),
                "max_replicas is 0: this scaler could never run anything".into(),
                None,
            );
        }
        check_durations(s, &mut push, &at);
        for (name, b) in &s.pools {
            if let Some(max) = b.max
                && b.min > max
            {
                push(
                    at(&["pools"]),
                    format!("pool `{name}`: min ({}) is greater than max ({max})", b.min),
                    Some("swap them, or raise max".into()),
                );
            }
        }
        for key in &s.require_signed_by {
            if let Err(e) = crate::registry::signatures::check_public_key(key) {
                push(
                    at(&["require_signed_by"]),
                    format!("require_signed_by: {e}"),
                    Some(
                        "use the hex public key `wasmscale policy keygen` wrote to KEY.pub".into(),
                    ),
                );
            }
        }
        let from_registry = s.policy.starts_with("registry:") || s.policy.starts_with("sha256:");
        if !s.require_signed_by.is_empty() && !from_registry {
            push(
                at(&["require_signed_by"]),
                "require_signed_by needs a registry policy (registry:NAME or sha256:HEX): only the registry keeps signatures".into(),
                None,
            );
        }
        let r = &s.rollout;
        if r.probation_ticks > MAX_PROBATION_TICKS || r.max_failures > r.probation_ticks {
            push(
                at(&["rollout"]),
                format!(
                    "probation_ticks ({}) must be at most {MAX_PROBATION_TICKS}, and max_failures ({}) at most probation_ticks",
                    r.probation_ticks, r.max_failures
                ),
                Some("for example probation_ticks = 10, max_failures = 3".into()),
            );
        }
        if let (Some(lo), Some(hi)) = (r.band_min, r.band_max)
            && lo > hi
        {
            push(
                at(&["rollout"]),
                format!("band_min ({lo}) is greater than band_max ({hi})"),
                Some("swap them".into()),
            );
        }
        let pool_floor: u64 = s.pools.values().map(|b| u64::from(b.min)).sum();
        if pool_floor > u64::from(s.max_replicas) {
            push(
                at(&["pools"]),
                format!(
                    "the pools' minimums sum to {pool_floor}, above max_replicas ({})",
                    s.max_replicas
                ),
                Some("no split could hold both; lower a pool's min or raise max_replicas".into()),
            );
        }
        if let Some(r) = s.fallback.replicas
            && (r < s.min_replicas || r > s.max_replicas)
        {
            push(
                at(&["fallback", "replicas"]),
                format!(
                    "fallback replicas {r} is outside [{}, {}]",
                    s.min_replicas, s.max_replicas
                ),
                None,
            );
        }
        if let Some(c) = s.guard.cost_ceiling {
            if let Some(p) = c.price_per_replica_hour
                && !(p.is_finite() && p > 0.0)
            {
                push(
                    at(&["guard", "cost_ceiling", "price_per_replica_hour"]),
                    format!("cost_ceiling.price_per_replica_hour must be a price > 0 (got {p})"),
                    Some("e.g. 2.5 (per replica-hour); leave it out to use the snapshot's on-demand price".into()),
                );
            }
            if !(c.budget_per_hour.is_finite() && c.budget_per_hour > 0.0) {
                push(
                    at(&["guard", "cost_ceiling"]),
                    "cost_ceiling.budget_per_hour must be > 0".into(),
                    None,
                );
            } else if let Some(p) = c.price_per_replica_hour
                && p > 0.0
                && (c.budget_per_hour / p).floor() < f64::from(s.min_replicas)
            {
                push(
                    at(&["guard", "cost_ceiling"]),
                    format!(
                        "the budget of {}/h affords {} replicas at {p}/h, fewer than min_replicas ({})",
                        c.budget_per_hour,
                        (c.budget_per_hour / p).floor(),
                        s.min_replicas
                    ),
                    Some(
                        "raise the budget or lower min_replicas (min_replicas wins at run time)"
                            .into(),
                    ),
                );
            }
        }
        check_fraction_params(&s.params, &mut Vec::new(), &mut |path, value, key| {
            let mut full = vec!["params"];
            full.extend(path.iter().map(String::as_str));
            push(
                at(&full),
                format!(
                    "{key} = {value} looks like a percent, but utilization here is a fraction of 1"
                ),
                Some(format!("did you mean {}?", value / 100.0)),
            );
        });
        // What only the target's kind knows to check.
        for (path, message, hint) in s.target.problems(base) {
            let full = [&["target"][..], path].concat();
            push(at(&full), message, hint);
        }
        let mut unread = Vec::new();
        check_metrics(s, base, &mut push, &at, &mut unread);
        // A metric no one may read does not stop a trial evaluation: it is
        // an error only if no policy's manifest reads it either.
        for (name, span, message, hint) in unread {
            pending.push((i, name, doc.error(span, &message, hint)));
        }
        flawed[i] = count.get() > 0;
    }
    Checked {
        file: file.to_owned(),
        src: src.to_owned(),
        base: base.to_path_buf(),
        config: Some(config),
        errors,
        flawed,
        pending,
        process_flawed,
    }
}

/// The settings of the process as a whole: the admin address, the audit log
/// and the state directory. Each is checked the way `run` will use it, so a
/// config that validates does not then fail to start.
fn check_process_settings(config: &Config, base: &Path, push: &mut PushAt<'_>) {
    if let Err((message, hint)) = check_listen(&config.admin) {
        push(&["admin", "listen"], message, Some(hint));
    }
    if let Err((message, hint)) = check_audit_path(&config.audit.path, base) {
        push(&["audit", "path"], message, Some(hint));
    }
    if config.admin.auth == AdminAuth::Tokens && config.state_dir.is_none() {
        push(
            &["admin", "auth"],
            "auth = \"tokens\" needs a state_dir: tenants and token hashes are kept there".into(),
            Some("set state_dir = \"state\" (or another directory)".into()),
        );
    }
    if let Some(dir) = &config.state_dir
        && let Err((message, hint)) = check_state_dir(dir, base)
    {
        push(&["state_dir"], message, Some(hint));
    }
    for (name, tier) in &config.tiers {
        if let Some(problem) = tier.quotas.problem() {
            push(&["tiers", name, "quotas"], problem, None);
        }
        let known: Vec<&str> = crate::host::builtin_names().collect();
        for b in tier.builtins.iter().flatten() {
            if !known.contains(&b.as_str()) {
                push(
                    &["tiers", name, "builtins"],
                    format!("tier {name} offers `{b}`, which is no built-in policy"),
                    Some(format!("the built-ins: {}", known.join(", "))),
                );
            }
        }
        for url in &tier.prometheus_urls {
            if !(url.starts_with("http://") || url.starts_with("https://")) {
                push(
                    &["tiers", name, "prometheus_urls"],
                    format!(
                        "tier {name} offers Prometheus at {:?}, which is no http(s) URL",
                        clip(url, 120)
                    ),
                    Some("e.g. prometheus_urls = [\"http://prometheus.monitoring:9090\"]".into()),
                );
            }
        }
        for namespace in &tier.namespaces {
            if namespace.trim().is_empty() {
                push(
                    &["tiers", name, "namespaces"],
                    format!("tier {name} offers an empty namespace"),
                    Some("e.g. namespaces = [\"{tenant}\", \"shared\"]; {tenant} is the tenant's name".into()),
                );
            }
        }
    }
}

type Problem = (String, String);

fn check_listen(admin: &AdminSettings) -> Result<(), Problem> {
    let listen = admin.listen.trim();
    if listen.is_empty() {
        return Ok(());
    }
    let hint = || "IP:PORT, e.g. 127.0.0.1:9464, or \"\" to disable the admin server".to_owned();
    let (host, port) = listen.rsplit_once(':').ok_or_else(|| {
        (
            format!("admin.listen = {:?} has no port", clip(listen, 120)),
            hint(),
        )
    })?;
    match port.parse::<u64>() {
        Ok(p) if p <= 65_535 => {}
        Ok(p) => {
            return Err((
                format!("admin.listen: port {p} is out of range (0-65535)"),
                hint(),
            ));
        }
        Err(_) => {
            return Err((
                format!(
                    "admin.listen = {:?}: the port is not a number",
                    clip(listen, 120)
                ),
                hint(),
            ));
        }
    }
    let ip: std::net::IpAddr = if host == "localhost" {
        std::net::Ipv4Addr::LOCALHOST.into()
    } else {
        host.trim_start_matches('[')
            .trim_end_matches(']')
            .parse()
            .map_err(|_| {
                (
                    format!(
                        "admin.listen = {:?} is not an IP address and port",
                        clip(listen, 120)
                    ),
                    hint(),
                )
            })?
    };
    if !ip.is_loopback() && !admin.allow_remote {
        return Err((
            format!(
                "admin.listen = {listen:?} serves the admin endpoint beyond this machine, and it can pause every scaler"
            ),
            "use 127.0.0.1, or set admin.allow_remote = true if that is what you want".into(),
        ));
    }
    Ok(())
}

/// Kernel pseudo-filesystems: no audit log or state belongs there.
fn in_pseudo_fs(path: &Path) -> bool {
    ["/proc", "/sys", "/dev"]
        .iter()
        .any(|p| path.starts_with(p))
}

/// The path itself if it exists, else its nearest existing ancestor, resolved.
fn nearest_existing(path: &Path) -> Option<(PathBuf, bool)> {
    let mut p = Some(path);
    while let Some(candidate) = p {
        if let Ok(real) = candidate.canonicalize() {
            return Some((real, candidate == path));
        }
        p = candidate.parent().filter(|d| !d.as_os_str().is_empty());
    }
    Path::new(".").canonicalize().ok().map(|d| (d, false))
}

/// Where a configured path lands: the path itself if it exists, else its
/// nearest existing ancestor, refused when empty or in a pseudo-filesystem.
struct Landing {
    real: PathBuf,
    exists: bool,
    meta: std::fs::Metadata,
}

fn land(key: &str, path: &Path, base: &Path, hint: &str) -> Result<Option<Landing>, Problem> {
    let problem = |message: String| (message, hint.to_owned());
    if path.as_os_str().is_empty() {
        return Err(problem(format!("{key} is empty")));
    }
    let Some((real, exists)) = nearest_existing(&base.join(path)) else {
        return Ok(None);
    };
    if in_pseudo_fs(&real) {
        return Err(problem(format!(
            "{key} {} is in a kernel pseudo-filesystem ({})",
            path.display(),
            real.display()
        )));
    }
    let meta =
        std::fs::metadata(&real).map_err(|e| problem(format!("{key} {}: {e}", path.display())))?;
    Ok(Some(Landing { real, exists, meta }))
}

fn check_audit_path(path: &Path, base: &Path) -> Result<(), Problem> {
    const HINT: &str =
        "a file path, e.g. path = \"wasmscale-audit.jsonl\" (relative to the config)";
    let problem = |message: String| (message, HINT.to_owned());
    let Some(Landing { real, exists, meta }) = land("audit.path", path, base, HINT)? else {
        return Ok(());
    };
    if !exists {
        if !meta.is_dir() {
            return Err(problem(format!(
                "audit.path {}: {} is not a directory",
                path.display(),
                real.display()
            )));
        }
        return Ok(());
    }
    if !meta.is_file() {
        return Err(problem(format!(
            "audit.path {} is {}, not a file",
            path.display(),
            crate::host::file_kind(&meta)
        )));
    }
    // Opening for append changes nothing and proves the right to write.
    std::fs::OpenOptions::new()
        .append(true)
        .open(&real)
        .map_err(|e| {
            problem(format!(
                "audit.path {} cannot be written: {e}",
                path.display()
            ))
        })?;
    Ok(())
}

fn check_state_dir(dir: &Path, base: &Path) -> Result<(), Problem> {
    const HINT: &str =
        "a directory this process can write, e.g. state_dir = \"state\" (relative to the config)";
    let problem = |message: String| (message, HINT.to_owned());
    let Some(Landing { real, exists, meta }) = land("state_dir", dir, base, HINT)? else {
        return Ok(());
    };
    if !meta.is_dir() {
        let shown = if exists { dir.to_path_buf() } else { real };
        return Err(problem(format!(
            "state_dir {} is {}, not a directory",
            shown.display(),
            crate::host::file_kind(&meta)
        )));
    }
    if exists {
        // Prove the right to write: create and remove a probe file.
        let probe = real.join(format!(".wasmscale-probe-{}", std::process::id()));
        std::fs::write(&probe, b"")
            .and_then(|()| std::fs::remove_file(&probe))
            .map_err(|e| {
                problem(format!(
                    "state_dir {} cannot be written: {e}",
                    dir.display()
                ))
            })?;
    }
    Ok(())
}

/// Bounds of every duration in a scaler, so nothing downstream turns an
/// absurd one into a panic or an overflow (`1e20` seconds is no Duration).
/// The HPA's own limits where it has them.
pub const MAX_INTERVAL_SECONDS: f64 = 86_400.0;
pub const MIN_INTERVAL_SECONDS: f64 = 0.001;
/// Source and target request timeouts, milliseconds.
pub const MAX_TIMEOUT_MS: u64 = 600_000;
/// Cooldowns, the flap breaker's window and freeze, and the legacy
/// down-stabilization: a week.
pub const MAX_GUARD_SECONDS: u64 = 7 * 86_400;
/// HPA `behavior`: stabilization windows up to an hour, periods 1..=1800 s.
pub const MAX_STABILIZATION_SECONDS: u32 = 3_600;
pub const MAX_PERIOD_SECONDS: u32 = 1_800;
/// A policy call's wall-clock deadline, milliseconds.
pub const MAX_DEADLINE_MS: u128 = 10_000;

fn check_durations(
    s: &ScalerConfig,
    push: &mut Push<'_>,
    at: &dyn Fn(&[&str]) -> Option<Range<usize>>,
) {
    if !(s.interval_seconds.is_finite()
        && (MIN_INTERVAL_SECONDS..=MAX_INTERVAL_SECONDS).contains(&s.interval_seconds))
    {
        push(
            at(&["interval_seconds"]),
            format!(
                "tick interval must be between {MIN_INTERVAL_SECONDS} and {MAX_INTERVAL_SECONDS} seconds (got {})",
                s.interval_seconds
            ),
            Some("e.g. interval_seconds = 15".into()),
        );
    }
    let timeout = |push: &mut Push<'_>, path: &[&str], ms: u64| {
        if ms == 0 || ms > MAX_TIMEOUT_MS {
            push(
                at(path),
                format!(
                    "{} must be between 1 and {MAX_TIMEOUT_MS} ms (got {ms})",
                    path.join(".")
                ),
                Some("e.g. timeout_ms = 2000".into()),
            );
        }
    };
    if let Some(ms) = s.source.timeout_ms() {
        timeout(push, &["source", "timeout_ms"], ms);
    }
    if let Some(ms) = s.target.timeout_ms() {
        timeout(push, &["target", "timeout_ms"], ms);
    }
    let bounded = |push: &mut Push<'_>, path: &[&str], value: u64, max: u64, min: u64| {
        if value < min || value > max {
            push(
                at(path),
                format!(
                    "{} must be between {min} and {max} seconds (got {value})",
                    path.join(".")
                ),
                None,
            );
        }
    };
    let g = &s.guard;
    bounded(
        push,
        &["guard", "scale_up_cooldown_seconds"],
        g.scale_up_cooldown_seconds,
        MAX_GUARD_SECONDS,
        0,
    );
    bounded(
        push,
        &["guard", "scale_down_cooldown_seconds"],
        g.scale_down_cooldown_seconds,
        MAX_GUARD_SECONDS,
        0,
    );
    if let Some(f) = &g.flap_breaker {
        bounded(
            push,
            &["guard", "flap_breaker", "window_seconds"],
            f.window_seconds,
            MAX_GUARD_SECONDS,
            1,
        );
        bounded(
            push,
            &["guard", "flap_breaker", "freeze_seconds"],
            f.freeze_seconds,
            MAX_GUARD_SECONDS,
            1,
        );
    }
    match &g.rate {
        crate::guard::Rate::None => {}
        crate::guard::Rate::Legacy {
            downscale_stabilization_seconds,
        } => bounded(
            push,
            &["guard", "rate", "legacy", "downscale_stabilization_seconds"],
            u64::from(*downscale_stabilization_seconds),
            MAX_GUARD_SECONDS,
            0,
        ),
        crate::guard::Rate::Behavior(b) => {
            for (side, rules) in [("scale_up", &b.scale_up), ("scale_down", &b.scale_down)] {
                let base = ["guard", "rate", "behavior", side];
                let path = [&base[..], &["stabilization_window_seconds"]].concat();
                bounded(
                    push,
                    &path,
                    u64::from(rules.stabilization_window_seconds),
                    u64::from(MAX_STABILIZATION_SECONDS),
                    0,
                );
                for (i, p) in rules.policies.iter().enumerate() {
                    let index = i.to_string();
                    let path = [&base[..], &["policies", &index, "period_seconds"]].concat();
                    bounded(
                        push,
                        &path,
                        u64::from(p.period_seconds),
                        u64::from(MAX_PERIOD_SECONDS),
                        1,
                    );
                }
            }
        }
    }
    if let Some(l) = &s.limits
        && (l.deadline.is_zero() || l.deadline.as_millis() > MAX_DEADLINE_MS)
    {
        push(
            at(&["limits", "deadline"]),
            format!(
                "limits.deadline must be between 1 and {MAX_DEADLINE_MS} ms (got {} ms)",
                l.deadline.as_millis()
            ),
            Some("a scaling policy should decide in microseconds; the default is 10".into()),
        );
    }
}

fn first_line(s: &str) -> &str {
    s.lines().next().unwrap_or(s).trim()
}

/// Every `*utilization*` number in params above 1 (but a plausible percent)
/// is a fraction written as a percent. HPA's `average_utilization` is a
/// percent by definition and is exempt.
fn check_fraction_params(
    table: &toml::Table,
    path: &mut Vec<String>,
    report: &mut dyn FnMut(&[String], f64, &str),
) {
    let utilization_metric = table
        .get("name")
        .and_then(|n| n.as_str())
        .is_some_and(|n| n.contains("utilization"));
    for (key, value) in table {
        path.push(key.clone());
        match value {
            toml::Value::Table(t) => {
                // `target = { value = 60 }` on a utilization metric.
                if utilization_metric && key == "target" {
                    for (k, v) in t {
                        if let Some(x) = number(v)
                            && (k == "value" || k == "average_value")
                            && x > 1.0
                            && x <= 100.0
                        {
                            path.push(k.clone());
                            report(
                                path,
                                x,
                                &format!(
                                    "target {k} of `{}`",
                                    table.get("name").and_then(|n| n.as_str()).unwrap_or("")
                                ),
                            );
                            path.pop();
                        }
                    }
                }
                check_fraction_params(t, path, report);
            }
            toml::Value::Array(items) => {
                for (i, item) in items.iter().enumerate() {
                    if let toml::Value::Table(t) = item {
                        path.push(i.to_string());
                        check_fraction_params(t, path, report);
                        path.pop();
                    }
                }
            }
            v => {
                if let Some(x) = number(v)
                    && key.contains("utilization")
                    && key != "average_utilization"
                    && x > 1.0
                    && x <= 100.0
                {
                    report(path, x, key);
                }
            }
        }
        path.pop();
    }
}

fn number(v: &toml::Value) -> Option<f64> {
    match v {
        toml::Value::Float(f) => Some(*f),
        toml::Value::Integer(i) => Some(*i as f64),
        _ => None,
    }
}

/// The snapshot signals and custom metrics a policy's params refer to: every
/// string value that names a signal, and the names of object/external metrics.
pub fn referenced_metrics(params: &toml::Table) -> Vec<String> {
    fn walk(v: &toml::Value, out: &mut Vec<String>) {
        match v {
            toml::Value::String(s) if crate::snapshot::is_signal(s) => out.push(s.clone()),
            toml::Value::Table(t) => {
                let kind = t.get("type").and_then(|k| k.as_str());
                if matches!(kind, Some("object" | "external"))
                    && let Some(name) = t.get("name").and_then(|n| n.as_str())
                {
                    out.push(name.to_owned());
                }
                t.values().for_each(|v| walk(v, out));
            }
            toml::Value::Array(a) => a.iter().for_each(|v| walk(v, out)),
            _ => {}
        }
    }
    let mut out = Vec::new();
    params.values().for_each(|v| walk(v, &mut out));
    out.sort();
    out.dedup();
    out
}

/// Per-replica metrics (HPA `resource` / `pods`) named in params.
fn per_replica_metrics(params: &toml::Table) -> Vec<String> {
    params
        .get("metrics")
        .and_then(|m| m.as_array())
        .into_iter()
        .flatten()
        .filter_map(|m| m.as_table())
        .filter(|m| {
            matches!(
                m.get("type").and_then(|t| t.as_str()),
                Some("resource" | "pods")
            )
        })
        .filter_map(|m| m.get("name").and_then(|n| n.as_str()).map(str::to_owned))
        .collect()
}

type Push<'a> = dyn FnMut(Option<Range<usize>>, String, Option<String>) + 'a;
/// As [`Push`], with the key's path instead of its span.
type PushAt<'a> = dyn FnMut(&[&str], String, Option<String>) + 'a;

/// A metric that the params do not name: a problem unless the policy's
/// manifest (0.2) reads it, which only the policy probe can tell.
type Unread = (String, Option<Range<usize>>, String, Option<String>);

fn check_metrics(
    s: &ScalerConfig,
    base: &Path,
    push: &mut Push<'_>,
    at: &dyn Fn(&[&str]) -> Option<Range<usize>>,
    unread: &mut Vec<Unread>,
) {
    let needed = referenced_metrics(&s.params);
    let provided = match s.source.provided(&s.metrics, base) {
        Ok(names) => names,
        Err(e) => {
            push(at(&["source"]), format!("replay trace: {e}"), None);
            return;
        }
    };
    for name in &needed {
        if !provided.contains(name) {
            push(
                at(&["params"]),
                format!("params need `{name}`, but nothing fills it"),
                Some(s.source.fill_hint(name)),
            );
        }
    }
    for name in per_replica_metrics(&s.params) {
        push(
            at(&["params"]),
            format!(
                "metric `{name}` needs per-replica samples, which the configured source cannot provide"
            ),
            Some("use an object or external metric (one value per tick) instead".into()),
        );
    }
    for (name, q) in &s.metrics {
        let span = at(&["metrics", name]);
        if let (SourceConfig::Static, MetricQuery::Value(v)) = (&s.source, q) {
            if !v.is_finite() {
                push(
                    span.clone(),
                    format!("metrics.{name} = {v} is not a number a policy can use"),
                    Some(
                        "give a finite value, or leave the metric out (absent means unknown)"
                            .into(),
                    ),
                );
            } else if name.contains("utilization") && *v > 1.0 && *v <= 100.0 {
                push(
                    span.clone(),
                    format!(
                        "metrics.{name} = {v} looks like a percent, but utilization here is a fraction of 1"
                    ),
                    Some(format!("did you mean {}?", v / 100.0)),
                );
            } else if name.contains("utilization") && *v < 0.0 {
                push(
                    span.clone(),
                    format!("metrics.{name} = {v}: utilization cannot be negative"),
                    None,
                );
            }
        }
        match (&s.source, q) {
            (SourceConfig::Static, MetricQuery::Query(_)) => push(
                span.clone(),
                format!("metrics.{name}: a static source takes numbers, not queries"),
                None,
            ),
            (SourceConfig::Prometheus(_), MetricQuery::Value(_)) => push(
                span.clone(),
                format!(
                    "metrics.{name}: a prometheus source takes PromQL queries (strings), not numbers"
                ),
                None,
            ),
            _ => {}
        }
        if !needed.contains(name) && !crate::snapshot::is_signal(name) {
            let suggestion = crate::snapshot::signal_names()
                .iter()
                .chain(needed.iter())
                .map(|k| (strsim(name, k), k))
                .filter(|(d, _)| *d <= 3)
                .min()
                .map(|(_, k)| format!("did you mean `{k}`?"));
            unread.push((
                name.clone(),
                span,
                format!(
                    "metrics.{name} is neither a snapshot signal nor used by the policy's params"
                ),
                suggestion,
            ));
        }
    }
}

/// Unknown keys at every level we own, each with the nearest valid name.
fn check_unknown_keys(doc: &Doc<'_>, root: &DeTable<'_>, errors: &mut Vec<ConfigError>) {
    doc.unknown_keys(root, fields_of::<Config>(), "", errors);
    for (key, value) in root.iter() {
        let nested: &[(&str, &'static [&'static str])] = match key.get_ref().as_ref() {
            "audit" => &[("", fields_of::<AuditSettings>())],
            "admin" => &[("", fields_of::<AdminSettings>())],
            _ => &[],
        };
        if let DeValue::Table(t) = value.get_ref() {
            for (_, fields) in nested {
                doc.unknown_keys(t, fields, key.get_ref(), errors);
            }
        }
    }
    if let Some(tiers) = root.get("tiers")
        && let DeValue::Table(tiers) = tiers.get_ref()
    {
        for (name, tier) in tiers.iter() {
            let DeValue::Table(tier) = tier.get_ref() else {
                continue;
            };
            let section = format!("tiers.{}", name.get_ref());
            doc.unknown_keys(tier, fields_of::<crate::tenants::Tier>(), &section, errors);
            if let Some(q) = tier.get("quotas")
                && let DeValue::Table(q) = q.get_ref()
            {
                let section = format!("{section}.quotas");
                doc.unknown_keys(q, fields_of::<crate::tenants::Quotas>(), &section, errors);
            }
        }
    }
    let Some(scalers) = root.get("scaler") else {
        return;
    };
    let DeValue::Array(items) = scalers.get_ref() else {
        return;
    };
    for item in items.iter() {
        let DeValue::Table(t) = item.get_ref() else {
            continue;
        };
        doc.unknown_keys(t, fields_of::<ScalerConfig>(), "scaler", errors);
        for (section, fields) in [
            ("guard", fields_of::<GuardRules>()),
            ("fallback", fields_of::<FallbackConfig>()),
            ("limits", fields_of::<Limits>()),
        ] {
            if let Some(v) = t.get(section)
                && let DeValue::Table(sub) = v.get_ref()
            {
                doc.unknown_keys(sub, fields, section, errors);
            }
        }
    }
}

/// The field names serde expects for `T` (one source of truth: the struct).
fn fields_of<T: DeserializeOwned>() -> &'static [&'static str] {
    struct Grab<'a>(&'a mut &'static [&'static str]);
    impl<'de> serde::Deserializer<'de> for Grab<'_> {
        type Error = serde::de::value::Error;
        fn deserialize_any<V: serde::de::Visitor<'de>>(
            self,
            _: V,
        ) -> Result<V::Value, Self::Error> {
            Err(serde::de::Error::custom("not a struct"))
        }
        fn deserialize_struct<V: serde::de::Visitor<'de>>(
            self,
            _: &'static str,
            fields: &'static [&'static str],
            _: V,
        ) -> Result<V::Value, Self::Error> {
            *self.0 = fields;
            Err(serde::de::Error::custom("fields taken"))
        }
        serde::forward_to_deserialize_any! {
            bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf
            option unit unit_struct newtype_struct seq tuple tuple_struct map enum identifier ignored_any
        }
    }
    let mut fields: &'static [&'static str] = &[];
    let _ = T::deserialize(Grab(&mut fields));
    fields
}

/// The source text, for turning byte offsets into lines and columns.
struct Doc<'a> {
    src: &'a str,
}

impl<'a> Doc<'a> {
    fn new(src: &'a str) -> Self {
        Doc { src }
    }

    fn line_col(&self, offset: usize) -> (usize, usize) {
        let offset = offset.min(self.src.len());
        let before = &self.src[..offset];
        let line = before.matches('\n').count() + 1;
        let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
        (line, column)
    }

    fn error(
        &self,
        span: Option<Range<usize>>,
        message: &str,
        hint: Option<String>,
    ) -> ConfigError {
        let (line, column) = span.map_or((1, 1), |s| self.line_col(s.start));
        ConfigError {
            line,
            column,
            message: clip_message(message.to_owned()),
            hint: hint.map(clip_message),
        }
    }

    fn unknown_keys(
        &self,
        table: &DeTable<'_>,
        known: &[&str],
        section: &str,
        errors: &mut Vec<ConfigError>,
    ) {
        for (key, _) in table.iter() {
            let name = key.get_ref().as_ref();
            if known.contains(&name) {
                continue;
            }
            let nearest = known.iter().map(|k| (strsim(name, k), *k)).min();
            let hint = match nearest {
                Some((d, k)) if d <= 3 => Some(format!("did you mean `{k}`?")),
                _ => Some(format!("valid keys here: {}", known.join(", "))),
            };
            let place = if section.is_empty() {
                String::from("at the top level")
            } else {
                format!("in [{section}]")
            };
            errors.push(self.error(
                Some(key.span()),
                &format!("unknown key `{name}` {place}"),
                hint,
            ));
        }
    }

    /// The span of `path` inside the `index`-th `[[scaler]]` (a key's span, or
    /// the nearest enclosing one found). Array indices are given as numbers.
    fn locate(&self, root: &DeTable<'_>, index: usize, path: &[&str]) -> Option<Range<usize>> {
        let scalers = root.get("scaler")?;
        let DeValue::Array(items) = scalers.get_ref() else {
            return None;
        };
        let scaler = items.get(index)?;
        Self::walk(scaler.span(), scaler.get_ref(), path)
    }

    /// The span of a top-level key's `path` (e.g. `admin.listen`).
    fn locate_top(&self, root: &DeTable<'_>, path: &[&str]) -> Option<Range<usize>> {
        let (first, rest) = path.split_first()?;
        let (key, value) = root.iter().find(|(k, _)| k.get_ref().as_ref() == *first)?;
        Self::walk(key.span(), value.get_ref(), rest)
    }

    /// The deepest span found along `path` from `start`.
    fn walk(start: Range<usize>, value: &DeValue<'_>, path: &[&str]) -> Option<Range<usize>> {
        let mut best = Some(start);
        let mut current = value;
        for part in path {
            let next = match current {
                DeValue::Table(t) => t
                    .iter()
                    .find(|(k, _)| k.get_ref().as_ref() == *part)
                    .map(|(k, v)| (k.span(), v)),
                DeValue::Array(a) => part
                    .parse::<usize>()
                    .ok()
                    .and_then(|i| a.get(i))
                    .map(|v| (v.span(), v)),
                _ => None,
            };
            let Some((span, value)) = next else { break };
            best = Some(span);
            current = value.get_ref();
        }
        best
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn listen(address: &str, allow_remote: bool) -> Result<(), Problem> {
        check_listen(&AdminSettings {
            listen: address.into(),
            allow_remote,
            ..AdminSettings::default()
        })
    }

    #[test]
    fn admin_addresses() {
        for ok in ["", "127.0.0.1:9464", "localhost:0", "[::1]:80"] {
            assert!(listen(ok, false).is_ok(), "{ok}");
        }
        for (bad, says) in [
            ("9464", "has no port"),
            ("127.0.0.1:99999", "out of range"),
            ("127.0.0.1:http", "not a number"),
            ("example.com:80", "not an IP address"),
            ("0.0.0.0:9464", "beyond this machine"),
        ] {
            let (message, hint) = listen(bad, false).unwrap_err();
            assert!(message.contains(says), "{bad}: {message}");
            assert!(!hint.is_empty());
        }
        assert!(listen("0.0.0.0:9464", true).is_ok(), "asked for");
    }

    #[test]
    fn paths_land_where_run_would_write() {
        let dir = tempfile::tempdir().unwrap();
        let base = dir.path();
        assert!(
            check_audit_path(Path::new("logs/audit.jsonl"), base).is_ok(),
            "created at run"
        );
        assert!(
            check_state_dir(Path::new("state/deep"), base).is_ok(),
            "created at run"
        );
        std::fs::write(base.join("f"), "").unwrap();
        assert!(
            check_audit_path(Path::new("f"), base).is_ok(),
            "an existing file"
        );
        assert!(
            check_state_dir(Path::new("f"), base)
                .unwrap_err()
                .0
                .contains("not a directory")
        );
        assert!(
            check_audit_path(Path::new("f/x"), base)
                .unwrap_err()
                .0
                .contains("not a directory")
        );
        assert!(
            check_audit_path(Path::new("/dev/full"), base)
                .unwrap_err()
                .0
                .contains("pseudo-filesystem")
        );
        assert!(
            check_state_dir(Path::new("/proc/self"), base)
                .unwrap_err()
                .0
                .contains("pseudo-filesystem")
        );
        // The probe leaves nothing behind.
        check_state_dir(Path::new("."), base).unwrap();
        let left: Vec<_> = std::fs::read_dir(base)
            .unwrap()
            .flatten()
            .map(|e| e.file_name())
            .collect();
        assert_eq!(left, ["f"]);
    }
}
