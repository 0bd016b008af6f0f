//! Which bundle is in force, and when a newer one arrives.
//!
//! `--bundle` names either one bundle folder (it holds `provenance.json`),
//! used for the whole watch, or the folder a participant agent drops each
//! verified bundle into (`bundles = "DIR"` in its config), as
//! `round-NNNNNN/`. In the second case the watch looks for a newer round
//! every [`BUNDLE_POLL`](crate::run::BUNDLE_POLL) and switches to it between two
//! batches of flows, so no flow is dropped and each alert names the model
//! that scored it. A bundle that fails verification is refused, reported,
//! and never tried again; the model in force stays.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use fedsoc_bundle::Bundle;

use crate::detector::{Detector, ThresholdChoice};
use crate::error::WatchError;

/// How bundles are trusted.
#[derive(Clone, Debug)]
pub enum Trust {
    /// Verified against the federation CA (PEM text).
    Ca(String),
    /// `--insecure-skip-verify`: read as they are, loudly.
    Unverified,
}

/// The bundle folder being followed.
#[derive(Debug)]
pub struct BundleWatch {
    dir: PathBuf,
    /// Whether `dir` is a drop folder of `round-NNNNNN/` bundles.
    drop_folder: bool,
    trust: Trust,
    threshold: ThresholdChoice,
    /// Round and folder of the bundle in force.
    current: (u64, PathBuf),
    /// The federation of the bundle in force; later bundles must be of it.
    federation: String,
    /// Folders refused once; never retried.
    refused: HashSet<PathBuf>,
}

/// What a look at the drop folder found.
#[derive(Debug)]
pub enum Newer {
    /// A newer bundle verified: switch to it.
    Loaded(Box<Detector>),
    /// A newer bundle was refused; the model in force stays.
    Refused { path: PathBuf, reason: String },
}

impl BundleWatch {
    /// Opens `dir` and loads its newest bundle that verifies. A drop folder
    /// with none that verifies is an error naming each refusal.
    pub fn open(
        dir: &Path,
        trust: Trust,
        threshold: ThresholdChoice,
    ) -> Result<(BundleWatch, Detector), WatchError> {
        let drop_folder = !dir.join(fedsoc_bundle::format::PROVENANCE_FILE).exists();
        let mut watch = BundleWatch {
            dir: dir.to_path_buf(),
            drop_folder,
            trust,
            threshold,
            current: (0, dir.to_path_buf()),
            federation: String::new(),
            refused: HashSet::new(),
        };
        if !drop_folder {
            let detector = watch.load(dir)?;
            watch.current = (detector.stamp().round, dir.to_path_buf());
            watch.federation = detector.stamp().federation.clone();
            return Ok((watch, detector));
        }
        let rounds = watch.rounds()?;
        if rounds.is_empty() {
            return Err(WatchError::Setup(format!(
                "{} holds neither a bundle (provenance.json) nor round-NNNNNN/ bundle folders; \
                 pass a bundle folder (`fedsoc model export --format bundle`) or the folder a \
                 participant keeps its bundles in (`bundles = \"DIR\"` in participant.toml)",
                dir.display()
            )));
        }
        let mut reasons = Vec::new();
        for (round, path) in rounds.into_iter().rev() {
            match watch.load(&path) {
                Ok(detector) => {
                    watch.current = (round, path);
                    watch.federation = detector.stamp().federation.clone();
                    return Ok((watch, detector));
                }
                Err(e) => {
                    reasons.push(format!("{}: {e}", path.display()));
                    watch.refused.insert(path);
                }
            }
        }
        Err(WatchError::Setup(format!(
            "no bundle in {} can be used:\n  {}",
            dir.display(),
            reasons.join("\n  ")
        )))
    }

    /// The folder of the bundle in force.
    pub fn current(&self) -> &Path {
        &self.current.1
    }

    /// Looks for a bundle of a later round than the one in force. `None`:
    /// nothing new (or `--bundle` named a single bundle).
    pub fn poll(&mut self) -> Option<Newer> {
        if !self.drop_folder {
            return None;
        }
        let rounds = match self.rounds() {
            Ok(rounds) => rounds,
            Err(e) => {
                tracing::warn!("cannot list bundles: {e}");
                return None;
            }
        };
        let (round, path) = rounds
            .into_iter()
            .rev()
            .find(|(round, path)| *round > self.current.0 && !self.refused.contains(path))?;
        match self.load(&path) {
            Ok(detector) if detector.stamp().federation != self.federation => {
                self.refused.insert(path.clone());
                Some(Newer::Refused {
                    path,
                    reason: format!(
                        "it is a model of federation {:?}, not of {:?} whose model is in force; \
                         keep each federation's bundles in their own folder",
                        detector.stamp().federation,
                        self.federation
                    ),
                })
            }
            Ok(detector) => {
                self.current = (round, path);
                Some(Newer::Loaded(Box::new(detector)))
            }
            Err(e) => {
                self.refused.insert(path.clone());
                Some(Newer::Refused {
                    path,
                    reason: e.to_string(),
                })
            }
        }
    }

    fn load(&self, path: &Path) -> Result<Detector, WatchError> {
        let bundle = Bundle::read(path).map_err(|source| WatchError::bundle(path, source))?;
        match &self.trust {
            Trust::Ca(ca) => {
                let verified = bundle
                    .verify(ca)
                    .map_err(|source| WatchError::bundle(path, source))?;
                Detector::verified(verified, path, self.threshold)
            }
            Trust::Unverified => Detector::unverified(&bundle, path, self.threshold),
        }
    }

    /// The drop folder's `round-NNNNNN` bundles, oldest first.
    fn rounds(&self) -> Result<Vec<(u64, PathBuf)>, WatchError> {
        let entries = std::fs::read_dir(&self.dir)
            .map_err(|e| WatchError::io("listing bundles in", &self.dir, e))?;
        let mut rounds: Vec<(u64, PathBuf)> = entries
            .filter_map(Result::ok)
            .filter_map(|entry| {
                let name = entry.file_name();
                let round = name.to_str()?.strip_prefix("round-")?.parse().ok()?;
                Some((round, entry.path()))
            })
            .collect();
        rounds.sort();
        Ok(rounds)
    }
}
