//! The contract's versions: a host loads every version it has shipped, so
//! a policy never breaks on an upgrade (design rule 12). The policies in
//! `host/tests/fixtures/contract-0.1.0/` are the examples as release 0.1.0
//! built them; they must load as 0.1.0 policies and pass their example's
//! cases as they are.

use crate::support;
use runner_scaler::policy::{Limits, PolicyEngine, CONTRACT};
use std::path::PathBuf;

const EXAMPLES: [&str; 4] = ["queue-depth", "business-hours", "cooldown", "buffered"];

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/contract-0.1.0")
        .join(format!("{name}.wasm"))
}

#[test]
fn policies_built_for_0_1_0_load_as_such_beside_the_current_ones() {
    let engine = PolicyEngine::new(Limits::default(), None).unwrap();
    for name in EXAMPLES {
        let old = engine.load(&fixture(name)).unwrap();
        assert_eq!(old.contract(), "runner-scaler:policy@0.1.0", "{name}");
        let new = engine.load(&support::policy_file(name)).unwrap();
        assert_eq!(new.contract(), CONTRACT, "{name}");
        assert_eq!(CONTRACT, "runner-scaler:policy@0.2.0");
    }
}

#[tokio::test]
async fn policies_built_for_0_1_0_pass_their_cases_unchanged() {
    let examples = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../policies");
    for name in EXAMPLES {
        let cases = examples.join(name).join("cases.toml");
        let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_runner-scaler"))
            .args(["policy", "test"])
            .arg(fixture(name))
            .arg(&cases)
            .output()
            .await
            .unwrap();
        let text = String::from_utf8_lossy(&output.stdout);
        assert!(
            output.status.success(),
            "{name}: {text}{}",
            String::from_utf8_lossy(&output.stderr)
        );
        assert!(
            text.contains("passed") && !text.contains("FAIL"),
            "{name}: {text}"
        );
    }
}
