//! The HistFactory likelihood as a candle graph: `twice_nll(theta[T, P]) -> [T]`.
//!
//! Every template number (nominal yields, histosys up/down templates, normsys
//! up/down factors) enters as a tensor, so reverse-mode gradients flow both to
//! the parameters and to the templates (for training observables through the
//! likelihood). Constraint widths (staterror sigmas, shapesys taus) are model
//! constants fixed at compile time.
//!
//! Layout: parameters are gathered per term with `index_select`, interpolated
//! elementwise, and accumulated per sample-bin with `index_add` (whose backward
//! is correct in candle; `scatter_add`'s is not). Normsys factors multiply as
//! sign times exp of summed log-magnitudes; linear factors (normfactor, lumi,
//! staterror, shapesys, shapefactor) multiply directly so that a factor at zero
//! keeps finite gradients.

use super::interp::InterpCode;
use super::{Dataset, HistFactoryModel};
use crate::error::Result;
use candle_core::{D, DType, Device, Tensor};

/// Template inputs of the graph (make them `Var`s to differentiate with respect to them).
#[derive(Debug, Clone)]
pub struct TemplateTensors {
    /// Nominal yield per sample-bin [SB].
    pub nominal: Tensor,
    /// Histosys up template per entry [EH].
    pub histo_hi: Tensor,
    /// Histosys down template per entry [EH].
    pub histo_lo: Tensor,
    /// Normsys up factor per entry [EN].
    pub norm_hi: Tensor,
    /// Normsys down factor per entry [EN].
    pub norm_lo: Tensor,
}

/// Data inputs of the graph.
#[derive(Debug, Clone)]
pub struct DataTensors {
    /// Main counts [B].
    pub main: Tensor,
    /// Aux data of the Gaussian constraints [NN].
    pub aux_normal: Tensor,
    /// Aux data of the Poisson constraints [NP].
    pub aux_poisson: Tensor,
    /// The dataset's constant term.
    pub constant: f64,
}

/// Compiled index tables of a model on a device.
#[derive(Debug, Clone)]
pub struct Graph {
    device: Device,
    n_pars: usize,
    n_main: usize,
    n_sb: usize,
    normsys_code: InterpCode,
    histosys_code: InterpCode,
    sb_bin: Tensor,
    lin_slots: Vec<Tensor>,
    norm_par: Tensor,
    norm_sb: Tensor,
    histo_par: Tensor,
    histo_sb: Tensor,
    normal_par: Tensor,
    normal_sigma: Tensor,
    normal_aux_idx: Vec<usize>,
    poisson_par: Tensor,
    poisson_tau: Tensor,
    poisson_aux_idx: Vec<usize>,
    code4_ainv_t: Tensor,
}

fn u32s(v: &[u32], dev: &Device) -> Result<Tensor> {
    Ok(Tensor::from_slice(v, v.len(), dev)?)
}

fn f64s(v: &[f64], dev: &Device) -> Result<Tensor> {
    Ok(Tensor::from_slice(v, v.len(), dev)?)
}

impl Graph {
    /// Build the index tables of `m` on `device`.
    pub fn new(m: &HistFactoryModel, device: &Device) -> Result<Self> {
        let p = m.n_pars();
        let n_sb = m.sb.len();
        let sb_bin: Vec<u32> = m.sb.iter().map(|s| s.bin).collect();
        // linear factors per sample-bin, in slots; slot entries default to the ones column (index P)
        let mut per_sb: Vec<Vec<u32>> = vec![Vec::new(); n_sb];
        for &(sb, par) in &m.layout.lin {
            per_sb[sb as usize].push(par);
        }
        let k = per_sb.iter().map(|v| v.len()).max().unwrap_or(0);
        let mut lin_slots = Vec::with_capacity(k);
        for slot in 0..k {
            let idx: Vec<u32> = per_sb
                .iter()
                .map(|v| v.get(slot).copied().unwrap_or(p as u32))
                .collect();
            lin_slots.push(u32s(&idx, device)?);
        }
        let mut normal_par = Vec::new();
        let mut normal_sigma = Vec::new();
        let mut normal_aux_idx = Vec::new();
        let mut poisson_par = Vec::new();
        let mut poisson_tau = Vec::new();
        let mut poisson_aux_idx = Vec::new();
        for (i, c) in m.constraints.iter().enumerate() {
            match *c {
                super::Constraint::Normal { sigma } => {
                    normal_par.push(i as u32);
                    normal_sigma.push(sigma);
                    normal_aux_idx.push(m.aux_index[i].expect("constrained"));
                }
                super::Constraint::Poisson { tau } => {
                    poisson_par.push(i as u32);
                    poisson_tau.push(tau);
                    poisson_aux_idx.push(m.aux_index[i].expect("constrained"));
                }
                super::Constraint::None => {}
            }
        }
        let ainv: Vec<f64> = {
            // transpose of the code-4 inverse matrix, so that coeffs = b [E,6] x Ainv^T [6,6]
            let a = super::interp::code4_coefficients_matrix();
            let mut t = vec![0.0; 36];
            for r in 0..6 {
                for c in 0..6 {
                    t[c * 6 + r] = a[r][c];
                }
            }
            t
        };
        Ok(Graph {
            device: device.clone(),
            n_pars: p,
            n_main: m.n_main,
            n_sb,
            normsys_code: m.normsys_code,
            histosys_code: m.histosys_code,
            sb_bin: u32s(&sb_bin, device)?,
            lin_slots,
            norm_par: u32s(&m.layout.norm_par, device)?,
            norm_sb: u32s(&m.layout.norm_sb, device)?,
            histo_par: u32s(&m.layout.histo_par, device)?,
            histo_sb: u32s(&m.layout.histo_sb, device)?,
            normal_par: u32s(&normal_par, device)?,
            normal_sigma: f64s(&normal_sigma, device)?,
            normal_aux_idx,
            poisson_par: u32s(&poisson_par, device)?,
            poisson_tau: f64s(&poisson_tau, device)?,
            poisson_aux_idx,
            code4_ainv_t: Tensor::from_vec(ainv, (6, 6), device)?,
        })
    }

    /// The device the graph lives on.
    pub fn device(&self) -> &Device {
        &self.device
    }

    /// The model's templates as constant tensors.
    pub fn templates(&self, m: &HistFactoryModel) -> Result<TemplateTensors> {
        let t = &m.templates;
        Ok(TemplateTensors {
            nominal: f64s(&t.nominal, &self.device)?,
            histo_hi: f64s(&t.histo_hi, &self.device)?,
            histo_lo: f64s(&t.histo_lo, &self.device)?,
            norm_hi: f64s(&t.norm_hi, &self.device)?,
            norm_lo: f64s(&t.norm_lo, &self.device)?,
        })
    }

    /// A dataset as tensors.
    pub fn data(&self, d: &Dataset) -> Result<DataTensors> {
        let an: Vec<f64> = self.normal_aux_idx.iter().map(|&k| d.aux[k]).collect();
        let ap: Vec<f64> = self.poisson_aux_idx.iter().map(|&k| d.aux[k]).collect();
        Ok(DataTensors {
            main: f64s(&d.main, &self.device)?,
            aux_normal: f64s(&an, &self.device)?,
            aux_poisson: f64s(&ap, &self.device)?,
            constant: d.constant,
        })
    }

    /// Expected rate per sample-bin, [T, SB].
    pub fn expected_sample_bins(&self, theta: &Tensor, tp: &TemplateTensors) -> Result<Tensor> {
        let (t, p) = theta.dims2()?;
        assert_eq!(p, self.n_pars, "theta must be [T, P]");
        let sb = self.n_sb;
        let zeros = Tensor::zeros((t, sb), DType::F64, &self.device)?;
        // additive: nominal + histosys deltas
        let mut amount = tp
            .nominal
            .unsqueeze(0)?
            .broadcast_as((t, sb))?
            .contiguous()?;
        let eh = self.histo_sb.dims1()?;
        if eh > 0 {
            let alpha = theta.index_select(&self.histo_par, 1)?;
            let nom = tp.nominal.index_select(&self.histo_sb, 0)?;
            let delta = interp_delta(
                self.histosys_code,
                &alpha,
                &tp.histo_lo,
                &nom,
                &tp.histo_hi,
                &self.code4_ainv_t,
            )?;
            amount = amount.index_add(&self.histo_sb, &delta, 1)?;
        }
        // multiplicative: normsys factors multiply as sign * exp(sum log|f|), so that
        // one index_add serves all entries and negative factors (possible inside
        // code 4 for extreme up/down ratios) keep the exact product, as pyhf has it.
        let mut factor = None;
        let en = self.norm_sb.dims1()?;
        if en > 0 {
            let alpha = theta.index_select(&self.norm_par, 1)?;
            let ones = Tensor::ones(en, DType::F64, &self.device)?;
            let f = if self.normsys_code.is_multiplicative() {
                interp_ratio(
                    self.normsys_code,
                    &alpha,
                    &tp.norm_lo,
                    &tp.norm_hi,
                    &self.code4_ainv_t,
                )?
            } else {
                (interp_delta(
                    self.normsys_code,
                    &alpha,
                    &tp.norm_lo,
                    &ones,
                    &tp.norm_hi,
                    &self.code4_ainv_t,
                )? + 1.0)?
            };
            let logabs = zeros.index_add(&self.norm_sb, &f.abs()?.log()?, 1)?;
            let neg = zeros.index_add(&self.norm_sb, &f.lt(0.0)?.to_dtype(DType::F64)?, 1)?;
            let parity = (&neg - ((&neg * 0.5)?.floor()? * 2.0)?)?;
            let sign = ((parity * -2.0)? + 1.0)?;
            factor = Some((logabs.exp()? * sign)?);
        }
        // linear factors
        if !self.lin_slots.is_empty() {
            let ones = Tensor::ones((t, 1), DType::F64, &self.device)?;
            let aug = Tensor::cat(&[theta, &ones], 1)?;
            for slot in &self.lin_slots {
                let v = aug.index_select(slot, 1)?;
                factor = Some(match factor {
                    None => v,
                    Some(f) => (f * v)?,
                });
            }
        }
        Ok(match factor {
            Some(f) => (f * amount)?,
            None => amount,
        })
    }

    /// Expected main rates [T, B].
    pub fn expected_main(&self, theta: &Tensor, tp: &TemplateTensors) -> Result<Tensor> {
        let (t, _) = theta.dims2()?;
        let nu_sb = self.expected_sample_bins(theta, tp)?;
        let zeros = Tensor::zeros((t, self.n_main), DType::F64, &self.device)?;
        Ok(zeros.index_add(&self.sb_bin, &nu_sb, 1)?)
    }

    /// twice_nll for each row of `theta` ([T, P]) -> [T].
    pub fn twice_nll(
        &self,
        theta: &Tensor,
        tp: &TemplateTensors,
        data: &DataTensors,
    ) -> Result<Tensor> {
        let (t, _) = theta.dims2()?;
        let b = self.n_main;
        let nu = self.expected_main(theta, tp)?;
        let n = data.main.unsqueeze(0)?.broadcast_as((t, b))?.contiguous()?;
        let has = n.gt(0.0)?;
        let safe_nu = has.where_cond(&nu, &Tensor::ones((t, b), DType::F64, &self.device)?)?;
        let main = (nu - (n * safe_nu.log()?)?)?.sum(D::Minus1)?;
        let mut total = (main * 2.0)?;
        let nn = self.normal_par.dims1()?;
        if nn > 0 {
            let x = theta.index_select(&self.normal_par, 1)?;
            let r = x
                .broadcast_sub(&data.aux_normal.unsqueeze(0)?)?
                .broadcast_div(&self.normal_sigma.unsqueeze(0)?)?;
            total = (total + r.sqr()?.sum(D::Minus1)?)?;
        }
        let np = self.poisson_par.dims1()?;
        if np > 0 {
            let g = theta.index_select(&self.poisson_par, 1)?;
            let lam = g.broadcast_mul(&self.poisson_tau.unsqueeze(0)?)?;
            let aux = data
                .aux_poisson
                .unsqueeze(0)?
                .broadcast_as((t, np))?
                .contiguous()?;
            let has = aux.gt(0.0)?;
            let safe = has.where_cond(&lam, &Tensor::ones((t, np), DType::F64, &self.device)?)?;
            let term = (lam - (aux * safe.log()?)?)?.sum(D::Minus1)?;
            total = (total + (term * 2.0)?)?;
        }
        Ok((total + data.constant)?)
    }
}

fn bcast(v: &Tensor, like: &Tensor) -> Result<Tensor> {
    Ok(v.unsqueeze(0)?.broadcast_as(like.shape())?.contiguous()?)
}

/// `I(alpha) - I0` for additive codes; for multiplicative codes `I0 * (ratio - 1)`.
fn interp_delta(
    code: InterpCode,
    alpha: &Tensor,
    lo: &Tensor,
    nom: &Tensor,
    hi: &Tensor,
    ainv_t: &Tensor,
) -> Result<Tensor> {
    let dp = bcast(&(hi - nom)?, alpha)?;
    let dm = bcast(&(nom - lo)?, alpha)?;
    let zero = alpha.zeros_like()?;
    Ok(match code {
        InterpCode::Code0 => {
            let pos = alpha.ge(0.0)?;
            (alpha * pos.where_cond(&dp, &dm)?)?
        }
        InterpCode::Code2 => {
            let a = ((&dp - &dm)? * 0.5)?;
            let b = ((&dp + &dm)? * 0.5)?;
            let inside = (alpha * ((&a * alpha)? + &b)?)?;
            let up = (((&b + (&a * 2.0)?)? * (alpha - 1.0)?)? + (&a + &b)?)?;
            let dn = (((&b - (&a * 2.0)?)? * (alpha + 1.0)?)? + (&a - &b)?)?;
            let gt = alpha.gt(1.0)?;
            let lt = alpha.lt(-1.0)?;
            lt.where_cond(&dn, &gt.where_cond(&up, &inside)?)?
        }
        InterpCode::Code4p => {
            let s = ((&dp + &dm)? * 0.5)?;
            let a = ((&dp - &dm)? * 0.0625)?;
            let a2 = alpha.sqr()?;
            let poly = ((((&a2 * 3.0)? - 10.0)? * &a2)? + 15.0)?;
            let inside = (alpha * (&s + ((alpha * &a)? * poly)?)?)?;
            let gt = alpha.gt(1.0)?;
            let lt = alpha.lt(-1.0)?;
            let up = (alpha * &dp)?;
            let dn = (alpha * &dm)?;
            lt.where_cond(&dn, &gt.where_cond(&up, &inside)?)?
        }
        InterpCode::Code1 | InterpCode::Code4 => {
            // ratios are undefined for a zero nominal: such entries contribute nothing
            let nz = nom.ne(0.0)?;
            let one = nom.ones_like()?;
            let safe_nom = nz.where_cond(nom, &one)?;
            let safe_lo = nz.where_cond(lo, &one)?;
            let safe_hi = nz.where_cond(hi, &one)?;
            let kp = (safe_hi / &safe_nom)?;
            let km = (safe_lo / &safe_nom)?;
            let ratio = interp_ratio(code, alpha, &km, &kp, ainv_t)?;
            let d = ((ratio - 1.0)?.broadcast_mul(&safe_nom.unsqueeze(0)?))?;
            let mask = bcast(&nz.to_dtype(DType::U8)?, alpha)?;
            mask.where_cond(&d, &zero)?
        }
    })
}

/// The interpolated ratio for multiplicative codes, from ratios `lo` (k-) and `hi` (k+).
fn interp_ratio(
    code: InterpCode,
    alpha: &Tensor,
    lo: &Tensor,
    hi: &Tensor,
    ainv_t: &Tensor,
) -> Result<Tensor> {
    let lp = bcast(&hi.log()?, alpha)?;
    let lm = bcast(&lo.log()?, alpha)?;
    let pos = alpha.ge(0.0)?;
    let outside = (alpha * pos.where_cond(&lp, &lm.neg()?)?)?.exp()?;
    Ok(match code {
        InterpCode::Code1 => outside,
        InterpCode::Code4 => {
            // coefficients a_1..a_6 from value, slope and curvature at +-1
            let (kp, km) = (hi, lo);
            let (lkp, lkm) = (kp.log()?, km.log()?);
            let b = Tensor::stack(
                &[
                    (kp - 1.0)?,
                    (km - 1.0)?,
                    (kp * &lkp)?,
                    (km * &lkm)?.neg()?,
                    ((kp * &lkp)? * &lkp)?,
                    ((km * &lkm)? * &lkm)?,
                ],
                1,
            )?; // [E, 6]
            let coef = b.matmul(ainv_t)?; // [E, 6]
            let mut poly = bcast(&coef.narrow(1, 5, 1)?.squeeze(1)?, alpha)?;
            for i in (0..5).rev() {
                let ci = bcast(&coef.narrow(1, i, 1)?.squeeze(1)?, alpha)?;
                poly = ((poly * alpha)? + ci)?;
            }
            let poly = ((poly * alpha)? + 1.0)?;
            let inside = alpha.abs()?.lt(1.0)?;
            inside.where_cond(&poly, &outside)?
        }
        _ => unreachable!("additive code in interp_ratio"),
    })
}
