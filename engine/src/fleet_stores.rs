//! Object stores opened on demand from the URLs a plan names. A cluster's scheduler and
//! executors never see the client's stores: a plan arrives naming `s3://bucket/key`, and each
//! process opens that bucket with its own credentials (environment variables, as the AWS, GCP
//! and Azure tools take them) and endpoint.
use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use datafusion::common::DataFusionError;
use datafusion::execution::object_store::{DefaultObjectStoreRegistry, ObjectStoreRegistry};
use object_store::ObjectStore;
use url::Url;

/// Local files as DataFusion reads them, and every object store URL opened when first asked.
#[derive(Debug)]
pub struct FleetStores {
    local: DefaultObjectStoreRegistry,
    endpoint: Option<String>,
    opened: RwLock<HashMap<String, Arc<dyn ObjectStore>>>,
}

impl FleetStores {
    /// `endpoint` is the S3-compatible server to send S3 requests to (else `AWS_ENDPOINT_URL`,
    /// else AWS).
    pub fn new(endpoint: Option<String>) -> FleetStores {
        FleetStores {
            local: DefaultObjectStoreRegistry::new(),
            endpoint,
            opened: RwLock::new(HashMap::new()),
        }
    }
}

impl ObjectStoreRegistry for FleetStores {
    fn register_store(
        &self,
        url: &Url,
        store: Arc<dyn ObjectStore>,
    ) -> Option<Arc<dyn ObjectStore>> {
        if url.scheme() == "file" {
            return self.local.register_store(url, store);
        }
        let key = fantrace_storage::location::store_url(url);
        self.opened
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .insert(key, store)
    }

    fn get_store(&self, url: &Url) -> datafusion::common::Result<Arc<dyn ObjectStore>> {
        if url.scheme() == "file" {
            return self.local.get_store(url);
        }
        let key = fantrace_storage::location::store_url(url);
        if let Some(store) = self
            .opened
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .get(&key)
        {
            return Ok(Arc::clone(store));
        }
        let location = fantrace_storage::open(&key, self.endpoint.as_deref())
            .map_err(|e| DataFusionError::External(Box::new(e)))?;
        let mut opened = self
            .opened
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        Ok(Arc::clone(opened.entry(key).or_insert(location.store)))
    }
}

/// Registers fantrace's SQL functions on a session: the decoding functions, the bounded
/// versions of the growing ones under `memory_limit`, and the `count` that sizes
/// `count(DISTINCT ...)` truly. The same set the analyzer registers, so a plan naming them
/// decodes the same on every node.
pub fn add_fantrace_functions(
    state: &mut datafusion::execution::SessionState,
    memory_limit: usize,
) -> datafusion::common::Result<()> {
    use datafusion::execution::FunctionRegistry as _;
    let bounded = crate::sql::bounded_functions::wrap(|name| state.udf(name).ok(), memory_limit);
    for f in crate::sql::functions::scalar_functions()
        .into_iter()
        .chain(bounded)
    {
        state.register_udf(Arc::new(f))?;
    }
    for f in crate::sql::functions::aggregate_functions() {
        state.register_udaf(Arc::new(f))?;
    }
    Ok(())
}

/// The functions an executor decodes plans with: Ballista's defaults and fantrace's.
pub fn executor_functions(
    memory_limit: usize,
) -> ballista_core::registry::BallistaFunctionRegistry {
    let mut registry = ballista_core::registry::BallistaFunctionRegistry::default();
    let builtin = registry.scalar_functions.clone();
    for f in crate::sql::functions::scalar_functions().into_iter().chain(
        crate::sql::bounded_functions::wrap(|name| builtin.get(name).cloned(), memory_limit),
    ) {
        registry
            .scalar_functions
            .insert(f.name().to_string(), Arc::new(f));
    }
    for f in crate::sql::functions::aggregate_functions() {
        registry
            .aggregate_functions
            .insert(f.name().to_string(), Arc::new(f));
    }
    registry
}
