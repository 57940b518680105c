//! The binary's command line: `--version`, `--help`, `--check`, and start-up refusing an
//! invalid configuration with one line naming the variable (exit code 2).

use std::process::{Command, Output};

fn run(args: &[&str], vars: &[(&str, &str)]) -> Output {
    let dir = crate::support::gateway::temp_dir("cli");
    let output = Command::new(env!("CARGO_BIN_EXE_llmcallgateway"))
        .args(args)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .envs(vars.iter().copied())
        .current_dir(&dir) // no .env from the repository
        .output()
        .unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
    output
}

#[test]
fn version_and_help_print_and_exit_zero() {
    let version = run(&["--version"], &[]);
    assert!(version.status.success());
    let text = String::from_utf8_lossy(&version.stdout);
    assert_eq!(
        text.trim(),
        format!("llmcallgateway {}", env!("CARGO_PKG_VERSION"))
    );
    let help = run(&["--help"], &[]);
    assert!(help.status.success());
    let text = String::from_utf8_lossy(&help.stdout);
    for name in ["PORT", "LITELLM_API_KEY", "LOG_BODIES", "--check"] {
        assert!(text.contains(name), "--help mentions {name}");
    }
}

#[test]
fn check_prints_the_effective_configuration_with_secrets_masked() {
    let key = "sk-test-FAKE-0123456789abcdefXYZ9";
    let out = run(&["--check"], &[("LITELLM_API_KEY", key), ("PORT", "9999")]);
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("PORT=9999"));
    assert!(text.contains("LITELLM_API_KEY=***XYZ9"));
    assert!(!text.contains(key));
}

#[test]
fn an_invalid_value_stops_start_up_with_one_line_naming_the_variable() {
    for (var, value) in [
        ("PORT", "abc"),
        ("LITELLM_BASE_URL", "not a url"),
        ("UPSTREAM_TIMEOUT", "-5"),
        ("LOG_BODIES", "everything"),
    ] {
        let out = run(&[], &[(var, value)]);
        assert_eq!(out.status.code(), Some(2), "{var}={value}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(err.trim().lines().count(), 1, "{err}");
        assert!(err.contains(var), "{err}");
    }
    let out = run(&["--bogus"], &[]);
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn a_dot_env_file_is_read_and_the_environment_wins() {
    let dir = crate::support::gateway::temp_dir("dotenv");
    std::fs::write(dir.join(".env"), "PORT=7001\nHOST=127.0.0.2\n").unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_llmcallgateway"))
        .arg("--check")
        .env_clear()
        .env("HOST", "127.0.0.3")
        .current_dir(&dir)
        .output()
        .unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("PORT=7001"), "{text}");
    assert!(text.contains("HOST=127.0.0.3"), "{text}");
}
