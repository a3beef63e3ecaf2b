//! Handles on tracked interfaces that skip the lookup by name. A reply names its interface, and
//! at 1,024 members the name's hash and the compare of the table's heap string were the engine's
//! largest per-reply cost (perf, scale section). A caller keeps the [`IfKey`] the engine gave it
//! and passes it instead; the engine takes it only while the interfaces it indexes have not
//! moved, and a stale or foreign key is refused so that the caller asks by name again.

use std::sync::atomic::{AtomicU64, Ordering};

/// Layouts of every engine in the process: each engine, and each removal in one (which moves the
/// indexes above it), takes a new one, so no key outlives its layout or crosses engines.
static LAYOUTS: AtomicU64 = AtomicU64::new(1);

/// A fresh layout number, never given before in this process.
pub(super) fn next_layout() -> u64 {
    LAYOUTS.fetch_add(1, Ordering::Relaxed)
}

/// One interface of one engine, as its index under one layout.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IfKey {
    pub(super) index: usize,
    pub(super) layout: u64,
}

impl IfKey {
    /// The key's position among the engine's interfaces, for a caller's own table indexed by
    /// it: an entry found there is the key's only while it holds the same whole key.
    #[must_use]
    pub fn index(self) -> usize {
        self.index
    }

    /// A key as an engine of layout `layout` would give for its interface `index`, for tests of
    /// callers' tables.
    #[cfg(test)]
    #[must_use]
    pub fn made_up(index: usize, layout: u64) -> Self {
        Self { index, layout }
    }
}

/// An interface, by name or by key.
#[derive(Clone, Copy, Debug)]
pub enum Iface<'a> {
    Name(&'a str),
    Key(IfKey),
}

impl<'a> From<&'a str> for Iface<'a> {
    fn from(name: &'a str) -> Self {
        Self::Name(name)
    }
}

impl From<IfKey> for Iface<'_> {
    fn from(key: IfKey) -> Self {
        Self::Key(key)
    }
}
