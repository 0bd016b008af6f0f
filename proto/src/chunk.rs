//! Vectors on the wire: cut into chunks of at most [`CHUNK_VALUES`] values
//! (1 MiB), put back together only if every value arrives exactly once.

use crate::v1::TensorChunk;

/// Values per chunk: 1 MiB of f32, far below [`crate::MAX_MESSAGE_BYTES`].
pub const CHUNK_VALUES: usize = 256 * 1024;

/// Splits `values` into chunks tagged with `task_id`.
pub fn split(task_id: u64, values: &[f32]) -> impl Iterator<Item = TensorChunk> + '_ {
    let total_len = values.len() as u64;
    // An empty vector still travels as one (empty) chunk so the receiver
    // learns that it is complete.
    let pieces = values.len().div_ceil(CHUNK_VALUES).max(1);
    (0..pieces).map(move |i| {
        let start = (i * CHUNK_VALUES).min(values.len());
        let end = ((i + 1) * CHUNK_VALUES).min(values.len());
        TensorChunk {
            task_id,
            offset: start as u64,
            total_len,
            values: values[start..end].to_vec(),
        }
    })
}

/// Why a chunk was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChunkError {
    #[error("chunk belongs to task {got}, expected task {expected}")]
    WrongTask { expected: u64, got: u64 },
    #[error("chunk announces a vector of {got} values, expected {expected}")]
    WrongLength { expected: u64, got: u64 },
    #[error("chunk at offset {offset} with {len} values does not continue the vector at {next}")]
    OutOfOrder { offset: u64, len: usize, next: u64 },
    #[error("chunk of {len} values exceeds the limit of {CHUNK_VALUES}")]
    TooLarge { len: usize },
}

/// Reassembles one vector of a known task and length. Chunks must arrive in
/// order (one gRPC stream keeps order), so a gap or overlap is an error.
#[derive(Debug)]
pub struct Assembler {
    task_id: u64,
    expected_len: u64,
    values: Vec<f32>,
}

impl Assembler {
    pub fn new(task_id: u64, expected_len: u64) -> Self {
        Assembler {
            task_id,
            expected_len,
            values: Vec::new(),
        }
    }

    /// Adds a chunk; returns the whole vector once the last value arrived.
    pub fn push(&mut self, chunk: TensorChunk) -> Result<Option<Vec<f32>>, ChunkError> {
        if chunk.task_id != self.task_id {
            return Err(ChunkError::WrongTask {
                expected: self.task_id,
                got: chunk.task_id,
            });
        }
        if chunk.total_len != self.expected_len {
            return Err(ChunkError::WrongLength {
                expected: self.expected_len,
                got: chunk.total_len,
            });
        }
        if chunk.values.len() > CHUNK_VALUES {
            return Err(ChunkError::TooLarge {
                len: chunk.values.len(),
            });
        }
        let next = self.values.len() as u64;
        let fits = chunk.offset == next
            && next + chunk.values.len() as u64 <= self.expected_len
            && (!chunk.values.is_empty() || self.expected_len == 0);
        if !fits {
            return Err(ChunkError::OutOfOrder {
                offset: chunk.offset,
                len: chunk.values.len(),
                next,
            });
        }
        if self.values.is_empty() {
            // The announced length is bounded by the caller's expectation,
            // never by the peer alone.
            self.values.reserve_exact(self.expected_len as usize);
        }
        self.values.extend_from_slice(&chunk.values);
        if self.values.len() as u64 == self.expected_len {
            Ok(Some(std::mem::take(&mut self.values)))
        } else {
            Ok(None)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_then_assemble_is_identity() {
        for len in [0, 1, CHUNK_VALUES - 1, CHUNK_VALUES, 2 * CHUNK_VALUES + 7] {
            let values: Vec<f32> = (0..len).map(|i| i as f32 * 0.5).collect();
            let mut asm = Assembler::new(9, len as u64);
            let mut out = None;
            for chunk in split(9, &values) {
                assert!(out.is_none(), "vector completed before its last chunk");
                out = asm.push(chunk).unwrap();
            }
            assert_eq!(out.unwrap(), values);
        }
    }

    #[test]
    fn refuses_foreign_task_wrong_length_and_gaps() {
        let values = vec![1.0f32; CHUNK_VALUES + 3];
        let chunks: Vec<_> = split(1, &values).collect();
        let mut asm = Assembler::new(2, values.len() as u64);
        assert_eq!(
            asm.push(chunks[0].clone()),
            Err(ChunkError::WrongTask {
                expected: 2,
                got: 1
            })
        );
        let mut asm = Assembler::new(1, 5);
        assert!(matches!(
            asm.push(chunks[0].clone()),
            Err(ChunkError::WrongLength { .. })
        ));
        let mut asm = Assembler::new(1, values.len() as u64);
        assert!(matches!(
            asm.push(chunks[1].clone()),
            Err(ChunkError::OutOfOrder { .. })
        ));
        asm.push(chunks[0].clone()).unwrap();
        assert!(matches!(
            asm.push(chunks[0].clone()),
            Err(ChunkError::OutOfOrder { .. })
        ));
    }
}
