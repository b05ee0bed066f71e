//! pyhf JSON workspaces (schema 1.0.0): reading, patching and validation.
//!
//! Input flows as: file -> `serde_json::Value` (syntax errors carry line and
//! column) -> JSON Patches -> typed structs (schema errors carry the JSON
//! pointer of the offending value) -> semantic checks (again with pointers).

pub mod hepdata;
pub mod json;
mod patch;
pub mod patchsets;
pub mod pyjson;
pub mod tools;
mod validate;

pub use patch::{
    PatchSet, apply_patch, apply_patchset, load_patch, load_patchset, patchset_from_value,
};

use crate::error::{Error, Result};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::Path;

/// A validated pyhf workspace.
#[derive(Debug, Clone, Serialize)]
pub struct Workspace {
    /// Channels in file order.
    pub channels: Vec<Channel>,
    /// Observed data per channel.
    pub observations: Vec<Observation>,
    /// Measurements (POI and parameter configuration).
    pub measurements: Vec<Measurement>,
    /// Schema version, always "1.0.0".
    pub version: String,
}

/// One channel (a histogram region).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Channel {
    /// Channel name.
    pub name: String,
    /// Samples contributing to the channel.
    pub samples: Vec<Sample>,
}

/// One sample: nominal yields and modifiers.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Sample {
    /// Sample name.
    pub name: String,
    /// Nominal yields per bin.
    pub data: Vec<f64>,
    /// Modifiers acting on the sample.
    pub modifiers: Vec<Modifier>,
}

/// A modifier as written in the workspace.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Modifier {
    /// Parameter name.
    pub name: String,
    /// Modifier type (one of the seven HistFactory types).
    #[serde(rename = "type")]
    pub kind: String,
    /// Type-dependent data; validated into [`ModifierData`].
    #[serde(deserialize_with = "json::strict_value")]
    pub data: Value,
}

/// Observed counts of one channel.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Observation {
    /// Channel name.
    pub name: String,
    /// Counts per bin.
    pub data: Vec<f64>,
}

/// A measurement: the POI and per-parameter configuration.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Measurement {
    /// Measurement name.
    pub name: String,
    /// Its configuration.
    pub config: MeasurementConfig,
}

/// Measurement configuration.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MeasurementConfig {
    /// Parameter of interest.
    pub poi: String,
    /// Overrides of inits, bounds, fixed, auxdata, sigmas, factors.
    pub parameters: Vec<ParameterConfig>,
}

/// Per-parameter overrides (pyhf `config.parameters[]`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ParameterConfig {
    /// Parameter (set) name.
    pub name: String,
    /// Initial values.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inits: Option<Vec<f64>>,
    /// Bounds, one `[lo, hi]` per component.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bounds: Option<Vec<[f64; 2]>>,
    /// Fixed in fits.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fixed: Option<bool>,
    /// Auxiliary data of the constraint.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auxdata: Option<Vec<f64>>,
    /// Widths of Gaussian constraints.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sigmas: Option<Vec<f64>>,
    /// Scale factors of Poisson constraints.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub factors: Option<Vec<f64>>,
}

/// Typed modifier data, after validation.
#[derive(Debug, Clone, PartialEq)]
pub enum ModifierData {
    /// Free normalisation factor.
    NormFactor,
    /// Free per-bin factors.
    ShapeFactor,
    /// Luminosity (Gaussian-constrained factor configured in the measurement).
    Lumi,
    /// Normalisation systematic with up/down factors.
    NormSys {
        /// Up factor.
        hi: f64,
        /// Down factor.
        lo: f64,
    },
    /// Shape systematic with up/down templates.
    HistoSys {
        /// Up template.
        hi_data: Vec<f64>,
        /// Down template.
        lo_data: Vec<f64>,
    },
    /// Per-bin Poisson-constrained uncertainty (absolute).
    ShapeSys(Vec<f64>),
    /// Per-bin Gaussian MC statistical uncertainty (absolute).
    StatError(Vec<f64>),
}

/// The seven modifier types, in pyhf's order (which fixes parameter order).
pub const MODIFIER_TYPES: [&str; 7] = [
    "histosys",
    "lumi",
    "normfactor",
    "normsys",
    "shapefactor",
    "shapesys",
    "staterror",
];

impl ModifierData {
    /// The pyhf type name.
    pub fn type_name(&self) -> &'static str {
        match self {
            ModifierData::NormFactor => "normfactor",
            ModifierData::ShapeFactor => "shapefactor",
            ModifierData::Lumi => "lumi",
            ModifierData::NormSys { .. } => "normsys",
            ModifierData::HistoSys { .. } => "histosys",
            ModifierData::ShapeSys(_) => "shapesys",
            ModifierData::StatError(_) => "staterror",
        }
    }
}

/// Escape one JSON pointer token (RFC 6901).
pub fn pointer_token(s: &str) -> String {
    s.replace('~', "~0").replace('/', "~1")
}

/// Read a JSON file into a `Value`, with line/column on syntax errors.
pub fn read_json(path: &Path) -> Result<Value> {
    let bytes = json::read_bytes(path)?;
    let name = if path.as_os_str() == "-" {
        "<standard input>".to_string()
    } else {
        path.display().to_string()
    };
    json::parse_strict(&bytes, &name)
}

/// Parse JSON text strictly (duplicate keys refused); `name` is used in error messages.
pub fn parse_json(text: &str, name: &str) -> Result<Value> {
    json::parse_strict(text.as_bytes(), name)
}

/// Deserialize a typed value from JSON, reporting the JSON pointer of schema errors.
pub(crate) fn from_value_at<T: serde::de::DeserializeOwned>(
    value: &Value,
    source_name: &str,
    base: &str,
) -> Result<T> {
    // the fast path without path tracking; only a failure pays for it
    if let Ok(v) = T::deserialize(value) {
        return Ok(v);
    }
    serde_path_to_error::deserialize(value).map_err(|e| {
        let mut loc = format!("{base}{}", pointer_of(e.path()));
        if loc.is_empty() {
            loc.push('/');
        }
        Error::workspace(source_name, loc, e.inner().to_string())
    })
}

/// The JSON pointer of a deserialisation path.
fn pointer_of(path: &serde_path_to_error::Path) -> String {
    let mut loc = String::new();
    for seg in path.iter() {
        match seg {
            serde_path_to_error::Segment::Seq { index } => {
                loc.push('/');
                loc.push_str(&index.to_string());
            }
            serde_path_to_error::Segment::Map { key } => {
                loc.push('/');
                loc.push_str(&pointer_token(key));
            }
            serde_path_to_error::Segment::Enum { variant } => {
                loc.push('/');
                loc.push_str(&pointer_token(variant));
            }
            serde_path_to_error::Segment::Unknown => {}
        }
    }
    loc
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawWorkspace {
    channels: Vec<Channel>,
    observations: Vec<Observation>,
    measurements: Vec<Measurement>,
    version: String,
}

/// Options for reading workspaces.
#[derive(Debug, Clone, Default)]
pub struct ReadOptions {
    /// Refuse negative nominal yields (`--strict`). By default they are
    /// accepted, as pyhf accepts them (workspaces converted from CMS datacards
    /// with negatively weighted NLO samples carry them); the compiled model
    /// then warns naming the bins ([`negative_yields`]).
    pub strict: bool,
}

/// Every negative nominal yield of a workspace, as
/// `"/channels/C/samples/S/data/B (sample 'NAME' in channel 'CH' bin B) = V"`.
pub fn negative_yields(ws: &Workspace) -> Vec<String> {
    let mut out = Vec::new();
    for (ci, c) in ws.channels.iter().enumerate() {
        for (si, s) in c.samples.iter().enumerate() {
            for (bi, v) in s.data.iter().enumerate() {
                if *v < 0.0 {
                    out.push(format!(
                        "/channels/{ci}/samples/{si}/data/{bi} (sample '{}' in channel '{}' bin {bi}) = {v}",
                        s.name, c.name
                    ));
                }
            }
        }
    }
    out
}

impl Workspace {
    /// Read, patch and validate a workspace file.
    pub fn load(path: &Path, patches: &[Value], opts: &ReadOptions) -> Result<Self> {
        let value = read_json(path)?;
        Self::from_value(value, patches, &path.display().to_string(), opts)
    }

    /// Build a workspace from a JSON value after applying patches in order.
    pub fn from_value(
        mut value: Value,
        patches: &[Value],
        source_name: &str,
        opts: &ReadOptions,
    ) -> Result<Self> {
        for (i, p) in patches.iter().enumerate() {
            apply_patch(&mut value, p, &format!("patch #{}", i + 1))?;
        }
        let raw: RawWorkspace = from_value_at(&value, source_name, "")?;
        Self::validated(raw, source_name, opts)
    }

    /// The workspace of a parsed document, validated.
    fn validated(raw: RawWorkspace, source_name: &str, opts: &ReadOptions) -> Result<Self> {
        let ws = Workspace {
            channels: raw.channels,
            observations: raw.observations,
            measurements: raw.measurements,
            version: raw.version,
        };
        ws.validate(source_name, opts)?;
        Ok(ws)
    }

    /// Parse and validate a workspace straight from JSON bytes (no
    /// intermediate JSON tree: the fast path when no patch applies).
    /// Schema errors name their JSON pointer, syntax errors line and column.
    pub fn from_bytes(bytes: &[u8], source_name: &str, opts: &ReadOptions) -> Result<Self> {
        let json_err = |e: &serde_json::Error| Error::Json {
            path: source_name.to_string(),
            message: e.to_string(),
        };
        // the fast path: sonic-rs, no path tracking; a failure (or a negative
        // zero, which sonic-rs reads as +0) is parsed again by serde_json with
        // path tracking, which names the JSON location of an error
        if !json::has_negative_zero(bytes)
            && let Ok(raw) = sonic_rs::from_slice::<RawWorkspace>(bytes)
        {
            return Self::validated(raw, source_name, opts);
        }
        let mut de = serde_json::Deserializer::from_slice(bytes);
        let raw: RawWorkspace = serde_path_to_error::deserialize(&mut de).map_err(|e| {
            if e.inner().is_data() {
                let mut loc = pointer_of(e.path());
                if loc.is_empty() {
                    loc.push('/');
                }
                Error::workspace(source_name, loc, e.inner().to_string())
            } else {
                json_err(e.inner())
            }
        })?;
        de.end().map_err(|e| json_err(&e))?;
        Self::validated(raw, source_name, opts)
    }

    /// Parse and validate workspace JSON text.
    pub fn from_str(text: &str, source_name: &str, opts: &ReadOptions) -> Result<Self> {
        Self::from_value(parse_json(text, source_name)?, &[], source_name, opts)
    }

    /// The workspace as a JSON value (pyhf format).
    pub fn to_value(&self) -> Value {
        serde_json::to_value(self).expect("workspace serializes")
    }

    /// Number of bins of each channel, by channel name.
    pub fn channel_nbins(&self) -> BTreeMap<String, usize> {
        self.channels
            .iter()
            .map(|c| {
                (
                    c.name.clone(),
                    c.samples.first().map_or(0, |s| s.data.len()),
                )
            })
            .collect()
    }

    /// Find a measurement by name, or the first one.
    pub fn measurement(&self, name: Option<&str>) -> Result<&Measurement> {
        match name {
            None => self
                .measurements
                .first()
                .ok_or_else(|| Error::input("the workspace has no measurement")),
            Some(n) => self
                .measurements
                .iter()
                .find(|m| m.name == n)
                .ok_or_else(|| {
                    let names: Vec<&str> =
                        self.measurements.iter().map(|m| m.name.as_str()).collect();
                    Error::input(format!(
                        "no measurement named '{n}'; the workspace has: {}",
                        names.join(", ")
                    ))
                }),
        }
    }

    /// Check the schema's rules that serde does not: names, bin counts,
    /// finite values, references between the parts, modifier data.
    fn validate(&self, src: &str, opts: &ReadOptions) -> Result<()> {
        let err = |loc: String, msg: String| Error::workspace(src, loc, msg);
        if self.version != "1.0.0" {
            return Err(err(
                "/version".into(),
                format!(
                    "unsupported schema version '{}', expected '1.0.0'",
                    self.version
                ),
            ));
        }
        if self.channels.is_empty() {
            return Err(err("/channels".into(), "no channels".into()));
        }
        if self.measurements.is_empty() {
            return Err(err("/measurements".into(), "no measurements".into()));
        }
        let nbins_of = self.validate_channels(src, opts)?;
        self.validate_observations(src, &nbins_of)?;
        self.validate_measurements(src)
    }
}

impl Modifier {
    /// Validate and type the modifier data for a channel with `nbins` bins.
    pub fn parse_data(&self, nbins: usize, src: &str, loc: &str) -> Result<ModifierData> {
        self.parse_data_at(nbins, src, &|| loc.to_string())
    }

    /// [`Modifier::parse_data`] with the location made only when an error needs it.
    pub(crate) fn parse_data_at(
        &self,
        nbins: usize,
        src: &str,
        loc: &dyn Fn() -> String,
    ) -> Result<ModifierData> {
        let err = |l: String, msg: String| Error::workspace(src, l, msg);
        // locations are formatted only when an error needs them
        let dloc = || format!("{}/data", loc());
        let vec_of = |v: &Value, key: &str| -> Result<Vec<f64>> {
            let at = || {
                if key.is_empty() {
                    dloc()
                } else {
                    format!("{}/{key}", dloc())
                }
            };
            let arr = v
                .as_array()
                .ok_or_else(|| err(at(), format!("expected an array of {nbins} numbers")))?;
            if arr.len() != nbins {
                return Err(err(
                    at(),
                    format!("has {} entries but the sample has {nbins} bins", arr.len()),
                ));
            }
            arr.iter()
                .enumerate()
                .map(|(i, x)| match x.as_f64() {
                    Some(f) if f.is_finite() => Ok(f),
                    _ => Err(err(
                        format!("{}/{i}", at()),
                        format!("expected a finite number, got {x}"),
                    )),
                })
                .collect()
        };
        let null_data = || -> Result<()> {
            if self.data.is_null() {
                Ok(())
            } else {
                Err(err(
                    dloc(),
                    format!("a {} modifier takes \"data\": null", self.kind),
                ))
            }
        };
        Ok(match self.kind.as_str() {
            "normfactor" => {
                null_data()?;
                ModifierData::NormFactor
            }
            "shapefactor" => {
                null_data()?;
                ModifierData::ShapeFactor
            }
            "lumi" => {
                null_data()?;
                ModifierData::Lumi
            }
            "normsys" => {
                let obj = self.data.as_object().ok_or_else(|| {
                    err(dloc(), "normsys data must be {\"hi\": x, \"lo\": y}".into())
                })?;
                for k in obj.keys() {
                    if k != "hi" && k != "lo" {
                        return Err(err(
                            format!("{}/{}", dloc(), pointer_token(k)),
                            format!("unknown field '{k}'"),
                        ));
                    }
                }
                let get = |k: &str| -> Result<f64> {
                    match obj.get(k) {
                        Some(v) => match v.as_f64() {
                            Some(f) if f.is_finite() => Ok(f),
                            _ => Err(err(
                                format!("{}/{k}", dloc()),
                                format!("expected a finite number, got {v}"),
                            )),
                        },
                        None => Err(err(dloc(), format!("missing field '{k}'"))),
                    }
                };
                ModifierData::NormSys {
                    hi: get("hi")?,
                    lo: get("lo")?,
                }
            }
            "histosys" => {
                let obj = self.data.as_object().ok_or_else(|| {
                    err(
                        dloc(),
                        "histosys data must be {\"hi_data\": [...], \"lo_data\": [...]}".into(),
                    )
                })?;
                for k in obj.keys() {
                    if k != "hi_data" && k != "lo_data" {
                        return Err(err(
                            format!("{}/{}", dloc(), pointer_token(k)),
                            format!("unknown field '{k}'"),
                        ));
                    }
                }
                let get = |k: &str| -> Result<Vec<f64>> {
                    match obj.get(k) {
                        Some(v) => vec_of(v, k),
                        None => Err(err(dloc(), format!("missing field '{k}'"))),
                    }
                };
                ModifierData::HistoSys {
                    hi_data: get("hi_data")?,
                    lo_data: get("lo_data")?,
                }
            }
            "shapesys" => ModifierData::ShapeSys(vec_of(&self.data, "")?),
            "staterror" => ModifierData::StatError(vec_of(&self.data, "")?),
            other => {
                return Err(err(
                    format!("{}/type", loc()),
                    format!(
                        "unknown modifier type '{other}'; expected one of {}",
                        MODIFIER_TYPES.join(", ")
                    ),
                ));
            }
        })
    }
}

#[cfg(test)]
mod fast_parse_tests;
