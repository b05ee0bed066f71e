//! The `gradfit` command line.

mod core_cmds;
mod gpu_cmds;
mod infer_cmds;
mod infer_plots;
mod inspect_cmd;
mod neyman_cmd;
mod pyhf_cmds;
mod report_cmds;
pub mod table;
mod train_cmd;
mod yields_plots;
mod yields_unbinned;

use crate::error::{Error, Result};
use crate::model::{AnyModel, HistFactoryModel, InterpCode, Likelihood, ModelOptions};
use crate::workspace::{self, ReadOptions};
use clap::{Args, Parser, Subcommand};
use serde_json::Value;
use std::path::PathBuf;

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
    Limit(infer_cmds::LimitArgs),
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
    Impacts(report_cmds::ImpactsArgs),
    /// Pre- and post-fit yields per channel, sample and bin, with uncertainties.
    Yields(report_cmds::YieldsArgs),
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

/// Options shared by every command that reads a workspace.
#[derive(Args, Debug, Clone)]
pub struct ModelArgs {
    /// pyhf JSON workspace (`-`: standard input), or a HEPData archive
    /// `ARCHIVE.tar.gz[:MEMBER]` (its background-only workspace).
    pub workspace: PathBuf,
    /// RFC 6902 JSON Patch applied to the workspace (repeatable, in order).
    #[arg(short = 'p', long = "patch", value_name = "PATCH")]
    pub patches: Vec<PathBuf>,
    /// pyhf patchset file or HEPData archive (use with --patch-name).
    #[arg(long, value_name = "FILE", requires = "patch_name")]
    pub patchset: Option<PathBuf>,
    /// Name of the patch to apply from --patchset (or from the patchset of
    /// the HEPData archive given as the workspace).
    #[arg(long, value_name = "NAME")]
    pub patch_name: Option<String>,
    /// Measurement to use (default: the first in the workspace).
    #[arg(long)]
    pub measurement: Option<String>,
    /// Interpolation code per modifier type, e.g. `--interp normsys=code1 --interp histosys=code0`.
    #[arg(long = "interp", value_name = "TYPE=CODE", value_parser = parse_interp)]
    pub interp: Vec<(String, InterpCode)>,
    /// Accept negative nominal yields (pyhf does silently; refused by default).
    #[arg(long)]
    pub allow_negative_yields: bool,
    /// Where fits and toys run: cpu, cuda or cuda:N (the GPU needs the cuda
    /// build, see scripts/build-cuda.sh).
    #[arg(long, default_value = "cpu", value_parser = |s: &str| s.parse::<crate::device::Device>())]
    pub device: crate::device::Device,
    /// Set a parameter's bounds: NAME=LO:HI (repeatable; NAME may be a
    /// per-bin parameter `name[i]` or a whole set `name`).
    #[arg(long = "bounds", value_name = "NAME=LO:HI", value_parser = parse_bounds, allow_hyphen_values = true)]
    pub bounds: Vec<(String, f64, f64)>,
    /// Accepted for pyhf scripts: gradfit has one backend (f64, CPU or --device).
    #[arg(long, value_name = "NAME", hide = true)]
    pub backend: Option<String>,
    /// Accepted for pyhf scripts: gradfit has one minimiser (exact-Hessian Newton).
    #[arg(long, value_name = "NAME", hide = true)]
    pub optimizer: Option<String>,
}

fn parse_bounds(s: &str) -> std::result::Result<(String, f64, f64), String> {
    let (name, range) = s
        .rsplit_once('=')
        .ok_or_else(|| format!("expected NAME=LO:HI, got '{s}'"))?;
    let (lo, hi) = range
        .split_once(':')
        .ok_or_else(|| format!("expected NAME=LO:HI, got '{s}'"))?;
    let num = |t: &str| -> std::result::Result<f64, String> {
        let v: f64 = t
            .trim()
            .parse()
            .map_err(|_| format!("'{t}' is not a number in '{s}'"))?;
        if v.is_finite() {
            Ok(v)
        } else {
            Err(format!("bounds must be finite in '{s}'"))
        }
    };
    let (lo, hi) = (num(lo)?, num(hi)?);
    if !(lo < hi) {
        return Err(format!(
            "lower bound {lo} is not below upper bound {hi} in '{s}'"
        ));
    }
    Ok((name.trim().to_string(), lo, hi))
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

/// A model read from the command line's input, with the digest that
/// identifies it across runs (toy shards only merge with their own model).
#[derive(Debug)]
pub struct Loaded {
    /// The compiled model.
    pub model: AnyModel,
    /// SHA-256 of the patched input and the model options (empty unless
    /// asked for: [`ModelArgs::load_any_with`]).
    pub digest: String,
}

impl ModelArgs {
    /// Read patches, the workspace, and compile the model; warnings go to stderr.
    /// Errors when the input is not a pyhf workspace.
    pub fn load(&self) -> Result<HistFactoryModel> {
        match self.load_any()?.model {
            AnyModel::HistFactory(m) => Ok(*m),
            AnyModel::Combined(m) => Err(Error::input(format!(
                "{}: this command needs a pyhf (HistFactory) workspace; '{}' is a {}",
                self.workspace.display(),
                m.label,
                "combined (unbinned or HS3) model"
            ))),
        }
    }

    /// The patched input document and the labels of the patches; `src`
    /// labels the input, `archive_set` is the patchset of a HEPData archive,
    /// `extra` are in-memory patches `(patch, label)` applied last.
    fn read_patched(
        &self,
        bytes: &[u8],
        src: &str,
        archive_set: Option<workspace::hepdata::Member>,
        extra: &[(Value, String)],
    ) -> Result<(Value, Vec<String>)> {
        let mut patches: Vec<Value> = Vec::new();
        let mut labels = Vec::new();
        let mut set = None;
        if let Some(name) = &self.patch_name {
            let (ps, label) = match (&self.patchset, archive_set) {
                (Some(ps), _) => (workspace::load_patchset(ps)?, ps.display().to_string()),
                (None, Some(m)) => {
                    let v = workspace::json::parse_strict(&m.bytes, &m.label)?;
                    (workspace::patchset_from_value(&v, &m.label)?, m.label)
                }
                (None, None) => {
                    return Err(Error::input(format!(
                        "--patch-name {name} needs --patchset FILE (or a HEPData archive with a patchset as the workspace)"
                    )));
                }
            };
            patches.push(workspace::apply_patchset(&ps, name, &label)?);
            labels.push(format!("{label} [{name}]"));
            set = Some((ps, label));
        }
        for p in &self.patches {
            patches.push(workspace::load_patch(p)?);
            labels.push(p.display().to_string());
        }
        for (p, label) in extra {
            patches.push(p.clone());
            labels.push(label.clone());
        }
        let mut value = workspace::json::parse_strict(bytes, src)?;
        if let Some((ps, label)) = &set
            && let Some(w) = workspace::patchsets::digest_warning(ps, label, &value, src)
        {
            eprintln!("warning: {w}");
        }
        for (p, label) in patches.iter().zip(&labels) {
            workspace::apply_patch(&mut value, p, label)?;
        }
        Ok((value, labels))
    }

    /// The input's bytes and label; a HEPData archive gives its workspace
    /// and the patchset beside it.
    fn read_input(&self) -> Result<(Vec<u8>, String, Option<workspace::hepdata::Member>)> {
        if let Some((archive, member)) = workspace::hepdata::split(&self.workspace) {
            let l = workspace::hepdata::open(&archive, member.as_deref())?;
            return Ok((l.workspace.bytes, l.workspace.label, l.patchset));
        }
        Ok((
            workspace::json::read_bytes(&self.workspace)?,
            self.source_name(),
            None,
        ))
    }

    fn source_name(&self) -> String {
        if self.workspace.as_os_str() == "-" {
            "<standard input>".to_string()
        } else {
            self.workspace.display().to_string()
        }
    }

    /// Read the input (a pyhf workspace, or another format recognised by its
    /// content), apply the patches and compile the model; warnings go to stderr.
    pub fn load_any(&self) -> Result<Loaded> {
        self.load_any_with(false)
    }

    /// [`load_any`](Self::load_any), with the model digest when `digest`
    /// (toy runs record it; computing it costs a pass over the workspace).
    pub fn load_any_with(&self, digest: bool) -> Result<Loaded> {
        for (flag, v) in [
            ("--backend", &self.backend),
            ("--optimizer", &self.optimizer),
        ] {
            if let Some(v) = v {
                eprintln!(
                    "note: {flag} {v} ignored: gradfit has one backend (f64 on the CPU, or --device) and one minimiser"
                );
            }
        }
        let (bytes, src, archive_set) = self.read_input()?;
        self.load_input(&bytes, &src, archive_set, &[], digest)
    }

    /// [`load_any_with`](Self::load_any_with) on an input already in memory
    /// (`bytes`; `self.workspace` names it in messages and its folder resolves
    /// relative data paths), with in-memory patches `(patch, label)` applied
    /// after the patch files: the loader of front ends such as the Python package.
    pub fn load_any_from(
        &self,
        bytes: &[u8],
        extra: &[(Value, String)],
        digest: bool,
    ) -> Result<Loaded> {
        self.load_input(bytes, &self.source_name(), None, extra, digest)
    }

    /// Load from bytes in memory and apply `--bounds`.
    fn load_input(
        &self,
        bytes: &[u8],
        src: &str,
        archive_set: Option<workspace::hepdata::Member>,
        extra: &[(Value, String)],
        digest: bool,
    ) -> Result<Loaded> {
        let mut loaded = self.load_raw(bytes, src, archive_set, extra, digest)?;
        if !self.bounds.is_empty() {
            crate::with_model!(&mut loaded.model, m => set_bounds(m, &self.bounds))?;
            if digest {
                let b = format!("{:?}", self.bounds);
                loaded.digest = digest_of(&[loaded.digest.as_bytes(), b.as_bytes()]);
            }
        }
        Ok(loaded)
    }

    fn load_raw(
        &self,
        bytes: &[u8],
        src: &str,
        archive_set: Option<workspace::hepdata::Member>,
        extra: &[(Value, String)],
        digest: bool,
    ) -> Result<Loaded> {
        if self.patches.is_empty() && self.patch_name.is_none() && extra.is_empty() {
            // fast path: a plain pyhf workspace parsed straight into its types;
            // anything else (or an error) takes the general path below
            if let Ok(ws) = workspace::Workspace::from_bytes(bytes, src, &self.read_options()) {
                let (m, digest) = self.compile_ws(&ws, src, digest)?;
                return Ok(Loaded {
                    model: AnyModel::HistFactory(Box::new(m)),
                    digest,
                });
            }
        }
        let (value, patches) = self.read_patched(bytes, src, archive_set, extra)?;
        match crate::model::format_of(&value) {
            crate::model::Format::Pyhf => {
                let (m, digest) = self.compile_pyhf(value, src, digest).map_err(|e| match e {
                    Error::Workspace {
                        source_name,
                        location,
                        message,
                    } if !patches.is_empty() => Error::Workspace {
                        source_name,
                        location,
                        message: format!(
                            "{message} (in the workspace as patched by {}: check that the patch is written for this workspace)",
                            patches.join(", ")
                        ),
                    },
                    other => other,
                })?;
                Ok(Loaded {
                    model: AnyModel::HistFactory(Box::new(m)),
                    digest,
                })
            }
            other => {
                if !self.interp.is_empty() || self.measurement.is_some() {
                    return Err(Error::input(format!(
                        "{src}: --interp and --measurement apply to pyhf workspaces; this input is {}",
                        other.describe()
                    )));
                }
                let base = self
                    .workspace
                    .parent()
                    .map(|p| p.to_path_buf())
                    .unwrap_or_default();
                let m = crate::model::load_other(other, &value, src, &base)?;
                for w in &m.warnings {
                    eprintln!("warning: {src}: {w}");
                }
                let digest = if digest {
                    digest_of(&[
                        serde_json::to_string(&value)
                            .map_err(|e| Error::input(e.to_string()))?
                            .as_bytes(),
                        b"|combined",
                    ])
                } else {
                    String::new()
                };
                Ok(Loaded {
                    model: AnyModel::Combined(Box::new(m)),
                    digest,
                })
            }
        }
    }

    fn read_options(&self) -> ReadOptions {
        ReadOptions {
            allow_negative_yields: self.allow_negative_yields,
        }
    }

    fn compile_pyhf(
        &self,
        value: Value,
        src: &str,
        digest: bool,
    ) -> Result<(HistFactoryModel, String)> {
        let ws = workspace::Workspace::from_value(value, &[], src, &self.read_options())?;
        self.compile_ws(&ws, src, digest)
    }

    fn compile_ws(
        &self,
        ws: &workspace::Workspace,
        src: &str,
        digest: bool,
    ) -> Result<(HistFactoryModel, String)> {
        let mut opts = ModelOptions {
            measurement: self.measurement.clone(),
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
        let model = HistFactoryModel::from_workspace(ws, &opts, src)?;
        for w in &model.warnings {
            eprintln!("warning: {src}: {w}");
        }
        if !digest {
            return Ok((model, String::new()));
        }
        let digest = digest_of(&[
            serde_json::to_string(ws)
                .map_err(|e| Error::input(e.to_string()))?
                .as_bytes(),
            format!(
                "|measurement={}|normsys={}|histosys={}",
                model.measurement, model.normsys_code, model.histosys_code
            )
            .as_bytes(),
        ]);
        Ok((model, digest))
    }
}

/// Apply `--bounds`: a parameter by its full name, or every component of a
/// parameter set `name` (`name[0]`, `name[1]`, ...).
fn set_bounds<M: crate::model::ModelInfo>(m: &mut M, bounds: &[(String, f64, f64)]) -> Result<()> {
    for (name, lo, hi) in bounds {
        let idx: Vec<usize> = match m.par_names().iter().position(|n| n == name) {
            Some(i) => vec![i],
            None => m
                .par_names()
                .iter()
                .enumerate()
                .filter(|(_, n)| {
                    n.strip_prefix(name.as_str())
                        .is_some_and(|r| r.starts_with('['))
                })
                .map(|(i, _)| i)
                .collect(),
        };
        if idx.is_empty() {
            par_index(m, name).map_err(|e| Error::input(format!("--bounds: {e}")))?;
        }
        for i in idx {
            m.set_bounds(i, *lo, *hi);
        }
    }
    Ok(())
}

fn digest_of(parts: &[&[u8]]) -> String {
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    for p in parts {
        h.update(p);
    }
    h.finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect::<String>()
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
        Command::Limit(a) => infer_cmds::limit(a),
        Command::Discovery(a) => infer_cmds::discovery(a),
        Command::Scan(a) => infer_cmds::scan(a),
        Command::Toys(a) => infer_cmds::toys_cmd(a),
        Command::Neyman(a) => neyman_cmd::neyman_cmd(a),
        Command::Merge(a) => infer_cmds::merge_cmd(a),
        Command::Pulls(a) => report_cmds::pulls(a),
        Command::Impacts(a) => report_cmds::impacts(a),
        Command::Yields(a) => report_cmds::yields(a),
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
