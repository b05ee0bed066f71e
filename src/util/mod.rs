//! Small utilities: atomic file output, special functions.

pub mod special;

use crate::error::{Error, Result};
use std::io::Write;
use std::path::Path;

/// Where an output to `path` really goes: the target of a symbolic link
/// (written through, the link stays), refusing anything that is not a
/// regular file (a device, a FIFO, a folder).
fn output_target(path: &Path) -> Result<std::path::PathBuf> {
    let meta = match std::fs::symlink_metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(path.to_path_buf()),
        Err(e) => {
            return Err(Error::Io {
                path: path.to_path_buf(),
                source: e,
            });
        }
    };
    if meta.file_type().is_symlink() {
        let t = std::fs::read_link(path).map_err(|e| Error::Io {
            path: path.to_path_buf(),
            source: e,
        })?;
        let t = match path.parent() {
            Some(d) if t.is_relative() => d.join(t),
            _ => t,
        };
        return match std::fs::metadata(&t) {
            Ok(m) if !m.is_file() => Err(not_regular(path)),
            _ => output_target(&t),
        };
    }
    if !meta.is_file() {
        return Err(not_regular(path));
    }
    Ok(path.to_path_buf())
}

fn not_regular(path: &Path) -> Error {
    Error::input(format!(
        "{}: exists and is not a regular file (a folder, device or pipe); refusing to replace it",
        path.display()
    ))
}

fn folder_of(path: &Path) -> std::path::PathBuf {
    match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => std::path::PathBuf::from("."),
    }
}

/// Prefix of gradfit's temporary files for `name`.
fn tmp_prefix(name: &str) -> String {
    format!(".{name}.tmp-")
}

/// Remove temporary files that an interrupted gradfit run left for this output
/// (`.NAME.tmp-PID` whose process no longer runs).
fn clean_stale(dir: &Path, name: &str) {
    let prefix = tmp_prefix(name);
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let f = e.file_name();
        let Some(pid) = f.to_str().and_then(|f| f.strip_prefix(&prefix)) else {
            continue;
        };
        let Ok(pid) = pid.parse::<u32>() else {
            continue;
        };
        let alive = pid == std::process::id() || Path::new(&format!("/proc/{pid}")).exists();
        if !alive && Path::new("/proc/self").exists() {
            let _ = std::fs::remove_file(e.path());
        }
    }
}

/// Check before long work that an output can be written to `path` (its folder
/// exists and is writable, and the path is not a special file).
pub fn check_writable(path: &Path) -> Result<()> {
    let target = output_target(path)?;
    let dir = folder_of(&target);
    let probe = dir.join(format!(".gradfit-probe-{}", std::process::id()));
    match std::fs::File::create(&probe) {
        Ok(_) => {
            let _ = std::fs::remove_file(&probe);
            Ok(())
        }
        Err(e) => Err(Error::input(format!(
            "{}: cannot write there (folder {}: {e})",
            path.display(),
            dir.display()
        ))),
    }
}

/// Write `bytes` to `path` atomically: a temporary file in the same folder, then a rename.
/// A reader never sees a half-written file, and an interrupted run leaves the old file intact.
/// A symbolic link is written through (its target is replaced); special files are refused.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let target = output_target(path)?;
    let dir = folder_of(&target);
    let name = target
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    clean_stale(&dir, &name);
    let tmp = dir.join(format!("{}{}", tmp_prefix(&name), std::process::id()));
    let fail = |e: std::io::Error| {
        let _ = std::fs::remove_file(&tmp);
        Error::Io {
            path: path.to_path_buf(),
            source: e,
        }
    };
    {
        let mut f = std::fs::File::create(&tmp).map_err(fail)?;
        f.write_all(bytes).map_err(fail)?;
        f.sync_all().map_err(fail)?;
    }
    std::fs::rename(&tmp, &target).map_err(fail)
}

/// Serialize `value` as pretty JSON and write it atomically.
pub fn write_json_atomic<T: serde::Serialize>(path: &Path, value: &T) -> Result<()> {
    let mut s = serde_json::to_string_pretty(value).map_err(|e| Error::input(e.to_string()))?;
    s.push('\n');
    write_atomic(path, s.as_bytes())
}
