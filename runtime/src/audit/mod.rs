//! The audit log: one JSON line per decision, append-only, flushed per tick,
//! rotated by size. A torn last line (a crash mid-write) is skipped with a
//! warning when reading, never fatal.

pub mod writer;

use crate::guard::Intervention;
use crate::host::ValidDecision;
use crate::model::{PoolTarget, Snapshot};
use serde::{Deserialize, Serialize};
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// The part of a tick that failed, in the order a tick runs them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
#[non_exhaustive]
pub enum Stage {
    /// Reading the target's count.
    ActuatorRead,
    /// Reading the metrics.
    Source,
    /// Evaluating the policy (or handing it its saved state).
    Policy,
    /// Evaluating the safety-net policy.
    SafetyNet,
    /// Writing the new count.
    ActuatorWrite,
}

impl Stage {
    /// The name in the audit log and `/metrics`.
    pub fn as_str(self) -> &'static str {
        match self {
            Stage::ActuatorRead => "actuator-read",
            Stage::Source => "source",
            Stage::Policy => "policy",
            Stage::SafetyNet => "safety-net",
            Stage::ActuatorWrite => "actuator-write",
        }
    }
}

impl std::fmt::Display for Stage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A failure recorded in an audit record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Failure {
    pub stage: Stage,
    pub kind: String,
    pub message: String,
}

impl Failure {
    pub fn new(stage: Stage, kind: &str, message: String) -> Self {
        Failure {
            stage,
            kind: kind.into(),
            message,
        }
    }
}

/// One guardrail change, as recorded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GuardrailRecord {
    pub guard: String,
    pub before: u32,
    pub after: u32,
    pub why: String,
}

impl From<&Intervention> for GuardrailRecord {
    fn from(i: &Intervention) -> Self {
        GuardrailRecord {
            guard: i.guard.to_owned(),
            before: i.before,
            after: i.after,
            why: i.why.clone(),
        }
    }
}

/// Why one decision was made.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AuditRecord {
    pub time_ms: u64,
    // Shared with the scaler that writes them: one record per tick must not
    // copy four strings.
    pub scaler: Arc<str>,
    pub tenant: Arc<str>,
    pub policy: Arc<str>,
    pub policy_digest: Arc<str>,
    /// What the policy saw, in the compact form ([`crate::snapshot::Compact`]):
    /// absent values are left out, not written as `null`.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "compact_snapshot"
    )]
    pub snapshot: Option<Snapshot>,
    /// Metrics the source should have filled but could not.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub missing: Vec<String>,
    /// The policy's decision, as validated by the host.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decision: Option<RecordedDecision>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub failures: Vec<Failure>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub guardrails: Vec<GuardrailRecord>,
    pub previous_replicas: u32,
    pub final_replicas: u32,
    /// The target could not be read and no count was known before: the
    /// replica fields are 0 for want of a value, not a count.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub count_unknown: bool,
    /// Whether the actuator wrote a new count.
    pub wrote: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fuel: Option<u64>,
    /// The count split over capacity pools, as the guard left it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub pools: Vec<PoolTarget>,
    /// Parts of the decision the target could not apply (`pools`,
    /// `remove-first`): it set the count alone.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ignored: Vec<String>,
    /// What a shadow version proposed on the same snapshot (it never acts).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shadow: Option<ShadowDecision>,
    pub latency_us: u64,
}

/// A shadow version's answer beside the active one's.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShadowDecision {
    /// The shadow's policy digest.
    pub digest: String,
    /// Its proposal, or `None` when it failed (then `failure` says why).
    pub desired: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure: Option<String>,
}

/// The record's snapshot: written compact, read through the same parser as
/// `wasmscale eval` (so records written before the compact form still read).
mod compact_snapshot {
    use crate::model::Snapshot;
    use crate::snapshot::{Compact, Defaults, from_value};

    pub(super) fn serialize<S: serde::Serializer>(
        snapshot: &Option<Snapshot>,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        match snapshot {
            Some(s) => serializer.serialize_some(&Compact(s)),
            None => serializer.serialize_none(),
        }
    }

    pub(super) fn deserialize<'de, D: serde::Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Option<Snapshot>, D::Error> {
        let value: Option<serde_json::Value> = serde::Deserialize::deserialize(deserializer)?;
        let defaults = Defaults {
            time_ms: 0,
            interval_ms: 0,
            current: 0,
        };
        value
            .map(|v| from_value(v, defaults).map(|(s, _)| s))
            .transpose()
            .map_err(serde::de::Error::custom)
    }
}

/// The validated decision in a record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RecordedDecision {
    pub desired: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub spot_fraction: Option<f64>,
    pub reason: String,
    /// The policy said "hold" (0.2): no opinion, not a recommendation.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub hold: bool,
    /// Its count per capacity pool (0.2).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub pools: Vec<PoolTarget>,
    /// Replicas it asked to remove first (0.2).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub remove_first: Vec<String>,
}

impl From<&ValidDecision> for RecordedDecision {
    fn from(d: &ValidDecision) -> Self {
        RecordedDecision {
            desired: d.desired,
            spot_fraction: d.spot_fraction,
            reason: d.reason.clone(),
            hold: d.hold,
            pools: d.pools.clone(),
            remove_first: d.remove_first.clone(),
        }
    }
}

/// An append-only JSON-lines file with size-based rotation.
#[derive(Debug)]
pub struct AuditLog {
    path: PathBuf,
    max_bytes: u64,
    keep: u32,
    file: std::io::BufWriter<std::fs::File>,
    size: u64,
    /// One record's line, reused: no allocation per record.
    line: Vec<u8>,
}

impl AuditLog {
    pub fn open(path: &Path, max_bytes: u64, keep: u32) -> std::io::Result<Self> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)?;
        }
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .read(true)
            .open(path)?;
        let mut size = file.metadata()?.len();
        // A crash mid-write leaves a torn last line. Start a new line, so the
        // first record of this run is not glued to the fragment (and lost).
        if size > 0 && !ends_with_newline(&mut file, size)? {
            file.write_all(b"\n")?;
            size += 1;
            tracing::warn!(path = %path.display(), "the audit log ended in a torn line (a crash mid-write?); it is skipped when read");
        }
        Ok(AuditLog {
            path: path.to_path_buf(),
            max_bytes: max_bytes.max(1024),
            keep,
            file: std::io::BufWriter::with_capacity(256 << 10, file),
            size,
            line: Vec::with_capacity(1024),
        })
    }

    /// A new log at `path` that is never rotated, for one run's records
    /// (`simulate --audit`): a file already there is replaced.
    pub fn create(path: &Path) -> std::io::Result<Self> {
        match std::fs::remove_file(path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e),
            _ => {}
        }
        Self::open(path, u64::MAX, 0)
    }

    /// Append one record (buffered: call [`Self::flush`] after a batch).
    pub fn append(&mut self, record: &AuditRecord) -> std::io::Result<()> {
        let mut line = std::mem::take(&mut self.line);
        line.clear();
        let written = serde_json::to_writer(&mut line, record)
            .map_err(std::io::Error::other)
            .and_then(|()| {
                line.push(b'\n');
                if self.size + line.len() as u64 > self.max_bytes && self.size > 0 {
                    self.rotate()?;
                }
                self.file.write_all(&line)?;
                self.size += line.len() as u64;
                Ok(())
            });
        self.line = line;
        written
    }

    /// Hand everything appended to the OS.
    pub fn flush(&mut self) -> std::io::Result<()> {
        self.file.flush()
    }

    /// Make sure everything appended is on disk.
    pub fn sync(&mut self) -> std::io::Result<()> {
        self.file.flush()?;
        self.file.get_ref().sync_data()
    }

    fn rotate(&mut self) -> std::io::Result<()> {
        self.file.flush()?;
        let numbered = |n: u32| PathBuf::from(format!("{}.{n}", self.path.display()));
        if self.keep == 0 {
            std::fs::remove_file(&self.path)?;
        } else {
            for n in (1..self.keep).rev() {
                if numbered(n).exists() {
                    std::fs::rename(numbered(n), numbered(n + 1))?;
                }
            }
            std::fs::rename(&self.path, numbered(1))?;
        }
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.path)?;
        self.file = std::io::BufWriter::with_capacity(256 << 10, file);
        self.size = 0;
        Ok(())
    }
}

fn ends_with_newline(file: &mut std::fs::File, size: u64) -> std::io::Result<bool> {
    use std::io::{Read as _, Seek as _, SeekFrom};
    let mut last = [0u8; 1];
    file.seek(SeekFrom::Start(size - 1))?;
    file.read_exact(&mut last)?;
    Ok(last[0] == b'\n')
}

/// Read every complete record of an audit file. Unreadable lines are skipped
/// with a warning (a torn last line after a crash is expected, and may end
/// inside a multibyte character, so lines are decoded one by one); the count
/// of skipped lines is returned with the records.
pub fn read(path: &Path) -> std::io::Result<(Vec<AuditRecord>, usize)> {
    let bytes = std::fs::read(path)?;
    let mut records = Vec::new();
    let mut skipped = 0;
    for (i, line) in bytes
        .split(|b| *b == b'\n')
        .enumerate()
        .filter(|(_, l)| !l.trim_ascii().is_empty())
    {
        match serde_json::from_slice(line) {
            Ok(r) => records.push(r),
            Err(e) => {
                skipped += 1;
                tracing::warn!(path = %path.display(), line = i + 1, error = %e, "skipping an unreadable audit line");
            }
        }
    }
    Ok((records, skipped))
}

/// How far back from the end of an audit file [`recent`] reads.
pub const RECENT_WINDOW_BYTES: u64 = 16 << 20;

/// The newest `limit` records of `scaler` at or after `since_ms`, oldest
/// first (the admin API's decisions). See [`recent_of`].
pub fn recent(
    path: &Path,
    scaler: &str,
    since_ms: u64,
    limit: usize,
) -> std::io::Result<Vec<AuditRecord>> {
    Ok(recent_of(path, &[scaler], since_ms, limit)?
        .remove(scaler)
        .unwrap_or_default())
}

/// The newest `per` records of each of `scalers` at or after `since_ms`,
/// oldest first, read backwards from the end of the file and at most
/// [`RECENT_WINDOW_BYTES`] back (a hot swap's smoke snapshots for every
/// scaler it swaps, in one pass). A missing file has none.
pub fn recent_of(
    path: &Path,
    scalers: &[&str],
    since_ms: u64,
    per: usize,
) -> std::io::Result<std::collections::HashMap<String, Vec<AuditRecord>>> {
    use std::io::{Read as _, Seek as _, SeekFrom};
    /// What is read of every line: which scaler, and when.
    #[derive(Deserialize)]
    struct Head<'a> {
        #[serde(borrow)]
        scaler: std::borrow::Cow<'a, str>,
        time_ms: u64,
    }
    let mut found: std::collections::HashMap<String, Vec<AuditRecord>> = scalers
        .iter()
        .map(|s| ((*s).to_owned(), Vec::new()))
        .collect();
    let mut file = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(found),
        Err(e) => return Err(e),
    };
    let size = file.metadata()?.len();
    // A small window first: the newest records are usually all that is wanted.
    for window in [1 << 20, RECENT_WINDOW_BYTES] {
        found.values_mut().for_each(Vec::clear);
        let start = size.saturating_sub(window);
        file.seek(SeekFrom::Start(start))?;
        let mut bytes = Vec::new();
        (&mut file).take(window).read_to_end(&mut bytes)?;
        // Mid-file, the first line is likely cut: skip to the next one.
        let from = if start > 0 {
            bytes
                .iter()
                .position(|b| *b == b'\n')
                .map_or(bytes.len(), |i| i + 1)
        } else {
            0
        };
        let mut wanting = scalers.len();
        for line in bytes[from..].split(|b| *b == b'\n').rev() {
            if wanting == 0 {
                break;
            }
            let Ok(head) = serde_json::from_slice::<Head<'_>>(line) else {
                continue;
            };
            if head.time_ms < since_ms {
                break;
            }
            let Some(list) = found.get_mut(&*head.scaler) else {
                continue;
            };
            if list.len() >= per {
                continue;
            }
            if let Ok(r) = serde_json::from_slice::<AuditRecord>(line) {
                list.push(r);
                if list.len() == per {
                    wanting -= 1;
                }
            }
        }
        if wanting == 0 || start == 0 {
            break;
        }
    }
    found.values_mut().for_each(|l| l.reverse());
    Ok(found)
}

/// A record in words, for `wasmscale audit explain`.
pub fn explain(r: &AuditRecord) -> String {
    let mut s = format!("{} {} [{}]: ", format_time(r.time_ms), r.scaler, r.tenant);
    match &r.decision {
        Some(d) => s.push_str(&format!(
            "{} proposed {} ({})",
            r.policy, d.desired, d.reason
        )),
        None => s.push_str("no decision"),
    }
    for f in &r.failures {
        s.push_str(&format!("; {} failed [{}]: {}", f.stage, f.kind, f.message));
    }
    if !r.missing.is_empty() {
        s.push_str(&format!("; missing metrics: {}", r.missing.join(", ")));
    }
    for g in &r.guardrails {
        s.push_str(&format!(
            "; {} changed {} -> {} ({})",
            g.guard, g.before, g.after, g.why
        ));
    }
    let unreadable = r.failures.iter().any(|f| f.stage == Stage::ActuatorRead);
    if r.count_unknown {
        s.push_str("; target unreadable and no count known yet: nothing written");
    } else if unreadable && r.final_replicas == r.previous_replicas {
        s.push_str(&format!(
            "; target unreadable: held at its last known count {}",
            r.final_replicas
        ));
    } else if r.final_replicas == r.previous_replicas {
        s.push_str(&format!("; held at {}", r.final_replicas));
    } else {
        s.push_str(&format!(
            "; scaled {} -> {}{}",
            r.previous_replicas,
            r.final_replicas,
            if r.wrote { "" } else { " (not written)" }
        ));
    }
    if let Some(f) = r.fuel {
        s.push_str(&format!(" [{f} fuel, {} µs]", r.latency_us));
    }
    s
}

/// UTC `YYYY-MM-DD HH:MM:SS` without a date library.
pub fn format_time(ms: u64) -> String {
    let secs = ms / 1000;
    let (days, rem) = (secs / 86_400, secs % 86_400);
    let (h, m, s) = (rem / 3600, rem % 3600 / 60, rem % 60);
    // Civil-from-days (Howard Hinnant's algorithm).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let mo = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(mo <= 2);
    format!("{y:04}-{mo:02}-{d:02} {h:02}:{m:02}:{s:02}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(n: u32) -> AuditRecord {
        AuditRecord {
            time_ms: 1_764_000_000_000 + u64::from(n),
            scaler: "s".into(),
            tenant: "t".into(),
            policy: "builtin:queue-depth".into(),
            policy_digest: "d".into(),
            snapshot: None,
            missing: vec![],
            decision: Some(RecordedDecision {
                desired: n,
                spot_fraction: None,
                reason: "r".into(),
                hold: false,
                pools: vec![],
                remove_first: vec![],
            }),
            failures: vec![],
            guardrails: vec![],
            previous_replicas: 1,
            final_replicas: n,
            count_unknown: false,
            wrote: true,
            fuel: Some(10),
            pools: vec![],
            ignored: vec![],
            shadow: None,
            latency_us: 3,
        }
    }

    #[test]
    fn appends_rotates_and_survives_a_torn_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.jsonl");
        let mut log = AuditLog::open(&path, 1024, 2).unwrap();
        for n in 0..30 {
            log.append(&record(n)).unwrap();
            log.flush().unwrap();
        }
        assert!(dir.path().join("audit.jsonl.1").exists());
        assert!(dir.path().join("audit.jsonl.2").exists());
        assert!(!dir.path().join("audit.jsonl.3").exists());
        let (records, skipped) = read(&path).unwrap();
        assert!(!records.is_empty() && skipped == 0);
        assert_eq!(records.last().map(|r| r.final_replicas), Some(29));
        // A crash mid-write leaves half a line.
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap();
        f.write_all(b"{\"time_ms\": 17640000").unwrap();
        let (again, skipped) = read(&path).unwrap();
        assert_eq!((again.len(), skipped), (records.len(), 1));
    }

    #[test]
    fn a_run_after_a_torn_line_starts_a_new_line_and_loses_no_record() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.jsonl");
        let mut log = AuditLog::open(&path, 1 << 20, 1).unwrap();
        log.append(&record(1)).unwrap();
        log.flush().unwrap();
        drop(log);
        // Torn inside a multibyte character (`…` is three bytes).
        let mut torn = serde_json::to_vec(&record(2)).unwrap();
        torn.truncate(torn.len() - 10);
        torn.extend_from_slice(&"…".as_bytes()[..2]);
        std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap()
            .write_all(&torn)
            .unwrap();
        let (records, skipped) = read(&path).unwrap();
        assert_eq!((records.len(), skipped), (1, 1));
        // The next run's first record is its own line, and reads back.
        let mut log = AuditLog::open(&path, 1 << 20, 1).unwrap();
        log.append(&record(3)).unwrap();
        log.flush().unwrap();
        let (records, skipped) = read(&path).unwrap();
        assert_eq!(skipped, 1, "only the fragment is lost");
        let finals: Vec<u32> = records.iter().map(|r| r.final_replicas).collect();
        assert_eq!(finals, [1, 3]);
        // A log that ends cleanly gets no blank line.
        drop(log);
        let before = std::fs::metadata(&path).unwrap().len();
        drop(AuditLog::open(&path, 1 << 20, 1).unwrap());
        assert_eq!(std::fs::metadata(&path).unwrap().len(), before);
    }

    #[test]
    fn a_record_is_compact_and_reads_back_whole() {
        let replicas = crate::model::ReplicaCounts {
            current: 2,
            observed: Some(2),
            ready: Some(2),
            starting: Some(0),
            pending: None,
            min: Some(1),
            max: Some(9),
        };
        let snapshot = crate::snapshot::from_values(
            [("queue_depth", 33.0), ("tokens", 4.0)],
            5,
            1000,
            replicas,
        )
        .unwrap();
        let mut r = record(4);
        r.snapshot = Some(snapshot);
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.jsonl");
        let mut log = AuditLog::open(&path, 1 << 20, 1).unwrap();
        log.append(&r).unwrap();
        log.append(&record(5)).unwrap();
        log.flush().unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(!text.contains("null") && !text.contains("[]"), "{text}");
        let (records, skipped) = read(&path).unwrap();
        assert_eq!((skipped, records.len()), (0, 2));
        assert_eq!(records[0], r);
        // A record written in the older form, every absent value a `null`,
        // still reads.
        let mut old = serde_json::to_value(&r).unwrap();
        old["snapshot"] = serde_json::to_value(r.snapshot.as_ref().unwrap()).unwrap();
        old["failures"] = serde_json::json!([]);
        assert!(old.to_string().contains("\"gpu_utilization\":null"));
        let back: AuditRecord = serde_json::from_value(old).unwrap();
        assert_eq!(back, r);
    }

    #[test]
    fn explains_in_words_and_formats_time() {
        assert_eq!(format_time(0), "1970-01-01 00:00:00");
        assert_eq!(format_time(1_767_225_600_000), "2026-01-01 00:00:00");
        let mut r = record(5);
        r.guardrails.push(GuardrailRecord {
            guard: "bounds".into(),
            before: 7,
            after: 5,
            why: "max_replicas 5".into(),
        });
        let text = explain(&r);
        assert!(
            text.contains("proposed 5")
                && text.contains("bounds changed 7 -> 5")
                && text.contains("scaled 1 -> 5"),
            "{text}"
        );
    }
}
