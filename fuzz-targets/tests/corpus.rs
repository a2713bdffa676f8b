//! The fuzz smoke of the test suite: every input the coverage-guided runs
//! kept (`fuzz/corpus/<target>/`, minimised and committed) goes through its
//! target again. A crash the fuzzer once found stays fixed.

use std::path::Path;

use glyco_fuzz_targets::{Target, run};

#[test]
fn every_committed_corpus_input_runs_clean() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/corpus");
    for target in Target::ALL {
        let dir = root.join(target.name());
        let entries = std::fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("{}: {e} (run fuzz/run.sh)", dir.display()));
        let mut count = 0;
        for entry in entries {
            let path = entry.unwrap().path();
            run(target, &std::fs::read(&path).unwrap());
            count += 1;
        }
        assert!(count > 0, "{} has an empty corpus", target.name());
    }
}
