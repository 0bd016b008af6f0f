//! One bundle as one blob, for sending it (the coordinator to participants over gRPC).
//!
//! ```text
//! magic "FSBUNDLE" (8 bytes) ‖ version u16 LE = 1 ‖ file count u16 LE
//! then per file: name length u16 LE ‖ name (UTF-8) ‖ length u64 LE ‖ bytes
//! ```
//!
//! Files are the bundle folder's, by name; each known name at most once, the three required
//! ones present, nothing after the last file. A blob is decoded into the same [`Bundle`] a
//! folder reads into, and verified the same way.

use crate::Bundle;
use crate::error::BundleError;
use crate::format::{ENCODER_FILE, FILES, MODEL_FILE, PROVENANCE_FILE, THRESHOLD_FILE};

const MAGIC: &[u8; 8] = b"FSBUNDLE";
/// The container version this build writes and reads.
pub const CONTAINER_VERSION: u16 = 1;

impl Bundle {
    /// The bundle as one blob (see the module documentation).
    pub fn to_bytes(&self) -> Vec<u8> {
        let files = self.files();
        let size: usize = files.iter().map(|(n, b)| 10 + n.len() + b.len()).sum();
        let mut out = Vec::with_capacity(12 + size);
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&CONTAINER_VERSION.to_le_bytes());
        // At most four files, names of a few bytes: both fit their widths.
        out.extend_from_slice(&(files.len() as u16).to_le_bytes());
        for (name, bytes) in files {
            out.extend_from_slice(&(name.len() as u16).to_le_bytes());
            out.extend_from_slice(name.as_bytes());
            out.extend_from_slice(&(bytes.len() as u64).to_le_bytes());
            out.extend_from_slice(bytes);
        }
        out
    }

    /// Reads a blob written by [`Bundle::to_bytes`]; nothing is verified.
    pub fn from_bytes(bytes: &[u8]) -> Result<Bundle, BundleError> {
        let mut r = Reader { bytes, pos: 0 };
        if r.take(8, "the magic")? != MAGIC {
            return Err(malformed(
                "it does not start with FSBUNDLE: it is not a model bundle".into(),
            ));
        }
        let version = u16::from_le_bytes(r.array("the version")?);
        if version != CONTAINER_VERSION {
            return Err(malformed(format!(
                "container version {version}, this fedsoc reads {CONTAINER_VERSION}: upgrade fedsoc"
            )));
        }
        let count = u16::from_le_bytes(r.array("the file count")?);
        let mut files: Vec<(String, Vec<u8>)> = Vec::new();
        for _ in 0..count {
            let name_len = usize::from(u16::from_le_bytes(r.array("a name length")?));
            let name = String::from_utf8_lossy(r.take(name_len, "a file name")?).into_owned();
            if !FILES.contains(&name.as_str()) {
                return Err(malformed(format!("it holds an unknown file {name:?}")));
            }
            if files.iter().any(|(n, _)| *n == name) {
                return Err(malformed(format!("it holds {name} twice")));
            }
            let len = u64::from_le_bytes(r.array("a file length")?);
            let len =
                usize::try_from(len).map_err(|_| malformed(format!("{name} is too large")))?;
            files.push((name, r.take(len, "a file's bytes")?.to_vec()));
        }
        if r.pos != bytes.len() {
            return Err(malformed(format!(
                "{} unexpected bytes after the last file",
                bytes.len() - r.pos
            )));
        }
        let mut take = |file: &'static str| {
            files
                .iter()
                .position(|(n, _)| n == file)
                .map(|i| files.swap_remove(i).1)
        };
        let required = |file: &'static str, found: Option<Vec<u8>>| {
            found.ok_or_else(|| malformed(format!("it has no {file}")))
        };
        let provenance_json = required(PROVENANCE_FILE, take(PROVENANCE_FILE))?;
        let model_safetensors = required(MODEL_FILE, take(MODEL_FILE))?;
        let encoder_json = required(ENCODER_FILE, take(ENCODER_FILE))?;
        Ok(Bundle {
            provenance_json,
            model_safetensors,
            encoder_json,
            threshold_json: take(THRESHOLD_FILE),
        })
    }
}

fn malformed(reason: String) -> BundleError {
    BundleError::Container { reason }
}

struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize, what: &str) -> Result<&'a [u8], BundleError> {
        let rest = &self.bytes[self.pos..];
        if n > rest.len() {
            return Err(malformed(format!(
                "it is cut short: {what} needs {n} bytes at byte {}, {} remain",
                self.pos,
                rest.len()
            )));
        }
        self.pos += n;
        Ok(&rest[..n])
    }

    fn array<const N: usize>(&mut self, what: &str) -> Result<[u8; N], BundleError> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(N, what)?);
        Ok(out)
    }
}
