//! The host's overhead per model call: the same request to the same
//! loopback server, sent directly with reqwest and through the models
//! capability (grant checks, budget reservation, request hashing, the
//! provider's wire format and parsing, the call record).

use super::stats::Summary;
use host_capabilities::models::{ExchangeMode, ModelsCapability, ModelsGrant};
use host_runtime::bindings::orchestrator::stage::models::{Host, Message, Params, Role};
use host_store::Store;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;

const ANSWER: &str = r#"{"id":"x","object":"chat.completion","model":"bench","choices":[{"index":0,"message":{"role":"assistant","content":"ok"},"finish_reason":"stop"}],"usage":{"prompt_tokens":5,"completion_tokens":1}}"#;

/// A minimal keep-alive HTTP/1.1 server answering every POST with `ANSWER`.
pub(super) async fn serve() -> std::io::Result<String> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}/v1", listener.local_addr()?);
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let (read, mut write) = stream.into_split();
                let mut reader = BufReader::new(read);
                while read_request(&mut reader).await.is_some() {
                    let response = format!(
                        "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{ANSWER}",
                        ANSWER.len()
                    );
                    if write.write_all(response.as_bytes()).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    Ok(url)
}

/// Reads one HTTP/1.1 request (line, headers, a `content-length` body);
/// `None` when the connection ends first.
pub(super) async fn read_request<R: tokio::io::AsyncBufRead + Unpin>(
    reader: &mut R,
) -> Option<Vec<u8>> {
    let mut line = String::new();
    if reader.read_line(&mut line).await.unwrap_or(0) == 0 {
        return None;
    }
    let mut length = 0usize;
    loop {
        let mut header = String::new();
        if reader.read_line(&mut header).await.unwrap_or(0) == 0 {
            return None;
        }
        let header = header.trim_end();
        if header.is_empty() {
            break;
        }
        if let Some((k, v)) = header.split_once(':')
            && k.eq_ignore_ascii_case("content-length")
        {
            length = v.trim().parse().unwrap_or(0);
        }
    }
    let mut body = vec![0u8; length];
    reader.read_exact(&mut body).await.ok()?;
    Some(body)
}

pub struct Overhead {
    pub direct: Summary,
    pub host: Summary,
}

pub async fn measure(dir: &Path, noop: &Path, iterations: usize) -> Result<Overhead, String> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let url = serve().await.map_err(|e| e.to_string())?;
    let client = reqwest::Client::new();
    let body = serde_json::json!({
        "model": "bench",
        "messages": [{"role": "user", "content": "Say ok."}],
        "max_tokens": 4,
    });
    let mut direct = Vec::with_capacity(iterations);
    for i in 0..iterations + 20 {
        let t = Instant::now();
        let text = client
            .post(format!("{url}/chat/completions"))
            .json(&body)
            .send()
            .await
            .map_err(|e| e.to_string())?
            .text()
            .await
            .map_err(|e| e.to_string())?;
        let parsed: serde_json::Value = serde_json::from_str(&text).map_err(|e| e.to_string())?;
        std::hint::black_box(parsed);
        if i >= 20 {
            direct.push(t.elapsed());
        }
    }

    let manifest = format!(
        "[pipeline]\nname = \"bench\"\ntask = \"t\"\n\n[models.m]\nprovider = \"openai\"\n\
         base_url = \"{url}\"\nmodel = \"bench\"\n\n[[stage]]\nid = \"s\"\nplugin = {:?}\nmodels = [\"m\"]\n",
        noop.display().to_string()
    );
    let pipeline =
        host_manifest::parse(&dir.join("model-bench.toml"), manifest).map_err(|d| d.to_string())?;
    let store = Arc::new(Store::open(&dir.join("model-bench-state")).map_err(|e| e.to_string())?);
    let models = ModelsCapability::new(&pipeline, client, store, ExchangeMode::default());
    let stage = &pipeline.stages[0];
    let mut via_host = Vec::with_capacity(iterations);
    for i in 0..iterations + 20 {
        // A fresh grant per call, as each stage attempt gets one.
        let mut grant = models.grant(&super::attempt_scope(stage, i as u32));
        let elapsed = complete_through(&mut grant, "Say ok.", 4).await?;
        if i >= 20 {
            via_host.push(elapsed);
        }
    }
    Ok(Overhead {
        direct: Summary::of(&direct).ok_or("no samples")?,
        host: Summary::of(&via_host).ok_or("no samples")?,
    })
}

/// One `complete` to alias `m` through a grant, as a plugin makes it: how
/// long it took, or why it failed.
pub(super) async fn complete_through(
    grant: &mut ModelsGrant,
    prompt: &str,
    max_tokens: u32,
) -> Result<Duration, String> {
    let messages = vec![Message {
        role: Role::User,
        content: prompt.into(),
    }];
    let params = Params {
        max_tokens: Some(max_tokens),
        temperature: None,
        stop: Vec::new(),
        timeout_ms: None,
    };
    let t = Instant::now();
    let answer = grant
        .complete("m".into(), messages, params)
        .await
        .map_err(|e| format!("{e:#}"))?;
    let elapsed = t.elapsed();
    answer.map_err(|e| format!("{e:?}"))?;
    Ok(elapsed)
}
