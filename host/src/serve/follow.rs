//! `GET /api/runs/RUN/stages/STAGE/log/stream`: an attempt's log as
//! Server-Sent Events, followed while the attempt runs (in this process or
//! another), ended with an `end` event when it is over.

use super::api::chosen_attempt;
use super::http::{Body, Query, Reply};
use bytes::Bytes;
use host_runtime::live::{log_path, read_log};
use host_store::{RunStatus, StageStatus, Store};
use hyper::Response;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

/// How often the file is read for new lines.
const POLL: Duration = Duration::from_millis(200);
/// How often the store is asked whether the attempt is still running.
const CHECK: Duration = Duration::from_secs(1);
/// A comment this often keeps proxies and browsers from timing out.
const KEEP_ALIVE: Duration = Duration::from_secs(15);

/// The attempt a stream follows.
#[derive(Clone)]
struct Target {
    dir: Arc<PathBuf>,
    run: String,
    stage: String,
    iteration: u32,
    attempt: u32,
}

impl Target {
    /// Whether the attempt may still write: its stage is running this very
    /// attempt, in a run whose process is alive.
    fn is_live(&self) -> bool {
        let Ok(store) = Store::open_read_only(&self.dir) else {
            return false;
        };
        let Ok(run) = store.run(&self.run) else {
            return false;
        };
        // Read through the store, a run whose process is gone is not running.
        if run.status != RunStatus::Running {
            return false;
        }
        let Ok(stages) = store.stages(&run) else {
            return false;
        };
        stages.iter().any(|s| {
            s.stage == self.stage
                && s.status == StageStatus::Running
                && s.iteration == self.iteration
                && s.attempts == self.attempt
        })
    }
}

pub async fn stream(
    dir: Arc<PathBuf>,
    run: &str,
    stage: &str,
    query: &Query,
    last_event_id: Option<u64>,
) -> Response<Body> {
    let (run, stage, q) = (run.to_string(), stage.to_string(), query.clone());
    let d = dir.clone();
    let target = tokio::task::spawn_blocking(move || -> Result<Target, Reply> {
        let (iteration, attempt) =
            super::api::with_stage(&d, &run, &stage, |_, _, s| chosen_attempt(s, &q))?;
        Ok(Target {
            dir: d,
            run,
            stage,
            iteration,
            attempt,
        })
    })
    .await;
    let target = match target {
        Ok(Ok(t)) => t,
        Ok(Err(reply)) => return reply.into_response(),
        Err(e) => return Reply::error(500, format!("request failed: {e}")).into_response(),
    };
    let start = match (last_event_id, query.number("offset")) {
        (Some(id), _) => id,
        (None, Ok(Some(offset))) => offset,
        (None, Ok(None)) => 0,
        (None, Err(e)) => return Reply::error(400, e).into_response(),
    };
    let (tx, rx) = mpsc::channel::<Bytes>(64);
    tokio::spawn(follow(target, start, tx));
    Response::builder()
        .status(200)
        .header("content-type", "text/event-stream")
        .header("cache-control", "no-store")
        .body(Body::Stream(rx))
        .unwrap_or_else(|_| Response::new(Body::Full(None)))
}

/// Sends the log's lines from `offset` on as they are written; returns when
/// the attempt is over (after its last lines) or the client has gone.
async fn follow(target: Target, mut offset: u64, tx: mpsc::Sender<Bytes>) {
    let path = log_path(
        &target.dir,
        &target.run,
        &target.stage,
        target.iteration,
        target.attempt,
    );
    let hello = format!(
        "retry: 1000\nevent: attempt\ndata: {}\n\n",
        serde_json::json!({"stage": target.stage, "iteration": target.iteration, "attempt": target.attempt})
    );
    if tx.send(Bytes::from(hello)).await.is_err() {
        return;
    }
    let mut last_check: Option<Instant> = None;
    let mut last_sent = Instant::now();
    let mut live = true;
    loop {
        let (lines, next) = match read_log(&path, offset) {
            Ok(x) => x,
            Err(e) => {
                let _ = tx
                    .send(Bytes::from(format!(
                        "event: error\ndata: {}\n\n",
                        serde_json::json!({"error": format!("cannot read the log: {e}")})
                    )))
                    .await;
                return;
            }
        };
        let count = lines.len();
        for (i, line) in lines.into_iter().enumerate() {
            let data = serde_json::to_string(&line).unwrap_or_default();
            // The id (the offset after the batch) lets a reconnecting
            // EventSource continue where it was.
            let chunk = if i + 1 == count {
                format!("id: {next}\ndata: {data}\n\n")
            } else {
                format!("data: {data}\n\n")
            };
            if tx.send(Bytes::from(chunk)).await.is_err() {
                return;
            }
            last_sent = Instant::now();
        }
        offset = next;
        if count == 0 {
            if !live {
                let _ = tx
                    .send(Bytes::from(format!(
                        "event: end\ndata: {}\n\n",
                        serde_json::json!({"next_offset": offset})
                    )))
                    .await;
                return;
            }
            if last_check.is_none_or(|t| t.elapsed() >= CHECK) {
                let t = target.clone();
                // One more read after the attempt ends catches its last lines.
                live = tokio::task::spawn_blocking(move || t.is_live())
                    .await
                    .unwrap_or(false);
                last_check = Some(Instant::now());
                if !live {
                    continue;
                }
            }
            if last_sent.elapsed() >= KEEP_ALIVE {
                if tx
                    .send(Bytes::from_static(b": keep-alive\n\n"))
                    .await
                    .is_err()
                {
                    return;
                }
                last_sent = Instant::now();
            }
        }
        tokio::time::sleep(POLL).await;
    }
}
