//! (filled in by the bundle work)
