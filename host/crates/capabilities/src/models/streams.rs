//! `models.complete-streamed`: a call whose answer a plugin reads as it
//! streams in. The call runs on its own task (the same checks, budget,
//! records and live view as `complete`), handing its pieces over a channel;
//! `next` waits for the next piece, `finish` for the call's end, which
//! settles it into the attempt's record like any other call. A stream the
//! plugin drops, or leaves open when its attempt ends, is settled all the
//! same: what was paid is always recorded.

use super::*;
use host_runtime::bindings::orchestrator::stage::models::{
    CompletionStream, HostCompletionStream, StreamEvent,
};
use tokio::sync::mpsc;
use wasmtime::component::Resource;

/// Streams one attempt may have open at once.
pub const MAX_OPEN_STREAMS: usize = 16;

/// How long an attempt's end waits for a stream the plugin left running
/// before giving it up (it then counts at its worst case, as sent).
const LEFT_OPEN_GRACE: Duration = Duration::from_secs(5);

type Finished = (Prepared, Answer, ModelCall, bool);

pub(super) struct OpenStream {
    pieces: mpsc::UnboundedReceiver<StreamEvent>,
    task: Option<tokio::task::JoinHandle<Finished>>,
    result: Option<Result<wit::Completion, wit::ModelError>>,
}

impl ModelsGrant {
    pub(super) async fn open_stream(
        &mut self,
        alias: String,
        messages: Vec<wit::Message>,
        params: wit::Params,
    ) -> Result<Resource<CompletionStream>, wit::ModelError> {
        if self.streams.len() >= MAX_OPEN_STREAMS {
            return Err(wit::ModelError::Rejected(format!(
                "at most {MAX_OPEN_STREAMS} streams are open at once: finish one first"
            )));
        }
        let call = self.prepare(&alias, None, messages, params)?;
        let caller = self.caller();
        let (tx, rx) = mpsc::unbounded_channel();
        let task = tokio::spawn(async move {
            let (answer, record, committed) = caller.complete_one(&call, Some(tx)).await;
            (call, answer, record, committed)
        });
        let id = self.next_stream;
        self.next_stream = self.next_stream.wrapping_add(1);
        self.streams.insert(
            id,
            OpenStream {
                pieces: rx,
                task: Some(task),
                result: None,
            },
        );
        Ok(Resource::new_own(id))
    }

    /// Waits for a stream's call to end and settles it (once).
    async fn settle_stream(&mut self, id: u32) -> Result<wit::Completion, wit::ModelError> {
        let Some(stream) = self.streams.get_mut(&id) else {
            return Err(wit::ModelError::Rejected("no such stream".into()));
        };
        if let Some(result) = &stream.result {
            return result.clone();
        }
        let Some(task) = stream.task.take() else {
            return Err(wit::ModelError::Unavailable(
                "the stream's call was lost".into(),
            ));
        };
        let result = match task.await {
            Ok((call, answer, record, committed)) => self.settle(call, answer, record, committed),
            Err(e) => Err(wit::ModelError::Unavailable(format!(
                "the stream's call did not finish: {e}"
            ))),
        };
        if let Some(stream) = self.streams.get_mut(&id) {
            stream.result = Some(result.clone());
        }
        result
    }

    /// At the attempt's end: settles every stream the plugin left, giving
    /// up on those still running after a grace (their calls stay recorded
    /// as sent, counted at their worst case).
    pub(super) async fn settle_open_streams(&mut self) {
        let until = tokio::time::Instant::now() + LEFT_OPEN_GRACE;
        let ids: Vec<u32> = self.streams.keys().copied().collect();
        for id in ids {
            let Some(task) = self.streams.get_mut(&id).and_then(|s| s.task.take()) else {
                continue;
            };
            let abort = task.abort_handle();
            match tokio::time::timeout_at(until, task).await {
                Ok(Ok((call, answer, record, committed))) => {
                    let _ = self.settle(call, answer, record, committed);
                }
                Ok(Err(_)) => {}
                Err(_) => abort.abort(),
            }
        }
        self.streams.clear();
    }
}

impl HostCompletionStream for ModelsGrant {
    async fn next(
        &mut self,
        stream: Resource<CompletionStream>,
    ) -> wasmtime::Result<Option<StreamEvent>> {
        let Some(open) = self.streams.get_mut(&stream.rep()) else {
            return Ok(None);
        };
        Ok(open.pieces.recv().await)
    }

    async fn finish(
        &mut self,
        stream: Resource<CompletionStream>,
    ) -> wasmtime::Result<Result<wit::Completion, wit::ModelError>> {
        Ok(self.settle_stream(stream.rep()).await)
    }

    async fn drop(&mut self, stream: Resource<CompletionStream>) -> wasmtime::Result<()> {
        let id = stream.rep();
        // Dropped unread or unfinished: the call still counts.
        let _ = self.settle_stream(id).await;
        self.streams.remove(&id);
        Ok(())
    }
}
