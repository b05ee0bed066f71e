//! The configuration file of `gradfit train CONFIG.json`.
//!
//! ```json
//! {"problem": "neos", "output": "runs/neos",
//!  "options": {"hidden": [1024, 1024], "bins": 4, "bandwidth": 0.1,
//!              "loss": {"kind": "cls", "mu": 1.0},
//!              "optimiser": {"kind": "adam", "lr": 0.001}, "steps": 10, "seed": 0}}
//! ```
//!
//! `problem` is `neos` (options: [`super::neos::NeosConfig`]) or `inferno`
//! (options: [`super::inferno::InfernoConfig`]); every option has a default.

use super::inferno::InfernoConfig;
use super::neos::NeosConfig;
use crate::error::{Error, Result};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// Which problem and its options.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "problem", content = "options", rename_all = "lowercase")]
pub enum Problem {
    /// neos's four-blob demonstration.
    Neos(NeosConfig),
    /// INFERNO's synthetic benchmark.
    Inferno(InfernoConfig),
}

/// A training run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainConfig {
    /// Problem and options.
    #[serde(flatten)]
    pub problem: Problem,
    /// Output folder (curves, checkpoints, workspace, summary).
    pub output: PathBuf,
}

impl TrainConfig {
    /// Read a configuration file; errors name the file and the JSON location.
    pub fn load(path: &Path) -> Result<Self> {
        let value = crate::workspace::read_json(path)?;
        let name = path.display().to_string();
        let cfg: TrainConfig = serde_path_to_error::deserialize(&value).map_err(|e| {
            let loc = e.path().to_string();
            Error::workspace(
                &name,
                format!("/{}", loc.replace('.', "/")),
                e.inner().to_string(),
            )
        })?;
        if cfg.output.as_os_str().is_empty() {
            return Err(Error::workspace(
                &name,
                "/output",
                "the output folder is empty",
            ));
        }
        Ok(cfg)
    }
}
