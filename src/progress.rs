//! How far a long job has got (embedding a dataset, downloading a model), told to whoever
//! shows it: the commands draw a progress bar, the service and the tests show nothing. The
//! library knows no terminal.

/// Receives progress; called from worker threads, so it must be `Sync`.
pub trait Progress: Sync {
    /// The size of the whole job (pictures, bytes), once known.
    fn set_total(&self, _total: u64) {}
    /// `n` more units done.
    fn advance(&self, _n: u64) {}
    /// The job ended (done or failed).
    fn finish(&self) {}
}

/// Shows nothing.
#[derive(Debug, Clone, Copy, Default)]
pub struct Silent;

impl Progress for Silent {}
