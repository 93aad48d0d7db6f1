//! `fuzz/corpus/` holds exactly the seeds `tally_fuzz::seeds` writes from real values, so the
//! corpus follows every format change. After one, rewrite it with
//! `TALLY_WRITE_SEEDS=1 cargo test --test seeds` (the README's test command, filtered).

use std::path::Path;

#[test]
fn the_seed_corpus_is_what_the_seed_writer_writes() {
    let corpus = Path::new(env!("CARGO_MANIFEST_DIR")).join("corpus");
    let write = std::env::var_os("TALLY_WRITE_SEEDS").is_some();
    let mut stale = Vec::new();
    for seed in tally_fuzz::seeds::seeds() {
        let path = corpus.join(seed.target).join(&seed.name);
        if write {
            std::fs::create_dir_all(path.parent().expect("a target directory"))
                .expect("the corpus directory is writable");
            std::fs::write(&path, &seed.bytes).expect("the corpus is writable");
        } else if std::fs::read(&path).ok().as_deref() != Some(seed.bytes.as_slice()) {
            stale.push(path.display().to_string());
        }
    }
    assert!(
        stale.is_empty(),
        "seeds differ from what the seed writer makes (a format changed?): {stale:?}; \
         rewrite them with TALLY_WRITE_SEEDS=1 cargo test --test seeds"
    );
}
