//! The NixOS module as nixos/tests/eval.nix evaluates it: nixpkgs' lib and option declarations
//! from `../shared/nixos-eval` (beside the repository, as in CI's clone), `nix-instantiate`
//! from Debian's nix-bin.

use std::path::Path;
use std::process::Command;

/// `attr` of nixos/tests/eval.nix (e.g. `scenarios.container`), evaluated strictly, as JSON.
/// `Err` says what this machine lacks to evaluate it; an evaluation that fails panics.
pub fn evaluate(attr: &str) -> Result<serde_json::Value, String> {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    let nixos_eval = repo.join("../shared/nixos-eval");
    let Ok(nixos_eval) = nixos_eval.canonicalize() else {
        return Err(format!(
            "needs {} (nixpkgs' lib and option declarations, beside the repository in CI)",
            nixos_eval.display()
        ));
    };
    let out = Command::new("nix-instantiate")
        // Debian's nix.conf names a build group that does not exist; evaluation builds nothing.
        .env("NIX_CONFIG", "build-users-group =")
        .args(["--eval", "--strict", "--json"])
        .arg(repo.join("nixos/tests/eval.nix"))
        .arg("--arg")
        .arg("nixosEval")
        .arg(&nixos_eval)
        .args(["-A", attr])
        .output()
        .map_err(|e| format!("needs nix-instantiate (Debian package nix-bin): {e}"))?;
    assert!(
        out.status.success(),
        "the NixOS evaluation failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(serde_json::from_slice(&out.stdout).expect("the evaluation prints JSON"))
}
