//! pyhf's workspace utilities: `combine`, `prune`, `rename`, `digest`,
//! `sort` and `patchset inspect|extract|apply|verify`, printing pyhf's bytes
//! (`json.dumps(..., indent=4, sort_keys=True)`), and the measurement list
//! of `inspect`.

use super::ModelArgs;
use crate::error::{Error, Result};
use crate::workspace::patchsets::{self, Checked};
use crate::workspace::pyjson::{self, Style};
use crate::workspace::tools::{self, Edit, Join};
use crate::workspace::{hepdata, json as wjson};
use clap::{Args, Subcommand};
use serde_json::{Value, json};
use std::path::{Path, PathBuf};

/// Where the JSON goes: standard output, or a file as pyhf's `--output-file`.
#[derive(Args, Debug, Clone)]
pub struct JsonOut {
    /// Write the JSON to FILE (atomically; nothing on standard output), as pyhf's --output-file.
    #[arg(
        short = 'o',
        long = "output",
        visible_alias = "output-file",
        value_name = "FILE"
    )]
    pub output: Option<PathBuf>,
}

impl JsonOut {
    /// Print (with a newline, as click.echo) or write (without, as json.dump) pyhf's bytes.
    fn emit(&self, v: &Value) -> Result<i32> {
        let text = pyjson::dumps(v, Style::PRETTY);
        match &self.output {
            Some(p) => crate::util::write_atomic(p, text.as_bytes())?,
            None => super::write_stdout(&format!("{text}\n"))?,
        }
        Ok(0)
    }
}

/// Read a workspace document (a file, `-` for standard input, or a HEPData
/// archive's workspace) and check it; returns it with its label.
fn read_workspace(path: &Path) -> Result<(Value, String)> {
    let (bytes, label) = match hepdata::split(path) {
        Some((archive, member)) => {
            let l = hepdata::open(&archive, member.as_deref())?;
            (l.workspace.bytes, l.workspace.label)
        }
        None => (wjson::read_bytes(path)?, label_of(path)),
    };
    let v = wjson::parse_strict(&bytes, &label)?;
    if v.is_array() {
        return Err(Error::input(format!(
            "{label}: this is a JSON Patch (a list of operations), not a workspace; apply it to its workspace with -p"
        )));
    }
    if v.get("patches").is_some() {
        return Err(Error::input(format!(
            "{label}: this is a pyhf patchset, not a workspace; see `gradfit patchset --help`"
        )));
    }
    tools::check(&v, &label)?;
    Ok((v, label))
}

fn label_of(path: &Path) -> String {
    if path.as_os_str() == "-" {
        "<standard input>".into()
    } else {
        path.display().to_string()
    }
}

/// Read a patchset (a file or a HEPData archive's) and check it as pyhf does.
fn read_patchset(path: &Path) -> Result<Checked> {
    let (bytes, label) = match hepdata::split(path) {
        Some((archive, member)) => {
            let m = hepdata::open_patchset(&archive, member.as_deref())?;
            (m.bytes, m.label)
        }
        None => (wjson::read_bytes(path)?, label_of(path)),
    };
    let v = wjson::parse_strict(&bytes, &label)?;
    patchsets::checked(v, &label)
}

/// The patchset given, or the one of the archive given as the workspace.
fn patchset_for(ws: &Path, patchset: Option<&Path>) -> Result<Checked> {
    match (patchset, hepdata::split(ws)) {
        (Some(p), _) => read_patchset(p),
        (None, Some(_)) => read_patchset(ws),
        (None, None) => Err(Error::input(format!(
            "{}: give the patchset after the workspace (or a HEPData archive that holds both)",
            ws.display()
        ))),
    }
}

// ------------------------------------------------------------------ arguments

/// Arguments of `gradfit combine`.
#[derive(Args, Debug)]
pub struct CombineArgs {
    /// Workspaces to combine, left to right (two or more; HEPData archives allowed).
    #[arg(required = true, num_args = 2.., value_name = "WORKSPACE")]
    workspaces: Vec<PathBuf>,
    /// How items of the same name are joined: none, outer, 'left outer', 'right outer' (pyhf's -j).
    #[arg(short = 'j', long, default_value = "none", value_parser = |s: &str| s.parse::<Join>())]
    join: Join,
    /// Merge the samples of channels of the same name (outer joins only).
    #[arg(long)]
    merge_channels: bool,
    #[command(flatten)]
    pub(super) out: JsonOut,
}

/// Arguments of `gradfit prune`.
#[derive(Args, Debug)]
pub struct PruneArgs {
    /// Workspace (`-`: standard input; a HEPData archive).
    workspace: PathBuf,
    /// Remove a channel (repeatable).
    #[arg(short = 'c', long = "channel", value_name = "NAME")]
    channels: Vec<String>,
    /// Remove a sample from every channel (repeatable).
    #[arg(short = 's', long = "sample", value_name = "NAME")]
    samples: Vec<String>,
    /// Remove a modifier and its parameter configurations (repeatable).
    #[arg(short = 'm', long = "modifier", value_name = "NAME")]
    modifiers: Vec<String>,
    /// Remove every modifier of a type (repeatable).
    #[arg(short = 't', long = "modifier-type", value_name = "TYPE",
          value_parser = clap::builder::PossibleValuesParser::new(crate::workspace::MODIFIER_TYPES))]
    modifier_types: Vec<String>,
    /// Remove a measurement (repeatable).
    #[arg(long = "measurement", value_name = "NAME")]
    measurements: Vec<String>,
    #[command(flatten)]
    pub(super) out: JsonOut,
}

/// Arguments of `gradfit rename`.
#[derive(Args, Debug)]
pub struct RenameArgs {
    /// Workspace (`-`: standard input; a HEPData archive).
    workspace: PathBuf,
    /// Rename a channel (repeatable).
    #[arg(short = 'c', long = "channel", num_args = 2, value_names = ["OLD", "NEW"])]
    channels: Vec<String>,
    /// Rename a sample (repeatable).
    #[arg(short = 's', long = "sample", num_args = 2, value_names = ["OLD", "NEW"])]
    samples: Vec<String>,
    /// Rename a modifier, its parameter configurations and the POI (repeatable).
    #[arg(short = 'm', long = "modifier", num_args = 2, value_names = ["OLD", "NEW"])]
    modifiers: Vec<String>,
    /// Rename a measurement (repeatable).
    #[arg(long = "measurement", num_args = 2, value_names = ["OLD", "NEW"])]
    measurements: Vec<String>,
    #[command(flatten)]
    pub(super) out: JsonOut,
}

/// Arguments of `gradfit digest`.
#[derive(Args, Debug)]
pub struct DigestArgs {
    /// Workspace (`-`: standard input; a HEPData archive).
    workspace: PathBuf,
    /// Hash algorithm (repeatable): sha256 (default), md5, sha1, sha224, sha384, sha512.
    #[arg(short = 'a', long = "algorithm", value_name = "ALG")]
    algorithms: Vec<String>,
    /// Print a JSON object {algorithm: digest} instead of ALG:DIGEST lines.
    #[arg(short = 'j', long)]
    json: bool,
}

/// Arguments of `gradfit sort`.
#[derive(Args, Debug)]
pub struct SortArgs {
    /// Workspace (`-`: standard input; a HEPData archive).
    workspace: PathBuf,
    #[command(flatten)]
    pub(super) out: JsonOut,
}

/// `gradfit patchset ...`.
#[derive(Subcommand, Debug)]
pub enum PatchsetCmd {
    /// List the patches of a patchset.
    Inspect(PsInspectArgs),
    /// Print one patch of a patchset (its JSON Patch operations).
    Extract(PsExtractArgs),
    /// Apply one patch to the background-only workspace, after checking its digests.
    Apply(PsApplyArgs),
    /// Check the patchset's digests against the background-only workspace.
    Verify(PsVerifyArgs),
}

/// Arguments of `gradfit patchset inspect`.
#[derive(Args, Debug)]
pub struct PsInspectArgs {
    /// Patchset file or HEPData archive.
    patchset: PathBuf,
    /// Print JSON (labels, digests, and each patch's name and values).
    #[arg(long)]
    json: bool,
}

/// Arguments of `gradfit patchset extract`.
#[derive(Args, Debug)]
pub struct PsExtractArgs {
    /// Patchset file or HEPData archive.
    patchset: PathBuf,
    /// Name of the patch.
    #[arg(long)]
    name: String,
    /// Print {"metadata": ..., "patch": ...} with the patchset's metadata merged in.
    #[arg(long)]
    with_metadata: bool,
    #[command(flatten)]
    pub(super) out: JsonOut,
}

/// Arguments of `gradfit patchset apply`.
#[derive(Args, Debug)]
pub struct PsApplyArgs {
    /// Background-only workspace (or a HEPData archive holding it and the patchset).
    background_only: PathBuf,
    /// Patchset (not needed when the workspace is a HEPData archive).
    patchset: Option<PathBuf>,
    /// Name of the patch.
    #[arg(long)]
    name: String,
    #[command(flatten)]
    pub(super) out: JsonOut,
}

/// Arguments of `gradfit patchset verify`.
#[derive(Args, Debug)]
pub struct PsVerifyArgs {
    /// Background-only workspace (or a HEPData archive holding it and the patchset).
    background_only: PathBuf,
    /// Patchset (not needed when the workspace is a HEPData archive).
    patchset: Option<PathBuf>,
}

impl PatchsetCmd {
    /// The file the command writes, checked before any work.
    pub(super) fn output_path(&self) -> Option<&Path> {
        match self {
            PatchsetCmd::Extract(a) => a.out.output.as_deref(),
            PatchsetCmd::Apply(a) => a.out.output.as_deref(),
            _ => None,
        }
    }
}

// ------------------------------------------------------------------ commands

/// `gradfit combine`.
pub fn combine(a: &CombineArgs) -> Result<i32> {
    if matches!(a.join, Join::LeftOuter | Join::RightOuter) {
        eprintln!(
            "warning: a left or right outer join keeps one side's item where the workspaces differ, silently (pyhf calls it unsafe)"
        );
    }
    let mut acc: Option<Value> = None;
    for p in &a.workspaces {
        let (v, _) = read_workspace(p)?;
        acc = Some(match acc {
            None => v,
            Some(left) => tools::combine(&left, &v, a.join, a.merge_channels)
                .map_err(|e| Error::input(format!("combining {}: {e}", p.display())))?,
        });
    }
    a.out.emit(&acc.unwrap_or(Value::Null))
}

fn pairs(v: &[String]) -> Vec<(String, String)> {
    v.chunks(2)
        .filter(|c| c.len() == 2)
        .map(|c| (c[0].clone(), c[1].clone()))
        .collect()
}

fn edit(path: &Path, e: &Edit, out: &JsonOut) -> Result<i32> {
    let (v, label) = read_workspace(path)?;
    let r = tools::edit(&v, e).map_err(|err| match err {
        Error::Input(m) => Error::input(format!("{label}: {m}")),
        other => other,
    })?;
    out.emit(&r)
}

/// `gradfit prune`.
pub fn prune(a: &PruneArgs) -> Result<i32> {
    let e = Edit {
        prune_channels: a.channels.clone(),
        prune_samples: a.samples.clone(),
        prune_modifiers: a.modifiers.clone(),
        prune_modifier_types: a.modifier_types.clone(),
        prune_measurements: a.measurements.clone(),
        ..Default::default()
    };
    edit(&a.workspace, &e, &a.out)
}

/// `gradfit rename`.
pub fn rename(a: &RenameArgs) -> Result<i32> {
    let e = Edit {
        rename_channels: pairs(&a.channels),
        rename_samples: pairs(&a.samples),
        rename_modifiers: pairs(&a.modifiers),
        rename_measurements: pairs(&a.measurements),
        ..Default::default()
    };
    edit(&a.workspace, &e, &a.out)
}

/// `gradfit digest`: pyhf's plain `ALG:DIGEST` lines, or `--json`.
pub fn digest(a: &DigestArgs) -> Result<i32> {
    let (v, _) = read_workspace(&a.workspace)?;
    let algs: Vec<String> = if a.algorithms.is_empty() {
        vec!["sha256".into()]
    } else {
        a.algorithms.clone()
    };
    let mut obj = serde_json::Map::new();
    let mut lines = Vec::new();
    for alg in &algs {
        let d = tools::digest(&v, alg)?;
        lines.push(format!("{alg}:{d}"));
        obj.insert(alg.clone(), Value::String(d));
    }
    let text = if a.json {
        pyjson::dumps(&Value::Object(obj), Style::PRETTY)
    } else {
        lines.join("\n")
    };
    super::write_stdout(&format!("{text}\n"))?;
    Ok(0)
}

/// `gradfit sort`.
pub fn sort(a: &SortArgs) -> Result<i32> {
    let (v, _) = read_workspace(&a.workspace)?;
    a.out.emit(&tools::sorted(&v))
}

/// `gradfit patchset ...`.
pub fn patchset(c: &PatchsetCmd) -> Result<i32> {
    match c {
        PatchsetCmd::Inspect(a) => {
            let ps = read_patchset(&a.patchset)?;
            if a.json {
                let v = json!({
                    "metadata": ps.set.metadata,
                    "patches": ps.set.patches.iter().map(|p| json!({"name": p.metadata.name, "values": p.metadata.values})).collect::<Vec<_>>(),
                });
                let text = pyjson::dumps(&v, Style::PRETTY);
                super::write_stdout(&format!("{text}\n"))?;
            } else {
                // pyhf's exact text
                let mut s = format!(
                    "\n    {} patches found in Patchset\n---------------------------------\n\n",
                    ps.set.patches.len()
                );
                for n in ps.names() {
                    s.push_str(n);
                    s.push('\n');
                }
                super::write_stdout(&s)?;
            }
            Ok(0)
        }
        PatchsetCmd::Extract(a) => {
            let ps = read_patchset(&a.patchset)?;
            a.out.emit(&ps.extract(&a.name, a.with_metadata)?)
        }
        PatchsetCmd::Apply(a) => {
            let ps = patchset_for(&a.background_only, a.patchset.as_deref())?;
            let (ws, label) = read_workspace(&a.background_only)?;
            a.out.emit(&ps.apply(&ws, &label, &a.name)?)
        }
        PatchsetCmd::Verify(a) => {
            let ps = patchset_for(&a.background_only, a.patchset.as_deref())?;
            let (ws, label) = read_workspace(&a.background_only)?;
            ps.verify(&ws, &label)?;
            super::write_stdout("All good.\n")?;
            Ok(0)
        }
    }
}

// ------------------------------------------------------------------ inspect

/// Add every measurement of the (patched) workspace to `inspect`'s JSON
/// (`measurements`: name, POI, configured parameters) and return its table;
/// warns when the workspace has several and none was chosen.
pub(super) fn add_measurements(m: &ModelArgs, v: &mut Value, taken: &str) -> Result<String> {
    let (bytes, src, archive_set) = m.read_input()?;
    let (doc, _) = m.read_patched(&bytes, &src, archive_set, &[])?;
    let list: Vec<(String, String, Vec<String>)> = doc["measurements"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|x| {
                    let pars = x["config"]["parameters"]
                        .as_array()
                        .map(|p| {
                            p.iter()
                                .map(|q| q["name"].as_str().unwrap_or("").to_string())
                                .collect()
                        })
                        .unwrap_or_default();
                    (
                        x["name"].as_str().unwrap_or("").to_string(),
                        x["config"]["poi"].as_str().unwrap_or("").to_string(),
                        pars,
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    if list.len() > 1 && m.measurement.is_none() {
        eprintln!(
            "warning: {src}: {} measurements ({}); taking the first, '{taken}' (choose one with --measurement)",
            list.len(),
            list.iter()
                .map(|x| x.0.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    v["measurements"] = Value::Array(
        list.iter()
            .map(|(n, poi, pars)| json!({"name": n, "poi": poi, "parameters": pars, "used": n == taken}))
            .collect(),
    );
    let mut t = super::table::Table::new(
        &["measurement", "POI", "configured parameters"],
        &[false, false, false],
    );
    for (n, poi, pars) in &list {
        let mark = if n == taken { "(*) " } else { "    " };
        let p = if pars.is_empty() {
            "(none)".to_string()
        } else {
            pars.join(", ")
        };
        t.row(vec![format!("{mark}{n}"), poi.clone(), p]);
    }
    Ok(format!("\n{}", t.render()))
}
