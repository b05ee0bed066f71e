//! Differentiable ("soft") histograms of per-event network outputs.
//!
//! - [`kde_hist`]: a binned kernel density estimate, as `relaxed.hist`: each
//!   event spreads a Gaussian of width `bandwidth` over the bins,
//!   `count_k = sum_n w_n [Phi((e_{k+1} - x_n)/h) - Phi((e_k - x_n)/h)]`
//!   (mass beyond the outer edges is lost, as in relaxed).
//! - [`softmax_hist`]: INFERNO's summary, `count_k = sum_n w_n softmax(z_n / T)_k`.
//!
//! Both reduce over events with a matrix product (candle's `scatter_add`
//! backward is wrong; products and `index_add` are exact).

use crate::error::{Error, Result};
use candle_core::{D, DType, Tensor};

fn check_edges(edges: &[f64]) -> Result<()> {
    if edges.len() < 2 {
        return Err(Error::input("a histogram needs at least two bin edges"));
    }
    if let Some(w) = edges.windows(2).find(|w| !(w[1] > w[0])) {
        return Err(Error::input(format!(
            "bin edges must increase, got {} then {}",
            w[0], w[1]
        )));
    }
    Ok(())
}

/// Weighted sum over events: `w^T m` for `m` [N, K] (or column sums without weights).
fn reduce(m: &Tensor, weights: Option<&Tensor>) -> Result<Tensor> {
    Ok(match weights {
        Some(w) => w.to_dtype(m.dtype())?.unsqueeze(0)?.matmul(m)?.squeeze(0)?,
        None => m.sum(0)?,
    })
}

/// The KDE histogram [K] of `x` ([N] or [N, 1]) with bin `edges` (K+1) and `bandwidth`.
pub fn kde_hist(
    x: &Tensor,
    weights: Option<&Tensor>,
    edges: &[f64],
    bandwidth: f64,
) -> Result<Tensor> {
    check_edges(edges)?;
    if !(bandwidth > 0.0) {
        return Err(Error::input(format!(
            "the KDE bandwidth must be positive, got {bandwidth}"
        )));
    }
    let x = x.flatten_all()?;
    let n = x.dims1()?;
    let k = edges.len();
    let e = Tensor::from_slice(edges, k, x.device())?.to_dtype(x.dtype())?;
    let z = e
        .unsqueeze(0)?
        .broadcast_sub(&x.unsqueeze(1)?)?
        .affine(1.0 / (bandwidth * std::f64::consts::SQRT_2), 0.0)?;
    let cdf = z.erf()?.affine(0.5, 0.5)?; // [N, K+1]
    debug_assert_eq!(cdf.dims2()?, (n, k));
    let c = reduce(&cdf, weights)?;
    Ok((c.narrow(0, 1, k - 1)? - c.narrow(0, 0, k - 1)?)?)
}

/// Row-wise softmax of `z / temperature` ([N, K]).
pub fn softmax(z: &Tensor, temperature: f64) -> Result<Tensor> {
    if !(temperature > 0.0) {
        return Err(Error::input(format!(
            "the softmax temperature must be positive, got {temperature}"
        )));
    }
    let s = (z / temperature)?;
    // shifting by the (constant) row maximum changes nothing but the rounding
    let s = s.broadcast_sub(&s.max_keepdim(D::Minus1)?.detach())?;
    let e = s.exp()?;
    Ok(e.broadcast_div(&e.sum_keepdim(D::Minus1)?)?)
}

/// INFERNO's soft histogram [K]: the weighted sum of `softmax(z / T)` over events.
pub fn softmax_hist(z: &Tensor, weights: Option<&Tensor>, temperature: f64) -> Result<Tensor> {
    reduce(&softmax(z, temperature)?, weights)
}

/// Hard histogram of `x` (numeric; values outside the edges are dropped, the
/// last edge is inclusive).
pub fn hard_hist(x: &[f64], weights: Option<&[f64]>, edges: &[f64]) -> Result<Vec<f64>> {
    check_edges(edges)?;
    let k = edges.len() - 1;
    let mut h = vec![0.0; k];
    for (i, &v) in x.iter().enumerate() {
        if !(v >= edges[0] && v <= edges[k]) {
            continue;
        }
        let b = edges
            .partition_point(|&e| e <= v)
            .saturating_sub(1)
            .min(k - 1);
        h[b] += weights.map_or(1.0, |w| w[i]);
    }
    Ok(h)
}

/// Hard assignment to the largest of K outputs per row (INFERNO at test time), [K] counts.
pub fn argmax_hist(z: &Tensor, weights: Option<&[f64]>) -> Result<Vec<f64>> {
    let (n, k) = z.dims2()?;
    let idx = z
        .argmax(D::Minus1)?
        .to_dtype(DType::U32)?
        .to_vec1::<u32>()?;
    let mut h = vec![0.0; k];
    for i in 0..n {
        h[idx[i] as usize] += weights.map_or(1.0, |w| w[i]);
    }
    Ok(h)
}
