//! Independent computations shared by the report suites.
#![allow(dead_code)]

use super::common::rel;
use gradfit::model::HistFactoryModel;
use gradfit::report;

/// Jacobian of the sample-bin yields from the candle graph (reverse mode): row j = d nu_j / d theta.
pub fn graph_jacobian(m: &HistFactoryModel, theta: &[f64]) -> Vec<Vec<f64>> {
    use candle_core::{Device, Tensor, Var};
    use gradfit::model::histfactory::graph::Graph;
    let dev = Device::Cpu;
    let g = Graph::new(m, &dev).unwrap();
    let tp = g.templates(m).unwrap();
    let nsb = m.sb.len();
    let p = m.n_pars();
    let flat: Vec<f64> = (0..nsb).flat_map(|_| theta.iter().copied()).collect();
    let th = Var::from_tensor(&Tensor::from_vec(flat, (nsb, p), &dev).unwrap()).unwrap();
    let y = g.expected_sample_bins(th.as_tensor(), &tp).unwrap();
    let eye = Tensor::eye(nsb, candle_core::DType::F64, &dev).unwrap();
    let grads = (y * eye).unwrap().sum_all().unwrap().backward().unwrap();
    grads.get(th.as_tensor()).unwrap().to_vec2().unwrap()
}

/// sqrt(g^T C g) with plain loops.
pub fn propagate(g: &[f64], c: &[f64]) -> f64 {
    let p = g.len();
    let mut v = 0.0;
    for i in 0..p {
        for j in 0..p {
            v += g[i] * c[i * p + j] * g[j];
        }
    }
    v.sqrt()
}

/// Compare every reported uncertainty with J C J^T from the graph's Jacobian.
pub fn check_yields_against_graph(
    m: &HistFactoryModel,
    theta: &[f64],
    cov: &[f64],
    y: &report::Yields,
    tol: f64,
    label: &str,
) {
    let p = m.n_pars();
    let jg = graph_jacobian(m, theta);
    let sum_rows = |rows: &[usize]| -> Vec<f64> {
        let mut g = vec![0.0; p];
        for &j in rows {
            for i in 0..p {
                g[i] += jg[j][i];
            }
        }
        g
    };
    let check = |got: f64, rows: &[usize], what: &str| {
        let want = propagate(&sum_rows(rows), cov);
        let ok = (got - want).abs() <= tol * want.abs() || (want == 0.0 && got == 0.0);
        assert!(
            ok,
            "{label} {what}: {got} vs {want} (rel {:e})",
            rel(got, want)
        );
    };
    let values = m.expected_sample_bins(theta);
    for (ci, ch) in y.channels.iter().enumerate() {
        let c = &m.channels[ci];
        assert_eq!(ch.name, c.name);
        let members: Vec<_> = m.samples.iter().filter(|s| s.channel == ci).collect();
        assert_eq!(ch.samples.len(), members.len());
        let mut all = Vec::new();
        for (s, sy) in members.iter().zip(&ch.samples) {
            assert_eq!(sy.name, s.name);
            let rows: Vec<usize> = (0..c.nbins).map(|b| s.first_sb + b).collect();
            for b in 0..c.nbins {
                assert!(rel(sy.yields[b], values[s.first_sb + b]) < 1e-14 || sy.yields[b] == 0.0);
                check(
                    sy.errors[b],
                    &[s.first_sb + b],
                    &format!("{}/{} bin {b}", c.name, s.name),
                );
            }
            check(sy.sum_error, &rows, &format!("{}/{} sum", c.name, s.name));
            all.extend(rows);
        }
        for b in 0..c.nbins {
            let rows: Vec<usize> = members.iter().map(|s| s.first_sb + b).collect();
            check(
                ch.total_errors[b],
                &rows,
                &format!("{} total bin {b}", c.name),
            );
        }
        check(ch.sum_error, &all, &format!("{} channel total", c.name));
        let obs = &m.observed().main[c.bin_offset..c.bin_offset + c.nbins];
        assert_eq!(ch.data, obs);
    }
}
