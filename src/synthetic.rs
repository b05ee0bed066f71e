//! Synthetic workspaces for benchmarks and tests.

use serde_json::{Value, json};

/// `n_channels` channels of `n_bins` bins, each with a signal sample scaled by
/// the normfactor `mu` and a background with a per-bin shapesys (10% relative
/// uncertainty): `mu` plus `n_channels * n_bins` nuisance parameters. The
/// observed data are the background plus half the signal, rounded.
pub fn shapesys_workspace(n_channels: usize, n_bins: usize) -> Value {
    let mut channels = Vec::new();
    let mut observations = Vec::new();
    for c in 0..n_channels {
        let name = format!("ch{c:03}");
        let bkg: Vec<f64> = (0..n_bins)
            .map(|b| 50.0 + 40.0 * ((c * 7 + b * 3) % 5) as f64)
            .collect();
        let sig: Vec<f64> = (0..n_bins)
            .map(|b| 2.0 + ((c + b) % 4) as f64 * 2.0)
            .collect();
        let unc: Vec<f64> = bkg.iter().map(|x| 0.1 * x).collect();
        let obs: Vec<f64> = bkg
            .iter()
            .zip(&sig)
            .map(|(b, s)| (b + 0.5 * s).round())
            .collect();
        channels.push(json!({
            "name": name,
            "samples": [
                {"name": "signal", "data": sig, "modifiers": [{"name": "mu", "type": "normfactor", "data": null}]},
                {"name": "background", "data": bkg, "modifiers": [{"name": format!("bkg_stat_{name}"), "type": "shapesys", "data": unc}]}
            ]
        }));
        observations.push(json!({"name": name, "data": obs}));
    }
    json!({
        "channels": channels,
        "observations": observations,
        "measurements": [{"name": "synthetic", "config": {"poi": "mu", "parameters": []}}],
        "version": "1.0.0"
    })
}

/// The compiled model of [`shapesys_workspace`].
pub fn shapesys_model(n_channels: usize, n_bins: usize) -> crate::model::HistFactoryModel {
    use crate::model::{HistFactoryModel, ModelOptions};
    use crate::workspace::{ReadOptions, Workspace};
    let ws = Workspace::from_value(
        shapesys_workspace(n_channels, n_bins),
        &[],
        "synthetic",
        &ReadOptions::default(),
    )
    .expect("the synthetic workspace is valid");
    HistFactoryModel::from_workspace(&ws, &ModelOptions::default(), "synthetic")
        .expect("the synthetic model compiles")
}
