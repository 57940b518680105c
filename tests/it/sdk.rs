//! The real OpenAI Python SDK against a running gateway that serves the mock models:
//! `tests/sdk/test_openai_sdk.py` and `test_prometheus.py`, run with the project's virtualenv (`.venv`, made by `scripts/test.sh`, or `LLMCG_PYTHON`).
//! Without that Python the test says so and passes locally; under `CI=true` it fails instead,
//! so CI can never skip it.

use std::path::PathBuf;
use std::process::Command;

use crate::support::gateway::Gateway;

pub(crate) fn python() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("LLMCG_PYTHON") {
        return Some(PathBuf::from(p));
    }
    let venv = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(".venv/bin/python");
    let ok = venv.exists()
        && Command::new(&venv)
            .args(["-c", "import openai, pytest"])
            .status()
            .is_ok_and(|s| s.success());
    ok.then_some(venv)
}

#[test]
fn openai_python_sdk_drives_the_gateway() {
    let Some(python) = python() else {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "CI=true but no Python with openai and pytest: run scripts/test.sh (it makes .venv)"
        );
        eprintln!("SKIPPED: no .venv with openai + pytest; scripts/test.sh creates it");
        return;
    };
    let gateway = Gateway::start(&[]);
    let output = Command::new(python)
        .args(["-m", "pytest", "-q", "-p", "no:cacheprovider"])
        .args([
            "tests/sdk/test_openai_sdk.py",
            "tests/sdk/test_prometheus.py",
        ])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env("GATEWAY_BASE_URL", format!("http://{}/v1", gateway.addr))
        .output()
        .expect("pytest runs");
    let report = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    gateway.shutdown();
    assert!(output.status.success(), "the SDK tests failed:\n{report}");
    assert!(report.contains(" passed"), "pytest ran no test:\n{report}");
}
