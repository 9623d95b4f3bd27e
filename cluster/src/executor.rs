//! An executor: runs the tasks the scheduler hands it, reading segments from object storage
//! with its own credentials, and serves its shuffle output to the other executors.
use std::sync::Arc;

use anyhow::Context as _;
use ballista_executor::executor_process::{ExecutorProcessConfig, start_executor_process};
use datafusion::execution::runtime_env::RuntimeEnvBuilder;
use datafusion::prelude::SessionConfig;
use fantrace_engine::fleet_stores::{FleetStores, executor_functions};

#[derive(clap::Args, Debug)]
pub struct ExecutorArgs {
    /// The scheduler to register with (HOST:PORT).
    #[arg(long, default_value = "127.0.0.1:50050")]
    scheduler: String,
    /// Address to listen on for the scheduler's tasks and other executors' shuffle reads.
    #[arg(long, default_value = "127.0.0.1")]
    bind: String,
    /// Arrow Flight port (shuffle data).
    #[arg(long, default_value_t = 50051)]
    port: u16,
    /// gRPC port (tasks from the scheduler).
    #[arg(long, default_value_t = 50052)]
    grpc_port: u16,
    /// Tasks run at once (default: the number of CPUs).
    #[arg(long)]
    concurrent_tasks: Option<usize>,
    /// Where shuffle files go (default: a directory under $TMPDIR).
    #[arg(long)]
    work_dir: Option<String>,
}

pub async fn run(
    args: ExecutorArgs,
    endpoint: Option<String>,
    memory_limit: usize,
) -> anyhow::Result<()> {
    let (scheduler_host, scheduler_port) = args
        .scheduler
        .rsplit_once(':')
        .and_then(|(h, p)| Some((h.to_string(), p.parse::<u16>().ok()?)))
        .with_context(|| format!("--scheduler {}: give HOST:PORT", args.scheduler))?;
    let mut config = ExecutorProcessConfig {
        bind_host: args.bind.clone(),
        external_host: Some(args.bind.clone()),
        port: args.port,
        grpc_port: args.grpc_port,
        scheduler_host,
        scheduler_port,
        work_dir: args.work_dir,
        memory_pool_size: Some(memory_limit as u64),
        override_function_registry: Some(Arc::new(executor_functions(memory_limit))),
        ..Default::default()
    };
    if let Some(tasks) = args.concurrent_tasks {
        config.vcores = tasks;
    }
    let work_dir = config.work_dir.clone();
    config.override_runtime_producer = Some(Arc::new(move |_config: &SessionConfig| {
        let mut builder = RuntimeEnvBuilder::new()
            .with_object_store_registry(Arc::new(FleetStores::new(endpoint.clone())));
        if let Some(dir) = &work_dir {
            builder = builder.with_temp_file_path(dir.clone());
        }
        builder.build_arc()
    }));
    eprintln!(
        "fantrace-cluster: executor on {}:{} (flight) / {} (grpc), scheduler {}",
        args.bind, args.port, args.grpc_port, args.scheduler
    );
    start_executor_process(Arc::new(config))
        .await
        .context("running the executor")?;
    Ok(())
}
