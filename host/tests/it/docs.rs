//! Docs that say what the code and the stack do, checked against them so
//! they cannot go stale: the stack's parameter table in
//! `docs/deploying.md` (generated from the template: `RUNNER_SCALER_BLESS=1
//! cargo test --test it docs::` rewrites it), the names
//! `docs/circleci-setup.md` gives (parameters, secret fields, variables),
//! and the runner token's source in `userdata/README.md`.

use serde_json::Value;
use std::path::PathBuf;

const START: &str = "<!-- parameter table: generated from examples/cloudformation/runner-scaler.yaml by host/tests/it/docs.rs -->";
const END: &str = "<!-- end of parameter table -->";

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn read(path: &str) -> String {
    std::fs::read_to_string(repo().join(path)).unwrap_or_else(|err| panic!("{path}: {err}"))
}

fn template() -> Value {
    serde_norway::from_str(&read("examples/cloudformation/runner-scaler.yaml")).unwrap()
}

/// A template value as the table shows it.
fn shown(value: &Value) -> String {
    match value {
        Value::String(s) if s.is_empty() => "empty".into(),
        Value::String(s) => format!("`{s}`"),
        other => format!("`{other}`"),
    }
}

/// The parameter table, from the template: every parameter in the order
/// of its parameter groups (the console's), its default or "required", and
/// its description.
fn parameter_table(template: &Value) -> String {
    let parameters = template["Parameters"].as_object().unwrap();
    let mut order: Vec<String> = vec![];
    for group in template["Metadata"]["AWS::CloudFormation::Interface"]["ParameterGroups"]
        .as_array()
        .unwrap()
    {
        for name in group["Parameters"].as_array().unwrap() {
            order.push(name.as_str().unwrap().to_string());
        }
    }
    for name in parameters.keys() {
        if !order.contains(name) {
            order.push(name.clone());
        }
    }
    let mut table = String::from("| parameter | default | what it is |\n| --- | --- | --- |\n");
    for name in order {
        let parameter = &parameters[&name];
        let default = match parameter.get("Default") {
            Some(value) => shown(value),
            None => "required".into(),
        };
        let mut what = parameter["Description"]
            .as_str()
            .unwrap_or_else(|| panic!("{name} has no Description"))
            .replace('|', "\\|");
        if let Some(allowed) = parameter["AllowedValues"].as_array() {
            let allowed: Vec<String> = allowed.iter().map(shown).collect();
            what.push_str(&format!(" One of {}.", allowed.join(", ")));
        }
        if parameter["NoEcho"] == true {
            what.push_str(" Never shown (NoEcho).");
        }
        table.push_str(&format!("| `{name}` | {default} | {what} |\n"));
    }
    table
}

#[test]
fn the_deploying_guide_has_the_stacks_parameters_as_the_template_has_them() {
    let path = repo().join("docs/deploying.md");
    let doc = std::fs::read_to_string(&path).unwrap();
    let start = doc.find(START).expect("the parameter table's start marker") + START.len();
    let end = doc[start..].find(END).expect("its end marker") + start;
    let expected = format!("\n{}", parameter_table(&template()));
    if std::env::var_os("RUNNER_SCALER_BLESS").is_some() {
        std::fs::write(&path, format!("{}{expected}{}", &doc[..start], &doc[end..])).unwrap();
        return;
    }
    assert!(
        doc[start..end] == expected,
        "docs/deploying.md's parameter table is stale: `RUNNER_SCALER_BLESS=1 cargo test -p runner-scaler --test it docs::` rewrites it from the template. Expected:\n{expected}"
    );
}

/// Every name `docs/circleci-setup.md` gives in backticks that looks like
/// a stack parameter, a variable or a configuration key is one the stack,
/// the code or the user data has; the secret's shape is the one
/// `runner_secret.rs` reads.
#[test]
fn the_circleci_guide_names_what_exists() {
    let doc = read("docs/circleci-setup.md");
    let template = template();
    let sources = [
        read("host/src/config.rs"),
        read("host/src/runner_secret.rs"),
        read("userdata/install-runner-ubuntu.sh"),
    ]
    .join("\n");
    let spans: Vec<&str> = doc.split('`').skip(1).step_by(2).collect();
    let mut checked = 0;
    for span in &spans {
        let word = *span;
        let is_parameter = word.chars().next().is_some_and(|c| c.is_ascii_uppercase())
            && word.chars().any(|c| c.is_ascii_lowercase())
            && word.chars().all(|c| c.is_ascii_alphanumeric());
        let is_variable = word.len() > 3
            && word
                .chars()
                .all(|c| c.is_ascii_uppercase() || c == '_' || c.is_ascii_digit());
        if is_parameter {
            assert!(
                template["Parameters"].get(word).is_some()
                    || template["Resources"].get(word).is_some(),
                "{word} is neither a parameter nor a resource of the stack"
            );
            checked += 1;
        } else if is_variable || word.starts_with("circleci.") {
            let key = word.trim_start_matches("circleci.");
            assert!(sources.contains(key), "{word} is not read anywhere");
            checked += 1;
        }
    }
    assert!(checked >= 10, "only {checked} names checked");
    for token in ["CircleToken", "RunnerToken"] {
        assert_eq!(template["Parameters"][token]["NoEcho"], true, "{token}");
    }
    let shape = format!(
        "{{\"{}\": \"...\", \"{}\": \"namespace/name\"}}",
        runner_scaler::runner_secret::TOKEN_FIELD,
        runner_scaler::runner_secret::RESOURCE_CLASS_FIELD
    );
    assert!(doc.contains(&shape), "the secret's shape is {shape}");
}

/// The user data's token source: its own default (when run by hand) and
/// what the stack sets, both as `userdata/README.md` says.
#[test]
fn the_user_data_readme_gives_the_token_source_the_script_and_the_stack_use() {
    let script = read("userdata/install-runner-ubuntu.sh");
    let default = script
        .lines()
        .find_map(|line| line.strip_prefix("RUNNER_TOKEN_SOURCE=\"${RUNNER_TOKEN_SOURCE:-"))
        .and_then(|rest| rest.split_once("}\"").map(|(default, _comment)| default))
        .expect("the script's RUNNER_TOKEN_SOURCE default");
    let template = read("examples/cloudformation/runner-scaler.yaml");
    let stack = template
        .lines()
        .find_map(|line| line.trim().strip_prefix("export RUNNER_TOKEN_SOURCE="))
        .expect("the stack's RUNNER_TOKEN_SOURCE");
    let readme = read("userdata/README.md");
    let row = readme
        .lines()
        .find(|line| line.starts_with("| `RUNNER_TOKEN_SOURCE` |"))
        .expect("the settings table's RUNNER_TOKEN_SOURCE row");
    let cells: Vec<&str> = row.split('|').map(str::trim).collect();
    assert_eq!(cells[2], format!("`{default}`"), "{row}");
    assert!(
        cells[3].contains(&format!("`{stack}`")),
        "the row must say what the stack sets ({stack}): {row}"
    );
}
