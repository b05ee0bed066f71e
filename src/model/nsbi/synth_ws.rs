//! Workspaces of the analytic off-shell-like problem ([`super::synth`]),
//! written as NSBI JSON with `.npy` arrays: the per-event analysis, and the
//! histogram analysis of the same events in bins of `x_1` written in the
//! consistency-limit form (per-event ratios constant within each bin, so the
//! likelihood is the binned Poisson likelihood up to a constant).

use super::arrays::write_npy;
use super::synth::{OffShell, PROCESSES};
use crate::error::{Error, Result};
use serde_json::{Value, json};
use std::path::{Path, PathBuf};

fn save(dir: &Path, name: &str, v: &[f64]) -> Result<String> {
    write_npy(&dir.join(name), v)?;
    Ok(name.to_string())
}

fn coefficient_expr(c: usize) -> &'static str {
    ["mu - sqrt(mu)", "sqrt(mu)", "1 - sqrt(mu)"][c]
}

fn modifiers(
    c: usize,
    hi: f64,
    lo: f64,
    ratios: Option<(String, String)>,
    lumi: (f64, f64),
) -> Value {
    let mut m = vec![
        json!({"name": format!("f_{}", PROCESSES[c]), "type": "customfunc",
                            "data": {"expr": coefficient_expr(c)}}),
    ];
    if c > 0 {
        let mut d = json!({"hi_data": [hi], "lo_data": [lo]});
        if let Some((h, l)) = ratios {
            d["hi_ratio"] = json!(h);
            d["lo_ratio"] = json!(l);
        }
        m.push(json!({"name": "alpha_shape", "type": "normplusshape", "data": d}));
    }
    m.push(json!({"name": "alpha_lumi", "type": "normsys", "data": {"hi": lumi.0, "lo": lumi.1}}));
    Value::Array(m)
}

fn measurement(name: &str) -> Value {
    json!([{"name": name, "config": {"poi": "mu", "parameters": [
        {"name": "mu", "inits": [1.0], "bounds": [[0.0, 10.0]]}
    ]}}])
}

fn write_json(path: &Path, v: &Value) -> Result<()> {
    let s = serde_json::to_string_pretty(v).map_err(|e| Error::input(e.to_string()))?;
    std::fs::write(path, s).map_err(|e| Error::Io {
        path: path.to_path_buf(),
        source: e,
    })
}

impl OffShell {
    /// Write the per-event workspace `nsbi.json` (and its arrays) into `dir`
    /// for observed events `obs` and a weighted reference sample.
    pub fn write_workspace(
        &self,
        dir: &Path,
        obs: &[[f64; 2]],
        reference: (&[[f64; 2]], &[f64]),
    ) -> Result<PathBuf> {
        std::fs::create_dir_all(dir).map_err(|e| Error::Io {
            path: dir.to_path_buf(),
            source: e,
        })?;
        let a = self.arrays(obs, None);
        let r = self.arrays(reference.0, Some(reference.1.to_vec()));
        let (su, sd) = self.sbi_yield_ratios();
        let nus = [self.nu_s, self.nu_sbi(0.0), self.nu_b];
        let mut samples = Vec::new();
        let mut ref_ratios = serde_json::Map::new();
        let mut ref_shapes = serde_json::Map::new();
        for c in 0..3 {
            let p = PROCESSES[c];
            let ratio = save(dir, &format!("r_{p}.npy"), &a.ratios[c])?;
            ref_ratios.insert(
                p.into(),
                json!(save(dir, &format!("ref_r_{p}.npy"), &r.ratios[c])?),
            );
            // shape variations: index 0 is B, index 1 is SBI
            let (shape, hi, lo) = match c {
                1 => (Some(1), su, sd),
                2 => (Some(0), 1.0, 1.0),
                _ => (None, 1.0, 1.0),
            };
            let ratios = match shape {
                Some(e) => {
                    let h = save(dir, &format!("r_{p}_shape_up.npy"), &a.shapes[e].0)?;
                    let l = save(dir, &format!("r_{p}_shape_down.npy"), &a.shapes[e].1)?;
                    let rh = save(dir, &format!("ref_r_{p}_shape_up.npy"), &r.shapes[e].0)?;
                    let rl = save(dir, &format!("ref_r_{p}_shape_down.npy"), &r.shapes[e].1)?;
                    ref_shapes.insert(p.into(), json!({"alpha_shape": {"hi": rh, "lo": rl}}));
                    Some((h, l))
                }
                None => None,
            };
            samples.push(json!({"name": p, "data": [nus[c]], "ratios": ratio,
                                "modifiers": modifiers(c, hi, lo, ratios, self.lumi)}));
        }
        let ref_w = save(dir, "ref_weights.npy", reference.1)?;
        let ws = json!({
            "channels": [{"name": "SR", "type": "unbinned", "samples": samples,
                          "reference": {"weights": ref_w, "ratios": ref_ratios, "shape_ratios": ref_shapes}}],
            "observations": [{"name": "SR", "data": []}],
            "measurements": measurement("offshell_nsbi"),
            "version": "1.0.0",
        });
        let path = dir.join("nsbi.json");
        write_json(&path, &ws)?;
        Ok(path)
    }

    /// The bin of `x_1` an event falls in (outer bins open).
    pub fn bin_of(edges: &[f64], x1: f64) -> usize {
        let nb = edges.len() - 1;
        (1..nb).take_while(|&b| x1 >= edges[b]).count()
    }

    /// Write the histogram analysis `histogram.json` of the same observed events
    /// in bins of `x_1` (`edges`): each event's ratios are its bin's
    /// `nu_cb / nu_c`, and the shape variations its bin's yield ratios.
    pub fn write_histogram_workspace(
        &self,
        dir: &Path,
        obs: &[[f64; 2]],
        edges: &[f64],
    ) -> Result<PathBuf> {
        std::fs::create_dir_all(dir).map_err(|e| Error::Io {
            path: dir.to_path_buf(),
            source: e,
        })?;
        let nominal = self.binned_yields(edges);
        let shifted = |a: f64| {
            let mut m = self.clone();
            m.bkg.mean[0] += a * self.shift[0];
            m.bkg.mean[1] += a * self.shift[1];
            m.binned_yields(edges)
        };
        let (up, dn) = (shifted(1.0), shifted(-1.0));
        let tot = |v: &[f64]| v.iter().sum::<f64>();
        let bins: Vec<usize> = obs.iter().map(|x| Self::bin_of(edges, x[0])).collect();
        let mut samples = Vec::new();
        for c in 0..3 {
            let p = PROCESSES[c];
            let (nu, nu_up, nu_dn) = (tot(&nominal[c]), tot(&up[c]), tot(&dn[c]));
            let r: Vec<f64> = bins.iter().map(|&b| nominal[c][b] / nu).collect();
            let ratio = save(dir, &format!("h_r_{p}.npy"), &r)?;
            let ratios = if c > 0 {
                // shape-only per-bin ratios (varied / nominal, each normalised)
                let h: Vec<f64> = bins
                    .iter()
                    .map(|&b| (up[c][b] / nu_up) / (nominal[c][b] / nu))
                    .collect();
                let l: Vec<f64> = bins
                    .iter()
                    .map(|&b| (dn[c][b] / nu_dn) / (nominal[c][b] / nu))
                    .collect();
                Some((
                    save(dir, &format!("h_r_{p}_shape_up.npy"), &h)?,
                    save(dir, &format!("h_r_{p}_shape_down.npy"), &l)?,
                ))
            } else {
                None
            };
            samples.push(json!({"name": p, "data": [nu], "ratios": ratio,
                                "modifiers": modifiers(c, nu_up / nu, nu_dn / nu, ratios, self.lumi)}));
        }
        let ws = json!({
            "channels": [{"name": "SR_x1_hist", "type": "unbinned", "samples": samples}],
            "measurements": measurement("offshell_histogram"),
            "version": "1.0.0",
        });
        let path = dir.join("histogram.json");
        write_json(&path, &ws)?;
        Ok(path)
    }
}
