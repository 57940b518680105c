//! The Vercel AI SDK (`ai` + `@ai-sdk/openai`, pinned in `tests/node/package.json` and its
//! lock file, installed by `scripts/test.sh` with `npm ci`) against a running gateway: its
//! default provider speaks the Responses API, `.completion()` the legacy completions
//! (`tests/node/ai_sdk.test.mjs`, run with Node's own test runner). Without the installed
//! packages a test says so and passes locally; under `CI=true` it fails instead.

use std::path::PathBuf;
use std::process::Command;

use crate::support::client::fixture;
use crate::support::gateway::Gateway;
use crate::support::upstream::{MockUpstream, Script, Step};

/// `tests/node` with its packages installed, else a skip (a failure under `CI=true`).
fn node_packages_or_skip() -> Option<PathBuf> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/node");
    let ok =
        dir.join("node_modules/ai").exists() && dir.join("node_modules/@ai-sdk/openai").exists();
    if !ok {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "CI=true but tests/node has no node_modules: run scripts/test.sh (it runs npm ci)"
        );
        eprintln!("SKIPPED: tests/node/node_modules missing; scripts/test.sh installs it");
    }
    ok.then_some(dir)
}

#[test]
fn vercel_ai_sdk_drives_responses_and_completions() {
    let Some(dir) = node_packages_or_skip() else {
        return;
    };
    // Anthropic plays the tool call (non-stream and stream) for the tool-call test.
    let anthropic = MockUpstream::start(|r| {
        if r.json()["stream"] == true {
            Script::sse(
                fixture("anthropic/stream_tool_call.sse")
                    .split("\n\n")
                    .filter(|b| !b.trim().is_empty())
                    .map(|b| Step::Raw(format!("{b}\n\n")))
                    .collect(),
            )
        } else {
            Script::fixture(200, "anthropic/response_tool_call.json")
        }
    });
    let base = anthropic.base_url();
    let gw = Gateway::start(&[
        ("ANTHROPIC_API_BASE", base.strip_suffix("/v1").unwrap()),
        ("ANTHROPIC_API_KEY", "sk-ant-test-fake-key"),
    ]);
    let output = Command::new("node")
        .args(["--test", "ai_sdk.test.mjs"])
        .current_dir(&dir)
        .env("GATEWAY_BASE_URL", format!("http://{}/v1", gw.addr))
        .output()
        .expect("node runs");
    let report = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        output.status.success(),
        "the AI SDK tests failed:\n{report}"
    );
    assert!(report.contains("# pass 4"), "not every test ran:\n{report}");
}
