//! `hvstat._core`: the thin PyO3 layer over hvstat-core. It holds samplers, releases the GIL for
//! every read, and hands each sample to Python as one JSON document that a reused msgspec decoder
//! turns into typed Structs (hvstat/wire.py, generated from the JSON Schema that `wire_schema()`
//! returns). No parsing or math lives here.

use std::sync::Mutex;

use hvstat_core::cgroup::sampler::{ContainerConfig, ContainerSampler as CoreContainerSampler};
use hvstat_core::node::{NodeConfig, NodeSampler as CoreNodeSampler};
use hvstat_core::procs::{ProcessConfig, ProcessSampler as CoreProcessSampler};
use hvstat_core::vm::{VmConfig, VmSampler as CoreVmSampler};
use pyo3::create_exception;
use pyo3::exceptions::PyException;
use pyo3::prelude::*;
use pyo3::types::PyBytes;

create_exception!(_core, CoreError, PyException, "Base class of errors raised by hvstat._core.");
create_exception!(_core, ConfigError, CoreError, "A sampler's configuration was rejected; the message names the key.");

/// The binding's errors, converted to Python exceptions in exactly one place.
enum BindError {
    Config(String),
    /// Input handed to a sampler (the VM observations) that does not decode.
    Input(String),
    Encode(serde_json::Error),
}

impl From<BindError> for PyErr {
    fn from(e: BindError) -> PyErr {
        match e {
            BindError::Config(msg) => ConfigError::new_err(msg),
            BindError::Input(msg) => CoreError::new_err(msg),
            BindError::Encode(e) => CoreError::new_err(format!("encoding a sample failed: {e}")),
        }
    }
}

/// The sampler behind a mutex; a poisoned lock is still usable, since a sampler holds only its
/// readers and its previous reading (and a panic cannot happen inside: parsers return errors).
fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Run `sample` with the GIL released and hand its JSON to Python as bytes.
fn sample_json<'py, T: serde::Serialize>(py: Python<'py>, sample: impl FnOnce() -> T + Send) -> PyResult<Bound<'py, PyBytes>> {
    let json = py.detach(|| serde_json::to_vec(&sample())).map_err(BindError::Encode)?;
    Ok(PyBytes::new(py, &json))
}

fn paths(list: Vec<std::path::PathBuf>) -> Vec<String> {
    list.iter().map(|p| p.to_string_lossy().into_owned()).collect()
}

fn config_json<T: serde::Serialize>(config: &T) -> PyResult<String> {
    Ok(serde_json::to_string(config).map_err(BindError::Encode)?)
}

/// Reads the node's /proc and /sys files with kept-open descriptors and derives rates between
/// calls. Safe to call from any thread; calls are serialized.
#[pyclass(module = "hvstat._core", frozen)]
struct NodeSampler {
    inner: Mutex<CoreNodeSampler>,
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
        py.detach(|| lock(&self.inner).prime());
    }

    /// Read everything, derive rates against the previous call, return the sample as JSON bytes.
    fn sample<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyBytes>> {
        sample_json(py, || lock(&self.inner).sample())
    }

    /// Every file one sample reads (for benchmarks against bare reads of the same files).
    fn paths(&self) -> Vec<String> {
        paths(lock(&self.inner).paths())
    }

    /// The effective configuration, defaults filled in, as JSON.
    fn config_json(&self) -> PyResult<String> {
        config_json(lock(&self.inner).config())
    }
}

/// Finds containers (and other cgroup guests) by walking the cgroup tree and reads their cgroup
/// files with kept-open descriptors, deriving rates between calls. Calls are serialized.
#[pyclass(module = "hvstat._core", frozen)]
struct ContainerSampler {
    inner: Mutex<CoreContainerSampler>,
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
        sample_json(py, || lock(&self.inner).sample())
    }

    /// Every file one sample reads (as of the latest discovery).
    fn paths(&self) -> Vec<String> {
        paths(lock(&self.inner).paths())
    }

    /// The effective configuration, defaults filled in, as JSON.
    fn config_json(&self) -> PyResult<String> {
        config_json(lock(&self.inner).config())
    }
}

/// Adds what /proc says about each VM's QEMU process to the collectors' observations and derives
/// rates against each VM's previous reading. Calls are serialized.
#[pyclass(module = "hvstat._core", frozen)]
struct VmSampler {
    inner: Mutex<CoreVmSampler>,
}

#[pymethods]
impl VmSampler {
    /// `config_json`: the VM sampler's config (proc_root, sys_root) as JSON; `"{}"` takes every default.
    #[new]
    #[pyo3(signature = (config_json = "{}"))]
    fn new(config_json: &str) -> PyResult<Self> {
        let config: VmConfig =
            serde_json::from_str(config_json).map_err(|e| BindError::Config(format!("vms config: {e}")))?;
        Ok(VmSampler { inner: Mutex::new(CoreVmSampler::new(config)) })
    }

    /// `observations`: one tick's `VmObservations` as JSON bytes. Returns the `VmsSample` as JSON
    /// bytes; input that does not decode raises CoreError with the decoder's message.
    fn sample<'py>(&self, py: Python<'py>, observations: &[u8]) -> PyResult<Bound<'py, PyBytes>> {
        let json = py.detach(|| -> Result<Vec<u8>, BindError> {
            let sample = lock(&self.inner)
                .sample_json(observations)
                .map_err(|e| BindError::Input(format!("VM observations: {e}")))?;
            serde_json::to_vec(&sample).map_err(BindError::Encode)
        })?;
        Ok(PyBytes::new(py, &json))
    }

    /// Every file one sample reads through kept readers (as of the latest sample).
    fn paths(&self) -> Vec<String> {
        paths(lock(&self.inner).paths())
    }

    /// The effective configuration, defaults filled in, as JSON.
    fn config_json(&self) -> PyResult<String> {
        config_json(lock(&self.inner).config())
    }
}

/// Reads every /proc/<pid> (kept-open stat, and io when it may have moved, within a bounded fd budget), derives
/// per-process rates and aggregates per user, per container or VM and for the host, with persistent
/// heavy users and the load status. Calls are serialized.
#[pyclass(module = "hvstat._core", frozen)]
struct ProcessSampler {
    inner: Mutex<CoreProcessSampler>,
    /// The JSON of the latest sample, its capacity kept: a sample of 10,000 processes is megabytes,
    /// which allocated afresh each tick is mapped and faulted in page by page.
    json: Mutex<Vec<u8>>,
}

#[pymethods]
impl ProcessSampler {
    /// `config_json`: the core's part of the `[processes]` table as JSON; `"{}"` takes every default.
    #[new]
    #[pyo3(signature = (config_json = "{}"))]
    fn new(config_json: &str) -> PyResult<Self> {
        let config: ProcessConfig = serde_json::from_str(config_json)
            .map_err(|e| BindError::Config(format!("processes config: {e}")))?;
        let sampler = CoreProcessSampler::new(config).map_err(BindError::Config)?;
        Ok(ProcessSampler { inner: Mutex::new(sampler), json: Mutex::new(Vec::new()) })
    }

    /// Read every process, derive rates against the previous call; the `ProcessesSample` as JSON
    /// bytes, with the first `top` processes by CPU in full (every process when `top` is None: the
    /// rest stay in the core for `query`).
    #[pyo3(signature = (top = None))]
    fn sample<'py>(&self, py: Python<'py>, top: Option<usize>) -> PyResult<Bound<'py, PyBytes>> {
        let mut json = std::mem::take(&mut *lock(&self.json));
        json.clear();
        let r = py.detach(|| serde_json::to_writer(&mut json, &lock(&self.inner).sample_top(top)));
        let out = r.map(|()| PyBytes::new(py, &json)).map_err(BindError::Encode);
        *lock(&self.json) = json;
        Ok(out?)
    }

    /// `query_json`: a `ProcessQuery` (sort, limit, pid, uid, user, container, container_prefix,
    /// vm, vm_pid, vm_scope; every key optional) as JSON. The latest sample's processes filtered,
    /// sorted and cut, as a `ProcessView`'s JSON bytes (the GIL released while it is built).
    fn query<'py>(&self, py: Python<'py>, query_json: &[u8]) -> PyResult<Bound<'py, PyBytes>> {
        let json = py.detach(|| -> Result<Vec<u8>, BindError> {
            let q: hvstat_core::procs::model::ProcessQuery =
                serde_json::from_slice(query_json).map_err(|e| BindError::Input(format!("process query: {e}")))?;
            let view = lock(&self.inner).query(&q);
            serde_json::to_vec(&view).map_err(BindError::Encode)
        })?;
        Ok(PyBytes::new(py, &json))
    }

    /// Every file one sample reads (as of the latest sample).
    fn paths(&self) -> Vec<String> {
        paths(lock(&self.inner).paths())
    }

    /// The effective configuration, defaults filled in, as JSON.
    fn config_json(&self) -> PyResult<String> {
        config_json(lock(&self.inner).config())
    }
}

/// The JSON Schema of every type a sampler hands to Python or takes from it (hvstat_core::wire):
/// the source python/hvstat/wire.py is generated from, and what tests compare it with.
#[pyfunction]
fn wire_schema() -> String {
    hvstat_core::wire::schema_json()
}

#[pymodule]
fn _core(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    m.add("CoreError", m.py().get_type::<CoreError>())?;
    m.add("ConfigError", m.py().get_type::<ConfigError>())?;
    m.add_class::<NodeSampler>()?;
    m.add_class::<ContainerSampler>()?;
    m.add_class::<VmSampler>()?;
    m.add_class::<ProcessSampler>()?;
    m.add_function(wrap_pyfunction!(wire_schema, m)?)?;
    Ok(())
}
