//! Entry points for fuzzing the readers: each takes arbitrary bytes, runs
//! one reader as the command line would, and must return (an error is fine)
//! without panicking, aborting or hanging. The cargo-fuzz targets in `fuzz/`
//! and the mutation campaign in `tests/fuzz.rs` call these.

use crate::fit::{FitOptions, FitSpec};
use crate::model::{HistFactoryModel, Likelihood, ModelOptions};
use crate::workspace::{self, ReadOptions, Workspace};
use serde_json::Value;

/// Models larger than this are only compiled, not evaluated and fitted
/// (keeps each fuzz input fast).
const MAX_FIT_PARS: usize = 64;

/// Read, validate and compile a pyhf workspace; evaluate and briefly fit it
/// when it is small.
/// The direct typed parse and the JSON-tree path must agree on what they
/// accept (panics otherwise, which the fuzzers report).
pub fn workspace(data: &[u8]) {
    let fast = Workspace::from_bytes(data, "fuzz", &ReadOptions::default());
    let Ok(v) = workspace::json::parse_strict(data, "fuzz") else {
        assert!(
            fast.is_err(),
            "typed parse accepted what the JSON reader refuses"
        );
        return;
    };
    let slow = Workspace::from_value(v.clone(), &[], "fuzz", &ReadOptions::default());
    assert_eq!(
        fast.is_ok(),
        slow.is_ok(),
        "typed parse and JSON tree disagree: {:?} vs {:?}",
        fast.as_ref().err().map(|e| e.to_string()),
        slow.as_ref().err().map(|e| e.to_string())
    );
    compile_and_fit(v);
}

fn compile_and_fit(v: Value) {
    if crate::model::format_of(&v) != crate::model::Format::Pyhf {
        // HS3 and NSBI documents: their readers, then the model they give
        if let Ok(m) = crate::model::load_other(
            crate::model::format_of(&v),
            &v,
            "fuzz",
            std::path::Path::new("."),
        ) {
            exercise(&m);
        }
        return;
    }
    let Ok(ws) = Workspace::from_value(v, &[], "fuzz", &ReadOptions::default()) else {
        return;
    };
    let Ok(m) = HistFactoryModel::from_workspace(&ws, &ModelOptions::default(), "fuzz") else {
        return;
    };
    exercise(&m);
}

fn exercise<L: Likelihood>(m: &L) {
    if m.n_pars() > MAX_FIT_PARS {
        return;
    }
    let p = m.n_pars();
    let mut s = m.scratch();
    let (mut g, mut h) = (vec![0.0; p], vec![0.0; p * p]);
    let _ = m.eval(m.init(), m.observed(), &mut s, Some(&mut g), Some(&mut h));
    let opts = FitOptions {
        max_iter: 30,
        ..FitOptions::default()
    };
    let _ = crate::fit::fit(m, m.observed(), &FitSpec::from_model(m), &opts);
}

/// Split the input at the first NUL byte into a document and an RFC 6902
/// patch, apply it, and compile the result.
pub fn patch(data: &[u8]) {
    let cut = data.iter().position(|&b| b == 0).unwrap_or(data.len());
    let (doc, rest) = data.split_at(cut);
    let patch = rest.get(1..).unwrap_or(&[]);
    let (Ok(mut d), Ok(p)) = (
        workspace::json::parse_strict(doc, "doc"),
        workspace::json::parse_strict(patch, "patch"),
    ) else {
        return;
    };
    if workspace::apply_patch(&mut d, &p, "patch").is_ok() {
        compile_and_fit(d);
    }
}

/// Read a pyhf patchset and select each of its patches.
pub fn patchset(data: &[u8]) {
    let Ok(v) = workspace::json::parse_strict(data, "fuzz") else {
        return;
    };
    let Ok(ps) = workspace::patchset_from_value(&v, "fuzz") else {
        return;
    };
    for p in ps.patches.iter().take(16) {
        let _ = workspace::apply_patchset(&ps, &p.metadata.name, "fuzz");
    }
}
