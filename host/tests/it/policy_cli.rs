//! The policy author's commands, through the built binary: `policy test`
//! (passing, failing and malformed case files), `policy eval` with sample
//! observations, and `policy new`, whose scaffold must pass its own unit
//! tests, build to a component and pass its own cases.
//!
//! The example policies are built by `cargo xtask policies` into
//! `target/policies/`. The scaffold tests build WebAssembly, so they need the
//! toolchains `cargo xtask test` finds or installs (a WASM target for Rust,
//! componentize-py and componentize-js, named by `COMPONENTIZE_PY` and
//! `COMPONENTIZE_JS`); they fail, rather than skip, without them.

use crate::support;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

const BINARY: &str = env!("CARGO_BIN_EXE_runner-scaler");

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

fn run(command: &mut Command) -> Output {
    let output = command.output().unwrap();
    eprintln!(
        "{command:?}\n--- stdout\n{}--- stderr\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

fn runner_scaler(args: &[&str]) -> Command {
    let mut command = Command::new(BINARY);
    command.args(args).env("RUST_LOG", "warn");
    command
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// `policy test` on `queue-depth` with `cases`, written to a temporary file.
fn policy_test(cases: &str, extra: &[&str]) -> (Output, PathBuf, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("cases.toml");
    std::fs::write(&file, cases).unwrap();
    let policy = support::policy_file("queue-depth");
    let mut command = runner_scaler(&["policy", "test"]);
    command.arg(&policy).arg(&file).args(extra);
    (run(&mut command), file, dir)
}

const GOOD_CASES: &str = r#"
[defaults]
capacity = { max = 5 }

[[case]]
name = "one instance per job"
queue = { waiting = 2, running = 1 }
desired = 3
reason_contains = "2 waiting + 1 running"

[[case]]
name = "max reached"
queue = { waiting = 9 }
desired_between = [5, 5]
kept_state = false
"#;

#[test]
fn passing_cases_exit_zero_and_say_so() {
    let (output, _, _dir) = policy_test(GOOD_CASES, &[]);
    assert_eq!(output.status.code(), Some(0));
    let out = stdout(&output);
    assert!(out.contains("ok      one instance per job\n"), "{out}");
    assert_eq!(out.lines().last(), Some("2 passed, 0 failed"));
}

#[test]
fn a_wrong_expectation_fails_and_shows_both_values() {
    let cases = format!(
        "{GOOD_CASES}\n[[case]]\nname = \"deliberately wrong\"\nqueue = {{ waiting = 3 }}\ndesired = 4\n"
    );
    let (output, file, _dir) = policy_test(&cases, &[]);
    assert_eq!(output.status.code(), Some(1));
    let out = stdout(&output);
    let line = cases
        .lines()
        .position(|l| l == "name = \"deliberately wrong\"")
        .unwrap(); // the [[case]] header is the line before, 1-based: the same number
    assert!(
        out.contains(&format!(
            "FAILED  deliberately wrong  ({}:{line})",
            file.display()
        )),
        "{out}"
    );
    assert!(out.contains("desired: expected 4, got 3"), "{out}");
    assert!(out.contains("reason: 3 waiting + 0 running"), "{out}");
    assert_eq!(out.lines().last(), Some("2 passed, 1 failed"));
}

#[test]
fn json_output_is_for_machines() {
    let cases = format!("{GOOD_CASES}\n[[case]]\nname = \"wrong\"\nerror = \"boom\"\n");
    let (output, _, _dir) = policy_test(&cases, &["--json"]);
    assert_eq!(output.status.code(), Some(1));
    let report: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(
        (report["passed"].as_u64(), report["failed"].as_u64()),
        (Some(2), Some(1))
    );
    let wrong = &report["cases"][2];
    assert_eq!(wrong["passed"], false);
    assert_eq!(wrong["mismatches"][0]["field"], "error");
    assert_eq!(
        wrong["mismatches"][0]["expected"],
        "an error containing \"boom\""
    );
    assert_eq!(wrong["decision"]["desired"], 0);
}

#[test]
fn a_malformed_case_file_is_refused_with_its_line_and_field() {
    let cases = "[[case]]\nname = \"a\"\ndesired = 1\n\n[[case]]\nname = \"b\"\nqueue = { waiting = \"three\" }\ndesired = 3\n";
    let (output, file, _dir) = policy_test(cases, &[]);
    assert_eq!(output.status.code(), Some(1));
    let err = stderr(&output);
    assert!(
        err.contains(&format!("{}:7: field `queue.waiting`: ", file.display())),
        "{err}"
    );
    assert!(
        err.contains("queue = { waiting = 3"),
        "says how to write it: {err}"
    );
    assert!(stdout(&output).is_empty(), "no case ran");

    let (output, file, _dir) = policy_test("[[case]]\nname = \"a\"\ndesird = 1\n", &[]);
    assert_eq!(output.status.code(), Some(1));
    let err = stderr(&output);
    assert!(
        err.contains(&format!("{}:3: field `desird`: unknown", file.display())),
        "{err}"
    );
}

#[test]
fn eval_reads_partial_and_full_observations() {
    let dir = tempfile::tempdir().unwrap();
    let toml = dir.path().join("o.toml");
    std::fs::write(
        &toml,
        "queue = { waiting = 4, running = 2 }\ncapacity.max = 5\n",
    )
    .unwrap();
    let output = run(runner_scaler(&["policy", "eval", "queue"]).arg(&toml));
    assert_eq!(output.status.code(), Some(0));
    let decision: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(decision["desired"], 5);

    let json = dir.path().join("o.json");
    std::fs::write(&json, r#"{"queue": {"waiting": 1}}"#).unwrap();
    let output = run(runner_scaler(&["policy", "eval"])
        .arg(support::policy_file("queue-depth"))
        .arg(&json));
    let decision: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(decision["desired"], 1);

    // The README's quick start: the full observation format.
    let full = workspace().join("examples/observations/weekday-morning.json");
    let output = run(runner_scaler(&["policy", "eval", "queue"]).arg(&full));
    assert_eq!(output.status.code(), Some(0));

    std::fs::write(&toml, "\nat = \"tomorrow\"\n").unwrap();
    let output = run(runner_scaler(&["policy", "eval", "queue"]).arg(&toml));
    assert_eq!(output.status.code(), Some(1));
    assert!(
        stderr(&output).contains("o.toml:2: field `at`: "),
        "{}",
        stderr(&output)
    );
}

/// Run `command` to its end, failing the test if that takes over `limit`
/// (the process is killed, so a hang cannot hold the test suite).
fn run_within(command: &mut Command, limit: Duration) -> Output {
    let mut child = command
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let started = Instant::now();
    while child.try_wait().unwrap().is_none() {
        if started.elapsed() > limit {
            child.kill().unwrap();
            panic!("{command:?} still ran after {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let output = child.wait_with_output().unwrap();
    eprintln!(
        "{command:?}\n--- stdout\n{}--- stderr\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

/// Issue 11: `policy eval` on a policy sleeping in a host call never returned.
#[test]
fn eval_of_a_policy_asleep_in_a_host_call_fails_at_its_deadline() {
    let dir = tempfile::tempdir().unwrap();
    let observation = dir.path().join("o.toml");
    std::fs::write(&observation, "queue = { waiting = 1 }\n").unwrap();
    let output = run_within(
        runner_scaler(&["policy", "eval", "--deadline-ms", "200"])
            .arg(support::policy_file("sleeps"))
            .arg(&observation),
        Duration::from_secs(30),
    );
    assert_eq!(output.status.code(), Some(1));
    assert!(
        stderr(&output).contains("ran past its deadline of 200 ms"),
        "{}",
        stderr(&output)
    );
}

/// What a policy says must not forge lines or drive the terminal: text
/// output escapes control characters, JSON output stays JSON.
#[test]
fn eval_output_is_inert_whatever_the_policy_writes() {
    const FORGED: &str = "INFO decision: pool=forged";
    let inert = |text: &str| {
        let raw = ['\u{1b}', '\r', '\u{7}', '\u{202e}'];
        assert!(!text.contains(raw), "a raw control character: {text:?}");
        assert!(
            !text.lines().any(|line| line.starts_with(FORGED)),
            "a forged line: {text}"
        );
    };
    let dir = tempfile::tempdir().unwrap();
    let observation = dir.path().join("o.toml");
    let policy = support::policy_file("forges");

    std::fs::write(&observation, "queue = { waiting = 1 }\n").unwrap();
    let output = run(runner_scaler(&["policy", "eval"])
        .arg(&policy)
        .arg(&observation));
    assert_eq!(output.status.code(), Some(0));
    inert(&stdout(&output));
    inert(&stderr(&output));
    assert!(stderr(&output).contains("\\u{1b}[2J"), "escaped, visible");
    let decision: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    let reason = decision["reason"].as_str().unwrap();
    assert!(
        reason.starts_with("\u{1b}]0;title\u{7}\u{202e}1 job\r"),
        "JSON keeps the reason as the policy wrote it: {reason:?}"
    );

    std::fs::write(&observation, "params = { error = \"forged\" }\n").unwrap();
    let output = run(runner_scaler(&["policy", "eval"])
        .arg(&policy)
        .arg(&observation));
    assert_eq!(output.status.code(), Some(1));
    inert(&stderr(&output));
    assert!(
        stderr(&output).contains("refused\\nINFO"),
        "{}",
        stderr(&output)
    );
}

/// Issue 11: log lines carried ANSI colour codes into files and CloudWatch.
/// Colours only when stderr is a terminal (here a pseudo-terminal from
/// util-linux's `script`), and never with `NO_COLOR` set.
#[test]
fn log_colours_only_on_a_terminal_and_never_with_no_color() {
    let dir = tempfile::tempdir().unwrap();
    let observation = dir.path().join("o.toml");
    std::fs::write(&observation, "queue = { waiting = 1 }\n").unwrap();
    let args = format!(
        "policy eval {} {}",
        support::policy_file("queue-depth").display(),
        observation.display()
    );
    // Engine start-up logs a few lines at debug.
    let piped = run(Command::new(BINARY)
        .args(args.split(' '))
        .env("RUST_LOG", "debug")
        .env_remove("NO_COLOR"));
    assert!(stderr(&piped).contains("DEBUG"), "{}", stderr(&piped));
    assert!(!stderr(&piped).contains('\u{1b}'), "colours into a pipe");

    let on_terminal = |no_color: &str| {
        let command = format!("env -u NO_COLOR {no_color} RUST_LOG=debug {BINARY} {args}");
        let output = run(Command::new("script").args(["-qec", &command, "/dev/null"]));
        assert!(
            output.status.success(),
            "util-linux `script` is needed for this test"
        );
        stdout(&output)
    };
    assert!(
        on_terminal("").contains('\u{1b}'),
        "no colours on a terminal"
    );
    assert!(
        !on_terminal("NO_COLOR=1").contains('\u{1b}'),
        "colours despite NO_COLOR"
    );
}

#[test]
fn new_builds_against_the_sdk_it_is_given() {
    let dir = tempfile::tempdir().unwrap();
    let crate_dir = dir.path().join("p");
    // A directory that does not hold the SDK is refused, with the fix, and
    // nothing is written.
    let output = run(runner_scaler(&["policy", "new", "p", "--path"])
        .arg(&crate_dir)
        .arg("--sdk")
        .arg(dir.path()));
    assert_eq!(output.status.code(), Some(1));
    assert!(
        stderr(&output).contains("give the directory of the runner-scaler-policy crate"),
        "{}",
        stderr(&output)
    );
    assert!(!crate_dir.exists(), "nothing is written");

    let output = run(runner_scaler(&["policy", "new", "p", "--path"])
        .arg(&crate_dir)
        .arg("--sdk")
        .arg(workspace().join("policies/../sdk")));
    assert_eq!(output.status.code(), Some(0));
    let manifest = std::fs::read_to_string(crate_dir.join("Cargo.toml")).unwrap();
    let sdk = std::fs::canonicalize(workspace().join("sdk")).unwrap();
    assert!(
        manifest.contains(&format!("path = {:?}", sdk.to_str().unwrap())),
        "{manifest}"
    );
}

/// The WebAssembly toolchain `cargo xtask test` found: the target, and the
/// environment to build with.
fn wasm_toolchain() -> (String, Vec<(String, String)>) {
    let hint = "the scaffold test builds WebAssembly and needs the toolchain that \
                `cargo xtask test` finds: run it through `cargo xtask test`";
    let target = std::env::var("RUNNER_SCALER_TEST_WASM_TARGET")
        .unwrap_or_else(|_| panic!("RUNNER_SCALER_TEST_WASM_TARGET is not set; {hint}"));
    let env = std::env::var("RUNNER_SCALER_TEST_WASM_ENV")
        .unwrap_or_else(|_| panic!("RUNNER_SCALER_TEST_WASM_ENV is not set; {hint}"));
    let env = env
        .split(';')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (name, value) = pair.split_once('=').unwrap_or_else(|| {
                panic!("{pair:?} in RUNNER_SCALER_TEST_WASM_ENV is not NAME=VALUE")
            });
            (name.to_string(), value.to_string())
        })
        .collect();
    (target, env)
}

#[test]
fn a_new_policy_passes_its_own_tests_builds_and_passes_its_cases() {
    let (target, env) = wasm_toolchain();
    let dir = tempfile::tempdir().unwrap();
    let crate_dir = dir.path().join("night-shift");
    let output = run(runner_scaler(&["policy", "new", "night-shift", "--path"]).arg(&crate_dir));
    assert_eq!(output.status.code(), Some(0));
    for file in ["Cargo.toml", "src/lib.rs", "cases.toml", "README.md"] {
        assert!(crate_dir.join(file).is_file(), "{file} is missing");
    }
    // It builds against the policy SDK of the checkout this binary comes
    // from, by an absolute path: the crate is outside the workspace.
    let manifest = std::fs::read_to_string(crate_dir.join("Cargo.toml")).unwrap();
    let sdk = std::fs::canonicalize(workspace().join("sdk")).unwrap();
    // The SDK's version is the contract's.
    let version = runner_scaler::policy::CONTRACT.rsplit('@').next().unwrap();
    let dependency = format!(
        "runner-scaler-policy = {{ version = \"{version}\", path = {:?} }}",
        sdk.to_str().unwrap()
    );
    assert!(manifest.contains(&dependency), "{manifest}");

    // It never overwrites.
    let output = run(runner_scaler(&["policy", "new", "night-shift", "--path"]).arg(&crate_dir));
    assert_eq!(output.status.code(), Some(1));
    assert!(
        stderr(&output).contains("already exists"),
        "{}",
        stderr(&output)
    );

    // The workspace's lock file pins the same wit-bindgen (under the SDK), so
    // the build needs no registry and reuses what the workspace compiled;
    // cargo drops the rest.
    std::fs::copy(workspace().join("Cargo.lock"), crate_dir.join("Cargo.lock")).unwrap();

    // Its unit tests pass natively.
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let output = run(Command::new(&cargo)
        .args(["test", "--quiet", "--manifest-path"])
        .arg(crate_dir.join("Cargo.toml"))
        .env(
            "CARGO_TARGET_DIR",
            workspace().join("target/scaffold-native"),
        ));
    assert!(output.status.success(), "cargo test failed in the scaffold");

    // It builds to a component, in the target dir of the workspace's policies
    // so that a build-std standard library is reused.
    let wasm = dir.path().join("night-shift.wasm");
    let output = run(
        runner_scaler(&["policy", "build", "--target", &target, "--out"])
            .arg(&wasm)
            .arg(&crate_dir)
            .envs(env)
            .env("CARGO_TARGET_DIR", workspace().join("target/wasm")),
    );
    assert_eq!(output.status.code(), Some(0), "policy build failed");

    // Its cases pass.
    let output = run(runner_scaler(&["policy", "test"])
        .arg(&wasm)
        .arg(crate_dir.join("cases.toml")));
    assert_eq!(output.status.code(), Some(0));
    assert_eq!(stdout(&output).lines().last(), Some("5 passed, 0 failed"));

    // Its sample observation evaluates: 3 waiting + 1 running + 1 spare.
    let output = run(runner_scaler(&["policy", "eval"])
        .arg(&wasm)
        .arg(crate_dir.join("observation.toml")));
    assert_eq!(output.status.code(), Some(0));
    let decision: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(decision["desired"], 5);
}

/// The tool `cargo xtask test` installed and named in `variable`.
fn installed_tool(variable: &str) -> PathBuf {
    let path = std::env::var_os(variable)
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            panic!(
                "{variable} is not set; the scaffold tests build Python and JavaScript policies \
             with the tools `cargo xtask test` installs into target/tools: run them through it"
            )
        });
    assert!(
        path.is_file(),
        "{variable}={} is not a file",
        path.display()
    );
    path
}

/// `policy new NAME --lang LANG`: its files, its native tests (`native`, run
/// in the new directory), then the component it builds passes its own cases
/// and evaluates its sample observation.
fn a_new_interpreted_policy_works(lang: &str, name: &str, marker: &str, native: &mut [Command]) {
    let dir = tempfile::tempdir().unwrap();
    let policy_dir = dir.path().join(name);
    let output =
        run(runner_scaler(&["policy", "new", name, "--lang", lang, "--path"]).arg(&policy_dir));
    assert_eq!(output.status.code(), Some(0));
    for file in [
        marker,
        "wit/policy.wit",
        "cases.toml",
        "observation.toml",
        "README.md",
    ] {
        assert!(policy_dir.join(file).is_file(), "{file} is missing");
    }
    for command in native {
        let output = run(command.current_dir(&policy_dir));
        assert!(output.status.success(), "the scaffold's own tests failed");
    }

    let wasm = dir.path().join(format!("{name}.wasm"));
    let output = run(runner_scaler(&["policy", "build", "--out"])
        .arg(&wasm)
        .arg(&policy_dir));
    assert_eq!(output.status.code(), Some(0), "policy build failed");

    let output = run(runner_scaler(&["policy", "test"])
        .arg(&wasm)
        .arg(policy_dir.join("cases.toml")));
    assert_eq!(output.status.code(), Some(0));
    assert_eq!(stdout(&output).lines().last(), Some("5 passed, 0 failed"));

    // 3 waiting + 1 running + 1 spare.
    let output = run(runner_scaler(&["policy", "eval"])
        .arg(&wasm)
        .arg(policy_dir.join("observation.toml")));
    assert_eq!(output.status.code(), Some(0));
    let decision: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(decision["desired"], 5);
}

#[test]
fn a_new_python_policy_passes_its_own_tests_builds_and_passes_its_cases() {
    let componentize_py = installed_tool("COMPONENTIZE_PY");
    let mut bindings = Command::new(componentize_py);
    bindings.args([
        "-d", "wit", "-w", "policy", "--quiet", "bindings", "bindings",
    ]);
    let mut unittest = Command::new("python3");
    unittest
        .args(["-m", "unittest"])
        .env("PYTHONPATH", "bindings")
        .env("PYTHONDONTWRITEBYTECODE", "1");
    a_new_interpreted_policy_works("python", "night-shift", "app.py", &mut [bindings, unittest]);
}

#[test]
fn a_new_javascript_policy_passes_its_own_tests_builds_and_passes_its_cases() {
    installed_tool("COMPONENTIZE_JS");
    let mut node_test = Command::new("node");
    node_test.arg("--test");
    a_new_interpreted_policy_works("js", "night-shift", "package.json", &mut [node_test]);
}

#[test]
fn policy_build_says_how_to_install_a_missing_tool() {
    let dir = tempfile::tempdir().unwrap();
    let cases = [
        ("python", "pip install componentize-py==0.25.1"),
        (
            "js",
            "npm install --save-dev @bytecodealliance/componentize-js@0.23.0",
        ),
    ];
    for (lang, install) in cases {
        let policy_dir = dir.path().join(lang);
        let output =
            run(runner_scaler(&["policy", "new", "p", "--lang", lang, "--path"]).arg(&policy_dir));
        assert_eq!(output.status.code(), Some(0));
        // Nothing on PATH but node itself (componentize-js needs it).
        let node_dir = std::env::split_paths(&std::env::var_os("PATH").unwrap())
            .find(|dir| dir.join("node").is_file())
            .unwrap_or_default();
        let output = run(runner_scaler(&["policy", "build"])
            .arg(&policy_dir)
            .env("PATH", node_dir)
            .env_remove("COMPONENTIZE_PY")
            .env_remove("COMPONENTIZE_JS"));
        assert_eq!(output.status.code(), Some(1), "{lang}");
        assert!(
            stderr(&output).contains(install),
            "{lang}: {}",
            stderr(&output)
        );
    }
}

#[test]
fn policy_build_checks_the_target_before_compiling() {
    let dir = tempfile::tempdir().unwrap();
    let policy_dir = dir.path().join("p");
    let output = run(runner_scaler(&["policy", "new", "p", "--path"]).arg(&policy_dir));
    assert_eq!(output.status.code(), Some(0));
    assert!(
        stdout(&output).contains("rustup target add wasm32-unknown-unknown"),
        "policy new says how to add the target: {}",
        stdout(&output)
    );
    // A target no toolchain here has: refused before cargo compiles anything.
    let output = run(
        runner_scaler(&["policy", "build", "--target", "wasm64-unknown-unknown"])
            .arg(&policy_dir)
            .env_remove("CARGO_UNSTABLE_BUILD_STD"),
    );
    assert_eq!(output.status.code(), Some(1));
    let err = stderr(&output);
    assert!(
        err.contains("the Rust target wasm64-unknown-unknown is not installed")
            && err.contains("rustup target add wasm64-unknown-unknown"),
        "{err}"
    );
    assert!(!err.contains("Compiling"), "cargo ran: {err}");
}

#[test]
fn a_closed_pipe_ends_a_command_quietly() {
    use std::os::unix::process::ExitStatusExt;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("cases.toml");
    std::fs::write(&file, GOOD_CASES).unwrap();
    let mut child = runner_scaler(&["policy", "test", "queue", "--json"])
        .arg(&file)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // The reader is gone before a byte is written, as after `| head -0`.
    drop(child.stdout.take());
    let output = child.wait_with_output().unwrap();
    let err = stderr(&output);
    assert!(!err.contains("panicked"), "{err}");
    assert!(
        output.status.success() || output.status.signal() == Some(13),
        "ended by SIGPIPE, or finished: {:?} {err}",
        output.status
    );
}
