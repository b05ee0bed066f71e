//! A bounded mutation-fuzzing campaign over the committed seed corpus
//! (`fuzz/corpus/*`): every reader must return (an error is fine) without a
//! panic and within a time bound. `GRADFIT_FUZZ_ITERS` sets the number of
//! mutated inputs per target (a few hundred by default; `.ci/run` runs a
//! longer campaign in release mode). The cargo-fuzz targets in `fuzz/` run
//! the same entry points under coverage guidance.
//!
//! Also property tests: the same model twice gives the same numbers, a fit
//! never ends above its start, toys do not depend on the shard split.

mod common;
use common::{TestRng, repo};
use serde_json::Value;
use std::time::{Duration, Instant};

/// Longest time one input may take (a hang is a failure).
const PER_INPUT: Duration = Duration::from_secs(10);

fn iterations() -> usize {
    std::env::var("GRADFIT_FUZZ_ITERS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(300)
}

fn corpus(target: &str) -> Vec<Vec<u8>> {
    let dir = repo(&format!("fuzz/corpus/{target}"));
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    let seeds: Vec<Vec<u8>> = files.iter().map(|f| std::fs::read(f).unwrap()).collect();
    assert!(!seeds.is_empty(), "empty corpus {}", dir.display());
    seeds
}

/// Values that break naive readers.
const TOKENS: &[&str] = &[
    "-1",
    "0",
    "1e308",
    "-1e308",
    "1e-320",
    "5e-324",
    "NaN",
    "null",
    "true",
    "[]",
    "{}",
    "\"\"",
    "[[]]",
    "18446744073709551616",
    "-0",
    "1e999",
    "\"normsys\"",
    "\"histosys\"",
    "\"staterror\"",
    "\"shapesys\"",
    "\"lumi\"",
    "\"normfactor\"",
    "\"shapefactor\"",
    "\"mu\"",
    "{\"hi\":0,\"lo\":0}",
];

fn pick<'a, T>(rng: &mut TestRng, v: &'a [T]) -> &'a T {
    &v[(rng.next_u64() % v.len() as u64) as usize]
}

/// Change one node of a JSON document.
fn mutate_value(v: &mut Value, rng: &mut TestRng, depth: usize) {
    let here = depth > 6 || rng.uniform() < 0.3;
    match v {
        Value::Array(a) if !a.is_empty() && !here => {
            let k = (rng.next_u64() % a.len() as u64) as usize;
            match rng.next_u64() % 6 {
                0 => {
                    a.remove(k);
                }
                1 => {
                    let c = a[k].clone();
                    a.insert(k, c);
                }
                _ => mutate_value(&mut a[k], rng, depth + 1),
            }
        }
        Value::Object(o) if !o.is_empty() && !here => {
            let keys: Vec<String> = o.keys().cloned().collect();
            let k = pick(rng, &keys).clone();
            match rng.next_u64() % 6 {
                0 => {
                    o.remove(&k);
                }
                _ => {
                    if let Some(x) = o.get_mut(&k) {
                        mutate_value(x, rng, depth + 1);
                    }
                }
            }
        }
        _ => {
            let t = pick(rng, TOKENS);
            if let Ok(n) = serde_json::from_str::<Value>(t) {
                *v = n;
            } else if let Value::Number(n) = v {
                let x = n.as_f64().unwrap_or(0.0);
                *v = serde_json::json!(x * (1.0 + 1e3 * (rng.uniform() - 0.5)));
            } else {
                *v = Value::Null;
            }
        }
    }
}

/// One mutated input from a seed: a structural JSON change, or byte edits.
fn mutate(seed: &[u8], rng: &mut TestRng) -> Vec<u8> {
    let parts: Vec<&[u8]> = seed.splitn(2, |&b| b == 0).collect();
    if rng.uniform() < 0.6
        && let Ok(mut v) = serde_json::from_slice::<Value>(parts[0])
    {
        for _ in 0..1 + rng.next_u64() % 3 {
            mutate_value(&mut v, rng, 0);
        }
        let mut out = serde_json::to_vec(&v).unwrap();
        if parts.len() == 2 {
            out.push(0);
            out.extend_from_slice(parts[1]);
        }
        return out;
    }
    let mut out = seed.to_vec();
    for _ in 0..1 + rng.next_u64() % 4 {
        if out.is_empty() {
            out.push(b'{');
        }
        let k = (rng.next_u64() % out.len() as u64) as usize;
        match rng.next_u64() % 5 {
            0 => out[k] ^= 1 << (rng.next_u64() % 8),
            1 => {
                out.remove(k);
            }
            2 => {
                let t = pick(rng, TOKENS).as_bytes().to_vec();
                out.splice(k..k, t);
            }
            3 => {
                let end = (k + 1 + (rng.next_u64() % 40) as usize).min(out.len());
                let span = out[k..end].to_vec();
                out.splice(k..k, span);
            }
            _ => {
                out[k] = [0xff, 0xc3, b'"', b'\\', b'}', b']', b','][(rng.next_u64() % 7) as usize]
            }
        }
    }
    out
}

fn campaign(target: &str, f: fn(&[u8]), seed: u64) {
    let seeds = corpus(target);
    let mut rng = TestRng::new(seed);
    let n = iterations();
    let mut inputs: Vec<Vec<u8>> = seeds.clone();
    for _ in 0..n {
        let s = pick(&mut rng, &seeds).clone();
        inputs.push(mutate(&s, &mut rng));
    }
    for (k, input) in inputs.iter().enumerate() {
        let t0 = Instant::now();
        let r = std::panic::catch_unwind(|| f(input));
        let dt = t0.elapsed();
        if r.is_err() || dt > PER_INPUT {
            let path = std::env::temp_dir().join(format!("gradfit-fuzz-{target}-{k}.bin"));
            std::fs::write(&path, input).unwrap();
            panic!(
                "{target}: input {k} {} (saved to {})",
                if r.is_err() {
                    "panicked"
                } else {
                    "took too long"
                },
                path.display()
            );
        }
    }
}

#[test]
fn fuzz_workspace_reader() {
    campaign("workspace", gradfit::fuzz::workspace, 1);
}

#[test]
fn fuzz_patches() {
    campaign("patch", gradfit::fuzz::patch, 2);
}

#[test]
fn fuzz_patchsets() {
    campaign("patchset", gradfit::fuzz::patchset, 3);
}

mod properties {
    use super::*;
    use gradfit::fit::{FitOptions, FitSpec, fit};
    use gradfit::infer::Problem;
    use gradfit::infer::shards::merge;
    use gradfit::infer::toys::{ToySettings, run_toys};
    use gradfit::model::{HistFactoryModel, ModelOptions};
    use gradfit::workspace::ReadOptions;

    fn load() -> HistFactoryModel {
        HistFactoryModel::load(
            &repo("examples/workspaces/two-channel.json"),
            &[],
            &ReadOptions::default(),
            &ModelOptions::default(),
        )
        .unwrap()
    }

    #[test]
    fn the_same_model_twice_gives_the_same_numbers() {
        let (a, b) = (load(), load());
        let mut rng = TestRng::new(9);
        let p = a.n_pars();
        for _ in 0..20 {
            let x = common::finite_random_point(&a, &mut rng);
            let (fa, ga, ha) = a.twice_nll_hessian(&x, a.observed());
            let (fb, gb, hb) = b.twice_nll_hessian(&x, b.observed());
            assert_eq!(fa.to_bits(), fb.to_bits());
            assert_eq!(ga, gb);
            assert_eq!(ha.len(), p * p);
            assert_eq!(ha, hb);
        }
    }

    #[test]
    fn a_fit_never_ends_above_its_start() {
        let m = load();
        let mut rng = TestRng::new(11);
        for _ in 0..25 {
            let x = common::finite_random_point(&m, &mut rng);
            let mut spec = FitSpec::from_model(&m);
            spec.init = x.clone();
            let start = m.twice_nll(&x, m.observed());
            let r = fit(&m, m.observed(), &spec, &FitOptions::default());
            assert!(
                r.twice_nll <= start + 1e-9 * start.abs().max(1.0),
                "fit ended at {} above its start {start}",
                r.twice_nll
            );
        }
    }

    #[test]
    fn toys_do_not_depend_on_the_shard_split() {
        let m = load();
        let p = Problem::new(&m, m.observed()).unwrap();
        let settings = |shard| ToySettings {
            mu: 1.0,
            test_stat: gradfit::infer::TestStat::QTilde,
            n_toys: 30,
            seed: 5,
            shard,
            batch: 8,
            model_digest: "d".into(),
            toy_max_iter: None,
        };
        let opts = FitOptions::default();
        let whole = run_toys(&p, &settings(None), &opts, &|_, _| {}).unwrap();
        for n in [2u32, 3, 7] {
            let shards: Vec<_> = (0..n)
                .map(|i| run_toys(&p, &settings(Some((i, n))), &opts, &|_, _| {}).unwrap())
                .collect();
            assert_eq!(merge(shards, &[]).unwrap(), whole, "split into {n}");
        }
    }
}
