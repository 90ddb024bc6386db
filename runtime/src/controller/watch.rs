//! The config file, watched: a save (in place, or an editor's rename into
//! place, or a Kubernetes ConfigMap's symlink swap) asks for a reload as
//! SIGHUP does. Only a change of the file's bytes counts, so reading it (or
//! touching it) reloads nothing.

use notify::{EventKind, RecursiveMode, Watcher as _};
use std::path::{Path, PathBuf};
use std::time::Duration;
use tokio::sync::mpsc;

/// Events closer together than this are one change (an editor's write,
/// rename and chmod).
const SETTLE: Duration = Duration::from_millis(200);

pub(super) struct ConfigWatch {
    path: PathBuf,
    /// What the file held when last seen.
    seen: Option<[u8; 32]>,
    events: mpsc::UnboundedReceiver<()>,
    _watcher: notify::RecommendedWatcher,
}

fn fingerprint(path: &Path) -> Option<[u8; 32]> {
    use sha2::Digest as _;
    std::fs::read(path)
        .ok()
        .map(|b| sha2::Sha256::digest(b).into())
}

/// Whether an event in the file's directory may have changed the file.
fn concerns(event: &notify::Event, name: &std::ffi::OsStr) -> bool {
    let kind = matches!(
        event.kind,
        EventKind::Create(_)
            | EventKind::Remove(_)
            | EventKind::Modify(notify::event::ModifyKind::Data(_))
            | EventKind::Modify(notify::event::ModifyKind::Name(_))
            | EventKind::Modify(notify::event::ModifyKind::Any)
            | EventKind::Access(notify::event::AccessKind::Close(
                notify::event::AccessMode::Write
            ))
    );
    // A ConfigMap volume swaps its `..data` symlink, not the file's name.
    kind && event.paths.iter().any(|p| {
        p.file_name()
            .is_some_and(|n| n == name || n.to_string_lossy().starts_with(".."))
    })
}

impl ConfigWatch {
    /// Watch `path`'s directory; None (with a warning) if the platform
    /// cannot, and then only SIGHUP reloads.
    pub(super) fn start(path: &Path) -> Option<Self> {
        let dir = match path.parent() {
            Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
            _ => PathBuf::from("."),
        };
        let name = path.file_name()?.to_owned();
        let (tx, events) = mpsc::unbounded_channel();
        let watcher = notify::recommended_watcher(move |e: notify::Result<notify::Event>| {
            if e.is_ok_and(|e| concerns(&e, &name)) {
                let _ = tx.send(());
            }
        });
        let mut watcher = match watcher {
            Ok(w) => w,
            Err(e) => {
                tracing::warn!(error = %e, "cannot watch the config file; reload it with SIGHUP");
                return None;
            }
        };
        if let Err(e) = watcher.watch(&dir, RecursiveMode::NonRecursive) {
            tracing::warn!(dir = %dir.display(), error = %e, "cannot watch the config file's directory; reload it with SIGHUP");
            return None;
        }
        Some(ConfigWatch {
            path: path.to_path_buf(),
            seen: fingerprint(path),
            events,
            _watcher: watcher,
        })
    }

    /// Wait until the file's bytes change (settled), and note them as seen.
    pub(super) async fn changed(&mut self) {
        loop {
            if self.events.recv().await.is_none() {
                return std::future::pending().await;
            }
            // Let the rest of this save arrive.
            tokio::time::sleep(SETTLE).await;
            while self.events.try_recv().is_ok() {}
            let now = fingerprint(&self.path);
            // A file gone for a moment (mid-rename) is not a change yet.
            if now.is_some() && now != self.seen {
                self.seen = now;
                return;
            }
        }
    }
}
