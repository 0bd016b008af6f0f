//! Receiving a training task, sans-IO: messages in, a complete task out.
//!
//! A task is a `TrainTask` followed by the global model in chunks. The
//! intake checks that the model has the size the federation's model spec
//! implies before anything is trained on it.

use fedsoc_proto::chunk::Assembler;
use fedsoc_proto::v1::{TensorChunk, TrainTask};

use crate::error::ParticipantError;

/// A task whose global model has fully arrived.
#[derive(Debug, Clone)]
pub struct ReadyTask {
    pub task: TrainTask,
    pub global: Vec<f32>,
}

/// Collects the current task's model chunks.
#[derive(Debug, Default)]
pub struct TaskIntake {
    current: Option<(TrainTask, Assembler)>,
}

impl TaskIntake {
    /// Starts a new task; any half-received earlier task is abandoned.
    pub fn start(
        &mut self,
        task: TrainTask,
        expected_params: usize,
    ) -> Result<(), ParticipantError> {
        if task.num_params != expected_params as u64 {
            return Err(ParticipantError::Protocol(format!(
                "task {} announces a model of {} parameters, the federation's model has {}",
                task.task_id, task.num_params, expected_params
            )));
        }
        if task.epochs == 0 || task.batch_size == 0 {
            return Err(ParticipantError::Protocol(format!(
                "task {} asks for {} epochs of batch size {}; both must be at least 1",
                task.task_id, task.epochs, task.batch_size
            )));
        }
        let assembler = Assembler::new(task.task_id, task.num_params);
        self.current = Some((task, assembler));
        Ok(())
    }

    /// Adds a model chunk; returns the task once its model is complete.
    pub fn chunk(&mut self, chunk: TensorChunk) -> Result<Option<ReadyTask>, ParticipantError> {
        let Some((task, assembler)) = self.current.as_mut() else {
            return Err(ParticipantError::Protocol(
                "model chunk without a training task".into(),
            ));
        };
        match assembler.push(chunk) {
            Ok(Some(global)) => {
                let task = task.clone();
                self.current = None;
                Ok(Some(ReadyTask { task, global }))
            }
            Ok(None) => Ok(None),
            Err(e) => {
                self.current = None;
                Err(ParticipantError::Protocol(format!("global model: {e}")))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn task(id: u64, n: u64) -> TrainTask {
        TrainTask {
            round: 1,
            task_id: id,
            epochs: 1,
            batch_size: 8,
            learning_rate: 1e-3,
            seed: 0,
            num_params: n,
            deadline_ms: 1000,
            secure: None,
            ..TrainTask::default()
        }
    }

    #[test]
    fn assembles_a_task_and_refuses_wrong_sizes() {
        let mut intake = TaskIntake::default();
        assert!(intake.start(task(1, 3), 4).is_err());
        intake.start(task(1, 3), 3).unwrap();
        let mut ready = None;
        for c in fedsoc_proto::chunk::split(1, &[1.0, 2.0, 3.0]) {
            ready = intake.chunk(c).unwrap();
        }
        assert_eq!(ready.unwrap().global, vec![1.0, 2.0, 3.0]);
        assert!(
            intake
                .chunk(fedsoc_proto::chunk::split(1, &[1.0]).next().unwrap())
                .is_err()
        );
    }

    #[test]
    fn chunk_of_another_task_is_refused() {
        let mut intake = TaskIntake::default();
        intake.start(task(2, 1), 1).unwrap();
        let stale = fedsoc_proto::chunk::split(1, &[1.0]).next().unwrap();
        assert!(intake.chunk(stale).is_err());
    }
}
