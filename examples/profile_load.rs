//! Where the time goes before a fit: reading, parsing, validating and
//! compiling a workspace, the model digest, and writing the fit's JSON.
//! `cargo run --release --example profile_load -- WORKSPACE [PATCH] [REPEATS]`

use gradfit::model::{HistFactoryModel, ModelOptions};
use gradfit::workspace::{self, ReadOptions, Workspace};
use std::path::Path;
use std::time::Instant;

/// The gradfit binary's allocator, so that the load path is measured as the command runs it.
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let ws_path = args
        .first()
        .expect("usage: profile_load WORKSPACE [PATCH] [REPEATS]");
    let patch = args
        .get(1)
        .filter(|p| !p.chars().all(|c| c.is_ascii_digit()));
    let reps: usize = args.last().and_then(|r| r.parse().ok()).unwrap_or(20);
    let mut t = [0.0f64; 6];
    // the fastest repetition of each phase: robust to a busy machine
    let mut best = [f64::INFINITY; 6];
    for _ in 0..reps {
        let t0 = Instant::now();
        let bytes = workspace::json::read_bytes(Path::new(ws_path)).unwrap();
        let t1 = Instant::now();
        let (ws, t2) = if let Some(p) = patch {
            // a patch needs the JSON tree
            let mut v = workspace::json::parse_strict(&bytes, ws_path).unwrap();
            let pv = workspace::read_json(Path::new(p)).unwrap();
            workspace::apply_patch(&mut v, &pv, p).unwrap();
            let t2 = Instant::now();
            let ws = Workspace::from_value(v, &[], ws_path, &ReadOptions::default()).unwrap();
            (ws, t2)
        } else {
            let t2 = Instant::now();
            let ws = Workspace::from_bytes(&bytes, ws_path, &ReadOptions::default()).unwrap();
            (ws, t2)
        };
        let t3 = Instant::now();
        let m = HistFactoryModel::from_workspace(&ws, &ModelOptions::default(), ws_path).unwrap();
        let t4 = Instant::now();
        let s = serde_json::to_string(&ws).unwrap();
        let _ = std::hint::black_box(s.len());
        let t5 = Instant::now();
        let p = m.n_pars();
        let out = serde_json::json!({"values": vec![0.5; p], "correlation": vec![vec![0.1; p]; p]});
        let _ = std::hint::black_box(serde_json::to_string_pretty(&out).unwrap().len());
        let t6 = Instant::now();
        for (k, (a, b)) in [(t0, t1), (t1, t2), (t2, t3), (t3, t4), (t4, t5), (t5, t6)]
            .iter()
            .enumerate()
        {
            t[k] += (*b - *a).as_secs_f64();
            best[k] = best[k].min((*b - *a).as_secs_f64());
        }
    }
    let names = [
        "read",
        "tree+patch",
        "typed+validate",
        "compile",
        "digest json",
        "output json",
    ];
    for (k, (n, x)) in names.iter().zip(t).enumerate() {
        println!(
            "{n:>16}: {:8.3} ms mean, {:8.3} ms fastest",
            1e3 * x / reps as f64,
            1e3 * best[k]
        );
    }
}
