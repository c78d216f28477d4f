//! One model call, from its checks to its record: a recording, the
//! response cache or the provider answers it, within the budgets, recorded
//! as in flight before it is sent and as answered after. It owns what it
//! needs of the grant, so a streamed call can run while the plugin reads it.

use super::*;

#[derive(Clone)]
pub(super) struct Caller {
    pub stage_id: String,
    pub run_id: String,
    pub run_budget: Budget,
    pub stage_budget: Budget,
    pub ledger: Option<Arc<Ledger>>,
    pub exchanges: Option<Arc<Exchanges>>,
    pub store: Option<Arc<Store>>,
    pub deadline: Option<Instant>,
    pub live: Option<Arc<host_runtime::live::AttemptLive>>,
}

impl Caller {
    /// Commits with the store, off the async threads (so that concurrent
    /// calls of a batch share commits); `false` when there is no store.
    async fn commit(
        &self,
        f: impl FnOnce(&Store) -> host_store::Result<()> + Send + 'static,
    ) -> Result<bool, String> {
        let Some(store) = self.store.clone() else {
            return Ok(false);
        };
        match tokio::task::spawn_blocking(move || f(&store)).await {
            Ok(Ok(())) => Ok(true),
            Ok(Err(e)) => Err(e.to_string()),
            Err(e) => Err(format!("the commit did not finish: {e}")),
        }
    }

    /// Answers a call from a recording, the cache or the provider. A request
    /// to the provider is reserved against budgets and recorded as in
    /// flight before it is sent.
    pub(super) async fn answer(
        &self,
        call: &Prepared,
        sink: Option<&streaming::LiveSink>,
    ) -> Answer {
        let (alias, endpoint, request) = (call.alias.as_str(), &call.endpoint, &call.request);
        let hash = request_hash(alias, request);
        let n = self
            .exchanges
            .as_ref()
            .map_or(0, |x| x.occurrence(&self.stage_id, &hash));
        if let Some(exchanges) = &self.exchanges
            && let Some(replayed) = exchanges.replayed(&self.stage_id, &hash, n)
        {
            return Answer {
                response: replayed.map_err(wit::ModelError::Rejected),
                source: CallSource::Replay,
                retries: 0,
                abandoned: None,
            };
        }
        let cache_key = endpoint.spec.cache.then(|| endpoint.cache_key(request));
        if let (Some(key), Some(exchanges)) = (&cache_key, &self.exchanges)
            && let Some(hit) = exchanges.cached(key)
        {
            exchanges.record(
                &self.run_id,
                &self.stage_id,
                (&hash, n),
                alias,
                request,
                &hit,
            );
            return Answer {
                response: Ok(hit),
                source: CallSource::Cache,
                retries: 0,
                abandoned: None,
            };
        }
        let refused = |error| Answer {
            response: Err(error),
            source: CallSource::Refused,
            retries: 0,
            abandoned: None,
        };
        let mut estimate = estimate(endpoint, request);
        let mut capped = None;
        let reservation = match &self.ledger {
            Some(ledger) => match ledger.reserve_call(
                &self.stage_id,
                estimate.ask(endpoint),
                &self.run_budget,
                &self.stage_budget,
            ) {
                Ok((r, cap)) => {
                    if let Some(cap) = cap {
                        estimate.capped(endpoint, cap);
                        let mut within = request.clone();
                        within.max_tokens = Some(u32::try_from(cap).unwrap_or(u32::MAX));
                        capped = Some(within);
                    }
                    Some(r)
                }
                Err(why) => {
                    return refused(wit::ModelError::BudgetExceeded(format!(
                        "model '{alias}': {why}"
                    )));
                }
            },
            None => None,
        };
        // What is sent: the plugin's request, its answer's length capped to
        // what the budgets have left.
        let sending = capped.as_ref().unwrap_or(request);
        let sent = SentCall {
            alias: alias.to_string(),
            model: endpoint.provider.model().to_string(),
            session: call.session.clone(),
            input_tokens: u32::try_from(estimate.input).unwrap_or(u32::MAX),
            output_tokens: u32::try_from(estimate.output).unwrap_or(u32::MAX),
            cost_usd: estimate.cost_usd,
            sent_ms: host_vocab::now_ms(),
        };
        let (run, stage, key) = (self.run_id.clone(), self.stage_id.clone(), call.key);
        if let Err(e) = self
            .commit(move |s| s.model_call_sent(&run, &stage, key, &sent))
            .await
        {
            // Fail closed: a call the record would not know of is not made.
            if let (Some(ledger), Some(r)) = (&self.ledger, reservation) {
                ledger.settle(r, Usage::default());
            }
            return refused(wit::ModelError::Unavailable(format!(
                "model '{alias}': the call cannot be recorded, so it is not sent: {e}"
            )));
        }
        // The semaphore is never closed, so acquiring only waits.
        let _permit = match &endpoint.in_flight {
            Some(s) => s.clone().acquire_owned().await.ok(),
            None => None,
        };
        let deadline = match call.timeout {
            Some(t) => Some(
                self.deadline
                    .map_or(Instant::now() + t, |d| d.min(Instant::now() + t)),
            ),
            None => self.deadline,
        };
        let attempted = match call.timeout {
            None => {
                endpoint
                    .provider
                    .complete(sending, deadline, sink_of(sink))
                    .await
            }
            Some(t) => {
                let call = endpoint.provider.complete(sending, deadline, sink_of(sink));
                match tokio::time::timeout(t, call).await {
                    Ok(attempted) => attempted,
                    Err(_) => {
                        // Sent, and given up on: the provider may have answered
                        // (and charged) after all, so it costs its worst case.
                        if let (Some(ledger), Some(r)) = (&self.ledger, reservation) {
                            ledger.settle(r, estimate.usage());
                        }
                        return Answer {
                            response: Err(wit::ModelError::Unavailable(format!(
                                "model '{alias}': no answer within {} ms (the call's timeout-ms)",
                                t.as_millis()
                            ))),
                            source: CallSource::Provider,
                            retries: 0,
                            abandoned: Some(estimate),
                        };
                    }
                }
            }
        };
        let actual = match &attempted.result {
            Ok(r) => Usage {
                tokens: u64::from(r.input_tokens) + u64::from(r.output_tokens),
                cost_usd: endpoint.cost(r.input_tokens.into(), r.output_tokens.into()),
                calls: 1,
            },
            Err(_) => Usage::default(),
        };
        if let (Some(ledger), Some(r)) = (&self.ledger, reservation) {
            ledger.settle(r, actual);
        }
        if let (Ok(response), Some(exchanges)) = (&attempted.result, &self.exchanges) {
            exchanges.record(
                &self.run_id,
                &self.stage_id,
                (&hash, n),
                alias,
                request,
                response,
            );
            // A capped answer is not the answer to the request as asked.
            if let (Some(key), None) = (&cache_key, &capped) {
                exchanges.cache(key, response);
            }
        }
        Answer {
            response: attempted.result.map_err(|e| to_model_error(alias, &e)),
            source: CallSource::Provider,
            retries: attempted.retries,
            abandoned: None,
        }
    }

    /// Answers a call and commits its record (a refusal is left to
    /// [`Self::settle`], which folds identical ones); returns whether the
    /// record is committed.
    pub async fn complete_one(
        &self,
        call: &Prepared,
        forward: Option<streaming::Forward>,
    ) -> (Answer, ModelCall, bool) {
        let started = Instant::now();
        let sink = streaming::LiveSink::new(self.live.clone(), call.key.n, &call.alias)
            .forwarding(forward);
        let sink = sink.wanted().then_some(sink);
        let answer = self.answer(call, sink.as_ref()).await;
        if let Some(sink) = &sink {
            match &answer.response {
                Ok(r) => sink.answered(&r.text),
                Err(e) => sink.failed(&error_text(e)),
            }
        }
        let record = call.record(&answer, started.elapsed());
        if answer.source == CallSource::Refused {
            return (answer, record, false);
        }
        let (run, stage, key, r) = (
            self.run_id.clone(),
            self.stage_id.clone(),
            call.key,
            record.clone(),
        );
        let committed = match self
            .commit(move |s| s.model_call_done(&run, &stage, key, &r))
            .await
        {
            Ok(committed) => committed,
            Err(e) => {
                // The attempt's outcome commits it, or fails with the store.
                tracing::warn!(stage = %self.stage_id, "cannot commit a model call yet: {e}");
                false
            }
        };
        (answer, record, committed)
    }
}
