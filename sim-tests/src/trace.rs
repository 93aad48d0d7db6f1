//! The run's trace: every fault, leader change, client answer and final replica state as a line,
//! hashed as it is written. Two runs of one seed must write the same lines, so their hashes are
//! equal; the last lines are kept to print when a run fails.

use std::collections::VecDeque;
use std::time::Duration;

/// Lines kept for a failure report.
const TAIL_LINES_MAX: usize = 60;

pub struct Trace {
    hasher: blake3::Hasher,
    lines: u64,
    tail: VecDeque<String>,
    verbose: bool,
}

impl Trace {
    pub fn new(verbose: bool) -> Self {
        Trace {
            hasher: blake3::Hasher::new(),
            lines: 0,
            tail: VecDeque::with_capacity(TAIL_LINES_MAX),
            verbose,
        }
    }

    /// Records `what` at simulated time `at`.
    pub fn record(&mut self, at: Duration, what: &str) {
        let line = format!("{:>8.3}s {what}", at.as_secs_f64());
        self.hasher.update(line.as_bytes());
        self.hasher.update(b"\n");
        self.lines += 1;
        if self.verbose {
            println!("{line}");
        }
        if self.tail.len() == TAIL_LINES_MAX {
            self.tail.pop_front();
        }
        self.tail.push_back(line);
    }

    pub fn hash(&self) -> [u8; 32] {
        *self.hasher.finalize().as_bytes()
    }

    pub fn lines(&self) -> u64 {
        self.lines
    }

    pub fn tail(&self) -> impl Iterator<Item = &String> {
        self.tail.iter()
    }
}
