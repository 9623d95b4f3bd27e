//! The report page: the summary, the timeline's SVG and its legend, and tables for the marks
//! and findings. Every value is escaped; the only markup not written here is plotters' SVG.
use arrow::array::RecordBatch;
use arrow::util::display::{ArrayFormatter, FormatOptions};
use html_escape::encode_text as esc;
use plotters::style::RGBColor;

use super::gather::{MAX_LANES, MAX_ROWS, Report};
use super::timeline;
use fantrace_engine::capture::CaptureError;

const STYLE: &str = "
body { font-family: sans-serif; margin: 1.5em; color: #222; }
h1 { font-size: 1.5em; margin-bottom: 0.2em; }
h2 { font-size: 1.2em; margin-top: 1.6em; border-bottom: 1px solid #ccc; }
h3 { font-size: 1em; margin-bottom: 0.2em; }
table { border-collapse: collapse; font-size: 0.85em; margin: 0.4em 0; }
th, td { border: 1px solid #ddd; padding: 2px 6px; text-align: left; vertical-align: top; }
th { background: #f3f3f3; }
td { white-space: nowrap; }
td:last-child { white-space: normal; min-width: 24em; }
tr.perm td { background: #fbe3e7; }
tr.wide td { background: #fdf0e0; }
tr.unknown td { background: #eeeeee; font-style: italic; }
dl.summary { display: grid; grid-template-columns: max-content auto; gap: 2px 1em; }
dl.summary dt { font-weight: bold; }
dl.summary dd { margin: 0; }
.legend span.box { display: inline-block; width: 0.9em; height: 0.9em; margin: 0 0.3em 0 1em;
                   vertical-align: middle; }
.note { color: #555; font-size: 0.9em; }
.warn { color: #a00; }
p.doc { color: #444; font-size: 0.9em; margin-top: 0; }
";

fn hex(c: RGBColor) -> String {
    format!("#{:02x}{:02x}{:02x}", c.0, c.1, c.2)
}

fn time(ns: i64) -> String {
    chrono::DateTime::from_timestamp_nanos(ns)
        .format("%Y-%m-%d %H:%M:%S%.3f UTC")
        .to_string()
}

fn duration(ns: i64) -> String {
    let s = ns / 1_000_000_000;
    match s {
        0 if ns < 1_000_000 => format!("{} µs", ns / 1_000),
        0 => format!("{} ms", ns / 1_000_000),
        1..60 => format!("{:.1} s", ns as f64 / 1e9),
        60..3_600 => format!("{} min {} s", s / 60, s % 60),
        3_600..86_400 => format!("{} h {} min", s / 3_600, s / 60 % 60),
        _ => format!("{} d {} h", s / 86_400, s / 3_600 % 24),
    }
}

/// A table of `batches`; `row_class` picks a CSS class per row from its cells by column name.
fn table(
    batches: &[RecordBatch],
    id: &str,
    row_class: impl Fn(&dyn Fn(&str) -> String) -> &'static str,
) -> anyhow::Result<String> {
    let Some(first) = batches.first() else {
        return Ok(String::new());
    };
    let schema = first.schema();
    let mut out = format!("<table id=\"{id}\"><thead><tr>");
    for f in schema.fields() {
        out.push_str(&format!("<th>{}</th>", esc(f.name())));
    }
    out.push_str("</tr></thead><tbody>\n");
    let options = FormatOptions::default().with_null("");
    for batch in batches {
        let formatters: Vec<ArrayFormatter> = batch
            .columns()
            .iter()
            .map(|c| ArrayFormatter::try_new(c.as_ref(), &options))
            .collect::<Result<_, _>>()?;
        for row in 0..batch.num_rows() {
            let cell = |name: &str| -> String {
                schema
                    .index_of(name)
                    .map(|i| formatters[i].value(row).to_string())
                    .unwrap_or_default()
            };
            let class = row_class(&cell);
            if class.is_empty() {
                out.push_str("<tr>");
            } else {
                out.push_str(&format!("<tr class=\"{class}\">"));
            }
            for f in &formatters {
                out.push_str(&format!(
                    "<td>{}</td>",
                    esc(&shorten(f.value(row).to_string()))
                ));
            }
            out.push_str("</tr>\n");
        }
    }
    out.push_str("</tbody></table>");
    Ok(out)
}

/// Cell text past this many characters is cut (with "…"): a 4,000-byte path would make a
/// table unreadable; the query gives it whole.
const MAX_CELL: usize = 160;

fn shorten(text: String) -> String {
    if text.chars().count() <= MAX_CELL {
        return text;
    }
    let mut cut: String = text.chars().take(MAX_CELL).collect();
    cut.push('…');
    cut
}

fn more(shown_of: usize, what: &str, how: &str) -> String {
    if shown_of > MAX_ROWS {
        format!(
            "<p class=\"note\">The first {MAX_ROWS} {what} are shown; there are more. {}</p>",
            esc(how)
        )
    } else {
        String::new()
    }
}

pub fn render(
    report: &Report,
    svg: &str,
    sources: &[String],
    unreadable: &[CaptureError],
) -> anyhow::Result<String> {
    let s = &report.summary;
    let mut html = String::with_capacity(svg.len() + 64 * 1024);
    html.push_str(&format!(
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <title>fantrace report: {}</title><style>{STYLE}</style></head><body>\n",
        esc(&s.hosts.join(", "))
    ));
    html.push_str(&format!(
        "<h1>fanotify activity on {}</h1><p class=\"note\">fantrace-analyzer {} report of {}</p>\n",
        esc(&s.hosts.join(", ")),
        env!("CARGO_PKG_VERSION"),
        esc(&sources.join(", "))
    ));

    // Summary.
    let lost = if s.lost == 0 {
        "none".to_string()
    } else {
        let causes: Vec<String> = s
            .lost_by_cause
            .iter()
            .map(|(c, n)| format!("{n} {c}"))
            .collect();
        format!("{} calls ({})", s.lost, causes.join(", "))
    };
    let gaps = report.shades.iter().filter(|g| g.lost == 0).count();
    let gap_ns: i64 = report
        .shades
        .iter()
        .filter(|g| g.lost == 0)
        .map(|g| g.end_ns - g.start_ns)
        .sum();
    let items = [
        ("Hosts", s.hosts.join(", ")),
        ("Kernels", s.kernels.join(", ")),
        ("Attached with", s.attach.join(", ")),
        ("Segments", s.segments.to_string()),
        (
            "Time span",
            format!(
                "{} to {} ({})",
                time(s.start_ns),
                time(s.end_ns),
                duration(s.end_ns - s.start_ns)
            ),
        ),
        (
            "Calls",
            format!(
                "{} fanotify_mark ({} failed, {} with permission events, {} mount/filesystem), \
                 {} fanotify_init, {} group owner exits",
                s.marks, s.failed, s.permission, s.wide, s.inits, s.exits
            ),
        ),
        ("Lost", lost),
        (
            "Recording gaps",
            if gaps == 0 {
                "none".to_string()
            } else {
                format!("{gaps} ({} in all)", duration(gap_ns))
            },
        ),
    ];
    html.push_str("<h2>Capture</h2><dl class=\"summary\" id=\"summary\">");
    for (k, v) in items {
        let class = if (k == "Lost" || k == "Recording gaps") && v != "none" {
            " class=\"warn\""
        } else {
            ""
        };
        html.push_str(&format!("<dt>{k}</dt><dd{class}>{}</dd>", esc(&v)));
    }
    html.push_str("</dl>\n");
    if !unreadable.is_empty() {
        html.push_str(&format!(
            "<p class=\"warn\">{} input(s) could not be read and are not in this report:</p><ul>",
            unreadable.len()
        ));
        for bad in unreadable {
            html.push_str(&format!("<li>{}</li>", esc(&bad.to_string())));
        }
        html.push_str("</ul>");
    }

    // Timeline.
    html.push_str("<h2>Timeline</h2><div class=\"legend\">");
    for (color, what) in [
        (timeline::PERMISSION, "marks with permission events"),
        (timeline::WIDE, "mount / filesystem marks"),
        (timeline::OTHER, "other calls"),
        (timeline::FAILED, "failed calls (bar at the bottom)"),
        (timeline::INIT, "fanotify_init"),
        (timeline::EXIT, "group owner exit"),
        (timeline::GAP, "not recorded"),
        (timeline::LOSS, "calls lost"),
    ] {
        html.push_str(&format!(
            "<span class=\"box\" style=\"background:{}\"></span>{what}",
            hex(color)
        ));
    }
    html.push_str("</div>\n<div id=\"timeline\">");
    html.push_str(svg);
    html.push_str("</div>\n");
    html.push_str(&format!(
        "<p class=\"note\">One lane per process (at most {MAX_LANES}: those with permission-event \
         marks first, then mount/filesystem marks, then the busiest); each box is {} of calls, \
         darker for more.",
        esc(&duration(report.bucket_ns))
    ));
    if report.other_processes > 0 {
        html.push_str(&format!(
            " <span class=\"warn\" id=\"lanes-left-out\">{} more process(es) with {} call(s) \
             are not drawn</span>; query them with <code>fantrace-analyzer query</code>.",
            report.other_processes, report.other_calls
        ));
    }
    html.push_str("</p>\n");

    // Marks in force at the end.
    html.push_str(&format!(
        "<h2>Marks in force at the end ({})</h2>",
        esc(&time(s.end_ns))
    ));
    match &report.marks_at_end {
        Ok((_, 0)) => html.push_str("<p id=\"marks-at-end-none\">No mark was in force.</p>"),
        Ok((rows, count)) => {
            html.push_str(&table(rows, "marks-at-end", |cell| {
                mark_row_class(&cell("state"), &cell("class"), &cell("mark_type"))
            })?);
            html.push_str(&more(
                *count,
                "marks",
                "Query them with SELECT * FROM marks_at('...').",
            ));
        }
        Err(why) => html.push_str(&left_out(
            "marks-at-end-left-out",
            why,
            &format!(
                "fantrace-analyzer query -c ... \"SELECT * FROM marks_at('{}')\"",
                report.end_at
            ),
        )),
    }
    html.push_str(
        "<p class=\"note\">As the kernel had them: each group's marks as the probe read them \
         after every call and the recorder read them from fdinfo (at start and every second), \
         one row per group and object; <i>holders</i> are the pid:fd pairs that held the group, \
         <i>path</i> where the object is. <i>unknown</i> rows stand for what no source could \
         read, with the reason. Captures made before schema version 6 show the calls as given \
         instead.</p>\n",
    );

    // Findings.
    html.push_str("<h2>Playbook findings</h2><div id=\"findings\">");
    let mut without = Vec::new();
    for f in &report.findings {
        let (rows, count) = match &f.rows {
            Ok((_, 0)) => {
                without.push(f.name);
                continue;
            }
            Ok((rows, count)) => (rows, *count),
            Err(why) => {
                html.push_str(&format!(
                    "<section class=\"finding\" data-name=\"{}\"><h3>{}</h3>{}</section>\n",
                    esc(f.name),
                    esc(f.name),
                    left_out(
                        &format!("finding-{}-left-out", f.name),
                        why,
                        &format!("fantrace-analyzer playbook {} -c ...", f.name)
                    )
                ));
                continue;
            }
        };
        html.push_str(&format!(
            "<section class=\"finding\" data-name=\"{}\"><h3>{} ({}{} row(s))</h3><p class=\"doc\">{}</p>",
            esc(f.name),
            esc(f.name),
            if count > MAX_ROWS { "more than " } else { "" },
            count.min(MAX_ROWS),
            esc(&f.doc)
        ));
        html.push_str(&table(rows, &format!("finding-{}", f.name), |cell| {
            mark_row_class("", &cell("class"), "")
        })?);
        html.push_str(&more(
            count,
            "rows",
            &format!(
                "fantrace-analyzer playbook {} -c ... lists them all.",
                f.name
            ),
        ));
        html.push_str("</section>\n");
    }
    if !without.is_empty() {
        html.push_str(&format!(
            "<p class=\"note\" id=\"findings-empty\">No rows: {}.</p>",
            esc(&without.join(", "))
        ));
    }
    html.push_str("</div></body></html>\n");
    Ok(html)
}

/// A table the report could not include: why, and the command that gets it.
fn left_out(id: &str, why: &str, command: &str) -> String {
    format!(
        "<p class=\"warn\" id=\"{}\">Left out of this report: {}. Get it with <code>{}</code>.</p>",
        esc(id),
        esc(why),
        esc(command)
    )
}

fn mark_row_class(state: &str, class: &str, mark_type: &str) -> &'static str {
    if state == "unknown" {
        "unknown"
    } else if class == "content" || class == "pre_content" {
        "perm"
    } else if matches!(mark_type, "mount" | "filesystem" | "mntns") {
        "wide"
    } else {
        ""
    }
}
