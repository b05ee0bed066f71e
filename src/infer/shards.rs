//! Toy files: sealing a run with a digest of its records, checking a file
//! before it is used, and merging the shards of one run.

use super::toys::{TOY_FORMAT, ToyRecord, ToyRun};
use crate::error::{Error, Result};

impl ToyRun {
    /// The SHA-256 of the range and the records, as hex.
    pub fn compute_digest(&self) -> String {
        use sha2::{Digest, Sha256};
        let mut h = Sha256::new();
        let body = serde_json::to_vec(&(&self.range, &self.sig_bkg, &self.bkg))
            .expect("toy records serialise");
        h.update(&body);
        h.finalize().iter().map(|b| format!("{b:02x}")).collect()
    }

    /// Record the digest of the records (done when a run or merge ends).
    pub fn seal(&mut self) {
        self.records_digest = self.compute_digest();
    }

    /// Check a run read from a file (`name` labels errors): the format, a
    /// range inside the run, one record per toy of the range in each
    /// hypothesis, and the digest of the records.
    pub fn verify(&self, name: &str) -> Result<()> {
        let bad = |msg: String| Err(Error::input(format!("{name}: {msg}")));
        if self.format != TOY_FORMAT {
            return bad(format!("unknown toy file format '{}'", self.format));
        }
        let [lo, hi] = self.range;
        if lo > hi || hi > self.n_toys {
            return bad(format!(
                "toy range [{lo}, {hi}) does not lie in a run of {} toys",
                self.n_toys
            ));
        }
        for (what, recs) in [
            ("signal-plus-background", &self.sig_bkg),
            ("background", &self.bkg),
        ] {
            check_records(recs, lo, hi).or_else(|m| bad(format!("{what} toys: {m}")))?;
        }
        if self.records_digest.is_empty() {
            return bad(
                "the file has no records digest (written by an older gradfit, or edited)".into(),
            );
        }
        if self.records_digest != self.compute_digest() {
            return bad(
                "the records do not match the file's digest: the file was edited or damaged after it was written"
                    .into(),
            );
        }
        Ok(())
    }
}

/// One record per toy index of `[lo, hi)`, in order.
fn check_records(recs: &[ToyRecord], lo: u32, hi: u32) -> std::result::Result<(), String> {
    let want = (hi - lo) as usize;
    if recs.len() != want {
        return Err(format!(
            "{} records for the toys [{lo}, {hi}) ({want} expected)",
            recs.len()
        ));
    }
    for (k, r) in recs.iter().enumerate() {
        let expect = lo + k as u32;
        if r.toy != expect {
            return Err(format!(
                "record {k} is toy {} where toy {expect} belongs (duplicated, missing or reordered toys)",
                r.toy
            ));
        }
    }
    Ok(())
}

/// Merge shards of one run into the run an unsplit execution gives. Each
/// shard should have passed [`ToyRun::verify`]; `names` label them in errors.
pub fn merge(runs: Vec<ToyRun>, names: &[String]) -> Result<ToyRun> {
    let label = |k: usize| {
        names
            .get(k)
            .cloned()
            .unwrap_or_else(|| format!("shard #{}", k + 1))
    };
    let mut it = runs.into_iter().enumerate();
    let (_, mut first) = it.next().ok_or_else(|| Error::input("nothing to merge"))?;
    let mut covered = vec![(first.range, 0usize)];
    for (k, r) in it {
        let differs: Vec<&str> = [
            ("model digest", r.model_digest != first.model_digest),
            ("test statistic", r.test_stat != first.test_stat),
            ("mu", r.mu.to_bits() != first.mu.to_bits()),
            ("seed", r.seed != first.seed),
            ("number of toys", r.n_toys != first.n_toys),
            (
                "observed test statistic",
                r.test_stat_obs.to_bits() != first.test_stat_obs.to_bits(),
            ),
            (
                "signal-plus-background generation point",
                r.pars_sig_bkg != first.pars_sig_bkg,
            ),
            ("background generation point", r.pars_bkg != first.pars_bkg),
        ]
        .into_iter()
        .filter_map(|(w, d)| d.then_some(w))
        .collect();
        if !differs.is_empty() {
            return Err(Error::input(format!(
                "cannot merge: {} belongs to a different run than {} (they differ in: {})",
                label(k),
                label(0),
                differs.join(", ")
            )));
        }
        covered.push((r.range, k));
        first.sig_bkg.extend(r.sig_bkg);
        first.bkg.extend(r.bkg);
    }
    covered.sort();
    let mut next = 0;
    let mut prev: Option<usize> = None;
    for &([a, b], k) in &covered {
        if a > next {
            return Err(Error::input(format!(
                "cannot merge: toys [{next}, {a}) are missing (no shard covers them)"
            )));
        }
        if a < next {
            return Err(Error::input(format!(
                "cannot merge: toys [{a}, {}) are covered twice ({} and {})",
                next.min(b),
                prev.map(label).unwrap_or_default(),
                label(k)
            )));
        }
        next = b;
        prev = Some(k);
    }
    if next != first.n_toys {
        return Err(Error::input(format!(
            "cannot merge: toys [{next}, {}) are missing (no shard covers them)",
            first.n_toys
        )));
    }
    first.sig_bkg.sort_by_key(|r| r.toy);
    first.bkg.sort_by_key(|r| r.toy);
    first.shard = None;
    first.range = [0, first.n_toys];
    first.seal();
    Ok(first)
}
