//! The checks of a parsed workspace that serde does not make, one function
//! per part of the document; every error names its JSON location.

use super::{ReadOptions, Workspace};
use crate::error::{Error, Result};
use rustc_hash::FxHashMap as HashMap;

impl Workspace {
    /// Channels, samples and modifiers; returns each channel's bin count.
    pub(super) fn validate_channels(
        &self,
        src: &str,
        opts: &ReadOptions,
    ) -> Result<HashMap<&str, usize>> {
        let err = |loc: String, msg: String| Error::workspace(src, loc, msg);
        let mut seen_channels: HashMap<&str, usize> = HashMap::default();
        let mut nbins_of: HashMap<&str, usize> = HashMap::default();
        for (ci, c) in self.channels.iter().enumerate() {
            let cloc = format!("/channels/{ci}");
            if c.name.is_empty() {
                return Err(err(format!("{cloc}/name"), "empty channel name".into()));
            }
            if let Some(prev) = seen_channels.insert(&c.name, ci) {
                return Err(err(
                    format!("{cloc}/name"),
                    format!(
                        "duplicate channel name '{}' (also /channels/{prev})",
                        c.name
                    ),
                ));
            }
            if c.samples.is_empty() {
                return Err(err(
                    format!("{cloc}/samples"),
                    "channel has no samples".into(),
                ));
            }
            let nb = c.samples[0].data.len();
            if nb == 0 {
                return Err(err(
                    format!("{cloc}/samples/0/data"),
                    "sample has no bins".into(),
                ));
            }
            nbins_of.insert(&c.name, nb);
            let mut seen_samples: HashMap<&str, usize> = HashMap::default();
            for (si, s) in c.samples.iter().enumerate() {
                let sloc = format!("{cloc}/samples/{si}");
                if let Some(prev) = seen_samples.insert(&s.name, si) {
                    return Err(err(
                        format!("{sloc}/name"),
                        format!(
                            "duplicate sample name '{}' in channel '{}' (also {cloc}/samples/{prev})",
                            s.name, c.name
                        ),
                    ));
                }
                if s.data.len() != nb {
                    return Err(err(
                        format!("{sloc}/data"),
                        format!(
                            "sample '{}' has {} bins but channel '{}' has {} (from its first sample)",
                            s.name,
                            s.data.len(),
                            c.name,
                            nb
                        ),
                    ));
                }
                for (bi, v) in s.data.iter().enumerate() {
                    if !v.is_finite() {
                        return Err(err(format!("{sloc}/data/{bi}"), format!("yield is {v}")));
                    }
                    if *v < 0.0 && opts.strict {
                        return Err(err(
                            format!("{sloc}/data/{bi}"),
                            format!(
                                "negative nominal yield {v}, refused by --strict (pyhf and \
                                 gradfit without --strict accept it)"
                            ),
                        ));
                    }
                }
                let mut seen_mods: HashMap<(&str, &str), usize> = HashMap::default();
                for (mi, m) in s.modifiers.iter().enumerate() {
                    let mloc = || format!("{sloc}/modifiers/{mi}");
                    if m.name.is_empty() {
                        return Err(err(
                            format!("{}/name", mloc()),
                            "empty modifier name".into(),
                        ));
                    }
                    if let Some(prev) = seen_mods.insert((&m.name, &m.kind), mi) {
                        return Err(err(
                            mloc(),
                            format!(
                                "modifier '{}' of type {} appears twice on sample '{}' (also {sloc}/modifiers/{prev})",
                                m.name, m.kind, s.name
                            ),
                        ));
                    }
                    m.parse_data_at(nb, src, &mloc)?;
                }
            }
        }
        Ok(nbins_of)
    }

    /// Observations: one per channel, with its bin count, finite and non-negative.
    pub(super) fn validate_observations(
        &self,
        src: &str,
        nbins_of: &HashMap<&str, usize>,
    ) -> Result<()> {
        let err = |loc: String, msg: String| Error::workspace(src, loc, msg);
        let mut seen_obs: HashMap<&str, usize> = HashMap::default();
        for (oi, o) in self.observations.iter().enumerate() {
            let oloc = format!("/observations/{oi}");
            let Some(&nb) = nbins_of.get(o.name.as_str()) else {
                return Err(err(
                    format!("{oloc}/name"),
                    format!("observation for unknown channel '{}'", o.name),
                ));
            };
            if let Some(prev) = seen_obs.insert(&o.name, oi) {
                return Err(err(
                    format!("{oloc}/name"),
                    format!(
                        "second observation for channel '{}' (also /observations/{prev})",
                        o.name
                    ),
                ));
            }
            if o.data.len() != nb {
                return Err(err(
                    format!("{oloc}/data"),
                    format!(
                        "observation of channel '{}' has {} bins but its samples have {}",
                        o.name,
                        o.data.len(),
                        nb
                    ),
                ));
            }
            for (bi, v) in o.data.iter().enumerate() {
                if !v.is_finite() || *v < 0.0 {
                    return Err(err(
                        format!("{oloc}/data/{bi}"),
                        format!("observed count must be finite and non-negative, got {v}"),
                    ));
                }
            }
        }
        for (ci, c) in self.channels.iter().enumerate() {
            if !seen_obs.contains_key(c.name.as_str()) {
                return Err(err(
                    "/observations".into(),
                    format!("no observation for channel '{}' (/channels/{ci})", c.name),
                ));
            }
        }
        Ok(())
    }

    /// Measurements: unique names and parameter configurations.
    pub(super) fn validate_measurements(&self, src: &str) -> Result<()> {
        let err = |loc: String, msg: String| Error::workspace(src, loc, msg);
        let mut seen_meas: HashMap<&str, usize> = HashMap::default();
        for (mi, m) in self.measurements.iter().enumerate() {
            let mloc = format!("/measurements/{mi}");
            if let Some(prev) = seen_meas.insert(&m.name, mi) {
                return Err(err(
                    format!("{mloc}/name"),
                    format!(
                        "measurement '{}' is defined twice (also at /measurements/{prev})",
                        m.name
                    ),
                ));
            }
            let mut seen_pars: HashMap<&str, usize> = HashMap::default();
            for (pi, p) in m.config.parameters.iter().enumerate() {
                if let Some(prev) = seen_pars.insert(&p.name, pi) {
                    return Err(err(
                        format!("{mloc}/config/parameters/{pi}"),
                        format!(
                            "parameter '{}' is configured twice in measurement '{}' (also at {mloc}/config/parameters/{prev})",
                            p.name, m.name
                        ),
                    ));
                }
            }
            for (pi, p) in m.config.parameters.iter().enumerate() {
                let ploc = format!("{mloc}/config/parameters/{pi}");
                let check = |key: &str, vals: &Option<Vec<f64>>| -> Result<()> {
                    if let Some(v) = vals {
                        for (k, x) in v.iter().enumerate() {
                            if !x.is_finite() {
                                return Err(err(
                                    format!("{ploc}/{key}/{k}"),
                                    format!("value is {x}"),
                                ));
                            }
                        }
                    }
                    Ok(())
                };
                check("inits", &p.inits)?;
                check("auxdata", &p.auxdata)?;
                check("sigmas", &p.sigmas)?;
                check("factors", &p.factors)?;
                if let Some(b) = &p.bounds {
                    for (k, [lo, hi]) in b.iter().enumerate() {
                        if !(lo.is_finite() && hi.is_finite()) || lo > hi {
                            return Err(err(
                                format!("{ploc}/bounds/{k}"),
                                format!("bounds must be finite with lo <= hi, got [{lo}, {hi}]"),
                            ));
                        }
                    }
                }
                if let Some(s) = &p.sigmas {
                    for (k, x) in s.iter().enumerate() {
                        if *x <= 0.0 {
                            return Err(err(
                                format!("{ploc}/sigmas/{k}"),
                                format!("sigma must be positive, got {x}"),
                            ));
                        }
                    }
                }
            }
        }
        Ok(())
    }
}
