//! Every record the store writes carries its own checksum: a value is its
//! payload, a NUL byte, and the first 8 bytes of the payload's blake3. A
//! flipped byte anywhere in it is found when it is read, and reported as
//! damage, never believed. (Blobs need no seal: their key is their hash.)
//! JSON payloads never contain a raw NUL, so an unsealed value written by a
//! host before schema 4 is told apart from a sealed one.

use super::*;

const TAG: usize = 8;
/// Bytes a seal adds to a value.
pub(crate) const SEAL_LEN: usize = TAG + 1;

fn tag(payload: &[u8]) -> [u8; TAG] {
    let hash = blake3::hash(payload);
    let mut out = [0; TAG];
    out.copy_from_slice(&hash.as_bytes()[..TAG]);
    out
}

/// `payload`, sealed.
pub(crate) fn seal(payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(payload.len() + SEAL_LEN);
    out.extend_from_slice(payload);
    out.push(0);
    out.extend_from_slice(&tag(payload));
    out
}

/// Why a value is not what was written.
pub(crate) fn check(bytes: &[u8]) -> std::result::Result<&[u8], &'static str> {
    if bytes.len() < SEAL_LEN || bytes[bytes.len() - SEAL_LEN] != 0 {
        return Err("it has no checksum");
    }
    let (payload, seal) = bytes.split_at(bytes.len() - SEAL_LEN);
    if seal[1..] != tag(payload) {
        return Err("its checksum does not match its bytes");
    }
    Ok(payload)
}

impl Store {
    /// The payload of a value read from `table` under `key`: checked in a
    /// database of schema 4 or later, as it is in an older one (read-only).
    pub(crate) fn unseal<'a>(
        &self,
        table: &'static str,
        key: &str,
        bytes: &'a [u8],
    ) -> Tx<&'a [u8]> {
        if !self.sealed {
            return Ok(bytes);
        }
        check(bytes).map_err(|why| {
            Fault::Store(StoreError::BadRecord {
                table,
                key: key.to_string(),
                detail: format!("the record is damaged: {why}"),
            })
        })
    }

    pub(crate) fn decode<T: serde::de::DeserializeOwned>(
        &self,
        table: &'static str,
        key: &str,
        bytes: &[u8],
    ) -> Tx<T> {
        let payload = self.unseal(table, key, bytes)?;
        serde_json::from_slice(payload).map_err(|e| {
            Fault::Store(StoreError::BadRecord {
                table,
                key: key.to_string(),
                detail: e.to_string(),
            })
        })
    }
}

/// Rewrites every value of `$table`, sealed: each key bound to `$k` is
/// owned by `$own` while the table is read, and the owned one, bound to
/// `$r`, borrowed back by `$borrow` to insert.
macro_rules! reseal {
    ($txn:expr, $table:expr, $k:pat => $own:expr, $r:pat => $borrow:expr) => {{
        let mut table = $txn.open_table($table)?;
        let mut all = Vec::new();
        for entry in table.iter()? {
            let (key, v) = entry?;
            let $k = key.value();
            all.push(($own, seal(v.value())));
        }
        for (owned, v) in &all {
            let $r = owned;
            table.insert($borrow, v.as_slice())?;
        }
    }};
}

impl Store {
    /// The migration to schema 4: every value of every record table gets
    /// its checksum, in the transaction that records the new version.
    pub(crate) fn seal_every_record(&self, txn: &redb::WriteTransaction) -> Tx<()> {
        reseal!(txn, RUNS, k => k.to_string(), k => k.as_str());
        reseal!(txn, OUTPUTS, k => k.to_string(), k => k.as_str());
        reseal!(txn, MODEL_CACHE, k => k.to_string(), k => k.as_str());
        reseal!(txn, STAGES, (a, b) => (a.to_string(), b.to_string()), (a, b) => (a.as_str(), b.as_str()));
        reseal!(txn, SESSIONS, (a, b) => (a.to_string(), b.to_string()), (a, b) => (a.as_str(), b.as_str()));
        reseal!(txn, EVENTS, (r, n) => (r.to_string(), n), (r, n) => (r.as_str(), *n));
        reseal!(
            txn,
            KV,
            (a, b, c) => (a.to_string(), b.to_string(), c.to_string()),
            (a, b, c) => (a.as_str(), b.as_str(), c.as_str())
        );
        reseal!(
            txn,
            RECORDINGS,
            (a, b, c, n) => (a.to_string(), b.to_string(), c.to_string(), n),
            (a, b, c, n) => (a.as_str(), b.as_str(), c.as_str(), *n)
        );
        reseal!(
            txn,
            CALLS,
            (a, b, i, t, n) => (a.to_string(), b.to_string(), i, t, n),
            (a, b, i, t, n) => (a.as_str(), b.as_str(), *i, *t, *n)
        );
        reseal!(
            txn,
            IN_FLIGHT,
            (a, b, i, t, n) => (a.to_string(), b.to_string(), i, t, n),
            (a, b, i, t, n) => (a.as_str(), b.as_str(), *i, *t, *n)
        );
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_single_flipped_bit_is_found() {
        let sealed = seal(br#"{"id":"run-1","status":"running"}"#);
        assert_eq!(
            check(&sealed).unwrap(),
            br#"{"id":"run-1","status":"running"}"#
        );
        for byte in 0..sealed.len() {
            for bit in 0..8 {
                let mut damaged = sealed.clone();
                damaged[byte] ^= 1 << bit;
                assert!(check(&damaged).is_err(), "byte {byte} bit {bit}");
            }
        }
        assert!(check(b"{}").is_err(), "an unsealed value");
        assert_eq!(check(&seal(b"")).unwrap(), b"");
    }
}
