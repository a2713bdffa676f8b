//! Running Debian's `rauc`: one way for `info`, `install` and `status
//! mark-*`, each mapping its failure to its own error.

use std::ffi::OsStr;
use std::path::Path;
use std::process::Stdio;

use super::UpdateError;
use super::check::last_line;

/// Runs `rauc` with `args`. Its standard output when it succeeded; when it
/// ran and failed, `Ok(Err(..))` with the last line of its standard error
/// (or `otherwise`); an error when it could not run at all.
pub(super) async fn run<S: AsRef<OsStr>>(
    rauc: &Path,
    args: &[S],
    otherwise: &str,
) -> Result<Result<Vec<u8>, String>, UpdateError> {
    let output = tokio::process::Command::new(rauc)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .await
        .map_err(|e| UpdateError::Rauc(format!("{}: {e}", rauc.display())))?;
    Ok(if output.status.success() {
        Ok(output.stdout)
    } else {
        Err(last_line(&output.stderr, otherwise))
    })
}
