//! Load traces: per-request arrivals (with optional token counts) or
//! per-interval rates or counts, CSV or JSON lines, turned into arrivals per
//! simulated step.
//!
//! Columns are found by name; flags override each choice ([`TraceSpec`]). With
//! nothing given, the formats in `../shared/traces/` are recognised:
//! `arrival_s` (+ `input_tokens`, `output_tokens`, `service`) per request;
//! `window_start_s` + `request_rate_rps` (rows with `all_clients_zero = 1` are
//! gaps); `t_min` + `requests` (rows with `observed = 0` are gaps).
//!
//! Rates are interpolated linearly between row centres, so a 10-minute trace
//! ramps rather than jumping every 10 minutes. Gaps (collection outages, not
//! real zero load) are filled with the load one day earlier (or later, or by
//! interpolation when the trace is shorter than that) and are left out of
//! every score.

use super::batching::Request;
use super::requests::RequestSource;
use serde::{Deserialize, Serialize};
use std::path::Path;

/// How to read a trace. Every field is optional: absent = auto-detect.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TraceSpec {
    /// Per-request traces: the arrival time column.
    pub arrival_column: Option<String>,
    /// Per-interval traces: the column with each row's start time.
    pub time_column: Option<String>,
    /// Unit of the time (and arrival) column: `s`, `ms` or `min`.
    pub time_unit: Option<String>,
    /// Requests per second in each row.
    pub rate_column: Option<String>,
    /// Requests in each row's interval.
    pub count_column: Option<String>,
    /// Rows where `COLUMN=VALUE` are gaps in the record.
    pub gap_where: Option<String>,
    /// Per-request traces: keep only rows whose `service` column has this value.
    pub service: Option<String>,
}

/// A trace as arrivals per simulated step.
#[derive(Debug, Clone, PartialEq)]
pub struct Load {
    pub step_ms: u64,
    /// Time of step 0, ms since the epoch (the trace's own time where it has one).
    pub start_ms: u64,
    /// Requests arriving in each step.
    pub arrivals: Vec<f64>,
    /// Tokens (input + output) arriving in each step, when the trace has them.
    pub tokens: Option<Vec<f64>>,
    /// The requests themselves, for the request model: a per-request trace's
    /// own, or drawn per step where a per-interval trace gives token sizes.
    pub requests: Option<RequestSource>,
    /// False for steps inside a gap in the record: simulated, never scored.
    pub scored: Vec<bool>,
    /// What was read, for the report.
    pub description: String,
}

impl Load {
    /// Work per step in a capacity unit: the requests, or their tokens.
    pub fn work(&self, unit: super::model::CapacityUnit) -> Option<&[f64]> {
        match unit {
            super::model::CapacityUnit::Requests => Some(&self.arrivals),
            super::model::CapacityUnit::Tokens => self.tokens.as_deref(),
        }
    }

    /// Multiply the load (requests and tokens) by `factor`.
    pub fn scale(&mut self, factor: f64) {
        for a in &mut self.arrivals {
            *a *= factor;
        }
        for t in self.tokens.iter_mut().flatten() {
            *t *= factor;
        }
        if let Some(r) = &mut self.requests {
            r.scale(factor);
        }
    }
}

/// A trace that cannot be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("trace {path}: {message}")]
pub struct TraceError {
    pub path: String,
    pub message: String,
}

struct Table {
    headers: Vec<String>,
    rows: Vec<Vec<String>>,
}

impl Table {
    /// A column by name: exactly, else ignoring case.
    fn column(&self, name: &str) -> Option<usize> {
        self.headers.iter().position(|h| h == name).or_else(|| {
            self.headers
                .iter()
                .position(|h| h.eq_ignore_ascii_case(name))
        })
    }

    fn first_of(&self, candidates: &[&str]) -> Option<usize> {
        candidates.iter().find_map(|c| self.column(c))
    }
}

/// Column names recognised without flags, most specific first.
const ARRIVAL_COLUMNS: &[&str] = &[
    "arrival_s",
    "arrival_time_s",
    "arrival_time",
    "arrival",
    "timestamp",
];
const TIME_COLUMNS: &[&str] = &[
    "window_start_s",
    "t_min",
    "time_s",
    "t_s",
    "time_ms",
    "timestamp",
    "time",
    "minute_start_local",
    "datetime",
    "date",
    "ts",
];
const RATE_COLUMNS: &[&str] = &[
    "request_rate_rps",
    "request_rate",
    "requests_per_second",
    "rps",
    "qps",
    "rate",
];
const COUNT_COLUMNS: &[&str] = &[
    "requests",
    "count",
    "requests_in_window",
    "arrivals",
    "hits",
];
const INPUT_TOKEN_COLUMNS: &[&str] = &["input_tokens", "contexttokens", "prompt_tokens"];
const OUTPUT_TOKEN_COLUMNS: &[&str] = &["output_tokens", "generatedtokens", "completion_tokens"];
/// Per-interval traces: each row's mean request size.
const MEAN_INPUT_COLUMNS: &[&str] = &[
    "mean_input_tokens",
    "avg_input_tokens",
    "mean_prompt_tokens",
];
const MEAN_OUTPUT_COLUMNS: &[&str] = &[
    "mean_output_tokens",
    "avg_output_tokens",
    "mean_completion_tokens",
];

/// A per-interval trace's mean token column, one value per row: an empty or
/// unreadable cell takes the previous row's value (the first known one for
/// leading rows). `None` without the column or any value in it.
fn row_means(table: &Table, candidates: &[&str]) -> Option<Vec<f64>> {
    let c = table.first_of(candidates)?;
    let cells: Vec<Option<f64>> = table
        .rows
        .iter()
        .map(|r| {
            r.get(c)
                .and_then(|v| v.trim().parse::<f64>().ok())
                .filter(|v| v.is_finite() && *v >= 0.0)
        })
        .collect();
    let first = cells.iter().flatten().next().copied()?;
    let mut last = first;
    Some(
        cells
            .into_iter()
            .map(|v| {
                last = v.unwrap_or(last);
                last
            })
            .collect(),
    )
}

fn is_jsonl(path: &Path) -> bool {
    matches!(
        path.extension().and_then(|e| e.to_str()),
        Some("jsonl" | "ndjson" | "json")
    )
}

fn read_table(text: &str, jsonl: bool) -> Result<Table, String> {
    if jsonl {
        let mut headers: Vec<String> = Vec::new();
        let mut objects = Vec::new();
        for (i, line) in text
            .lines()
            .enumerate()
            .filter(|(_, l)| !l.trim().is_empty())
        {
            let v: serde_json::Map<String, serde_json::Value> = serde_json::from_str(line)
                .map_err(|e| format!("line {}: malformed JSON: {e}", i + 1))?;
            for k in v.keys() {
                if !headers.contains(k) {
                    headers.push(k.clone());
                }
            }
            objects.push(v);
        }
        let rows = objects
            .into_iter()
            .map(|o| {
                headers
                    .iter()
                    .map(|h| match o.get(h) {
                        Some(serde_json::Value::String(s)) => s.clone(),
                        Some(serde_json::Value::Null) | None => String::new(),
                        Some(v) => v.to_string(),
                    })
                    .collect()
            })
            .collect();
        return Ok(Table { headers, rows });
    }
    let mut reader = csv::Reader::from_reader(text.as_bytes());
    let headers = reader
        .headers()
        .map_err(|e| format!("header: {e}"))?
        .iter()
        .map(|h| h.trim().to_owned())
        .collect();
    let mut rows = Vec::new();
    for (i, record) in reader.records().enumerate() {
        let record = record.map_err(|e| format!("row {}: {e}", i + 2))?;
        rows.push(record.iter().map(|c| c.trim().to_owned()).collect());
    }
    Ok(Table { headers, rows })
}

fn unit_ms(unit: &str) -> Result<f64, String> {
    match unit {
        "s" | "sec" | "seconds" => Ok(1000.0),
        "ms" | "milliseconds" => Ok(1.0),
        "min" | "minutes" => Ok(60_000.0),
        other => Err(format!("unknown time unit {other:?} (use s, ms or min)")),
    }
}

/// Read a trace and turn it into arrivals per step of `step_ms`.
pub fn load(path: &Path, spec: &TraceSpec, step_ms: u64) -> Result<Load, TraceError> {
    let fail = |message: String| TraceError {
        path: path.display().to_string(),
        message,
    };
    crate::host::regular_file(path).map_err(fail)?;
    let text = std::fs::read_to_string(path).map_err(|e| fail(e.to_string()))?;
    load_text(
        &path.display().to_string(),
        &text,
        is_jsonl(path),
        spec,
        step_ms,
    )
}

/// As [`load`], from a trace's text (`name` is only for messages).
pub fn load_text(
    name: &str,
    text: &str,
    jsonl: bool,
    spec: &TraceSpec,
    step_ms: u64,
) -> Result<Load, TraceError> {
    let err = |message: String| TraceError {
        path: name.to_owned(),
        message: crate::snapshot::clip_message(message),
    };
    let table = read_table(text, jsonl).map_err(err)?;
    if table.rows.is_empty() {
        return Err(err("no rows".into()));
    }
    let pick = |given: &Option<String>,
                candidates: &[&str],
                what: &str|
     -> Result<Option<usize>, TraceError> {
        match given {
            Some(name) => table.column(name).map(Some).ok_or_else(|| {
                err(format!(
                    "no {what} column {name:?}; columns are: {}",
                    table.headers.join(", ")
                ))
            }),
            None => Ok(table.first_of(candidates)),
        }
    };
    let rate = pick(&spec.rate_column, RATE_COLUMNS, "rate")?;
    let count = pick(&spec.count_column, COUNT_COLUMNS, "count")?;
    // A trace with a rate or count per row is per interval; otherwise each
    // row is one request.
    let per_interval_trace = spec.time_column.is_some() || rate.is_some() || count.is_some();
    if !per_interval_trace || spec.arrival_column.is_some() {
        let arrival = pick(&spec.arrival_column, ARRIVAL_COLUMNS, "arrival")?;
        if let Some(col) = arrival {
            let unit = unit_ms(spec.time_unit.as_deref().unwrap_or("s")).map_err(err)?;
            return per_request(&table, col, unit, spec, step_ms).map_err(err);
        }
    }
    let time = pick(&spec.time_column, TIME_COLUMNS, "time")?.ok_or_else(|| {
        err(format!(
            "cannot tell the format: no arrival or time column among {}; name them with \
             --arrival-column or --time-column",
            table.headers.join(", ")
        ))
    })?;
    let unit = match &spec.time_unit {
        Some(u) => unit_ms(u).map_err(err)?,
        None => match table.headers[time].as_str() {
            "t_min" => 60_000.0,
            "time_ms" => 1.0,
            _ => 1000.0,
        },
    };
    let gap = match &spec.gap_where {
        Some(g) => {
            let (c, v) = g
                .split_once('=')
                .ok_or_else(|| err(format!("--gap-where wants COLUMN=VALUE, got {g:?}")))?;
            let col = table
                .column(c.trim())
                .ok_or_else(|| err(format!("no gap column {c:?}")))?;
            Some((col, v.trim().to_owned()))
        }
        None => table
            .column("observed")
            .map(|c| (c, "0".to_owned()))
            .or_else(|| {
                table
                    .column("all_clients_zero")
                    .map(|c| (c, "1".to_owned()))
            }),
    };
    per_interval(&table, time, unit, rate, count, gap, step_ms).map_err(err)
}

fn number(row: &[String], col: usize, line: usize, what: &str) -> Result<f64, String> {
    let cell = row.get(col).map(String::as_str).unwrap_or("");
    let v: f64 = cell
        .parse()
        .map_err(|_| format!("row {line}: {what} {cell:?} is not a number"))?;
    non_negative(v, line, what)
}

fn non_negative(v: f64, line: usize, what: &str) -> Result<f64, String> {
    if !v.is_finite() || v < 0.0 {
        return Err(format!(
            "row {line}: {what} {v} must be a finite number >= 0"
        ));
    }
    Ok(v)
}

fn per_request(
    table: &Table,
    col: usize,
    unit_ms: f64,
    spec: &TraceSpec,
    step_ms: u64,
) -> Result<Load, String> {
    let service = match &spec.service {
        Some(s) => Some((
            table
                .column("service")
                .ok_or("--service given but the trace has no service column")?,
            s.clone(),
        )),
        None => None,
    };
    let input = table.first_of(INPUT_TOKEN_COLUMNS);
    let output = table.first_of(OUTPUT_TOKEN_COLUMNS);
    let mut times = Vec::with_capacity(table.rows.len());
    let mut absolute_times = false;
    let mut tokens = Vec::new();
    let mut sizes: Vec<(u32, u32)> = Vec::new();
    for (i, row) in table.rows.iter().enumerate() {
        if let Some((c, want)) = &service
            && row.get(*c) != Some(want)
        {
            continue;
        }
        let (t, absolute) = time_cell(row, col, i + 2, unit_ms)?;
        absolute_times |= absolute;
        times.push(t);
        if input.is_some() || output.is_some() {
            let tok = |c: Option<usize>| {
                c.and_then(|c| row.get(c))
                    .and_then(|v| v.parse::<f64>().ok())
                    .unwrap_or(0.0)
            };
            let (p, o) = (tok(input), tok(output));
            tokens.push(p + o);
            sizes.push((
                p.round().clamp(0.0, f64::from(u32::MAX)) as u32,
                o.round().clamp(1.0, f64::from(u32::MAX)) as u32,
            ));
        }
    }
    if times.is_empty() {
        return Err(match &spec.service {
            Some(s) => format!("no rows with service {s:?}"),
            None => "no rows".into(),
        });
    }
    // Steps sit on the trace's own grid (whole steps of its time column).
    let first = times.iter().copied().fold(f64::INFINITY, f64::min);
    let first = (first / step_ms as f64).floor() * step_ms as f64;
    let last = times.iter().copied().fold(0.0, f64::max);
    let steps = check_steps(((last - first) / step_ms as f64).floor() + 1.0, step_ms)?;
    let mut arrivals = vec![0.0; steps];
    let mut step_tokens = vec![0.0; steps];
    for (i, t) in times.iter().enumerate() {
        let s = (((t - first) / step_ms as f64) as usize).min(steps - 1);
        arrivals[s] += 1.0;
        if let Some(tok) = tokens.get(i) {
            step_tokens[s] += tok;
        }
    }
    // Relative arrival times take their date from a timestamp column, if any.
    let start_ms = if absolute_times {
        first.max(0.0) as u64
    } else {
        let base = table
            .column("timestamp")
            .filter(|&c| c != col)
            .and_then(|c| {
                let row = table.rows.first()?;
                let at = parse_datetime_ms(row.get(c)?)?;
                let rel = row.get(col)?.parse::<f64>().ok()? * unit_ms;
                Some(at - rel)
            })
            .unwrap_or(0.0);
        (base + first).max(0.0) as u64
    };
    let step_ns = step_ms * 1_000_000;
    let requests = (!sizes.is_empty()).then(|| {
        let list = times
            .iter()
            .zip(&sizes)
            .map(|(t, &(prompt, output))| Request {
                at_ns: ((t - first).max(0.0) * 1e6).round() as u64,
                prompt,
                output,
            })
            .collect();
        RequestSource::recorded(list, steps, step_ns)
    });
    Ok(Load {
        step_ms,
        start_ms,
        requests,
        scored: vec![true; steps],
        description: format!(
            "{} requests{}, {} steps of {} s",
            times.len(),
            spec.service
                .as_ref()
                .map(|s| format!(" (service {s})"))
                .unwrap_or_default(),
            steps,
            step_ms as f64 / 1000.0
        ),
        arrivals,
        tokens: (!tokens.is_empty()).then_some(step_tokens),
    })
}

/// A date-time cell as ms since the epoch (UTC unless it gives an offset):
/// `2023-11-16 18:15:46.68`, `1995-07-01 00:00`, `2024-05-01T12:00:00Z`, ...
fn parse_datetime_ms(s: &str) -> Option<f64> {
    let s = s.trim();
    if let Ok(t) = chrono::DateTime::parse_from_rfc3339(s) {
        return Some(t.timestamp_millis() as f64);
    }
    let s = s.trim_end_matches('Z');
    [
        "%Y-%m-%d %H:%M:%S%.f",
        "%Y-%m-%dT%H:%M:%S%.f",
        "%Y-%m-%d %H:%M",
        "%Y-%m-%dT%H:%M",
    ]
    .iter()
    .find_map(|f| chrono::NaiveDateTime::parse_from_str(s, f).ok())
    .map(|t| t.and_utc().timestamp_millis() as f64)
}

/// A time cell in ms and whether it was absolute: a number in `unit_ms`
/// (relative to the trace's own zero), or a date-time.
fn time_cell(row: &[String], col: usize, line: usize, unit_ms: f64) -> Result<(f64, bool), String> {
    let cell = row.get(col).map(String::as_str).unwrap_or("");
    if let Ok(v) = cell.trim().parse::<f64>() {
        return Ok((non_negative(v, line, "time")? * unit_ms, false));
    }
    parse_datetime_ms(cell).map(|t| (t, true)).ok_or_else(|| {
        format!(
            "row {line}: time {cell:?} is neither a number nor a date-time like 2024-05-01 12:00:00"
        )
    })
}

fn per_interval(
    table: &Table,
    time: usize,
    unit_ms: f64,
    rate: Option<usize>,
    count: Option<usize>,
    gap: Option<(usize, String)>,
    step_ms: u64,
) -> Result<Load, String> {
    let mut points: Vec<(f64, f64, bool)> = Vec::with_capacity(table.rows.len());
    for (i, row) in table.rows.iter().enumerate() {
        let (t, _) = time_cell(row, time, i + 2, unit_ms)?;
        let is_gap = gap.as_ref().is_some_and(|(c, v)| row.get(*c) == Some(v));
        points.push((t, 0.0, is_gap));
    }
    if let Some(i) = (1..points.len()).find(|&i| points[i].0 <= points[i - 1].0) {
        return Err(format!(
            "row {}: its time is not after the previous row's; per-interval rows must be in time order",
            i + 2
        ));
    }
    let width_ms = infer_width(&points).ok_or("need at least two rows with increasing times")?;
    for (i, row) in table.rows.iter().enumerate() {
        let r = match (rate, count) {
            (Some(c), _) => number(row, c, i + 2, "rate")?,
            (None, Some(c)) => number(row, c, i + 2, "count")? / (width_ms / 1000.0),
            (None, None) => {
                return Err(format!(
                    "no rate or count column among {}; name one with --rate-column or --count-column",
                    table.headers.join(", ")
                ));
            }
        };
        points[i].1 = r;
    }
    let first = points[0].0;
    let last = points[points.len() - 1].0 + width_ms;
    let steps = check_steps(((last - first) / step_ms as f64).round(), step_ms)?;
    let step_s = step_ms as f64 / 1000.0;
    // Rate per step by linear interpolation between row centres, and each
    // step's gap flag from the row it falls in.
    let mut rates = Vec::with_capacity(steps);
    let mut scored = Vec::with_capacity(steps);
    let means = row_means(table, MEAN_INPUT_COLUMNS).zip(row_means(table, MEAN_OUTPUT_COLUMNS));
    let mut step_means: Vec<(f32, f32)> = Vec::new();
    let mut row = 0usize;
    for s in 0..steps {
        let t = first + (s as f64 + 0.5) * step_ms as f64;
        while row + 1 < points.len() && points[row + 1].0 <= t - 0.5 * step_ms as f64 {
            row += 1;
        }
        if let Some((input, output)) = &means {
            step_means.push((input[row] as f32, output[row] as f32));
        }
        // A step past its row's interval falls in missing rows: a gap too.
        let covered = t - points[row].0 < width_ms;
        scored.push(!points[row].2 && covered);
        let centre = |k: usize| points[k].0 + width_ms / 2.0;
        let (a, b) = if t < centre(row) && row > 0 {
            (row - 1, row)
        } else {
            (row, (row + 1).min(points.len() - 1))
        };
        // Never interpolate toward a gap's (meaningless) value.
        let v = if a == b || centre(b) <= centre(a) || points[a].2 || points[b].2 {
            points[row].1
        } else {
            let x = ((t - centre(a)) / (centre(b) - centre(a))).clamp(0.0, 1.0);
            points[a].1 + (points[b].1 - points[a].1) * x
        };
        rates.push(v);
    }
    fill_gaps(&mut rates, &scored, (86_400_000 / step_ms) as usize);
    let gaps = scored.iter().filter(|s| !**s).count();
    let arrivals: Vec<f64> = rates.into_iter().map(|r| r * step_s).collect();
    let tokens = (!step_means.is_empty()).then(|| {
        arrivals
            .iter()
            .zip(&step_means)
            .map(|(a, (i, o))| a * f64::from(i + o))
            .collect()
    });
    let requests = (!step_means.is_empty()).then(|| RequestSource::Drawn {
        mean_prompt: step_means.iter().map(|m| m.0).collect(),
        mean_output: step_means.iter().map(|m| m.1.max(1.0)).collect(),
    });
    Ok(Load {
        step_ms,
        start_ms: if first >= 0.0 { first as u64 } else { 0 },
        arrivals,
        tokens,
        requests,
        description: format!(
            "{} rows of {} s, {} steps of {} s{}",
            points.len(),
            width_ms / 1000.0,
            steps,
            step_s,
            if gaps > 0 {
                format!(" ({gaps} steps in gaps, filled and not scored)")
            } else {
                String::new()
            }
        ),
        scored,
    })
}

/// Most steps a simulation takes on (about 580 days of 1 s steps, ~850 MB).
pub const MAX_STEPS: usize = 50_000_000;

/// The step count of a span, checked in floating point before it becomes an
/// integer: a time of `1e308` must be an error, not a count that wraps to 0.
fn check_steps(steps: f64, step_ms: u64) -> Result<usize, String> {
    if !(steps.is_finite() && steps <= MAX_STEPS as f64) {
        return Err(format!(
            "the trace spans {} steps of {} s, more than {MAX_STEPS}; use longer steps \
             (--step-seconds) or a shorter trace (is a time cell far out of range?)",
            if steps.is_finite() {
                format!("{steps:.0}")
            } else {
                "infinitely many".into()
            },
            step_ms as f64 / 1000.0
        ));
    }
    if steps < 1.0 {
        return Err("the trace spans less than one step".into());
    }
    Ok(steps as usize)
}

/// The most common difference between consecutive row times.
fn infer_width(points: &[(f64, f64, bool)]) -> Option<f64> {
    let mut diffs: Vec<i64> = points
        .windows(2)
        .map(|w| (w[1].0 - w[0].0).round() as i64)
        .filter(|d| *d > 0)
        .collect();
    diffs.sort_unstable();
    let mut best = (0usize, None);
    let mut i = 0;
    while i < diffs.len() {
        let j = diffs[i..].iter().take_while(|d| **d == diffs[i]).count();
        if j > best.0 {
            best = (j, Some(diffs[i] as f64));
        }
        i += j;
    }
    best.1
}

/// Fill unscored steps with the load one period earlier (or later); where
/// neither is scored, interpolate between the gap's edges.
fn fill_gaps(rates: &mut [f64], scored: &[bool], period: usize) {
    let n = rates.len();
    let original = rates.to_vec();
    let mut i = 0;
    while i < n {
        if scored[i] {
            i += 1;
            continue;
        }
        let start = i;
        while i < n && !scored[i] {
            i += 1;
        }
        let before = start.checked_sub(1).map(|k| original[k]);
        let after = (i < n).then(|| original[i]);
        for (k, rate) in rates.iter_mut().enumerate().take(i).skip(start) {
            let seasonal = (1..=7)
                .filter_map(|d| {
                    let back = k.checked_sub(d * period).filter(|&j| scored[j]);
                    let fwd = Some(k + d * period).filter(|&j| j < n && scored[j]);
                    back.or(fwd)
                })
                .map(|j| original[j])
                .next();
            *rate = seasonal.unwrap_or_else(|| match (before, after) {
                (Some(a), Some(b)) => a + (b - a) * (k - start + 1) as f64 / (i - start + 1) as f64,
                (Some(a), None) => a,
                (None, Some(b)) => b,
                (None, None) => 0.0,
            });
        }
    }
}

/// Why a token-capacity model cannot run on a trace.
pub const NO_TOKEN_COUNTS: &str = "capacity_unit = \"tokens\" needs a trace with token counts \
     (input_tokens / output_tokens columns)";

/// Scale the load so that its busiest scored step needs `peak_replicas`
/// replicas at the model's SLO utilization, in the model's capacity unit.
/// Returns the factor applied; `None` when the trace lacks that unit (token
/// counts for a token-capacity model).
pub fn scale_to_peak(
    load: &mut Load,
    model: &super::model::ServiceModel,
    peak_replicas: f64,
) -> Option<f64> {
    let peak = load
        .work(model.capacity_unit)?
        .iter()
        .zip(&load.scored)
        .filter(|(_, s)| **s)
        .map(|(a, _)| *a)
        .fold(0.0, f64::max);
    if peak <= 0.0 {
        return Some(1.0);
    }
    let factor = peak_replicas * model.slo_capacity_per_step() / peak;
    load.scale(factor);
    Some(factor)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write as _;

    fn file(name: &str, text: &str) -> (tempfile::TempDir, std::path::PathBuf) {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let path = dir.path().join(name);
        let mut f = std::fs::File::create(&path).unwrap_or_else(|e| panic!("{e}"));
        f.write_all(text.as_bytes())
            .unwrap_or_else(|e| panic!("{e}"));
        (dir, path)
    }

    #[test]
    fn per_request_arrivals_are_counted_per_step_with_tokens() {
        let (_d, p) = file(
            "r.csv",
            "arrival_s,timestamp,service,input_tokens,output_tokens\n\
             0.0,2023-11-16 18:15:46.68,conv,10,5\n0.5,x,code,1,1\n1.2,x,conv,3,0\n3.9,x,conv,1,1\n",
        );
        let l = load(&p, &TraceSpec::default(), 1000).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(l.arrivals, vec![2.0, 1.0, 0.0, 1.0]);
        assert_eq!(l.tokens, Some(vec![17.0, 3.0, 0.0, 2.0]));
        // Step 0 starts at the first arrival's timestamp.
        assert_eq!(l.start_ms, 1_700_158_546_680);
        let conv = TraceSpec {
            service: Some("conv".into()),
            ..TraceSpec::default()
        };
        let l = load(&p, &conv, 1000).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(l.arrivals, vec![1.0, 1.0, 0.0, 1.0]);
    }

    #[test]
    fn per_minute_counts_interpolate_and_gaps_are_not_scored() {
        let (_d, p) = file(
            "m.csv",
            "t_min,requests,observed\n0,60,1\n1,120,1\n2,0,0\n3,60,1\n",
        );
        let l = load(&p, &TraceSpec::default(), 30_000).unwrap_or_else(|e| panic!("{e}"));
        // Rates 1, 2, gap, 1 req/s at centres 30, 90, (150), 210 s; 30 s steps.
        assert_eq!(l.arrivals.len(), 8);
        assert_eq!(
            l.scored,
            vec![true, true, true, true, false, false, true, true]
        );
        let rate: Vec<f64> = l.arrivals.iter().map(|a| a / 30.0).collect();
        assert!((rate[0] - 1.0).abs() < 1e-9, "{rate:?}"); // before the first centre
        assert!((rate[1] - 1.25).abs() < 1e-9, "{rate:?}"); // 45 s: a quarter of the way to 2
        assert!((rate[2] - 1.75).abs() < 1e-9, "{rate:?}");
        assert!(
            (rate[3] - 2.0).abs() < 1e-9,
            "no interpolation toward a gap: {rate:?}"
        );
        // The gap is filled by interpolating between its edges (no day earlier).
        assert!(rate[4] > 0.0 && rate[5] > 0.0, "{rate:?}");
    }

    #[test]
    fn rate_traces_and_flags_and_clear_errors() {
        let (_d, p) = file(
            "w.csv",
            "window_start_s,request_rate_rps,all_clients_zero\n0,10,0\n600,20,0\n",
        );
        let l = load(&p, &TraceSpec::default(), 1000).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(l.arrivals.len(), 1200);
        assert!((l.arrivals[0] - 10.0).abs() < 1e-9);
        assert!((l.arrivals[1199] - 20.0).abs() < 1e-9);
        assert!(
            (l.arrivals[600] - 15.0 - 0.5 / 60.0).abs() < 1e-6,
            "{}",
            l.arrivals[600]
        );

        let bad = TraceSpec {
            rate_column: Some("rps_typo".into()),
            ..TraceSpec::default()
        };
        let e = load(&p, &bad, 1000).unwrap_err();
        assert!(e.message.contains("no rate column \"rps_typo\""), "{e}");
        assert!(
            e.message.contains("request_rate_rps"),
            "lists the columns: {e}"
        );

        let (_d2, q) = file("x.csv", "a,b\n1,2\n");
        let e = load(&q, &TraceSpec::default(), 1000).unwrap_err();
        assert!(e.message.contains("cannot tell the format"), "{e}");

        let (_d3, r) = file("n.csv", "t_min,requests\n0,5\n1,oops\n");
        let e = load(&r, &TraceSpec::default(), 1000).unwrap_err();
        assert!(e.message.contains("row 3"), "{e}");

        let (_d4, u) = file("u.csv", "t_min,requests\n0,5\n2,5\n1,5\n");
        let e = load(&u, &TraceSpec::default(), 1000).unwrap_err();
        assert!(
            e.message.contains("row 4") && e.message.contains("time order"),
            "{e}"
        );

        let (_d5, h) = file("h.csv", "arrival_s\n0\n1e9\n");
        let e = load(&h, &TraceSpec::default(), 1000).unwrap_err();
        assert!(e.message.contains("--step-seconds"), "{e}");

        let (_d6, neg) = file("neg.csv", "t_min,requests\n0,5\n1,-3\n");
        let e = load(&neg, &TraceSpec::default(), 1000).unwrap_err();
        assert!(e.message.contains(">= 0"), "{e}");
    }

    #[test]
    fn other_formats_by_name_and_date_times() {
        // Per-minute counts keyed by a date-time only (any case), and the
        // Azure dataset's own column names.
        let (_d, p) = file(
            "dt.csv",
            "Time,Hits\n2024-05-01 12:00,60\n2024-05-01 12:01,120\n2024-05-01 12:02,60\n",
        );
        let l = load(&p, &TraceSpec::default(), 1000).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(l.arrivals.len(), 180);
        assert_eq!(l.start_ms, 1_714_564_800_000);
        assert!((l.arrivals[90] - 2.0).abs() < 0.01, "{}", l.arrivals[90]);
        let (_d2, q) = file(
            "az.csv",
            "TIMESTAMP,ContextTokens,GeneratedTokens\n\
             2023-11-16 18:15:46.6805900,374,44\n2023-11-16 18:15:47.1,10,5\n2023-11-16 18:15:49.0,1,1\n",
        );
        let l = load(&q, &TraceSpec::default(), 1000).unwrap_or_else(|e| panic!("{e}"));
        // Steps sit on whole seconds: 46.68 | 47.1 | - | 49.0
        assert_eq!(l.arrivals, vec![1.0, 1.0, 0.0, 1.0]);
        assert_eq!(l.tokens, Some(vec![418.0, 15.0, 0.0, 2.0]));
        assert_eq!(l.start_ms, 1_700_158_546_000);
        let (_d3, r) = file("bad.csv", "time,requests\n0,1\nyesterday,2\n");
        let e = load(&r, &TraceSpec::default(), 1000).unwrap_err();
        assert!(
            e.message.contains("row 3") && e.message.contains("date-time"),
            "{e}"
        );
    }

    #[test]
    fn missing_rows_are_gaps() {
        // Minute 2 is absent: its steps are interpolated but not scored.
        let (_d, p) = file("m.csv", "t_min,requests\n0,60\n1,60\n3,60\n");
        let l = load(&p, &TraceSpec::default(), 30_000).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            l.scored,
            vec![true, true, true, true, false, false, true, true]
        );
    }

    #[test]
    fn scaling_to_a_peak() {
        let mut l = Load {
            step_ms: 1000,
            start_ms: 0,
            arrivals: vec![1.0, 4.0, 100.0],
            tokens: None,
            requests: None,
            scored: vec![true, true, false],
            description: String::new(),
        };
        // 8 req/s per replica at the SLO: 10 replicas are 80.
        let model = crate::sim::ServiceModel::default();
        assert_eq!(model.slo_capacity_per_step(), 8.0);
        let f = scale_to_peak(&mut l, &model, 10.0);
        assert_eq!(f, Some(20.0), "peak of scored steps is 4 -> 80");
        assert_eq!(l.arrivals, vec![20.0, 80.0, 2000.0]);
    }
}
