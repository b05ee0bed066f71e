//! Inference losses of template tensors: expected CLs (neos), discovery
//! p-value from q0, the POI variance and the generalised variance (INFERNO).
//!
//! [`Analysis::loss`] takes [`Templates`] (tensors from any candle graph) and
//! returns the loss value with a *surrogate*: a scalar tensor whose gradient
//! with respect to the templates, and so to everything upstream of them, is
//! the exact gradient of the loss. Call `surrogate.backward()` and read the
//! gradients of your network weights, or use [`Analysis::value_and_grad`] for
//! plain numbers.
//!
//! Gradients through the fits: a test statistic `q = f(theta_mu) - f(theta_hat)`
//! differentiates by the envelope theorem (the partial derivative of twice_nll
//! at each minimum, the data's dependence on the templates included); Asimov
//! data generated at a fitted point use the implicit derivative of that fit
//! ([`super::implicit::theta_tensor`]).

use super::graph::{DataTensors, TemplateGraph};
use super::implicit::{self, theta_tensor};
use super::spec::{AnalysisSpec, TemplateValues, Templates};
use crate::error::{Error, Result};
use crate::fit::FitSpec;
use crate::fit::linalg::Chol;
use crate::infer::TestStat;
use crate::model::HistFactoryModel;
use crate::util::special::normal_cdf;
use candle_core::{DType, Device, Tensor, Var};
use serde::{Deserialize, Serialize};

/// Which loss.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum LossKind {
    /// Median expected CLs at POI `mu`, on the Asimov data of POI `mu_asimov`
    /// (nuisances nominal), with `q` or `qtilde`, as pyhf computes it.
    Cls {
        /// Tested POI value.
        #[serde(default = "one")]
        mu: f64,
        /// POI of the Asimov data (0: background only).
        #[serde(default)]
        mu_asimov: f64,
        /// `qtilde` (default) or `q`.
        #[serde(default = "qtilde")]
        test_stat: TestStat,
    },
    /// Median expected discovery p-value from q0 on the Asimov data of `mu_asimov`.
    Discovery {
        /// POI of the Asimov data.
        #[serde(default = "one")]
        mu_asimov: f64,
    },
    /// Variance of the POI, `[I^-1]_poi,poi` at the Asimov point of `mu_asimov`.
    PoiVariance {
        /// POI of the Asimov point.
        #[serde(default = "one")]
        mu_asimov: f64,
    },
    /// `log det` of the covariance at the Asimov point of `mu_asimov`.
    GeneralisedVariance {
        /// POI of the Asimov point.
        #[serde(default = "one")]
        mu_asimov: f64,
    },
}

fn one() -> f64 {
    1.0
}
fn qtilde() -> TestStat {
    TestStat::QTilde
}

/// A loss value with its surrogate and inference metrics.
#[derive(Debug, Clone)]
pub struct LossValue {
    /// The loss.
    pub value: f64,
    /// Scalar tensor whose gradient is the loss's gradient.
    pub surrogate: Tensor,
    /// Named metrics (cls, q, q_asimov, p0, z, sigma_poi, ...).
    pub metrics: Vec<(String, f64)>,
}

impl LossValue {
    /// A metric by name.
    pub fn metric(&self, name: &str) -> Option<f64> {
        self.metrics
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| *v)
    }
}

/// An analysis structure ready to evaluate losses of its templates.
#[derive(Debug, Clone)]
pub struct Analysis {
    /// Index tables of the structure.
    pub graph: TemplateGraph,
}

fn normal_pdf(x: f64) -> f64 {
    (-0.5 * x * x).exp() / (2.0 * std::f64::consts::PI).sqrt()
}

/// CLs from (q, q_A) as pyhf's asymptotic calculator, with its partial derivatives.
pub fn cls_and_derivatives(kind: TestStat, q: f64, qa: f64) -> (f64, f64, f64) {
    let (sq, sqa) = (q.max(0.0).sqrt(), qa.max(0.0).sqrt());
    // t and its partials
    let (t, dt_dq, dt_dqa) = match kind {
        TestStat::QTilde | TestStat::TTilde if sq > sqa && qa > 0.0 => (
            (q - qa) / (2.0 * sqa),
            1.0 / (2.0 * sqa),
            -1.0 / (2.0 * sqa) - (q - qa) / (4.0 * sqa * sqa * sqa),
        ),
        _ => (
            sq - sqa,
            if sq > 0.0 { 0.5 / sq } else { 0.0 },
            if sqa > 0.0 { -0.5 / sqa } else { 0.0 },
        ),
    };
    let dsqa = if sqa > 0.0 { 0.5 / sqa } else { 0.0 };
    let clsb = normal_cdf(-(t + sqa));
    let clb = normal_cdf(-t);
    let a = -normal_pdf(t + sqa);
    let b = -normal_pdf(t);
    let dclsb = (a * dt_dq, a * (dt_dqa + dsqa));
    let dclb = (b * dt_dq, b * dt_dqa);
    let cls = clsb / clb;
    let d = |i: usize| {
        let (x, y) = if i == 0 {
            (dclsb.0, dclb.0)
        } else {
            (dclsb.1, dclb.1)
        };
        (x * clb - clsb * y) / (clb * clb)
    };
    (cls, d(0), d(1))
}

impl Analysis {
    /// Prepare `spec` (validated; its parameter layout compiled once).
    pub fn new(spec: &AnalysisSpec) -> Result<Self> {
        Ok(Analysis {
            graph: TemplateGraph::new(spec)?,
        })
    }

    /// The hypothesis point: suggested initial values with the POI at `mu`.
    pub fn hypothesis(&self, mu: f64) -> Vec<f64> {
        let mut t = self.graph.init.clone();
        t[self.graph.poi] = mu;
        t
    }

    /// The compiled model of `tp` with observed data `main` (model bin order).
    pub fn model(&self, values: &TemplateValues, main: &[f64]) -> Result<HistFactoryModel> {
        let obs = self.graph.channels_from_main(main);
        self.graph.spec().build_model(values, &obs)
    }

    /// The loss of `kind` for the templates `tp`.
    pub fn loss(&self, kind: &LossKind, tp: &Templates) -> Result<LossValue> {
        match *kind {
            LossKind::Cls {
                mu,
                mu_asimov,
                test_stat,
            } => self.cls(tp, mu, mu_asimov, test_stat),
            LossKind::Discovery { mu_asimov } => self.discovery(tp, mu_asimov),
            LossKind::PoiVariance { mu_asimov } => self.asimov_variance(tp, mu_asimov, false),
            LossKind::GeneralisedVariance { mu_asimov } => {
                self.asimov_variance(tp, mu_asimov, true)
            }
        }
    }

    /// The loss with its gradient with respect to each template tensor (in
    /// [`Templates::tensors`] order), computed on detached copies: the
    /// statistics part alone. [`reattach`] turns the gradients into a
    /// surrogate for the graph upstream of `tp`.
    pub fn loss_detached(
        &self,
        kind: &LossKind,
        tp: &Templates,
    ) -> Result<(LossValue, Vec<Tensor>)> {
        let mut vars = Vec::new();
        let mut var_tp = tp.clone();
        let mut mk = |t: &mut Tensor| -> Result<()> {
            let v = Var::from_tensor(&t.detach().to_dtype(DType::F64)?)?;
            *t = v.as_tensor().clone();
            vars.push(v);
            Ok(())
        };
        for s in var_tp.samples.iter_mut() {
            mk(&mut s.nominal)?;
            if let Some(w) = &mut s.sumw2 {
                mk(w)?;
            }
            for (h, l) in s.modifiers.iter_mut().flatten() {
                mk(h)?;
                mk(l)?;
            }
        }
        let lv = self.loss(kind, &var_tp)?;
        let grads = lv.surrogate.backward()?;
        let out = vars
            .iter()
            .map(|v| match grads.get(v.as_tensor()) {
                Some(g) => Ok(g.clone()),
                None => Ok(v.as_tensor().zeros_like()?),
            })
            .collect::<Result<Vec<_>>>()?;
        Ok((lv, out))
    }

    /// Loss value and its gradient with respect to every template number.
    pub fn value_and_grad(
        &self,
        kind: &LossKind,
        values: &TemplateValues,
    ) -> Result<(LossValue, TemplateValues)> {
        let (lv, grads) = self.loss_detached(kind, &values.to_tensors()?)?;
        let mut out = values.clone();
        let mut it = grads.iter();
        let mut take = || -> Result<Vec<f64>> {
            Ok(it
                .next()
                .expect("one gradient per tensor")
                .flatten_all()?
                .to_vec1::<f64>()?)
        };
        for s in out.samples.iter_mut() {
            s.nominal = take()?;
            if let Some(w) = &mut s.sumw2 {
                *w = take()?;
            }
            for (h, l) in s.modifiers.iter_mut().flatten() {
                *h = take()?;
                *l = take()?;
            }
        }
        Ok((lv, out))
    }

    fn fit_spec(&self, m: &HistFactoryModel, start: &[f64]) -> FitSpec {
        let mut s = FitSpec::from_model(m);
        s.init.copy_from_slice(start);
        for i in 0..s.init.len() {
            let (lo, hi) = s.bounds[i];
            s.init[i] = s.init[i].clamp(lo, hi);
        }
        s
    }

    /// Free and fixed-POI fits on `data`; returns (q, surrogate of q, mu_hat).
    #[allow(clippy::too_many_arguments)]
    fn test_stat(
        &self,
        m: &HistFactoryModel,
        tp: &Templates,
        data_t: &DataTensors,
        start: &[f64],
        kind: TestStat,
        mu: f64,
        label: &str,
    ) -> Result<(f64, Tensor, f64)> {
        let g = &self.graph;
        let data = g.dataset(m, data_t)?;
        let spec = self.fit_spec(m, start);
        let free = implicit::fit(
            m,
            &data,
            &spec,
            &format!("the free fit to the {label} data"),
        )?;
        let fixed_spec = spec.clone().fix(g.poi, mu);
        let fixed = implicit::fit(
            m,
            &data,
            &fixed_spec,
            &format!("the fit with the POI fixed at {mu} to the {label} data"),
        )?;
        let mu_hat = free.x[g.poi];
        let t = fixed.twice_nll - free.twice_nll;
        if t < -1e-9 * free.twice_nll.abs().max(1.0) {
            return Err(Error::Numerical(format!(
                "the fit with the POI fixed at {mu} reached a lower twice_nll than the free fit ({label} data)"
            )));
        }
        let active = t > 0.0 && kind.from_fits(mu, mu_hat, t) > 0.0;
        let q = if active { t } else { 0.0 };
        let sur = if active {
            (g.twice_nll(&fixed.x, tp, data_t)? - g.twice_nll(&free.x, tp, data_t)?)?
        } else {
            Tensor::zeros((), DType::F64, &Device::Cpu)?
        };
        Ok((q, sur, mu_hat))
    }

    fn cls(&self, tp: &Templates, mu: f64, mu_asimov: f64, kind: TestStat) -> Result<LossValue> {
        let g = &self.graph;
        let values = tp.values()?;
        let theta_a = self.hypothesis(mu_asimov);
        let data_t = g.asimov(&theta_a, tp)?;
        let m = self.model(&values, &data_t.main.to_vec1::<f64>()?)?;
        let (q, sur_q, mu_hat) = self.test_stat(&m, tp, &data_t, &theta_a, kind, mu, "Asimov")?;
        // the Asimov data of the calculator: at the fit with the POI fixed at 0
        let (qa, sur_qa) = if mu_asimov == 0.0 {
            (q, sur_q.clone())
        } else {
            let data = g.dataset(&m, &data_t)?;
            let spec0 = self.fit_spec(&m, &theta_a).fix(g.poi, 0.0);
            let f0 = implicit::fit(&m, &data, &spec0, "the fit with the POI fixed at 0")?;
            let th = theta_tensor(g, &m, tp, &data_t, &data, &f0, &spec0)?;
            let (nu, jac) = g.expected(&f0.x, tp)?;
            let shift = (&th - Tensor::from_slice(&f0.x, f0.x.len(), &Device::Cpu)?)?;
            let main = (nu + jac.matmul(&shift.unsqueeze(1)?)?.squeeze(1)?)?;
            let da = DataTensors { main, aux: th };
            let (qa, s, _) = self.test_stat(&m, tp, &da, &f0.x, kind, mu, "calculator's Asimov")?;
            (qa, s)
        };
        let (cls, dq, dqa) = cls_and_derivatives(kind, q, qa);
        let surrogate = if mu_asimov == 0.0 {
            (sur_q * (dq + dqa))?
        } else {
            ((sur_q * dq)? + (sur_qa * dqa)?)?
        };
        Ok(LossValue {
            value: cls,
            surrogate,
            metrics: vec![
                ("cls".into(), cls),
                ("q".into(), q),
                ("q_asimov".into(), qa),
                ("mu_hat".into(), mu_hat),
            ],
        })
    }

    fn discovery(&self, tp: &Templates, mu_asimov: f64) -> Result<LossValue> {
        let g = &self.graph;
        let values = tp.values()?;
        let theta_a = self.hypothesis(mu_asimov);
        let data_t = g.asimov(&theta_a, tp)?;
        let m = self.model(&values, &data_t.main.to_vec1::<f64>()?)?;
        let (q0, sur, mu_hat) =
            self.test_stat(&m, tp, &data_t, &theta_a, TestStat::Q0, 0.0, "Asimov")?;
        let z = q0.sqrt();
        let p0 = normal_cdf(-z);
        let dp = if z > 0.0 {
            -normal_pdf(z) / (2.0 * z)
        } else {
            0.0
        };
        Ok(LossValue {
            value: p0,
            surrogate: (sur * dp)?,
            metrics: vec![
                ("p0".into(), p0),
                ("z".into(), z),
                ("q0".into(), q0),
                ("mu_hat".into(), mu_hat),
            ],
        })
    }

    /// The free (non-fixed) parameters and the numeric inverse of the Asimov
    /// Hessian's block over them at the hypothesis `mu_asimov`.
    pub fn asimov_inverse(
        &self,
        tp: &Templates,
        mu_asimov: f64,
    ) -> Result<(Vec<usize>, Tensor, Vec<f64>)> {
        let g = &self.graph;
        let theta = self.hypothesis(mu_asimov);
        let h = g.asimov_hessian(&theta, tp)?;
        let free: Vec<usize> = (0..g.n_pars()).filter(|&i| !g.fixed[i]).collect();
        let f = free.len();
        let idx = Tensor::from_vec(
            free.iter().map(|&i| i as u32).collect::<Vec<_>>(),
            f,
            &Device::Cpu,
        )?;
        let hf = h.index_select(&idx, 0)?.index_select(&idx, 1)?;
        let hv = hf.flatten_all()?.to_vec1::<f64>()?;
        let mut chol = Chol::new(f.max(1));
        if !chol.factor(f, |i, j| hv[i * f + j]) {
            return Err(Error::Numerical(
                "the Asimov Fisher information is not positive definite (a parameter has no \
                 effect on the expected counts?)"
                    .into(),
            ));
        }
        let mut inv = vec![0.0; f * f];
        chol.inverse(&mut inv);
        Ok((free, hf, inv))
    }

    fn asimov_variance(&self, tp: &Templates, mu_asimov: f64, logdet: bool) -> Result<LossValue> {
        let g = &self.graph;
        let (free, hf, inv) = self.asimov_inverse(tp, mu_asimov)?;
        let f = free.len();
        let k = free
            .iter()
            .position(|&i| i == g.poi)
            .expect("the POI is free");
        let var = 2.0 * inv[k * f + k];
        let dev = Device::Cpu;
        if logdet {
            // log det(2 H^-1) = f ln 2 - ln det H; its differential is -tr(H^-1 dH)
            let hv = hf.flatten_all()?.to_vec1::<f64>()?;
            let logdet_h = log_det_spd(&hv, f)?;
            let value = f as f64 * std::f64::consts::LN_2 - logdet_h;
            let w = Tensor::from_vec(inv, (f, f), &dev)?;
            let surrogate = ((w * &hf)?.sum_all()? * -1.0)?;
            return Ok(LossValue {
                value,
                surrogate,
                metrics: vec![
                    ("log_det_cov".into(), value),
                    ("sigma_poi".into(), var.sqrt()),
                ],
            });
        }
        let wv: Vec<f64> = (0..f).map(|i| inv[i * f + k]).collect();
        let w = Tensor::from_vec(wv, f, &dev)?;
        let ww = w.unsqueeze(1)?.matmul(&w.unsqueeze(0)?)?;
        let surrogate = ((ww * &hf)?.sum_all()? * -2.0)?;
        Ok(LossValue {
            value: var,
            surrogate,
            metrics: vec![("var_poi".into(), var), ("sigma_poi".into(), var.sqrt())],
        })
    }

    /// The POI uncertainty `sqrt(2 [H^-1]_poi)` at the Asimov point of `mu_asimov`.
    pub fn sigma_poi(&self, tp: &Templates, mu_asimov: f64) -> Result<f64> {
        let (free, _, inv) = self.asimov_inverse(tp, mu_asimov)?;
        let f = free.len();
        let k = free
            .iter()
            .position(|&i| i == self.graph.poi)
            .expect("POI free");
        Ok((2.0 * inv[k * f + k]).sqrt())
    }
}

/// A scalar whose gradient with respect to everything upstream of `tp` is
/// `sum_k grads_k . d tp_k` (the chain rule from template gradients of
/// [`Analysis::loss_detached`]).
pub fn reattach(tp: &Templates, grads: &[Tensor]) -> Result<Tensor> {
    let ts = tp.tensors();
    if ts.len() != grads.len() {
        return Err(Error::input("one gradient per template tensor is needed"));
    }
    let mut acc: Option<Tensor> = None;
    for (t, g) in ts.iter().zip(grads) {
        let g = g.to_dtype(t.dtype())?.reshape(t.shape())?;
        let term = (*t * g)?.sum_all()?.to_dtype(DType::F64)?;
        acc = Some(match acc {
            None => term,
            Some(a) => (a + term)?,
        });
    }
    acc.ok_or_else(|| Error::input("no template tensors"))
}

/// `ln det` of a symmetric positive-definite matrix (row-major, n x n) by Cholesky.
pub fn log_det_spd(a: &[f64], n: usize) -> Result<f64> {
    let mut l = vec![0.0; n * n];
    let mut s = 0.0;
    for j in 0..n {
        let mut d = a[j * n + j];
        for k in 0..j {
            d -= l[j * n + k] * l[j * n + k];
        }
        if !(d > 0.0) {
            return Err(Error::Numerical("matrix not positive definite".into()));
        }
        let djj = d.sqrt();
        l[j * n + j] = djj;
        s += 2.0 * djj.ln();
        for i in j + 1..n {
            let mut v = a[i * n + j];
            for k in 0..j {
                v -= l[i * n + k] * l[j * n + k];
            }
            l[i * n + j] = v / djj;
        }
    }
    Ok(s)
}
