//! `gradfit limit --from-toys FILE...`: a toy-based limit assembled from toy
//! files written by `gradfit toys` (one run per tested POI value, whole or in
//! shards), so that toys run as batch jobs give a limit.

use crate::error::{Error, Result};
use crate::infer::TestStat;
use crate::infer::shards::merge;
use crate::infer::toy_limit::GridPoint;
use crate::infer::toys::{ToyRun, toy_cls};
use std::path::{Path, PathBuf};

/// Read and verify one toy file (`name` labels it in messages).
pub fn read_run(f: &Path, name: &str) -> Result<ToyRun> {
    let v = crate::workspace::read_json(f)?;
    let run: ToyRun = serde_json::from_value(v)
        .map_err(|e| Error::input(format!("{name}: not a gradfit toy file: {e}")))?;
    run.verify(name)?;
    Ok(run)
}

/// CLs per tested POI value from `files`: shards of one value are merged
/// (and must cover all its toys); every file must come from the model with
/// `digest` and use `test_stat`. Sorted by POI value; at least two values.
pub fn grid_from_files(
    files: &[PathBuf],
    digest: &str,
    test_stat: TestStat,
) -> Result<Vec<GridPoint>> {
    // (mu bits) -> (runs, names), in the order first seen
    let mut groups: Vec<(u64, Vec<ToyRun>, Vec<String>)> = Vec::new();
    for f in files {
        let name = f.display().to_string();
        let run = read_run(f, &name)?;
        if run.model_digest != digest {
            return Err(Error::input(format!(
                "{name}: these toys were made from another model than the workspace given \
                 (model digest {} here, {} in the file); give the workspace, patches and \
                 options the toys were run with",
                short(digest),
                short(&run.model_digest)
            )));
        }
        if run.test_stat != test_stat {
            return Err(Error::input(format!(
                "{name}: these toys use the test statistic {}, the limit asks for {} (--test-stat)",
                run.test_stat, test_stat
            )));
        }
        let key = run.mu.to_bits();
        match groups.iter_mut().find(|g| g.0 == key) {
            Some(g) => {
                g.1.push(run);
                g.2.push(name);
            }
            None => groups.push((key, vec![run], vec![name])),
        }
    }
    let mut points = Vec::with_capacity(groups.len());
    for (_, runs, names) in groups {
        let mu = runs[0].mu;
        let run = merge(runs, &names)
            .map_err(|e| Error::input(format!("toys at mu = {mu} ({}): {e}", names.join(", "))))?;
        points.push(GridPoint {
            mu,
            cls: toy_cls(&run)?,
        });
    }
    points.sort_by(|x, y| x.mu.total_cmp(&y.mu));
    if points.len() < 2 {
        return Err(Error::input(format!(
            "--from-toys: toys at {} POI value(s); a limit needs toys at two or more (run \
             `gradfit toys --mu MU` for a grid of values)",
            points.len()
        )));
    }
    Ok(points)
}

fn short(d: &str) -> &str {
    &d[..d.len().min(12)]
}
