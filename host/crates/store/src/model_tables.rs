//! The store's model tables: recorded exchanges for replay, the response
//! cache, and conversation sessions.

use super::fault::Tx;
use super::{MODEL_CACHE, RECORDINGS, Result, SESSIONS, Store, json};
use crate::seal::seal;
use host_vocab::ChatMessage;
use redb::{ReadableTable, TableError};

/// Where one recorded exchange lives.
#[derive(Debug, Clone, Copy)]
pub struct RecordingKey<'a> {
    pub run: &'a str,
    pub stage: &'a str,
    /// blake3 of the alias and the full request.
    pub request: &'a str,
    /// Which of several identical requests in that stage (0-based).
    pub n: u32,
}

impl Store {
    /// Reads `f` from a table that may not exist yet (a fresh database that
    /// has not been written since it was created by an older version).
    fn read_optional<T>(
        &self,
        f: impl FnOnce(&redb::ReadTransaction) -> std::result::Result<Option<T>, redb::Error>,
    ) -> Result<Option<T>> {
        self.read(|txn| match f(txn) {
            Ok(v) => Ok(v),
            Err(redb::Error::TableDoesNotExist(_)) => Ok(None),
            Err(e) => Err(e.into()),
        })
    }

    pub fn recording(&self, key: RecordingKey<'_>) -> Result<Option<Vec<u8>>> {
        let value = self.read_optional(|txn| {
            let table = txn.open_table(RECORDINGS).map_err(table_error)?;
            Ok(table
                .get((key.run, key.stage, key.request, key.n))?
                .map(|v| v.value().to_vec()))
        })?;
        let at = format!("{}/{}/{}/{}", key.run, key.stage, key.request, key.n);
        self.unsealed("recordings", &at, value)
    }

    /// A raw value's payload, checked (see [`crate::seal`]).
    fn unsealed(
        &self,
        table: &'static str,
        at: &str,
        value: Option<Vec<u8>>,
    ) -> Result<Option<Vec<u8>>> {
        match value {
            None => Ok(None),
            Some(v) => self
                .unseal(table, at, &v)
                .map(|p| Some(p.to_vec()))
                .map_err(|e| e.at(self.path())),
        }
    }

    pub fn record_exchange(&self, key: RecordingKey<'_>, exchange: &[u8]) -> Result<()> {
        self.write(|txn| {
            txn.open_table(RECORDINGS)?.insert(
                (key.run, key.stage, key.request, key.n),
                seal(exchange).as_slice(),
            )?;
            Ok(())
        })
    }

    /// How many exchanges `run` recorded.
    pub fn recording_count(&self, run: &str) -> Result<u64> {
        Ok(self
            .read_optional(|txn| {
                let table = txn.open_table(RECORDINGS).map_err(table_error)?;
                let range = table.range((run, "", "", 0)..)?;
                let mut n = 0;
                for entry in range {
                    if entry?.0.value().0 != run {
                        break;
                    }
                    n += 1;
                }
                Ok(Some(n))
            })?
            .unwrap_or(0))
    }

    pub fn cached_response(&self, key: &str) -> Result<Option<Vec<u8>>> {
        let value = self.read_optional(|txn| {
            let table = txn.open_table(MODEL_CACHE).map_err(table_error)?;
            Ok(table.get(key)?.map(|v| v.value().to_vec()))
        })?;
        self.unsealed("model_cache", key, value)
    }

    pub fn cache_response(&self, key: &str, response: &[u8]) -> Result<()> {
        self.write(|txn| {
            txn.open_table(MODEL_CACHE)?
                .insert(key, seal(response).as_slice())?;
            Ok(())
        })
    }

    /// The messages of session `name` in `run`, oldest first.
    pub fn session(&self, run: &str, name: &str) -> Result<Vec<ChatMessage>> {
        let bytes = self.read_optional(|txn| {
            let table = txn.open_table(SESSIONS).map_err(table_error)?;
            Ok(table.get((run, name))?.map(|v| v.value().to_vec()))
        })?;
        match bytes {
            None => Ok(Vec::new()),
            Some(b) => self
                .decode("sessions", name, &b)
                .map_err(|e| e.at(self.path())),
        }
    }

    /// Appends messages to sessions, inside the caller's transaction.
    pub(super) fn append_sessions(
        &self,
        txn: &redb::WriteTransaction,
        run: &str,
        appends: &[(String, Vec<ChatMessage>)],
    ) -> Tx<()> {
        if appends.is_empty() {
            return Ok(());
        }
        let mut table = txn.open_table(SESSIONS)?;
        for (name, messages) in appends {
            let mut all: Vec<ChatMessage> = match table.get((run, name.as_str()))? {
                Some(v) => self.decode("sessions", name, v.value())?,
                None => Vec::new(),
            };
            all.extend(messages.iter().cloned());
            table.insert((run, name.as_str()), json(&all).as_slice())?;
        }
        Ok(())
    }
}

fn table_error(e: TableError) -> redb::Error {
    e.into()
}
