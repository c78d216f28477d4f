//! The `artifacts` interface: artifacts a plugin streams a piece at a time.
//! Pieces go straight to a file of this attempt's, so neither the plugin nor
//! the host holds the whole artifact until the attempt has succeeded.

use host_runtime::bindings::older_line_names;
use host_runtime::bindings::orchestrator::stage::artifacts::{self as wit, Host};
use host_runtime::{AttemptScope, Capability, Grant, HasGrant, grant_of};
use host_vocab::limits::MAX_ARTIFACTS;
use host_vocab::output_rules::artifact_name_problem;
use host_vocab::{Artifact, Bound, LimitReached, StageFailure, StageOutput};
use std::collections::BTreeMap;
use std::io::Write;
use std::path::PathBuf;
use wasmtime::component::{HasSelf, Linker};

/// Every stage may stream artifacts, within its `max_output`.
pub struct ArtifactsCapability;

impl Capability for ArtifactsCapability {
    type Grant = ArtifactsGrant;
    const INTERFACES: &'static [&'static str] = &["artifacts"];
    const GOVERNED_BY: &'static str = "always: bounded by `max_output`";

    fn link<T: HasGrant<ArtifactsGrant>>(linker: &mut Linker<T>) -> wasmtime::Result<()> {
        wit::add_to_linker::<T, HasSelf<ArtifactsGrant>>(linker, grant_of)?;
        for name in older_line_names("artifacts") {
            let mut i = linker.instance(&name)?;
            i.func_wrap_async(
                "append",
                |mut store, (artifact, media_type, bytes): (String, String, Vec<u8>)| {
                    Box::new(async move {
                        let s = grant_of(store.data_mut());
                        Ok((Host::append(s, artifact, media_type, bytes).await?,))
                    })
                },
            )?;
        }
        Ok(())
    }

    fn grant(&self, scope: &AttemptScope<'_>) -> ArtifactsGrant {
        ArtifactsGrant::new(scope.stage.max_output)
    }

    fn deny() -> ArtifactsGrant {
        ArtifactsGrant::new(0)
    }
}

impl Grant for ArtifactsGrant {
    /// Adds the artifacts the plugin streamed to the ones it returned.
    fn complete_output(&mut self, output: &mut StageOutput) -> Result<(), StageFailure> {
        let fatal = |message: String| StageFailure::Plugin {
            retryable: false,
            message,
        };
        for artifact in self.take_streamed().map_err(fatal)? {
            if output.artifacts.iter().any(|a| a.name == artifact.name) {
                return Err(fatal(format!(
                    "artifact '{}' was both streamed and returned",
                    artifact.name
                )));
            }
            output.artifacts.push(artifact);
        }
        Ok(())
    }
}

/// A streamed artifact: its file is opened for each piece and closed again,
/// so a plugin streaming many names holds no file descriptors of the host's.
struct Streamed {
    media_type: String,
    path: PathBuf,
}

pub struct ArtifactsGrant {
    dir: Option<PathBuf>,
    streams: BTreeMap<String, Streamed>,
    written: usize,
    limit: usize,
}

impl ArtifactsGrant {
    /// Streams into a private directory under the system's temp dir.
    pub fn new(limit: usize) -> Self {
        ArtifactsGrant {
            dir: None,
            streams: BTreeMap::new(),
            written: 0,
            limit,
        }
    }

    fn dir(&mut self) -> Result<PathBuf, String> {
        if let Some(d) = &self.dir {
            return Ok(d.clone());
        }
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        let dir =
            std::env::temp_dir().join(format!("host-artifacts-{}-{nanos}", std::process::id()));
        std::fs::create_dir_all(&dir).map_err(|e| format!("cannot stream artifacts: {e}"))?;
        self.dir = Some(dir.clone());
        Ok(dir)
    }

    /// Total bytes streamed so far (counted against the stage's output limit).
    pub fn bytes(&self) -> usize {
        self.written
    }

    /// The streamed artifacts, read back once the attempt has succeeded.
    pub fn take_streamed(&mut self) -> Result<Vec<Artifact>, String> {
        let mut out = Vec::new();
        for (name, s) in std::mem::take(&mut self.streams) {
            let bytes = std::fs::read(&s.path)
                .map_err(|e| format!("cannot read streamed artifact '{name}': {e}"))?;
            out.push(Artifact {
                name,
                media_type: s.media_type,
                bytes,
            });
        }
        Ok(out)
    }
}

impl Drop for ArtifactsGrant {
    fn drop(&mut self) {
        if let Some(dir) = &self.dir {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

impl Host for ArtifactsGrant {
    async fn append(
        &mut self,
        name: String,
        media_type: String,
        bytes: Vec<u8>,
    ) -> wasmtime::Result<Result<(), String>> {
        if let Some(problem) = artifact_name_problem(&name) {
            return Ok(Err(problem));
        }
        if self.written + bytes.len() > self.limit {
            // Not an error the plugin could carry on from: the artifact
            // would be cut short. The attempt ends here, with the bound.
            return Err(wasmtime::Error::new(LimitReached::new(
                Bound::Output,
                self.limit,
                format!(
                    "streaming {} more bytes to '{name}' after {} bytes",
                    bytes.len(),
                    self.written
                ),
            )));
        }
        if !self.streams.contains_key(&name) {
            if self.streams.len() >= MAX_ARTIFACTS {
                return Err(wasmtime::Error::new(LimitReached::new(
                    Bound::Artifacts,
                    MAX_ARTIFACTS,
                    format!(
                        "the plugin started streaming a new artifact '{name}' after {MAX_ARTIFACTS}"
                    ),
                )));
            }
            let dir = match self.dir() {
                Ok(d) => d,
                Err(e) => return Ok(Err(e)),
            };
            let path = dir.join(format!("{}.part", self.streams.len()));
            self.streams.insert(
                name.clone(),
                Streamed {
                    media_type: media_type.clone(),
                    path,
                },
            );
        }
        let Some(stream) = self.streams.get(&name) else {
            return Ok(Err("internal: stream vanished".into()));
        };
        if stream.media_type != media_type {
            return Ok(Err(format!(
                "'{name}' was started as {}, not {media_type}",
                stream.media_type
            )));
        }
        let written = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&stream.path)
            .and_then(|mut file| file.write_all(&bytes));
        if let Err(e) = written {
            return Ok(Err(format!("cannot stream '{name}': {e}")));
        }
        self.written += bytes.len();
        Ok(Ok(()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn output() -> StageOutput {
        StageOutput {
            summary: "s".into(),
            artifacts: vec![Artifact {
                name: "returned.txt".into(),
                media_type: "text/plain".into(),
                bytes: b"r".to_vec(),
            }],
            metrics: Vec::new(),
            decision: None,
        }
    }

    #[tokio::test]
    async fn streamed_pieces_join_the_output() {
        let mut grant = ArtifactsGrant::new(100);
        grant
            .append("log.txt".into(), "text/plain".into(), b"ab".to_vec())
            .await
            .unwrap()
            .unwrap();
        grant
            .append("log.txt".into(), "text/plain".into(), b"cd".to_vec())
            .await
            .unwrap()
            .unwrap();
        let mut out = output();
        grant.complete_output(&mut out).unwrap();
        let streamed = out.artifacts.iter().find(|a| a.name == "log.txt").unwrap();
        assert_eq!(streamed.bytes, b"abcd");
        assert_eq!(out.artifacts.len(), 2);
    }

    #[tokio::test]
    async fn refuses_paths_other_media_types_and_bytes_past_the_limit() {
        let mut grant = ArtifactsGrant::new(4);
        let err = grant
            .append("../x".into(), "text/plain".into(), Vec::new())
            .await
            .unwrap();
        assert!(err.unwrap_err().contains("not a plain file name"));
        grant
            .append("a".into(), "text/plain".into(), b"12".to_vec())
            .await
            .unwrap()
            .unwrap();
        let err = grant
            .append("a".into(), "application/json".into(), b"3".to_vec())
            .await
            .unwrap();
        assert!(err.unwrap_err().contains("was started as text/plain"));
        let trap = grant
            .append("b".into(), "text/plain".into(), b"345".to_vec())
            .await
            .unwrap_err();
        let hit = trap.downcast_ref::<LimitReached>().unwrap();
        assert_eq!((hit.bound, hit.limit), (Bound::Output, 4));
        assert_eq!(grant.bytes(), 2);
    }

    fn open_fds() -> usize {
        std::fs::read_dir("/proc/self/fd").map_or(0, |d| d.count())
    }

    #[tokio::test]
    async fn many_streamed_names_hold_no_file_descriptors_and_are_bounded() {
        let mut grant = ArtifactsGrant::new(1 << 20);
        let before = open_fds();
        for i in 0..MAX_ARTIFACTS {
            grant
                .append(format!("a{i}"), "text/plain".into(), b"x".to_vec())
                .await
                .unwrap()
                .unwrap();
        }
        // Other tests of this binary run at once: allow for their files.
        assert!(open_fds() < before + 64, "{} fds open", open_fds());
        let trap = grant
            .append("one-more".into(), "text/plain".into(), b"x".to_vec())
            .await
            .unwrap_err();
        let hit = trap.downcast_ref::<LimitReached>().unwrap();
        assert_eq!(hit.bound, Bound::Artifacts);
        let mut out = output();
        grant.complete_output(&mut out).unwrap();
        assert_eq!(out.artifacts.len(), MAX_ARTIFACTS + 1);
    }

    #[tokio::test]
    async fn an_artifact_both_streamed_and_returned_fails_the_attempt() {
        let mut grant = ArtifactsGrant::new(100);
        grant
            .append("returned.txt".into(), "text/plain".into(), b"x".to_vec())
            .await
            .unwrap()
            .unwrap();
        let mut out = output();
        let failure = grant.complete_output(&mut out).unwrap_err();
        assert!(!failure.is_retryable());
        assert!(failure.to_string().contains("both streamed and returned"));
    }

    #[tokio::test]
    async fn the_grant_of_nothing_streams_nothing() {
        let mut none = ArtifactsCapability::deny();
        let appended = none
            .append("a".into(), "text/plain".into(), b"x".to_vec())
            .await;
        assert!(!matches!(appended, Ok(Ok(()))));
    }
}
