//! fantrace-cluster: a Ballista scheduler or executor with fantrace's SQL functions and object
//! stores, so that `fantrace-analyzer --cluster df://HOST:PORT query ...` runs across machines
//! with the answers it gives locally.
mod executor;
mod scheduler;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Run one node of a Ballista cluster that answers fantrace-analyzer's queries.
#[derive(Parser, Debug)]
#[command(name = "fantrace-cluster", version)]
struct Cli {
    /// The S3-compatible server for s3:// captures (else AWS_ENDPOINT_URL, else AWS). Every
    /// node reads segments itself, with the credentials in its own environment.
    #[arg(long, global = true, value_name = "URL")]
    endpoint: Option<String>,
    /// Memory each query may use on this node, in bytes (suffixes K, M, G): the bound the
    /// growing SQL functions are held to, and on an executor its memory pool.
    #[arg(long, global = true, default_value = "2G", value_parser = fantrace_engine::parse_bytes)]
    memory_limit: usize,
    #[command(subcommand)]
    role: Role,
}

#[derive(Subcommand, Debug)]
enum Role {
    /// Plan queries and hand their tasks to executors.
    Scheduler(scheduler::SchedulerArgs),
    /// Run tasks: read segments, compute, and serve shuffle data to other executors.
    Executor(executor::ExecutorArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_ansi(false)
        .with_writer(std::io::stderr)
        .init();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        // Deep plans (long OR chains, many unions of segments) recurse in planning and
        // decoding; the analyzer's main thread has the same room.
        .thread_stack_size(32 * 1024 * 1024)
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("fantrace-cluster: error: starting the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        match cli.role {
            Role::Scheduler(args) => scheduler::run(args, cli.endpoint, cli.memory_limit).await,
            Role::Executor(args) => executor::run(args, cli.endpoint, cli.memory_limit).await,
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("fantrace-cluster: error: {err:#}");
            ExitCode::FAILURE
        }
    }
}
