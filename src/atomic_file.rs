//! Every file edge-tl writes goes through here: heads, captured pictures, the embedding cache,
//! pulled models, feature-map grids, dreamed and adversarial pictures, fine-tuned models and
//! their manifests. Three things hold for all of them, so they are kept in one place:
//!
//! - A crash or a full disk never leaves a half-written file under the name the user asked
//!   for: the bytes go to a temporary file in the same folder, which is then renamed.
//! - Modes follow the user's wishes, not a constant: a new file gets `0666` less the umask (the
//!   kernel applies the umask when the temporary file is created, as for any program's files),
//!   and a file that replaces another keeps the other's mode (and, where allowed, its owner),
//!   so a head an administrator trains into the service's folder stays readable for the
//!   service user.
//! - Temporary files are named `.edge-tl-<pid>-<random>.part`, so a later run can tell the
//!   leftovers of a killed process from the files of a live one and remove them
//!   ([`clean_leftovers`]), which it does on its first write into a folder.

use std::collections::HashSet;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, SystemTime};

use image::{EncodableLayout, ImageBuffer, PixelWithColorType};
use tempfile::NamedTempFile;

/// Start of every temporary file's name; the pid and a random part follow.
const TEMP_PREFIX: &str = ".edge-tl-";
/// End of every temporary file's name.
const TEMP_SUFFIX: &str = ".part";

/// How long the temporary file of a process that no longer runs must have been unchanged before
/// it is removed. The pid check sees only this PID namespace: a process in a container sharing
/// the folder looks dead from here, but keeps its file's modification time fresh while it
/// writes; the longest pause of a live writer is a download's 60 s stall timeout.
pub const DEAD_LEFTOVER_AGE: Duration = Duration::from_secs(5 * 60);

/// How long a temporary file named by an edge-tl from before the pid was in the name
/// (`.pull-*.part`, `.capture-*.part`, `.edge-tl-*.part`; `.emb-*` in the cache folder) must
/// have been unchanged before it is removed: those names do not say whether their writer still
/// runs, and none of those writers paused for more than a minute.
pub const LEGACY_LEFTOVER_AGE: Duration = Duration::from_secs(60 * 60);

/// The folder a file at `path` is written in (`.` for a bare file name).
pub fn parent_dir(path: &Path) -> PathBuf {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

/// A new temporary file in `dir` for an atomic write: named `.edge-tl-<pid>-<random>.part`,
/// created with mode `0666` less the umask. The first time this process writes into `dir`, the
/// dead leftovers there are removed first ([`clean_leftovers`]). Finish with [`persist`] (or
/// `persist_noclobber` for a file that must never replace another); dropping it removes it.
pub fn temp_file_in(dir: &Path) -> std::io::Result<NamedTempFile> {
    if first_write_into(dir) {
        clean_leftovers(dir);
    }
    let prefix = format!("{TEMP_PREFIX}{}-", std::process::id());
    let mut builder = tempfile::Builder::new();
    builder.prefix(&prefix).suffix(TEMP_SUFFIX);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        // open(2) takes the umask off this mode, so the umask is never read or changed here:
        // changing it to read it would leave a window in which other threads create files
        // with the wrong mode.
        builder.permissions(std::fs::Permissions::from_mode(0o666));
    }
    builder.tempfile_in(dir)
}

/// Renames `tmp` to `path`, replacing what is there. A file already at `path` passes on its
/// permission bits, and its owner and group as far as this process may set them, so replacing
/// a 0640 file leaves a 0640 file.
pub fn persist(tmp: NamedTempFile, path: &Path) -> std::io::Result<()> {
    keep_mode_of(path, tmp.as_file())?;
    tmp.persist(path).map_err(|e| e.error)?;
    Ok(())
}

/// Gives `new` the mode (and, best effort, the owner) of the existing file `old`, if any.
fn keep_mode_of(old: &Path, new: &std::fs::File) -> std::io::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::{MetadataExt, PermissionsExt};
        let Ok(meta) = std::fs::metadata(old) else {
            return Ok(());
        };
        if !meta.is_file() {
            return Ok(());
        }
        let ours = new.metadata()?;
        if ours.uid() != meta.uid() || ours.gid() != meta.gid() {
            // Only root may give a file away; for anyone else this fails and the file stays
            // theirs, which the kept mode below still makes readable as before.
            let _ = std::os::unix::fs::fchown(new, Some(meta.uid()), Some(meta.gid()));
        }
        // Permission bits only: a set-id bit is never passed on to a new file.
        let mode = meta.permissions().mode() & 0o777;
        new.set_permissions(std::fs::Permissions::from_mode(mode))?;
    }
    #[cfg(not(unix))]
    let _ = (old, new);
    Ok(())
}

/// True the first time this process asks about `dir`: leftovers are cleaned once per folder
/// per process, not on every captured frame.
fn first_write_into(dir: &Path) -> bool {
    static CLEANED: OnceLock<Mutex<HashSet<PathBuf>>> = OnceLock::new();
    let mut cleaned = CLEANED
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    cleaned.insert(dir.to_path_buf())
}

/// What a file name says about a possible leftover temporary file.
#[derive(Debug, PartialEq, Eq)]
enum Leftover {
    /// `.edge-tl-<pid>-<random>.part`: written by process `pid`.
    Of(u32),
    /// A temporary name of an older edge-tl, without a pid.
    Legacy,
}

fn is_random(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_alphanumeric())
}

/// `<prefix><six letters or digits><suffix>`: how tempfile named the temporary files of older
/// edge-tl versions.
fn legacy_name(name: &str, prefix: &str, suffix: &str) -> bool {
    name.strip_prefix(prefix)
        .and_then(|r| r.strip_suffix(suffix))
        .is_some_and(|random| random.len() == 6 && is_random(random))
}

/// Recognises edge-tl's temporary file names. Of the older names only those ending in `.part`
/// count here, which is not how anyone names a file of their own; `.head-*` and `.emb-*` could
/// be (see [`clean_legacy_leftovers`] for edge-tl's own folders).
fn leftover(name: &str) -> Option<Leftover> {
    if let Some(rest) = name
        .strip_prefix(TEMP_PREFIX)
        .and_then(|r| r.strip_suffix(TEMP_SUFFIX))
    {
        return match rest.split_once('-') {
            Some((pid, random)) if is_random(random) && pid.bytes().all(|b| b.is_ascii_digit()) => {
                pid.parse::<u32>().ok().map(Leftover::Of)
            }
            None if legacy_name(rest, "", "") => Some(Leftover::Legacy),
            _ => None,
        };
    }
    [".pull-", ".capture-"]
        .iter()
        .any(|prefix| legacy_name(name, prefix, TEMP_SUFFIX))
        .then_some(Leftover::Legacy)
}

/// Whether process `pid` runs (in this PID namespace).
fn running(pid: u32) -> bool {
    Path::new("/proc").join(pid.to_string()).exists()
}

/// Removes the temporary files that killed edge-tl processes left in `dir` (a download cut
/// by SIGKILL leaves up to a model's size), returning how many went. A
/// `.edge-tl-<pid>-<random>.part` file goes when no process `<pid>` runs (no `/proc/<pid>`)
/// and it has not changed for [`DEAD_LEFTOVER_AGE`]; the files of running processes, this
/// one's included, are never touched, and without `/proc` no process is taken for dead.
/// Temporary files of older edge-tl versions (`.pull-*.part`, `.capture-*.part`,
/// `.edge-tl-*.part`), which carry no pid, go when unchanged for [`LEGACY_LEFTOVER_AGE`].
/// Errors are ignored: this is housekeeping before a write, which must not fail because of it.
pub fn clean_leftovers(dir: &Path) -> usize {
    let proc = Path::new("/proc/self").exists();
    let own = std::process::id();
    remove_unchanged(dir, |name| match leftover(name) {
        Some(Leftover::Of(pid)) if proc && pid != own && !running(pid) => Some(DEAD_LEFTOVER_AGE),
        Some(Leftover::Legacy) => Some(LEGACY_LEFTOVER_AGE),
        _ => None,
    })
}

/// Removes the temporary files of processes that no longer run from `dir` now, without
/// [`DEAD_LEFTOVER_AGE`]'s wait: for a folder one process holds a lock on (the review queue),
/// where no process elsewhere can be writing. Returns how many went.
pub fn clean_dead_leftovers_now(dir: &Path) -> usize {
    let proc = Path::new("/proc/self").exists();
    let own = std::process::id();
    remove_unchanged(dir, |name| match leftover(name) {
        Some(Leftover::Of(pid)) if proc && pid != own && !running(pid) => Some(Duration::ZERO),
        _ => None,
    })
}

/// Removes `dir/<prefix><six letters or digits>` files unchanged for [`LEGACY_LEFTOVER_AGE`]:
/// temporary files older edge-tl versions named without a `.part` suffix (`.emb-`, `.head-`).
/// Only for folders that are edge-tl's own (the embedding cache), where no user file is named
/// like that. Returns how many went.
pub fn clean_legacy_leftovers(dir: &Path, prefix: &str) -> usize {
    remove_unchanged(dir, |name| {
        legacy_name(name, prefix, "").then_some(LEGACY_LEFTOVER_AGE)
    })
}

/// Removes the regular files of `dir` for whose name `age` gives a time they have been
/// unchanged for at least.
fn remove_unchanged(dir: &Path, age: impl Fn(&str) -> Option<Duration>) -> usize {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    let now = SystemTime::now();
    let mut removed = 0;
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(unchanged_for) = name.to_str().and_then(&age) else {
            continue;
        };
        // The entry itself, not what a symbolic link points to.
        let Ok(meta) = entry.metadata() else { continue };
        let idle = meta
            .modified()
            .ok()
            .and_then(|m| now.duration_since(m).ok());
        if !meta.is_file() || idle.is_none_or(|d| d < unchanged_for) {
            continue;
        }
        let path = entry.path();
        if std::fs::remove_file(&path).is_ok() {
            log::info!(
                "{}: removed a temporary file left by an interrupted edge-tl",
                path.display()
            );
            removed += 1;
        }
    }
    removed
}

/// Moves the file `from` into `dir` as `<stem>.<ext>`, or `<stem>-1.<ext>`, `-2`, ... when
/// that name is taken: a file already in `dir` is never replaced. A hard link then an unlink,
/// so at no moment is the file under neither name (a crash in between leaves it under both);
/// across file systems, an atomic copy then the unlink. Returns the new path.
pub fn move_noclobber(from: &Path, dir: &Path, stem: &str, ext: &str) -> std::io::Result<PathBuf> {
    for n in 0u32.. {
        let name = match n {
            0 => format!("{stem}.{ext}"),
            n => format!("{stem}-{n}.{ext}"),
        };
        let to = dir.join(name);
        match std::fs::hard_link(from, &to) {
            Ok(()) => {
                std::fs::remove_file(from)?;
                return Ok(to);
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) if e.kind() == std::io::ErrorKind::CrossesDevices => {
                let mut tmp = temp_file_in(dir)?;
                std::io::copy(&mut std::fs::File::open(from)?, tmp.as_file_mut())?;
                tmp.as_file().sync_all()?;
                match tmp.persist_noclobber(&to) {
                    Ok(_) => {
                        std::fs::remove_file(from)?;
                        return Ok(to);
                    }
                    Err(e) if e.error.kind() == std::io::ErrorKind::AlreadyExists => continue,
                    Err(e) => return Err(e.error),
                }
            }
            Err(e) => return Err(e),
        }
    }
    unreachable!("some name is free")
}

/// Writes what `fill` writes to `path`, atomically.
pub fn write_with(
    path: &Path,
    fill: impl FnOnce(&mut std::io::BufWriter<&mut std::fs::File>) -> std::io::Result<()>,
) -> std::io::Result<()> {
    let mut tmp = temp_file_in(&parent_dir(path))?;
    {
        let mut w = std::io::BufWriter::new(tmp.as_file_mut());
        fill(&mut w)?;
        w.flush()?;
    }
    persist(tmp, path)
}

/// Writes bytes to `path`, atomically.
pub fn write(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    write_with(path, |w| w.write_all(bytes))
}

/// Writes a PNG atomically.
pub fn save_png<P>(img: &ImageBuffer<P, Vec<P::Subpixel>>, path: &Path) -> std::io::Result<()>
where
    P: PixelWithColorType,
    [P::Subpixel]: EncodableLayout,
{
    write_with(path, |w| {
        img.write_to(w, image::ImageFormat::Png)
            .map_err(std::io::Error::other)
    })
}

/// The process umask, for tests comparing modes, read from `/proc/self/status` because reading
/// it with umask(2) means changing it for every thread of the test binary for a moment.
#[cfg(test)]
pub(crate) fn test_umask() -> u32 {
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    let line = status
        .lines()
        .find_map(|l| l.strip_prefix("Umask:"))
        .expect("a Umask line (Linux 4.7 or later)");
    u32::from_str_radix(line.trim(), 8).expect("an octal umask")
}

/// Test helpers shared with the other modules' tests: leftovers of a dead and of a live process.
#[cfg(test)]
pub(crate) mod test_leftovers {
    use std::path::{Path, PathBuf};
    use std::time::{Duration, SystemTime};

    /// A pid no process has: above every kernel's pid_max.
    pub const DEAD_PID: u32 = 0x7fff_ffff;

    /// Creates `dir/name`, last modified two hours ago (older than every leftover age).
    pub fn old_file(dir: &Path, name: &str) -> PathBuf {
        let path = dir.join(name);
        let file = std::fs::File::create(&path).unwrap();
        file.set_modified(SystemTime::now() - Duration::from_secs(2 * 60 * 60))
            .unwrap();
        path
    }

    /// A dead process's leftover, this process's own temporary, both two hours old, and a fresh
    /// dead one; returns them in that order.
    pub fn plant(dir: &Path) -> [PathBuf; 3] {
        let own = std::process::id();
        [
            old_file(dir, &format!(".edge-tl-{DEAD_PID}-a1B2c3.part")),
            old_file(dir, &format!(".edge-tl-{own}-x9Y8z7.part")),
            {
                let p = dir.join(format!(".edge-tl-{DEAD_PID}-fresh1.part"));
                std::fs::write(&p, b"").unwrap();
                p
            },
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::test_leftovers::{old_file, plant};
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn mode(path: &Path) -> u32 {
        std::fs::metadata(path).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn temporary_names_tell_their_process() {
        assert_eq!(
            leftover(".edge-tl-123-AbC9xy.part"),
            Some(Leftover::Of(123))
        );
        assert_eq!(leftover(".edge-tl-AbC9xy.part"), Some(Leftover::Legacy));
        assert_eq!(leftover(".pull-AbC9xy.part"), Some(Leftover::Legacy));
        assert_eq!(leftover(".capture-AbC9xy.part"), Some(Leftover::Legacy));
        for not_ours in [
            ".head-AbC9xy",
            ".emb-AbC9xy",
            ".edge-tl-cache",
            ".edge-tl-12x-AbC9xy.part",
            ".edge-tl--AbC9xy.part",
            ".head-notes.txt",
            "cat.jpg",
            ".pull-AbC9xy",
        ] {
            assert_eq!(leftover(not_ours), None, "{not_ours}");
        }
        let dir = tempfile::tempdir().unwrap();
        let tmp = temp_file_in(dir.path()).unwrap();
        let name = tmp
            .path()
            .file_name()
            .unwrap()
            .to_str()
            .unwrap()
            .to_string();
        assert_eq!(
            leftover(&name),
            Some(Leftover::Of(std::process::id())),
            "{name}"
        );
    }

    #[test]
    fn the_first_write_removes_only_dead_old_leftovers() {
        let dir = tempfile::tempdir().unwrap();
        let [dead, live, fresh] = plant(dir.path());
        let legacy = old_file(dir.path(), ".pull-Qw3rty.part");
        let users = old_file(dir.path(), ".head-backup");
        write(&dir.path().join("out.bin"), b"x").unwrap();
        assert!(!dead.exists(), "a dead process's old leftover is removed");
        assert!(!legacy.exists(), "an old edge-tl's leftover is removed");
        assert!(live.exists(), "a running process's file is kept");
        assert!(fresh.exists(), "a recently changed file is kept");
        assert!(users.exists(), "a file edge-tl did not name is kept");
        assert_eq!(std::fs::read(dir.path().join("out.bin")).unwrap(), b"x");
        // A pid that runs (init) is never cleaned, however old its file.
        let init = old_file(dir.path(), ".edge-tl-1-a1B2c3.part");
        assert_eq!(clean_leftovers(dir.path()), 0);
        assert!(init.exists());
        // Suffix-less old names only where asked for (edge-tl's own folders).
        let emb = old_file(dir.path(), ".emb-Zx81Qa");
        assert_eq!(clean_legacy_leftovers(dir.path(), ".emb-"), 1);
        assert!(!emb.exists() && users.exists());
    }

    #[test]
    fn new_files_follow_the_umask_and_replaced_ones_keep_their_mode() {
        let dir = tempfile::tempdir().unwrap();
        let new = dir.path().join("new.bin");
        write(&new, b"1").unwrap();
        assert_eq!(mode(&new), 0o666 & !test_umask());
        let old = dir.path().join("old.bin");
        std::fs::write(&old, b"old").unwrap();
        std::fs::set_permissions(&old, std::fs::Permissions::from_mode(0o640)).unwrap();
        write(&old, b"new").unwrap();
        assert_eq!(mode(&old), 0o640);
        assert_eq!(std::fs::read(&old).unwrap(), b"new");
        // only the two files: no temporary left behind
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 2);
    }
}
