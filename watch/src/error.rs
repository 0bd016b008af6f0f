//! [`WatchError`]: what stopped a watch, naming the problem and the fix.
//! Bad lines never stop a watch (they are counted and reported); these are
//! the errors a watch cannot go on after.

use std::io;
use std::path::{Path, PathBuf};

use fedsoc_bundle::BundleError;
use fedsoc_datasets::DatasetError;
use fedsoc_models::ModelError;

#[derive(Debug, thiserror::Error)]
pub enum WatchError {
    /// A flag, a file or a state that cannot be used, with what to do.
    #[error("{0}")]
    Setup(String),
    #[error("{what} {}: {source}", path.display())]
    Io {
        what: &'static str,
        path: PathBuf,
        source: io::Error,
    },
    #[error("bundle {}: {source}", path.display())]
    Bundle {
        path: PathBuf,
        source: Box<BundleError>,
    },
    #[error("the bundle's model cannot score: {0}")]
    Model(#[from] ModelError),
    #[error("the bundle's encoder cannot encode a flow: {0}")]
    Encoder(#[from] DatasetError),
}

impl WatchError {
    pub fn bundle(path: &Path, source: BundleError) -> Self {
        WatchError::Bundle {
            path: path.to_path_buf(),
            source: Box::new(source),
        }
    }

    pub fn io(what: &'static str, path: &Path, source: io::Error) -> Self {
        WatchError::Io {
            what,
            path: path.to_path_buf(),
            source,
        }
    }
}
