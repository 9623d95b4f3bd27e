//! fantrace-analyzer: SQL over fantrace captures, for anyone who can read the files.
//!
//! The query engine (capture sources, the DataFusion session, fantrace's functions) is the
//! `fantrace-engine` crate, shared with `fantrace-cluster`. Here are the command line and
//! what its commands do: `commands` (query, shell, replay, inspect, playbook, views),
//! `share` (export, pseudonymize, sign, verify), `report` (the HTML report), and the two
//! ways results leave the process (`format` for the terminal, `output` for files), with
//! `progress` drawn on stderr while a long query runs.
mod commands;
mod format;
mod output;
mod progress;
mod report;
mod share;

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use fantrace_engine::capture::foreign;
use fantrace_engine::sql::functions;
use fantrace_engine::{session, spill};

/// Query fanotify_mark(2) captures written by fantrace-recorder. Needs no privileges.
#[derive(Parser, Debug)]
#[command(name = "fantrace-analyzer", version)]
struct Cli {
    /// Memory the query engine may use, in bytes (suffixes K, M, G); a query needing more fails
    /// instead of exhausting the machine.
    #[arg(long, global = true, default_value = "2G", value_parser = fantrace_engine::parse_bytes)]
    memory_limit: usize,
    /// Disk a query may fill with spill files when it needs more than --memory-limit (sorts,
    /// aggregations), under $TMPDIR/fantrace-analyzer-UID/, removed when it ends.
    #[arg(long, global = true, default_value = "20G", value_parser = fantrace_engine::parse_bytes)]
    max_spill: usize,
    /// Do not trust the statistics and page index stored in segment footers: read every row
    /// instead of skipping row groups and pages by them, and never answer from them (slower).
    /// With --verify-data, what to use when a capture is evidence: the digests cover the rows,
    /// not the statistics.
    #[arg(long, global = true)]
    no_stats: bool,
    /// Run the queries on a Ballista cluster started with `fantrace-cluster` (df://HOST:PORT)
    /// instead of in this process. Its executors read the segments themselves, so the captures
    /// must be in object storage they can reach (-c s3://...).
    #[arg(long, global = true, value_name = "df://HOST:PORT")]
    cluster: Option<String>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run one SQL statement over captures.
    Query(commands::query::QueryArgs),
    /// An interactive SQL prompt with history and tab completion.
    Shell(commands::shell::ShellArgs),
    /// Print the calls in time order, one strace-like line each.
    Replay(commands::replay::ReplayArgs),
    /// Show what captures hold: segments, hosts, time span, events, losses, unreadable files.
    Inspect(commands::inspect::InspectArgs),
    /// List the shipped forensic queries, or run one.
    Playbook(commands::playbook::PlaybookArgs),
    /// Write a self-contained HTML report: summary, timeline per process, marks in force at
    /// the end, playbook findings. Opens offline; attach it to a ticket.
    Report(report::ReportArgs),
    /// List the fantrace SQL functions and the columns of the events table.
    Functions,
    /// Write a capture to share: a time window, processes or any condition, from one or many
    /// captures, optionally pseudonymized and signed.
    Export(share::export::ExportArgs),
    /// Check that captures are what was recorded or exported: digests, chains, row counts,
    /// gaps, signatures. Exit code 0 only when everything checks out.
    Verify(share::verify::VerifyArgs),
    /// Print the events, inits and calls views and the decoding functions as SQL for DuckDB or
    /// Spark SQL, to query captures there with the same names and answers.
    Views(commands::views::ViewsArgs),
    /// Make an ed25519 key pair for `export --sign` and `verify --pubkey`.
    Keygen {
        /// The secret key file to create (mode 0600); the public key goes to FILE.pub.
        file: std::path::PathBuf,
    },
}

/// The SQL reference, derived from the schema's column table and the function table.
fn print_reference() {
    println!("Functions:");
    for (_, signature, help) in functions::HELP {
        println!("  {signature}\n      {help}");
    }
    println!("\nTable events:");
    for c in fantrace_schema::arrow::COLUMNS {
        println!(
            "  {:<16} {:<28} {}",
            c.name,
            (c.data_type)().to_string(),
            c.doc
        );
    }
    for d in fantrace_schema::arrow::DERIVED {
        println!(
            "  {:<16} {:<28} {} Computed as {}.",
            d.name,
            (d.data_type)().to_string(),
            d.doc,
            d.sql
        );
    }
}

/// The command line, run: what `main` of the binary does.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    foreign::install_panic_hook();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        // The engine's threads decode foreign files: their panics are reported as the
        // command's error (see `foreign::guard`), not printed as crashes.
        .on_thread_start(foreign::mark_thread_caught)
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("fantrace-analyzer: error: starting the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let spill = match spill::SpillDir::create() {
        Ok(dir) => dir,
        Err(e) => {
            eprintln!("fantrace-analyzer: error: {e:#}");
            return ExitCode::FAILURE;
        }
    };
    let opts = session::SessionOptions {
        memory_limit: cli.memory_limit,
        spill_dir: spill.path().to_path_buf(),
        max_spill: cli.max_spill as u64,
        no_stats: cli.no_stats,
        cluster: cli.cluster,
        plan_marks: true,
        window: None,
    };
    let result = foreign::guard(|| {
        runtime.block_on(async {
            match cli.command {
                Command::Query(args) => commands::query::run(args, opts).await,
                Command::Replay(args) => commands::replay::run(args, opts).await,
                Command::Shell(args) => commands::shell::run(args, opts).await,
                Command::Inspect(args) => commands::inspect::run(args, opts).await,
                Command::Playbook(args) => commands::playbook::run(args, opts).await,
                Command::Report(args) => report::run(args, opts).await,
                Command::Functions => {
                    print_reference();
                    Ok(())
                }
                Command::Export(args) => share::export::run(args, opts).await,
                Command::Verify(args) => share::verify::run(args).await,
                Command::Views(args) => {
                    commands::views::run(&args);
                    Ok(())
                }
                Command::Keygen { file } => share::signing::generate(&file).map(|public| {
                    println!(
                        "secret key {} (keep it), public key {} (give it to whoever verifies)",
                        file.display(),
                        public.display()
                    );
                }),
            }
        })
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        // A reader that stopped early (`| head`) is not an error, as for any Unix tool.
        Err(err)
            if err.chain().any(|e| {
                e.downcast_ref::<std::io::Error>()
                    .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
            }) =>
        {
            ExitCode::SUCCESS
        }
        Err(err) => {
            eprintln!("fantrace-analyzer: error: {err:#}");
            ExitCode::FAILURE
        }
    }
}
