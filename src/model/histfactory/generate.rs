//! Asimov and pseudo-data (toys) for HistFactory models, as pyhf builds them:
//! main bins Poisson around the expected rates; aux data Normal around the
//! parameter (Gaussian constraints) or Poisson around gamma * tau (Poisson ones).

use super::{Constraint, Dataset, HistFactoryModel};
use crate::rng::{Poisson, Stream};

/// Everything needed to draw toys at one parameter point.
#[derive(Debug, Clone)]
pub struct ToyGenerator {
    /// Expected main rates.
    pub nu: Vec<f64>,
    /// Per aux datum: mean, and the Gaussian width (None for Poisson).
    pub aux: Vec<(f64, Option<f64>)>,
    /// Poisson samplers of the main bins, then of the Poisson aux data
    /// (in aux order), with their constants computed once.
    pois: Vec<Poisson>,
}

impl HistFactoryModel {
    /// The Asimov dataset at `theta`: expected main data and expected aux data.
    /// A negative expected rate (possible with negative nominal yields) gives
    /// an Asimov count of 0, the count a toy draws there.
    pub fn asimov_dataset(&self, theta: &[f64]) -> Dataset {
        let main = self
            .expected_main(theta)
            .into_iter()
            .map(|v| if v < 0.0 { 0.0 } else { v })
            .collect();
        self.dataset(main, self.expected_aux(theta))
            .expect("expected data have the model's shape")
    }

    /// Precompute the toy distribution at `theta`.
    pub fn toy_generator(&self, theta: &[f64]) -> ToyGenerator {
        let nu = self.expected_main(theta);
        let mut aux = vec![(0.0, None); self.n_aux()];
        for (i, c) in self.constraints.iter().enumerate() {
            if let Some(k) = self.aux_index[i] {
                aux[k] = match *c {
                    Constraint::Normal { sigma } => (theta[i], Some(sigma)),
                    Constraint::Poisson { tau } => (theta[i] * tau, None),
                    Constraint::None => unreachable!("unconstrained parameters have no aux data"),
                };
            }
        }
        let pois = nu
            .iter()
            .copied()
            .chain(aux.iter().filter(|a| a.1.is_none()).map(|a| a.0))
            .map(Poisson::new)
            .collect();
        ToyGenerator { nu, aux, pois }
    }

    /// Draw toy number `toy` of stream `purpose` (see [`crate::rng`]).
    pub fn sample_dataset(&self, g: &ToyGenerator, seed: u64, toy: u32, purpose: u32) -> Dataset {
        let nb = g.nu.len();
        let main: Vec<f64> = g.pois[..nb]
            .iter()
            .enumerate()
            .map(|(b, p)| Stream::new(seed, toy, purpose, b as u32).poisson_with(p))
            .collect();
        let mut pois = g.pois[nb..].iter();
        let aux: Vec<f64> = g
            .aux
            .iter()
            .enumerate()
            .map(|(k, &(mean, sigma))| {
                let mut s = Stream::new(seed, toy, purpose, (nb + k) as u32);
                match sigma {
                    Some(sd) => mean + sd * s.normal(),
                    None => s.poisson_with(pois.next().expect("one sampler per Poisson datum")),
                }
            })
            .collect();
        self.dataset(main, aux)
            .expect("sampled data have the model's shape")
    }
}
