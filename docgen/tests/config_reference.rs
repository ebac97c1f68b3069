//! `docs/config-reference.md` is what `ids2-docgen config-reference` generates from the schema
//! today, and the check that says so fails on a reference that differs.

use std::process::Command;

const DOCGEN: &str = env!("CARGO_BIN_EXE_ids2-docgen");

fn docs_dir() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs")
}

#[test]
fn the_config_reference_in_docs_is_generated_from_the_schema() {
    let out = Command::new(DOCGEN)
        .args(["config-reference", "--check"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn the_check_fails_on_a_reference_edited_by_hand() {
    let copy = tempfile::tempdir().unwrap();
    let text = std::fs::read_to_string(docs_dir().join("config-reference.md")).unwrap();
    let edited = text.replacen("| `workers` | `2` |", "| `workers` | `4` |", 1);
    assert_ne!(edited, text, "the reference lists capture.workers");
    std::fs::write(copy.path().join("config-reference.md"), edited).unwrap();

    let out = Command::new(DOCGEN)
        .args(["config-reference", "--check", "--docs"])
        .arg(copy.path())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(
        stderr.contains("| `workers` | `2` |"),
        "names the generated line: {stderr}"
    );
    assert!(
        stderr.contains("| `workers` | `4` |"),
        "and the edited one: {stderr}"
    );
    assert!(
        stderr.contains("cargo run -p ids2-docgen -- config-reference"),
        "and how to regenerate: {stderr}"
    );
}
