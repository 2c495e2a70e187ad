//! What one attempt at a lock, or at breaking one, comes to.

/// The outcome of one attempt at some lock.
#[derive(Debug)]
pub enum Try<H, S> {
    /// The lock is ours.
    Acquired(H),
    /// Someone else holds it; what we saw of it.
    Busy(S),
    /// It was there, then gone when we looked: try again at once.
    Vanished,
}

/// What a break did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Broken {
    /// The judged lock was removed.
    Removed,
    /// The lock is no longer the one judged (released, or taken anew):
    /// nothing was removed.
    Changed,
    /// Another breaker is at work; try again shortly.
    Busy,
}
