//! Claiming a data directory: persistent engines refuse to open a directory that holds
//! another engine's data or unrelated files, with an error naming what was found.

use std::path::Path;

use crate::{EngineError, Result};

/// Checks that `dir` belongs to the engine called `engine` (it holds `marker`, the
/// engine's main data file or folder) or is unused (missing, empty, or holding only
/// entries listed in `ignorable`, such as lock files or the scratch name of an
/// interrupted creation), creating it when missing.
///
/// Returns `true` when `marker` exists (an existing store to open), `false` for a
/// fresh directory. Fails with [`EngineError::Incompatible`] otherwise.
pub fn claim_directory(dir: &Path, engine: &str, marker: &str, ignorable: &[&str]) -> Result<bool> {
    if !dir.exists() {
        std::fs::create_dir_all(dir)?;
        return Ok(false);
    }
    if !dir.is_dir() {
        return Err(EngineError::Incompatible(format!(
            "{} is not a directory",
            dir.display()
        )));
    }
    if dir.join(marker).exists() {
        return Ok(true);
    }
    let mut found: Vec<String> = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let name = entry?.file_name().to_string_lossy().into_owned();
        if !ignorable.contains(&name.as_str()) {
            found.push(name);
        }
    }
    if found.is_empty() {
        return Ok(false);
    }
    found.sort();
    let shown = found.iter().take(5).cloned().collect::<Vec<_>>().join(", ");
    Err(EngineError::Incompatible(format!(
        "{} is not a {engine} engine directory: it has no {marker} but holds {shown}{} \
         (another engine's data, or unrelated files)",
        dir.display(),
        if found.len() > 5 { ", ..." } else { "" }
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fresh_ours_and_foreign_directories_are_told_apart() {
        let root = std::env::temp_dir().join(format!("ekv-claim-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        let dir = root.join("new");
        assert!(!claim_directory(&dir, "test", "data.db", &["LOCK"]).unwrap());
        assert!(dir.is_dir());
        std::fs::write(dir.join("LOCK"), b"").unwrap();
        assert!(!claim_directory(&dir, "test", "data.db", &["LOCK"]).unwrap());
        std::fs::write(dir.join("data.db"), b"").unwrap();
        assert!(claim_directory(&dir, "test", "data.db", &["LOCK"]).unwrap());
        let other = root.join("other");
        std::fs::create_dir_all(&other).unwrap();
        std::fs::write(other.join("CURRENT"), b"").unwrap();
        let err = claim_directory(&other, "test", "data.db", &[]).unwrap_err();
        assert!(
            matches!(&err, EngineError::Incompatible(m) if m.contains("CURRENT")),
            "{err}"
        );
        let _ = std::fs::remove_dir_all(&root);
    }
}
