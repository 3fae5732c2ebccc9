//! Noticing that a file a server reads its settings or credentials from has changed.
//!
//! The gateway and the launcher both keep what is in force equal to its sources without a
//! restart. A file is noticed through its *directory*, not the file itself: editors and
//! `mv` replace the file, and a Kubernetes Secret volume swaps its `..data` symlink by a
//! rename in that directory. Events of other files in a directory are dropped (the home
//! also holds the pid record and the database, written all the time), and a burst of
//! events (temporary file, rename, symlink swap) is answered once.

use std::path::{Path, PathBuf};
use std::time::Duration;

use notify::Watcher;
use tokio::sync::mpsc;

/// How long a burst of events is given to settle before it is answered.
const SETTLE: Duration = Duration::from_millis(250);

/// The files and directories to watch.
#[derive(Debug, Clone, Default)]
pub struct Sources {
    /// Files noticed by name in their directory.
    files: Vec<PathBuf>,
    /// Directories where a change to any entry counts (a secret file's directory, where
    /// the file may also appear later: `$CREDENTIALS_DIRECTORY`).
    dirs: Vec<PathBuf>,
}

impl Sources {
    /// Nothing to watch yet.
    pub fn new() -> Sources {
        Sources::default()
    }

    /// Also notices changes of `file`.
    #[must_use]
    pub fn file(mut self, file: impl Into<PathBuf>) -> Sources {
        self.files.push(file.into());
        self
    }

    /// Also notices a change of any entry of each of `dirs`.
    #[must_use]
    pub fn dirs(mut self, dirs: impl IntoIterator<Item = PathBuf>) -> Sources {
        self.dirs.extend(dirs);
        self
    }

    /// Whether an event about `path` concerns these sources.
    fn concerns(&self, path: &Path) -> bool {
        self.files.iter().any(|f| f == path)
            || path.parent().is_some_and(|d| self.dirs.iter().any(|w| w == d))
    }

    /// Every directory to watch, each once.
    fn directories(&self) -> Vec<PathBuf> {
        let mut all: Vec<PathBuf> = self
            .files
            .iter()
            .filter_map(|f| f.parent().map(ToOwned::to_owned))
            .chain(self.dirs.iter().cloned())
            .collect();
        all.sort();
        all.dedup();
        all
    }
}

/// A directory that could not be watched: changes there are not noticed.
#[derive(Debug)]
pub struct Unwatched {
    /// The directory.
    pub dir: PathBuf,
    /// Why.
    pub error: notify::Error,
}

/// A running watch; dropping it stops watching.
pub struct SourceWatch {
    _watcher: notify::RecommendedWatcher,
    changes: mpsc::Receiver<()>,
}

impl SourceWatch {
    /// Starts watching `sources`. Fails when the platform offers no file watching; the
    /// directories that could not be watched (missing, no permission, no inotify watch
    /// left) are returned for the caller to report, and the others are watched.
    pub fn start(sources: Sources) -> Result<(SourceWatch, Vec<Unwatched>), notify::Error> {
        let (tx, changes) = mpsc::channel::<()>(8);
        let directories = sources.directories();
        let mut watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
            let Ok(event) = event else { return };
            if !event.kind.is_access() && event.paths.iter().any(|p| sources.concerns(p)) {
                // Full means a change is already pending: nothing is lost.
                let _ = tx.try_send(());
            }
        })?;
        let mut unwatched = Vec::new();
        for dir in directories {
            if let Err(error) = watcher.watch(&dir, notify::RecursiveMode::NonRecursive) {
                unwatched.push(Unwatched { dir, error });
            }
        }
        Ok((SourceWatch { _watcher: watcher, changes }, unwatched))
    }

    /// Waits for the next change, once a burst of events has settled.
    pub async fn changed(&mut self) {
        if self.changes.recv().await.is_none() {
            // The watcher lives as long as `self`: its sender is never dropped first.
            std::future::pending::<()>().await;
        }
        tokio::time::sleep(SETTLE).await;
        while self.changes.try_recv().is_ok() {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_named_files_and_the_entries_of_watched_directories_count() {
        let sources = Sources::new().file("/home/c/config.json").dirs([PathBuf::from("/run/secrets")]);
        assert!(sources.concerns(Path::new("/home/c/config.json")));
        assert!(!sources.concerns(Path::new("/home/c/.picoclaw.pid")));
        assert!(!sources.concerns(Path::new("/home/c/state.db-wal")));
        assert!(sources.concerns(Path::new("/run/secrets/..data")));
        assert!(!sources.concerns(Path::new("/run/secrets/sub/token")));
        assert_eq!(sources.directories(), [PathBuf::from("/home/c"), PathBuf::from("/run/secrets")]);
    }

    #[tokio::test]
    async fn a_replaced_file_is_noticed_and_a_neighbour_is_not() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("config.json");
        std::fs::write(&file, "{}").unwrap();
        let (mut watch, unwatched) = SourceWatch::start(Sources::new().file(&file)).unwrap();
        assert!(unwatched.is_empty(), "{unwatched:?}");

        std::fs::write(dir.path().join(".picoclaw.pid"), "1").unwrap();
        let quiet = tokio::time::timeout(Duration::from_millis(600), watch.changed()).await;
        assert!(quiet.is_err(), "a neighbour's change was taken for the file's");

        let tmp = dir.path().join(".config.json.tmp");
        std::fs::write(&tmp, "{\"a\":1}").unwrap();
        std::fs::rename(&tmp, &file).unwrap();
        tokio::time::timeout(Duration::from_secs(5), watch.changed()).await.expect("the rename was noticed");
    }
}
