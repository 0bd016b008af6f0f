//! Lines from standard input, for `--stdin FORMAT`: a shipper (Vector,
//! Filebeat, kafkacat) pipes the sensor's log in. A reader thread moves the
//! bytes; the watch takes them as they come, with the same partial-line
//! holding as a followed file. A pipe has no position to save: the
//! shipper's own offsets decide what it sends again after a restart.

use std::io::Read;
use std::sync::mpsc::{Receiver, RecvTimeoutError, sync_channel};
use std::time::Duration;

use crate::files::FileId;
use crate::follow::{Input, Position, Progress};
use crate::lines::Splitter;

const CHUNK: usize = 64 * 1024;

/// Standard input, line by line.
pub struct StdinLines {
    chunks: Receiver<std::io::Result<Vec<u8>>>,
    lines: Splitter,
    started: bool,
    ended: bool,
    wait: Duration,
}

impl StdinLines {
    /// Starts reading standard input; `wait` is how long one read waits for
    /// bytes before reporting it is caught up.
    pub fn start(wait: Duration) -> StdinLines {
        Self::from_reader(std::io::stdin(), wait)
    }

    /// The same over any reader (tests).
    pub fn from_reader(mut reader: impl Read + Send + 'static, wait: Duration) -> StdinLines {
        let (tx, rx) = sync_channel(64);
        std::thread::spawn(move || {
            loop {
                let mut chunk = vec![0u8; CHUNK];
                match reader.read(&mut chunk) {
                    Ok(0) => break,
                    Ok(n) => {
                        chunk.truncate(n);
                        if tx.send(Ok(chunk)).is_err() {
                            break;
                        }
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                    Err(e) => {
                        let _ = tx.send(Err(e));
                        break;
                    }
                }
            }
        });
        StdinLines {
            chunks: rx,
            lines: Splitter::default(),
            started: false,
            ended: false,
            wait,
        }
    }

    /// Hands on what arrives within the wait, up to about `budget` bytes.
    pub fn read(
        &mut self,
        budget: usize,
        sink: &mut dyn FnMut(Input<'_>),
    ) -> std::io::Result<Progress> {
        let mut progress = Progress::default();
        if !self.started {
            self.started = true;
            sink(Input::NewFile {
                path: "-",
                at: self.position(),
                resumed: false,
            });
        }
        if self.ended {
            progress.ended = true;
            return Ok(progress);
        }
        let mut wait = self.wait;
        loop {
            match self.chunks.recv_timeout(wait) {
                Ok(Ok(chunk)) => {
                    progress.bytes += chunk.len();
                    self.lines.extend(&chunk);
                    self.lines.hand_on("-", sink);
                    if progress.bytes >= budget {
                        return Ok(progress);
                    }
                    wait = Duration::ZERO;
                }
                Ok(Err(e)) => return Err(e),
                Err(RecvTimeoutError::Timeout) => {
                    progress.caught_up = true;
                    return Ok(progress);
                }
                Err(RecvTimeoutError::Disconnected) => {
                    self.lines.finish("-", sink);
                    self.ended = true;
                    progress.caught_up = true;
                    progress.ended = true;
                    return Ok(progress);
                }
            }
        }
    }

    /// A pipe's "position": bytes and lines read, for reports only.
    pub fn position(&self) -> Position {
        Position {
            file: FileId {
                dev: 0,
                ino: 0,
                prefix_len: 0,
                prefix_sha256: String::new(),
            },
            offset: self.lines.offset,
            line: self.lines.line,
        }
    }
}
