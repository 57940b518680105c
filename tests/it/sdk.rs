//! The real OpenAI Python SDK against a running gateway that serves the mock models
//! (`tests/sdk/test_openai_sdk.py`, `test_prometheus.py`), and the helpers the provider
//! modules use to run theirs. They run with the project's virtualenv (`.venv`, made by
//! `scripts/test.sh`, or `LLMCG_PYTHON`). Without that Python a test says so and passes
//! locally; under `CI=true` it fails instead, so CI can never skip it.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Command;

use crate::support::gateway::Gateway;

/// The project's Python with openai and pytest (`LLMCG_PYTHON`, else `.venv`). Without one
/// the calling test is skipped with a note, except under `CI=true`, where that fails.
pub(crate) fn python_or_skip() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("LLMCG_PYTHON") {
        return Some(PathBuf::from(p));
    }
    let venv = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(".venv/bin/python");
    let ok = venv.exists()
        && Command::new(&venv)
            .args(["-c", "import openai, pytest"])
            .status()
            .is_ok_and(|s| s.success());
    if !ok {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "CI=true but no Python with openai and pytest: run scripts/test.sh (it makes .venv)"
        );
        eprintln!("SKIPPED: no .venv with openai + pytest; scripts/test.sh creates it");
    }
    ok.then_some(venv)
}

/// Runs pytest on `files` with `GATEWAY_BASE_URL` pointing at the gateway at `addr`; fails
/// on any failure, and when no test ran.
pub(crate) fn pytest(python: PathBuf, addr: SocketAddr, files: &[&str]) {
    pytest_with(python, addr, files, &[]);
}

/// [`pytest`] with more environment variables for the tests.
pub(crate) fn pytest_with(python: PathBuf, addr: SocketAddr, files: &[&str], env: &[(&str, &str)]) {
    let output = Command::new(python)
        .args(["-m", "pytest", "-q", "-p", "no:cacheprovider"])
        .args(files)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env("GATEWAY_BASE_URL", format!("http://{addr}/v1"))
        .envs(env.iter().copied())
        .output()
        .expect("pytest runs");
    let report = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(output.status.success(), "the SDK tests failed:\n{report}");
    assert!(report.contains(" passed"), "pytest ran no test:\n{report}");
}

#[test]
fn openai_python_sdk_drives_the_gateway() {
    let Some(python) = python_or_skip() else {
        return;
    };
    let gateway = Gateway::start(&[]);
    let files = [
        "tests/sdk/test_openai_sdk.py",
        "tests/sdk/test_prometheus.py",
        "tests/sdk/test_responses_sdk.py",
    ];
    pytest(python, gateway.addr, &files);
}
