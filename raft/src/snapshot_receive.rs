//! [`SnapshotReceiver`]: reassembles a snapshot sent in chunks ([`SnapshotChunk`]) in a
//! file, for openraft to install once the last chunk arrives.
//!
//! One transfer is received at a time. A chunk at offset 0 starts a new transfer (and
//! abandons any other); any other chunk must continue the transfer in progress (same
//! transfer id, at the offset received so far), or it is refused with
//! [`RemoteFailure::SnapshotMismatch`], after which the sender starts again from 0.

use std::path::PathBuf;
use std::sync::Arc;

use elastickv_engine_api::MvccEngine;
use tokio::io::{AsyncSeekExt, AsyncWriteExt};

use crate::network::{RemoteFailure, SnapshotChunk};
use crate::snapshot::SnapshotStore;
use crate::snapshot_file::SnapshotFile;
use crate::SnapshotMeta;

/// A transfer in progress.
struct Receiving {
    transfer: u64,
    meta: SnapshotMeta,
    file: SnapshotFile,
    path: PathBuf,
    received: u64,
}

/// Receives the snapshot chunks sent to one group.
pub(crate) struct SnapshotReceiver<E> {
    store: Arc<SnapshotStore<E>>,
    state: tokio::sync::Mutex<Option<Receiving>>,
}

fn io_failure(what: &str, e: std::io::Error) -> RemoteFailure {
    RemoteFailure::Raft(format!("receiving a snapshot: {what}: {e}"))
}

async fn discard(path: PathBuf) {
    if let Err(e) = tokio::fs::remove_file(&path).await {
        tracing::warn!(path = %path.display(), error = %e, "could not remove a snapshot part");
    }
}

impl<E: MvccEngine> SnapshotReceiver<E> {
    pub(crate) fn new(store: Arc<SnapshotStore<E>>) -> Self {
        SnapshotReceiver {
            store,
            state: tokio::sync::Mutex::new(None),
        }
    }

    /// Takes one chunk; returns the whole snapshot (its file positioned at the start)
    /// when `chunk` was the last.
    pub(crate) async fn receive(
        &self,
        chunk: SnapshotChunk,
    ) -> Result<Option<(SnapshotMeta, SnapshotFile)>, RemoteFailure> {
        let mut state = self.state.lock().await;
        if chunk.offset == 0 {
            if let Some(old) = state.take() {
                drop(old.file);
                discard(old.path).await;
            }
            let path = self.store.temp_path("recv");
            let file = SnapshotFile::create(&path)
                .await
                .map_err(|e| io_failure("create the file", e))?;
            *state = Some(Receiving {
                transfer: chunk.transfer,
                meta: chunk.meta.clone(),
                file,
                path,
                received: 0,
            });
        }
        let continues = state.as_ref().is_some_and(|r| {
            r.transfer == chunk.transfer && r.received == chunk.offset && r.meta == chunk.meta
        });
        if !continues {
            return Err(RemoteFailure::SnapshotMismatch);
        }
        let Some(receiving) = state.as_mut() else {
            return Err(RemoteFailure::SnapshotMismatch);
        };
        if let Err(e) = receiving.file.write_all(&chunk.data).await {
            if let Some(failed) = state.take() {
                drop(failed.file);
                discard(failed.path).await;
            }
            return Err(io_failure("write a chunk", e));
        }
        receiving.received += chunk.data.len() as u64;
        if !chunk.done {
            return Ok(None);
        }
        let Some(mut done) = state.take() else {
            return Err(RemoteFailure::SnapshotMismatch);
        };
        let finished = async {
            done.file.flush().await?;
            done.file.seek(std::io::SeekFrom::Start(0)).await?;
            Ok::<_, std::io::Error>(())
        }
        .await;
        match finished {
            Ok(()) => Ok(Some((done.meta, done.file))),
            Err(e) => {
                drop(done.file);
                discard(done.path).await;
                Err(io_failure("finish the file", e))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use elastickv_engine_mem::MemEngine;
    use openraft::vote::RaftLeaderId;
    use tokio::io::AsyncReadExt;

    use super::*;
    use crate::layout::Layout;
    use crate::{LeaderId, LogId, Vote};

    fn chunk(transfer: u64, index: u64, offset: u64, data: &[u8], done: bool) -> SnapshotChunk {
        SnapshotChunk {
            vote: Vote::new_committed(2, 1),
            meta: SnapshotMeta {
                last_log_id: Some(LogId::new(LeaderId::new(2, 1), index)),
                ..SnapshotMeta::default()
            },
            offset,
            data: data.to_vec(),
            done,
            transfer,
        }
    }

    async fn contents(mut file: SnapshotFile) -> Vec<u8> {
        let mut out = Vec::new();
        file.read_to_end(&mut out).await.expect("read");
        out
    }

    fn parts(dir: &std::path::Path) -> usize {
        std::fs::read_dir(dir)
            .expect("list")
            .filter(|e| {
                e.as_ref()
                    .is_ok_and(|e| e.path().extension().is_some_and(|x| x == "part"))
            })
            .count()
    }

    #[tokio::test]
    async fn chunks_must_continue_the_transfer_in_progress() {
        let dir = tempfile::tempdir().expect("temp dir");
        let engine = Arc::new(MemEngine::new());
        let store = SnapshotStore::open(dir.path(), engine, Layout::new(0)).expect("store");
        let receiver = SnapshotReceiver::new(Arc::new(store));
        let mismatch =
            |r: Result<_, RemoteFailure>| matches!(r, Err(RemoteFailure::SnapshotMismatch));

        // Nothing in progress: only offset 0 starts a transfer.
        assert!(mismatch(
            receiver.receive(chunk(1, 9, 3, b"def", false)).await
        ));
        assert!(receiver
            .receive(chunk(1, 9, 0, b"abc", false))
            .await
            .expect("first")
            .is_none());
        // Wrong offset, other transfer, other snapshot: refused, and the transfer goes on.
        assert!(mismatch(
            receiver.receive(chunk(1, 9, 2, b"xyz", false)).await
        ));
        assert!(mismatch(
            receiver.receive(chunk(2, 9, 3, b"xyz", false)).await
        ));
        assert!(mismatch(
            receiver.receive(chunk(1, 8, 3, b"xyz", false)).await
        ));
        let (meta, file) = receiver
            .receive(chunk(1, 9, 3, b"def", true))
            .await
            .expect("last")
            .expect("a whole snapshot");
        assert_eq!(meta.last_log_id.map(|id| id.index), Some(9));
        assert_eq!(contents(file).await, b"abcdef");

        // A new transfer from offset 0 abandons the one in progress (and its file).
        receiver
            .receive(chunk(3, 10, 0, b"old", false))
            .await
            .expect("old");
        receiver
            .receive(chunk(4, 11, 0, b"new", false))
            .await
            .expect("new");
        assert_eq!(
            parts(dir.path()),
            2,
            "the finished file and the new transfer's"
        );
        assert!(mismatch(
            receiver.receive(chunk(3, 10, 3, b"!!", true)).await
        ));
        let (meta, file) = receiver
            .receive(chunk(4, 11, 3, b"est", true))
            .await
            .expect("last")
            .expect("a whole snapshot");
        assert_eq!(meta.last_log_id.map(|id| id.index), Some(11));
        assert_eq!(contents(file).await, b"newest");
    }
}
