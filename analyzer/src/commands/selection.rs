//! Which calls a command takes: `--pid`, `--comm`, `--since`, `--until` and `--where`, turned
//! into one SQL condition for DataFusion to push down. Shared by `replay` and `export`.
use anyhow::Context as _;
use datafusion::prelude::SessionContext;

use fantrace_engine::timespec;

#[derive(clap::Args, Debug, Clone, Default)]
pub struct Selection {
    /// Only this process id (repeatable).
    #[arg(long)]
    pub pid: Vec<u32>,
    /// Only this thread name (repeatable).
    #[arg(long)]
    pub comm: Vec<String>,
    /// Only calls at or after this time: RFC 3339, a date, or a span back from now (90s, 15m,
    /// 1h, 2d, 1w).
    #[arg(long)]
    pub since: Option<String>,
    /// Only calls before this time (same forms).
    #[arg(long)]
    pub until: Option<String>,
    /// Only rows matching this SQL condition over the columns of `calls`.
    #[arg(long = "where")]
    pub condition: Option<String>,
}

/// The selection as SQL, and the time window it names (ns), resolved against one `now`.
pub struct Resolved {
    /// ` WHERE ...`, or empty.
    pub clause: String,
    pub since: Option<i64>,
    pub until: Option<i64>,
}

fn sql_string(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

impl Selection {
    /// The window `--since`/`--until` name (see `CaptureArgs::window`), against `now`.
    pub fn window(&self, now: chrono::DateTime<chrono::Utc>) -> anyhow::Result<Option<(i64, i64)>> {
        timespec::window(self.since.as_deref(), self.until.as_deref(), now)
            .map_err(anyhow::Error::msg)
    }

    /// The selection as SQL; `now` is the one [`Selection::window`] was resolved against.
    pub async fn resolve(
        &self,
        ctx: &SessionContext,
        now: chrono::DateTime<chrono::Utc>,
    ) -> anyhow::Result<Resolved> {
        let time = |t: &Option<String>| -> anyhow::Result<Option<i64>> {
            t.as_deref()
                .map(|t| timespec::parse(t, now).map_err(anyhow::Error::msg))
                .transpose()
        };
        let (since, until) = (time(&self.since)?, time(&self.until)?);
        let mut conds = Vec::new();
        if !self.pid.is_empty() {
            let pids: Vec<String> = self.pid.iter().map(u32::to_string).collect();
            conds.push(format!("pid IN ({})", pids.join(", ")));
        }
        if !self.comm.is_empty() {
            let comms: Vec<String> = self.comm.iter().map(|c| sql_string(c)).collect();
            conds.push(format!("comm IN ({})", comms.join(", ")));
        }
        if let Some(s) = since {
            conds.push(format!("time >= {}", timespec::sql_literal(s)));
        }
        if let Some(u) = until {
            conds.push(format!("time < {}", timespec::sql_literal(u)));
        }
        if let Some(c) = &self.condition {
            // Parsed on its own first: text that is not one expression (`1=1) OR (1=1`) must
            // not reach the statement it is pasted into, where it could undo the other filters.
            let schema = ctx.table("calls").await?.schema().clone();
            ctx.parse_sql_expr(c, &schema)
                .with_context(|| format!("--where {c:?} is not one SQL condition over calls"))?;
            conds.push(format!("({c})"));
        }
        let clause = if conds.is_empty() {
            String::new()
        } else {
            format!(" WHERE {}", conds.join(" AND "))
        };
        Ok(Resolved {
            clause,
            since,
            until,
        })
    }
}
