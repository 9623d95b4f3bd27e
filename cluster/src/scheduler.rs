//! The scheduler: receives plans from analyzers, splits them into stages and hands the tasks
//! to executors. It decodes plans with fantrace's functions and lists segments in object
//! stores itself, so both are set up as on the analyzer.
use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context as _;
use ballista_scheduler::cluster::BallistaCluster;
use ballista_scheduler::config::SchedulerConfig;
use datafusion::execution::SessionStateBuilder;
use datafusion::execution::runtime_env::RuntimeEnvBuilder;
use datafusion::prelude::SessionConfig;
use fantrace_engine::fleet_stores::{FleetStores, add_fantrace_functions};

#[derive(clap::Args, Debug)]
pub struct SchedulerArgs {
    /// Address to listen on (gRPC for analyzers and executors, and Ballista's REST API).
    #[arg(long, default_value = "127.0.0.1")]
    bind: String,
    #[arg(long, default_value_t = 50050)]
    port: u16,
    /// The host name executors and analyzers reach this scheduler by (default: --bind).
    #[arg(long)]
    external_host: Option<String>,
}

pub async fn run(
    args: SchedulerArgs,
    endpoint: Option<String>,
    memory_limit: usize,
) -> anyhow::Result<()> {
    let addr: SocketAddr = format!("{}:{}", args.bind, args.port)
        .parse()
        .with_context(|| format!("--bind {} --port {}: not an address", args.bind, args.port))?;
    let external = args.external_host.unwrap_or_else(|| args.bind.clone());
    let session_builder = Arc::new(
        move |config: SessionConfig| -> datafusion::common::Result<_> {
            let runtime = RuntimeEnvBuilder::new()
                .with_object_store_registry(Arc::new(FleetStores::new(endpoint.clone())))
                .build_arc()?;
            let mut state = SessionStateBuilder::new()
                .with_default_features()
                .with_config(config)
                .with_runtime_env(runtime)
                .with_optimizer_rules(ballista_core::optimizer::ballista_default_optimizer_rules())
                .with_scalar_functions(ballista_core::extension::ballista_scalar_functions())
                .with_aggregate_functions(ballista_core::extension::ballista_aggregate_functions())
                .with_window_functions(ballista_core::extension::ballista_window_functions())
                .build();
            add_fantrace_functions(&mut state, memory_limit)?;
            Ok(state)
        },
    );
    let config = SchedulerConfig::default()
        .with_hostname(external)
        .with_port(args.port)
        .with_override_session_builder(session_builder);
    let cluster = BallistaCluster::new_from_config(&config)
        .await
        .context("setting up the scheduler's state")?;
    eprintln!("fantrace-cluster: scheduler listening on {addr}");
    ballista_scheduler::scheduler_process::start_server(cluster, addr, Arc::new(config))
        .await
        .with_context(|| format!("serving the scheduler on {addr} (is the port in use?)"))?;
    Ok(())
}
