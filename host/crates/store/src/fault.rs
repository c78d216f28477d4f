//! What can go wrong inside a transaction, before it is said where: every
//! redb error converts into a [`Fault`] with `?`, and the store's `read` and
//! `write` map it once, with the database's path, to a [`StoreError`]
//! (damage, an incompatible version, or a plain database error).

use super::StoreError;
use std::path::Path;

pub(crate) enum Fault {
    Redb(redb::Error),
    Store(StoreError),
}

/// What a transaction's body returns.
pub(crate) type Tx<T> = std::result::Result<T, Fault>;

macro_rules! from_redb {
    ($($e:ty),*) => {
        $(impl From<$e> for Fault {
            fn from(e: $e) -> Self {
                Fault::Redb(e.into())
            }
        })*
    };
}

from_redb!(
    redb::Error,
    redb::TableError,
    redb::StorageError,
    redb::TransactionError,
    redb::CommitError,
    redb::DatabaseError
);

impl From<StoreError> for Fault {
    fn from(e: StoreError) -> Self {
        Fault::Store(e)
    }
}

impl Fault {
    /// The error as the store reports it, for the database at `path`.
    pub(crate) fn at(self, path: &Path) -> StoreError {
        match self {
            Fault::Redb(e) => super::classify(path, e),
            Fault::Store(e) => e,
        }
    }
}
