//! README.md and its Chinese translation README.zh-CN.md stay in step: the same `##` and `###`
//! headings in the same number, and every configuration variable in both tables (README.md's
//! table is checked by a unit test in src/config.rs, next to `VARIABLES`).

use llmcallgateway::config::VARIABLES;

fn readme(name: &str) -> String {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
}

/// The heading lines outside code blocks that start with `prefix` (`"## "`, `"### "`).
fn headings(text: &str, prefix: &str) -> Vec<String> {
    let mut in_code = false;
    text.lines()
        .filter(|line| {
            if line.starts_with("```") {
                in_code = !in_code;
            }
            !in_code && line.starts_with(prefix)
        })
        .map(str::to_owned)
        .collect()
}

#[test]
fn chinese_readme_documents_every_configuration_variable() {
    let zh = readme("README.zh-CN.md");
    let missing: Vec<&str> = VARIABLES
        .iter()
        .map(|(name, _, _)| *name)
        .filter(|name| !zh.contains(&format!("| `{name}` |")))
        .collect();
    assert!(
        missing.is_empty(),
        "README.zh-CN.md's table lacks {missing:?}"
    );
}

#[test]
fn both_readmes_have_the_same_number_of_sections_and_subsections() {
    let (en, zh) = (readme("README.md"), readme("README.zh-CN.md"));
    for prefix in ["## ", "### "] {
        let (en, zh) = (headings(&en, prefix), headings(&zh, prefix));
        assert_eq!(
            en.len(),
            zh.len(),
            "README.md and README.zh-CN.md differ in {prefix:?} headings:\n{en:#?}\n{zh:#?}"
        );
    }
}
