//! `gradfit._core`: the Python extension module. A shell over the gradfit
//! library: it converts arguments and results (numpy float64 in and out,
//! plain dicts) and maps errors to Python exceptions; every number comes from
//! the library, so that Python and the command line give the same results.
//! The pyhf-shaped API lives in the Python package (`python/gradfit/*.py`).

mod infer;
mod model;
mod report;
mod toys;
mod train;

use pyo3::create_exception;
use pyo3::exceptions::PyException;
use pyo3::prelude::*;

create_exception!(
    gradfit._core,
    GradfitError,
    PyException,
    "Base class of gradfit's errors."
);
create_exception!(
    gradfit._core,
    InvalidWorkspace,
    GradfitError,
    "A workspace (or other model input) that is not valid: schema, JSON or content."
);
create_exception!(
    gradfit._core,
    InvalidPatch,
    GradfitError,
    "A JSON Patch or pyhf patchset that cannot be read or applied."
);
create_exception!(
    gradfit._core,
    InvalidInput,
    GradfitError,
    "A bad argument: shapes, values, parameter names, settings."
);
create_exception!(
    gradfit._core,
    NumericalError,
    GradfitError,
    "A numerical failure: a likelihood that is not finite, a singular Hessian."
);
create_exception!(
    gradfit._core,
    FailedMinimization,
    NumericalError,
    "A fit that did not converge where a result depends on it."
);
create_exception!(
    gradfit._core,
    InvalidToyFile,
    GradfitError,
    "A toy run that does not verify or does not merge with the others."
);
create_exception!(
    gradfit._core,
    FileError,
    GradfitError,
    "A file that could not be read or written."
);

/// The Python exception for a library error, with the command line's message.
pub fn to_py(e: gradfit::Error) -> PyErr {
    use gradfit::Error as E;
    let msg = e.to_string();
    match e {
        E::Workspace { .. } | E::Json { .. } => InvalidWorkspace::new_err(msg),
        E::Patch { .. } => InvalidPatch::new_err(msg),
        E::Input(_) | E::ClosedOutput => InvalidInput::new_err(msg),
        E::Numerical(m) if m.contains("did not converge") => FailedMinimization::new_err(msg),
        E::Numerical(_) | E::NotFinite(_) | E::Candle(_) => NumericalError::new_err(msg),
        E::Io { .. } => FileError::new_err(msg),
    }
}

/// `Result` of the library as a `PyResult`.
pub trait IntoPy<T> {
    /// Map the error with [`to_py`].
    fn py_err(self) -> PyResult<T>;
}

impl<T> IntoPy<T> for gradfit::Result<T> {
    fn py_err(self) -> PyResult<T> {
        self.map_err(to_py)
    }
}

/// Run `f` with at most `threads` worker threads (None: rayon's global pool).
pub fn with_threads<T: Send>(threads: Option<usize>, f: impl FnOnce() -> T + Send) -> PyResult<T> {
    match threads {
        None | Some(0) => Ok(f()),
        Some(n) => {
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(n)
                .build()
                .map_err(|e| InvalidInput::new_err(format!("threads={n}: {e}")))?;
            Ok(pool.install(f))
        }
    }
}

#[pymodule]
fn _core(m: &Bound<'_, PyModule>) -> PyResult<()> {
    let py = m.py();
    m.add("GradfitError", py.get_type::<GradfitError>())?;
    m.add("InvalidWorkspace", py.get_type::<InvalidWorkspace>())?;
    m.add("InvalidPatch", py.get_type::<InvalidPatch>())?;
    m.add("InvalidInput", py.get_type::<InvalidInput>())?;
    m.add("NumericalError", py.get_type::<NumericalError>())?;
    m.add("FailedMinimization", py.get_type::<FailedMinimization>())?;
    m.add("InvalidToyFile", py.get_type::<InvalidToyFile>())?;
    m.add("FileError", py.get_type::<FileError>())?;
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    model::register(m)?;
    infer::register(m)?;
    report::register(m)?;
    toys::register(m)?;
    train::register(m)?;
    Ok(())
}
