//! Issue 27: one decision record. Every route — `once --json` (stdout and
//! its JSON log), the daemon's JSON log, Lambda's log and its answer — runs
//! the same pools against moto and the fake CircleCI API, and each record is
//! validated against `docs/decision-record.schema.json`. The same tick's
//! record is the same object on stdout and in the log; the documented `jq`
//! and Logs Insights examples run against what the daemon logged.

use crate::support;

use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::Duration;
use support::binary::*;
use support::fake_circleci::FakeCircleCi;
use support::fake_lambda::{scheduled_event, FakeLambda, Posted};
use support::moto::{Moto, TestGroup};

const SCHEMA: &str = include_str!("../../../docs/decision-record.schema.json");

/// The pools every route runs, and the group each has in moto (none for
/// `gone`, which is held): a WebAssembly policy with a WebAssembly shadow,
/// one that asks for a warm pool, one that always fails (the fallback
/// decides), a built-in rule.
const POOLS: [&str; 5] = ["live", "warm", "fails", "rule", "gone"];

fn pools_config(moto: &Moto, circleci: &FakeCircleCi) -> String {
    let wasm = |name: &str| support::policy_file(name).display().to_string();
    format!(
        "[circleci]\nbase_url = \"{}\"\n[aws]\nendpoint_url = \"{}\"\n[defaults]\nregion = \"{REGION}\"\nmax = 10\n\
         [[pool]]\nname = \"live\"\nresource_class = \"acme/live\"\ngroup = \"ci-live\"\npolicy = \"{}\"\n\
         shadow = \"{}\"\nshadow_params = {{ warm = 2 }}\n\
         [[pool]]\nname = \"warm\"\nresource_class = \"acme/warm\"\ngroup = \"ci-warm\"\npolicy = \"{}\"\n\
         [[pool]]\nname = \"fails\"\nresource_class = \"acme/fails\"\ngroup = \"ci-fails\"\npolicy = \"{}\"\n\
         [[pool]]\nname = \"rule\"\nresource_class = \"acme/rule\"\ngroup = \"ci-rule\"\npolicy = \"queue\"\n\
         [[pool]]\nname = \"gone\"\nresource_class = \"acme/gone\"\ngroup = \"ci-gone\"\npolicy = \"queue\"\n",
        circleci.base_url(),
        moto.endpoint(),
        wasm("queue-depth"),
        wasm("cooldown"),
        wasm("forecast"),
        wasm("refuses"),
    )
}

async fn world(moto: &Moto, circleci: &FakeCircleCi) {
    for pool in ["live", "warm", "fails", "rule"] {
        moto.create_group(
            REGION,
            &TestGroup::new(&format!("ci-{pool}")).desired(0).protected(),
        )
        .await;
    }
    moto.autoscaling(REGION)
        .await
        .put_warm_pool()
        .auto_scaling_group_name("ci-warm")
        .min_size(1)
        .max_group_prepared_capacity(1)
        .send()
        .await
        .unwrap();
    for (pool, waiting, running) in [
        ("live", 2, 1),
        ("warm", 1, 0),
        ("fails", 1, 0),
        ("rule", 3, 0),
        ("gone", 1, 0),
    ] {
        circleci.set_queue(&format!("acme/{pool}"), waiting, running);
    }
}

/// The decision lines of a JSON log (and nothing else: other lines, EMF
/// lines, must not look like records).
fn decision_lines(log: &str) -> Vec<Value> {
    log.lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|v| v["target"] == "decision")
        .collect()
}

/// A log line's record without the line's own keys.
fn without_envelope(line: &Value) -> Value {
    let mut record = line.clone();
    let object = record.as_object_mut().unwrap();
    assert!(
        matches!(object.remove("level"), Some(Value::String(_))),
        "{line}"
    );
    object.remove("target");
    record
}

fn validator() -> jsonschema::Validator {
    let schema: Value = serde_json::from_str(SCHEMA).expect("the schema is JSON");
    jsonschema::options()
        .should_validate_formats(true)
        .build(&schema)
        .expect("the schema is a valid JSON Schema")
}

/// Every record valid, or every error with its route and record.
fn validate_all(validator: &jsonschema::Validator, route: &str, records: &[Value]) {
    let errors: Vec<String> = records
        .iter()
        .flat_map(|record| {
            validator
                .iter_errors(record)
                .map(move |err| format!("{route}: {} at {}: {record}", err, err.instance_path()))
        })
        .collect();
    assert!(errors.is_empty(), "{}", errors.join("\n"));
}

/// One tick's records by pool (each pool once).
fn by_pool_name(records: impl Iterator<Item = Value>) -> BTreeMap<String, Value> {
    let mut by_pool = BTreeMap::new();
    for record in records {
        let pool = record["pool"].as_str().unwrap().to_string();
        assert!(
            by_pool.insert(pool, record).is_none(),
            "a pool twice in a tick"
        );
    }
    by_pool
}

/// Each pool's record keys (the first record of each pool).
fn keys_by_pool(records: &[Value]) -> BTreeMap<String, BTreeSet<String>> {
    let mut keys = BTreeMap::new();
    for record in records {
        let pool = record["pool"].as_str().unwrap().to_string();
        keys.entry(pool)
            .or_insert_with(|| record.as_object().unwrap().keys().cloned().collect());
    }
    keys
}

#[tokio::test]
async fn every_route_writes_the_one_record_and_each_validates_against_the_schema() {
    let moto = Moto::start();
    let circleci = FakeCircleCi::start(TOKEN).await;
    world(&moto, &circleci).await;
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("runner-scaler.toml");
    std::fs::write(&config, pools_config(&moto, &circleci)).unwrap();
    let cache = dir.path().join("cache");
    let cache_env = ("RUNNER_SCALER_CACHE_DIR", cache.to_str().unwrap());
    let validator = validator();
    let started = jiff::Timestamp::now();

    // once --json, with the JSON log.
    let output = runner_scaler(
        &[
            "--log-format",
            "json",
            "once",
            "--json",
            "--config",
            config.to_str().unwrap(),
        ],
        &[cache_env],
    )
    .await;
    let printed: Vec<Value> = serde_json::from_slice(&output.stdout)
        .unwrap_or_else(|err| panic!("once --json is not a JSON array ({err}): {}", text(&output)));
    let once_log = String::from_utf8_lossy(&output.stderr).to_string();
    let logged = decision_lines(&once_log);
    assert_eq!(printed.len(), POOLS.len(), "{}", text(&output));
    assert_eq!(logged.len(), POOLS.len(), "{once_log}");
    validate_all(&validator, "once --json", &printed);
    validate_all(&validator, "once's JSON log", &logged);
    for record in &printed {
        assert!(
            record.get("level").is_none() && record.get("target").is_none(),
            "{record}"
        );
    }
    // The same tick: the very same records (logged as each pool finishes,
    // printed in the pools' order).
    assert_eq!(
        by_pool_name(logged.iter().map(without_envelope)),
        by_pool_name(printed.iter().cloned())
    );
    let by_pool: BTreeMap<&str, &Value> = printed
        .iter()
        .map(|r| (r["pool"].as_str().unwrap(), r))
        .collect();
    let (live, warm, fails, rule, gone) = (
        by_pool["live"],
        by_pool["warm"],
        by_pool["fails"],
        by_pool["rule"],
        by_pool["gone"],
    );
    assert_eq!(
        live["policy_sha256"],
        sha256_of(&support::policy_file("queue-depth"))
    );
    assert_eq!(
        live["shadow_sha256"],
        sha256_of(&support::policy_file("cooldown"))
    );
    assert_eq!(
        (&live["desired"], &live["shadow_desired"]),
        (&3.into(), &5.into())
    );
    assert!(live["shadow_ms"].is_number(), "{live}");
    assert_eq!(live["action"], "applied");
    assert_eq!(live["capacity"]["desired"], 0, "the group as read: {live}");
    assert!(warm["capacity"]["warm_pool"].is_object(), "{warm}");
    assert!(warm["policy_warm"].is_number(), "{warm}");
    assert_eq!(fails["policy_error_kind"], "refused", "{fails}");
    assert_eq!(
        fails["policy_sha256"],
        sha256_of(&support::policy_file("refuses"))
    );
    assert!(rule.get("policy_sha256").is_none(), "built-in: {rule}");
    assert_eq!(
        (&gone["action"], &gone["held_because"]),
        (&"held".into(), &"group".into())
    );
    let levels: Vec<(&str, &str)> = logged
        .iter()
        .map(|l| (l["pool"].as_str().unwrap(), l["level"].as_str().unwrap()))
        .collect();
    assert!(levels.contains(&("gone", "WARN")) && levels.contains(&("rule", "INFO")));
    for record in &printed {
        let time: jiff::Timestamp = record["time"].as_str().unwrap().parse().unwrap();
        assert!(
            time >= started && time <= jiff::Timestamp::now(),
            "{record}"
        );
    }

    // The daemon, with the JSON log, for two ticks or more.
    let daemon_config = dir.path().join("daemon.toml");
    std::fs::write(
        &daemon_config,
        format!(
            "interval = \"1s\"\n{}",
            std::fs::read_to_string(&config).unwrap()
        ),
    )
    .unwrap();
    let listen = free_listen();
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_runner-scaler"))
        .args([
            "--log-format",
            "json",
            "run",
            "--listen",
            &listen,
            "--config",
        ])
        .arg(&daemon_config)
        .env("CIRCLECI_TOKEN", TOKEN)
        .env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "testing")
        .env(cache_env.0, cache_env.1)
        .kill_on_drop(true)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    wait_until(&listen, "/metrics", |_, body| {
        body.lines()
            .find_map(|l| l.strip_prefix("runner_scaler_ticks_total "))
            .and_then(|v| v.trim().parse::<f64>().ok())
            .is_some_and(|ticks| ticks >= 2.0)
    })
    .await;
    let (exit, daemon_log) = stop_daemon(&mut child).await;
    assert!(exit.success(), "{exit:?}: {daemon_log}");
    let daemon = decision_lines(&daemon_log);
    assert!(daemon.len() >= 2 * POOLS.len(), "{daemon_log}");
    validate_all(&validator, "the daemon's JSON log", &daemon);

    // Lambda: the bootstrap on the same configuration, one scheduled event.
    let lambda = FakeLambda::start([scheduled_event()]).await;
    let env: Vec<(String, String)> = [
        ("AWS_LAMBDA_RUNTIME_API", lambda.runtime_api()),
        ("AWS_LAMBDA_FUNCTION_NAME", "runner-scaler".into()),
        ("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "128".into()),
        ("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST".into()),
        ("LAMBDA_TASK_ROOT", dir.path().display().to_string()),
        ("RUNNER_SCALER_CONFIG", "runner-scaler.toml".into()),
        ("CIRCLECI_TOKEN", TOKEN.into()),
        ("AWS_ACCESS_KEY_ID", "testing".into()),
        ("AWS_SECRET_ACCESS_KEY", "testing".into()),
        ("AWS_REGION", REGION.into()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    let child = crate::lambda::bootstrap(&env, &cache);
    let posted = lambda.wait_for(1, Duration::from_secs(60)).await;
    let lambda_log = crate::lambda::stop(child).await;
    let answer = match posted.first() {
        Some((_, response @ Posted::Response { .. })) => response.json(),
        other => panic!("no answer: {other:?}\n{lambda_log}"),
    };
    let answered = answer["pools"].as_array().unwrap().clone();
    let lambda_lines = decision_lines(&lambda_log);
    assert_eq!(lambda_lines.len(), POOLS.len(), "{lambda_log}");
    validate_all(&validator, "Lambda's answer", &answered);
    validate_all(&validator, "Lambda's log", &lambda_lines);
    assert_eq!(
        by_pool_name(lambda_lines.iter().map(without_envelope)),
        by_pool_name(answered.iter().cloned()),
        "the answer is the log's records"
    );

    // One shape: each pool's record has the same keys on every route.
    let once_keys = keys_by_pool(&printed);
    assert_eq!(once_keys.len(), POOLS.len());
    let daemon_keys = keys_by_pool(&daemon.iter().map(without_envelope).collect::<Vec<_>>());
    assert_eq!(
        daemon_keys, once_keys,
        "the daemon's records and once's differ"
    );
    assert_eq!(
        keys_by_pool(&answered),
        once_keys,
        "Lambda's records and once's differ"
    );

    // The schema catches drift: an unknown key, a capitalised action.
    let mut drifted = live.clone();
    drifted["surprise"] = 1.into();
    assert!(!validator.is_valid(&drifted));
    let mut drifted = live.clone();
    drifted["action"] = "Applied".into();
    assert!(!validator.is_valid(&drifted));

    documented_queries_select_what_they_say(&daemon_log, &output.stdout);
}

/// The code blocks of a Markdown file, each with its info string.
fn code_blocks(markdown: &str) -> Vec<(String, String)> {
    let mut blocks = vec![];
    let mut open: Option<(String, String)> = None;
    for line in markdown.lines() {
        match (&mut open, line.trim_start().strip_prefix("```")) {
            (None, Some(info)) => open = Some((info.trim().to_string(), String::new())),
            (Some(_), Some(_)) => blocks.push(open.take().unwrap()),
            (Some((_, body)), None) => {
                body.push_str(line);
                body.push('\n');
            }
            (None, None) => {}
        }
    }
    blocks
}

/// Every `jq` example in the docs runs on recorded output: one reading
/// `runner-scaler.log` on the daemon's log, one after `| jq` on `once
/// --json`'s output; each prints JSON. Every Logs Insights query names only
/// record fields, and selects, by the emulation below, what the `jq` line
/// after it selects.
fn documented_queries_select_what_they_say(daemon_log: &str, once_json: &[u8]) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("runner-scaler.log"), daemon_log).unwrap();
    let schema: Value = serde_json::from_str(SCHEMA).unwrap();
    let properties = schema["properties"].as_object().unwrap();
    let records = decision_lines(daemon_log);
    let docs = Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs");
    let mut jq_lines = 0;
    let mut queries = 0;
    for doc in ["operating.md", "rolling-out.md"] {
        let text = std::fs::read_to_string(docs.join(doc)).unwrap();
        let mut pending_query: Option<(String, Vec<usize>)> = None;
        for (info, body) in code_blocks(&text) {
            if body.starts_with("fields ") {
                assert!(
                    pending_query.is_none(),
                    "{doc}: a query without its jq line"
                );
                let selected = logs_insights(&body, &records, properties);
                assert!(
                    !selected.is_empty(),
                    "{doc}: the query selects nothing:\n{body}"
                );
                pending_query = Some((body, selected));
                queries += 1;
                continue;
            }
            if !matches!(info.as_str(), "sh" | "bash" | "console") {
                continue;
            }
            for line in body.lines().filter(|l| l.contains("jq ")) {
                let (command, stdin) = match line.split_once("| jq ") {
                    Some((_, filter)) => (format!("jq {filter}"), once_json.to_vec()),
                    None => (line.trim().to_string(), vec![]),
                };
                let out = jq(&command, &stdin, dir.path());
                assert!(!out.is_empty(), "{doc}: `{line}` printed nothing");
                for printed in out.lines() {
                    serde_json::from_str::<Value>(printed)
                        .unwrap_or_else(|err| panic!("{doc}: `{line}` printed {printed} ({err})"));
                }
                if let Some((query, selected)) = pending_query.take() {
                    // The jq line after a query selects the same records.
                    let times: Vec<(String, String)> = out
                        .lines()
                        .map(|l| serde_json::from_str::<Value>(l).unwrap())
                        .map(|v| (v["time"].to_string(), v["pool"].to_string()))
                        .collect();
                    let expected: Vec<(String, String)> = selected
                        .iter()
                        .map(|&i| {
                            (
                                records[i]["time"].to_string(),
                                records[i]["pool"].to_string(),
                            )
                        })
                        .collect();
                    assert_eq!(times, expected, "{doc}: `{line}` and\n{query}");
                }
                jq_lines += 1;
            }
        }
        assert!(
            pending_query.is_none(),
            "{doc}: a query without its jq line"
        );
    }
    assert!(
        queries >= 1 && jq_lines >= 3,
        "{queries} queries, {jq_lines} jq lines"
    );
}

/// `command` (a `jq` command line, as the docs write it) through `sh`, in
/// `dir`, with `stdin`: what it printed.
fn jq(command: &str, stdin: &[u8], dir: &Path) -> String {
    use std::io::Write;
    let mut child = std::process::Command::new("sh")
        .args(["-c", command])
        .current_dir(dir)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("sh");
    child.stdin.take().unwrap().write_all(stdin).unwrap();
    let output = child.wait_with_output().unwrap();
    assert!(
        output.status.success(),
        "`{command}` failed (is jq installed? `cargo xtask test` installs it): {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap()
}

/// The indices of the records a CloudWatch Logs Insights query keeps, by an
/// emulation of the part of its language the docs use: `fields` (each a
/// record field or `@timestamp`), `filter` with `and`, `or`,
/// `ispresent(f)`, `f = "text"`, `f != g`, and `sort`/`limit` (which keep
/// the set). As in Logs Insights, a comparison with an absent field is
/// false. Anything else fails the test, so a doc cannot use untested syntax.
fn logs_insights(
    query: &str,
    records: &[Value],
    properties: &serde_json::Map<String, Value>,
) -> Vec<usize> {
    let field = |name: &str| {
        assert!(
            name.starts_with('@') || properties.contains_key(name),
            "the query names {name:?}, which is not a field of the record:\n{query}"
        );
    };
    let mut kept: Vec<usize> = (0..records.len()).collect();
    for command in query.split('|').map(str::trim) {
        let (verb, rest) = command.split_once(' ').unwrap_or((command, ""));
        match verb {
            "fields" => rest.split(',').map(str::trim).for_each(field),
            "sort" | "limit" => {}
            "filter" => kept.retain(|&i| {
                rest.split(" or ").any(|any| {
                    any.split(" and ")
                        .all(|term| condition(term.trim(), &records[i], &field))
                })
            }),
            other => panic!("Logs Insights command {other:?} is not emulated:\n{query}"),
        }
    }
    kept
}

/// One term of a `filter`, on `record`.
fn condition(term: &str, record: &Value, field: &dyn Fn(&str)) -> bool {
    if let Some(name) = term
        .strip_prefix("ispresent(")
        .and_then(|t| t.strip_suffix(')'))
    {
        field(name);
        return record.get(name).is_some();
    }
    let (left, equal, right) = if let Some((l, r)) = term.split_once("!=") {
        (l.trim(), false, r.trim())
    } else if let Some((l, r)) = term.split_once('=') {
        (l.trim(), true, r.trim())
    } else {
        panic!("filter term {term:?} is not emulated");
    };
    field(left);
    let Some(left) = record.get(left) else {
        return false;
    };
    let right = if let Some(text) = right.strip_prefix('"').and_then(|r| r.strip_suffix('"')) {
        Value::from(text)
    } else {
        field(right);
        match record.get(right) {
            Some(value) => value.clone(),
            None => return false,
        }
    };
    (left == &right) == equal
}
