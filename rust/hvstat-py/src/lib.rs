//! `hvstat._core`: the thin PyO3 layer over hvstat-core. It holds samplers, releases the GIL for
//! every read, and hands each sample to Python as one JSON document that a reused msgspec decoder
//! turns into typed Structs (hvstat/models.py). No parsing or math lives here.

use std::sync::Mutex;

use hvstat_core::cgroup::sampler::{ContainerConfig, ContainerSampler as CoreContainerSampler};
use hvstat_core::node::{NodeConfig, NodeSampler as CoreNodeSampler};
use pyo3::create_exception;
use pyo3::exceptions::PyException;
use pyo3::prelude::*;
use pyo3::types::PyBytes;

create_exception!(_core, CoreError, PyException, "Base class of errors raised by hvstat._core.");
create_exception!(_core, ConfigError, CoreError, "A sampler's configuration was rejected; the message names the key.");

/// The binding's errors, converted to Python exceptions in exactly one place.
enum BindError {
    Config(String),
    Encode(serde_json::Error),
}

impl From<BindError> for PyErr {
    fn from(e: BindError) -> PyErr {
        match e {
            BindError::Config(msg) => ConfigError::new_err(msg),
            BindError::Encode(e) => CoreError::new_err(format!("encoding a sample failed: {e}")),
        }
    }
}

/// Reads the node's /proc and /sys files with kept-open descriptors and derives rates between
/// calls. Safe to call from any thread; calls are serialized.
#[pyclass(module = "hvstat._core", frozen)]
struct NodeSampler {
    inner: Mutex<CoreNodeSampler>,
}

impl NodeSampler {
    fn lock(&self) -> std::sync::MutexGuard<'_, CoreNodeSampler> {
        // A panic cannot happen inside the sampler (parsers return errors), but if one ever did the
        // sampler's state is still usable: it holds only readers and the previous reading.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[pymethods]
impl NodeSampler {
    /// `config_json`: the `[node]` config table as JSON; `"{}"` takes every default.
    #[new]
    #[pyo3(signature = (config_json = "{}"))]
    fn new(config_json: &str) -> PyResult<Self> {
        let config: NodeConfig = serde_json::from_str(config_json)
            .map_err(|e| BindError::Config(format!("node config: {e}")))?;
        let sampler = CoreNodeSampler::new(config).map_err(BindError::Config)?;
        Ok(NodeSampler { inner: Mutex::new(sampler) })
    }

    /// Take a reading without reporting it, so that the next `sample()` has rates.
    fn prime(&self, py: Python<'_>) {
        py.detach(|| self.lock().prime());
    }

    /// Read everything, derive rates against the previous call, return the sample as JSON bytes.
    fn sample<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyBytes>> {
        let json = py.detach(|| serde_json::to_vec(&self.lock().sample())).map_err(BindError::Encode)?;
        Ok(PyBytes::new(py, &json))
    }

    /// Every file one sample reads (for benchmarks against bare reads of the same files).
    fn paths(&self) -> Vec<String> {
        self.lock().paths().iter().map(|p| p.to_string_lossy().into_owned()).collect()
    }

    /// The effective configuration, defaults filled in, as JSON.
    fn config_json(&self) -> PyResult<String> {
        Ok(serde_json::to_string(self.lock().config()).map_err(BindError::Encode)?)
    }
}

/// Finds containers (and other cgroup guests) by walking the cgroup tree and reads their cgroup
/// files with kept-open descriptors, deriving rates between calls. Calls are serialized.
#[pyclass(module = "hvstat._core", frozen)]
struct ContainerSampler {
    inner: Mutex<CoreContainerSampler>,
}

impl ContainerSampler {
    fn lock(&self) -> std::sync::MutexGuard<'_, CoreContainerSampler> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[pymethods]
impl ContainerSampler {
    /// `config_json`: the `[containers]` config table as JSON; `"{}"` takes every default.
    #[new]
    #[pyo3(signature = (config_json = "{}"))]
    fn new(config_json: &str) -> PyResult<Self> {
        let config: ContainerConfig = serde_json::from_str(config_json)
            .map_err(|e| BindError::Config(format!("containers config: {e}")))?;
        Ok(ContainerSampler { inner: Mutex::new(CoreContainerSampler::new(config)) })
    }

    /// Discover, read every guest, derive rates against the previous call; JSON bytes.
    fn sample<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyBytes>> {
        let json = py.detach(|| serde_json::to_vec(&self.lock().sample())).map_err(BindError::Encode)?;
        Ok(PyBytes::new(py, &json))
    }

    /// Every file one sample reads (as of the latest discovery).
    fn paths(&self) -> Vec<String> {
        self.lock().paths().iter().map(|p| p.to_string_lossy().into_owned()).collect()
    }

    fn config_json(&self) -> PyResult<String> {
        Ok(serde_json::to_string(self.lock().config()).map_err(BindError::Encode)?)
    }
}

#[pymodule]
fn _core(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    m.add("CoreError", m.py().get_type::<CoreError>())?;
    m.add("ConfigError", m.py().get_type::<ConfigError>())?;
    m.add_class::<NodeSampler>()?;
    m.add_class::<ContainerSampler>()?;
    Ok(())
}
