//! Quotas and tiers. A tier (`[tiers.NAME]` in the config) gives default
//! quotas, the built-in policies its tenants may use and whether they may
//! run custom `.wasm`; a tenant is on one tier, with overrides of its own.
//! A quota left out is not limited.
//!
//! Two kinds of quota: the static ones are checked when a scaler or a
//! policy version is admitted (HTTP 403 when exceeded), the rates when they
//! are spent (HTTP 429, or a tick that waits).

use serde::{Deserialize, Serialize};

/// A tenant's quotas. Every field is optional: absent is unlimited.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(default, deny_unknown_fields)]
pub struct Quotas {
    /// The sum of its scalers' per-tick fuel limits.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fuel_per_tick: Option<u64>,
    /// Fuel its policies may burn per second, across its scalers: over
    /// it, its ticks wait, then are throttled.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fuel_per_second: Option<u64>,
    /// Evaluations of its policies that may run at once.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub concurrency: Option<u32>,
    /// Linear memory per policy instance, bytes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub memory_bytes: Option<u64>,
    /// Number of scalers.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scalers: Option<u64>,
    /// The sum of its scalers' `max_replicas`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_replicas: Option<u64>,
    /// The sum of its scalers' cost ceilings, per hour. Under this quota
    /// every scaler needs a ceiling (`[scaler.guard.cost_ceiling]`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cost_per_hour: Option<f64>,
    /// Largest policy version it may upload, bytes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub policy_bytes: Option<u64>,
    /// Policy uploads per minute.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub uploads_per_minute: Option<u32>,
    /// Policy state per scaler, bytes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub state_bytes: Option<u64>,
    /// Log budget per evaluation: lines and bytes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub log_lines: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub log_bytes: Option<u64>,
}

impl Quotas {
    /// These quotas with `over`'s set fields in their place.
    pub fn overlaid(&self, over: &Quotas) -> Quotas {
        macro_rules! pick {
            ($($f:ident),*) => { Quotas { $($f: over.$f.or(self.$f)),* } };
        }
        pick!(
            fuel_per_tick,
            fuel_per_second,
            concurrency,
            memory_bytes,
            scalers,
            max_replicas,
            cost_per_hour,
            policy_bytes,
            uploads_per_minute,
            state_bytes,
            log_lines,
            log_bytes
        )
    }

    /// A quota that cannot be met, said as the config's or an API's
    /// problem: a zero rate or concurrency, a negative or NaN cost.
    pub fn problem(&self) -> Option<String> {
        if self.concurrency == Some(0) {
            return Some("concurrency = 0 would never evaluate a policy: use 1 or more".into());
        }
        if self
            .cost_per_hour
            .is_some_and(|c| !c.is_finite() || c < 0.0)
        {
            return Some("cost_per_hour must be a number at or above 0".into());
        }
        None
    }
}

/// A tier: default quotas, which built-in policies, and whether custom
/// `.wasm` (files, registry versions, OCI) may run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(default, deny_unknown_fields)]
pub struct Tier {
    pub quotas: Quotas,
    /// The built-in policies (`queue-depth`, not `builtin:queue-depth`) its
    /// tenants may use; absent: every one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub builtins: Option<Vec<String>>,
    pub custom_wasm: bool,
    /// The Prometheus servers (URLs) its tenants' scalers may query; none
    /// by default, so a tenant cannot make the server fetch a URL of its
    /// choosing.
    pub prometheus_urls: Vec<String>,
    /// The Kubernetes namespaces its tenants' scalers may scale in;
    /// `{tenant}` is the tenant's name. Default: `["{tenant}"]`.
    pub namespaces: Vec<String>,
}

impl Default for Tier {
    fn default() -> Self {
        Tier {
            quotas: Quotas::default(),
            builtins: None,
            custom_wasm: true,
            prometheus_urls: Vec::new(),
            namespaces: vec![TENANT_NAMESPACE.to_owned()],
        }
    }
}

/// Something outside the process a scaler reaches, as a tenant's plan
/// checks it.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Reach<'a> {
    /// A path on the server (a trace, a kubeconfig): `what` names the key.
    ServerFile(&'a str),
    /// A cluster or identity other than the server's own (`api_server`).
    ServerCredentials(&'a str),
    Prometheus(&'a str),
    Namespace(&'a str),
}

fn listed(items: &[String]) -> String {
    if items.is_empty() {
        "none".to_owned()
    } else {
        items.join(", ")
    }
}

/// In a tier's `namespaces`: the tenant's own name.
pub(super) const TENANT_NAMESPACE: &str = "{tenant}";

/// What a tenant may do: its tier with its overrides.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Plan {
    pub tier: Option<String>,
    pub quotas: Quotas,
    pub builtins: Option<Vec<String>>,
    pub custom_wasm: bool,
    pub prometheus_urls: Vec<String>,
    pub namespaces: Vec<String>,
}

impl Plan {
    /// No limits: a tenant on no tier, or a scaler of no known tenant.
    pub fn unlimited() -> Self {
        Plan::new(None, None, &Quotas::default())
    }

    pub fn new(tier_name: Option<&str>, tier: Option<&Tier>, overrides: &Quotas) -> Self {
        let base = tier.cloned().unwrap_or_default();
        Plan {
            tier: tier_name.map(str::to_owned),
            quotas: base.quotas.overlaid(overrides),
            builtins: base.builtins,
            custom_wasm: base.custom_wasm,
            prometheus_urls: base.prometheus_urls,
            namespaces: base.namespaces,
        }
    }
}

/// A quota a request would exceed: its name, what is used (with the
/// request), and the limit. Shown to the tenant as it is.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Exceeded {
    pub quota: String,
    pub used: f64,
    pub limit: f64,
    /// Whether it is a rate (try again later: HTTP 429) or a static
    /// limit (change the request or the tier: HTTP 403).
    pub rate: bool,
    pub detail: String,
}

impl std::fmt::Display for Exceeded {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "quota {} exceeded: {} would be used of {} ({})",
            self.quota, self.used, self.limit, self.detail
        )
    }
}

/// What a scaler takes from its tenant's quotas.
#[derive(Debug, Clone, Default, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Footprint {
    pub scalers: u64,
    pub max_replicas: u64,
    /// Its cost ceiling per hour; None: it has none.
    pub cost_per_hour: Option<f64>,
    pub fuel_per_tick: u64,
    pub memory_bytes: u64,
    pub state_bytes: u64,
    pub log_lines: u32,
    pub log_bytes: u64,
    /// `builtin:NAME`'s NAME; None for custom `.wasm`.
    #[serde(skip)]
    pub builtin: Option<String>,
}

/// A tenant's use of its static quotas: the sum of its scalers' footprints.
#[derive(Debug, Clone, Default, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Usage {
    pub scalers: u64,
    pub max_replicas: u64,
    pub cost_per_hour: f64,
    pub fuel_per_tick: u64,
}

impl Usage {
    pub fn add(&mut self, f: &Footprint) {
        self.scalers += f.scalers;
        self.max_replicas = self.max_replicas.saturating_add(f.max_replicas);
        self.cost_per_hour += f.cost_per_hour.unwrap_or(0.0);
        self.fuel_per_tick = self.fuel_per_tick.saturating_add(f.fuel_per_tick);
    }
}

fn over(quota: &str, used: f64, limit: f64, detail: impl Into<String>) -> Exceeded {
    Exceeded {
        quota: quota.into(),
        used,
        limit,
        rate: false,
        detail: detail.into(),
    }
}

impl Plan {
    /// Whether the tier runs this policy: `builtin:NAME`'s NAME, or None
    /// for custom `.wasm`.
    pub fn admit_policy(&self, builtin: Option<&str>) -> Result<(), Exceeded> {
        match builtin {
            Some(name) => {
                if let Some(allowed) = &self.builtins
                    && !allowed.iter().any(|a| a == name)
                {
                    return Err(over(
                        "builtins",
                        0.0,
                        0.0,
                        format!(
                            "builtin:{name} is not on this tier; it offers {}",
                            allowed.join(", ")
                        ),
                    ));
                }
            }
            None if !self.custom_wasm => {
                return Err(over(
                    "custom_wasm",
                    1.0,
                    0.0,
                    "this tier runs built-in policies only",
                ));
            }
            None => {}
        }
        Ok(())
    }

    /// Whether `tenant`'s scalers may reach what `reach` names outside the
    /// process: a tenant never gets the server's files or its own choice of
    /// URL, cluster or namespace.
    pub fn admit_reach(&self, tenant: &str, reach: &Reach<'_>) -> Result<(), Exceeded> {
        let refuse = |quota: &str, detail: String| Err(over(quota, 1.0, 0.0, detail));
        match reach {
            Reach::ServerFile(what) => refuse(
                "files",
                format!("{what} is a file on the server: a tenant's scaler reads none"),
            ),
            Reach::ServerCredentials(what) => refuse(
                "targets",
                format!(
                    "{what} picks a cluster or identity: a tenant's scaler uses the server's own"
                ),
            ),
            Reach::Prometheus(url) => {
                let url = url.trim_end_matches('/');
                if self
                    .prometheus_urls
                    .iter()
                    .any(|allowed| allowed.trim_end_matches('/') == url)
                {
                    return Ok(());
                }
                refuse(
                    "prometheus_urls",
                    format!(
                        "Prometheus at {url} is not on this tier; it offers {}",
                        listed(&self.prometheus_urls)
                    ),
                )
            }
            Reach::Namespace(namespace) => {
                let offered: Vec<String> = self
                    .namespaces
                    .iter()
                    .map(|n| n.replace(TENANT_NAMESPACE, tenant))
                    .collect();
                if offered.iter().any(|n| n == namespace) {
                    return Ok(());
                }
                refuse(
                    "namespaces",
                    format!(
                        "namespace {namespace} is not on this tier; it offers {}",
                        listed(&offered)
                    ),
                )
            }
        }
    }

    /// Whether a scaler of this footprint may join `usage` (the tenant's
    /// other scalers). The first quota it exceeds, in the order listed.
    pub fn admit(&self, usage: &Usage, new: &Footprint) -> Result<(), Exceeded> {
        let q = &self.quotas;
        self.admit_policy(new.builtin.as_deref())?;
        let mut after = usage.clone();
        after.add(new);
        let checks: [(&str, Option<f64>, f64, &str); 3] = [
            (
                "scalers",
                q.scalers.map(|v| v as f64),
                after.scalers as f64,
                "scalers of this tenant",
            ),
            (
                "max_replicas",
                q.max_replicas.map(|v| v as f64),
                after.max_replicas as f64,
                "the sum of max_replicas over this tenant's scalers",
            ),
            (
                "fuel_per_tick",
                q.fuel_per_tick.map(|v| v as f64),
                after.fuel_per_tick as f64,
                "the sum of the per-tick fuel limits over this tenant's scalers",
            ),
        ];
        for (quota, limit, used, detail) in checks {
            if let Some(limit) = limit
                && used > limit
            {
                return Err(over(quota, used, limit, detail));
            }
        }
        if let Some(limit) = q.cost_per_hour {
            let Some(_) = new.cost_per_hour else {
                return Err(over(
                    "cost_per_hour",
                    f64::INFINITY,
                    limit,
                    "this tenant's cost is capped, and a scaler without a cost ceiling has no bound: set guard.cost_ceiling",
                ));
            };
            if after.cost_per_hour > limit {
                return Err(over(
                    "cost_per_hour",
                    after.cost_per_hour,
                    limit,
                    "the sum of the cost ceilings over this tenant's scalers",
                ));
            }
        }
        let per_instance: [(&str, Option<u64>, u64); 4] = [
            ("memory_bytes", q.memory_bytes, new.memory_bytes),
            ("state_bytes", q.state_bytes, new.state_bytes),
            (
                "log_lines",
                q.log_lines.map(u64::from),
                u64::from(new.log_lines),
            ),
            ("log_bytes", q.log_bytes, new.log_bytes),
        ];
        for (quota, limit, asked) in per_instance {
            if let Some(limit) = limit
                && asked > limit
            {
                return Err(over(
                    quota,
                    asked as f64,
                    limit as f64,
                    "the scaler's [limits] ask for more than the tenant may use per instance",
                ));
            }
        }
        Ok(())
    }
}

/// A sliding window of events per minute (policy uploads).
#[derive(Debug, Default)]
pub struct PerMinute {
    times: std::collections::VecDeque<std::time::Instant>,
}

impl PerMinute {
    /// Count one event now if fewer than `limit` happened in the last minute.
    pub fn try_take(&mut self, limit: u32) -> Result<(), Exceeded> {
        let now = std::time::Instant::now();
        while self
            .times
            .front()
            .is_some_and(|t| now.duration_since(*t) >= std::time::Duration::from_secs(60))
        {
            self.times.pop_front();
        }
        if self.times.len() >= limit as usize {
            return Err(Exceeded {
                quota: "uploads_per_minute".into(),
                used: self.times.len() as f64 + 1.0,
                limit: f64::from(limit),
                rate: true,
                detail: "policy uploads in the last minute; try again in a minute".into(),
            });
        }
        self.times.push_back(now);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn footprint(builtin: Option<&str>) -> Footprint {
        Footprint {
            scalers: 1,
            max_replicas: 8,
            cost_per_hour: Some(10.0),
            fuel_per_tick: 1_000_000,
            memory_bytes: 16 << 20,
            state_bytes: 64 << 10,
            log_lines: 32,
            log_bytes: 8 << 10,
            builtin: builtin.map(str::to_owned),
        }
    }

    #[test]
    fn reach_is_what_the_tier_offers_with_the_tenants_name_in_namespaces() {
        let plan = Plan::new(
            Some("lab"),
            Some(&Tier {
                prometheus_urls: vec!["http://prom:9090/".into()],
                namespaces: vec!["{tenant}".into(), "team-{tenant}".into(), "shared".into()],
                ..Tier::default()
            }),
            &Quotas::default(),
        );
        let quota = |reach: Reach<'_>| plan.admit_reach("acme", &reach).err().map(|e| e.quota);
        assert_eq!(quota(Reach::Prometheus("http://prom:9090")), None);
        assert_eq!(
            quota(Reach::Prometheus("http://prom:9091")).as_deref(),
            Some("prometheus_urls")
        );
        for ok in ["acme", "team-acme", "shared"] {
            assert_eq!(quota(Reach::Namespace(ok)), None, "{ok}");
        }
        for no in ["globex", "team-globex", "{tenant}", ""] {
            assert_eq!(
                quota(Reach::Namespace(no)).as_deref(),
                Some("namespaces"),
                "{no}"
            );
        }
        assert_eq!(
            quota(Reach::ServerFile("source.path")).as_deref(),
            Some("files")
        );
        assert_eq!(
            quota(Reach::ServerCredentials("target.api_server")).as_deref(),
            Some("targets")
        );
        // No tier: no Prometheus, the tenant's own namespace only.
        let none = Plan::unlimited();
        assert!(
            none.admit_reach("acme", &Reach::Prometheus("http://prom:9090"))
                .is_err()
        );
        assert!(none.admit_reach("acme", &Reach::Namespace("acme")).is_ok());
    }

    #[test]
    fn a_tier_with_overrides_admits_up_to_each_quota_and_names_the_first_exceeded() {
        let tier = Tier {
            quotas: Quotas {
                scalers: Some(2),
                max_replicas: Some(100),
                cost_per_hour: Some(15.0),
                ..Quotas::default()
            },
            builtins: Some(vec!["queue-depth".into()]),
            custom_wasm: false,
            ..Tier::default()
        };
        let plan = Plan::new(
            Some("free"),
            Some(&tier),
            &Quotas {
                cost_per_hour: Some(25.0),
                ..Quotas::default()
            },
        );
        assert_eq!(plan.quotas.scalers, Some(2));
        assert_eq!(plan.quotas.cost_per_hour, Some(25.0));
        let mut usage = Usage::default();
        plan.admit(&usage, &footprint(Some("queue-depth"))).unwrap();
        usage.add(&footprint(Some("queue-depth")));
        assert_eq!(
            plan.admit(&usage, &footprint(Some("predictive")))
                .unwrap_err()
                .quota,
            "builtins"
        );
        assert_eq!(
            plan.admit(&usage, &footprint(None)).unwrap_err().quota,
            "custom_wasm"
        );
        plan.admit(&usage, &footprint(Some("queue-depth"))).unwrap();
        usage.add(&footprint(Some("queue-depth")));
        let e = plan
            .admit(&usage, &footprint(Some("queue-depth")))
            .unwrap_err();
        assert_eq!((e.quota.as_str(), e.used, e.limit), ("scalers", 3.0, 2.0));
        let no_ceiling = Footprint {
            cost_per_hour: None,
            ..footprint(Some("queue-depth"))
        };
        let e = plan.admit(&Usage::default(), &no_ceiling).unwrap_err();
        assert_eq!(e.quota, "cost_per_hour");
        assert!(!e.rate);
        assert!(Plan::unlimited().admit(&usage, &footprint(None)).is_ok());
    }

    #[test]
    fn uploads_per_minute_is_a_rate() {
        let mut w = PerMinute::default();
        w.try_take(2).unwrap();
        w.try_take(2).unwrap();
        let e = w.try_take(2).unwrap_err();
        assert!(e.rate);
        assert_eq!((e.used, e.limit), (3.0, 2.0));
    }
}
