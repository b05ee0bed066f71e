//! The sample-bin terms of a HistFactory model: one compile step per
//! modifier kind. Each modifier of a sample contributes, in every bin, a
//! multiplicative factor (normfactor, lumi, shapefactor, shapesys, staterror,
//! normsys) or an additive delta (histosys) to that sample-bin's rate, with
//! the interpolation pyhf uses for it; the steps below append those terms and
//! the tables the kernels read (`TermLayout`, `Templates`).

use super::interp::{Interp, InterpCode};
use super::{AddTerm, MultTerm, SampleBin, Templates, TermLayout};
use rustc_hash::FxHashMap;

/// Where a term goes: the first parameter of its modifier's set and the
/// sample's nominal yield in the bin.
#[derive(Debug, Clone, Copy)]
pub(super) struct At {
    /// Index of the modifier's first parameter.
    pub offset: usize,
    /// Nominal yield of the sample in the bin.
    pub nominal: f64,
}

/// The terms and tables built so far.
pub(super) struct TermBuilder {
    pub sb: Vec<SampleBin>,
    pub mult: Vec<MultTerm>,
    pub add: Vec<AddTerm>,
    pub interps: Vec<Interp>,
    norm_cache: NormsysCache,
    pub templates: Templates,
    pub layout: TermLayout,
    normsys_code: InterpCode,
    histosys_code: InterpCode,
    m0: usize,
    a0: usize,
}

impl TermBuilder {
    /// An empty builder with the model's interpolation codes.
    pub fn new(normsys_code: InterpCode, histosys_code: InterpCode) -> Self {
        TermBuilder {
            sb: Vec::new(),
            mult: Vec::new(),
            add: Vec::new(),
            interps: Vec::new(),
            norm_cache: NormsysCache::default(),
            templates: Templates::default(),
            layout: TermLayout::default(),
            normsys_code,
            histosys_code,
            m0: 0,
            a0: 0,
        }
    }

    /// Start the terms of the next sample-bin.
    pub fn open_bin(&mut self) {
        self.m0 = self.mult.len();
        self.a0 = self.add.len();
    }

    /// End the sample-bin opened last: it lies in global bin `gbin` with nominal `nom`.
    pub fn close_bin(&mut self, gbin: usize, nom: f64) {
        self.templates.nominal.push(nom);
        self.sb.push(SampleBin {
            bin: gbin as u32,
            nom,
            mult: (self.m0 as u32, self.mult.len() as u32),
            add: (self.a0 as u32, self.add.len() as u32),
        });
    }

    fn sb_index(&self) -> u32 {
        self.sb.len() as u32
    }

    /// A free factor without interpolation, on parameter `par`.
    fn linear(&mut self, par: u32) {
        self.mult.push(MultTerm {
            par,
            interp: u32::MAX,
        });
        let i = self.sb_index();
        self.layout.lin.push((i, par));
    }

    /// normfactor and lumi: one scalar factor for every bin.
    pub fn scalar_factor(&mut self, at: At) {
        self.linear(at.offset as u32);
    }

    /// shapefactor, shapesys, staterror: the factor of component `k` of the
    /// modifier's parameter set (the channel bin, or the staterror's k-th
    /// covered bin).
    pub fn bin_factor(&mut self, at: At, k: usize) {
        self.linear((at.offset + k) as u32);
    }

    /// normsys: a scalar factor interpolated between `lo` and `hi`.
    pub fn normsys(&mut self, at: At, hi: f64, lo: f64) -> Result<(), String> {
        let interp = self
            .norm_cache
            .index(self.normsys_code, hi, lo, &mut self.interps)?;
        let par = at.offset as u32;
        self.mult.push(MultTerm { par, interp });
        let i = self.sb_index();
        self.layout.norm_sb.push(i);
        self.layout.norm_par.push(par);
        self.templates.norm_hi.push(hi);
        self.templates.norm_lo.push(lo);
        Ok(())
    }

    /// histosys: an additive delta interpolated between the bin's `lo` and `hi` yields.
    pub fn histosys(&mut self, at: At, hi: f64, lo: f64) -> Result<(), String> {
        let ip = histosys_interp(self.histosys_code, hi, at.nominal, lo)?;
        let par = at.offset as u32;
        let interp = self.interps.len() as u32;
        self.interps.push(ip);
        self.add.push(AddTerm { par, interp });
        let i = self.sb_index();
        self.layout.histo_sb.push(i);
        self.layout.histo_par.push(par);
        self.templates.histo_hi.push(hi);
        self.templates.histo_lo.push(lo);
        Ok(())
    }
}

/// Interpolation of a normsys factor (I- = lo, I0 = 1, I+ = hi).
/// One interpolation table entry per distinct normsys `(hi, lo)`: a normsys
/// has the same factors in every bin of its sample, so its terms share one
/// entry (the table shrinks from one entry per term to one per modifier and
/// sample, and the coefficients are computed once; the same bits).
#[derive(Debug, Default)]
pub(super) struct NormsysCache(FxHashMap<(u64, u64), u32>);

impl NormsysCache {
    /// The table index of the normsys interpolation with factors `hi`, `lo`
    /// (appended to `table` if new).
    pub fn index(
        &mut self,
        code: InterpCode,
        hi: f64,
        lo: f64,
        table: &mut Vec<Interp>,
    ) -> std::result::Result<u32, String> {
        let key = (hi.to_bits(), lo.to_bits());
        if let Some(&i) = self.0.get(&key) {
            return Ok(i);
        }
        table.push(normsys_interp(code, hi, lo)?);
        let i = (table.len() - 1) as u32;
        self.0.insert(key, i);
        Ok(i)
    }
}

pub(super) fn normsys_interp(
    code: InterpCode,
    hi: f64,
    lo: f64,
) -> std::result::Result<Interp, String> {
    if code.is_multiplicative() {
        if !(hi > 0.0 && lo > 0.0) {
            return Err(format!(
                "normsys with {code} needs positive hi and lo factors, got hi={hi}, lo={lo}"
            ));
        }
        Ok(Interp::multiplicative(code, hi, lo))
    } else {
        Ok(Interp::additive(code, hi - 1.0, 1.0 - lo).with_map(1.0, 1.0))
    }
}

/// Interpolation of a histosys delta (I- = lo, I0 = nom, I+ = hi).
pub(super) fn histosys_interp(
    code: InterpCode,
    hi: f64,
    nom: f64,
    lo: f64,
) -> std::result::Result<Interp, String> {
    if code.is_multiplicative() {
        if nom == 0.0 && hi == 0.0 && lo == 0.0 {
            return Ok(Interp::additive(InterpCode::Code0, 0.0, 0.0));
        }
        if !(hi > 0.0 && lo > 0.0 && nom > 0.0) {
            return Err(format!(
                "histosys with {code} needs positive nominal, hi and lo yields, got lo={lo}, nominal={nom}, hi={hi}"
            ));
        }
        Ok(Interp::multiplicative(code, hi / nom, lo / nom).with_map(-nom, nom))
    } else {
        Ok(Interp::additive(code, hi - nom, nom - lo))
    }
}
