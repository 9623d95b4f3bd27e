//! `playbook`: named forensic queries shipped with the tool. Each is a `.sql` file under
//! `src/playbook/`, whose leading `--` lines are its documentation.
use crate::format::Format;
use fantrace_engine::capture::CaptureArgs;
use fantrace_engine::session::{self, SessionOptions};

/// (name, SQL with its doc comment).
pub const PLAYBOOK: &[(&str, &str)] = &[
    (
        "permission-marks",
        include_str!("../playbook/permission-marks.sql"),
    ),
    (
        "permission-groups",
        include_str!("../playbook/permission-groups.sql"),
    ),
    ("wide-marks", include_str!("../playbook/wide-marks.sql")),
    (
        "sensitive-paths",
        include_str!("../playbook/sensitive-paths.sql"),
    ),
    ("failed-marks", include_str!("../playbook/failed-marks.sql")),
    (
        "marks-by-process",
        include_str!("../playbook/marks-by-process.sql"),
    ),
    (
        "brief-watchers",
        include_str!("../playbook/brief-watchers.sql"),
    ),
];

#[derive(clap::Args, Debug)]
pub struct PlaybookArgs {
    /// The query to run; omit to list them all with their documentation.
    pub name: Option<String>,
    /// Capture directory, segment file or glob (repeatable); needed to run a query.
    #[arg(long = "capture", short = 'c')]
    pub captures: Vec<std::path::PathBuf>,
    /// Read what can be read and report unreadable segments.
    #[arg(long)]
    pub skip_bad: bool,
    /// Check every segment's data against its seal first (see `query --verify-data`).
    #[arg(long)]
    pub verify_data: bool,
    /// The S3-compatible server for s3:// captures (see `query --endpoint`).
    #[arg(long, value_name = "URL")]
    pub endpoint: Option<String>,
    #[arg(long, value_enum, default_value_t = Format::Table)]
    pub format: Format,
    /// In table output, cut text cells to this many characters (0: never).
    #[arg(long, default_value_t = 64)]
    pub max_width: usize,
    #[command(flatten)]
    pub output: crate::output::OutputArgs,
}

/// A query's documentation: its leading `--` lines as one paragraph.
pub fn doc(sql: &str) -> String {
    sql.lines()
        .take_while(|l| l.starts_with("--"))
        .map(|l| l.trim_start_matches("--").trim())
        .collect::<Vec<_>>()
        .join(" ")
}

pub async fn run(args: PlaybookArgs, opts: SessionOptions) -> anyhow::Result<()> {
    let Some(name) = &args.name else {
        for (name, sql) in PLAYBOOK {
            println!("{name}\n    {}\n", doc(sql));
        }
        return Ok(());
    };
    let (_, sql) = PLAYBOOK.iter().find(|(n, _)| n == name).ok_or_else(|| {
        let names: Vec<&str> = PLAYBOOK.iter().map(|(n, _)| *n).collect();
        anyhow::anyhow!(
            "no playbook query {name:?}; there are: {}",
            names.join(", ")
        )
    })?;
    if args.captures.is_empty() {
        anyhow::bail!("playbook {name} needs --capture DIR");
    }
    let captures = CaptureArgs {
        captures: args.captures.clone(),
        skip_bad: args.skip_bad,
        verify_data: args.verify_data,
        endpoint: args.endpoint.clone(),
        window: None,
    };
    let (loaded, ctx) = session::open_captures(&captures, &opts).await?;
    super::query::deliver(
        &ctx,
        sql,
        args.format,
        args.max_width,
        &args.output,
        &loaded.segments,
    )
    .await
}

#[cfg(test)]
mod tests {
    #[test]
    fn every_playbook_query_is_documented() {
        for (name, sql) in super::PLAYBOOK {
            assert!(super::doc(sql).len() > 20, "{name} lacks a doc comment");
        }
    }
}
