//! The model options every command shares (`ModelArgs`) and the loader that
//! reads a workspace, HEPData archive, HS3 or NSBI file, applies patches and
//! `--bounds`, and compiles the model.

use super::par_index;
use crate::error::{Error, Result};
use crate::model::{AnyModel, HistFactoryModel, InterpCode, ModelOptions};
use crate::workspace::{self, ReadOptions};
use clap::Args;
use serde_json::Value;
use std::path::PathBuf;
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
    pub(super) fn read_patched(
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
    pub(super) fn read_input(
        &self,
    ) -> Result<(Vec<u8>, String, Option<workspace::hepdata::Member>)> {
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
            strict: self.strict,
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
            if model.strict_domain {
                &b"|strict"[..]
            } else {
                &[]
            },
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
