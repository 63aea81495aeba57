//! The router: the current [`RouteTable`] snapshot behind an `ArcSwap`.
//! Readers never lock; the orchestrator swaps in a whole new table.

use std::sync::Arc;

use arc_swap::{ArcSwap, Guard};

use crate::RouteTable;

/// Shared handle to the current route table.
#[derive(Debug, Default)]
pub struct Router {
    table: ArcSwap<RouteTable>,
}

impl Router {
    /// A router serving `table`.
    pub fn new(table: RouteTable) -> Self {
        Self {
            table: ArcSwap::from_pointee(table),
        }
    }

    /// The current snapshot; cheap, lock-free.
    pub fn load(&self) -> Guard<Arc<RouteTable>> {
        self.table.load()
    }

    /// Replaces the table atomically: requests that already looked up a
    /// route finish with it, later ones see the new table.
    pub fn swap(&self, table: RouteTable) {
        self.table.store(Arc::new(table));
    }
}
