//! What `simulate` prints and draws: the table, the JSON, and the plot.
//! Everything here is a pure function of the report, so the same inputs and
//! seed give the same bytes.

use super::{ModelKind, PolicyRun, ServiceModel, SimReport};
use plotters::prelude::*;
use plotters::style::RGBColor;
use std::fmt::Write as _;
use std::path::Path;

/// The human table.
pub fn table(report: &SimReport) -> String {
    let m = &report.model;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "trace: {} ({}; {:.1} h simulated; load x{:.4})",
        report.trace, report.trace_description, report.simulated_hours, report.load_scale
    );
    let _ = writeln!(out, "model: {}, seed {}", model_line(m), report.seed);
    let _ = writeln!(out);
    let width = report
        .policies
        .iter()
        .map(|p| p.label.len())
        .chain(std::iter::once(6))
        .max()
        .unwrap_or(6);
    let requests = m.kind == ModelKind::Requests;
    let _ = write!(
        out,
        "{:<width$}  {:>8}  {:>8}  {:>10}  {:>10}  {:>9}  {:>8}  {:>7}  {:>5}  {:>8}  {:>9}",
        "policy",
        "SLO %",
        "viol min",
        "replica-h",
        "cost $",
        "vs oracle",
        "scalings",
        "dir chg",
        "flaps",
        if requests { "e2e p95" } else { "p95 ms" },
        "fuel/tick"
    );
    let _ = writeln!(
        out,
        "{}",
        if requests { "  TTFT p95   ITL p95" } else { "" }
    );
    for run in std::iter::once(&report.oracle).chain(&report.policies) {
        let _ = write!(out, "{}", row(run, width));
        let _ = match (run.score.ttft_p95_ms, run.score.itl_p95_ms) {
            (Some(ttft), Some(itl)) if requests => writeln!(out, "  {ttft:>8.0}  {itl:>8.1}"),
            _ => writeln!(out),
        };
    }
    out
}

/// The service model in one line: what a replica is, the SLO, prices, bounds.
fn model_line(m: &ServiceModel) -> String {
    let prices = format!(
        "cold start {} s, ${}/h on demand, ${}/h spot, replicas {}..{}",
        m.cold_start_seconds, m.on_demand_per_hour, m.spot_per_hour, m.min_replicas, m.max_replicas
    );
    if m.kind != ModelKind::Requests {
        return format!(
            "fluid, {} {} per replica, SLO p95 <= {} ms (utilization <= {:.2}), {prices}",
            m.capacity_per_replica,
            match m.capacity_unit {
                super::CapacityUnit::Requests => "req/s",
                super::CapacityUnit::Tokens => "tokens/s",
            },
            m.slo_p95_ms,
            m.slo_utilization()
        );
    }
    let slo: Vec<String> = [
        ("TTFT", m.slo_ttft_p95_ms),
        ("ITL", m.slo_itl_p95_ms),
        ("e2e", m.slo_e2e_p95_ms),
    ]
    .iter()
    .filter_map(|(name, v)| v.map(|v| format!("{name} p95 <= {v} ms")))
    .collect();
    format!(
        "requests, {} (batch <= {}, {} tokens per iteration, {:.0} tokens/s at full budget), \
         SLO each minute: {}, {prices}",
        m.engine.name,
        m.engine.max_batch,
        m.engine.token_budget,
        m.engine.tokens_per_second(),
        slo.join(", ")
    )
}

fn row(run: &PolicyRun, width: usize) -> String {
    let s = &run.score;
    format!(
        "{:<width$}  {:>8.3}  {:>8}  {:>10.1}  {:>10.2}  {:>8.3}x  {:>8}  {:>7}  {:>5}  {:>8.0}  {:>9}",
        run.label,
        s.slo_attainment_pct,
        s.violation_minutes,
        s.replica_hours,
        s.cost,
        s.cost_vs_oracle,
        s.scale_events,
        s.direction_changes,
        s.flaps,
        s.p95_latency_ms,
        if run.label == "oracle" {
            "-".to_owned()
        } else {
            format!("{:.0}", s.fuel_per_tick)
        }
    )
}

/// The machine form: the whole report, pretty-printed, keys in a fixed order.
pub fn json(report: &SimReport) -> String {
    serde_json::to_string_pretty(report).unwrap_or_else(|e| format!("{{\"error\": \"{e}\"}}"))
}

/// A plot that cannot be written.
#[derive(Debug, thiserror::Error)]
#[error("cannot write the plot {path}: {message}")]
pub struct PlotError {
    pub path: String,
    pub message: String,
}

const PANEL_HEIGHT: u32 = 320;
const WIDTH: u32 = 1400;

/// Draw the plot: one panel per policy (the oracle first): the load (as the
/// replicas it needs), ready replicas and billed replicas over time, with SLO
/// violations marked in red along the bottom. `.svg` or `.png` by extension.
pub fn plot(report: &SimReport, path: &Path) -> Result<(), PlotError> {
    let err = |message: String| PlotError {
        path: path.display().to_string(),
        message,
    };
    let runs: Vec<&PolicyRun> = std::iter::once(&report.oracle)
        .chain(&report.policies)
        .collect();
    let height = 62 + PANEL_HEIGHT * runs.len() as u32;
    let png = path
        .extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| e.eq_ignore_ascii_case("png"));
    // Text is measured (SVG) and drawn (PNG) with DejaVu Sans, embedded.
    register_font();
    if png {
        let root = BitMapBackend::new(path, (WIDTH, height)).into_drawing_area();
        draw(report, &runs, &root).map_err(|e| err(e.to_string()))?;
        root.present().map_err(|e| err(e.to_string()))
    } else {
        let root = SVGBackend::new(path, (WIDTH, height)).into_drawing_area();
        draw(report, &runs, &root).map_err(|e| err(e.to_string()))?;
        root.present().map_err(|e| err(e.to_string()))
    }
}

/// Plot text needs a font: DejaVu Sans, embedded in the binary, so no system
/// font library is involved.
fn register_font() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        if plotters::style::register_font("sans-serif", FontStyle::Normal, dejavu::sans::regular())
            .is_err()
        {
            tracing::warn!("cannot register the plot font; PNG text may be missing");
        }
    });
}

type DrawResult<T, DB> = Result<T, DrawingAreaErrorKind<<DB as DrawingBackend>::ErrorType>>;

fn draw<DB: DrawingBackend>(
    report: &SimReport,
    runs: &[&PolicyRun],
    root: &DrawingArea<DB, plotters::coord::Shift>,
) -> DrawResult<(), DB> {
    root.fill(&WHITE)?;
    let (title, body) = root.split_vertically(62);
    let load_color = RGBColor(150, 150, 150);
    let ready_color = RGBColor(31, 119, 180);
    let billed_color = RGBColor(255, 127, 14);
    let gap_color = RGBColor(225, 225, 225);
    let font = ("sans-serif", 16).into_font();
    title.draw(&Text::new(
        format!("{}: replicas over time", report.trace),
        (12, 12),
        font.clone(),
    ))?;
    // The legend, once, above the panels (inside one it covers the data).
    let mut x = 12;
    let legend: [(&str, RGBColor, bool); 5] = [
        ("load (replicas needed)", load_color, false),
        ("billed (ready + starting)", billed_color, true),
        ("ready", ready_color, false),
        ("SLO-violation minutes", RED, true),
        ("gap in the record", gap_color, true),
    ];
    let (metric, _) = plotted_metric(&report.model);
    let small = ("sans-serif", 13).into_font();
    for (label, color, block) in legend {
        if block {
            title.draw(&Rectangle::new([(x, 39), (x + 16, 49)], color.filled()))?;
        } else {
            title.draw(&PathElement::new(
                [(x, 44), (x + 18, 44)],
                color.stroke_width(3),
            ))?;
        }
        title.draw(&Text::new(label, (x + 22, 37), small.clone()))?;
        let (w, _) = title.estimate_text_size(label, &TextStyle::from(small.clone()))?;
        x += w as i32 + 40;
    }
    let latency_label = format!("below: worst minute's {metric} against the SLO (dashed)");
    title.draw(&PathElement::new(
        [(x, 44), (x + 18, 44)],
        RGBColor(148, 103, 189).stroke_width(3),
    ))?;
    title.draw(&Text::new(latency_label, (x + 22, 37), small.clone()))?;
    let panels = body.split_evenly((runs.len(), 1));
    let hours = report.simulated_hours.max(1e-9);
    // The time axis in minutes, hours or days, so its ticks fall on whole ones.
    let (div, suffix) = if hours >= 72.0 {
        (24.0, "d")
    } else if hours < 2.0 {
        (1.0 / 60.0, "min")
    } else {
        (1.0, "h")
    };
    let span = hours / div;
    let (metric, limit) = plotted_metric(&report.model);
    for (run, whole_panel) in runs.iter().zip(panels.iter()) {
        let (panel, latency_panel) = whole_panel.split_vertically(PANEL_HEIGHT * 68 / 100);
        let s = &run.score;
        let caption = format!(
            "{}: SLO {:.3} %, {} violation min, cost {:.3}x oracle, {} scalings",
            run.label, s.slo_attainment_pct, s.violation_minutes, s.cost_vs_oracle, s.scale_events
        );
        // Each panel its own scale: one policy at 100 must not flatten the rest.
        let top = run
            .series
            .iter()
            .map(|p| p.load.max(p.billed).max(p.ready))
            .fold(1.0, f64::max)
            * 1.1;
        let mut chart = ChartBuilder::on(&panel)
            .caption(caption, ("sans-serif", 15))
            .margin(8)
            .x_label_area_size(24)
            .y_label_area_size(44)
            .build_cartesian_2d(0.0..span, 0.0..top)?;
        let whole = |v: &f64| {
            if top >= 5.0 {
                format!("{v:.0}")
            } else {
                format!("{v:.1}")
            }
        };
        chart
            .configure_mesh()
            .y_desc("replicas")
            .x_labels(12)
            .y_labels(5)
            .y_label_formatter(&whole)
            .x_label_formatter(&|t: &f64| time_label(*t, suffix))
            .label_style(("sans-serif", 12))
            .light_line_style(RGBColor(235, 235, 235))
            .draw()?;
        let bucket = run
            .series
            .get(1)
            .map_or(hours, |p| p.hours - run.series[0].hours)
            / div;
        // Gaps first, under everything.
        chart.draw_series(run.series.iter().filter(|p| p.gap).map(|p| {
            Rectangle::new(
                [(p.hours / div, 0.0), (p.hours / div + bucket, top)],
                gap_color.filled(),
            )
        }))?;
        let series = |f: fn(&super::SeriesPoint) -> f64| {
            run.series
                .iter()
                .map(move |p| (p.hours / div, f(p)))
                .collect::<Vec<_>>()
        };
        chart.draw_series(LineSeries::new(
            series(|p| p.load),
            load_color.stroke_width(1),
        ))?;
        // Billed is never below ready: an orange area under the blue line
        // shows where replicas are paid for and not yet serving.
        chart.draw_series(
            AreaSeries::new(series(|p| p.billed), 0.0, billed_color.mix(0.3))
                .border_style(billed_color.stroke_width(1)),
        )?;
        chart.draw_series(LineSeries::new(
            series(|p| p.ready),
            ready_color.stroke_width(1),
        ))?;
        // A violation mark's height and shade grow with the share of the
        // bucket's minutes that missed: a few bad minutes in a long bucket
        // are a short pale tick, not a solid bar.
        chart.draw_series(run.series.iter().filter(|p| p.violation).map(|p| {
            let share = p.bad_share.clamp(0.0, 1.0);
            Rectangle::new(
                [
                    (p.hours / div, 0.0),
                    (p.hours / div + bucket, top * (0.015 + 0.06 * share)),
                ],
                RED.mix(0.35 + 0.65 * share).filled(),
            )
        }))?;
        draw_latency(run, &latency_panel, (span, div), bucket, metric, limit)?;
    }
    Ok(())
}

/// The SLO metric the latency panel shows, and its limit (ms).
fn plotted_metric(model: &ServiceModel) -> (&'static str, f64) {
    if model.kind == ModelKind::Requests {
        model
            .slo_limits()
            .plotted()
            .unwrap_or(("p95 latency", model.slo_p95_ms))
    } else {
        ("p95 latency", model.slo_p95_ms)
    }
}

/// Under each replica panel: the worst minute's SLO metric per bucket against
/// the SLO's line; values past 3x the limit are drawn at the top.
fn draw_latency<DB: DrawingBackend>(
    run: &PolicyRun,
    area: &DrawingArea<DB, plotters::coord::Shift>,
    (span, div): (f64, f64),
    bucket: f64,
    metric: &str,
    limit: f64,
) -> DrawResult<(), DB> {
    let top = limit * 3.0;
    let mut chart = ChartBuilder::on(area)
        .margin_left(8)
        .margin_right(8)
        .margin_bottom(4)
        .x_label_area_size(0)
        .y_label_area_size(44)
        .build_cartesian_2d(0.0..span, 0.0..top)?;
    let secs = limit >= 1000.0;
    let unit = move |v: &f64| {
        if secs {
            format!("{:.0} s", v / 1000.0)
        } else {
            format!("{v:.0}")
        }
    };
    chart
        .configure_mesh()
        .disable_x_mesh()
        .y_desc(format!("{metric}{}", if secs { "" } else { " ms" }))
        .y_labels(4)
        .y_label_formatter(&unit)
        .label_style(("sans-serif", 11))
        .light_line_style(RGBColor(240, 240, 240))
        .draw()?;
    let color = RGBColor(148, 103, 189);
    // One segment per run of buckets with a value (none: no requests).
    let mut segment: Vec<(f64, f64)> = Vec::new();
    let mut segments = Vec::new();
    for p in &run.series {
        match p.latency_ms {
            Some(v) => segment.push((p.hours / div + bucket / 2.0, v.min(top))),
            None if !segment.is_empty() => segments.push(std::mem::take(&mut segment)),
            None => {}
        }
    }
    segments.push(segment);
    for seg in segments.into_iter().filter(|s| !s.is_empty()) {
        chart.draw_series(LineSeries::new(seg, color.stroke_width(1)))?;
    }
    chart.draw_series(DashedLineSeries::new(
        [(0.0, limit), (span, limit)],
        6,
        4,
        RED.stroke_width(1),
    ))?;
    Ok(())
}

/// A time-axis label: whole units without a fraction.
fn time_label(t: f64, suffix: &str) -> String {
    if t.abs() < 1e-9 {
        "0".into()
    } else if (t - t.round()).abs() < 1e-6 {
        format!("{t:.0} {suffix}")
    } else {
        format!("{t:.1} {suffix}")
    }
}

/// SLO attainment targets of the frontier.
pub const FRONTIER_TARGETS: [f64; 3] = [99.0, 99.5, 99.9];

/// The cheapest run reaching each attainment target (the frontier of a sweep).
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct FrontierPoint {
    pub slo_target_pct: f64,
    /// The cheapest run at or above the target, if any reached it.
    pub label: Option<String>,
    pub cost_vs_oracle: Option<f64>,
    pub slo_attainment_pct: Option<f64>,
}

/// The frontier over the report's policies.
pub fn frontier(report: &SimReport) -> Vec<FrontierPoint> {
    FRONTIER_TARGETS
        .iter()
        .map(|&target| {
            let best = report
                .policies
                .iter()
                .filter(|r| r.score.slo_attainment_pct >= target)
                .min_by(|a, b| a.score.cost_vs_oracle.total_cmp(&b.score.cost_vs_oracle));
            FrontierPoint {
                slo_target_pct: target,
                label: best.map(|r| r.label.clone()),
                cost_vs_oracle: best.map(|r| r.score.cost_vs_oracle),
                slo_attainment_pct: best.map(|r| r.score.slo_attainment_pct),
            }
        })
        .collect()
}

/// The frontier in words.
pub fn frontier_text(report: &SimReport) -> String {
    let best_attainment = report
        .policies
        .iter()
        .map(|r| r.score.slo_attainment_pct)
        .fold(0.0, f64::max);
    let mut out = String::from("frontier (cheapest run at each SLO attainment):\n");
    for p in frontier(report) {
        let _ = match (&p.label, p.cost_vs_oracle) {
            (Some(label), Some(cost)) => writeln!(
                out,
                "  >= {:>5}%: {cost:.3}x oracle  ({label}, {:.3} %)",
                p.slo_target_pct,
                p.slo_attainment_pct.unwrap_or(0.0)
            ),
            _ => writeln!(
                out,
                "  >= {:>5}%: not reached (best {best_attainment:.3} %)",
                p.slo_target_pct
            ),
        };
    }
    out
}
