//! An unbinned channel: a mixture of leaves, each a coefficient times a product
//! of one-dimensional densities on distinct observables, evaluated on events.
//!
//! twice_nll of the channel (N = sum of weights, nu = sum of the leaf coefficients):
//! - extended: `2 (nu - sum_i w_i ln(sum_l a_l Q_l(x_i)) + ln Gamma(N + 1))`, which
//!   equals `2 (nu - N ln nu + ln Gamma(N+1)) - 2 sum_i w_i ln p(x_i)` with the
//!   normalised density `p = sum_l a_l Q_l / nu`;
//! - fractions (coefficients that sum to one by construction): `-2 sum_i w_i ln p(x_i)`;
//! - coefficients normalised by their sum: `-2 sum_i w_i ln(sum_l a_l Q_l / nu)`.

use super::atoms::{Atom, Mode, Norm, tri};
use super::kernel::{self, Partial};
use super::slots::{Slot, SlotValues, chain_to_params};
use crate::data::EventData;

/// How the leaf coefficients enter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Extension {
    /// Coefficients are expected yields; a Poisson term for the total.
    Extended,
    /// Coefficients are fractions that sum to one by construction.
    Fractions,
    /// Coefficients are divided by their sum (not extended).
    Normalized,
}

/// An observable axis: name and normalisation range.
#[derive(Debug, Clone, PartialEq)]
pub struct Axis {
    /// Observable name.
    pub name: String,
    /// Lower end.
    pub lo: f64,
    /// Upper end.
    pub hi: f64,
}

/// One mixture term: coefficient slot times the product of atoms.
#[derive(Debug, Clone)]
pub struct Leaf {
    /// Slot of its coefficient.
    pub coef: usize,
    /// Atoms multiplied (distinct observables).
    pub atoms: Vec<usize>,
    /// Name of the component (HS3 distribution names joined).
    pub label: String,
}

/// Role of an active (parameter-dependent) slot.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Act {
    /// Coefficient of leaf l.
    Coef(usize),
    /// Parameter k of atom m.
    Par(usize, usize),
}

/// One entry (i >= j, active indices) of the per-event Hessian of ln p~,
/// with the coefficient arrays it needs (R: share of the leaves with an atom):
/// - coefficients of leaves l, l2: `-Q_l Q_l2 / p~^2`;
/// - coefficient of leaf l, parameter k of atom m: `Q_l/p~ ([m in l] - R_m) g_mk`;
/// - parameters k, k2 of one atom: `R_m h_mkk2 + R_m (1 - R_m) g_mk g_mk2`;
/// - parameters of atoms m, m2: `(R_mm2 - R_m R_m2) g_mk g_m2k2`.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Pair {
    CoefCoef {
        i: usize,
        j: usize,
    },
    CoefPar {
        i: usize,
        j: usize,
        m: usize,
        k: usize,
    },
    Same {
        i: usize,
        j: usize,
        m: usize,
        k: usize,
        k2: usize,
    },
    Cross {
        i: usize,
        j: usize,
        m: usize,
        k: usize,
        m2: usize,
        k2: usize,
    },
}

/// A compiled unbinned channel.
#[derive(Debug, Clone)]
pub struct Channel {
    /// Name (HS3 distribution of the channel).
    pub name: String,
    /// Observables in column order.
    pub obs: Vec<Axis>,
    /// The densities.
    pub atoms: Vec<Atom>,
    /// The mixture terms.
    pub leaves: Vec<Leaf>,
    /// Parameter slots (coefficients and atom parameters).
    pub slots: Vec<Slot>,
    /// How the coefficients enter.
    pub ext: Extension,
    /// Number of parameters of the enclosing model (slot variables index them).
    pub n_pars: usize,
    pub(crate) act: Vec<usize>,
    pub(crate) roles: Vec<Act>,
    pub(crate) pairs: Vec<Pair>,
    /// Atoms with at least one active parameter.
    pub(crate) act_atoms: Vec<usize>,
    /// Per atom: the leaves that contain it.
    pub(crate) atom_leaves: Vec<Vec<usize>>,
    /// Offsets of each atom's gradient and Hessian rows in block scratch.
    pub(crate) g_off: Vec<usize>,
    pub(crate) h_off: Vec<usize>,
}

/// Per-evaluation state shared by the event loop.
pub(crate) struct Prepared<'a> {
    pub ch: &'a Channel,
    pub sv: &'a SlotValues,
    pub norms: &'a [Norm],
    pub mode: Mode,
    /// Accumulate `sum w^2 v` and `sum w^2 v v^T` instead (per-event scores).
    pub score: bool,
}

/// Result of a pass over events in slot space.
#[derive(Debug, Clone)]
pub struct SlotPass {
    /// twice_nll.
    pub value: f64,
    /// d twice_nll / d slot (active slots).
    pub gu: Vec<f64>,
    /// Row-major Hessian over active slots.
    pub hu: Vec<f64>,
}

impl Channel {
    /// Assemble a channel and derive its evaluation tables.
    pub fn new(
        name: String,
        obs: Vec<Axis>,
        atoms: Vec<Atom>,
        leaves: Vec<Leaf>,
        slots: Vec<Slot>,
        ext: Extension,
        n_pars: usize,
    ) -> Self {
        let mut ch = Channel {
            name,
            obs,
            atoms,
            leaves,
            slots,
            ext,
            n_pars,
            act: Vec::new(),
            roles: Vec::new(),
            pairs: Vec::new(),
            act_atoms: Vec::new(),
            atom_leaves: Vec::new(),
            g_off: Vec::new(),
            h_off: Vec::new(),
        };
        ch.derive();
        ch
    }

    fn derive(&mut self) {
        let na = self.atoms.len();
        self.atom_leaves = vec![Vec::new(); na];
        for (l, leaf) in self.leaves.iter().enumerate() {
            for &m in &leaf.atoms {
                self.atom_leaves[m].push(l);
            }
        }
        let (mut go, mut ho) = (0, 0);
        for a in &self.atoms {
            self.g_off.push(go);
            self.h_off.push(ho);
            go += a.d();
            ho += a.d() * (a.d() + 1) / 2;
        }
        // active slots and their roles (a slot may be shared: the first role wins
        // only for bookkeeping; derivatives of shared slots add up through the roles)
        let mut roles = Vec::new();
        let mut act = Vec::new();
        for (l, leaf) in self.leaves.iter().enumerate() {
            if !self.slots[leaf.coef].is_const() {
                act.push(leaf.coef);
                roles.push(Act::Coef(l));
            }
        }
        for (m, a) in self.atoms.iter().enumerate() {
            for k in 0..a.d() {
                if !self.slots[a.u0 + k].is_const() {
                    act.push(a.u0 + k);
                    roles.push(Act::Par(m, k));
                }
            }
        }
        let mut pairs = Vec::new();
        for i in 0..roles.len() {
            for j in 0..=i {
                pairs.push(match (roles[i], roles[j]) {
                    (Act::Coef(_), Act::Coef(_)) => Pair::CoefCoef { i, j },
                    (Act::Coef(_), Act::Par(m, k)) => Pair::CoefPar { i, j, m, k },
                    (Act::Par(m, k), Act::Coef(_)) => Pair::CoefPar { i: j, j: i, m, k },
                    (Act::Par(m, k), Act::Par(m2, k2)) if m == m2 => Pair::Same { i, j, m, k, k2 },
                    (Act::Par(m, k), Act::Par(m2, k2)) => Pair::Cross { i, j, m, k, m2, k2 },
                });
            }
        }
        let mut act_atoms: Vec<usize> = roles
            .iter()
            .filter_map(|r| {
                if let Act::Par(m, _) = r {
                    Some(*m)
                } else {
                    None
                }
            })
            .collect();
        act_atoms.dedup();
        self.act_atoms = act_atoms;
        self.act = act;
        self.roles = roles;
        self.pairs = pairs;
    }

    /// Number of active slots.
    pub fn n_act(&self) -> usize {
        self.act.len()
    }

    /// Normalisations of all atoms at the slot values, or the first failure.
    pub fn norms(&self, sv: &SlotValues) -> Result<Vec<Norm>, String> {
        self.atoms
            .iter()
            .map(|a| {
                let p = &sv.v[a.u0..a.u0 + a.d()];
                a.norm(p)
                    .map_err(|e| format!("distribution '{}' ({}): {e}", a.name, a.shape.name()))
            })
            .collect()
    }

    /// Sum of the leaf coefficients (the expected number of events when extended).
    pub fn coef_sum(&self, sv: &SlotValues) -> f64 {
        self.leaves.iter().map(|l| sv.v[l.coef]).sum()
    }

    /// Pass over the events in slot space; `Err` names why the point is outside
    /// the domain (normalisation, non-positive density at an event).
    pub fn pass(
        &self,
        sv: &SlotValues,
        data: &EventData,
        constant: f64,
        mode: Mode,
    ) -> Result<SlotPass, String> {
        let norms = self.norms(sv)?;
        let prep = Prepared {
            ch: self,
            sv,
            norms: &norms,
            mode,
            score: false,
        };
        let part: Partial = kernel::run(&prep, data);
        if let Some((i, p)) = part.bad {
            return Err(format!(
                "the density of channel '{}' is {p} (not > 0) at event {i}",
                self.name
            ));
        }
        let na = self.n_act();
        let sum_a = self.coef_sum(sv);
        let n_w = data.sum_w();
        let mut value = -2.0 * part.s0;
        match self.ext {
            Extension::Extended => {
                if !(sum_a > 0.0) {
                    return Err(format!(
                        "the expected number of events of channel '{}' is {sum_a} (not > 0)",
                        self.name
                    ));
                }
                value += 2.0 * sum_a + constant;
            }
            Extension::Fractions => {}
            Extension::Normalized => {
                if !(sum_a > 0.0) {
                    return Err(format!(
                        "the coefficients of channel '{}' sum to {sum_a} (not > 0)",
                        self.name
                    ));
                }
                value += 2.0 * n_w * sum_a.ln();
            }
        }
        let mut gu = vec![0.0; na];
        let mut hu = vec![0.0; if mode == Mode::Hess { na * na } else { 0 }];
        if mode >= Mode::Grad {
            for i in 0..na {
                gu[i] = -2.0 * part.g[i];
                if let Act::Coef(_) = self.roles[i] {
                    match self.ext {
                        Extension::Extended => gu[i] += 2.0,
                        Extension::Normalized => gu[i] += 2.0 * n_w / sum_a,
                        Extension::Fractions => {}
                    }
                }
            }
        }
        if mode == Mode::Hess {
            for i in 0..na {
                for j in 0..=i {
                    let mut v = -2.0 * part.h[tri(i, j)];
                    if self.ext == Extension::Normalized
                        && matches!(self.roles[i], Act::Coef(_))
                        && matches!(self.roles[j], Act::Coef(_))
                    {
                        v -= 2.0 * n_w / (sum_a * sum_a);
                    }
                    hu[i * na + j] = v;
                    hu[j * na + i] = v;
                }
            }
        }
        Ok(SlotPass { value, gu, hu })
    }

    /// twice_nll at `theta` with gradient and Hessian (over the model's `n_pars`
    /// parameters) added into `grad`/`hess` when given. `+inf` outside the domain.
    #[allow(clippy::too_many_arguments)]
    pub fn eval_into(
        &self,
        theta: &[f64],
        data: &EventData,
        constant: f64,
        sv: &mut SlotValues,
        grad: Option<&mut [f64]>,
        hess: Option<&mut [f64]>,
    ) -> f64 {
        let mode = if hess.is_some() {
            Mode::Hess
        } else if grad.is_some() {
            Mode::Grad
        } else {
            Mode::Value
        };
        sv.compute(&self.slots, theta, mode > Mode::Value);
        let r = match self.pass(sv, data, constant, mode) {
            Ok(r) => r,
            Err(_) => return f64::INFINITY,
        };
        if let Some(g) = grad {
            let hu = (mode == Mode::Hess).then_some(r.hu.as_slice());
            chain_to_params(&self.slots, sv, &self.act, &r.gu, hu, self.n_pars, g, hess);
        }
        r.value
    }
}
