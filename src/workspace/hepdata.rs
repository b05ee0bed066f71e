//! HEPData likelihood archives: a `.tar.gz` (or `.tgz`, `.tar`) holding a
//! background-only workspace and a patchset of signal hypotheses, read where
//! a workspace or a patchset is read, without unpacking them first.
//!
//! `ARCHIVE` picks the archive's only workspace; an archive with several
//! (one per signal region) needs `ARCHIVE:MEMBER`, where MEMBER is a member's
//! path or a folder inside the archive. The patchset is the one beside the
//! chosen workspace. Members are recognised by their content (a workspace
//! has `channels`, a patchset `patches`), not by their names; macOS
//! metadata files (`._*`, `__MACOSX/`) are skipped.

use crate::error::{Error, Result};
use serde::Deserialize;
use serde::de::IgnoredAny;
use std::io::Read;
use std::path::{Path, PathBuf};

const SUFFIXES: [&str; 3] = [".tar.gz", ".tgz", ".tar"];

/// What a JSON member of an archive is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A pyhf workspace (has `channels`).
    Workspace,
    /// A pyhf patchset (has `patches`).
    PatchSet,
}

/// A workspace or patchset read from an archive.
#[derive(Debug, Clone)]
pub struct Member {
    /// `ARCHIVE:path/inside.json`, for messages.
    pub label: String,
    /// Path inside the archive.
    pub path: String,
    /// Its bytes.
    pub bytes: Vec<u8>,
    /// What it is.
    pub kind: Kind,
}

/// The archive and the member selector of `ARCHIVE[:MEMBER]`, when `path`
/// names an archive (by its suffix); `None` for any other path.
pub fn split(path: &Path) -> Option<(PathBuf, Option<String>)> {
    let s = path.to_str()?;
    let lower = s.to_ascii_lowercase();
    if SUFFIXES.iter().any(|x| lower.ends_with(x)) {
        return Some((path.to_path_buf(), None));
    }
    // ARCHIVE:MEMBER, unless a file of that whole name exists
    if path.exists() {
        return None;
    }
    SUFFIXES.iter().find_map(|x| {
        let at = lower.find(&format!("{x}:"))? + x.len();
        let member = s[at + 1..].trim_matches('/').trim_start_matches("./");
        Some((
            PathBuf::from(&s[..at]),
            (!member.is_empty()).then(|| member.to_string()),
        ))
    })
}

#[derive(Deserialize)]
struct Probe {
    channels: Option<IgnoredAny>,
    patches: Option<IgnoredAny>,
}

fn classify(bytes: &[u8]) -> Option<Kind> {
    let p: Probe = serde_json::from_slice(bytes).ok()?;
    match (p.channels.is_some(), p.patches.is_some()) {
        (true, false) => Some(Kind::Workspace),
        (false, true) => Some(Kind::PatchSet),
        _ => None,
    }
}

/// Every workspace and patchset in an archive, in archive order, and the
/// names of the other files (for messages).
pub fn members(archive: &Path) -> Result<(Vec<Member>, Vec<String>)> {
    let io = |e: std::io::Error| Error::Io {
        path: archive.to_path_buf(),
        source: e,
    };
    let bad = |what: String| Error::input(format!("{}: {what}", archive.display()));
    let bytes = super::json::read_bytes(archive)?;
    let limit = super::json::max_input_bytes();
    let reader: Box<dyn Read> = if bytes.starts_with(&[0x1f, 0x8b]) {
        Box::new(flate2::read::GzDecoder::new(&bytes[..]))
    } else {
        Box::new(&bytes[..])
    };
    let mut ar = tar::Archive::new(reader);
    let mut found = Vec::new();
    let mut others = Vec::new();
    let entries = ar
        .entries()
        .map_err(|e| bad(format!("not a readable tar archive: {e}")))?;
    for entry in entries {
        let mut entry =
            entry.map_err(|e| bad(format!("not a readable (gzipped) tar archive: {e}")))?;
        if !entry.header().entry_type().is_file() {
            continue;
        }
        let path = entry
            .path()
            .map_err(|e| bad(format!("a member has an unreadable name: {e}")))?
            .to_string_lossy()
            .trim_start_matches("./")
            .to_string();
        let file = path.rsplit('/').next().unwrap_or("");
        if file.starts_with("._") || path.split('/').any(|p| p == "__MACOSX") {
            continue;
        }
        if !path.to_ascii_lowercase().ends_with(".json") {
            others.push(path);
            continue;
        }
        if entry.size() > limit {
            return Err(bad(format!(
                "member {path} is larger than {} MiB (set GRADFIT_MAX_INPUT_MB to raise the limit)",
                limit >> 20
            )));
        }
        let mut buf = Vec::with_capacity(entry.size() as usize);
        entry.read_to_end(&mut buf).map_err(io)?;
        match classify(&buf) {
            Some(kind) => found.push(Member {
                label: format!("{}:{path}", archive.display()),
                path,
                bytes: buf,
                kind,
            }),
            None => others.push(path),
        }
    }
    Ok((found, others))
}

fn dir_of(p: &str) -> &str {
    p.rsplit_once('/').map(|(d, _)| d).unwrap_or("")
}

fn selected(m: &Member, sel: Option<&str>) -> bool {
    match sel {
        None => true,
        Some(s) => m.path == s || m.path.starts_with(&format!("{s}/")),
    }
}

fn list(ms: &[&Member]) -> String {
    ms.iter()
        .map(|m| m.path.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

/// A likelihood from an archive: its workspace and the patchset beside it.
#[derive(Debug, Clone)]
pub struct Likelihood {
    /// The background-only workspace.
    pub workspace: Member,
    /// The patchset beside it (same folder, or the archive's only one).
    pub patchset: Option<Member>,
}

/// Open `ARCHIVE[:MEMBER]` (see [`split`]) and pick its workspace and patchset.
pub fn open(archive: &Path, selector: Option<&str>) -> Result<Likelihood> {
    let (all, others) = members(archive)?;
    let name = archive.display();
    let in_sel: Vec<&Member> = all.iter().filter(|m| selected(m, selector)).collect();
    let wss: Vec<&Member> = in_sel
        .iter()
        .copied()
        .filter(|m| m.kind == Kind::Workspace)
        .collect();
    let ws = match wss.as_slice() {
        [one] => (*one).clone(),
        [] => {
            let shown: Vec<String> = all
                .iter()
                .map(|m| m.path.clone())
                .chain(others.iter().cloned())
                .take(20)
                .collect();
            return Err(Error::input(format!(
                "{name}: no pyhf workspace {}in the archive (its files: {})",
                selector
                    .map(|s| format!("under '{s}' "))
                    .unwrap_or_default(),
                if shown.is_empty() {
                    "none".to_string()
                } else {
                    shown.join(", ")
                }
            )));
        }
        many => {
            let dirs: Vec<&str> = many.iter().map(|m| dir_of(&m.path)).collect();
            return Err(Error::input(format!(
                "{name}: holds {} workspaces ({}); choose one as {name}:MEMBER, e.g. {name}:{}",
                many.len(),
                list(many),
                if dirs[0].is_empty() {
                    many[0].path.as_str()
                } else {
                    dirs[0]
                }
            )));
        }
    };
    let sets: Vec<&Member> = all.iter().filter(|m| m.kind == Kind::PatchSet).collect();
    let beside: Vec<&Member> = sets
        .iter()
        .copied()
        .filter(|m| dir_of(&m.path) == dir_of(&ws.path))
        .collect();
    let patchset = match (beside.as_slice(), sets.as_slice()) {
        ([one], _) => Some((*one).clone()),
        ([], [one]) => Some((*one).clone()),
        _ => None,
    };
    Ok(Likelihood {
        workspace: ws,
        patchset,
    })
}

/// The patchset of `ARCHIVE[:MEMBER]`: the member named, the one beside the
/// workspace chosen, or the archive's only one.
pub fn open_patchset(archive: &Path, selector: Option<&str>) -> Result<Member> {
    let (all, _) = members(archive)?;
    let name = archive.display();
    let sets: Vec<&Member> = all
        .iter()
        .filter(|m| m.kind == Kind::PatchSet && selected(m, selector))
        .collect();
    if let [one] = sets.as_slice() {
        return Ok((*one).clone());
    }
    if sets.is_empty() {
        return Err(Error::input(format!(
            "{name}: no pyhf patchset {}in the archive",
            selector
                .map(|s| format!("under '{s}' "))
                .unwrap_or_default()
        )));
    }
    // several: the one beside the workspace the selector picks
    if let Ok(l) = open(archive, selector)
        && let Some(p) = l.patchset
    {
        return Ok(p);
    }
    Err(Error::input(format!(
        "{name}: holds {} patchsets ({}); choose one as {name}:MEMBER",
        sets.len(),
        list(&sets)
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn archive_paths_split_into_archive_and_member() {
        let s = |p: &str| split(Path::new(p));
        assert_eq!(s("a/b.tar.gz"), Some((PathBuf::from("a/b.tar.gz"), None)));
        assert_eq!(s("b.TGZ"), Some((PathBuf::from("b.TGZ"), None)));
        assert_eq!(
            s("no-such/b.tar.gz:RegionA/BkgOnly.json"),
            Some((
                PathBuf::from("no-such/b.tar.gz"),
                Some("RegionA/BkgOnly.json".into())
            ))
        );
        assert_eq!(
            s("no-such/b.tar:./RegionA/"),
            Some((PathBuf::from("no-such/b.tar"), Some("RegionA".into())))
        );
        assert_eq!(s("ws.json"), None);
        assert_eq!(s("-"), None);
    }
}
