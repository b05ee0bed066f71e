//! The printed and JSON summaries of toy runs (`toys`, `merge`, `cls --toys`)
//! and their exit status where a toy CLs is undefined.

use super::OutputArgs;
use super::num;
use super::table::fmt;
use crate::error::Result;
use crate::infer::toys::{self, ToyRun, toy_cls};
use serde_json::{Value, json};

pub(super) fn toy_cls_json(c: &toys::ToyCls) -> Value {
    json!({
        "cls_obs": c.cls_obs.map(num).unwrap_or(Value::Null),
        "cls_exp": c.cls_exp.iter().map(|x| x.map(num).unwrap_or(Value::Null)).collect::<Vec<_>>(),
        "clsb_obs": num(c.clsb_obs),
        "clb_obs": num(c.clb_obs),
        "test_stat_obs": num(c.test_stat_obs),
        "n_toys": c.n_toys,
        "n_failed": c.n_failed,
        "n_failed_sig_bkg": c.n_failed_sig_bkg,
        "n_failed_bkg": c.n_failed_bkg,
    })
}

/// Which toy CLs values are undefined and why (no background-only toy
/// reached the statistic, so CLb is 0), or `None` when all are numbers.
pub(super) fn toy_cls_undefined(c: &toys::ToyCls) -> Option<String> {
    let labels = ["-2s", "-1s", "median", "+1s", "+2s"];
    let mut which: Vec<String> = Vec::new();
    if c.cls_obs.is_none() {
        which.push("observed".into());
    }
    for (x, l) in c.cls_exp.iter().zip(labels) {
        if x.is_none() {
            which.push(format!("expected {l}"));
        }
    }
    if which.is_empty() {
        return None;
    }
    Some(format!(
        "CLs {} undefined (written as null): no background-only toy has a test statistic at or \
         above the one tested, so CLb = 0 over {} toys (observed CLs+b = {}); run more toys or \
         test a smaller POI value",
        which.join(", "),
        c.n_toys,
        fmt(c.clsb_obs)
    ))
}

pub(super) fn opt(x: Option<f64>) -> String {
    x.map(fmt).unwrap_or_else(|| "-".into())
}

/// Print the summary of a toy run; for a whole run, why a CLs is undefined.
pub(super) fn summary(run: &ToyRun, json_out: bool) -> Result<Option<String>> {
    let whole = run.shard.is_none();
    let mut undefined = None;
    let mut v = json!({
        "mu": run.mu, "test_stat": run.test_stat, "seed": run.seed, "n_toys": run.n_toys,
        "shard": run.shard, "range": run.range, "test_stat_obs": num(run.test_stat_obs),
    });
    if whole {
        let c = toy_cls(run)?;
        v["cls"] = toy_cls_json(&c);
        undefined = toy_cls_undefined(&c);
    }
    let out = OutputArgs {
        json: json_out,
        output: None,
    };
    out.emit(&v, || {
        let mut s = format!(
            "toys mu = {} ({}) seed {}: toys [{}, {}) of {}{}\n",
            run.mu,
            run.test_stat,
            run.seed,
            run.range[0],
            run.range[1],
            run.n_toys,
            run.shard
                .map(|s| format!(" (shard {} of {})", s[0], s[1]))
                .unwrap_or_default()
        );
        if whole {
            let c = &v["cls"];
            s.push_str(&format!(
                "CLs obs {}  expected {}  ({} failed)\n",
                opt(c["cls_obs"].as_f64()),
                c["cls_exp"]
                    .as_array()
                    .map(|e| e
                        .iter()
                        .map(|x| opt(x.as_f64()))
                        .collect::<Vec<_>>()
                        .join(" "))
                    .unwrap_or_default(),
                c["n_failed"]
            ));
        }
        s
    })?;
    Ok(undefined)
}

/// Exit status of a toy command: 0, or (with a warning) `EXIT_NOT_CONVERGED`
/// where a CLs value is undefined.
pub(super) fn undefined_exit(undefined: Option<String>) -> Result<i32> {
    Ok(match undefined {
        Some(msg) => {
            eprintln!("warning: {msg}");
            super::EXIT_NOT_CONVERGED
        }
        None => 0,
    })
}
