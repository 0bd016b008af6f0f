//! Vectors on the wire: cut into chunks of at most [`CHUNK_VALUES`] values
//! (1 MiB), put back together only if every value arrives exactly once.

use crate::v1::{SecAggChunk, TensorChunk};

/// Values per chunk: 1 MiB of f32, far below [`crate::MAX_MESSAGE_BYTES`].
pub const CHUNK_VALUES: usize = 256 * 1024;

/// Bytes per secure-aggregation chunk.
pub const CHUNK_BYTES: usize = 1024 * 1024;

/// Splits an encoded secure-aggregation message into chunks.
pub fn split_bytes(
    task_id: u64,
    stage: u32,
    data: &[u8],
) -> impl Iterator<Item = SecAggChunk> + '_ {
    let total_len = data.len() as u64;
    let pieces = data.len().div_ceil(CHUNK_BYTES).max(1);
    (0..pieces).map(move |i| {
        let start = (i * CHUNK_BYTES).min(data.len());
        let end = ((i + 1) * CHUNK_BYTES).min(data.len());
        SecAggChunk {
            task_id,
            stage,
            offset: start as u64,
            total_len,
            data: data[start..end].to_vec(),
        }
    })
}

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
    #[error("chunk of {len} values exceeds the limit of {limit}")]
    TooLarge { len: usize, limit: usize },
    #[error("message of {len} bytes exceeds the limit of {limit}")]
    MessageTooLarge { len: u64, limit: u64 },
}

/// Reassembles one vector of a known task and length. Chunks must arrive in
/// order (one gRPC stream keeps order), so a gap or overlap is an error.
#[derive(Debug)]
pub struct Assembler<T = f32> {
    task_id: u64,
    expected_len: u64,
    chunk_limit: usize,
    values: Vec<T>,
}

impl Assembler<f32> {
    /// For a model or update vector of exactly `expected_len` values.
    pub fn new(task_id: u64, expected_len: u64) -> Self {
        Assembler::with_limits(task_id, expected_len, CHUNK_VALUES)
    }

    /// Adds a chunk; returns the whole vector once the last value arrived.
    pub fn push(&mut self, chunk: TensorChunk) -> Result<Option<Vec<f32>>, ChunkError> {
        self.push_parts(chunk.task_id, chunk.offset, chunk.total_len, &chunk.values)
    }
}

impl Assembler<u8> {
    /// For an encoded message whose length the first chunk announces, up to
    /// `max_len` bytes: a peer cannot make us reserve more.
    pub fn bytes(task_id: u64, first: &SecAggChunk, max_len: u64) -> Result<Self, ChunkError> {
        if first.total_len > max_len {
            return Err(ChunkError::MessageTooLarge {
                len: first.total_len,
                limit: max_len,
            });
        }
        Ok(Assembler::with_limits(
            task_id,
            first.total_len,
            CHUNK_BYTES,
        ))
    }

    /// Adds a chunk; returns the whole message once the last byte arrived.
    pub fn push_bytes(&mut self, chunk: &SecAggChunk) -> Result<Option<Vec<u8>>, ChunkError> {
        self.push_parts(chunk.task_id, chunk.offset, chunk.total_len, &chunk.data)
    }
}

impl<T: Copy> Assembler<T> {
    fn with_limits(task_id: u64, expected_len: u64, chunk_limit: usize) -> Self {
        Assembler {
            task_id,
            expected_len,
            chunk_limit,
            values: Vec::new(),
        }
    }

    fn push_parts(
        &mut self,
        task_id: u64,
        offset: u64,
        total_len: u64,
        values: &[T],
    ) -> Result<Option<Vec<T>>, ChunkError> {
        if task_id != self.task_id {
            return Err(ChunkError::WrongTask {
                expected: self.task_id,
                got: task_id,
            });
        }
        if total_len != self.expected_len {
            return Err(ChunkError::WrongLength {
                expected: self.expected_len,
                got: total_len,
            });
        }
        if values.len() > self.chunk_limit {
            return Err(ChunkError::TooLarge {
                len: values.len(),
                limit: self.chunk_limit,
            });
        }
        let next = self.values.len() as u64;
        let fits = offset == next
            && next + values.len() as u64 <= self.expected_len
            && (!values.is_empty() || self.expected_len == 0);
        if !fits {
            return Err(ChunkError::OutOfOrder {
                offset,
                len: values.len(),
                next,
            });
        }
        if self.values.is_empty() {
            // The announced length is bounded by the caller's expectation,
            // never by the peer alone.
            self.values.reserve_exact(self.expected_len as usize);
        }
        self.values.extend_from_slice(values);
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
    fn byte_messages_round_trip_and_are_bounded() {
        let data: Vec<u8> = (0..CHUNK_BYTES * 2 + 5).map(|i| i as u8).collect();
        let chunks: Vec<_> = split_bytes(4, 2, &data).collect();
        assert_eq!(chunks.len(), 3);
        let mut asm = Assembler::bytes(4, &chunks[0], data.len() as u64).unwrap();
        let mut out = None;
        for c in &chunks {
            out = asm.push_bytes(c).unwrap();
        }
        assert_eq!(out.unwrap(), data);
        assert!(matches!(
            Assembler::bytes(4, &chunks[0], 10),
            Err(ChunkError::MessageTooLarge { .. })
        ));
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
