//! The parameter block of every kernel (`GfParams` in kernels/params.def).
//!
//! Each field is 8 bytes: a device address (`u64`), a count or setting
//! (`u64`) or a real number (`f64`), in the order of kernels/params.def, so
//! the `#[repr(C)]` struct below has the C++ struct's layout. The `cuda-emu`
//! tests compare the two field lists name by name and offset by offset.

macro_rules! params {
    ($($(#[$doc:meta])* $name:ident : $ty:ty,)*) => {
        /// Device addresses, sizes and settings passed by value to every kernel.
        #[repr(C)]
        #[derive(Debug, Clone, Copy, Default)]
        pub struct GfParams {
            $($(#[$doc])* pub $name: $ty,)*
        }

        impl GfParams {
            /// Field names in declaration order.
            pub const FIELDS: &'static [&'static str] = &[$(stringify!($name)),*];

            /// Byte offset of each field, in declaration order.
            pub fn offsets() -> Vec<usize> {
                vec![$(std::mem::offset_of!(GfParams, $name)),*]
            }

            /// Set the address (or `u64` setting) field `name`; false when
            /// there is no such `u64` field.
            pub fn set_u64(&mut self, name: &str, v: u64) -> bool {
                match name {
                    $(stringify!($name) => {
                        match (&mut self.$name as &mut dyn std::any::Any).downcast_mut::<u64>() {
                            Some(x) => {
                                *x = v;
                                true
                            }
                            None => false,
                        }
                    })*
                    _ => false,
                }
            }
        }
    };
}

params! {
    // model: sample-bins and terms
    m_sb_bin: u64,
    m_sb_nom: u64,
    m_sb_m0: u64,
    m_sb_m1: u64,
    m_sb_a0: u64,
    m_sb_a1: u64,
    m_mult_par: u64,
    m_mult_interp: u64,
    m_add_par: u64,
    m_add_interp: u64,
    m_ip_code: u64,
    m_ip_off: u64,
    m_ip_scale: u64,
    m_ip_c: u64,
    // model: sparsity structure (permuted parameter indices)
    m_bin_ptr: u64,
    m_bin_pars: u64,
    m_mult_pos: u64,
    m_add_pos: u64,
    m_sb_ptr: u64,
    m_sb_pars: u64,
    // model: constraints in parameter order
    m_con_par: u64,
    m_con_aux: u64,
    m_con_kind: u64,
    m_con_val: u64,
    m_con_const: u64,
    // model: Hessian layout (packed block form)
    m_perm: u64,
    m_inv: u64,
    m_row_off: u64,
    m_row_bs: u64,
    m_blk_s: u64,
    m_blk_e: u64,
    // per-member minimiser and solver state (strided by ms)
    st_x: u64,
    st_xt: u64,
    st_xp: u64,
    st_g: u64,
    st_h: u64,
    st_d: u64,
    st_step: u64,
    st_y: u64,
    st_rg: u64,
    st_dfac: u64,
    st_w: u64,
    st_s: u64,
    st_free_new: u64,
    st_free_list: u64,
    st_gfree: u64,
    st_lfree: u64,
    st_blk_s: u64,
    st_blk_e: u64,
    st_doff: u64,
    st_woff: u64,
    // per-member evaluation scratch (strided by ms)
    sc_sbf: u64,
    sc_sba: u64,
    sc_nu: u64,
    sc_w1: u64,
    sc_w2: u64,
    sc_jac: u64,
    sc_mval: u64,
    sc_md1: u64,
    sc_md2: u64,
    sc_ad1: u64,
    sc_ad2: u64,
    sc_pre: u64,
    sc_suf: u64,
    sc_tv: u64,
    // per-member scalars [ms]
    mb_f: u64,
    mb_lambda: u64,
    mb_edm: u64,
    mb_fprev: u64,
    mb_iter: u64,
    mb_evals: u64,
    mb_status: u64,
    mb_flags: u64,
    mb_counts: u64,
    mb_npd: u64,
    mb_win_iter: u64,
    mb_win_f: u64,
    mb_data: u64,
    mb_spec: u64,
    mb_tstep: u64,
    mb_attempt: u64,
    mb_nf: u64,
    // datasets (strided by nd) and fit specifications
    data_main: u64,
    data_aux: u64,
    data_const: u64,
    spec_fixed: u64,
    spec_lo: u64,
    spec_hi: u64,
    spec_init: u64,
    spec_allfixed: u64,
    // batched evaluation input/output
    ev_theta: u64,
    ev_f: u64,
    // toys: generator, per-toy results
    gen_nu: u64,
    gen_mean: u64,
    gen_sigma: u64,
    gen_kind: u64,
    tr_stat: u64,
    tr_muhat: u64,
    tr_ffree: u64,
    tr_ffixed: u64,
    tr_sfree: u64,
    tr_sfixed: u64,
    tr_restart: u64,
    sv_f: u64,
    sv_muhat: u64,
    sv_status: u64,
    counter: u64,
    // sizes of the model
    n_pars: u64,
    n_main: u64,
    n_aux: u64,
    n_sb: u64,
    n_global: u64,
    n_hess: u64,
    n_blocks: u64,
    n_con: u64,
    n_jac: u64,
    max_mult: u64,
    max_add: u64,
    strict_domain: u64,
    // launch and run settings
    ms: u64,
    nd: u64,
    n_threads: u64,
    eval_mode: u64,
    max_iter: u64,
    want_hess: u64,
    robust: u64,
    attempts_per_launch: u64,
    seed: u64,
    purpose: u64,
    toy0: u64,
    n_toys: u64,
    kind: u64,
    poi: u64,
    edm_tol: f64,
    mu: f64,
}

/// The kernels, in the order of `GF_KERNELS` in kernels/kernels.cuh.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kernel {
    /// Batched twice_nll (gradient, Hessian or Fisher information).
    Eval,
    /// Start fits at their specification's initial values.
    FitInit,
    /// One minimiser iteration of every unfinished member.
    FitIterate,
    /// Count the unfinished members into `counter`.
    CountActive,
    /// Draw toy data (one thread per toy and variable).
    ToySample,
    /// The data-only constant of each toy dataset.
    DataConst,
    /// Assign toy members to datasets and specifications and start their fits.
    ToySetup,
    /// Restart free toy fits that ended above their POI-fixed fit.
    ToyRestart,
    /// Per-toy test statistics and records.
    ToyFinalize,
    /// Start the POI-fixed toy fits (local parameters from the free fits).
    ToySetupFixed,
}

impl Kernel {
    /// Every kernel, in launch-table order.
    pub const ALL: [Kernel; 10] = [
        Kernel::Eval,
        Kernel::FitInit,
        Kernel::FitIterate,
        Kernel::CountActive,
        Kernel::ToySample,
        Kernel::DataConst,
        Kernel::ToySetup,
        Kernel::ToyRestart,
        Kernel::ToyFinalize,
        Kernel::ToySetupFixed,
    ];

    /// Position in the launch table (the emulator's kernel id).
    pub fn id(self) -> u32 {
        Kernel::ALL.iter().position(|k| *k == self).expect("listed") as u32
    }

    /// The `extern "C"` name of the CUDA kernel.
    pub fn name(self) -> &'static str {
        match self {
            Kernel::Eval => "gf_eval_kernel",
            Kernel::FitInit => "gf_fit_init",
            Kernel::FitIterate => "gf_fit_iterate",
            Kernel::CountActive => "gf_count_active",
            Kernel::ToySample => "gf_toy_sample",
            Kernel::DataConst => "gf_data_const",
            Kernel::ToySetup => "gf_toy_setup",
            Kernel::ToyRestart => "gf_toy_restart",
            Kernel::ToyFinalize => "gf_toy_finalize",
            Kernel::ToySetupFixed => "gf_toy_setup_fixed",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_are_packed_eight_bytes_apart() {
        let off = GfParams::offsets();
        assert_eq!(off.len(), GfParams::FIELDS.len());
        for (i, o) in off.iter().enumerate() {
            assert_eq!(*o, 8 * i, "field {}", GfParams::FIELDS[i]);
        }
        assert_eq!(std::mem::size_of::<GfParams>(), 8 * off.len());
        let mut p = GfParams::default();
        assert!(p.set_u64("st_x", 42));
        assert_eq!(p.st_x, 42);
        assert!(!p.set_u64("mu", 1));
        assert!(!p.set_u64("no_such_field", 1));
    }
}
