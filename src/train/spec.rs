//! The structure of a trainable analysis (channels, samples, modifiers) and
//! its template numbers; the pyhf workspace and the compiled model they make.
//!
//! The numbers (nominal yields, histosys templates, normsys factors, sums of
//! squared weights for staterror) arrive as candle tensors ([`Templates`]) from
//! any graph; [`TemplateValues`] is their numeric copy, from which the pyhf
//! JSON workspace and the [`HistFactoryModel`] of the fits are built.

use crate::error::{Error, Result};
use crate::model::{HistFactoryModel, InterpCode, ModelOptions};
use crate::workspace::{ReadOptions, Workspace};
use candle_core::{DType, Tensor};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

/// A modifier of a sample. Shape and normalisation nuisances can be left
/// unconstrained (`constrained: false`, INFERNO's free nuisances); pyhf's
/// schema cannot express those, so such a model builds here but does not export.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase", deny_unknown_fields)]
pub enum ModifierSpec {
    /// Free multiplicative parameter (the POI, typically).
    NormFactor {
        /// Parameter name.
        name: String,
        /// Bounds (default pyhf's [0, 10]).
        #[serde(default)]
        bounds: Option<[f64; 2]>,
    },
    /// Normalisation systematic: factors `hi`, `lo` (tensors of shape [1]).
    NormSys {
        /// Parameter name.
        name: String,
        /// Gaussian constraint N(0, 1) (default) or none.
        #[serde(default = "yes")]
        constrained: bool,
    },
    /// Shape systematic: templates `hi`, `lo` (tensors of the channel's bins).
    HistoSys {
        /// Parameter name.
        name: String,
        /// Gaussian constraint N(0, 1) (default) or none.
        #[serde(default = "yes")]
        constrained: bool,
    },
    /// Per-bin MC statistical uncertainty from the sample's sums of squared weights.
    StatError {
        /// Parameter name.
        name: String,
    },
    /// A Gaussian-constrained overall factor N(1, sigma) (pyhf's lumi type).
    Lumi {
        /// Parameter name.
        name: String,
        /// Relative width.
        sigma: f64,
    },
}

fn yes() -> bool {
    true
}

impl ModifierSpec {
    /// The parameter name.
    pub fn name(&self) -> &str {
        match self {
            ModifierSpec::NormFactor { name, .. }
            | ModifierSpec::NormSys { name, .. }
            | ModifierSpec::HistoSys { name, .. }
            | ModifierSpec::StatError { name }
            | ModifierSpec::Lumi { name, .. } => name,
        }
    }

    /// Whether the modifier takes (hi, lo) templates.
    pub fn has_templates(&self) -> bool {
        matches!(
            self,
            ModifierSpec::NormSys { .. } | ModifierSpec::HistoSys { .. }
        )
    }
}

/// A sample and its modifiers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SampleSpec {
    /// Sample name.
    pub name: String,
    /// Modifiers.
    #[serde(default)]
    pub modifiers: Vec<ModifierSpec>,
}

/// A channel: bins and samples.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChannelSpec {
    /// Channel name.
    pub name: String,
    /// Number of bins.
    pub nbins: usize,
    /// Samples.
    pub samples: Vec<SampleSpec>,
}

/// The structure of a trainable HistFactory analysis.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AnalysisSpec {
    /// Channels.
    pub channels: Vec<ChannelSpec>,
    /// Name of the parameter of interest (a normfactor).
    pub poi: String,
    /// Normsys interpolation (default code4).
    #[serde(default = "code4", with = "code_serde")]
    pub normsys_code: InterpCode,
    /// Histosys interpolation (default code4p; additive codes only).
    #[serde(default = "code4p", with = "code_serde")]
    pub histosys_code: InterpCode,
}

fn code4() -> InterpCode {
    InterpCode::Code4
}
fn code4p() -> InterpCode {
    InterpCode::Code4p
}

mod code_serde {
    use crate::model::InterpCode;
    use serde::{Deserialize, Deserializer, Serializer};
    pub fn serialize<S: Serializer>(c: &InterpCode, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&c.to_string())
    }
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<InterpCode, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// Template tensors of one sample (any dtype; they are used in f64).
#[derive(Debug, Clone)]
pub struct SampleTemplates {
    /// Nominal yields [nbins].
    pub nominal: Tensor,
    /// Sums of squared weights [nbins] (needed when the sample has a staterror).
    pub sumw2: Option<Tensor>,
    /// (hi, lo) per modifier in spec order; `None` for modifiers without templates.
    pub modifiers: Vec<Option<(Tensor, Tensor)>>,
}

/// Template tensors of all samples, channel by channel in spec order.
#[derive(Debug, Clone)]
pub struct Templates {
    /// One entry per (channel, sample) in spec order.
    pub samples: Vec<SampleTemplates>,
}

/// Numeric copy of one sample's templates.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SampleValues {
    /// Nominal yields.
    pub nominal: Vec<f64>,
    /// Sums of squared weights.
    pub sumw2: Option<Vec<f64>>,
    /// (hi, lo) per modifier.
    pub modifiers: Vec<Option<(Vec<f64>, Vec<f64>)>>,
}

/// Numeric copy of [`Templates`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TemplateValues {
    /// One entry per (channel, sample) in spec order.
    pub samples: Vec<SampleValues>,
}

fn vec_f64(t: &Tensor) -> Result<Vec<f64>> {
    Ok(t.to_dtype(DType::F64)?.flatten_all()?.to_vec1::<f64>()?)
}

impl Templates {
    /// Numeric values (f64).
    pub fn values(&self) -> Result<TemplateValues> {
        let mut samples = Vec::with_capacity(self.samples.len());
        for s in &self.samples {
            let mut mods = Vec::with_capacity(s.modifiers.len());
            for m in &s.modifiers {
                mods.push(match m {
                    Some((h, l)) => Some((vec_f64(h)?, vec_f64(l)?)),
                    None => None,
                });
            }
            samples.push(SampleValues {
                nominal: vec_f64(&s.nominal)?,
                sumw2: s.sumw2.as_ref().map(vec_f64).transpose()?,
                modifiers: mods,
            });
        }
        Ok(TemplateValues { samples })
    }

    /// Every tensor in a fixed order (nominal, sumw2, then hi and lo per modifier, per sample).
    pub fn tensors(&self) -> Vec<&Tensor> {
        let mut v = Vec::new();
        for s in &self.samples {
            v.push(&s.nominal);
            if let Some(w) = &s.sumw2 {
                v.push(w);
            }
            for (h, l) in s.modifiers.iter().flatten() {
                v.push(h);
                v.push(l);
            }
        }
        v
    }
}

impl TemplateValues {
    /// The values as constant f64 tensors on the CPU.
    pub fn to_tensors(&self) -> Result<Templates> {
        let dev = candle_core::Device::Cpu;
        let t = |v: &Vec<f64>| Tensor::from_slice(v, v.len(), &dev);
        let mut samples = Vec::with_capacity(self.samples.len());
        for s in &self.samples {
            let mut mods = Vec::new();
            for m in &s.modifiers {
                mods.push(match m {
                    Some((h, l)) => Some((t(h)?, t(l)?)),
                    None => None,
                });
            }
            samples.push(SampleTemplates {
                nominal: t(&s.nominal)?,
                sumw2: s.sumw2.as_ref().map(t).transpose()?,
                modifiers: mods,
            });
        }
        Ok(Templates { samples })
    }
}

impl AnalysisSpec {
    /// Check the structure: names, bin counts, one POI normfactor, supported codes.
    pub fn validate(&self) -> Result<()> {
        let err = |loc: String, msg: String| Error::workspace("<analysis spec>", loc, msg);
        if self.channels.is_empty() {
            return Err(err("/channels".into(), "no channels".into()));
        }
        if self.histosys_code.is_multiplicative() {
            return Err(err(
                "/histosys_code".into(),
                format!(
                    "histosys with {} is not supported in training (use code0, code2 or code4p)",
                    self.histosys_code
                ),
            ));
        }
        let mut poi_found = false;
        for (ci, c) in self.channels.iter().enumerate() {
            if c.nbins == 0 {
                return Err(err(format!("/channels/{ci}/nbins"), "no bins".into()));
            }
            if c.samples.is_empty() {
                return Err(err(format!("/channels/{ci}/samples"), "no samples".into()));
            }
            for (si, s) in c.samples.iter().enumerate() {
                for (mi, m) in s.modifiers.iter().enumerate() {
                    let loc = format!("/channels/{ci}/samples/{si}/modifiers/{mi}");
                    if m.name().is_empty() {
                        return Err(err(loc, "empty modifier name".into()));
                    }
                    match m {
                        ModifierSpec::NormFactor { name, bounds } => {
                            if name == &self.poi {
                                poi_found = true;
                            }
                            if let Some([lo, hi]) = bounds
                                && !(lo < hi && lo.is_finite() && hi.is_finite())
                            {
                                return Err(err(loc, format!("bounds [{lo}, {hi}] are invalid")));
                            }
                        }
                        ModifierSpec::Lumi { sigma, .. } if !(*sigma > 0.0) => {
                            return Err(err(loc, format!("sigma {sigma} must be positive")));
                        }
                        _ => {}
                    }
                }
            }
        }
        if !poi_found {
            return Err(err(
                "/poi".into(),
                format!("the POI '{}' is not a normfactor of any sample", self.poi),
            ));
        }
        Ok(())
    }

    /// Number of (channel, sample) entries.
    pub fn n_samples(&self) -> usize {
        self.channels.iter().map(|c| c.samples.len()).sum()
    }

    /// Check that `v` matches the structure (lengths, positivity where the codes need it).
    pub fn check_values(&self, v: &TemplateValues) -> Result<()> {
        if v.samples.len() != self.n_samples() {
            return Err(Error::input(format!(
                "{} sample templates given, the analysis has {} samples",
                v.samples.len(),
                self.n_samples()
            )));
        }
        let mut k = 0;
        for c in &self.channels {
            for s in &c.samples {
                let sv = &v.samples[k];
                k += 1;
                let at = format!("channel '{}' sample '{}'", c.name, s.name);
                let len_ok = |x: &[f64], n: usize, what: &str| -> Result<()> {
                    if x.len() != n {
                        return Err(Error::input(format!(
                            "{at}: {what} has {} entries, expected {n}",
                            x.len()
                        )));
                    }
                    if let Some((i, y)) = x.iter().enumerate().find(|(_, y)| !y.is_finite()) {
                        return Err(Error::input(format!("{at}: {what}[{i}] is {y}")));
                    }
                    Ok(())
                };
                len_ok(&sv.nominal, c.nbins, "nominal")?;
                if sv.modifiers.len() != s.modifiers.len() {
                    return Err(Error::input(format!(
                        "{at}: {} modifier templates given for {} modifiers",
                        sv.modifiers.len(),
                        s.modifiers.len()
                    )));
                }
                for (m, mv) in s.modifiers.iter().zip(&sv.modifiers) {
                    let what = format!("modifier '{}'", m.name());
                    match (m, mv) {
                        (ModifierSpec::HistoSys { .. }, Some((h, l))) => {
                            len_ok(h, c.nbins, &format!("{what} hi"))?;
                            len_ok(l, c.nbins, &format!("{what} lo"))?;
                        }
                        (ModifierSpec::NormSys { .. }, Some((h, l))) => {
                            len_ok(h, 1, &format!("{what} hi"))?;
                            len_ok(l, 1, &format!("{what} lo"))?;
                            if self.normsys_code.is_multiplicative() && !(h[0] > 0.0 && l[0] > 0.0)
                            {
                                return Err(Error::input(format!(
                                    "{at}: {what} needs positive factors with {}, got hi={}, lo={}",
                                    self.normsys_code, h[0], l[0]
                                )));
                            }
                        }
                        (m, None) if m.has_templates() => {
                            return Err(Error::input(format!("{at}: {what} needs (hi, lo)")));
                        }
                        (m, Some(_)) if !m.has_templates() => {
                            return Err(Error::input(format!("{at}: {what} takes no templates")));
                        }
                        _ => {}
                    }
                    if matches!(m, ModifierSpec::StatError { .. }) {
                        match &sv.sumw2 {
                            Some(w) => len_ok(w, c.nbins, "sumw2")?,
                            None => {
                                return Err(Error::input(format!(
                                    "{at}: staterror '{}' needs the sums of squared weights",
                                    m.name()
                                )));
                            }
                        }
                    }
                }
            }
        }
        Ok(())
    }

    /// Names of the nuisance parameters left unconstrained.
    pub fn free_nuisances(&self) -> Vec<String> {
        let mut v: Vec<String> = Vec::new();
        for c in &self.channels {
            for s in &c.samples {
                for m in &s.modifiers {
                    if let ModifierSpec::NormSys {
                        name,
                        constrained: false,
                    }
                    | ModifierSpec::HistoSys {
                        name,
                        constrained: false,
                    } = m
                        && !v.contains(name)
                    {
                        v.push(name.clone());
                    }
                }
            }
        }
        v
    }

    /// The pyhf JSON workspace of these templates with `observed` main counts
    /// (channel by channel in spec order). Unconstrained nuisances are written
    /// as constrained ones (pyhf has no other kind); [`Self::export_pyhf`]
    /// refuses them instead.
    pub fn workspace_json(&self, v: &TemplateValues, observed: &[Vec<f64>]) -> Result<Value> {
        self.check_values(v)?;
        if observed.len() != self.channels.len() {
            return Err(Error::input(format!(
                "observed data for {} channels, the analysis has {}",
                observed.len(),
                self.channels.len()
            )));
        }
        let mut channels = Vec::new();
        let mut observations = Vec::new();
        let mut params: Vec<Value> = Vec::new();
        let mut k = 0;
        for (ci, c) in self.channels.iter().enumerate() {
            let mut samples = Vec::new();
            for s in &c.samples {
                let sv = &v.samples[k];
                k += 1;
                let mut mods = Vec::new();
                for (m, mv) in s.modifiers.iter().zip(&sv.modifiers) {
                    let (kind, data) = match (m, mv) {
                        (ModifierSpec::NormFactor { name, bounds }, _) => {
                            if let Some(b) = bounds
                                && !params.iter().any(|p| p["name"] == json!(name))
                            {
                                params.push(json!({"name": name, "bounds": [b]}));
                            }
                            ("normfactor", Value::Null)
                        }
                        (ModifierSpec::NormSys { .. }, Some((h, l))) => {
                            ("normsys", json!({"hi": h[0], "lo": l[0]}))
                        }
                        (ModifierSpec::HistoSys { .. }, Some((h, l))) => {
                            ("histosys", json!({"hi_data": h, "lo_data": l}))
                        }
                        (ModifierSpec::StatError { .. }, _) => {
                            let w = sv.sumw2.as_ref().expect("checked");
                            let u: Vec<f64> = w.iter().map(|x| x.max(0.0).sqrt()).collect();
                            ("staterror", json!(u))
                        }
                        (ModifierSpec::Lumi { name, sigma }, _) => {
                            if !params.iter().any(|p| p["name"] == json!(name)) {
                                params.push(json!({"name": name, "auxdata": [1.0],
                                    "sigmas": [sigma], "inits": [1.0], "bounds": [[0.0, 10.0]]}));
                            }
                            ("lumi", Value::Null)
                        }
                        _ => unreachable!("checked by check_values"),
                    };
                    mods.push(json!({"name": m.name(), "type": kind, "data": data}));
                }
                samples.push(json!({"name": s.name, "data": sv.nominal, "modifiers": mods}));
            }
            channels.push(json!({"name": c.name, "samples": samples}));
            if observed[ci].len() != c.nbins {
                return Err(Error::input(format!(
                    "observed data of channel '{}' has {} bins, expected {}",
                    c.name,
                    observed[ci].len(),
                    c.nbins
                )));
            }
            observations.push(json!({"name": c.name, "data": observed[ci]}));
        }
        Ok(json!({
            "channels": channels,
            "observations": observations,
            "measurements": [{"name": "trained", "config": {"poi": self.poi, "parameters": params}}],
            "version": "1.0.0",
        }))
    }

    /// The pyhf workspace for export; an error when a nuisance is unconstrained.
    pub fn export_pyhf(&self, v: &TemplateValues, observed: &[Vec<f64>]) -> Result<Value> {
        let free = self.free_nuisances();
        if !free.is_empty() {
            return Err(Error::input(format!(
                "the unconstrained nuisance parameter(s) {free:?} cannot be written as a pyhf \
                 workspace (pyhf constrains every normsys and histosys)"
            )));
        }
        self.workspace_json(v, observed)
    }

    /// The compiled model of these templates (free nuisances unconstrained).
    pub fn build_model(
        &self,
        v: &TemplateValues,
        observed: &[Vec<f64>],
    ) -> Result<HistFactoryModel> {
        let value = self.workspace_json(v, observed)?;
        let read = ReadOptions { strict: false };
        let ws = Workspace::from_value(value, &[], "<training templates>", &read)?;
        let opts = ModelOptions {
            normsys_code: self.normsys_code,
            histosys_code: self.histosys_code,
            ..Default::default()
        };
        let mut m = HistFactoryModel::from_workspace(&ws, &opts, "<training templates>")?;
        for name in self.free_nuisances() {
            let i = m.par_index(&name).expect("modifier parameter exists");
            m.set_unconstrained(i)?;
        }
        Ok(m)
    }

    /// Placeholder values that satisfy every code (used to learn the parameter layout).
    pub fn placeholder_values(&self) -> TemplateValues {
        let mut samples = Vec::new();
        for c in &self.channels {
            for s in &c.samples {
                let n = c.nbins;
                let modifiers = s
                    .modifiers
                    .iter()
                    .map(|m| match m {
                        ModifierSpec::NormSys { .. } => Some((vec![1.1], vec![0.9])),
                        ModifierSpec::HistoSys { .. } => Some((vec![1.1; n], vec![0.9; n])),
                        _ => None,
                    })
                    .collect();
                let has_stat = s
                    .modifiers
                    .iter()
                    .any(|m| matches!(m, ModifierSpec::StatError { .. }));
                samples.push(SampleValues {
                    nominal: vec![1.0; n],
                    sumw2: has_stat.then(|| vec![0.01; n]),
                    modifiers,
                });
            }
        }
        TemplateValues { samples }
    }
}
