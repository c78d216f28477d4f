//! Artifact contents, stored once by their blake3. A blob up to one chunk
//! is one value; a larger one is split into chunks, each with its own hash
//! in the blob's index, so a reader of a range loads (and checks) only the
//! chunks it covers: a stage reading 1 KiB of a 60 MiB artifact reads one
//! chunk, not 60 MiB.

use super::*;
use redb::ReadableTable;
use serde::{Deserialize, Serialize};

/// Bytes per chunk of a large blob (and the largest blob kept whole).
pub(crate) const CHUNK: usize = 1 << 20;

/// Where a chunked blob's content is.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct ChunkIndex {
    pub size: u64,
    /// blake3 of each chunk, in order.
    pub chunks: Vec<String>,
}

pub(crate) fn artifact_hash(bytes: &[u8]) -> String {
    blake3::hash(bytes).to_hex().to_string()
}

fn damaged(hash: &str, detail: String) -> Fault {
    Fault::Store(StoreError::BadRecord {
        table: "blobs",
        key: hash.to_string(),
        detail,
    })
}

/// Whole blobs, chunk indexes and chunks, opened together.
pub(crate) struct BlobTables<W, I, C> {
    whole: W,
    index: I,
    chunks: C,
}

impl Store {
    /// Stores `bytes` under `hash` (their blake3) unless they are there.
    pub(crate) fn put_blob(
        &self,
        txn: &redb::WriteTransaction,
        hash: &str,
        bytes: &[u8],
    ) -> Tx<()> {
        let mut whole = txn.open_table(BLOBS)?;
        let mut index = txn.open_table(BLOB_INDEX)?;
        if whole.get(hash)?.is_some() || index.get(hash)?.is_some() {
            return Ok(());
        }
        if bytes.len() <= CHUNK {
            whole.insert(hash, bytes)?;
            return Ok(());
        }
        let mut chunks = txn.open_table(BLOB_CHUNKS)?;
        let mut hashes = Vec::with_capacity(bytes.len().div_ceil(CHUNK));
        for (i, chunk) in bytes.chunks(CHUNK).enumerate() {
            hashes.push(artifact_hash(chunk));
            let i = u32::try_from(i).map_err(|_| damaged(hash, "too many chunks".into()))?;
            chunks.insert((hash, i), chunk)?;
        }
        let record = ChunkIndex {
            size: bytes.len() as u64,
            chunks: hashes,
        };
        index.insert(hash, json(&record).as_slice())?;
        Ok(())
    }

    /// Contents by their blake3, checked against it: a damaged blob is an
    /// error, never returned.
    pub fn blob(&self, hash: &str) -> Result<Option<Vec<u8>>> {
        self.read(|txn| {
            let tables = BlobTables::open(txn)?;
            let Some(size) = tables.size(self, hash)? else {
                return Ok(None);
            };
            let bytes = tables.range(self, hash, 0, size)?;
            if artifact_hash(&bytes) != hash {
                return Err(damaged(
                    hash,
                    "the blob is damaged: its content does not match its hash".into(),
                ));
            }
            Ok(Some(bytes))
        })
    }

    /// Up to `len` bytes of a blob from `offset` (fewer at its end), reading
    /// only the chunks they are in, each checked against its hash.
    pub fn blob_range(&self, hash: &str, offset: u64, len: u64) -> Result<Option<Vec<u8>>> {
        self.read(|txn| {
            let tables = BlobTables::open(txn)?;
            if tables.size(self, hash)?.is_none() {
                return Ok(None);
            }
            tables.range(self, hash, offset, len).map(Some)
        })
    }

    /// Checks a stored blob whole: every chunk against the index, the
    /// content against its hash.
    pub(crate) fn blob_checked<W, I, C>(&self, tables: &BlobTables<W, I, C>, hash: &str) -> Tx<()>
    where
        W: ReadableTable<&'static str, &'static [u8]>,
        I: ReadableTable<&'static str, &'static [u8]>,
        C: ReadableTable<(&'static str, u32), &'static [u8]>,
    {
        let size = tables.size(self, hash)?.unwrap_or(0);
        let bytes = tables.range(self, hash, 0, size)?;
        if artifact_hash(&bytes) != hash {
            return Err(damaged(
                hash,
                "the blob is damaged: its content does not match its hash".into(),
            ));
        }
        Ok(())
    }

    /// A blob's length, `None` when it is not stored.
    pub fn blob_size(&self, hash: &str) -> Result<Option<u64>> {
        self.read(|txn| BlobTables::open(txn)?.size(self, hash))
    }
}

type ReadTable = redb::ReadOnlyTable<&'static str, &'static [u8]>;
type ChunkTable = redb::ReadOnlyTable<(&'static str, u32), &'static [u8]>;

impl BlobTables<ReadTable, ReadTable, ChunkTable> {
    pub(crate) fn open(txn: &redb::ReadTransaction) -> Tx<Self> {
        Ok(BlobTables {
            whole: txn.open_table(BLOBS)?,
            index: txn.open_table(BLOB_INDEX)?,
            chunks: txn.open_table(BLOB_CHUNKS)?,
        })
    }
}

impl<W, I, C> BlobTables<W, I, C>
where
    W: ReadableTable<&'static str, &'static [u8]>,
    I: ReadableTable<&'static str, &'static [u8]>,
    C: ReadableTable<(&'static str, u32), &'static [u8]>,
{
    fn index(&self, store: &Store, hash: &str) -> Tx<Option<ChunkIndex>> {
        match self.index.get(hash)? {
            Some(v) => store.decode("blob_index", hash, v.value()).map(Some),
            None => Ok(None),
        }
    }

    fn size(&self, store: &Store, hash: &str) -> Tx<Option<u64>> {
        if let Some(v) = self.whole.get(hash)? {
            return Ok(Some(v.value().len() as u64));
        }
        Ok(self.index(store, hash)?.map(|i| i.size))
    }

    /// `len` bytes from `offset`, clipped to the blob; the blob exists.
    fn range(&self, store: &Store, hash: &str, offset: u64, len: u64) -> Tx<Vec<u8>> {
        if let Some(v) = self.whole.get(hash)? {
            let bytes = v.value();
            // A whole blob is one chunk: check it as a chunk is checked.
            if artifact_hash(bytes) != hash {
                return Err(damaged(
                    hash,
                    "the blob is damaged: its content does not match its hash".into(),
                ));
            }
            let start = usize::try_from(offset)
                .unwrap_or(usize::MAX)
                .min(bytes.len());
            let end = start.saturating_add(usize::try_from(len).unwrap_or(usize::MAX));
            return Ok(bytes[start..end.min(bytes.len())].to_vec());
        }
        let Some(index) = self.index(store, hash)? else {
            return Ok(Vec::new());
        };
        let end = offset.saturating_add(len).min(index.size);
        let mut out = Vec::with_capacity(usize::try_from(end.saturating_sub(offset)).unwrap_or(0));
        let chunk = CHUNK as u64;
        let mut at = offset;
        while at < end {
            let i = at / chunk;
            let expected = index
                .chunks
                .get(i as usize)
                .ok_or_else(|| damaged(hash, format!("its index lists no chunk {i}")))?;
            let key = (hash, u32::try_from(i).unwrap_or(u32::MAX));
            let value = self
                .chunks
                .get(key)?
                .ok_or_else(|| damaged(hash, format!("chunk {i} is missing")))?;
            let bytes = value.value();
            if &artifact_hash(bytes) != expected {
                return Err(damaged(
                    hash,
                    format!("the blob is damaged: chunk {i} does not match its hash"),
                ));
            }
            let from = (at - i * chunk) as usize;
            let to = ((end - i * chunk) as usize).min(bytes.len());
            if from >= to {
                return Err(damaged(
                    hash,
                    format!("chunk {i} is shorter than its index says"),
                ));
            }
            out.extend_from_slice(&bytes[from..to]);
            at = i * chunk + to as u64;
        }
        Ok(out)
    }
}

/// Stages read their upstream artifacts from the run's store.
impl host_vocab::ArtifactSource for Store {
    fn read(&self, hash: &str, offset: u64, len: u64) -> std::result::Result<Vec<u8>, String> {
        match self.blob_range(hash, offset, len) {
            Ok(Some(bytes)) => Ok(bytes),
            Ok(None) => Err(format!("blob {hash} is not in the store")),
            Err(e) => Err(e.to_string()),
        }
    }
}
