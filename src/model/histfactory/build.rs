//! Compile a validated workspace into a [`HistFactoryModel`]: parameter order,
//! constraints, sample-bin terms and template tables, exactly as pyhf builds them.

use super::{ChannelInfo, Constraint, HistFactoryModel, ModelOptions, ParSet, SampleInfo};
use crate::error::{Error, Result};
use crate::workspace::{MODIFIER_TYPES, ModifierData, Workspace};
use rustc_hash::FxHashMap as HashMap;
use std::collections::BTreeMap;

/// A typed modifier together with where it is in the workspace.
struct ModRef<'a> {
    name: &'a str,
    data: ModifierData,
    /// (channel, sample, modifier) indices in the file.
    at: Pos,
}

/// (channel, sample, modifier) indices of a modifier in the file.
type Pos = (usize, usize, usize);

/// The JSON location of a modifier (made only when an error needs it).
fn mod_loc((c, s, m): Pos) -> String {
    format!("/channels/{c}/samples/{s}/modifiers/{m}")
}

/// One (channel, sample) of the sorted traversal.
struct SampleRef<'a> {
    channel: usize, // index into sorted channels
    name: &'a str,
    nominal: &'a [f64],
    loc: String,
    mods: Vec<ModRef<'a>>, // sorted by (name, type)
}

fn type_rank(t: &str) -> usize {
    MODIFIER_TYPES
        .iter()
        .position(|x| *x == t)
        .expect("known type")
}

/// Which types may share one parameter: normsys and histosys are both
/// Gaussian-constrained scalars with identical defaults; every other type stands alone.
fn compatible(a: &str, b: &str) -> bool {
    a == b || matches!((a, b), ("normsys", "histosys") | ("histosys", "normsys"))
}

pub(super) fn build(ws: &Workspace, opts: &ModelOptions, src: &str) -> Result<HistFactoryModel> {
    let werr = |loc: String, msg: String| Error::workspace(src, loc, msg);

    // --- channels (sorted by name) and global bins
    let mut chan_order: Vec<usize> = (0..ws.channels.len()).collect();
    chan_order.sort_by(|&a, &b| ws.channels[a].name.cmp(&ws.channels[b].name));
    let mut channels = Vec::with_capacity(chan_order.len());
    let mut offset = 0;
    for &ci in &chan_order {
        let c = &ws.channels[ci];
        let nb = c.samples[0].data.len();
        channels.push(ChannelInfo {
            name: c.name.clone(),
            bin_offset: offset,
            nbins: nb,
        });
        offset += nb;
    }
    let n_main = offset;

    // --- observed main data in sorted channel order
    let mut main_obs = vec![0.0; n_main];
    for ch in &channels {
        let o = ws
            .observations
            .iter()
            .find(|o| o.name == ch.name)
            .expect("validated");
        main_obs[ch.bin_offset..ch.bin_offset + ch.nbins].copy_from_slice(&o.data);
    }

    // --- global sorted sample names, and the sorted traversal
    let mut sample_names: Vec<String> = ws
        .channels
        .iter()
        .flat_map(|c| c.samples.iter().map(|s| s.name.clone()))
        .collect();
    sample_names.sort();
    sample_names.dedup();
    let mut traversal: Vec<SampleRef> = Vec::new();
    for (k, &ci) in chan_order.iter().enumerate() {
        let c = &ws.channels[ci];
        let mut sidx: Vec<usize> = (0..c.samples.len()).collect();
        sidx.sort_by(|&a, &b| c.samples[a].name.cmp(&c.samples[b].name));
        for si in sidx {
            let s = &c.samples[si];
            let sloc = format!("/channels/{ci}/samples/{si}");
            let mut mods = Vec::with_capacity(s.modifiers.len());
            for (mi, m) in s.modifiers.iter().enumerate() {
                let at = (ci, si, mi);
                let data = m.parse_data_at(s.data.len(), src, &|| mod_loc(at))?;
                mods.push(ModRef {
                    name: &m.name,
                    data,
                    at,
                });
            }
            mods.sort_by(|a, b| (a.name, a.data.type_name()).cmp(&(b.name, b.data.type_name())));
            traversal.push(SampleRef {
                channel: k,
                name: &s.name,
                nominal: &s.data,
                loc: sloc,
                mods,
            });
        }
    }

    // --- parameter discovery in pyhf order: by type, then first appearance
    let mut first_seen: HashMap<(&str, &str), Pos> = HashMap::default(); // (name, type) -> where
    let mut per_type: Vec<Vec<&str>> = vec![Vec::new(); MODIFIER_TYPES.len()];
    for s in &traversal {
        for m in &s.mods {
            let t = m.data.type_name();
            if let std::collections::hash_map::Entry::Vacant(e) = first_seen.entry((m.name, t)) {
                e.insert(m.at);
                per_type[type_rank(t)].push(m.name);
            }
        }
    }
    // type compatibility per name
    let mut types_of: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for (name, t) in first_seen.keys() {
        types_of.entry(name).or_default().push(t);
    }
    for (name, ts) in &types_of {
        let mut ts = ts.clone();
        ts.sort_by_key(|t| type_rank(t));
        for w in ts.windows(2) {
            if !compatible(w[0], w[1]) {
                let l0 = mod_loc(first_seen[&(*name, w[0])]);
                let l1 = mod_loc(first_seen[&(*name, w[1])]);
                return Err(werr(
                    l1,
                    format!(
                        "parameter '{name}' is declared as {} here and as {} at {l0}; one parameter \
                         cannot have both types (use distinct modifier names)",
                        w[1], w[0]
                    ),
                ));
            }
        }
    }

    // shapesys is not shared: one sample only
    {
        let mut shapesys_at: HashMap<&str, Pos> = HashMap::default();
        for s in &traversal {
            for m in &s.mods {
                if let ModifierData::ShapeSys(_) = m.data
                    && let Some(prev) = shapesys_at.insert(m.name, m.at)
                {
                    let prev = mod_loc(prev);
                    return Err(werr(
                        mod_loc(m.at),
                        format!(
                            "shapesys '{}' is also declared at {prev}; a shapesys parameter set \
                                 belongs to one sample (pyhf does not share it)",
                            m.name
                        ),
                    ));
                }
            }
        }
    }

    // --- parameter sets with pyhf defaults
    let mut order: Vec<(&str, &'static str)> = Vec::new();
    let mut placed: HashMap<&str, usize> = HashMap::default();
    for (ti, names) in per_type.iter().enumerate() {
        for &n in names {
            if !placed.contains_key(n) {
                placed.insert(n, order.len());
                order.push((n, MODIFIER_TYPES[ti]));
            }
        }
    }

    // staterror: global bins covered per name, and sigma per covered bin
    let mut stat_bins: HashMap<&str, Vec<usize>> = HashMap::default();
    {
        let mut chans_of: HashMap<&str, Vec<usize>> = HashMap::default();
        for s in &traversal {
            for m in &s.mods {
                if let ModifierData::StatError(_) = m.data {
                    let v = chans_of.entry(m.name).or_default();
                    if !v.contains(&s.channel) {
                        v.push(s.channel);
                    }
                }
            }
        }
        for (n, mut cs) in chans_of {
            cs.sort();
            let bins: Vec<usize> = cs
                .iter()
                .flat_map(|&c| channels[c].bin_offset..channels[c].bin_offset + channels[c].nbins)
                .collect();
            stat_bins.insert(n, bins);
        }
    }
    let mut stat_sigma: HashMap<&str, Vec<f64>> = HashMap::default();
    for (n, bins) in &stat_bins {
        let mut nom_sum = vec![0.0; n_main];
        let mut unc2 = vec![0.0; n_main];
        for s in &traversal {
            for m in &s.mods {
                if m.name == *n
                    && let ModifierData::StatError(d) = &m.data
                {
                    let off = channels[s.channel].bin_offset;
                    for (b, (&nom, &u)) in s.nominal.iter().zip(d.iter()).enumerate() {
                        nom_sum[off + b] += nom;
                        unc2[off + b] += u * u;
                    }
                }
            }
        }
        let sig = bins
            .iter()
            .map(|&b| {
                if nom_sum[b] > 0.0 {
                    unc2[b].sqrt() / nom_sum[b]
                } else {
                    0.0
                }
            })
            .collect();
        stat_sigma.insert(n, sig);
    }

    // shapefactor: n = channel bins, identical across channels
    let mut shapefactor_n: HashMap<&str, (usize, Pos)> = HashMap::default();
    for s in &traversal {
        for m in &s.mods {
            if let ModifierData::ShapeFactor = m.data {
                let nb = channels[s.channel].nbins;
                if let Some(&(prev_n, prev_at)) = shapefactor_n.get(m.name) {
                    if prev_n != nb {
                        let prev_loc = mod_loc(prev_at);
                        return Err(werr(
                            mod_loc(m.at),
                            format!(
                                "shapefactor '{}' is used on {nb} bins here but on {prev_n} bins at {prev_loc}",
                                m.name
                            ),
                        ));
                    }
                } else {
                    shapefactor_n.insert(m.name, (nb, m.at));
                }
            }
        }
    }

    let mut par_sets: Vec<ParSet> = Vec::new();
    let mut names = Vec::new();
    let mut init = Vec::new();
    let mut bounds = Vec::new();
    let mut fixed = Vec::new();
    let mut constraint = Vec::new();
    let mut shapesys_tau_fixed: HashMap<&str, (Vec<f64>, Vec<bool>)> = HashMap::default();
    for s in &traversal {
        for m in &s.mods {
            if let ModifierData::ShapeSys(d) = &m.data {
                let mut tau = Vec::with_capacity(d.len());
                let mut fx = Vec::with_capacity(d.len());
                for (&nom, &u) in s.nominal.iter().zip(d.iter()) {
                    let valid = nom > 0.0 && u > 0.0;
                    tau.push(if valid { nom * nom / (u * u) } else { 1.0 });
                    fx.push(!valid);
                }
                shapesys_tau_fixed.insert(m.name, (tau, fx));
            }
        }
    }

    let meas = ws.measurement(opts.measurement.as_deref())?;
    let meas_idx = ws
        .measurements
        .iter()
        .position(|m| std::ptr::eq(m, meas))
        .unwrap_or(0);
    let mut config_of: HashMap<&str, (usize, &crate::workspace::ParameterConfig)> =
        HashMap::default();
    for (pi, p) in meas.config.parameters.iter().enumerate() {
        config_of.insert(p.name.as_str(), (pi, p));
    }
    let mut warnings = Vec::new();
    let negative = crate::workspace::negative_yields(ws);
    if !negative.is_empty() {
        let shown = negative.len().min(10);
        let more = if negative.len() > shown {
            format!(" and {} more", negative.len() - shown)
        } else {
            String::new()
        };
        warnings.push(format!(
            "{} negative nominal yield(s), accepted as pyhf accepts them: {}{more}. A bin whose \
             total expected rate is not positive uses gradfit's extension of the Poisson term \
             (docs/robustness.md); --strict refuses such workspaces",
            negative.len(),
            negative[..shown].join(", ")
        ));
    }

    let mcfg = super::pardefs::MeasConfig {
        src,
        meas_name: &meas.name,
        meas_idx,
        config_of: &config_of,
    };
    for &(name, kind) in &order {
        use super::pardefs::ParDefs;
        // one compile step per modifier kind: pyhf's defaults, then the measurement's overrides
        let mut d = match kind {
            "normfactor" => ParDefs::free_factor(1),
            "shapefactor" => ParDefs::free_factor(shapefactor_n[name].0),
            "normsys" | "histosys" => ParDefs::gaussian_shift(),
            "lumi" => ParDefs::lumi(name, &mcfg)?,
            "shapesys" => {
                let (tau, fx) = &shapesys_tau_fixed[name];
                ParDefs::shapesys(tau, fx)
            }
            "staterror" => ParDefs::staterror(&stat_sigma[name]),
            _ => unreachable!(),
        };
        d.apply_config(name, kind, &mcfg)?;
        let seen = first_seen
            .get(&(name, kind))
            .map(|&at| mod_loc(at))
            .unwrap_or_default();
        d.check_inits(name, &mcfg, &seen)?;
        let n = d.init.len();
        let (p_init, p_bounds, p_fixed, p_con, p_aux) = (d.init, d.bounds, d.fixed, d.con, d.aux);
        let offset = names.len();
        for k in 0..n {
            names.push(if n > 1 {
                format!("{name}[{k}]")
            } else {
                name.to_string()
            });
        }
        init.extend_from_slice(&p_init);
        bounds.extend_from_slice(&p_bounds);
        fixed.extend_from_slice(&p_fixed);
        constraint.extend(p_con.iter().zip(p_aux.iter()).map(|(c, a)| (*c, *a)));
        let mut types: Vec<&'static str> = types_of[name]
            .iter()
            .map(|t| MODIFIER_TYPES[type_rank(t)])
            .collect();
        types.sort_by_key(|t| type_rank(t));
        par_sets.push(ParSet {
            name: name.to_string(),
            kind,
            types,
            offset,
            n,
        });
    }
    for (pname, (pi, _)) in &config_of {
        if !placed.contains_key(pname) {
            warnings.push(format!(
                "/measurements/{meas_idx}/config/parameters/{pi}: parameter '{pname}' is configured but no modifier uses it; ignored"
            ));
        }
    }
    let set_of: HashMap<&str, usize> = par_sets
        .iter()
        .enumerate()
        .map(|(i, p)| (p.name.as_str(), i))
        .collect();

    // --- aux data in parameter order
    let mut aux_index = vec![None; names.len()];
    let mut aux_obs = Vec::new();
    let mut constraints = Vec::with_capacity(names.len());
    for (i, (c, a)) in constraint.into_iter().enumerate() {
        if !matches!(c, Constraint::None) {
            aux_index[i] = Some(aux_obs.len());
            aux_obs.push(a);
        }
        constraints.push(c);
    }

    // --- sample-bin terms: one compile step per modifier kind (terms.rs)
    let normsys_code = opts.normsys_code;
    let histosys_code = opts.histosys_code;
    let mut samples_info = Vec::new();
    let mut tb = super::terms::TermBuilder::new(normsys_code, histosys_code);
    for s in &traversal {
        let ch = &channels[s.channel];
        let gsample = sample_names
            .binary_search_by(|x| x.as_str().cmp(s.name))
            .expect("known sample");
        let first_sb = tb.sb.len();
        for b in 0..ch.nbins {
            let gbin = ch.bin_offset + b;
            let nom = s.nominal[b];
            tb.open_bin();
            for m in &s.mods {
                let offset = par_sets[set_of[m.name]].offset;
                let at = super::terms::At {
                    offset,
                    nominal: nom,
                };
                match &m.data {
                    ModifierData::NormFactor | ModifierData::Lumi => tb.scalar_factor(at),
                    ModifierData::ShapeFactor | ModifierData::ShapeSys(_) => tb.bin_factor(at, b),
                    ModifierData::StatError(_) => {
                        let k = stat_bins[m.name].binary_search(&gbin).expect("bin covered");
                        tb.bin_factor(at, k)
                    }
                    ModifierData::NormSys { hi, lo } => tb
                        .normsys(at, *hi, *lo)
                        .map_err(|msg| werr(mod_loc(m.at) + "/data", msg))?,
                    ModifierData::HistoSys { hi_data, lo_data } => {
                        tb.histosys(at, hi_data[b], lo_data[b]).map_err(|msg| {
                            werr(format!("{}/data", mod_loc(m.at)), format!("bin {b}: {msg}"))
                        })?
                    }
                }
            }
            tb.close_bin(gbin, nom);
        }
        samples_info.push(SampleInfo {
            channel: s.channel,
            name: s.name.to_string(),
            global_index: gsample,
            first_sb,
            loc: s.loc.clone(),
        });
    }
    let super::terms::TermBuilder {
        sb,
        mult,
        add,
        interps,
        templates,
        layout,
        ..
    } = tb;

    // --- POI
    let poi_name = opts.poi.clone().unwrap_or_else(|| meas.config.poi.clone());
    let poi = if poi_name.is_empty() {
        None
    } else {
        match set_of.get(poi_name.as_str()) {
            Some(&i) if par_sets[i].n == 1 => Some(par_sets[i].offset),
            Some(_) => {
                return Err(werr(
                    format!("/measurements/{meas_idx}/config/poi"),
                    format!(
                        "the POI '{poi_name}' has several components; a POI must be a scalar parameter"
                    ),
                ));
            }
            None => {
                warnings.push(format!(
                    "/measurements/{meas_idx}/config/poi: the POI '{poi_name}' is not a parameter of this \
                     model (background-only workspace? apply its signal patch); POI-based commands are unavailable"
                ));
                None
            }
        }
    };

    let mut model = HistFactoryModel {
        par_names: names,
        par_sets,
        init,
        bounds,
        fixed,
        constraints,
        aux_index,
        poi,
        channels,
        sample_names,
        samples: samples_info,
        n_main,
        sb,
        mult,
        add,
        interps,
        templates,
        layout,
        normsys_code,
        histosys_code,
        strict_domain: opts.strict_domain,
        observed: None,
        warnings,
        measurement: meas.name.clone(),
        structure: Default::default(),
    };
    super::checks::constraints(&model, src, &aux_obs)?;
    let observed = model.dataset(main_obs, aux_obs)?;
    model.observed = Some(observed);
    model.finish_structure();
    Ok(model)
}
