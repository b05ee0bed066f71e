//! Compile a validated workspace into a [`HistFactoryModel`]: parameter order,
//! constraints, sample-bin terms and template tables, exactly as pyhf builds them.

use super::{ChannelInfo, Constraint, HistFactoryModel, ModelOptions, ParSet, SampleInfo};
use crate::error::{Error, Result};
use crate::workspace::{MODIFIER_TYPES, ModifierData, Workspace};
use std::collections::{BTreeMap, HashMap};

/// A typed modifier together with its JSON location.
struct ModRef<'a> {
    name: &'a str,
    data: ModifierData,
    loc: String,
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
                let loc = format!("{sloc}/modifiers/{mi}");
                let data = m.parse_data(s.data.len(), src, &loc)?;
                mods.push(ModRef {
                    name: &m.name,
                    data,
                    loc,
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
    let mut first_seen: HashMap<(&str, &str), String> = HashMap::new(); // (name, type) -> loc
    let mut per_type: Vec<Vec<&str>> = vec![Vec::new(); MODIFIER_TYPES.len()];
    for s in &traversal {
        for m in &s.mods {
            let t = m.data.type_name();
            if let std::collections::hash_map::Entry::Vacant(e) = first_seen.entry((m.name, t)) {
                e.insert(m.loc.clone());
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
                let l0 = &first_seen[&(*name, w[0])];
                let l1 = &first_seen[&(*name, w[1])];
                return Err(werr(
                    l1.clone(),
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
        let mut shapesys_at: HashMap<&str, &str> = HashMap::new();
        for s in &traversal {
            for m in &s.mods {
                if let ModifierData::ShapeSys(_) = m.data
                    && let Some(prev) = shapesys_at.insert(m.name, &m.loc)
                {
                    return Err(werr(
                        m.loc.clone(),
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
    let mut placed: HashMap<&str, usize> = HashMap::new();
    for (ti, names) in per_type.iter().enumerate() {
        for &n in names {
            if !placed.contains_key(n) {
                placed.insert(n, order.len());
                order.push((n, MODIFIER_TYPES[ti]));
            }
        }
    }

    // staterror: global bins covered per name, and sigma per covered bin
    let mut stat_bins: HashMap<&str, Vec<usize>> = HashMap::new();
    {
        let mut chans_of: HashMap<&str, Vec<usize>> = HashMap::new();
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
    let mut stat_sigma: HashMap<&str, Vec<f64>> = HashMap::new();
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
    let mut shapefactor_n: HashMap<&str, (usize, String)> = HashMap::new();
    for s in &traversal {
        for m in &s.mods {
            if let ModifierData::ShapeFactor = m.data {
                let nb = channels[s.channel].nbins;
                if let Some((prev_n, prev_loc)) = shapefactor_n.get(m.name) {
                    if *prev_n != nb {
                        return Err(werr(
                            m.loc.clone(),
                            format!(
                                "shapefactor '{}' is used on {nb} bins here but on {prev_n} bins at {prev_loc}",
                                m.name
                            ),
                        ));
                    }
                } else {
                    shapefactor_n.insert(m.name, (nb, m.loc.clone()));
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
    let mut shapesys_tau_fixed: HashMap<&str, (Vec<f64>, Vec<bool>)> = HashMap::new();
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
    let mut config_of: HashMap<&str, (usize, &crate::workspace::ParameterConfig)> = HashMap::new();
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

    for &(name, kind) in &order {
        let n = match kind {
            "normfactor" | "lumi" | "normsys" | "histosys" => 1,
            "shapefactor" => shapefactor_n[name].0,
            "shapesys" => shapesys_tau_fixed[name].0.len(),
            "staterror" => stat_bins[name].len(),
            _ => unreachable!(),
        };
        let mut p_init = vec![0.0; n];
        let mut p_bounds = vec![(0.0, 0.0); n];
        let mut p_fixed = vec![false; n];
        let mut p_con = vec![Constraint::None; n];
        let mut p_aux = vec![0.0; n];
        match kind {
            "normfactor" | "shapefactor" => {
                p_init.fill(1.0);
                p_bounds.fill((0.0, 10.0));
            }
            "normsys" | "histosys" => {
                p_init.fill(0.0);
                p_bounds.fill((-5.0, 5.0));
                p_con.fill(Constraint::Normal { sigma: 1.0 });
                p_aux.fill(0.0);
            }
            "lumi" => {
                let Some((pi, cfg)) = config_of.get(name) else {
                    return Err(werr(
                        format!("/measurements/{meas_idx}/config/parameters"),
                        format!(
                            "lumi parameter '{name}' needs an entry in measurement '{}' \
                             config.parameters with its auxdata and sigmas",
                            meas.name
                        ),
                    ));
                };
                let ploc = format!("/measurements/{meas_idx}/config/parameters/{pi}");
                let (Some(aux), Some(sig)) = (&cfg.auxdata, &cfg.sigmas) else {
                    return Err(werr(
                        ploc,
                        format!(
                            "lumi parameter '{name}' needs both 'auxdata' and 'sigmas' in its measurement config"
                        ),
                    ));
                };
                if aux.len() != 1 || sig.len() != 1 {
                    return Err(werr(
                        ploc,
                        format!("lumi parameter '{name}' takes one auxdata and one sigma"),
                    ));
                }
                p_init[0] = aux[0];
                p_bounds[0] = (0.0, 10.0 * aux[0]);
                p_con[0] = Constraint::Normal { sigma: sig[0] };
                p_aux[0] = aux[0];
            }
            "shapesys" => {
                let (tau, fx) = &shapesys_tau_fixed[name];
                p_init.fill(1.0);
                p_bounds.fill((1e-10, 10.0));
                for k in 0..n {
                    p_con[k] = Constraint::Poisson { tau: tau[k] };
                    p_aux[k] = tau[k];
                    p_fixed[k] = fx[k];
                }
            }
            "staterror" => {
                let sig = &stat_sigma[name];
                p_init.fill(1.0);
                p_bounds.fill((1e-10, 10.0));
                p_aux.fill(1.0);
                for k in 0..n {
                    if sig[k] == 0.0 {
                        p_fixed[k] = true;
                        p_con[k] = Constraint::Normal { sigma: 1.0 };
                    } else {
                        p_con[k] = Constraint::Normal { sigma: sig[k] };
                    }
                }
            }
            _ => unreachable!(),
        }

        // measurement overrides
        if let Some((pi, cfg)) = config_of.get(name) {
            let ploc = format!("/measurements/{meas_idx}/config/parameters/{pi}");
            let len_check = |key: &str, len: usize| -> Result<()> {
                if len != n {
                    Err(werr(
                        format!("{ploc}/{key}"),
                        format!("'{name}' has {n} component(s) but {len} {key} were given"),
                    ))
                } else {
                    Ok(())
                }
            };
            let constrained_normal = matches!(p_con[0], Constraint::Normal { .. });
            let constrained_poisson = matches!(p_con[0], Constraint::Poisson { .. });
            if let Some(v) = &cfg.inits {
                len_check("inits", v.len())?;
                p_init.copy_from_slice(v);
            }
            if let Some(v) = &cfg.bounds {
                len_check("bounds", v.len())?;
                for (k, b) in v.iter().enumerate() {
                    p_bounds[k] = (b[0], b[1]);
                }
            }
            if let Some(f) = cfg.fixed {
                p_fixed.fill(f);
            }
            if let Some(v) = &cfg.auxdata {
                if !(constrained_normal || constrained_poisson) {
                    return Err(werr(
                        format!("{ploc}/auxdata"),
                        format!("'{name}' is unconstrained ({kind}) and has no auxdata"),
                    ));
                }
                len_check("auxdata", v.len())?;
                p_aux.copy_from_slice(v);
            }
            if let Some(v) = &cfg.sigmas {
                if !(kind == "lumi" || kind == "staterror") {
                    return Err(werr(
                        format!("{ploc}/sigmas"),
                        format!(
                            "'{name}' ({kind}) does not use sigmas (only lumi and staterror do)"
                        ),
                    ));
                }
                len_check("sigmas", v.len())?;
                for k in 0..n {
                    p_con[k] = Constraint::Normal { sigma: v[k] };
                }
            }
            if let Some(v) = &cfg.factors {
                if kind != "shapesys" {
                    return Err(werr(
                        format!("{ploc}/factors"),
                        format!("'{name}' ({kind}) does not use factors (only shapesys does)"),
                    ));
                }
                len_check("factors", v.len())?;
                for k in 0..n {
                    if !(v[k] > 0.0) {
                        return Err(werr(
                            format!("{ploc}/factors/{k}"),
                            "factors must be positive".into(),
                        ));
                    }
                    p_con[k] = Constraint::Poisson { tau: v[k] };
                }
            }
        }
        for k in 0..n {
            let (lo, hi) = p_bounds[k];
            if !(lo <= p_init[k] && p_init[k] <= hi) {
                let where_ = config_of
                    .get(name)
                    .map(|(pi, _)| format!("/measurements/{meas_idx}/config/parameters/{pi}"))
                    .unwrap_or_else(|| first_seen[&(name, kind)].clone());
                return Err(werr(
                    where_,
                    format!(
                        "initial value {} of '{name}' lies outside its bounds [{lo}, {hi}]",
                        p_init[k]
                    ),
                ));
            }
        }
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
                        .map_err(|msg| werr(m.loc.clone() + "/data", msg))?,
                    ModifierData::HistoSys { hi_data, lo_data } => {
                        tb.histosys(at, hi_data[b], lo_data[b]).map_err(|msg| {
                            werr(format!("{}/data", m.loc), format!("bin {b}: {msg}"))
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
