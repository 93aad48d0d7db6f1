//! A wrapper that keeps secrets out of logs: `Debug` is masked, there is no `Display`, and the
//! value comes out only through `expose`, so every place that reads a secret is grep-able.

use std::fmt;

/// A value that must never be logged: API keys as presented, signing secrets, key material.
#[derive(Clone)]
pub struct Secret<T>(T);

impl<T> Secret<T> {
    pub fn new(value: T) -> Self {
        Secret(value)
    }

    /// The secret itself. Call it only where the value is needed (hashing, MAC, showing a new
    /// key to its owner once), never on a logging path.
    pub fn expose(&self) -> &T {
        &self.0
    }
}

impl<T> fmt::Debug for Secret<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_shows_the_value() {
        let secret = Secret::new("tk_0011223344556677_deadbeef".to_string());
        let shown = format!("{secret:?} {:?}", Some(&secret));
        assert!(!shown.contains("deadbeef"), "{shown}");
        assert!(shown.contains("Secret(***)"));
        assert_eq!(secret.expose(), "tk_0011223344556677_deadbeef");
    }
}
