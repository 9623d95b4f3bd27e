//! The timeline: one swimlane per process, a box per time bucket holding calls, coloured by
//! what the calls were (permission-event marks, wide marks, others), with failed calls,
//! `fanotify_init` and owner exits marked, and the recording's gaps and losses shaded across
//! every lane. Drawn with plotters' SVG backend.
use plotters::coord::ranged1d::SegmentValue;
use plotters::prelude::*;

use super::gather::{Report, seconds};

pub const PERMISSION: RGBColor = RGBColor(200, 30, 60);
pub const WIDE: RGBColor = RGBColor(230, 140, 40);
pub const OTHER: RGBColor = RGBColor(70, 120, 180);
pub const FAILED: RGBColor = RGBColor(40, 40, 40);
pub const INIT: RGBColor = RGBColor(30, 150, 70);
pub const EXIT: RGBColor = RGBColor(120, 60, 160);
pub const GAP: RGBColor = RGBColor(150, 150, 150);
pub const LOSS: RGBColor = RGBColor(240, 80, 80);

const WIDTH: u32 = 1200;
const LANE_PX: u32 = 24;

/// The clock (UTC) of a point `s` seconds after `start_ns`, as precise as a span of `span`
/// seconds needs: milliseconds below a minute, the date above a day.
fn clock(start_ns: i64, s: f64, span: f64) -> String {
    let ns = start_ns.saturating_add((s * 1e9) as i64);
    let t = chrono::DateTime::from_timestamp_nanos(ns);
    let format = match span {
        ..60.0 => "%H:%M:%S%.3f",
        ..86_400.0 => "%H:%M:%S",
        _ => "%m-%d %H:%M",
    };
    t.format(format).to_string()
}

fn lane_label(report: &Report, lane: usize) -> String {
    let Some(l) = report.lanes.get(lane) else {
        return String::new();
    };
    let host = if report.summary.hosts.len() > 1 {
        format!("{}: ", l.host)
    } else {
        String::new()
    };
    let mut comm: String = l.comm.chars().take(16).collect();
    if l.permission > 0 {
        comm.push_str(" (perm)");
    } else if l.wide > 0 {
        comm.push_str(" (wide)");
    }
    format!("{host}{comm} [{}]", l.pid)
}

/// The timeline as an SVG document.
pub fn draw(report: &Report) -> anyhow::Result<String> {
    let lanes = report.lanes.len().max(1) as i32;
    let height = 70 + LANE_PX * lanes as u32;
    let s = &report.summary;
    let span = seconds(s.end_ns, s.start_ns).max(1e-3);
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (WIDTH, height)).into_drawing_area();
        root.fill(&WHITE).map_err(plot_error)?;
        let mut chart = ChartBuilder::on(&root)
            .margin(8)
            .x_label_area_size(28)
            .y_label_area_size(230)
            .build_cartesian_2d(0f64..span, (0..lanes).into_segmented())
            .map_err(plot_error)?;
        chart
            .configure_mesh()
            .disable_y_mesh()
            .light_line_style(WHITE)
            .x_labels(8)
            .x_label_formatter(&|x| clock(s.start_ns, *x, span))
            .y_labels(lanes as usize)
            .y_label_formatter(&|y| match y {
                // The first lane at the top.
                SegmentValue::CenterOf(i) => lane_label(report, (lanes - 1 - *i) as usize),
                _ => String::new(),
            })
            .label_style(("sans-serif", 14))
            .draw()
            .map_err(plot_error)?;
        let row = |lane: usize| lanes - 1 - lane as i32;
        let x = |ns: i64| seconds(ns, s.start_ns).clamp(0.0, span);
        // Gaps and losses first, under the calls.
        chart
            .draw_series(report.shades.iter().map(|sh| {
                let color = if sh.lost > 0 { LOSS } else { GAP };
                Rectangle::new(
                    [
                        (x(sh.start_ns), SegmentValue::Exact(0)),
                        (x(sh.end_ns), SegmentValue::Exact(lanes)),
                    ],
                    color.mix(0.25).filled(),
                )
            }))
            .map_err(plot_error)?;
        let bucket_s = report.bucket_ns as f64 / 1e9;
        let busiest = report
            .cells
            .iter()
            .map(|c| c.calls)
            .max()
            .unwrap_or(1)
            .max(1) as f64;
        chart
            .draw_series(
                report
                    .cells
                    .iter()
                    .filter(|c| c.calls > c.inits + c.exits)
                    .map(|c| {
                        let color = if c.permission > 0 {
                            PERMISSION
                        } else if c.wide > 0 {
                            WIDE
                        } else {
                            OTHER
                        };
                        // Busier buckets darker: a storm stands out from a single call.
                        let shade = 0.35 + 0.65 * ((c.calls as f64).ln_1p() / busiest.ln_1p());
                        let x0 = c.bucket as f64 * bucket_s;
                        Rectangle::new(
                            [
                                (x0, SegmentValue::Exact(row(c.lane))),
                                (
                                    (x0 + bucket_s).min(span),
                                    SegmentValue::Exact(row(c.lane) + 1),
                                ),
                            ],
                            color.mix(shade).filled(),
                        )
                    }),
            )
            .map_err(plot_error)?;
        // Failed calls: a dark bar along the bottom of the bucket.
        chart
            .draw_series(report.cells.iter().filter(|c| c.failed > 0).map(|c| {
                let x0 = c.bucket as f64 * bucket_s;
                Rectangle::new(
                    [
                        (x0, SegmentValue::Exact(row(c.lane))),
                        (
                            (x0 + bucket_s).min(span),
                            SegmentValue::CenterOf(row(c.lane)),
                        ),
                    ],
                    FAILED.mix(0.8).filled(),
                )
            }))
            .map_err(plot_error)?;
        // Group creations and owner exits: dots at the lane's centre.
        for (color, count) in [
            (
                INIT,
                (|c: &super::gather::Cell| c.inits) as fn(&super::gather::Cell) -> i64,
            ),
            (EXIT, |c: &super::gather::Cell| c.exits),
        ] {
            chart
                .draw_series(report.cells.iter().filter(|c| count(c) > 0).map(|c| {
                    let xc = (c.bucket as f64 + 0.5) * bucket_s;
                    Circle::new(
                        (xc.min(span), SegmentValue::CenterOf(row(c.lane))),
                        4,
                        color.filled(),
                    )
                }))
                .map_err(plot_error)?;
        }
        root.present().map_err(plot_error)?;
    }
    Ok(svg)
}

fn plot_error<E: std::fmt::Display>(e: E) -> anyhow::Error {
    anyhow::anyhow!("drawing the timeline: {e}")
}
