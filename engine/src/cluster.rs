//! Running the analyzer's queries on a Ballista cluster (`--cluster df://host:port`): the
//! session plans as it does locally (same tables, views and functions), and Ballista's planner
//! sends each plan to the scheduler, whose executors read the segments from object storage.
use std::sync::Arc;

use anyhow::Context as _;
use arrow::array::RecordBatch;
use ballista_core::config::{BALLISTA_SCHEDULER_MAX_PARTITIONS_PER_TASK, BallistaConfig};
use ballista_core::extension::SessionStateExt as _;
use datafusion::common::ScalarValue;
use datafusion::datasource::TableProvider;
use datafusion::execution::SessionStateBuilder;
use datafusion::execution::runtime_env::RuntimeEnv;
use datafusion::logical_expr::{LogicalPlanBuilder, lit};
use datafusion::prelude::{SessionConfig, SessionContext};

/// The scheduler port Ballista listens on unless told otherwise.
const DEFAULT_PORT: u16 = 50050;

/// Partitions a cluster's scans are split into (each a task an executor takes).
const SCAN_PARTITIONS: usize = 16;

/// A session whose queries run on the cluster at `url` (`df://host[:port]`).
pub fn connect(
    url: &str,
    config: SessionConfig,
    runtime: Arc<RuntimeEnv>,
) -> anyhow::Result<SessionContext> {
    let scheduler = scheduler_endpoint(url)?;
    // One task per partition: by default the scheduler packs all of a stage's partitions
    // into one task on whichever executor has free cores, so a scan of many segments ran on
    // one node while the others idled.
    // And scans split for a cluster, not for this machine's cores: a stage has at most as
    // many tasks as its scan has partitions.
    let config = match config.options().extensions.get::<BallistaConfig>() {
        Some(_) => config,
        None => config.with_option_extension(BallistaConfig::default()),
    }
    .set_u64(BALLISTA_SCHEDULER_MAX_PARTITIONS_PER_TASK, 1)
    .with_target_partitions(SCAN_PARTITIONS);
    let state = SessionStateBuilder::new()
        .with_default_features()
        .with_config(config)
        .with_runtime_env(runtime)
        .build()
        .upgrade_for_ballista(scheduler.clone())
        .with_context(|| format!("setting up a session for the cluster at {scheduler}"))?;
    Ok(SessionContext::new_with_state(state))
}

/// `df://host:port` (or `http://`, or bare `host:port`) as the scheduler's gRPC endpoint.
fn scheduler_endpoint(text: &str) -> anyhow::Result<String> {
    let with_scheme = if text.contains("://") {
        text.to_string()
    } else {
        format!("df://{text}")
    };
    let url = url::Url::parse(&with_scheme).with_context(|| {
        format!("--cluster {text}: not a scheduler address; give df://HOST:PORT")
    })?;
    let host = url
        .host_str()
        .with_context(|| format!("--cluster {text}: no host; give df://HOST:PORT"))?;
    Ok(format!(
        "http://{host}:{}",
        url.port().unwrap_or(DEFAULT_PORT)
    ))
}

/// A small table as a view over a VALUES list, which a plan sent to the cluster can carry.
pub fn values_view(
    ctx: &SessionContext,
    batch: &RecordBatch,
) -> anyhow::Result<Arc<dyn TableProvider>> {
    let schema = batch.schema();
    let mut rows = Vec::with_capacity(batch.num_rows());
    for row in 0..batch.num_rows() {
        let mut cells = Vec::with_capacity(batch.num_columns());
        for column in batch.columns() {
            cells.push(lit(ScalarValue::try_from_array(column, row)?));
        }
        rows.push(cells);
    }
    let plan = LogicalPlanBuilder::values(rows)?.build()?;
    let renamed: Vec<_> = plan
        .schema()
        .columns()
        .into_iter()
        .zip(schema.fields())
        .map(|(column, field)| datafusion::prelude::Expr::Column(column).alias(field.name()))
        .collect();
    let plan = LogicalPlanBuilder::from(plan).project(renamed)?.build()?;
    Ok(datafusion::dataframe::DataFrame::new(ctx.state(), plan).into_view())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scheduler_addresses_are_read_as_ballista_reads_them() {
        assert_eq!(
            scheduler_endpoint("df://10.0.0.5:50051").expect("valid"),
            "http://10.0.0.5:50051"
        );
        assert_eq!(
            scheduler_endpoint("sched.internal").expect("valid"),
            "http://sched.internal:50050"
        );
        assert!(scheduler_endpoint("df://:1").is_err());
    }
}
