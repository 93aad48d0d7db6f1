//! `apply` on full batches of 8,190 transfers across 10,000 accounts, in memory.
//!
//! Run: `cargo bench -p tally-ledger --bench apply`.
//! - `apply_pure`: the deterministic state-machine step alone (reads, overlay, checks, hash
//!   chain, sorted change set) against a fixed store: the cost a replica pays per batch before I/O.
//! - `apply_and_commit`: the same plus writing the change set into the in-memory store.

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use std::hint::black_box;
use tally_ledger::limits::{BATCH_COMMANDS_MAX, NANOS_PER_SECOND};
use tally_ledger::{
    apply, AccountFlags, AccountId, Command, Currency, MemStore, Metadata, NewAccount, NewTransfer,
    TransferId, TransferKind,
};

const ACCOUNTS: u128 = 10_000;
const T0: u64 = 1_700_000_000 * NANOS_PER_SECOND;

fn store_with_accounts() -> MemStore {
    let mut store = MemStore::new();
    let accounts: Vec<Command> = (1..=ACCOUNTS)
        .map(|id| {
            Command::CreateAccount(NewAccount {
                id: AccountId(id),
                currency: Currency::USD,
                code: 1,
                flags: AccountFlags::NONE,
                metadata: Metadata::default(),
                linked: false,
            })
        })
        .collect();
    for (i, chunk) in accounts.chunks(BATCH_COMMANDS_MAX).enumerate() {
        let applied = store.apply(chunk, T0 + i as u64).expect("batch in bounds");
        assert!(applied.results.iter().all(|r| r.is_ok()));
    }
    store
}

/// A full batch of single transfers with ids from `first_id`, spread over all accounts.
fn transfer_batch(first_id: u128) -> Vec<Command> {
    (0..BATCH_COMMANDS_MAX as u128)
        .map(|i| {
            let n = first_id + i;
            // 0-based indices; the offset 1..ACCOUNTS-1 keeps the two sides apart.
            let debit_index = n * 7_919 % ACCOUNTS;
            let credit_index = (debit_index + 1 + n * 104_729 % (ACCOUNTS - 1)) % ACCOUNTS;
            let (debit, credit) = (debit_index + 1, credit_index + 1);
            assert_ne!(debit, credit);
            Command::CreateTransfer(NewTransfer {
                id: TransferId(n),
                kind: TransferKind::Single {
                    debit_account_id: AccountId(debit),
                    credit_account_id: AccountId(credit),
                    amount_minor: 1 + (n % 10_000) as u64,
                    currency: Currency::USD,
                },
                code: 1,
                metadata: Metadata::default(),
                linked: false,
            })
        })
        .collect()
}

fn bench_apply(c: &mut Criterion) {
    let mut group = c.benchmark_group("apply_8190_transfers_10000_accounts");
    group.throughput(Throughput::Elements(BATCH_COMMANDS_MAX as u64));
    group.sample_size(20);

    let store = store_with_accounts();
    let batch = transfer_batch(1);
    group.bench_function("apply_pure", |b| {
        b.iter(|| {
            let applied = apply(&store, black_box(&batch), T0 + NANOS_PER_SECOND).unwrap();
            debug_assert!(applied.results.iter().all(|r| r.is_ok()));
            applied
        })
    });

    let mut store = store_with_accounts();
    let mut next_id: u128 = 1;
    let mut now_ns = T0 + NANOS_PER_SECOND;
    group.bench_function("apply_and_commit", |b| {
        b.iter_batched(
            || {
                let batch = transfer_batch(next_id);
                next_id += BATCH_COMMANDS_MAX as u128;
                now_ns += NANOS_PER_SECOND;
                (batch, now_ns)
            },
            |(batch, now_ns)| store.apply(&batch, now_ns).unwrap(),
            BatchSize::LargeInput,
        )
    });
    group.finish();
}

criterion_group!(benches, bench_apply);
criterion_main!(benches);
