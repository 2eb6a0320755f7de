//! Group commit for device uploads: one thread merges the batches waiting for the writer in
//! one transaction, each batch all-or-nothing inside it.

use crate::{
    Error, Result,
    store::Store,
    sync::store::records::{Origin, Prepared, push},
};
use outpost_proto::wire::DocResult;

/// Group commit for uploads. Batches waiting for the writer are merged together in one
/// transaction (each batch stays all-or-nothing inside it), so a hundred devices syncing at
/// once cost a few commits, not a hundred; one thread owns the loop.
pub struct Ingest {
    jobs: std::sync::Mutex<std::sync::mpsc::Sender<Job>>,
}

struct Job {
    origin: Origin,
    docs: Vec<Prepared>,
    reply: tokio::sync::oneshot::Sender<Result<Vec<DocResult>>>,
}

/// A group stops growing at this many documents, so one commit stays short.
const GROUP_DOCS: usize = 4000;

impl Ingest {
    pub fn start(store: std::sync::Arc<Store>) -> Ingest {
        let (tx, rx) = std::sync::mpsc::channel::<Job>();
        std::thread::Builder::new()
            .name("sync-ingest".into())
            .spawn(move || {
                while let Ok(first) = rx.recv() {
                    let mut group = vec![first];
                    let mut docs = group[0].docs.len();
                    while docs < GROUP_DOCS {
                        match rx.try_recv() {
                            Ok(job) => {
                                docs += job.docs.len();
                                group.push(job);
                            }
                            Err(_) => break,
                        }
                    }
                    // Each batch runs inside a savepoint: one that fails rolls back alone and
                    // only its device hears of it. A panic (a bug) fails the group, not the
                    // thread. Every batch gets an answer, whatever stops the group.
                    let (replies, work): (Vec<_>, Vec<_>) = group
                        .into_iter()
                        .map(|j| (j.reply, (j.origin, j.docs)))
                        .unzip();
                    let mut answers = Vec::new();
                    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                        store.write(|tx| {
                            for (origin, docs) in work {
                                // A full disk fails the whole transaction: every batch of
                                // the group hears it.
                                answers.push(tx.all_or_nothing(|tx| push(tx, &origin, docs))?);
                            }
                            Ok(())
                        })
                    }));
                    let full = matches!(outcome, Ok(Err(Error::StorageFull)));
                    let failed = match outcome {
                        Ok(Ok(())) => None,
                        Ok(Err(e)) => Some(e.to_string()),
                        Err(_) => Some("a bug stopped the merge (panic)".to_string()),
                    };
                    if let Some(why) = &failed {
                        tracing::error!(error = %why, "merging an upload group failed");
                    }
                    let mut answers = answers.into_iter();
                    for reply in replies {
                        let answer = match (&failed, answers.next()) {
                            (Some(_), _) if full => Err(Error::StorageFull),
                            (Some(why), _) => Err(Error::Internal(why.clone())),
                            (None, Some(Err(e))) => {
                                tracing::error!(error = %e, "merging an upload batch failed");
                                Err(e)
                            }
                            (None, Some(Ok(r))) => Ok(r),
                            (None, None) => Err(Error::Internal("the group ended early".into())),
                        };
                        let _ = reply.send(answer);
                    }
                }
            })
            .expect("the ingest thread starts");
        Ingest {
            jobs: std::sync::Mutex::new(tx),
        }
    }

    /// Queues a prepared batch and waits for its results.
    pub async fn submit(&self, origin: Origin, docs: Vec<Prepared>) -> Result<Vec<DocResult>> {
        let (reply, answer) = tokio::sync::oneshot::channel();
        self.jobs
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .send(Job {
                origin,
                docs,
                reply,
            })
            .map_err(|_| Error::Internal("the ingest thread stopped".into()))?;
        answer
            .await
            .map_err(|_| Error::Internal("the ingest thread dropped a batch".into()))?
    }
}
