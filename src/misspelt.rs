//! Warnings for environment and `.env` variables that look like misspelt gateway variables:
//! a name within a typo or two of a known one (`LOG_LEVLE`, `port`), or one with a prefix only
//! the gateway uses (`LOG_`, `GEMINI_`, `ANTHROPIC_` …) that it does not read
//! (`ANTHROPIC_BASE_URL`). Each warning names the closest known variable. Other programs'
//! variables (`HOME`, `PATH`, `AWS_PROFILE`) are left alone.

use std::collections::BTreeSet;

use crate::config::VARIABLES;
use crate::providers::registry::PROVIDERS;

/// Prefixes no other common program's variables use: a variable with one is meant for us.
const OURS: &[&str] = &[
    "LOG_",
    "LITELLM_",
    "GEMINI_",
    "ANTHROPIC_",
    "COHERE_",
    "BEDROCK_",
    "AZURE_API_",
    "EXPLORER_",
    "UPSTREAM_",
    "CLIENT_",
    "KEEPALIVE_",
    "SHUTDOWN_",
    "STREAM_IDLE",
];

/// Every variable the gateway reads by name.
fn known() -> BTreeSet<&'static str> {
    let mut names: BTreeSet<&'static str> = VARIABLES
        .iter()
        .map(|(name, _, _)| *name)
        .filter(|name| !name.starts_with('<'))
        .collect();
    for provider in PROVIDERS {
        names.extend(provider.key_vars.iter().chain(provider.base_vars));
        for extra in provider.extra_vars {
            names.insert(extra.var);
            names.extend(extra.aliases);
        }
    }
    names
}

/// One warning per name in `names` that looks like a misspelt gateway variable.
pub fn warnings<'a>(names: impl IntoIterator<Item = &'a str>) -> Vec<String> {
    let known = known();
    let mut out = Vec::new();
    for name in names {
        if known.contains(name) {
            continue;
        }
        let upper = name.to_ascii_uppercase();
        let Some((closest, edits)) = known
            .iter()
            .map(|k| (*k, distance(&upper, k)))
            .min_by_key(|(k, d)| (*d, k.len()))
        else {
            continue;
        };
        let close = edits <= if upper.len() <= 5 { 1 } else { 2 };
        if close {
            let case = if edits == 0 {
                " (names are case-sensitive)"
            } else {
                ""
            };
            out.push(format!(
                "{name} is not a variable the gateway reads; did you mean {closest}?{case}"
            ));
        } else if let Some(prefix) = OURS.iter().find(|p| upper.starts_with(*p)) {
            // A URL is a base, a key a key, whatever the words around them.
            let topic = if ["URL", "BASE", "ENDPOINT", "HOST"]
                .iter()
                .any(|w| upper.contains(w))
            {
                "BASE"
            } else if ["KEY", "TOKEN", "SECRET"].iter().any(|w| upper.contains(w)) {
                "KEY"
            } else {
                ""
            };
            let same_prefix = known
                .iter()
                .filter(|k| k.starts_with(prefix))
                .min_by_key(|k| (!k.contains(topic), distance(&upper, k)))
                .unwrap_or(&closest);
            out.push(format!(
                "{name} is not a variable the gateway reads; the closest one is {same_prefix} (see --help)"
            ));
        }
    }
    out
}

/// Warnings for the process environment and `./.env`.
pub fn check_environment() -> Vec<String> {
    let mut names: BTreeSet<String> = std::env::vars_os()
        .filter_map(|(k, _)| k.into_string().ok())
        .collect();
    if let Ok(entries) = dotenvy::from_path_iter(".env") {
        names.extend(entries.flatten().map(|(k, _)| k));
    }
    warnings(names.iter().map(String::as_str))
}

/// Edits (insert, delete, substitute, swap two neighbours) from `a` to `b`.
fn distance(a: &str, b: &str) -> usize {
    let (a, b): (Vec<char>, Vec<char>) = (a.chars().collect(), b.chars().collect());
    let mut d = vec![vec![0usize; b.len() + 1]; a.len() + 1];
    for (i, row) in d.iter_mut().enumerate() {
        row[0] = i;
    }
    for (j, cell) in d[0].iter_mut().enumerate() {
        *cell = j;
    }
    for i in 1..=a.len() {
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut best = (d[i - 1][j] + 1)
                .min(d[i][j - 1] + 1)
                .min(d[i - 1][j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                best = best.min(d[i - 2][j - 2] + 1);
            }
            d[i][j] = best;
        }
    }
    d[a.len()][b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn typos_and_our_prefixes_are_named_with_the_closest_variable() {
        let w = warnings([
            "LOG_LEVLE",
            "port",
            "ANTHROPIC_BASE_URL",
            "GEMINI_KEY",
            "PROT",
        ]);
        assert_eq!(w.len(), 5, "{w:?}");
        assert!(w[0].contains("did you mean LOG_LEVEL?"), "{}", w[0]);
        assert!(w[1].contains("did you mean PORT? (names are case-sensitive)"));
        assert!(
            w[2].contains("the closest one is ANTHROPIC_API_BASE"),
            "{}",
            w[2]
        );
        assert!(w[3].contains("GEMINI_API_KEY"), "{}", w[3]);
        assert!(w[4].contains("did you mean PORT?"), "{}", w[4]);
    }

    #[test]
    fn known_and_other_programs_variables_are_left_alone() {
        let names = [
            "PORT",
            "LOG_LEVEL",
            "GROQ_API_KEY",
            "GOOGLE_API_KEY",
            "AWS_DEFAULT_REGION",
            "HOME",
            "PATH",
            "HOSTNAME",
            "LOGNAME",
            "TMPDIR",
            "AWS_PROFILE",
            "OPENAI_ORG_ID",
            "TERM",
            "USER",
            "SHELL",
            "LANG",
            "PWD",
            "CI",
        ];
        assert_eq!(warnings(names), Vec::<String>::new());
    }
}
