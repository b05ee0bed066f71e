//! The likelihood of an [`AnalysisSpec`] as candle expressions of its template
//! tensors, at numeric parameter points.
//!
//! At a fixed parameter vector `theta`, every interpolation is a known
//! function of the templates: additive codes are linear in `(hi, lo, nominal)`
//! with coefficients that depend only on `alpha`, and the code-1/code-4
//! normsys factor is a closed form of `(hi, lo)`. So the expected counts
//! `nu(theta, phi)` *and their Jacobian* `J = d nu / d theta` are ordinary
//! candle expressions of the templates `phi`, and one reverse pass gives
//! gradients of anything built from them (twice_nll, its theta-gradient, the
//! Asimov Fisher information) with respect to the templates. No double
//! backward is needed: the mixed second derivative `d^2 twice_nll / d theta d phi`
//! is the phi-gradient of the analytic theta-gradient [`TemplateGraph::grad`].
//!
//! Twice_nll here omits every term that does not depend on `theta`
//! (log-factorials, Gaussian normalisations): differences and gradients in
//! `theta` are exact, absolute values differ from the kernel's by a constant.

use super::spec::{AnalysisSpec, ModifierSpec, Templates};
use crate::error::{Error, Result};
use crate::model::HistFactoryModel;
use crate::model::histfactory::Constraint;
use crate::model::histfactory::interp::{Interp, InterpCode, code4_coefficients_matrix};
use candle_core::{D, DType, Device, Tensor};

/// Data as tensors: main counts [B] (model bin order) and aux data [P]
/// (parameter order; entries of unconstrained parameters are ignored).
#[derive(Debug, Clone)]
pub struct DataTensors {
    /// Main counts.
    pub main: Tensor,
    /// Aux data per parameter.
    pub aux: Tensor,
}

#[derive(Debug, Clone)]
enum ModPar {
    One(usize),
    PerBin(Vec<usize>),
}

#[derive(Debug, Clone)]
enum Con {
    None,
    Normal(f64),
    /// Staterror: the (sample, bin) entries whose sums of squared weights and
    /// nominal yields make the width.
    Stat(Vec<(usize, usize)>),
}

/// Index tables mapping an [`AnalysisSpec`] onto the compiled model's parameters and bins.
#[derive(Debug, Clone)]
pub struct TemplateGraph {
    spec: AnalysisSpec,
    /// Parameter names in model (pyhf) order.
    pub par_names: Vec<String>,
    /// Suggested initial values.
    pub init: Vec<f64>,
    /// Bounds.
    pub bounds: Vec<(f64, f64)>,
    /// Fixed flags.
    pub fixed: Vec<bool>,
    /// POI index.
    pub poi: usize,
    /// Number of main bins.
    pub n_main: usize,
    chan_offset: Vec<usize>,
    /// (channel, first sample entry) per spec channel.
    sample_chan: Vec<usize>,
    mod_pars: Vec<Vec<Option<ModPar>>>,
    cons: Vec<Con>,
    device: Device,
}

fn scalar(v: f64, dev: &Device) -> Result<Tensor> {
    Ok(Tensor::from_slice(&[v], 1, dev)?)
}

impl TemplateGraph {
    /// Index tables for `spec` (its parameter layout is learned from a model
    /// compiled from placeholder templates).
    pub fn new(spec: &AnalysisSpec) -> Result<Self> {
        spec.validate()?;
        let ph = spec.placeholder_values();
        let obs: Vec<Vec<f64>> = spec.channels.iter().map(|c| vec![1.0; c.nbins]).collect();
        let m = spec.build_model(&ph, &obs)?;
        Self::from_model(spec, &m)
    }

    fn from_model(spec: &AnalysisSpec, m: &HistFactoryModel) -> Result<Self> {
        let poi = m
            .poi
            .ok_or_else(|| Error::input(format!("the POI '{}' is not a parameter", spec.poi)))?;
        let mut chan_offset = Vec::new();
        for c in &spec.channels {
            let info = m
                .channels
                .iter()
                .find(|x| x.name == c.name)
                .ok_or_else(|| Error::input(format!("channel '{}' not compiled", c.name)))?;
            chan_offset.push(info.bin_offset);
        }
        let p = m.n_pars();
        let mut cons: Vec<Con> = m
            .constraints
            .iter()
            .map(|c| match *c {
                Constraint::None => Con::None,
                Constraint::Normal { sigma } => Con::Normal(sigma),
                Constraint::Poisson { .. } => Con::None,
            })
            .collect();
        let mut mod_pars = Vec::new();
        let mut sample_chan = Vec::new();
        let mut k = 0;
        for (ci, c) in spec.channels.iter().enumerate() {
            for s in &c.samples {
                let mut v = Vec::new();
                for md in &s.modifiers {
                    let name = md.name();
                    v.push(Some(match md {
                        ModifierSpec::StatError { .. } => {
                            let mut pars = Vec::with_capacity(c.nbins);
                            for b in 0..c.nbins {
                                let gb = chan_offset[ci] + b;
                                // staterror parameters cover the bins of every channel that uses the name
                                let set = m
                                    .par_sets
                                    .iter()
                                    .find(|ps| ps.name == name)
                                    .expect("staterror set");
                                let covered: Vec<usize> = m
                                    .channels
                                    .iter()
                                    .filter(|ch| {
                                        spec.channels.iter().any(|sc| {
                                            sc.name == ch.name
                                                && sc.samples.iter().any(|ss| {
                                                    ss.modifiers.iter().any(|mm| {
                                                        matches!(mm, ModifierSpec::StatError { name: n } if n == name)
                                                    })
                                                })
                                        })
                                    })
                                    .flat_map(|ch| ch.bin_offset..ch.bin_offset + ch.nbins)
                                    .collect();
                                let pos = covered.iter().position(|&x| x == gb).expect("bin covered");
                                let par = set.offset + pos;
                                pars.push(par);
                                match &mut cons[par] {
                                    Con::Stat(e) => e.push((k, b)),
                                    other => *other = Con::Stat(vec![(k, b)]),
                                }
                            }
                            ModPar::PerBin(pars)
                        }
                        _ => ModPar::One(m.par_index(name).expect("parameter of a modifier")),
                    }));
                }
                mod_pars.push(v);
                sample_chan.push(ci);
                k += 1;
            }
        }
        debug_assert_eq!(cons.len(), p);
        Ok(TemplateGraph {
            spec: spec.clone(),
            par_names: m.par_names.clone(),
            init: m.init.clone(),
            bounds: m.bounds.clone(),
            fixed: m.fixed.clone(),
            poi,
            n_main: m.n_main,
            chan_offset,
            sample_chan,
            mod_pars,
            cons,
            device: Device::Cpu,
        })
    }

    /// The analysis structure.
    pub fn spec(&self) -> &AnalysisSpec {
        &self.spec
    }

    /// Number of parameters.
    pub fn n_pars(&self) -> usize {
        self.par_names.len()
    }

    /// Global bin of (spec channel, bin).
    pub fn global_bin(&self, channel: usize, bin: usize) -> usize {
        self.chan_offset[channel] + bin
    }

    /// Model-ordered main counts from per-channel vectors in spec order.
    pub fn main_from_channels(&self, per_channel: &[Vec<f64>]) -> Vec<f64> {
        let mut v = vec![0.0; self.n_main];
        for (ci, c) in per_channel.iter().enumerate() {
            for (b, x) in c.iter().enumerate() {
                v[self.chan_offset[ci] + b] = *x;
            }
        }
        v
    }

    /// Per-channel vectors (spec order) from model-ordered main counts.
    pub fn channels_from_main(&self, main: &[f64]) -> Vec<Vec<f64>> {
        self.spec
            .channels
            .iter()
            .enumerate()
            .map(|(ci, c)| main[self.chan_offset[ci]..self.chan_offset[ci] + c.nbins].to_vec())
            .collect()
    }

    /// Expected main counts [B] and their Jacobian [B, P] at `theta`.
    pub fn expected(&self, theta: &[f64], tp: &Templates) -> Result<(Tensor, Tensor)> {
        let p = self.n_pars();
        if theta.len() != p {
            return Err(Error::input(format!(
                "theta has {} entries, the model has {p} parameters",
                theta.len()
            )));
        }
        if tp.samples.len() != self.mod_pars.len() {
            return Err(Error::input(format!(
                "{} sample templates given, the analysis has {}",
                tp.samples.len(),
                self.mod_pars.len()
            )));
        }
        let dev = &self.device;
        let mut nu_vals = Vec::new();
        let mut nu_idx: Vec<u32> = Vec::new();
        let mut j_vals = Vec::new();
        let mut j_idx: Vec<u32> = Vec::new();
        for (k, st) in tp.samples.iter().enumerate() {
            let ci = self.sample_chan[k];
            let chan = &self.spec.channels[ci];
            let nb = chan.nbins;
            let off = self.chan_offset[ci];
            let smp = &chan.samples[k - self.first_sample(ci)];
            let nom = st.nominal.to_dtype(DType::F64)?.flatten_all()?;
            if nom.dims1()? != nb {
                return Err(Error::input(format!(
                    "sample '{}': nominal has {} bins, channel '{}' has {nb}",
                    smp.name,
                    nom.dims1()?,
                    chan.name
                )));
            }
            // factors: (value [nb], derivative [nb], parameters)
            let mut factors: Vec<(Tensor, Tensor, ModPar)> = Vec::new();
            let mut amount = nom.clone();
            let mut adds: Vec<(Tensor, usize)> = Vec::new();
            for (mi, md) in smp.modifiers.iter().enumerate() {
                let mp = self.mod_pars[k][mi].clone().expect("mapped");
                match (md, &mp) {
                    (
                        ModifierSpec::NormFactor { .. } | ModifierSpec::Lumi { .. },
                        ModPar::One(i),
                    ) => {
                        let v = Tensor::full(theta[*i], nb, dev)?;
                        let d = Tensor::ones(nb, DType::F64, dev)?;
                        factors.push((v, d, mp.clone()));
                    }
                    (ModifierSpec::StatError { .. }, ModPar::PerBin(pars)) => {
                        let g: Vec<f64> = pars.iter().map(|&i| theta[i]).collect();
                        let v = Tensor::from_slice(&g, nb, dev)?;
                        let d = Tensor::ones(nb, DType::F64, dev)?;
                        factors.push((v, d, mp.clone()));
                    }
                    (ModifierSpec::NormSys { .. }, ModPar::One(i)) => {
                        let (h, l) = self.pair(st, mi, &smp.name)?;
                        let (v, d) = normsys_factor(self.spec.normsys_code, theta[*i], &h, &l)?;
                        factors.push((
                            v.broadcast_as(nb)?.contiguous()?,
                            d.broadcast_as(nb)?.contiguous()?,
                            mp.clone(),
                        ));
                    }
                    (ModifierSpec::HistoSys { .. }, ModPar::One(i)) => {
                        let (h, l) = self.pair(st, mi, &smp.name)?;
                        let a = theta[*i];
                        let up = Interp::additive(self.spec.histosys_code, 1.0, 0.0).eval(a);
                        let dn = Interp::additive(self.spec.histosys_code, 0.0, 1.0).eval(a);
                        // delta = cp (hi - nom) + cm (nom - lo)
                        let delta = affine3(&h, up.0, &nom, dn.0 - up.0, &l, -dn.0)?;
                        let ddelta = affine3(&h, up.1, &nom, dn.1 - up.1, &l, -dn.1)?;
                        amount = (amount + delta)?;
                        adds.push((ddelta, *i));
                    }
                    _ => unreachable!("modifier/parameter kinds match"),
                }
            }
            let mut fprod: Option<Tensor> = None;
            for (v, _, _) in &factors {
                fprod = Some(match fprod {
                    None => v.clone(),
                    Some(f) => (f * v)?,
                });
            }
            let nu = match &fprod {
                Some(f) => (f * &amount)?,
                None => amount.clone(),
            };
            nu_vals.push(nu);
            nu_idx.extend((0..nb).map(|b| (off + b) as u32));
            for (fi, (_, d, mp)) in factors.iter().enumerate() {
                let mut others: Option<Tensor> = None;
                for (fj, (v, _, _)) in factors.iter().enumerate() {
                    if fj != fi {
                        others = Some(match others {
                            None => v.clone(),
                            Some(o) => (o * v)?,
                        });
                    }
                }
                let base = (d * &amount)?;
                let col = match others {
                    Some(o) => (o * base)?,
                    None => base,
                };
                j_vals.push(col);
                match mp {
                    ModPar::One(i) => j_idx.extend((0..nb).map(|b| ((off + b) * p + i) as u32)),
                    ModPar::PerBin(pars) => {
                        j_idx.extend((0..nb).map(|b| ((off + b) * p + pars[b]) as u32))
                    }
                }
            }
            for (dd, i) in adds {
                let col = match &fprod {
                    Some(f) => (f * dd)?,
                    None => dd,
                };
                j_vals.push(col);
                j_idx.extend((0..nb).map(|b| ((off + b) * p + i) as u32));
            }
        }
        let b = self.n_main;
        let nu = Tensor::zeros(b, DType::F64, dev)?.index_add(
            &Tensor::from_vec(nu_idx.clone(), nu_idx.len(), dev)?,
            &Tensor::cat(&nu_vals, 0)?,
            0,
        )?;
        let jac = if j_vals.is_empty() {
            Tensor::zeros((b, p), DType::F64, dev)?
        } else {
            Tensor::zeros(b * p, DType::F64, dev)?
                .index_add(
                    &Tensor::from_vec(j_idx.clone(), j_idx.len(), dev)?,
                    &Tensor::cat(&j_vals, 0)?,
                    0,
                )?
                .reshape((b, p))?
        };
        Ok((nu, jac))
    }

    fn first_sample(&self, ci: usize) -> usize {
        self.sample_chan
            .iter()
            .position(|&c| c == ci)
            .expect("channel has samples")
    }

    fn pair(
        &self,
        st: &super::spec::SampleTemplates,
        mi: usize,
        name: &str,
    ) -> Result<(Tensor, Tensor)> {
        match st.modifiers.get(mi) {
            Some(Some((h, l))) => Ok((
                h.to_dtype(DType::F64)?.flatten_all()?,
                l.to_dtype(DType::F64)?.flatten_all()?,
            )),
            _ => Err(Error::input(format!(
                "sample '{name}': modifier {mi} needs (hi, lo) templates"
            ))),
        }
    }

    /// Constraint widths per parameter as tensors ([P]; 0 where unconstrained).
    /// Staterror widths follow from the templates: sqrt(sum w^2) / sum nominal.
    pub fn inv_sigma2(&self, tp: &Templates) -> Result<Tensor> {
        let dev = &self.device;
        let mut parts = Vec::with_capacity(self.cons.len());
        for c in &self.cons {
            parts.push(match c {
                Con::None => scalar(0.0, dev)?,
                Con::Normal(s) => scalar(1.0 / (s * s), dev)?,
                Con::Stat(entries) => {
                    let mut w2: Option<Tensor> = None;
                    let mut nom: Option<Tensor> = None;
                    for &(k, b) in entries {
                        let st = &tp.samples[k];
                        let sw = st
                            .sumw2
                            .as_ref()
                            .ok_or_else(|| Error::input("staterror needs sums of squared weights"))?
                            .to_dtype(DType::F64)?
                            .flatten_all()?
                            .narrow(0, b, 1)?;
                        let n = st
                            .nominal
                            .to_dtype(DType::F64)?
                            .flatten_all()?
                            .narrow(0, b, 1)?;
                        w2 = Some(match w2 {
                            None => sw,
                            Some(x) => (x + sw)?,
                        });
                        nom = Some(match nom {
                            None => n,
                            Some(x) => (x + n)?,
                        });
                    }
                    let (w2, nom) = (w2.expect("entries"), nom.expect("entries"));
                    let (w2v, nomv) = (w2.to_vec1::<f64>()?[0], nom.to_vec1::<f64>()?[0]);
                    if nomv > 0.0 && w2v > 0.0 {
                        // 1/sigma^2 = nom^2 / w2
                        (nom.sqr()? / w2)?
                    } else {
                        scalar(1.0, dev)? // held fixed by the model (sigma 0)
                    }
                }
            });
        }
        Ok(Tensor::cat(&parts, 0)?)
    }

    /// Mask of constrained parameters.
    pub fn constrained(&self) -> Vec<bool> {
        self.cons.iter().map(|c| !matches!(c, Con::None)).collect()
    }

    /// Expected aux data per parameter at `theta` (theta itself for Gaussian constraints).
    pub fn expected_aux(&self, theta: &[f64]) -> Vec<f64> {
        theta.to_vec()
    }

    /// twice_nll at `theta` (up to theta-independent terms), a scalar tensor.
    pub fn twice_nll(&self, theta: &[f64], tp: &Templates, data: &DataTensors) -> Result<Tensor> {
        let (nu, _) = self.expected(theta, tp)?;
        self.twice_nll_from(&nu, theta, tp, data)
    }

    fn twice_nll_from(
        &self,
        nu: &Tensor,
        theta: &[f64],
        tp: &Templates,
        data: &DataTensors,
    ) -> Result<Tensor> {
        let dev = &self.device;
        let pos = nu.gt(0.0)?;
        let safe = pos.where_cond(nu, &Tensor::ones_like(nu)?)?;
        let main = ((nu - (&data.main * safe.log()?)?)?.sum_all()? * 2.0)?;
        let th = Tensor::from_slice(theta, theta.len(), dev)?;
        let r = (th - &data.aux)?;
        let con = (r.sqr()? * self.inv_sigma2(tp)?)?.sum_all()?;
        Ok((main + con)?)
    }

    /// The gradient of twice_nll with respect to theta at `theta`, [P], as a
    /// tensor of the templates and data.
    pub fn grad(&self, theta: &[f64], tp: &Templates, data: &DataTensors) -> Result<Tensor> {
        let (nu, jac) = self.expected(theta, tp)?;
        self.grad_from(&nu, &jac, theta, tp, data)
    }

    fn grad_from(
        &self,
        nu: &Tensor,
        jac: &Tensor,
        theta: &[f64],
        tp: &Templates,
        data: &DataTensors,
    ) -> Result<Tensor> {
        let dev = &self.device;
        let r = (1.0 - (&data.main / nu)?)?;
        let main = (jac.broadcast_mul(&r.unsqueeze(1)?)?.sum(0)? * 2.0)?;
        let th = Tensor::from_slice(theta, theta.len(), dev)?;
        let con = (((th - &data.aux)? * self.inv_sigma2(tp)?)? * 2.0)?;
        Ok((main + con)?)
    }

    /// twice_nll and its theta-gradient sharing one expected-count pass.
    pub fn value_and_grad(
        &self,
        theta: &[f64],
        tp: &Templates,
        data: &DataTensors,
    ) -> Result<(Tensor, Tensor)> {
        let (nu, jac) = self.expected(theta, tp)?;
        Ok((
            self.twice_nll_from(&nu, theta, tp, data)?,
            self.grad_from(&nu, &jac, theta, tp, data)?,
        ))
    }

    /// The Hessian of twice_nll at `theta` on its own Asimov data, [P, P]:
    /// `2 J^T diag(1/nu) J + 2 diag(1/sigma^2)` (twice the Fisher information).
    pub fn asimov_hessian(&self, theta: &[f64], tp: &Templates) -> Result<Tensor> {
        let (nu, jac) = self.expected(theta, tp)?;
        let w = jac.broadcast_div(&nu.unsqueeze(1)?)?;
        let main = (jac.t()?.matmul(&w)? * 2.0)?;
        let con = (self.inv_sigma2(tp)? * 2.0)?;
        let p = self.n_pars();
        let eye = Tensor::eye(p, DType::F64, &self.device)?;
        Ok(main.add(&eye.broadcast_mul(&con.unsqueeze(0)?)?)?)
    }

    /// The Asimov data at `theta` as tensors (main counts depend on the templates).
    pub fn asimov(&self, theta: &[f64], tp: &Templates) -> Result<DataTensors> {
        let (nu, _) = self.expected(theta, tp)?;
        Ok(DataTensors {
            main: nu,
            aux: Tensor::from_slice(theta, theta.len(), &self.device)?,
        })
    }

    /// Numeric model data from tensors (main counts and aux in the model's aux order).
    pub fn dataset(&self, m: &HistFactoryModel, d: &DataTensors) -> Result<crate::Dataset> {
        let main = d.main.to_vec1::<f64>()?;
        let auxp = d.aux.to_vec1::<f64>()?;
        let mut aux = vec![0.0; m.n_aux()];
        for (i, a) in m.aux_index.iter().enumerate() {
            if let Some(k) = a {
                aux[*k] = auxp[i];
            }
        }
        m.dataset(main.into_iter().map(|x| x.max(0.0)).collect(), aux)
    }
}

/// `a x + b y + c z`.
fn affine3(x: &Tensor, a: f64, y: &Tensor, b: f64, z: &Tensor, c: f64) -> Result<Tensor> {
    Ok((((x * a)? + (y * b)?)? + (z * c)?)?)
}

/// Normsys factor and its alpha-derivative as tensors of (hi, lo) ([1] each).
fn normsys_factor(code: InterpCode, a: f64, hi: &Tensor, lo: &Tensor) -> Result<(Tensor, Tensor)> {
    if !code.is_multiplicative() {
        // f = 1 + cp (hi - 1) + cm (1 - lo)
        let up = Interp::additive(code, 1.0, 0.0).eval(a);
        let dn = Interp::additive(code, 0.0, 1.0).eval(a);
        let v = ((((hi - 1.0)? * up.0)? + ((lo.neg()? + 1.0)? * dn.0)?)? + 1.0)?;
        let d = (((hi - 1.0)? * up.1)? + ((lo.neg()? + 1.0)? * dn.1)?)?;
        return Ok((v, d));
    }
    let outside_hi = match code {
        InterpCode::Code1 => a >= 0.0,
        _ => a >= 1.0,
    };
    let outside_lo = match code {
        InterpCode::Code1 => a < 0.0,
        _ => a <= -1.0,
    };
    if outside_hi {
        let l = hi.log()?;
        let v = (&l * a)?.exp()?;
        let d = (l * &v)?;
        return Ok((v, d));
    }
    if outside_lo {
        let l = lo.log()?;
        let v = (&l * -a)?.exp()?;
        let d = (l.neg()? * &v)?;
        return Ok((v, d));
    }
    // code 4 inside: f = 1 + sum_k a_k alpha^(k+1), a = Ainv b(hi, lo)
    let (lh, ll) = (hi.log()?, lo.log()?);
    let b = [
        (hi - 1.0)?,
        (lo - 1.0)?,
        (hi * &lh)?,
        (lo * &ll)?.neg()?,
        ((hi * &lh)? * &lh)?,
        ((lo * &ll)? * &ll)?,
    ];
    let m = code4_coefficients_matrix();
    let mut v = Tensor::ones(1, DType::F64, hi.device())?;
    let mut d = Tensor::zeros(1, DType::F64, hi.device())?;
    for (j, bj) in b.iter().enumerate() {
        let (mut cv, mut cd) = (0.0, 0.0);
        for (k, row) in m.iter().enumerate() {
            cv += row[j] * a.powi(k as i32 + 1);
            cd += row[j] * (k as f64 + 1.0) * a.powi(k as i32);
        }
        v = (v + (bj * cv)?)?;
        d = (d + (bj * cd)?)?;
    }
    Ok((v, d))
}

/// Sum of a [B] tensor (helper for tests and losses).
pub fn total(t: &Tensor) -> Result<f64> {
    Ok(t.sum(D::Minus1)?.to_scalar::<f64>()?)
}
