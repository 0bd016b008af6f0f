//! Durable coordinator state: the global model after every round (and a
//! server optimiser's state beside it), the round history and the queue,
//! written through the storage layer
//! ([`Disk`]) so that a crash at any moment leaves either the old or the
//! new state on disk. The one file that is appended, `history.jsonl`, may
//! end in a line torn by a crash: it is cut when read and before the next
//! append (the round it described is rolled forward from the audit log).

use std::path::{Path, PathBuf};

use fedsoc_durable::Disk;

use serde::{Deserialize, Serialize};

use crate::error::CoordinatorError;
use crate::optimizer::{OptimizerState, ServerOptimizer};
use crate::round::{Dropout, RoundReport, model_sha256};

/// One line of `history.jsonl`.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct RoundRecord {
    pub round: u64,
    #[serde(default)]
    pub kind: crate::kind::RoundKind,
    pub included: Vec<String>,
    pub dropped: Vec<(String, String)>,
    pub samples: u64,
    pub mean_loss: f32,
    pub model_sha256: String,
}

impl From<&RoundReport> for RoundRecord {
    fn from(r: &RoundReport) -> Self {
        RoundRecord {
            round: r.round,
            kind: r.kind,
            included: r.included.clone(),
            dropped: r
                .dropped
                .iter()
                .map(
                    |Dropout {
                         participant,
                         reason,
                     }| (participant.clone(), reason.clone()),
                )
                .collect(),
            samples: r.samples,
            mean_loss: r.mean_loss,
            model_sha256: r.model_sha256.clone(),
        }
    }
}

/// `state.json`: which round is the latest complete one.
#[derive(Debug, Serialize, Deserialize)]
struct Head {
    round: u64,
    model_sha256: String,
    num_params: usize,
    /// The optimiser state after `round` (absent: FedAvg, or no training
    /// step yet; and in folders from before server optimisers).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    optimizer: Option<HeadOptimizer>,
}

/// The optimiser state file a head names.
#[derive(Debug, Serialize, Deserialize)]
struct HeadOptimizer {
    /// "fedavgm" or "fedadam": how many vectors the file holds.
    name: String,
    steps: u64,
    /// SHA-256 of the file's bytes (the same bytes as the log's blob).
    sha256: String,
}

/// A server optimiser's state as the store keeps it.
#[derive(Clone, Debug, PartialEq)]
pub struct StoredOptimizer {
    /// "fedavgm" or "fedadam".
    pub name: String,
    pub state: OptimizerState,
}

/// The latest complete round as the store holds it.
#[derive(Clone, Debug, PartialEq)]
pub struct StoredHead {
    pub round: u64,
    pub model: Vec<f32>,
    /// The optimiser state after `round`, if the strategy keeps one and
    /// has stepped.
    pub optimizer: Option<StoredOptimizer>,
}

/// `queue.json`: how far data scientists asked training to go. Rounds
/// queued = `target_round` − the completed round; a restart keeps them.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Queue {
    pub target_round: u64,
    /// Why the queue stopped by itself (too many failed attempts), until
    /// a data scientist starts rounds again.
    #[serde(default)]
    pub halted: Option<String>,
    /// Queued rounds that are not training rounds, by round number.
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub kinds: std::collections::BTreeMap<u64, crate::kind::RoundKind>,
}

/// The coordinator's storage folder.
#[derive(Clone, Debug)]
pub struct Store {
    dir: PathBuf,
    disk: Disk,
}

impl Store {
    pub fn open(dir: &Path) -> Result<Self, CoordinatorError> {
        Self::open_on(dir, Disk::real())
    }

    /// [`Store::open`], writing through `disk`.
    pub fn open_on(dir: &Path, disk: Disk) -> Result<Self, CoordinatorError> {
        disk.create_dir_all(&dir.join("models"))
            .map_err(|e| storage(dir, e))?;
        Ok(Store {
            dir: dir.to_path_buf(),
            disk,
        })
    }

    pub fn disk(&self) -> &Disk {
        &self.disk
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// File of the global model after `round` (round 0: the initial model).
    pub fn model_path(&self, round: u64) -> PathBuf {
        self.dir
            .join("models")
            .join(format!("round-{round:06}.f32"))
    }

    /// File of the server optimiser's state after `round` (f64 LE, as
    /// the audit log's state blob).
    pub fn optimizer_path(&self, round: u64) -> PathBuf {
        self.dir
            .join("models")
            .join(format!("round-{round:06}.opt"))
    }

    /// Records a completed round: model and optimiser state first, history
    /// second, head last, so the head never points at a file that is not
    /// fully on disk; the head is the one write that moves the store to
    /// the new round, model and state together. A round already in the
    /// history (a crash after the history line but before the head) is not
    /// written twice.
    pub fn save_round(&self, report: &RoundReport) -> Result<(), CoordinatorError> {
        self.save_model(report.round, &report.model)?;
        let optimizer = report.optimizer.as_deref();
        if let Some(stored) = optimizer {
            self.write_atomic(&self.optimizer_path(report.round), &stored.state.to_bytes())?;
        }
        let bytes = self.history_bytes()?;
        let whole = whole_lines(&bytes);
        if self
            .parse_history(&bytes[..whole])?
            .last()
            .is_some_and(|r| r.round >= report.round)
        {
            return self.write_head(report.round, &report.model, optimizer);
        }
        let mut line = serde_json::to_string(&RoundRecord::from(report))
            .map_err(|e| CoordinatorError::Internal(e.to_string()))?;
        line.push('\n');
        let history = self.history_path();
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&history)
            .map_err(|e| storage(&history, e))?;
        if bytes.len() != whole {
            // A line torn by a crash: its round is rolled forward from the log.
            self.disk
                .truncate(&file, &history, whole as u64)
                .map_err(|e| storage(&history, e))?;
        }
        self.disk
            .append(&mut file, &history, line.as_bytes())
            .map_err(|e| storage(&history, e))?;
        self.write_head(report.round, &report.model, optimizer)
    }

    /// Saves the initial model (atomically) and makes it the head. No
    /// optimiser state: it starts at zeros with the first training round.
    pub fn save_initial(&self, model: &[f32]) -> Result<(), CoordinatorError> {
        self.save_model(0, model)?;
        self.write_head(0, model, None)
    }

    fn save_model(&self, round: u64, model: &[f32]) -> Result<(), CoordinatorError> {
        let bytes: Vec<u8> = model.iter().flat_map(|v| v.to_le_bytes()).collect();
        self.write_atomic(&self.model_path(round), &bytes)
    }

    fn write_head(
        &self,
        round: u64,
        model: &[f32],
        optimizer: Option<&StoredOptimizer>,
    ) -> Result<(), CoordinatorError> {
        let head = Head {
            round,
            model_sha256: model_sha256(model),
            num_params: model.len(),
            optimizer: optimizer.map(|o| HeadOptimizer {
                name: o.name.clone(),
                steps: o.state.steps,
                sha256: o.state.sha256(),
            }),
        };
        let json = serde_json::to_vec_pretty(&head)
            .map_err(|e| CoordinatorError::Internal(e.to_string()))?;
        self.write_atomic(&self.dir.join("state.json"), &json)
    }

    /// The latest complete round, its model and optimiser state, each
    /// checked against its hash in the head; `None` for a fresh folder.
    pub fn load_head(&self) -> Result<Option<StoredHead>, CoordinatorError> {
        let path = self.dir.join("state.json");
        let bytes = match std::fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(storage(&path, e)),
        };
        let head: Head = serde_json::from_slice(&bytes).map_err(|e| CoordinatorError::Storage {
            path: path.clone(),
            reason: format!(
                "unreadable ({e}); restore it from a backup or start a new storage folder"
            ),
        })?;
        let model_path = self.model_path(head.round);
        let raw = std::fs::read(&model_path).map_err(|e| storage(&model_path, e))?;
        if raw.len() != head.num_params * 4 {
            return Err(CoordinatorError::Storage {
                path: model_path,
                reason: format!(
                    "holds {} bytes, expected {}",
                    raw.len(),
                    head.num_params * 4
                ),
            });
        }
        let model: Vec<f32> = raw
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect();
        if model_sha256(&model) != head.model_sha256 {
            return Err(CoordinatorError::Storage {
                path: model_path,
                reason: "does not match the hash recorded in state.json".into(),
            });
        }
        let optimizer = match &head.optimizer {
            Some(o) => Some(self.load_optimizer(head.round, head.num_params, o)?),
            None => None,
        };
        Ok(Some(StoredHead {
            round: head.round,
            model,
            optimizer,
        }))
    }

    /// The optimiser state file of `round`, checked against the head.
    fn load_optimizer(
        &self,
        round: u64,
        num_params: usize,
        head: &HeadOptimizer,
    ) -> Result<StoredOptimizer, CoordinatorError> {
        let path = self.optimizer_path(round);
        let fail = |reason: String| CoordinatorError::Storage {
            path: path.clone(),
            reason: format!(
                "{reason}; the server optimiser's state cannot be trusted: restore the storage \
                 folder from a backup taken with its audit/ folder"
            ),
        };
        let vectors = ServerOptimizer::state_vectors_of(&head.name)
            .filter(|k| *k > 0)
            .ok_or_else(|| {
                fail(format!(
                    "state.json names optimiser {:?}, which keeps no state this build knows",
                    head.name
                ))
            })?;
        let raw = std::fs::read(&path).map_err(|e| fail(e.to_string()))?;
        let state = OptimizerState::from_bytes(vectors, num_params, head.steps, &raw)
            .map_err(|e| fail(format!("{} state {e}", head.name)))?;
        if state.sha256() != head.sha256 {
            return Err(fail(
                "does not match the hash recorded in state.json".to_string(),
            ));
        }
        Ok(StoredOptimizer {
            name: head.name.clone(),
            state,
        })
    }

    /// The round queue, or `None` in a folder that never had one.
    pub fn load_queue(&self) -> Result<Option<Queue>, CoordinatorError> {
        let path = self.dir.join("queue.json");
        match std::fs::read(&path) {
            Ok(bytes) => {
                serde_json::from_slice(&bytes)
                    .map(Some)
                    .map_err(|e| CoordinatorError::Storage {
                        path,
                        reason: format!("unreadable ({e}); delete it to start with an empty queue"),
                    })
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(storage(&path, e)),
        }
    }

    pub fn save_queue(&self, queue: &Queue) -> Result<(), CoordinatorError> {
        let json = serde_json::to_vec_pretty(queue)
            .map_err(|e| CoordinatorError::Internal(e.to_string()))?;
        self.write_atomic(&self.dir.join("queue.json"), &json)
    }

    fn history_path(&self) -> PathBuf {
        self.dir.join("history.jsonl")
    }

    /// The history's bytes (none for a folder that has none yet).
    fn history_bytes(&self) -> Result<Vec<u8>, CoordinatorError> {
        let path = self.history_path();
        match std::fs::read(&path) {
            Ok(bytes) => Ok(bytes),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
            Err(e) => Err(storage(&path, e)),
        }
    }

    fn write_atomic(&self, path: &Path, bytes: &[u8]) -> Result<(), CoordinatorError> {
        self.disk.replace(path, bytes).map_err(|e| storage(path, e))
    }

    /// Every recorded round, oldest first (a line torn by a crash is left out).
    pub fn history(&self) -> Result<Vec<RoundRecord>, CoordinatorError> {
        let bytes = self.history_bytes()?;
        self.parse_history(&bytes[..whole_lines(&bytes)])
    }

    /// The records in the whole lines `bytes`.
    fn parse_history(&self, bytes: &[u8]) -> Result<Vec<RoundRecord>, CoordinatorError> {
        let path = self.history_path();
        let text = std::str::from_utf8(bytes).map_err(|e| CoordinatorError::Storage {
            path: path.clone(),
            reason: format!("not UTF-8 ({e}); restore it from a backup"),
        })?;
        text.lines()
            .filter(|l| !l.trim().is_empty())
            .enumerate()
            .map(|(i, line)| {
                serde_json::from_str(line).map_err(|e| CoordinatorError::Storage {
                    path: path.clone(),
                    reason: format!("line {}: {e}", i + 1),
                })
            })
            .collect()
    }
}

/// Bytes up to and including the last newline.
fn whole_lines(bytes: &[u8]) -> usize {
    bytes.iter().rposition(|b| *b == b'\n').map_or(0, |i| i + 1)
}

fn storage(path: &Path, e: std::io::Error) -> CoordinatorError {
    CoordinatorError::Storage {
        path: path.to_path_buf(),
        reason: e.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    fn report(round: u64, model: Vec<f32>) -> RoundReport {
        RoundReport {
            round,
            included: vec!["a".into()],
            dropped: vec![Dropout {
                participant: "b".into(),
                reason: "disconnected".into(),
            }],
            samples: 10,
            mean_loss: 0.5,
            model_sha256: model_sha256(&model),
            model: Arc::new(model),
            stats: Default::default(),
            receipt_entry: None,
            receipts: Vec::new(),
            kind: Default::default(),
            conclusion: None,
            optimizer: None,
        }
    }

    #[test]
    fn saves_and_reloads_head_and_history() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        assert!(store.load_head().unwrap().is_none());
        store.save_initial(&[0.0, 1.0]).unwrap();
        store.save_round(&report(1, vec![0.5, 1.5])).unwrap();
        let head = store.load_head().unwrap().unwrap();
        assert_eq!((head.round, head.model), (1, vec![0.5, 1.5]));
        assert_eq!(head.optimizer, None);
        let history = store.history().unwrap();
        assert_eq!(history.len(), 1);
        assert_eq!(
            history[0].dropped,
            vec![("b".into(), "disconnected".into())]
        );
    }

    #[test]
    fn corrupted_model_is_reported_not_loaded() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        store.save_round(&report(1, vec![0.5, 1.5])).unwrap();
        std::fs::write(store.model_path(1), 7.0f32.to_le_bytes().repeat(2)).unwrap();
        let err = store.load_head().unwrap_err().to_string();
        assert!(
            err.contains("round-000001.f32") && err.contains("hash"),
            "{err}"
        );
    }

    fn adam_state(steps: u64) -> Arc<StoredOptimizer> {
        Arc::new(StoredOptimizer {
            name: "fedadam".into(),
            state: OptimizerState {
                steps,
                vectors: vec![vec![0.25, -0.5], vec![0.0625, 0.25]],
            },
        })
    }

    #[test]
    fn the_optimiser_state_is_saved_and_reloaded_with_its_round() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        store.save_initial(&[0.0, 1.0]).unwrap();
        let mut r1 = report(1, vec![0.5, 1.5]);
        r1.optimizer = Some(adam_state(1));
        store.save_round(&r1).unwrap();
        let head = store.load_head().unwrap().unwrap();
        assert_eq!(head.optimizer.as_ref(), r1.optimizer.as_deref());
        assert_eq!(
            std::fs::read(store.optimizer_path(1)).unwrap(),
            adam_state(1).state.to_bytes()
        );
    }

    #[test]
    fn a_tampered_or_missing_optimiser_state_is_reported_not_loaded() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let mut r1 = report(1, vec![0.5, 1.5]);
        r1.optimizer = Some(adam_state(1));
        store.save_round(&r1).unwrap();
        let path = store.optimizer_path(1);
        let mut bytes = std::fs::read(&path).unwrap();
        bytes[3] ^= 0x10;
        std::fs::write(&path, &bytes).unwrap();
        let err = store.load_head().unwrap_err().to_string();
        assert!(
            err.contains("round-000001.opt") && err.contains("hash") && err.contains("backup"),
            "{err}"
        );
        std::fs::write(&path, &bytes[..8]).unwrap();
        let err = store.load_head().unwrap_err().to_string();
        assert!(err.contains("holds 8 bytes"), "{err}");
        std::fs::remove_file(&path).unwrap();
        assert!(store.load_head().is_err());
    }
}
