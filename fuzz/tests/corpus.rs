//! Replays every fuzz target's seed corpus (`fuzz/corpus/<target>/`) and every input that ever
//! crashed it (`fuzz/regressions/<target>/`) on the stable toolchain, in the ordinary test run:
//! a crash found once stays fixed.

use std::path::{Path, PathBuf};

fn inputs(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut files: Vec<PathBuf> = entries
        .map(|entry| entry.expect("a readable corpus entry").path())
        .filter(|path| path.is_file())
        .collect();
    files.sort();
    files
}

#[test]
fn every_target_has_a_seed_corpus_and_runs_it_and_its_regressions_without_a_crash() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    for (name, body) in tally_fuzz::TARGETS {
        let seeds = inputs(&root.join("corpus").join(name));
        assert!(!seeds.is_empty(), "fuzz target {name} has no seed corpus");
        let regressions = inputs(&root.join("regressions").join(name));
        for path in seeds.iter().chain(&regressions) {
            let data = std::fs::read(path).expect("a readable corpus file");
            let outcome = std::panic::catch_unwind(|| body(&data));
            assert!(
                outcome.is_ok(),
                "fuzz target {name} crashed on {}",
                path.display()
            );
        }
    }
}

#[test]
fn every_libfuzzer_target_is_a_listed_body() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut binaries: Vec<String> = inputs(&root.join("targets").join("fuzz_targets"))
        .iter()
        .filter_map(|path| Some(path.file_stem()?.to_str()?.to_string()))
        .collect();
    binaries.sort();
    let mut listed: Vec<String> = tally_fuzz::TARGETS
        .iter()
        .map(|(name, _)| name.to_string())
        .collect();
    listed.sort();
    assert_eq!(
        binaries, listed,
        "fuzz/targets/fuzz_targets and TARGETS disagree"
    );
}
