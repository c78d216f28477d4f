//! The run record's moves, through the store's public operations, on a
//! real database in a temp directory.
use super::*;
use host_vocab::{Artifact, Metric};

fn run_record(id: &str, stages: &[&str]) -> RunRecord {
    RunRecord {
        id: id.into(),
        pipeline: "p".into(),
        manifest_path: "p.toml".into(),
        manifest_text: String::new(),
        status: RunStatus::Running,
        started_ms: now_ms(),
        finished_ms: None,
        owner: Owner::current(),
        stages: stages.iter().map(|s| s.to_string()).collect(),
        options: RunOptions::default(),
    }
}

fn output(text: &str) -> StageOutput {
    StageOutput {
        summary: text.into(),
        artifacts: vec![Artifact {
            name: "out.txt".into(),
            media_type: "text/plain".into(),
            bytes: text.as_bytes().to_vec(),
        }],
        metrics: vec![Metric {
            name: "score".into(),
            value: 0.5,
        }],
        decision: Some("ok".into()),
    }
}

fn stage<'a>(records: &'a [StageRecord], id: &str) -> &'a StageRecord {
    records.iter().find(|r| r.stage == id).unwrap()
}

fn open() -> (Store, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    (Store::open(dir.path()).unwrap(), dir)
}

#[test]
fn a_stage_runs_succeeds_and_its_output_reads_back() {
    let (store, _dir) = open();
    store.create_run(&run_record("r", &["a"])).unwrap();
    store.stage_started("r", "a", 1, None).unwrap();
    let record = store
        .stage_succeeded("r", "a", 1, &output("hello"), &[], &Activity::default())
        .unwrap();
    let run = store.run("r").unwrap();
    let a = stage(&store.stages(&run).unwrap(), "a").clone();
    assert_eq!(a.status, StageStatus::Succeeded);
    assert_eq!(a.attempts, 1);
    assert_eq!(store.load_output(&record).unwrap(), output("hello"));
    store.run_finished("r", RunStatus::Succeeded).unwrap();
    assert!(store.run("r").unwrap().finished_ms.is_some());
}

#[test]
fn a_succeeded_stage_cannot_start_or_succeed_again() {
    let (store, _dir) = open();
    store.create_run(&run_record("r", &["a"])).unwrap();
    store.stage_started("r", "a", 1, None).unwrap();
    store
        .stage_succeeded("r", "a", 1, &output("x"), &[], &Activity::default())
        .unwrap();
    let again = store.stage_started("r", "a", 2, None).unwrap_err();
    assert!(matches!(again, StoreError::Illegal { .. }), "{again}");
    let twice = store
        .stage_succeeded("r", "a", 1, &output("x"), &[], &Activity::default())
        .unwrap_err();
    assert!(
        twice.to_string().contains("succeeded -> succeeded"),
        "{twice}"
    );
    // Nothing of the refused moves was written.
    let events = store.events("r").unwrap();
    let started = events
        .iter()
        .filter(|e| matches!(e.event, Event::StageStarted { .. }))
        .count();
    assert_eq!(started, 1);
}

#[test]
fn a_retried_failure_keeps_the_stage_running_and_a_final_one_fails_it() {
    let (store, _dir) = open();
    store.create_run(&run_record("r", &["a"])).unwrap();
    let failure = StageFailure::Plugin {
        retryable: true,
        message: "flaky".into(),
    };
    store.stage_started("r", "a", 1, None).unwrap();
    store
        .stage_failed("r", "a", 1, &failure, true, &Activity::default())
        .unwrap();
    let run = store.run("r").unwrap();
    assert_eq!(
        stage(&store.stages(&run).unwrap(), "a").status,
        StageStatus::Running
    );
    store.stage_started("r", "a", 2, None).unwrap();
    store
        .stage_failed("r", "a", 2, &failure, false, &Activity::default())
        .unwrap();
    let a = stage(&store.stages(&run).unwrap(), "a").clone();
    assert_eq!(a.status, StageStatus::Failed);
    assert_eq!(a.attempts, 2);
}

#[test]
fn resume_interrupts_what_was_running_and_resets_all_but_successes() {
    let (store, _dir) = open();
    store
        .create_run(&run_record("r", &["done", "running", "failed", "waiting"]))
        .unwrap();
    store.stage_started("r", "done", 1, None).unwrap();
    store
        .stage_succeeded("r", "done", 1, &output("d"), &[], &Activity::default())
        .unwrap();
    store.stage_started("r", "running", 1, None).unwrap();
    store.stage_started("r", "failed", 1, None).unwrap();
    let fatal = StageFailure::Plugin {
        retryable: false,
        message: "no".into(),
    };
    store
        .stage_failed("r", "failed", 1, &fatal, false, &Activity::default())
        .unwrap();
    let reset = store.resume_run("r", Owner::current()).unwrap();
    assert_eq!(reset, ["running", "failed"]);
    let run = store.run("r").unwrap();
    assert_eq!(run.status, RunStatus::Running);
    let stages = store.stages(&run).unwrap();
    assert_eq!(stage(&stages, "done").status, StageStatus::Succeeded);
    for id in ["running", "failed", "waiting"] {
        assert_eq!(stage(&stages, id).status, StageStatus::Pending, "{id}");
    }
    let interrupted = store
        .events("r")
        .unwrap()
        .into_iter()
        .filter(|e| matches!(&e.event, Event::StageInterrupted { stage, .. } if stage == "running"))
        .count();
    assert_eq!(interrupted, 1);
}

#[test]
fn unknown_runs_and_stages_are_named() {
    let (store, _dir) = open();
    assert!(matches!(store.run("nope"), Err(StoreError::UnknownRun(_))));
    store.create_run(&run_record("r", &["a"])).unwrap();
    let err = store.stage_started("r", "b", 1, None).unwrap_err();
    assert!(matches!(err, StoreError::UnknownStage { .. }), "{err}");
}

#[test]
fn checkpoints_are_scoped_to_run_and_stage() {
    let (store, _dir) = open();
    store.kv_set("r", "a", "k", b"1").unwrap();
    assert_eq!(store.kv_get("r", "a", "k").unwrap(), Some(b"1".to_vec()));
    assert_eq!(store.kv_get("r", "b", "k").unwrap(), None);
    assert_eq!(store.kv_get("r2", "a", "k").unwrap(), None);
    store.kv_delete("r", "a", "k").unwrap();
    assert_eq!(store.kv_get("r", "a", "k").unwrap(), None);
}

#[test]
fn checkpoint_keys_are_listed_by_prefix_within_their_stage() {
    let (store, _dir) = open();
    for (stage, key) in [
        ("a", "page-2"),
        ("a", "page-1"),
        ("a", "pager"),
        ("a", "z"),
        ("b", "page-3"),
    ] {
        store.kv_set("r", stage, key, b"v").unwrap();
    }
    store.kv_set("r0", "a", "page-0", b"v").unwrap();
    assert_eq!(
        store.kv_keys("r", "a", "page-").unwrap(),
        ["page-1", "page-2"]
    );
    assert_eq!(
        store.kv_keys("r", "a", "").unwrap(),
        ["page-1", "page-2", "pager", "z"]
    );
    assert_eq!(store.kv_keys("r", "b", "").unwrap(), ["page-3"]);
    assert!(store.kv_keys("r", "c", "").unwrap().is_empty());
    assert!(store.kv_keys("r", "a", "zz").unwrap().is_empty());
}

#[test]
fn checkpoints_are_held_to_a_quota_per_stage_and_per_run() {
    let (store, _dir) = open();
    let store = store.with_kv_quota(crate::KvQuota {
        stage_keys: 3,
        stage_bytes: 1_000,
        run_keys: 5,
        run_bytes: 1_500,
    });
    let quota = |r: Result<()>| match r {
        Err(StoreError::Quota(hit)) => hit.to_string(),
        other => panic!("expected a quota refusal, got {other:?}"),
    };
    for k in ["k1", "k2", "k3"] {
        store.kv_set("r", "a", k, b"v").unwrap();
    }
    let why = quota(store.kv_set("r", "a", "k4", b"v"));
    assert!(why.contains("stage 'a' would hold 4 keys"), "{why}");
    // Replacing a key adds none; deleting one makes room.
    store.kv_set("r", "a", "k3", b"again").unwrap();
    store.kv_delete("r", "a", "k3").unwrap();
    store.kv_set("r", "a", "k4", b"v").unwrap();
    // Bytes: one big value under the stage's limit, another over it.
    store.kv_set("r", "b", "big", &[1; 700]).unwrap();
    let why = quota(store.kv_set("r", "b", "big2", &[1; 400]));
    assert!(why.contains("stage 'b'"), "{why}");
    // The run's quota counts every stage: c alone is well under its own.
    let why = quota(store.kv_set("r", "c", "x", &[1; 800]));
    assert!(why.contains("this run"), "{why}");
    store.kv_set("r", "c", "x", b"small").unwrap();
    let why = quota(store.kv_set("r", "c", "y", b"v"));
    assert!(why.contains("this run would hold 6 keys"), "{why}");
    // Another run has a quota of its own; what was refused was not kept.
    store.kv_set("r2", "a", "x", &[1; 800]).unwrap();
    assert_eq!(store.kv_get("r", "c", "y").unwrap(), None);
    assert_eq!(store.kv_get("r", "b", "big2").unwrap(), None);
}

#[test]
fn checkpoints_an_older_host_wrote_are_counted_once() {
    let (store, _dir) = open();
    store.kv_set("r", "a", "k1", b"v").unwrap();
    store.kv_set("r", "a", "k2", b"v").unwrap();
    // As an older host left them: checkpoints, no usage row.
    store
        .write(|txn| {
            txn.open_table(KV_USAGE)?.remove(("r", "a"))?;
            Ok(())
        })
        .unwrap();
    let store = store.with_kv_quota(crate::KvQuota {
        stage_keys: 2,
        ..crate::KvQuota::default()
    });
    let refused = store.kv_set("r", "a", "k3", b"v");
    assert!(matches!(refused, Err(StoreError::Quota(_))), "{refused:?}");
    store.kv_set("r", "a", "k2", b"replaced").unwrap();
}

#[test]
fn a_call_in_flight_counts_until_its_answer_or_its_attempts_end_settles_it() {
    use host_vocab::{CallKey, ModelCall, SentCall};
    let (store, _dir) = open();
    store.create_run(&run_record("r", &["a"])).unwrap();
    store.stage_started("r", "a", 1, None).unwrap();
    let key = |n| CallKey {
        iteration: 0,
        attempt: 1,
        n,
    };
    let sent = SentCall {
        alias: "m".into(),
        input_tokens: 10,
        output_tokens: 5,
        cost_usd: 0.25,
        ..SentCall::default()
    };
    store.model_call_sent("r", "a", key(0), &sent).unwrap();
    store.model_call_sent("r", "a", key(1), &sent).unwrap();
    let calls = |store: &Store| {
        let run = store.run("r").unwrap();
        stage(&store.stages(&run).unwrap(), "a").model_calls.clone()
    };
    // Both in flight: read back as unsettled, at their reserved worst case.
    let now = calls(&store);
    assert_eq!(now.len(), 2);
    assert!(
        now.iter()
            .all(|c| c.unsettled && c.is_paid() && c.cost_usd == 0.25)
    );

    let answered = ModelCall {
        alias: "m".into(),
        input_tokens: 3,
        output_tokens: 1,
        ..ModelCall::default()
    };
    store.model_call_done("r", "a", key(0), &answered).unwrap();
    // Recording the same call again (the attempt's end) is an update.
    store.model_call_done("r", "a", key(0), &answered).unwrap();
    let now = calls(&store);
    assert_eq!(now.len(), 2);
    assert!(!now[0].unsettled && now[0].input_tokens == 3);
    assert!(now[1].unsettled);

    // The attempt is interrupted: the call still in flight is settled as
    // unsettled for good, with its event.
    store.stage_interrupted("r", "a").unwrap();
    let now = calls(&store);
    assert_eq!(now.len(), 2);
    assert!(now[1].unsettled);
    let events = store.events("r").unwrap();
    let called = events
        .iter()
        .filter(|e| matches!(e.event, Event::ModelCalled { .. }))
        .count();
    let sent = events
        .iter()
        .filter(|e| matches!(e.event, Event::ModelCallSent { .. }))
        .count();
    assert_eq!((sent, called), (2, 2));
}

/// Writes `bytes` as the raw value of run `id`, bypassing the seal.
fn plant_run_value(store: &Store, id: &str, bytes: Vec<u8>) {
    store
        .write(|txn| {
            txn.open_table(RUNS)?.insert(id, bytes.as_slice())?;
            Ok(())
        })
        .unwrap();
}

fn raw_run_value(store: &Store, id: &str) -> Vec<u8> {
    store
        .read(|txn| Ok(txn.open_table(RUNS)?.get(id)?.unwrap().value().to_vec()))
        .unwrap()
}

#[test]
fn a_flipped_byte_in_a_record_is_damage_not_data() {
    let (store, _dir) = open();
    let mut record = run_record("r", &["a"]);
    record.manifest_text = "[pipeline]\nname = \"p\"\ntask = \"ship it\"\n".into();
    store.create_run(&record).unwrap();
    store.kv_set("r", "a", "k", b"checkpoint").unwrap();
    assert!(store.verify().unwrap().is_clean(), "{:?}", store.verify());
    // A flip that keeps the JSON valid: "ship it" -> "shiq it".
    let mut raw = raw_run_value(&store, "r");
    let at = raw.windows(7).position(|w| w == b"ship it").unwrap();
    raw[at + 3] ^= 1;
    plant_run_value(&store, "r", raw);
    let err = store.run("r").unwrap_err();
    assert!(err.to_string().contains("damaged"), "{err}");
    let report = store.verify().unwrap();
    assert_eq!(report.problems.len(), 1, "{report:?}");
    assert!(report.problems[0].contains("runs record r"), "{report:?}");
    assert_eq!(report.checked["kv"], 1);
    // A blob whose bytes changed under its hash is refused too.
    let record = {
        let fresh = run_record("s", &["a"]);
        store.create_run(&fresh).unwrap();
        store.stage_started("s", "a", 1, None).unwrap();
        store
            .stage_succeeded("s", "a", 1, &output("hello"), &[], &Activity::default())
            .unwrap()
    };
    let hash = record.artifacts[0].hash.clone();
    store
        .write(|txn| {
            txn.open_table(BLOBS)?
                .insert(hash.as_str(), b"hellp".as_slice())?;
            Ok(())
        })
        .unwrap();
    assert!(
        store
            .load_output(&record)
            .unwrap_err()
            .to_string()
            .contains("damaged")
    );
    assert!(
        store
            .verify()
            .unwrap()
            .problems
            .iter()
            .any(|p| p.contains("blob is damaged"))
    );
}

#[test]
fn a_database_of_schema_3_gets_its_records_sealed_when_opened_for_writing() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = Store::open(dir.path()).unwrap();
        store.create_run(&run_record("old", &["a"])).unwrap();
        store.kv_set("old", "a", "k", b"v").unwrap();
        // As a schema-3 host left it: unsealed values, version 3.
        let unseal = |v: Vec<u8>| seal::check(&v).unwrap().to_vec();
        let run = unseal(raw_run_value(&store, "old"));
        plant_run_value(&store, "old", run);
        store
            .write(|txn| {
                let mut kv = txn.open_table(KV)?;
                let v = kv.get(("old", "a", "k"))?.unwrap().value().to_vec();
                kv.insert(("old", "a", "k"), seal::check(&v).unwrap())?;
                let mut stages = txn.open_table(STAGES)?;
                let v = stages.get(("old", "a"))?.unwrap().value().to_vec();
                stages.insert(("old", "a"), seal::check(&v).unwrap())?;
                let mut events = txn.open_table(EVENTS)?;
                let all: Vec<(u64, Vec<u8>)> = events
                    .range(("old", 0)..=("old", u64::MAX))?
                    .map(|e| e.map(|(k, v)| (k.value().1, v.value().to_vec())))
                    .collect::<std::result::Result<_, _>>()?;
                for (seq, v) in all {
                    events.insert(("old", seq), seal::check(&v).unwrap())?;
                }
                txn.open_table(META)?.insert("schema_version", 3)?;
                Ok(())
            })
            .unwrap();
    }
    // Read-only, an old database is read as it is.
    let ro = Store::open_read_only(dir.path()).unwrap();
    assert_eq!(ro.run("old").unwrap().id, "old");
    drop(ro);
    // Opened for writing, it is migrated: everything sealed and checked.
    let store = Store::open(dir.path()).unwrap();
    assert_eq!(store.run("old").unwrap().id, "old");
    assert_eq!(store.kv_get("old", "a", "k").unwrap().unwrap(), b"v");
    assert!(seal::check(&raw_run_value(&store, "old")).is_ok());
    let report = store.verify().unwrap();
    assert!(report.is_clean(), "{report:?}");
}

#[test]
fn a_nan_metric_recorded_by_an_older_host_reads_back_as_nan() {
    // serde_json writes a NaN as null: before outputs were checked, a
    // plugin's 0/0 left such a record, and every read of it failed.
    let text = r#"{"summary":"s","decision":null,"metrics":[["ratio",null],["n",2.0]],"artifacts":[],"content_hash":"h","produced_by":["r","a"]}"#;
    let record: OutputRecord = serde_json::from_str(text).unwrap();
    assert!(record.metrics[0].1.is_nan());
    assert_eq!(record.metrics[1], ("n".to_string(), 2.0));
}

/// A finished run of one stage whose output holds `text`.
fn finished_run(store: &Store, id: &str, text: &str, started_ms: u64) {
    let mut record = run_record(id, &["a"]);
    record.started_ms = started_ms;
    store.create_run(&record).unwrap();
    store.stage_started(id, "a", 1, None).unwrap();
    store
        .stage_succeeded(id, "a", 1, &output(text), &[], &Activity::default())
        .unwrap();
    store.kv_set(id, "a", "k", b"v").unwrap();
    store.run_finished(id, RunStatus::Succeeded).unwrap();
}

#[test]
fn collecting_removes_old_runs_and_only_the_blobs_nothing_kept_names() {
    let (store, _dir) = open();
    finished_run(&store, "old", "only old has this", 1_000);
    finished_run(&store, "shared-1", "both have this", 2_000);
    finished_run(&store, "new", "both have this", 3_000);
    let running = run_record("live", &["a"]);
    store.create_run(&running).unwrap();

    // Beyond the 2 most recent finished runs; the running one never counts.
    let keep = |keep, older_than_ms, pipeline: Option<&str>| crate::Expiry {
        pipeline: pipeline.map(str::to_string),
        keep,
        older_than_ms,
    };
    let expired = store
        .expired_runs(&keep(Some(2), None, None), 10_000)
        .unwrap();
    assert_eq!(expired, ["old"]);
    // Older than 7.5 s at 10 s: started before 2.5 s.
    let expired = store
        .expired_runs(&keep(None, Some(7_500), None), 10_000)
        .unwrap();
    assert_eq!(expired, ["shared-1", "old"]);
    // Another pipeline's runs are not this one's to let go.
    let other = store.expired_runs(&keep(Some(1), None, Some("other")), 10_000);
    assert_eq!(other.unwrap(), Vec::<String>::new());

    let ids = vec!["old".to_string(), "shared-1".to_string()];
    let dry = store.collect(&ids, true).unwrap();
    assert_eq!(
        dry.blobs, 1,
        "only old's blob: new still names the shared one"
    );
    assert_eq!(dry.blob_bytes, "only old has this".len() as u64);
    assert!(store.run("old").is_ok(), "a dry run removes nothing");

    let done = store.collect(&ids, false).unwrap();
    assert_eq!(done, dry);
    assert!(matches!(store.run("old"), Err(StoreError::UnknownRun(_))));
    assert_eq!(store.kv_get("old", "a", "k").unwrap(), None);
    let new = store.run("new").unwrap();
    let out = stage(&store.stages(&new).unwrap(), "a")
        .output
        .clone()
        .unwrap();
    assert_eq!(store.load_output(&out).unwrap(), output("both have this"));
    assert!(store.verify().unwrap().is_clean());

    // Neither a running nor an unknown run can be removed.
    assert!(matches!(
        store.collect(&["live".to_string()], false),
        Err(StoreError::Busy { .. })
    ));
    assert!(store.collect(&["nope".to_string()], false).is_err());
}

#[test]
fn a_large_blob_is_chunked_and_read_in_ranges() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    store.create_run(&run_record("r", &["a"])).unwrap();
    store.stage_started("r", "a", 1, None).unwrap();
    // 2.5 chunks of a pattern whose bytes say where they are.
    let big: Vec<u8> = (0..(5 * blobs::CHUNK / 2))
        .map(|i| (i % 251) as u8)
        .collect();
    let mut out = output("small");
    out.artifacts.push(wit::Artifact {
        name: "big.bin".into(),
        media_type: "application/octet-stream".into(),
        bytes: big.clone(),
    });
    let record = store
        .stage_succeeded("r", "a", 1, &out, &[], &Activity::default())
        .unwrap();
    let hash = record.artifacts[1].hash.clone();
    assert_eq!(store.blob_size(&hash).unwrap(), Some(big.len() as u64));
    assert_eq!(store.blob(&hash).unwrap().unwrap(), big);
    // Across a chunk boundary, at the end, and past it.
    let at = blobs::CHUNK as u64 - 10;
    assert_eq!(
        store.blob_range(&hash, at, 20).unwrap().unwrap(),
        big[at as usize..at as usize + 20]
    );
    let end = big.len() as u64;
    assert_eq!(
        store.blob_range(&hash, end - 5, 100).unwrap().unwrap(),
        big[big.len() - 5..]
    );
    assert!(
        store
            .blob_range(&hash, end + 5, 100)
            .unwrap()
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        store.blob_range("0".repeat(64).as_str(), 0, 1).unwrap(),
        None
    );
    assert!(store.verify().unwrap().problems.is_empty());
    // A damaged chunk is found by a range over it and by verify, not
    // returned; a range elsewhere still reads.
    store
        .write(|txn| {
            txn.open_table(BLOB_CHUNKS)?
                .insert((hash.as_str(), 1), vec![7u8; blobs::CHUNK].as_slice())?;
            Ok(())
        })
        .unwrap();
    let err = store.blob_range(&hash, at, 20).unwrap_err().to_string();
    assert!(err.contains("chunk 1"), "{err}");
    assert!(store.blob(&hash).is_err());
    assert_eq!(store.blob_range(&hash, 0, 4).unwrap().unwrap(), big[..4]);
    assert!(!store.verify().unwrap().problems.is_empty());
}
