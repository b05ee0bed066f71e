//! Parameter slots: the numbers a density or a mixture coefficient reads, each a
//! function of the model's parameters (a parameter, a constant, or a compiled
//! HS3 function), with exact gradients and Hessians for the chain rule.

use crate::expr::{Expr, Scratch};

/// How a slot's value depends on the parameters.
#[derive(Debug, Clone)]
pub enum SlotFn {
    /// A fixed number (inline numbers, functions of constants only).
    Const(f64),
    /// Parameter `i` itself.
    Par(usize),
    /// An expression whose variables are parameters `vars[k]`.
    Expr {
        /// The expression.
        expr: Expr,
        /// Parameter index of each of its variables.
        vars: Vec<usize>,
    },
}

/// One slot with a label naming where it came from (messages).
#[derive(Debug, Clone)]
pub struct Slot {
    /// The function.
    pub f: SlotFn,
    /// JSON location or description.
    pub label: String,
}

/// Values of all slots at a parameter point, with derivatives when asked.
#[derive(Debug, Default, Clone)]
pub struct SlotValues {
    /// Value per slot.
    pub v: Vec<f64>,
    /// Per slot: gradient over its `vars` (Expr slots only).
    pub g: Vec<Vec<f64>>,
    /// Per slot: row-major Hessian over its `vars` (Expr slots only).
    pub h: Vec<Vec<f64>>,
    scratch: Scratch,
    vals: Vec<f64>,
}

impl Slot {
    /// True when the slot does not depend on any parameter.
    pub fn is_const(&self) -> bool {
        matches!(self.f, SlotFn::Const(_))
    }

    /// Parameters the slot depends on.
    pub fn vars(&self) -> Vec<usize> {
        match &self.f {
            SlotFn::Const(_) => Vec::new(),
            SlotFn::Par(i) => vec![*i],
            SlotFn::Expr { vars, .. } => vars.clone(),
        }
    }
}

impl SlotValues {
    /// Evaluate all slots at `theta` (derivatives when `derivs`).
    pub fn compute(&mut self, slots: &[Slot], theta: &[f64], derivs: bool) {
        let n = slots.len();
        self.v.resize(n, 0.0);
        self.g.resize(n, Vec::new());
        self.h.resize(n, Vec::new());
        for (k, s) in slots.iter().enumerate() {
            self.v[k] = match &s.f {
                SlotFn::Const(c) => *c,
                SlotFn::Par(i) => theta[*i],
                SlotFn::Expr { expr, vars } => {
                    self.vals.clear();
                    self.vals.extend(vars.iter().map(|&i| theta[i]));
                    if derivs {
                        let nv = vars.len();
                        self.g[k].resize(nv, 0.0);
                        self.h[k].resize(nv * nv, 0.0);
                        expr.eval_with(
                            &self.vals,
                            &mut self.scratch,
                            Some(&mut self.g[k]),
                            Some(&mut self.h[k]),
                        )
                    } else {
                        expr.eval_with(&self.vals, &mut self.scratch, None, None)
                    }
                }
            };
        }
    }
}

/// Chain rule from slot space to parameter space:
/// `grad += J^T gu`, `hess += J^T Hu J + sum_k gu_k d2 u_k` for the slots in `idx`
/// (`gu`, `hu` indexed by position in `idx`; `hu` row-major `idx.len()^2`).
#[allow(clippy::too_many_arguments)]
pub fn chain_to_params(
    slots: &[Slot],
    sv: &SlotValues,
    idx: &[usize],
    gu: &[f64],
    hu: Option<&[f64]>,
    np: usize,
    grad: &mut [f64],
    hess: Option<&mut [f64]>,
) {
    let na = idx.len();
    // sparse Jacobian rows: (param, d u / d param)
    let mut rows: Vec<Vec<(usize, f64)>> = Vec::with_capacity(na);
    for &s in idx {
        rows.push(match &slots[s].f {
            SlotFn::Const(_) => Vec::new(),
            SlotFn::Par(i) => vec![(*i, 1.0)],
            SlotFn::Expr { vars, .. } => vars
                .iter()
                .enumerate()
                .map(|(k, &i)| (i, sv.g[s][k]))
                .collect(),
        });
    }
    for (a, row) in rows.iter().enumerate() {
        for &(i, d) in row {
            grad[i] += gu[a] * d;
        }
    }
    let (Some(hess), Some(hu)) = (hess, hu) else {
        return;
    };
    for a in 0..na {
        for b in 0..na {
            let hab = hu[a * na + b];
            if hab == 0.0 {
                continue;
            }
            for &(i, di) in &rows[a] {
                for &(j, dj) in &rows[b] {
                    hess[i * np + j] += hab * di * dj;
                }
            }
        }
        if let SlotFn::Expr { vars, .. } = &slots[idx[a]].f {
            let nv = vars.len();
            let h = &sv.h[idx[a]];
            for (r, &i) in vars.iter().enumerate() {
                for (c, &j) in vars.iter().enumerate() {
                    hess[i * np + j] += gu[a] * h[r * nv + c];
                }
            }
        }
    }
}
