//! The `gradfit` command line.

mod core_cmds;
mod gpu_cmds;
mod infer_cmds;
mod report_cmds;
pub mod table;

use crate::error::{Error, Result};
use crate::model::{HistFactoryModel, InterpCode, ModelOptions};
use crate::workspace::{self, ReadOptions};
use clap::{Args, Parser, Subcommand};
use serde_json::Value;
use std::path::PathBuf;

/// Exit status for a run whose results were written but a fit did not converge.
pub const EXIT_NOT_CONVERGED: i32 = 3;

pub use gpu_cmds::EXIT_SELFTEST_FAILED;

#[derive(Parser, Debug)]
#[command(
    name = "gradfit",
    version,
    about = "Differentiable HistFactory likelihoods, fits and inference (pyhf JSON)"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Evaluate twice_nll, its gradient and (optionally) its Hessian at given parameters.
    Eval(core_cmds::EvalArgs),
    /// Maximum-likelihood fit (free, or with the POI or other parameters fixed).
    Fit(core_cmds::FitArgs),
    /// Describe a workspace: channels, samples, modifiers, parameters.
    Inspect(core_cmds::InspectArgs),
    /// CLs hypothesis test at one POI value (asymptotic or toys).
    Cls(infer_cmds::ClsArgs),
    /// Upper limits on the POI, observed and expected band.
    Limit(infer_cmds::LimitArgs),
    /// Discovery p-value and significance (q0).
    Discovery(infer_cmds::DiscoveryArgs),
    /// Profile-likelihood scan of a parameter.
    Scan(infer_cmds::ScanArgs),
    /// Generate and fit pseudo-experiments, save per-toy results (shardable).
    Toys(infer_cmds::ToysArgs),
    /// Merge toy shards into one run.
    Merge(infer_cmds::MergeArgs),
    /// Pulls of the parameters at the best fit: (fitted - nominal) / pre-fit width.
    Pulls(report_cmds::PullsArgs),
    /// Impacts of the nuisance parameters on the POI (Hessian and refit ranking).
    Impacts(report_cmds::ImpactsArgs),
    /// Pre- and post-fit yields per channel, sample and bin, with uncertainties.
    Yields(report_cmds::YieldsArgs),
    /// Correlation matrix of the parameters at the best fit.
    Corr(report_cmds::CorrArgs),
    /// Compare the GPU with the CPU (evaluations, fits, toys) and benchmark it.
    Selftest(gpu_cmds::SelftestArgs),
}

/// Options shared by every command that reads a workspace.
#[derive(Args, Debug, Clone)]
pub struct ModelArgs {
    /// pyhf JSON workspace.
    pub workspace: PathBuf,
    /// RFC 6902 JSON Patch applied to the workspace (repeatable, in order).
    #[arg(short = 'p', long = "patch", value_name = "PATCH")]
    pub patches: Vec<PathBuf>,
    /// pyhf patchset file (use with --patch-name).
    #[arg(long, value_name = "FILE", requires = "patch_name")]
    pub patchset: Option<PathBuf>,
    /// Name of the patch to apply from --patchset.
    #[arg(long, value_name = "NAME", requires = "patchset")]
    pub patch_name: Option<String>,
    /// Measurement to use (default: the first in the workspace).
    #[arg(long)]
    pub measurement: Option<String>,
    /// Interpolation code per modifier type, e.g. `--interp normsys=code1 --interp histosys=code0`.
    #[arg(long = "interp", value_name = "TYPE=CODE", value_parser = parse_interp)]
    pub interp: Vec<(String, InterpCode)>,
    /// Accepted for old scripts; negative nominal yields are accepted by default.
    #[arg(long, hide = true)]
    pub allow_negative_yields: bool,
    /// pyhf's domain exactly: refuse negative nominal yields, and no extension
    /// of the Poisson terms where an expected rate is not positive.
    #[arg(long, conflicts_with = "allow_negative_yields")]
    pub strict: bool,
    /// Where fits and toys run: cpu, cuda or cuda:N (the GPU needs the cuda
    /// build, see scripts/build-cuda.sh).
    #[arg(long, default_value = "cpu", value_parser = |s: &str| s.parse::<crate::device::Device>())]
    pub device: crate::device::Device,
}

fn parse_interp(s: &str) -> std::result::Result<(String, InterpCode), String> {
    let (t, c) = s
        .split_once('=')
        .ok_or_else(|| format!("expected TYPE=CODE, got '{s}'"))?;
    let t = t.trim().to_ascii_lowercase();
    if t != "normsys" && t != "histosys" {
        return Err(format!(
            "interpolation applies to normsys or histosys, not '{t}'"
        ));
    }
    Ok((t, c.parse::<InterpCode>()?))
}

impl ModelArgs {
    /// Read patches, the workspace, and compile the model; warnings go to stderr.
    pub fn load(&self) -> Result<HistFactoryModel> {
        Ok(self.load_with_digest()?.0)
    }

    /// Like [`load`](Self::load), also returning a SHA-256 digest of the patched
    /// workspace and the model options (it identifies a model across runs).
    pub fn load_with_digest(&self) -> Result<(HistFactoryModel, String)> {
        let mut patches: Vec<Value> = Vec::new();
        if let (Some(ps), Some(name)) = (&self.patchset, &self.patch_name) {
            let set = workspace::load_patchset(ps)?;
            patches.push(workspace::apply_patchset(
                &set,
                name,
                &ps.display().to_string(),
            )?);
        }
        let mut labels = Vec::new();
        for p in &self.patches {
            patches.push(workspace::load_patch(p)?);
            labels.push(p.display().to_string());
        }
        let read = ReadOptions {
            strict: self.strict,
        };
        let mut value = workspace::read_json(&self.workspace)?;
        let offset = usize::from(self.patchset.is_some());
        for (i, p) in patches.iter().enumerate() {
            let label = if i < offset {
                format!(
                    "{} [{}]",
                    self.patchset.as_ref().unwrap().display(),
                    self.patch_name.as_ref().unwrap()
                )
            } else {
                labels[i - offset].clone()
            };
            workspace::apply_patch(&mut value, p, &label)?;
        }
        let src = self.workspace.display().to_string();
        let ws = workspace::Workspace::from_value(value, &[], &src, &read)?;
        let mut opts = ModelOptions {
            measurement: self.measurement.clone(),
            strict_domain: self.strict,
            ..Default::default()
        };
        for (t, c) in &self.interp {
            if t == "normsys" {
                opts.normsys_code = *c;
            } else {
                opts.histosys_code = *c;
            }
        }
        if opts.histosys_code.is_multiplicative() {
            eprintln!(
                "warning: histosys with {} interpolates ratios to the nominal (needs positive templates)",
                opts.histosys_code
            );
        }
        let model = HistFactoryModel::from_workspace(&ws, &opts, &src)?;
        for w in &model.warnings {
            eprintln!("warning: {src}: {w}");
        }
        let digest = {
            use sha2::{Digest, Sha256};
            let mut h = Sha256::new();
            h.update(
                serde_json::to_string(&ws)
                    .map_err(|e| Error::input(e.to_string()))?
                    .as_bytes(),
            );
            h.update(
                format!(
                    "|measurement={}|normsys={}|histosys={}",
                    model.measurement, model.normsys_code, model.histosys_code
                )
                .as_bytes(),
            );
            if model.strict_domain {
                h.update(b"|strict");
            }
            h.finalize()
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect::<String>()
        };
        Ok((model, digest))
    }
}

/// Output options shared by every command.
#[derive(Args, Debug, Clone)]
pub struct OutputArgs {
    /// Print JSON on stdout instead of tables.
    #[arg(long)]
    pub json: bool,
    /// Also write the JSON result to this file (atomically).
    #[arg(short = 'o', long, value_name = "FILE")]
    pub output: Option<PathBuf>,
}

impl OutputArgs {
    /// Emit a result: JSON or a table on stdout, and the JSON file if asked.
    pub fn emit(&self, value: &Value, table: impl FnOnce() -> String) -> Result<()> {
        if let Some(path) = &self.output {
            crate::util::write_json_atomic(path, value)?;
        }
        if self.json {
            let s = serde_json::to_string_pretty(value).map_err(|e| Error::input(e.to_string()))?;
            println!("{s}");
        } else {
            print!("{}", table());
        }
        Ok(())
    }
}

/// Run the command line; returns the process exit status.
pub fn main() -> i32 {
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let code = if e.use_stderr() { 2 } else { 0 };
            let _ = e.print();
            return code;
        }
    };
    let r = match &cli.command {
        Command::Eval(a) => core_cmds::eval(a),
        Command::Fit(a) => core_cmds::fit(a),
        Command::Inspect(a) => core_cmds::inspect(a),
        Command::Cls(a) => infer_cmds::cls(a),
        Command::Limit(a) => infer_cmds::limit(a),
        Command::Discovery(a) => infer_cmds::discovery(a),
        Command::Scan(a) => infer_cmds::scan(a),
        Command::Toys(a) => infer_cmds::toys_cmd(a),
        Command::Merge(a) => infer_cmds::merge_cmd(a),
        Command::Pulls(a) => report_cmds::pulls(a),
        Command::Impacts(a) => report_cmds::impacts(a),
        Command::Yields(a) => report_cmds::yields(a),
        Command::Corr(a) => report_cmds::corr(a),
        Command::Selftest(a) => gpu_cmds::selftest(a),
    };
    match r {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e}");
            1
        }
    }
}

/// Parse `NAME=VALUE` pairs for `--fix`.
pub fn parse_fix(s: &str) -> std::result::Result<(String, f64), String> {
    let (n, v) = s
        .rsplit_once('=')
        .ok_or_else(|| format!("expected NAME=VALUE, got '{s}'"))?;
    let v: f64 = v
        .trim()
        .parse()
        .map_err(|_| format!("'{v}' is not a number in '{s}'"))?;
    if !v.is_finite() {
        return Err(format!("value in '{s}' must be finite"));
    }
    Ok((n.trim().to_string(), v))
}

/// Look up a parameter by name with a helpful error.
pub fn par_index(model: &HistFactoryModel, name: &str) -> Result<usize> {
    model.par_index(name).ok_or_else(|| {
        let mut close: Vec<&str> = model
            .par_names
            .iter()
            .filter(|n| {
                n.to_ascii_lowercase().contains(&name.to_ascii_lowercase())
                    || name.contains(n.as_str())
            })
            .map(|s| s.as_str())
            .take(5)
            .collect();
        if close.is_empty() {
            close = model.par_names.iter().take(5).map(|s| s.as_str()).collect();
        }
        Error::input(format!(
            "no parameter named '{name}' in the model ({} parameters; e.g. {})",
            model.n_pars(),
            close.join(", ")
        ))
    })
}

/// JSON number or null for non-finite values.
pub fn num(x: f64) -> Value {
    if x.is_finite() {
        serde_json::json!(x)
    } else {
        Value::Null
    }
}

/// JSON array of numbers (nulls for non-finite).
pub fn nums(v: &[f64]) -> Value {
    Value::Array(v.iter().map(|x| num(*x)).collect())
}

/// JSON matrix from a row-major P x P buffer.
pub fn matrix(v: &[f64], p: usize) -> Value {
    Value::Array((0..p).map(|i| nums(&v[i * p..(i + 1) * p])).collect())
}
