//! The `gradfit` command line.

mod core_cmds;
mod gpu_cmds;
mod infer_cmds;
mod infer_plots;
mod inspect_cmd;
mod limit_cmd;
mod limit_toys;
mod model_args;
mod neyman_cmd;
mod progress;
mod pyhf_cmds;
mod report_cmds;
pub mod table;
mod toy_summary;
mod train_cmd;
mod yields_cmd;
mod yields_plots;
mod yields_unbinned;

use crate::error::{Error, Result};
use crate::model::Likelihood;
use clap::{Args, Parser, Subcommand};
use serde_json::Value;
use std::path::PathBuf;

pub use model_args::{Loaded, ModelArgs};

/// Exit status for a run whose results were written but a fit did not converge
/// (or a result is not a finite number).
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
    Inspect(inspect_cmd::InspectArgs),
    /// CLs hypothesis test at one POI value (asymptotic or toys).
    Cls(infer_cmds::ClsArgs),
    /// Upper limits on the POI, observed and expected band.
    Limit(limit_cmd::LimitArgs),
    /// Discovery p-value and significance (q0).
    Discovery(infer_cmds::DiscoveryArgs),
    /// Profile-likelihood scan of a parameter.
    Scan(infer_cmds::ScanArgs),
    /// Generate and fit pseudo-experiments, save per-toy results (shardable).
    Toys(infer_cmds::ToysArgs),
    /// Neyman belts of the profile likelihood ratio from toys, and the intervals they give.
    Neyman(neyman_cmd::NeymanArgs),
    /// Merge toy shards into one run.
    Merge(infer_cmds::MergeArgs),
    /// Pulls of the parameters at the best fit: (fitted - nominal) / pre-fit width.
    Pulls(report_cmds::PullsArgs),
    /// Impacts of the nuisance parameters on the POI (Hessian and refit ranking).
    #[command(visible_alias = "ranking")]
    Impacts(report_cmds::ImpactsArgs),
    /// Pre- and post-fit yields per channel, sample and bin, with uncertainties.
    Yields(yields_cmd::YieldsArgs),
    /// Correlation matrix of the parameters at the best fit.
    Corr(report_cmds::CorrArgs),
    /// Compare the GPU with the CPU (evaluations, fits, toys) and benchmark it.
    Selftest(gpu_cmds::SelftestArgs),
    /// Combine workspaces into one (pyhf combine).
    Combine(pyhf_cmds::CombineArgs),
    /// Remove channels, samples, modifiers or measurements (pyhf prune).
    Prune(pyhf_cmds::PruneArgs),
    /// Rename channels, samples, modifiers or measurements (pyhf rename).
    Rename(pyhf_cmds::RenameArgs),
    /// Digest of a workspace, as pyhf computes it (pyhf digest).
    Digest(pyhf_cmds::DigestArgs),
    /// Sort a workspace's channels, samples, modifiers... by name (pyhf sort).
    Sort(pyhf_cmds::SortArgs),
    /// Patchsets: inspect, extract, apply, verify (pyhf patchset).
    #[command(subcommand)]
    Patchset(pyhf_cmds::PatchsetCmd),
    /// Train a network on an inference loss (neos, INFERNO).
    Train(train_cmd::TrainArgs),
}

impl Command {
    /// The file the command writes its result to, checked before any work.
    fn output_path(&self) -> Option<&std::path::Path> {
        let out = match self {
            Command::Eval(a) => &a.out,
            Command::Fit(a) => &a.out,
            Command::Inspect(a) => &a.out,
            Command::Cls(a) => &a.out,
            Command::Limit(a) => &a.out,
            Command::Discovery(a) => &a.out,
            Command::Scan(a) => &a.out,
            Command::Pulls(a) => &a.out,
            Command::Impacts(a) => &a.out,
            Command::Yields(a) => &a.out,
            Command::Corr(a) => &a.out,
            Command::Toys(a) => return Some(&a.out),
            Command::Neyman(a) => &a.out,
            Command::Merge(a) => return Some(&a.out),
            Command::Selftest(_) | Command::Digest(_) | Command::Train(_) => return None,
            Command::Combine(a) => return a.out.output.as_deref(),
            Command::Prune(a) => return a.out.output.as_deref(),
            Command::Rename(a) => return a.out.output.as_deref(),
            Command::Sort(a) => return a.out.output.as_deref(),
            Command::Patchset(c) => return c.output_path(),
        };
        out.output.as_deref()
    }
}

/// Output options shared by every command.
#[derive(Args, Debug, Clone)]
pub struct OutputArgs {
    /// Print JSON on stdout instead of tables.
    #[arg(long)]
    pub json: bool,
    /// Also write the JSON result to this file (atomically).
    #[arg(short = 'o', long, visible_alias = "output-file", value_name = "FILE")]
    pub output: Option<PathBuf>,
}

impl OutputArgs {
    /// Emit a result: JSON or a table on stdout, and the JSON file if asked.
    /// Numbers that are not finite (see [`num`]) are written as `null`, and
    /// then, after the output, an [`Error::NotFinite`] names each of them.
    pub fn emit(&self, value: &Value, table: impl FnOnce() -> String) -> Result<()> {
        let mut clean = value.clone();
        let mut bad = Vec::new();
        scrub_nonfinite(&mut clean, &mut String::new(), &mut bad);
        if let Some(path) = &self.output {
            crate::util::write_json_atomic(path, &clean)?;
        }
        if self.json {
            let s =
                serde_json::to_string_pretty(&clean).map_err(|e| Error::input(e.to_string()))?;
            write_stdout(&format!("{s}\n"))?;
        } else {
            write_stdout(&table())?;
        }
        if bad.is_empty() {
            return Ok(());
        }
        let names = clean.get("par_names").and_then(Value::as_array);
        let shown: Vec<String> = bad
            .iter()
            .take(8)
            .map(|b| annotate(b, &clean, names))
            .collect();
        let more = if bad.len() > shown.len() {
            format!(" and {} more", bad.len() - shown.len())
        } else {
            String::new()
        };
        Err(Error::NotFinite(format!(
            "the result holds {} value{} that {} not a finite number (written as null): {}{more}",
            bad.len(),
            if bad.len() == 1 { "" } else { "s" },
            if bad.len() == 1 { "is" } else { "are" },
            shown.join(", ")
        )))
    }
}

/// Name the parameter behind `/key/i` when `key` holds one entry per parameter.
fn annotate(bad: &str, root: &Value, names: Option<&Vec<Value>>) -> String {
    let (Some(names), Some(path)) = (names, bad.split(' ').next()) else {
        return bad.to_string();
    };
    let segs: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    if let [key, i, ..] = segs[..]
        && let (Some(arr), Ok(i)) = (root.get(key).and_then(Value::as_array), i.parse::<usize>())
        && arr.len() == names.len()
        && let Some(n) = names.get(i).and_then(Value::as_str)
    {
        return format!("{bad} ({n})");
    }
    bad.to_string()
}

/// Write to standard output; a reader that closed the pipe gives
/// [`Error::ClosedOutput`], any other failure (a full disk) an I/O error.
pub fn write_stdout(s: &str) -> Result<()> {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    out.write_all(s.as_bytes())
        .and_then(|_| out.flush())
        .map_err(|e| {
            if e.kind() == std::io::ErrorKind::BrokenPipe {
                Error::ClosedOutput
            } else {
                Error::Io {
                    path: PathBuf::from("<standard output>"),
                    source: e,
                }
            }
        })
}

/// Marker that [`num`] puts where a number is not finite; [`OutputArgs::emit`]
/// replaces it by `null` and reports where it was.
const NONFINITE: &str = "\u{0}gradfit-nonfinite:";

fn scrub_nonfinite(v: &mut Value, path: &mut String, bad: &mut Vec<String>) {
    match v {
        Value::String(s) => {
            if let Some(what) = s.strip_prefix(NONFINITE) {
                bad.push(format!(
                    "{} = {what}",
                    if path.is_empty() { "/" } else { path }
                ));
                *v = Value::Null;
            }
        }
        Value::Array(a) => {
            for (i, x) in a.iter_mut().enumerate() {
                let n = path.len();
                path.push_str(&format!("/{i}"));
                scrub_nonfinite(x, path, bad);
                path.truncate(n);
            }
        }
        Value::Object(o) => {
            for (k, x) in o.iter_mut() {
                let n = path.len();
                path.push('/');
                path.push_str(k);
                scrub_nonfinite(x, path, bad);
                path.truncate(n);
            }
        }
        _ => {}
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
    if let Some(path) = cli.command.output_path()
        && let Err(e) = crate::util::check_writable(path)
    {
        eprintln!("error: {e}");
        return 1;
    }
    let r = match &cli.command {
        Command::Eval(a) => core_cmds::eval(a),
        Command::Fit(a) => core_cmds::fit(a),
        Command::Inspect(a) => inspect_cmd::inspect(a),
        Command::Cls(a) => infer_cmds::cls(a),
        Command::Limit(a) => limit_cmd::limit(a),
        Command::Discovery(a) => infer_cmds::discovery(a),
        Command::Scan(a) => infer_cmds::scan(a),
        Command::Toys(a) => infer_cmds::toys_cmd(a),
        Command::Neyman(a) => neyman_cmd::neyman_cmd(a),
        Command::Merge(a) => infer_cmds::merge_cmd(a),
        Command::Pulls(a) => report_cmds::pulls(a),
        Command::Impacts(a) => report_cmds::impacts(a),
        Command::Yields(a) => yields_cmd::yields(a),
        Command::Corr(a) => report_cmds::corr(a),
        Command::Selftest(a) => gpu_cmds::selftest(a),
        Command::Combine(a) => pyhf_cmds::combine(a),
        Command::Prune(a) => pyhf_cmds::prune(a),
        Command::Rename(a) => pyhf_cmds::rename(a),
        Command::Digest(a) => pyhf_cmds::digest(a),
        Command::Sort(a) => pyhf_cmds::sort(a),
        Command::Patchset(c) => pyhf_cmds::patchset(c),
        Command::Train(a) => train_cmd::train(a),
    };
    match r {
        Ok(code) => code,
        Err(Error::ClosedOutput) => 0,
        Err(e @ Error::NotFinite(_)) => {
            eprintln!("error: {e}");
            EXIT_NOT_CONVERGED
        }
        Err(e) => {
            eprintln!("error: {e}");
            1
        }
    }
}

/// A whole number of at least 1.
pub fn parse_positive(s: &str) -> std::result::Result<u64, String> {
    match s.trim().parse::<u64>() {
        Ok(n) if n >= 1 => Ok(n),
        _ => Err(format!("'{s}' is not a whole number of at least 1")),
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

/// Refuse a tested or fixed value outside a parameter's bounds (pyhf raises
/// there too), with the option that widens them.
pub fn check_poi_value<M: Likelihood>(m: &M, i: usize, v: f64, what: &str) -> Result<()> {
    let (lo, hi) = m.bounds()[i];
    if v < lo || v > hi {
        let name = &m.par_names()[i];
        let sep = if what.ends_with('=') { "" } else { " " };
        return Err(Error::input(format!(
            "{what}{sep}{v}: outside the bounds [{lo}, {hi}] of '{name}'; \
             widen them with --bounds {name}=LO:HI if that is meant"
        )));
    }
    Ok(())
}

/// Look up a parameter by name with a helpful error.
pub fn par_index<M: Likelihood>(model: &M, name: &str) -> Result<usize> {
    let names = model.par_names();
    names.iter().position(|n| n == name).ok_or_else(|| {
        let mut close: Vec<&str> = names
            .iter()
            .filter(|n| {
                n.to_ascii_lowercase().contains(&name.to_ascii_lowercase())
                    || name.contains(n.as_str())
            })
            .map(|s| s.as_str())
            .take(5)
            .collect();
        if close.is_empty() {
            close = names.iter().take(5).map(|s| s.as_str()).collect();
        }
        Error::input(format!(
            "no parameter named '{name}' in the model ({} parameters; e.g. {})",
            names.len(),
            close.join(", ")
        ))
    })
}

/// JSON number; a value that is not finite becomes a marker that
/// [`OutputArgs::emit`] writes as `null` and reports as an error.
pub fn num(x: f64) -> Value {
    if x.is_finite() {
        serde_json::json!(x)
    } else {
        Value::String(format!("{NONFINITE}{x}"))
    }
}

/// JSON array of numbers (see [`num`]).
pub fn nums(v: &[f64]) -> Value {
    Value::Array(v.iter().map(|x| num(*x)).collect())
}

/// pyhf's `mle_parameters`: values grouped by parameter set (`name[i]`
/// components in one list).
pub fn mle_parameters(names: &[String], x: &[f64]) -> Value {
    let mut map = serde_json::Map::new();
    for (n, v) in names.iter().zip(x) {
        let set = n.split_once('[').map_or(n.as_str(), |(s, _)| s);
        let entry = map
            .entry(set.to_string())
            .or_insert_with(|| Value::Array(Vec::new()));
        if let Value::Array(a) = entry {
            a.push(num(*v));
        }
    }
    Value::Object(map)
}

/// JSON matrix from a row-major P x P buffer.
pub fn matrix(v: &[f64], p: usize) -> Value {
    Value::Array((0..p).map(|i| nums(&v[i * p..(i + 1) * p])).collect())
}
