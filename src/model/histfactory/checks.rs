//! Checks of the compiled constraint terms: every width, tau and aux datum a
//! finite number in the range where twice_nll and its derivatives stay finite.

use super::{Constraint, HistFactoryModel};
use crate::error::{Error, Result};

/// Largest constraint width (or 1/tau) whose square and inverse square stay
/// finite in f64 with room for the likelihood's sums.
const MAX_WIDTH: f64 = 1e150;

/// Refuse constraints that would make twice_nll, its gradient or Hessian
/// overflow, naming the parameter and its modifier type.
pub(super) fn constraints(model: &HistFactoryModel, src: &str, aux: &[f64]) -> Result<()> {
    let kind_of = |i: usize| {
        model
            .par_sets
            .iter()
            .find(|s| (s.offset..s.offset + s.n).contains(&i))
            .map(|s| s.types.join("+"))
            .unwrap_or_default()
    };
    let fail = |i: usize, what: String| {
        Err(Error::workspace(
            src,
            format!("parameter '{}'", model.par_names[i]),
            format!("{} constraint: {what}", kind_of(i)),
        ))
    };
    let ok_width = |w: f64| w.is_finite() && w > 1.0 / MAX_WIDTH && w < MAX_WIDTH;
    for (i, c) in model.constraints.iter().enumerate() {
        match *c {
            Constraint::None => {}
            Constraint::Normal { sigma } => {
                if !ok_width(sigma) {
                    return fail(
                        i,
                        format!(
                            "width {sigma} is outside ({:e}, {MAX_WIDTH:e})",
                            1.0 / MAX_WIDTH
                        ),
                    );
                }
            }
            Constraint::Poisson { tau } => {
                if !(tau.is_finite() && tau > 0.0 && ok_width(1.0 / tau.sqrt())) {
                    return fail(
                        i,
                        format!(
                            "tau = (nominal / uncertainty)^2 = {tau} is not a usable Poisson scale \
                             (the relative uncertainty must lie within ({:e}, {MAX_WIDTH:e}))",
                            1.0 / MAX_WIDTH
                        ),
                    );
                }
            }
        }
        if let Some(k) = model.aux_index[i]
            && !aux
                .get(k)
                .is_some_and(|a| a.is_finite() && a.abs() < MAX_WIDTH * MAX_WIDTH)
        {
            return fail(
                i,
                format!("aux datum {:?} is not a usable number", aux.get(k)),
            );
        }
    }
    Ok(())
}
