//! The identity file that marks a directory as a RocksDB engine directory, and the
//! check that refuses directories belonging to something else.

use std::fs::{self, File};
use std::io::Write;
use std::path::Path;

use elastickv_engine_api::{EngineError, Result};

/// The file that marks a directory as holding this engine's RocksDB database. It is
/// written (atomically, by rename) before the database is created, so a directory with
/// RocksDB files but without it belongs to someone else.
pub const LAYOUT_FILE: &str = "ELASTICKV-ROCKS";

/// The version of the on-disk layout (column families, generations) this build writes
/// and reads. A directory with a newer version is refused.
pub const LAYOUT_VERSION: u32 = 1;

const LAYOUT_PREFIX: &str = "elastickv-rocks layout ";
const TEMP_SUFFIX: &str = ".tmp";

/// Makes sure `dir` is this engine's directory: creates it (and its identity file) when
/// missing or empty, accepts it when its identity file names a layout this build reads,
/// and otherwise fails with [`EngineError::Incompatible`].
pub(crate) fn claim_directory(dir: &Path) -> Result<()> {
    if !dir.exists() {
        fs::create_dir_all(dir)?;
    } else if !dir.is_dir() {
        return Err(EngineError::Incompatible(format!(
            "{} is not a directory",
            dir.display()
        )));
    }
    let layout = dir.join(LAYOUT_FILE);
    if layout.is_file() {
        return check_layout(&fs::read_to_string(&layout)?, dir);
    }
    let temp_name = format!("{LAYOUT_FILE}{TEMP_SUFFIX}");
    let mut found: Vec<String> = Vec::new();
    for entry in fs::read_dir(dir)? {
        let name = entry?.file_name().to_string_lossy().into_owned();
        // A leftover of an identity file write interrupted by a crash.
        if name != temp_name {
            found.push(name);
        }
    }
    if !found.is_empty() {
        found.sort();
        let shown = found.iter().take(5).cloned().collect::<Vec<_>>().join(", ");
        return Err(EngineError::Incompatible(format!(
            "{} is not a rocksdb engine directory: it has no {LAYOUT_FILE} file but holds \
             {shown}{} (another engine's data, a foreign RocksDB database, or unrelated files)",
            dir.display(),
            if found.len() > 5 { ", ..." } else { "" }
        )));
    }
    write_layout(dir, &temp_name)
}

fn check_layout(content: &str, dir: &Path) -> Result<()> {
    let version = content
        .trim()
        .strip_prefix(LAYOUT_PREFIX)
        .and_then(|v| v.parse::<u32>().ok())
        .ok_or_else(|| {
            EngineError::Incompatible(format!(
                "{} holds a {LAYOUT_FILE} file this build cannot read",
                dir.display()
            ))
        })?;
    if version > LAYOUT_VERSION {
        return Err(EngineError::Incompatible(format!(
            "{} has rocksdb layout version {version}; this build reads version {LAYOUT_VERSION}",
            dir.display()
        )));
    }
    Ok(())
}

/// Writes the identity file durably: a temporary file, synced, renamed into place, and
/// the directory synced so the rename itself survives a power loss.
fn write_layout(dir: &Path, temp_name: &str) -> Result<()> {
    let temp = dir.join(temp_name);
    {
        let mut file = File::create(&temp)?;
        file.write_all(format!("{LAYOUT_PREFIX}{LAYOUT_VERSION}\n").as_bytes())?;
        file.sync_all()?;
    }
    fs::rename(&temp, dir.join(LAYOUT_FILE))?;
    File::open(dir)?.sync_all()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout_versions_up_to_this_build_are_accepted() {
        let dir = Path::new("/x");
        assert!(check_layout("elastickv-rocks layout 1\n", dir).is_ok());
        assert!(matches!(
            check_layout("elastickv-rocks layout 2\n", dir),
            Err(EngineError::Incompatible(_))
        ));
        assert!(matches!(
            check_layout("something else", dir),
            Err(EngineError::Incompatible(_))
        ));
    }
}
