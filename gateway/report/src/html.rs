//! The AGP report as server-rendered HTML with inline SVG charts: no
//! script, printable, the same on the hub's page and the clinic's
//! dashboard. Values are shown in the patient's unit.

use maud::{Markup, html};

use crate::agp::{AgpReport, DayTrace};
use crate::metrics::{GlucoseMetrics, TimeInRanges};
use glyco_seal::reading::{GlucoseUnit, MGDL_PER_MMOLL};

/// The chart's top, mg/dL: higher values are drawn at the top edge.
const CHART_MAX_MG_DL: f64 = 350.0;
/// Points drawn per day in the daily traces (5-minute means).
const DAILY_STEP_MINUTES: u32 = 5;

/// `ms` as a local date and time to the minute ("2026-12-02 14:05").
pub fn local_time(time_zone: &jiff::tz::TimeZone, ms: i64) -> String {
    jiff::Timestamp::from_millisecond(ms)
        .map(|t| {
            t.to_zoned(time_zone.clone())
                .strftime("%Y-%m-%d %H:%M")
                .to_string()
        })
        .unwrap_or_default()
}

/// A glucose value in the unit, as text.
pub fn glucose(mg_dl: f64, unit: GlucoseUnit) -> String {
    match unit {
        GlucoseUnit::MgPerDl => format!("{mg_dl:.0}"),
        GlucoseUnit::MmolPerL => format!("{:.1}", mg_dl / MGDL_PER_MMOLL),
    }
}

fn limit(mg_dl: f64, unit: GlucoseUnit) -> String {
    // The consensus limits in mmol/L are 3.0, 3.9, 10.0 and 13.9.
    match unit {
        GlucoseUnit::MgPerDl => format!("{mg_dl:.0}"),
        GlucoseUnit::MmolPerL => format!("{:.1}", (mg_dl / MGDL_PER_MMOLL * 10.0).round() / 10.0),
    }
}

/// The whole report: figures, ranges, the profile and the daily traces.
pub fn report(report: &AgpReport, unit: GlucoseUnit, title: &str) -> Markup {
    html! {
        section.agp {
            h2 { (title) }
            p.period {
                (report.daily.first().map(|d| d.date.as_str()).unwrap_or(""))
                " – "
                (report.daily.last().map(|d| d.date.as_str()).unwrap_or(""))
                " (" (report.days) " days) · CGM active "
                strong { (format!("{:.1} %", report.cgm_active_percent)) }
                " · sensor every " (report.sensor_interval_minutes) " min"
            }
            @if !report.enough_data {
                p.notice role="status" {
                    "Not enough data: the CGM was active "
                    (format!("{:.0} %", report.cgm_active_percent))
                    " of the time; the consensus asks for 70 % of 14 days before these figures are relied on."
                }
            }
            @match &report.metrics {
                Some(metrics) => {
                    div.figures {
                        (figures(metrics, unit))
                        (ranges_bar(&metrics.ranges, unit))
                    }
                    h3 { "Ambulatory glucose profile" }
                    (profile_chart(report, unit))
                    h3 { "Daily glucose profiles" }
                    (daily_grid(&report.daily))
                }
                None => p.notice { "No CGM readings in this period." },
            }
        }
    }
}

fn figures(m: &GlucoseMetrics, unit: GlucoseUnit) -> Markup {
    html! {
        table.figures {
            tr { th { "Readings" } td { (m.readings) } }
            tr { th { "Mean glucose" } td { (glucose(m.mean_mg_dl, unit)) " " (unit.as_str()) } }
            tr { th { "GMI" } td { (format!("{:.1} %", m.gmi_percent)) } }
            tr { th { "Coefficient of variation" } td { (format!("{:.1} %", m.cv_percent)) " " small { "(target ≤ 36 %)" } } }
            tr { th { "Standard deviation" } td { (glucose(m.sd_mg_dl, unit)) " " (unit.as_str()) } }
        }
    }
}

/// Time in ranges as a stacked bar with the share of each range.
pub fn ranges_bar(r: &TimeInRanges, unit: GlucoseUnit) -> Markup {
    let u = unit.as_str();
    let rows = [
        (
            "very-high",
            format!("Very high > {} {u}", limit(250.0, unit)),
            r.very_high,
            "< 5 %",
        ),
        (
            "high",
            format!("High {}–{} {u}", limit(181.0, unit), limit(250.0, unit)),
            r.high,
            "< 25 %",
        ),
        (
            "in-range",
            format!("In range {}–{} {u}", limit(70.0, unit), limit(180.0, unit)),
            r.in_range,
            "> 70 %",
        ),
        (
            "low",
            format!("Low {}–{} {u}", limit(54.0, unit), limit(69.0, unit)),
            r.low,
            "< 4 %",
        ),
        (
            "very-low",
            format!("Very low < {} {u}", limit(54.0, unit)),
            r.very_low,
            "< 1 %",
        ),
    ];
    // Stacked from the top: very high first.
    let mut top = 0.0;
    let bars: Vec<(&str, f64, f64)> = rows
        .iter()
        .map(|(class, _, share, _)| {
            let bar = (*class, top, share * 2.0);
            top += share * 2.0;
            bar
        })
        .collect();
    html! {
        div.ranges {
            svg viewBox="0 0 40 200" width="40" height="200" role="img" aria-label="time in ranges" {
                @for (class, y, height) in &bars {
                    rect class=(format!("range {class}")) x="0" y=(format!("{y:.2}")) width="40" height=(format!("{height:.2}")) {}
                }
            }
            table.tir {
                @for (class, label, share, target) in &rows {
                    tr class=(class) {
                        th { (label) }
                        td.share { (format!("{share:.1} %")) }
                        td.target { "target " (target) }
                    }
                }
            }
        }
    }
}

fn y_of(mg_dl: f64) -> f64 {
    // Plot area: y 10 (top, CHART_MAX) to 270 (bottom, 0).
    270.0 - mg_dl.clamp(0.0, CHART_MAX_MG_DL) / CHART_MAX_MG_DL * 260.0
}

fn x_of(minute: f64) -> f64 {
    // Plot area: x 50 (00:00) to 690 (24:00), room for the last label.
    50.0 + minute / 1440.0 * 640.0
}

fn polyline(points: impl Iterator<Item = (f64, f64)>) -> String {
    points
        .map(|(x, y)| format!("{x:.1},{y:.1}"))
        .collect::<Vec<_>>()
        .join(" ")
}

/// The percentile bands by time of day over the target range.
pub fn profile_chart(report: &AgpReport, unit: GlucoseUnit) -> Markup {
    let bin = report
        .bands
        .windows(2)
        .map(|w| w[1].minute - w[0].minute)
        .min()
        .unwrap_or(15) as f64;
    let centre = |minute: u32| x_of(minute as f64 + bin / 2.0);
    let band = |low: fn(&crate::agp::Band) -> f64, high: fn(&crate::agp::Band) -> f64| {
        let up = report
            .bands
            .iter()
            .map(|b| (centre(b.minute), y_of(high(b))));
        let down = report
            .bands
            .iter()
            .rev()
            .map(|b| (centre(b.minute), y_of(low(b))));
        polyline(up.chain(down))
    };
    let outer = band(|b| b.p5, |b| b.p95);
    let inner = band(|b| b.p25, |b| b.p75);
    let median = polyline(report.bands.iter().map(|b| (centre(b.minute), y_of(b.p50))));
    html! {
        svg.profile viewBox="0 0 720 300" role="img" aria-label="ambulatory glucose profile" {
            rect.target x="50" y=(format!("{:.1}", y_of(180.0))) width="640" height=(format!("{:.1}", y_of(70.0) - y_of(180.0))) {}
            @for limit_mg_dl in [54.0, 70.0, 180.0, 250.0] {
                line.limit x1="50" x2="690" y1=(format!("{:.1}", y_of(limit_mg_dl))) y2=(format!("{:.1}", y_of(limit_mg_dl))) {}
                text.axis x="44" y=(format!("{:.1}", y_of(limit_mg_dl) + 4.0)) text-anchor="end" { (limit(limit_mg_dl, unit)) }
            }
            @for hour in (0..=24).step_by(3) {
                line.hour x1=(format!("{:.1}", x_of(hour as f64 * 60.0))) x2=(format!("{:.1}", x_of(hour as f64 * 60.0))) y1="10" y2="270" {}
                text.axis x=(format!("{:.1}", x_of(hour as f64 * 60.0))) y="288" text-anchor="middle" { (format!("{:02}:00", hour % 24)) }
            }
            @if !report.bands.is_empty() {
                polygon.p5-95 points=(outer) {}
                polygon.p25-75 points=(inner) {}
                polyline.median points=(median) {}
            }
            text.axis x="4" y="14" { (unit.as_str()) }
        }
        p.legend {
            span.key.p5-95 {} " 5–95 %  " span.key.p25-75 {} " 25–75 %  " span.key.median {} " median  " span.key.target {} " target range"
        }
    }
}

/// One small chart per day, a week per row.
pub fn daily_grid(days: &[DayTrace]) -> Markup {
    html! {
        div.daily {
            @for day in days {
                figure.day {
                    svg viewBox="0 0 144 80" role="img" aria-label=(format!("glucose on {}", day.date)) {
                        rect.target x="0" y=(format!("{:.1}", day_y(180.0))) width="144" height=(format!("{:.1}", day_y(70.0) - day_y(180.0))) {}
                        @if !day.points.is_empty() {
                            polyline.trace points=(polyline(day_steps(day).into_iter().map(|(m, g)| (m as f64 / 10.0, day_y(g))))) {}
                        }
                    }
                    figcaption {
                        (day.date.get(5..).unwrap_or(&day.date))
                        @if let Some(m) = &day.metrics {
                            " · " (format!("{:.0} %", m.ranges.in_range)) " in range"
                        } @else {
                            " · no data"
                        }
                    }
                }
            }
        }
    }
}

fn day_y(mg_dl: f64) -> f64 {
    78.0 - mg_dl.clamp(0.0, CHART_MAX_MG_DL) / CHART_MAX_MG_DL * 76.0
}

/// A day's points as 5-minute means, so a 1-minute CGM stays light to send.
fn day_steps(day: &DayTrace) -> Vec<(u32, f64)> {
    let mut out: Vec<(u32, f64, usize)> = Vec::new();
    for &(minute, mg_dl) in &day.points {
        let step = minute / DAILY_STEP_MINUTES * DAILY_STEP_MINUTES;
        match out.last_mut() {
            Some((at, sum, n)) if *at == step => {
                *sum += mg_dl;
                *n += 1;
            }
            _ => out.push((step, mg_dl, 1)),
        }
    }
    out.into_iter()
        .map(|(step, sum, n)| (step, sum / n as f64))
        .collect()
}

/// The report's stylesheet (screen and print).
pub const STYLE: &str = r#"
.agp h2{margin-bottom:.2em}.agp .period{color:#444}
.notice{background:#fff4d6;border-left:4px solid #e0a800;padding:.5em .8em}
.figures{display:flex;flex-wrap:wrap;gap:2em;align-items:flex-start}
table.figures th,table.tir th{text-align:left;font-weight:normal;padding-right:1em}
table.figures td{font-weight:bold}
.ranges{display:flex;gap:1em;align-items:center}
.range.very-high,.key.very-high{fill:#e67e22}.range.high{fill:#f6c343}.range.in-range{fill:#2e9e5b}
.range.low{fill:#e05545}.range.very-low{fill:#8b1a10}
table.tir td.share{font-weight:bold;text-align:right;padding-right:1em}table.tir td.target{color:#666}
svg.profile{width:100%;max-width:900px;height:auto;font:11px sans-serif}
.target{fill:#e3f4e8}.limit{stroke:#9bb;stroke-width:.6}.hour{stroke:#eee;stroke-width:.6}
.p5-95{fill:#c9dcf2}.p25-75{fill:#6f9bd1}.median{fill:none;stroke:#123a6b;stroke-width:2}
.axis{fill:#555;font-size:11px}
.legend .key{display:inline-block;width:1.2em;height:.7em;vertical-align:middle}
.legend .key.p5-95{background:#c9dcf2}.legend .key.p25-75{background:#6f9bd1}
.legend .key.median{background:#123a6b;height:.2em}.legend .key.target{background:#e3f4e8}
.daily{display:grid;grid-template-columns:repeat(7,1fr);gap:.4em}
.day{margin:0}.day svg{width:100%;height:auto;border:1px solid #ddd}
.day .trace{fill:none;stroke:#123a6b;stroke-width:.8}.day figcaption{font-size:.75em;color:#444}
@media print{nav,form,.no-print{display:none}body{margin:0}.agp{page-break-inside:avoid}}
"#;
