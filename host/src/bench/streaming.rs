//! A streamed model answer: time to its first token and to its end, sent
//! directly with reqwest and through the models capability (which asks for
//! the stream, parses its events, and hands each piece to the attempt's
//! live view: its log file and the observer), against a loopback server
//! that streams 32 pieces 2 ms apart.

use super::stats::Summary;
use host_capabilities::models::{ExchangeMode, ModelsCapability};
use host_runtime::live::{AttemptId, AttemptLive};
use host_store::Store;
use host_vocab::{RunEvent, RunObserver};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::io::{AsyncWriteExt, BufReader};
use tokio::net::TcpListener;

const PIECES: usize = 32;
const GAP: Duration = Duration::from_millis(2);

/// A server answering every POST with a stream of chat-completion chunks
/// (or, when the request asks for none, the whole answer at the end of the
/// same time), one connection per request.
async fn serve() -> std::io::Result<String> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}/v1", listener.local_addr()?);
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let (read, mut write) = stream.into_split();
                let mut reader = BufReader::new(read);
                if super::model_call::read_request(&mut reader).await.is_none() {
                    return;
                }
                let _ = write
                    .write_all(
                        b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\nconnection: close\r\n\r\n",
                    )
                    .await;
                for i in 0..PIECES {
                    let chunk = serde_json::json!({"model": "bench", "choices": [{"index": 0, "delta": {"content": format!("t{i} ")}}]});
                    if write
                        .write_all(format!("data: {chunk}\n\n").as_bytes())
                        .await
                        .is_err()
                    {
                        return;
                    }
                    tokio::time::sleep(GAP).await;
                }
                let usage = serde_json::json!({"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}], "usage": {"prompt_tokens": 5, "completion_tokens": PIECES}});
                let _ = write
                    .write_all(format!("data: {usage}\n\ndata: [DONE]\n\n").as_bytes())
                    .await;
                let _ = write.shutdown().await;
            });
        }
    });
    Ok(url)
}

pub struct StreamFigures {
    pub direct_first: Summary,
    pub direct_whole: Summary,
    pub host_first: Summary,
    pub host_whole: Summary,
}

/// When the first piece of a stream reached the observer.
struct FirstPiece(Mutex<Option<Instant>>);

impl RunObserver for FirstPiece {
    fn on_event(&self, e: &RunEvent) {
        if let RunEvent::ModelStream { .. } = e {
            let mut first = self.0.lock().unwrap_or_else(|p| p.into_inner());
            first.get_or_insert_with(Instant::now);
        }
    }
}

pub async fn measure(dir: &Path, noop: &Path, iterations: usize) -> Result<StreamFigures, String> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let url = serve().await.map_err(|e| e.to_string())?;
    let client = reqwest::Client::new();
    let body = serde_json::json!({
        "model": "bench",
        "messages": [{"role": "user", "content": "Count."}],
        "max_tokens": 64,
        "stream": true,
    });
    let (mut direct_first, mut direct_whole) = (Vec::new(), Vec::new());
    for i in 0..iterations + 5 {
        let t = Instant::now();
        let mut response = client
            .post(format!("{url}/chat/completions"))
            .json(&body)
            .send()
            .await
            .map_err(|e| e.to_string())?;
        let mut first = None;
        let mut text = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(|e| e.to_string())? {
            if first.is_none() && chunk.windows(7).any(|w| w == b"content") {
                first = Some(t.elapsed());
            }
            text.extend_from_slice(&chunk);
        }
        std::hint::black_box(text);
        if i >= 5 {
            direct_first.push(first.ok_or("no piece came")?);
            direct_whole.push(t.elapsed());
        }
    }

    let manifest = format!(
        "[pipeline]\nname = \"bench\"\ntask = \"t\"\n\n[models.m]\nprovider = \"openai\"\n\
         base_url = \"{url}\"\nmodel = \"bench\"\n\n[[stage]]\nid = \"s\"\nplugin = {:?}\nmodels = [\"m\"]\n",
        noop.display().to_string()
    );
    let pipeline = host_manifest::parse(&dir.join("stream-bench.toml"), manifest)
        .map_err(|d| d.to_string())?;
    let state = dir.join("stream-bench-state");
    let store = Arc::new(Store::open(&state).map_err(|e| e.to_string())?);
    let models = ModelsCapability::new(&pipeline, client, store, ExchangeMode::default());
    let stage = &pipeline.stages[0];
    let (mut host_first, mut host_whole) = (Vec::new(), Vec::new());
    for i in 0..iterations + 5 {
        let observer = Arc::new(FirstPiece(Mutex::new(None)));
        let id = AttemptId {
            run: "bench",
            stage: "s",
            iteration: 0,
            attempt: i as u32 + 1,
        };
        // The attempt's live view as a run has it: a log file, an observer.
        let live = Arc::new(AttemptLive::new(&state, id, observer.clone()));
        let mut scope = super::attempt_scope(stage, i as u32);
        scope.live = &live;
        let mut grant = models.grant(&scope);
        let t = Instant::now();
        let whole = super::model_call::complete_through(&mut grant, "Count.", 64).await?;
        let first = observer
            .0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .ok_or("no piece reached the observer")?;
        if i >= 5 {
            host_first.push(first.duration_since(t));
            host_whole.push(whole);
        }
    }
    Ok(StreamFigures {
        direct_first: Summary::of(&direct_first).ok_or("no samples")?,
        direct_whole: Summary::of(&direct_whole).ok_or("no samples")?,
        host_first: Summary::of(&host_first).ok_or("no samples")?,
        host_whole: Summary::of(&host_whole).ok_or("no samples")?,
    })
}
