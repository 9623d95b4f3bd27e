//! `shell`: an interactive SQL prompt over the captures, with history, tab completion of
//! table, column and function names, and backslash commands (`\dt`, `\d TABLE`, `\df`, `\q`).
//! Statements end with `;`. Errors are printed and the prompt goes on.
use anyhow::Context as _;
use datafusion::prelude::SessionContext;
use rustyline::Editor;
use rustyline::error::ReadlineError;
use rustyline::history::DefaultHistory;

use crate::commands::shell_completion::SqlHelper;
use crate::format::{self, Format};
use fantrace_engine::capture::CaptureArgs;
use fantrace_engine::session::{self, SessionOptions};
use fantrace_engine::sql::functions;

#[derive(clap::Args, Debug)]
pub struct ShellArgs {
    #[command(flatten)]
    pub capture: CaptureArgs,
    /// In table output, cut text cells to this many characters (0: never).
    #[arg(long, default_value_t = 64)]
    pub max_width: usize,
}

const HELP: &str = "\\dt            list tables
\\d TABLE       describe a table's columns
\\df            list the fantrace SQL functions
\\q             quit (or Ctrl-D)
SQL statements end with ';' and may span lines; Tab completes names.";

pub async fn run(args: ShellArgs, opts: SessionOptions) -> anyhow::Result<()> {
    let (loaded, ctx) = session::open_captures(&args.capture, &opts).await?;
    let mut names = session_names(&ctx).await?;
    names.extend(functions::HELP.iter().map(|(name, _, _)| name.to_string()));
    let mut rl: Editor<SqlHelper, DefaultHistory> =
        Editor::new().context("starting the line editor")?;
    rl.set_helper(Some(SqlHelper::new(names)));
    let history =
        std::env::var_os("HOME").map(|h| std::path::PathBuf::from(h).join(".fantrace_history"));
    if let Some(h) = &history {
        // A first run has no history yet.
        let _ = rl.load_history(h);
    }
    println!(
        "fantrace-analyzer shell: {} segment(s). Tables: events, inits, stats, calls. \\? for help.",
        loaded.segments.len()
    );
    let mut statement = String::new();
    loop {
        let prompt = if statement.is_empty() {
            "fantrace> "
        } else {
            "       -> "
        };
        let line = match rl.readline(prompt) {
            Ok(line) => line,
            Err(ReadlineError::Interrupted) => {
                statement.clear();
                continue;
            }
            Err(ReadlineError::Eof) => break,
            Err(e) => return Err(e).context("reading a line"),
        };
        let trimmed = line.trim();
        if statement.is_empty() && trimmed.starts_with('\\') {
            let _ = rl.add_history_entry(trimmed);
            if !backslash(&ctx, trimmed, args.max_width).await {
                break;
            }
            continue;
        }
        if trimmed.is_empty() {
            continue;
        }
        statement.push_str(&line);
        statement.push('\n');
        if trimmed.ends_with(';') {
            let _ = rl.add_history_entry(statement.trim());
            let sql = statement.trim().trim_end_matches(';').to_string();
            statement.clear();
            print_sql(&ctx, &sql, args.max_width).await;
        }
    }
    if let Some(h) = &history
        && let Err(e) = rl.save_history(h)
    {
        eprintln!(
            "fantrace-analyzer: could not save history to {}: {e}",
            h.display()
        );
    }
    Ok(())
}

async fn print_sql(ctx: &SessionContext, sql: &str, max_width: usize) {
    let result = match session::run_sql(ctx, sql).await {
        Ok(batches) => format::write(Format::Table, &batches, max_width, &mut std::io::stdout()),
        Err(e) => Err(e),
    };
    if let Err(e) = result {
        eprintln!("error: {e:#}");
    }
}

/// Runs one backslash command; false means quit.
async fn backslash(ctx: &SessionContext, command: &str, max_width: usize) -> bool {
    let mut words = command.split_whitespace();
    match (words.next(), words.next()) {
        (Some("\\q"), _) => return false,
        (Some("\\dt"), _) => {
            let sql = "SELECT table_name, table_type FROM information_schema.tables \
                       WHERE table_schema = 'public' ORDER BY table_name";
            print_sql(ctx, sql, max_width).await;
        }
        (Some("\\d"), Some(table)) => {
            let table = table.replace('\'', "''");
            let sql = format!(
                "SELECT column_name, data_type, is_nullable FROM information_schema.columns \
                 WHERE table_name = '{table}' ORDER BY ordinal_position"
            );
            print_sql(ctx, &sql, max_width).await;
        }
        (Some("\\df"), _) => {
            for (_, signature, help) in functions::HELP {
                println!("{signature}\n    {help}");
            }
        }
        _ => println!("{HELP}"),
    }
    true
}

/// Every table and column name of the session, for completion.
async fn session_names(ctx: &SessionContext) -> anyhow::Result<Vec<String>> {
    let batches = session::run_sql(
        ctx,
        "SELECT DISTINCT table_name AS n FROM information_schema.tables WHERE table_schema = 'public' \
         UNION SELECT DISTINCT column_name AS n FROM information_schema.columns WHERE table_schema = 'public'",
    )
    .await?;
    let mut out = Vec::new();
    for b in &batches {
        let col = arrow::compute::cast(b.column(0), &arrow::datatypes::DataType::Utf8)?;
        let col = arrow::array::AsArray::as_string::<i32>(&col);
        out.extend(col.iter().flatten().map(str::to_string));
    }
    Ok(out)
}
