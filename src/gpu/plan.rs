//! The model as flat tables for the GPU kernels, the packed block Hessian,
//! and the memory each batch member needs.
//!
//! The packed block Hessian stores, for every row `r` of the permuted
//! Hessian (see [`HessianLayout`]), the structural entries of its lower
//! triangle: the global columns `0..G` (all of them for a local row, `0..=r`
//! for a global one) and then the columns of the row's own local block up to
//! the diagonal. Row `r` starts at `row_off[r]`; entry `(r, c)`, `c <= r`,
//! is at `row_off[r] + (c < G ? c : G + c - row_bs[r])`. For the synthetic
//! 201-parameter shapesys model that is 401 numbers instead of 40,401.

use crate::error::{Error, Result};
use crate::model::histfactory::{Constraint, HistFactoryModel, InterpCode};
use crate::model::{HessianLayout, Likelihood};

/// Flat model tables in the kernels' format (see kernels/params.def).
#[derive(Debug, Clone)]
pub struct DeviceModel {
    /// Parameters.
    pub n_pars: usize,
    /// Main bins.
    pub n_main: usize,
    /// Aux data.
    pub n_aux: usize,
    /// Sample-bins.
    pub n_sb: usize,
    /// Global parameters (first in the permuted order).
    pub n_global: usize,
    /// Entries of the packed block Hessian.
    pub n_hess: usize,
    /// Local blocks of the layout.
    pub n_blocks: usize,
    /// Constrained parameters.
    pub n_con: usize,
    /// Entries of the per-bin Jacobian rows.
    pub n_jac: usize,
    /// Most multiplicative terms in one sample-bin.
    pub max_mult: usize,
    /// Most additive terms in one sample-bin.
    pub max_add: usize,
    /// No extension of the Poisson terms outside pyhf's domain.
    pub strict_domain: bool,
    /// Largest scratch of the local-block factors (sum of squared block sizes).
    pub n_dfac: usize,
    /// The permutation and blocks.
    pub layout: HessianLayout,
    /// `u32` tables by name (uploaded as they are).
    pub u32_tables: Vec<(&'static str, Vec<u32>)>,
    /// `f64` tables by name.
    pub f64_tables: Vec<(&'static str, Vec<f64>)>,
    /// Row starts of the packed Hessian.
    pub row_off: Vec<u32>,
    /// First local column of each row's block (0 for global rows).
    pub row_bs: Vec<u32>,
}

fn code_id(c: InterpCode) -> u32 {
    match c {
        InterpCode::Code0 => 0,
        InterpCode::Code1 => 1,
        InterpCode::Code2 => 2,
        InterpCode::Code4 => 4,
        InterpCode::Code4p => 5,
    }
}

fn to_u32(v: usize, what: &str) -> Result<u32> {
    u32::try_from(v)
        .map_err(|_| Error::input(format!("{what} ({v}) is too large for the GPU kernels")))
}

impl DeviceModel {
    /// Flatten `m` for the kernels.
    pub fn new(m: &HistFactoryModel) -> Result<Self> {
        let st = &m.structure;
        let lay = m.layout().clone();
        let p = m.n_pars();
        let g = lay.n_global;
        let mut row_off = Vec::with_capacity(p);
        let mut row_bs = Vec::with_capacity(p);
        let mut off = 0usize;
        for r in 0..p {
            row_off.push(to_u32(off, "the packed Hessian")?);
            if r < g {
                row_bs.push(0);
                off += r + 1;
            } else {
                let bs = lay.block_start(r);
                row_bs.push(bs as u32);
                off += g + (r - bs + 1);
            }
        }
        let n_hess = off;
        to_u32(n_hess, "the packed Hessian")?;
        let sb = &m.sb;
        let u = |f: &dyn Fn(&crate::model::histfactory::SampleBin) -> u32| {
            sb.iter().map(f).collect::<Vec<u32>>()
        };
        let mut con_par = Vec::new();
        let mut con_aux = Vec::new();
        let mut con_kind = Vec::new();
        let mut con_val = Vec::new();
        let mut con_const = Vec::new();
        let ln2pi = (2.0 * std::f64::consts::PI).ln();
        for &(i, a, c) in &st.constrained {
            con_par.push(i);
            con_aux.push(a);
            match c {
                Constraint::Normal { sigma } => {
                    con_kind.push(1);
                    con_val.push(sigma);
                    con_const.push(ln2pi + 2.0 * sigma.ln());
                }
                Constraint::Poisson { tau } => {
                    con_kind.push(2);
                    con_val.push(tau);
                    con_const.push(0.0);
                }
                Constraint::None => unreachable!("constrained list holds constrained parameters"),
            }
        }
        let mut ip_code = Vec::with_capacity(m.interps.len());
        let mut ip_off = Vec::with_capacity(m.interps.len());
        let mut ip_scale = Vec::with_capacity(m.interps.len());
        let mut ip_c = Vec::with_capacity(8 * m.interps.len());
        for ip in &m.interps {
            ip_code.push(code_id(ip.code));
            ip_off.push(ip.offset);
            ip_scale.push(ip.scale);
            ip_c.extend_from_slice(ip.coefficients());
        }
        let max_mult = sb
            .iter()
            .map(|s| (s.mult.1 - s.mult.0) as usize)
            .max()
            .unwrap_or(0);
        let max_add = sb
            .iter()
            .map(|s| (s.add.1 - s.add.0) as usize)
            .max()
            .unwrap_or(0);
        let n_dfac = lay.blocks.iter().map(|(s, e)| (e - s) * (e - s)).sum();
        let u32_tables = vec![
            ("m_sb_bin", u(&|s| s.bin)),
            ("m_sb_m0", u(&|s| s.mult.0)),
            ("m_sb_m1", u(&|s| s.mult.1)),
            ("m_sb_a0", u(&|s| s.add.0)),
            ("m_sb_a1", u(&|s| s.add.1)),
            ("m_mult_par", m.mult.iter().map(|t| t.par).collect()),
            ("m_mult_interp", m.mult.iter().map(|t| t.interp).collect()),
            ("m_add_par", m.add.iter().map(|t| t.par).collect()),
            ("m_add_interp", m.add.iter().map(|t| t.interp).collect()),
            ("m_ip_code", ip_code),
            ("m_bin_ptr", st.bin_ptr.clone()),
            ("m_bin_pars", st.bin_pars.clone()),
            ("m_mult_pos", st.mult_pos.clone()),
            ("m_add_pos", st.add_pos.clone()),
            ("m_sb_ptr", st.sb_ptr.clone()),
            ("m_sb_pars", st.sb_pars.clone()),
            ("m_con_par", con_par),
            ("m_con_aux", con_aux),
            ("m_con_kind", con_kind),
            ("m_perm", lay.perm.iter().map(|&x| x as u32).collect()),
            ("m_inv", lay.inv.iter().map(|&x| x as u32).collect()),
            ("m_row_off", row_off.clone()),
            ("m_row_bs", row_bs.clone()),
            ("m_blk_s", lay.blocks.iter().map(|b| b.0 as u32).collect()),
            ("m_blk_e", lay.blocks.iter().map(|b| b.1 as u32).collect()),
        ];
        let f64_tables = vec![
            ("m_sb_nom", sb.iter().map(|s| s.nom).collect()),
            ("m_ip_off", ip_off),
            ("m_ip_scale", ip_scale),
            ("m_ip_c", ip_c),
            ("m_con_val", con_val),
            ("m_con_const", con_const),
        ];
        Ok(DeviceModel {
            n_pars: p,
            n_main: m.n_main,
            n_aux: m.n_aux(),
            n_sb: sb.len(),
            n_global: g,
            n_hess,
            n_blocks: lay.blocks.len(),
            n_con: st.constrained.len(),
            n_jac: st.bin_pars.len(),
            max_mult,
            max_add,
            strict_domain: m.strict_domain,
            n_dfac,
            layout: lay,
            u32_tables,
            f64_tables,
            row_off,
            row_bs,
        })
    }

    /// Position of entry `(r, c)`, `c <= r` (permuted indices), in the packed Hessian.
    pub fn hpos(&self, r: usize, c: usize) -> usize {
        debug_assert!(c <= r);
        let g = self.n_global;
        self.row_off[r] as usize
            + if c < g {
                c
            } else {
                g + c - self.row_bs[r] as usize
            }
    }

    /// Call `f(r, c, position)` for every entry of the packed Hessian, in storage order.
    pub fn for_each_packed(&self, mut f: impl FnMut(usize, usize, usize)) {
        let g = self.n_global;
        for r in 0..self.n_pars {
            let ro = self.row_off[r] as usize;
            let gend = if r < g { r + 1 } else { g };
            for c in 0..gend {
                f(r, c, ro + c);
            }
            if r >= g {
                let bs = self.row_bs[r] as usize;
                for c in bs..=r {
                    f(r, c, ro + g + c - bs);
                }
            }
        }
    }

    /// The device's packed form of a CPU block Hessian (see [`HessianLayout`];
    /// the two formats are the same, this checks it entry by entry).
    pub fn pack(&self, hb: &[f64]) -> Vec<f64> {
        let mut out = vec![0.0; self.n_hess];
        self.for_each_packed(|r, c, k| out[k] = hb[self.layout.pos(r, c)]);
        out
    }

    /// The full symmetric Hessian in the original parameter order (row-major `P x P`).
    pub fn unpack(&self, hp: &[f64]) -> Vec<f64> {
        let n = self.n_pars;
        let mut out = vec![0.0; n * n];
        self.for_each_packed(|r, c, k| {
            let (a, b) = (self.layout.perm[r], self.layout.perm[c]);
            out[a * n + b] = hp[k];
            out[b * n + a] = hp[k];
        });
        out
    }

    /// Estimated floating-point operations and device-memory bytes of one
    /// member's evaluation (value + gradient, or with the exact Hessian), for
    /// the benchmark's roofline comparison. Counts follow the kernel's loops.
    pub fn eval_cost(&self, hess: bool, m: &HistFactoryModel) -> (f64, f64) {
        let terms = (m.mult.len() + m.add.len()) as f64;
        // pass 1 values (~12 flops per term), pass 2 values + derivatives (~20)
        let mut flops = 32.0 * terms + 10.0 * self.n_main as f64 + 6.0 * self.n_con as f64;
        // theta reads, rates, weights, gradient read-modify-writes (8-byte words)
        let mut words = 2.0 * terms
            + 4.0 * self.n_sb as f64
            + 6.0 * self.n_main as f64
            + 3.0 * self.n_pars as f64;
        if hess {
            let mut pairs = 0.0;
            for s in m.sb.iter().filter(|s| !s.is_dead()) {
                let nt = ((s.mult.1 - s.mult.0) + (s.add.1 - s.add.0)) as f64;
                pairs += nt * (nt - 1.0) / 2.0;
            }
            let st = &m.structure;
            let mut outer = 0.0;
            for b in 0..self.n_main {
                let r = (st.bin_ptr[b + 1] - st.bin_ptr[b]) as f64;
                outer += r * (r + 1.0) / 2.0;
            }
            flops += 2.0 * (pairs + outer);
            words += 2.0 * (pairs + outer) + self.n_hess as f64 + 2.0 * self.n_jac as f64;
        }
        (flops, 8.0 * words)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::workspace::{ReadOptions, Workspace};

    fn synthetic() -> HistFactoryModel {
        let ws = Workspace::from_value(
            crate::synthetic::shapesys_workspace(5, 4),
            &[],
            "synthetic",
            &ReadOptions::default(),
        )
        .unwrap();
        HistFactoryModel::from_workspace(&ws, &Default::default(), "synthetic").unwrap()
    }

    #[test]
    fn packed_layout_round_trips_the_block_hessian() {
        let m = synthetic();
        let dm = DeviceModel::new(&m).unwrap();
        // mu global, 20 locals of one parameter each: 1 + 20 * 2 entries
        assert_eq!(dm.n_global, 1);
        assert_eq!(dm.n_hess, 41);
        let theta: Vec<f64> = m.init.iter().map(|x| x * 1.05).collect();
        let (_, _, full) = m.twice_nll_hessian(&theta, m.observed());
        let mut s = m.scratch();
        let p = m.n_pars();
        let mut g = vec![0.0; p];
        let mut hb = vec![0.0; p * p];
        m.eval_block(
            &theta,
            m.observed(),
            &mut s,
            Some(&mut g),
            Some(&mut hb),
            false,
        );
        let packed = dm.pack(&hb);
        assert_eq!(dm.unpack(&packed), full);
        // every position is used exactly once
        let mut seen = vec![0; dm.n_hess];
        dm.for_each_packed(|r, c, k| {
            assert_eq!(dm.hpos(r, c), k);
            seen[k] += 1;
        });
        assert!(seen.iter().all(|&x| x == 1));
    }
}
