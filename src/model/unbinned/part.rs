//! An unbinned channel with its observed events and parameter table: the unit
//! that joins a combined likelihood (see `model::combined`).

use super::atoms::Mode;
use super::channel::{Channel, Extension};
use super::slots::SlotValues;
use crate::data::EventData;
use std::sync::Arc;

/// Events of one channel (columns in the channel's observable order) with the
/// data-only constant of twice_nll.
#[derive(Debug, Clone, PartialEq)]
pub struct Events {
    /// The events.
    pub data: EventData,
    /// `2 ln Gamma(N + 1)` for extended channels (N = sum of weights), else 0.
    pub constant: f64,
    /// Rounding scale of twice_nll on these events.
    pub magnitude: f64,
}

impl Events {
    /// Wrap events for a channel with extension `ext`.
    pub fn new(data: EventData, ext: Extension) -> Self {
        let n = data.sum_w();
        let constant = match ext {
            Extension::Extended => 2.0 * libm::lgamma(n + 1.0),
            _ => 0.0,
        };
        // each event contributes a term of order |ln p| ~ a few units
        let sw: f64 = match &data.weights {
            Some(w) => w.iter().map(|x| x.abs()).sum(),
            None => data.len() as f64,
        };
        let magnitude = 2.0 * sw * 10.0 + constant.abs();
        Events {
            data,
            constant,
            magnitude,
        }
    }
}

/// An unbinned channel as a part of a likelihood: local parameters (the ones its
/// slots read), their suggested init, bounds and fixed flags, and observed events.
#[derive(Debug, Clone)]
pub struct UnbinnedPart {
    /// The compiled channel (its slots index `par_names`).
    pub channel: Channel,
    /// Local parameter names.
    pub par_names: Vec<String>,
    /// Suggested initial values.
    pub init: Vec<f64>,
    /// Bounds.
    pub bounds: Vec<(f64, f64)>,
    /// Fixed flags.
    pub fixed: Vec<bool>,
    /// Observed events.
    pub observed: Arc<Events>,
    /// Name of the data set (messages, plots).
    pub data_name: String,
}

/// Per-thread buffers of an unbinned part.
#[derive(Debug, Default)]
pub struct UnbinnedScratch {
    /// Slot values and derivatives.
    pub sv: SlotValues,
}

impl UnbinnedPart {
    /// Short label.
    pub fn label(&self) -> String {
        format!(
            "channel {} (unbinned, data {})",
            self.channel.name, self.data_name
        )
    }

    /// twice_nll at local parameters `theta` on `events`; OVERWRITES `grad`
    /// (n_local) and the row-major `hess` (n_local^2) when given. `+inf` outside
    /// the domain.
    pub fn eval(
        &self,
        theta: &[f64],
        events: &Events,
        scratch: &mut UnbinnedScratch,
        mut grad: Option<&mut [f64]>,
        mut hess: Option<&mut [f64]>,
    ) -> f64 {
        if let Some(g) = grad.as_deref_mut() {
            g.iter_mut().for_each(|x| *x = 0.0);
        }
        if let Some(h) = hess.as_deref_mut() {
            h.iter_mut().for_each(|x| *x = 0.0);
        }
        let v = self.channel.eval_into(
            theta,
            &events.data,
            events.constant,
            &mut scratch.sv,
            grad.as_deref_mut(),
            hess.as_deref_mut(),
        );
        let bad = |x: &Option<&mut [f64]>| {
            x.as_deref()
                .is_some_and(|s| s.iter().any(|v| !v.is_finite()))
        };
        if !v.is_finite() || bad(&grad) || bad(&hess) {
            if let Some(g) = grad {
                g.iter_mut().for_each(|x| *x = 0.0);
            }
            return f64::INFINITY;
        }
        v
    }

    /// Why the likelihood is not defined at `theta` on `events` (None when it is).
    pub fn check(&self, theta: &[f64], events: &Events) -> Option<String> {
        let mut sv = SlotValues::default();
        sv.compute(&self.channel.slots, theta, false);
        self.channel
            .pass(&sv, &events.data, events.constant, Mode::Value)
            .err()
    }

    /// Sum of squared-weight outer products of the per-event scores
    /// `sum_i w_i^2 s_i s_i^T`, `s_i = d ln(sum_l a_l Q_l(x_i)) / d theta`
    /// (the middle matrix of the asymptotically correct covariance of weighted
    /// fits), row-major n_local^2.
    pub fn score_outer(&self, theta: &[f64], events: &Events) -> Result<Vec<f64>, String> {
        super::weighted::score_outer(self, theta, events)
    }
}
