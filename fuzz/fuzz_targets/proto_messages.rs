//! The gRPC stream messages both sides decode, and the chunk reassembly
//! they feed. Input: a mode byte (which side's stream), two bytes of the
//! model size the receiver expects, then length-delimited messages. Each
//! tensor chunk goes to a vector assembler, each secure-aggregation chunk
//! to a byte assembler sized by its first chunk, as the peers do.
#![no_main]

use fedsoc_proto::chunk::Assembler;
use fedsoc_proto::v1::{
    CoordinatorMessage, ParticipantMessage, SecAggChunk, TensorChunk, coordinator_message,
    participant_message,
};
use libfuzzer_sys::fuzz_target;
use prost::Message;

/// The largest secure-aggregation message the receiver accepts here.
const MAX_SECAGG: u64 = 1 << 24;

/// What one receiver holds between chunks.
struct Receiver {
    expected_len: u64,
    tensor: Option<Assembler<f32>>,
    secagg: Option<Assembler<u8>>,
}

impl Receiver {
    fn tensor(&mut self, chunk: TensorChunk) {
        let asm = self
            .tensor
            .get_or_insert_with(|| Assembler::new(chunk.task_id, self.expected_len));
        match asm.push(chunk) {
            Ok(Some(v)) => {
                assert_eq!(v.len() as u64, self.expected_len);
                self.tensor = None;
            }
            Ok(None) => {}
            Err(_) => self.tensor = None,
        }
    }

    fn secagg(&mut self, chunk: SecAggChunk) {
        if self.secagg.is_none() {
            match Assembler::bytes(chunk.task_id, &chunk, MAX_SECAGG) {
                Ok(a) => self.secagg = Some(a),
                Err(_) => return,
            }
        }
        let asm = self.secagg.as_mut().expect("set above");
        match asm.push_bytes(&chunk) {
            Ok(Some(v)) => {
                assert_eq!(v.len() as u64, chunk.total_len);
                self.secagg = None;
            }
            Ok(None) => {}
            Err(_) => self.secagg = None,
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let _ = ParticipantMessage::decode(data);
    let _ = CoordinatorMessage::decode(data);
    let [mode, hi, lo, rest @ ..] = data else {
        return;
    };
    let mut rx = Receiver {
        expected_len: u64::from(u16::from_be_bytes([*hi, *lo])),
        tensor: None,
        secagg: None,
    };
    let mut rest: &[u8] = rest;
    if mode & 1 == 0 {
        while let Ok(m) = ParticipantMessage::decode_length_delimited(&mut rest) {
            match m.body {
                Some(participant_message::Body::UpdateChunk(c)) => rx.tensor(c),
                Some(participant_message::Body::Secagg(c)) => rx.secagg(c),
                _ => {}
            }
        }
    } else {
        while let Ok(m) = CoordinatorMessage::decode_length_delimited(&mut rest) {
            match m.body {
                Some(coordinator_message::Body::ModelChunk(c)) => rx.tensor(c),
                Some(coordinator_message::Body::Secagg(c)) => rx.secagg(c),
                Some(coordinator_message::Body::TrainTask(t)) => {
                    // A new task restarts the model download.
                    rx.tensor = Some(Assembler::new(t.task_id, rx.expected_len));
                }
                _ => {}
            }
        }
    }
});
