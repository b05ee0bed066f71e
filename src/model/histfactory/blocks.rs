//! Which parameters are global and which belong to a local block of the
//! Hessian (see [`crate::model::layout`]).
//!
//! The basic rule: a parameter that touches one live bin is a local of that
//! bin; one that touches two or more is global. On models where that rule
//! leaves many globals (more than [`COMPONENT_MIN_GLOBALS`]; no published
//! workspace we have comes close), the dense global block would dominate
//! memory and time (cubic in its size), so blocks are grown over connected
//! sets of bins instead: multi-bin parameters are taken in order of how many
//! bins they touch (fewest first) and join the block of those bins, merging
//! the bins' blocks into one, as long as the merged block holds at most
//! [`MAX_BLOCK`] parameters; those that would make it larger stay global.
//! Two parameters that meet in a bin are then always in one block or at least
//! one of them is global, which is all the packed layout needs. For example,
//! 200 background samples each non-zero in their own 50 bins with 10 normsys
//! each become 200 blocks of 10 parameters, with only the signal strength
//! global (instead of 2,001 globals).

use super::HistFactoryModel;

/// Globals under the basic rule above which blocks grow over connected bins.
pub const COMPONENT_MIN_GLOBALS: usize = 512;

/// Largest block that connected bins may form.
pub const MAX_BLOCK: usize = 64;

/// Block key of each parameter (`None`: global), given for each parameter the
/// first live bin it touches (`usize::MAX`: none), whether it touches more
/// than one, and the first bin of a dead sample-bin it appears in.
pub(super) fn block_keys(
    m: &HistFactoryModel,
    first_bin: &[usize],
    multi: &[bool],
    dead_bin: &[usize],
) -> Vec<Option<usize>> {
    let basic = |i: usize| {
        if multi[i] {
            None
        } else if first_bin[i] != usize::MAX {
            Some(first_bin[i])
        } else if dead_bin[i] != usize::MAX {
            Some(dead_bin[i])
        } else {
            None
        }
    };
    let np = first_bin.len();
    if multi.iter().filter(|&&x| x).count() <= COMPONENT_MIN_GLOBALS {
        return (0..np).map(basic).collect();
    }
    // live bins touched by each multi-bin parameter
    let mut bins: Vec<Vec<u32>> = vec![Vec::new(); np];
    for s in m.sb.iter().filter(|s| !s.is_dead()) {
        let mult = m.mult[s.mult.0 as usize..s.mult.1 as usize].iter();
        let add = m.add[s.add.0 as usize..s.add.1 as usize].iter();
        for par in mult.map(|t| t.par).chain(add.map(|t| t.par)) {
            let v = &mut bins[par as usize];
            if multi[par as usize] && v.last() != Some(&s.bin) {
                v.push(s.bin);
            }
        }
    }
    for v in &mut bins {
        v.sort_unstable();
        v.dedup();
    }
    let mut uf = UnionFind::new(m.n_main);
    for i in 0..np {
        if !multi[i] && first_bin[i] != usize::MAX {
            uf.size[first_bin[i]] += 1;
        }
    }
    let mut order: Vec<usize> = (0..np).filter(|&i| multi[i]).collect();
    order.sort_by_key(|&i| (bins[i].len(), i));
    let mut global = vec![false; np];
    let mut roots: Vec<usize> = Vec::new();
    for &i in &order {
        roots.clear();
        roots.extend(bins[i].iter().map(|&b| uf.find(b as usize)));
        roots.sort_unstable();
        roots.dedup();
        let total: usize = 1 + roots.iter().map(|&r| uf.size[r]).sum::<usize>();
        if total > MAX_BLOCK {
            global[i] = true;
            continue;
        }
        let r0 = roots[0];
        for &r in &roots[1..] {
            uf.union_into(r, r0);
        }
        uf.size[r0] = total;
    }
    (0..np)
        .map(|i| {
            if multi[i] {
                (!global[i]).then(|| uf.find(bins[i][0] as usize))
            } else {
                basic(i).map(|b| uf.find(b))
            }
        })
        .collect()
}

/// Union-find over bins, with the number of parameters of each set at its root.
struct UnionFind {
    parent: Vec<usize>,
    size: Vec<usize>,
}

impl UnionFind {
    fn new(n: usize) -> Self {
        UnionFind {
            parent: (0..n).collect(),
            size: vec![0; n],
        }
    }

    fn find(&mut self, mut x: usize) -> usize {
        while self.parent[x] != x {
            self.parent[x] = self.parent[self.parent[x]];
            x = self.parent[x];
        }
        x
    }

    /// Attach root `r` under root `to` (sizes are set by the caller).
    fn union_into(&mut self, r: usize, to: usize) {
        self.parent[r] = to;
    }
}
