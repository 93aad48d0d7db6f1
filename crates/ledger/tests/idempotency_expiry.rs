//! Idempotency records are forgotten when their retention ends, by the first batch stamped past
//! it, so storage stays bounded; a key reused after that is a new request. A record whose lease
//! still runs is kept until the lease ends.

use tally_ledger::limits::{
    IDEMPOTENCY_EXPIRIES_PER_BATCH_MAX, NANOS_PER_MILLISECOND, NANOS_PER_SECOND,
};
use tally_ledger::{
    audit, BeginIdempotent, Command, CommandResult, CompleteIdempotent, IdempotencyBegun,
    IdempotencyKey, IdempotencyState, LedgerRead, MemStore,
};

const T0: u64 = 1_700_000_000 * NANOS_PER_SECOND;
const RETAIN_MS: u64 = 60_000;

fn begin(key: &str, lease_ms: u64) -> Command {
    Command::BeginIdempotent(BeginIdempotent {
        key: IdempotencyKey::new(key).unwrap(),
        request_hash: [7; 32],
        lease_ms,
        retain_ms: RETAIN_MS,
    })
}

fn complete(key: &str, attempt: u64) -> Command {
    Command::CompleteIdempotent(CompleteIdempotent {
        key: IdempotencyKey::new(key).unwrap(),
        request_hash: [7; 32],
        attempt,
        response: b"answer".to_vec(),
    })
}

fn run(store: &mut MemStore, commands: Vec<Command>, at_ns: u64) -> (Vec<String>, Vec<String>) {
    let applied = store.apply(&commands, at_ns).expect("batch within bounds");
    audit(store).expect("the audit holds after every batch");
    let codes = applied
        .results
        .iter()
        .map(|r| r.code().to_string())
        .collect();
    let forgotten = applied
        .forgotten
        .iter()
        .map(|k| k.as_str().to_string())
        .collect();
    (codes, forgotten)
}

fn key(text: &str) -> IdempotencyKey {
    IdempotencyKey::new(text).unwrap()
}

#[test]
fn a_completed_key_is_kept_for_its_retention_then_forgotten_and_reused_as_new() {
    let mut store = MemStore::new();
    run(
        &mut store,
        vec![begin("m1:k", 5_000), complete("m1:k", 1)],
        T0,
    );
    let record = store.idempotency(&key("m1:k")).expect("kept");
    assert_eq!(record.expires_at_ns, T0 + RETAIN_MS * NANOS_PER_MILLISECOND);

    // Just before the retention ends: the stored answer is replayed.
    let just_before = T0 + RETAIN_MS * NANOS_PER_MILLISECOND - 1;
    let (codes, forgotten) = run(&mut store, vec![begin("m1:k", 5_000)], just_before);
    assert_eq!(codes, vec!["completed"]);
    assert!(forgotten.is_empty());

    // The first batch at or past it forgets the record (an empty batch does: the timekeeper's).
    let after = T0 + RETAIN_MS * NANOS_PER_MILLISECOND;
    let (_, forgotten) = run(&mut store, vec![], after);
    assert_eq!(forgotten, vec!["m1:k"]);
    assert_eq!(store.idempotency(&key("m1:k")), None);
    assert!(store.idempotency_expiring(u64::MAX, 10).is_empty());

    // Reused afterwards, the key is a new request: attempt 1, run again.
    let results = store.apply(&[begin("m1:k", 5_000)], after + 1).unwrap();
    assert!(matches!(
        results.results[0],
        CommandResult::BeginIdempotent(Ok(IdempotencyBegun::Started { attempt: 1, .. }))
    ));
    audit(&store).unwrap();
}

#[test]
fn a_key_whose_lease_still_runs_is_kept_until_the_lease_ends() {
    let mut store = MemStore::new();
    // A long lease (one hour) on a short retention (one minute), never completed.
    run(&mut store, vec![begin("k", 3_600_000)], T0);
    let retention_end = T0 + RETAIN_MS * NANOS_PER_MILLISECOND;
    let (_, forgotten) = run(&mut store, vec![], retention_end);
    assert!(forgotten.is_empty(), "a running request's key must stay");
    let record = store.idempotency(&key("k")).expect("kept while leased");
    let lease_end = T0 + 3_600_000 * NANOS_PER_MILLISECOND;
    assert!(matches!(record.state, IdempotencyState::InProgress { .. }));
    assert_eq!(record.expires_at_ns, lease_end);
    // Still in progress in between: another gateway is told to wait, not handed the key.
    let (codes, _) = run(&mut store, vec![begin("k", 5_000)], retention_end + 1);
    assert_eq!(codes, vec!["idempotency_in_progress"]);
    let (_, forgotten) = run(&mut store, vec![], lease_end);
    assert_eq!(forgotten, vec!["k"]);
    assert_eq!(store.idempotency(&key("k")), None);
}

#[test]
fn a_take_over_keeps_the_first_begin_s_retention() {
    let mut store = MemStore::new();
    run(&mut store, vec![begin("k", 1_000)], T0);
    let later = T0 + 10 * NANOS_PER_SECOND;
    let (codes, _) = run(&mut store, vec![begin("k", 1_000)], later);
    assert_eq!(codes, vec!["started"]);
    let record = store.idempotency(&key("k")).unwrap();
    assert_eq!(record.expires_at_ns, T0 + RETAIN_MS * NANOS_PER_MILLISECOND);
}

#[test]
fn storage_stays_bounded_under_sustained_traffic() {
    // One new key per simulated second for ten minutes with a one-minute retention: the
    // store never holds much more than a minute of keys.
    let mut store = MemStore::new();
    let mut kept_max = 0;
    for second in 0..600u64 {
        let at_ns = T0 + second * NANOS_PER_SECOND;
        let name = format!("m1:key-{second}");
        run(
            &mut store,
            vec![begin(&name, 1_000), complete(&name, 1)],
            at_ns,
        );
        let mut kept = 0;
        store.scan_idempotency(&mut |_| kept += 1);
        kept_max = kept_max.max(kept);
    }
    assert!(
        kept_max <= 61,
        "{kept_max} records kept for a 60-key window"
    );
}

#[test]
fn one_batch_forgets_a_bounded_number_and_the_next_batches_the_rest() {
    let mut store = MemStore::new();
    let total = IDEMPOTENCY_EXPIRIES_PER_BATCH_MAX + 10;
    let commands: Vec<Command> = (0..total).map(|i| begin(&format!("k{i:05}"), 1)).collect();
    for chunk in commands.chunks(1_000) {
        run(&mut store, chunk.to_vec(), T0);
    }
    // Every key is due a second after the last one's retention began.
    let due = T0 + RETAIN_MS * NANOS_PER_MILLISECOND + NANOS_PER_SECOND;
    let (_, first) = run(&mut store, vec![], due);
    assert_eq!(first.len(), IDEMPOTENCY_EXPIRIES_PER_BATCH_MAX);
    let (_, second) = run(&mut store, vec![], due + 1);
    assert_eq!(second.len(), 10);
    let mut kept = 0;
    store.scan_idempotency(&mut |_| kept += 1);
    assert_eq!(kept, 0);
}
