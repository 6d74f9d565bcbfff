//! moto's server as a local AWS for the tests: started on a free loopback
//! port, killed when dropped, with helpers that build clients pointed at it
//! and create fixtures (launch configurations, groups, secrets, parameters)
//! through the AWS APIs themselves.
//!
//! # Where moto differs from AWS, and how the tests compensate
//!
//! The tests assert AWS's documented behaviour, never moto's laxness:
//!
//! 1. **Desired capacity outside the group's bounds.** moto takes a
//!    `SetDesiredCapacity` (or `UpdateAutoScalingGroup`) below `MinSize` or
//!    above `MaxSize`; AWS refuses it with a `ValidationError`. No test sends
//!    one. That our code never does is checked for any group state and
//!    policy answer by `plan::tests::every_write_is_one_aws_accepts_and_none_risks_a_job`,
//!    and `tests/it/asg.rs` scales a group with `MinSize` 2 to 0 through the
//!    plan (which widens the bounds in the same call). The in-memory groups
//!    and the simulator refuse such a write, as AWS does.
//! 2. **Lifecycle states.** moto launches every instance straight into
//!    `InService`, and terminates at once: no `Pending*`, `Terminating*` or
//!    `Warmed:*` instance ever shows. Counting by state is covered by the
//!    unit tests in `groups/asg.rs`, on answers built with the SDK's types.
//! 3. **Which instances scale-in terminates.** moto takes the first
//!    unprotected instances in its list; AWS applies the termination policy
//!    (zone balance, oldest launch template, closest to the billing hour,
//!    then at random). Tests assert only how many go and that protected ones
//!    stay, never which unprotected one.
//! 4. **Scale-in protection from launch.** moto copies the group's flag onto
//!    an instance when it launches it, and honours it at once; AWS enforces
//!    it from `InService` on. With no `Pending` instances in moto (2) that
//!    makes no difference to a test.
//! 5. **A decrement at the group's minimum.** moto takes a
//!    `TerminateInstanceInAutoScalingGroup` with
//!    `ShouldDecrementDesiredCapacity` while desired equals `MinSize`, and
//!    lowers desired below it; AWS refuses it ("Currently, desiredSize equals
//!    minSize"), which the user data answers by powering off. No test
//!    terminates through moto; the simulator models AWS's refusal
//!    (`simulate/world.rs`, the hand-computed runs in `tests/it/simulate.rs`).
//! 6. **A write to a missing group.** moto answers `SetDesiredCapacity` with
//!    an HTML 500 where AWS says `ValidationError`; `tests/it/asg.rs` asserts
//!    only that the error names the group, and that the
//!    `UpdateAutoScalingGroup` error (which moto does answer as AWS) is not
//!    HTML.

use aws_sdk_autoscaling::types::{AutoScalingGroup, Tag};
use runner_scaler::aws::AwsOptions;
use runner_scaler::groups::asg::AsgGroups;
use std::collections::HashSet;
use std::fs::File;
use std::io::ErrorKind;
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The credentials moto is called with.
pub const KEY: &str = "testing";
/// An image moto knows (from its bundled AMI list).
pub const AMI: &str = "ami-12c6146b";
/// The launch configuration every test group launches from.
pub const LAUNCH_CONFIGURATION: &str = "runner-scaler-test";

const HOW_TO_INSTALL: &str = "moto's server is not installed: run the tests through \
    `cargo xtask test`, which installs moto, or `python3 -m pip install 'moto[server]'`";

/// A running moto server.
pub struct Moto {
    child: Child,
    endpoint: String,
    log: PathBuf,
    launch_configurations: tokio::sync::Mutex<HashSet<String>>,
}

impl Moto {
    /// The AWS CLI (which `cargo xtask test` installs) against moto in
    /// `region`; its JSON answer. The call must succeed.
    pub fn cli(&self, region: &str, args: &[&str]) -> serde_json::Value {
        let output = Command::new("aws")
            .args(args)
            .args(["--output", "json"])
            .env("AWS_ENDPOINT_URL", self.endpoint())
            .env("AWS_ACCESS_KEY_ID", "testing")
            .env("AWS_SECRET_ACCESS_KEY", "testing")
            .env("AWS_DEFAULT_REGION", region)
            .env("AWS_REGION", region)
            .output()
            .expect("run the AWS CLI (cargo xtask test installs it: pip install awscli)");
        assert!(
            output.status.success(),
            "aws {args:?}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        serde_json::from_slice(&output.stdout).unwrap_or(serde_json::Value::Null)
    }

    /// The physical id of the resource `logical` of the stack `stack`.
    pub fn stack_resource(&self, region: &str, stack: &str, logical: &str) -> String {
        // Filtered here: moto fails a --logical-resource-id filter on a stack
        // holding resources it does not model.
        let answer = self.cli(
            region,
            &[
                "cloudformation",
                "describe-stack-resources",
                "--stack-name",
                stack,
            ],
        );
        answer["StackResources"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|r| r["LogicalResourceId"] == logical)
            .and_then(|r| r["PhysicalResourceId"].as_str())
            .unwrap_or_else(|| panic!("no {logical} in {stack}: {answer}"))
            .to_string()
    }

    /// Start moto on a free port and wait until it accepts connections.
    /// Panics, saying how to install it, when moto is missing.
    pub fn start() -> Moto {
        let mut last_log = String::new();
        // Another process may take the port between our probe and moto's
        // bind; a second port then does.
        for _ in 0..3 {
            let port = free_port();
            let log = std::env::temp_dir().join(format!(
                "runner-scaler-moto-{}-{port}.log",
                std::process::id()
            ));
            let child = spawn(port, &log);
            let mut moto = Moto {
                child,
                endpoint: format!("http://127.0.0.1:{port}"),
                log,
                launch_configurations: Default::default(),
            };
            match moto.wait_until_listening(port) {
                Ok(()) => {
                    moto.warm_up(port);
                    return moto;
                }
                Err(output) if output.contains("No module named") => {
                    panic!("{HOW_TO_INSTALL}\n{output}")
                }
                Err(output) if output.contains("in use") => last_log = output,
                Err(output) => panic!("moto's server did not start:\n{output}"),
            }
        }
        panic!("moto's server found no free port:\n{last_log}")
    }

    /// Its process id (the benchmarks read its CPU time; no test does).
    #[allow(dead_code)]
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Its URL, `http://127.0.0.1:PORT`.
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// Options that reach this server with the test credentials.
    pub fn options(&self) -> AwsOptions {
        AwsOptions::local(&self.endpoint, KEY, KEY)
    }

    /// The scaler's groups, pointed at this server.
    pub fn groups(&self) -> AsgGroups {
        AsgGroups::new(self.options())
    }

    /// The SDK configuration the fixtures' clients use: the scaler's, with
    /// patient timeouts. moto imports a service's backend on its first
    /// request to it, which takes seconds of CPU; on a loaded 2-core machine
    /// that overran the scaler's 10 s and failed the set-up, not the test.
    /// The fixtures make those first requests, so the scaler's own calls
    /// (with the production timeouts) meet a warm server.
    async fn fixture_config(&self, region: &str) -> aws_config::SdkConfig {
        self.options()
            .sdk_config(region)
            .await
            .to_builder()
            .timeout_config(
                aws_config::timeout::TimeoutConfig::builder()
                    .operation_timeout(Duration::from_secs(120))
                    .operation_attempt_timeout(Duration::from_secs(60))
                    .build(),
            )
            .build()
    }

    /// A plain Auto Scaling client for `region`, for fixtures and checks.
    pub async fn autoscaling(&self, region: &str) -> aws_sdk_autoscaling::Client {
        aws_sdk_autoscaling::Client::new(&self.fixture_config(region).await)
    }

    /// A plain Secrets Manager client for `region`.
    pub async fn secrets(&self, region: &str) -> aws_sdk_secretsmanager::Client {
        aws_sdk_secretsmanager::Client::new(&self.fixture_config(region).await)
    }

    /// Create `group` in `region` (and, the first time, the launch
    /// configuration it launches from). moto launches `desired` instances
    /// at once, all `InService`.
    pub async fn create_group(&self, region: &str, group: &TestGroup) {
        let client = self.autoscaling(region).await;
        {
            let mut created = self.launch_configurations.lock().await;
            if created.insert(region.to_owned()) {
                client
                    .create_launch_configuration()
                    .launch_configuration_name(LAUNCH_CONFIGURATION)
                    .image_id(AMI)
                    .instance_type("t3.micro")
                    .send()
                    .await
                    .expect("create the launch configuration on moto");
            }
        }
        let mut request = client
            .create_auto_scaling_group()
            .auto_scaling_group_name(&group.name)
            .launch_configuration_name(LAUNCH_CONFIGURATION)
            .availability_zones(format!("{region}a"))
            .min_size(group.min)
            .max_size(group.max)
            .desired_capacity(group.desired)
            .new_instances_protected_from_scale_in(group.protected);
        for (key, value) in &group.tags {
            request = request.tags(
                Tag::builder()
                    .resource_type("auto-scaling-group")
                    .resource_id(&group.name)
                    .key(key)
                    .value(value)
                    .propagate_at_launch(false)
                    .build(),
            );
        }
        request
            .send()
            .await
            .unwrap_or_else(|err| panic!("create the group {} on moto: {err:?}", group.name));
    }

    /// The group as the API describes it, for checks the scaler's view does
    /// not cover.
    pub async fn group(&self, region: &str, name: &str) -> Option<AutoScalingGroup> {
        self.autoscaling(region)
            .await
            .describe_auto_scaling_groups()
            .auto_scaling_group_names(name)
            .send()
            .await
            .expect("describe a group on moto")
            .auto_scaling_groups()
            .iter()
            .find(|group| group.auto_scaling_group_name() == Some(name))
            .cloned()
    }

    /// Store a secret with the text `value`.
    pub async fn create_secret(&self, region: &str, name: &str, value: &str) {
        self.secrets(region)
            .await
            .create_secret()
            .name(name)
            .secret_string(value)
            .send()
            .await
            .unwrap_or_else(|err| panic!("create the secret {name} on moto: {err:?}"));
    }

    /// Store a secret with the binary value `bytes`.
    pub async fn create_binary_secret(&self, region: &str, name: &str, bytes: &[u8]) {
        self.secrets(region)
            .await
            .create_secret()
            .name(name)
            .secret_binary(aws_sdk_secretsmanager::primitives::Blob::new(bytes))
            .send()
            .await
            .unwrap_or_else(|err| panic!("create the binary secret {name} on moto: {err:?}"));
    }

    /// Store an SSM parameter: a SecureString when `secure`, else a String.
    pub async fn put_parameter(&self, region: &str, name: &str, value: &str, secure: bool) {
        let kind = if secure {
            aws_sdk_ssm::types::ParameterType::SecureString
        } else {
            aws_sdk_ssm::types::ParameterType::String
        };
        aws_sdk_ssm::Client::new(&self.fixture_config(region).await)
            .put_parameter()
            .name(name)
            .value(value)
            .r#type(kind)
            .send()
            .await
            .unwrap_or_else(|err| panic!("put the parameter {name} on moto: {err:?}"));
    }

    fn wait_until_listening(&mut self, port: u16) -> Result<(), String> {
        let address = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Err(format!("it exited ({status}):\n{}", self.log_text()));
            }
            if TcpStream::connect_timeout(&address, Duration::from_millis(200)).is_ok() {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(format!(
                    "it did not listen on {address} within a minute:\n{}",
                    self.log_text()
                ));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Make moto load its Auto Scaling backend (and EC2's, which it
    /// imports) now: that first request takes seconds of CPU — 13 s seen on
    /// a loaded machine — and would otherwise fall on a call the test makes
    /// with the scaler's 10 s timeout. A bare HTTP request: no SDK, no
    /// runtime, and as patient as it needs to be.
    fn warm_up(&self, port: u16) {
        use std::io::{Read, Write};
        let body = "Action=DescribeAutoScalingGroups&Version=2011-01-01";
        let request = format!(
            "POST / HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\
             Content-Type: application/x-www-form-urlencoded\r\n\
             Authorization: AWS4-HMAC-SHA256 Credential={KEY}/20260101/us-east-1/autoscaling/aws4_request, SignedHeaders=host, Signature=0\r\n\
             Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        );
        let answered = (|| {
            let mut stream = TcpStream::connect((Ipv4Addr::LOCALHOST, port))?;
            stream.set_read_timeout(Some(Duration::from_secs(180)))?;
            stream.write_all(request.as_bytes())?;
            let mut status = [0u8; 12];
            stream.read_exact(&mut status)?;
            Ok::<_, std::io::Error>(String::from_utf8_lossy(&status).into_owned())
        })();
        match answered {
            Ok(status) if status.ends_with("200") => {}
            other => panic!(
                "moto did not answer its warm-up request: {other:?}\n{}",
                self.log_text()
            ),
        }
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_file(&self.log);
    }
}

/// A group to create: no instances and bounds 0..=10 unless told.
#[derive(Debug, Clone)]
pub struct TestGroup {
    pub name: String,
    /// `MinSize`.
    pub min: i32,
    /// `MaxSize`.
    pub max: i32,
    /// `DesiredCapacity`: moto launches this many instances at once.
    pub desired: i32,
    /// `NewInstancesProtectedFromScaleIn`.
    pub protected: bool,
    /// Group tags (key, value), not propagated at launch.
    pub tags: Vec<(String, String)>,
}

impl TestGroup {
    pub fn new(name: &str) -> Self {
        TestGroup {
            name: name.into(),
            min: 0,
            max: 10,
            desired: 0,
            protected: false,
            tags: vec![],
        }
    }

    pub fn desired(mut self, desired: i32) -> Self {
        self.desired = desired;
        self
    }

    pub fn bounds(mut self, min: i32, max: i32) -> Self {
        (self.min, self.max) = (min, max);
        self
    }

    pub fn protected(mut self) -> Self {
        self.protected = true;
        self
    }

    pub fn tag(mut self, key: &str, value: &str) -> Self {
        self.tags.push((key.into(), value.into()));
        self
    }
}

fn free_port() -> u16 {
    TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .and_then(|listener| listener.local_addr())
        .expect("find a free loopback port")
        .port()
}

/// `moto_server`, or the same module through `python3 -m` when the console
/// script is not on PATH (a `pip install --user` puts it elsewhere).
fn spawn(port: u16, log: &Path) -> Child {
    let port = port.to_string();
    let args = ["-H", "127.0.0.1", "-p", port.as_str()];
    let mut last = None;
    for (program, prefix) in [
        ("moto_server", &[][..]),
        ("python3", &["-m", "moto.server"][..]),
    ] {
        let output = File::create(log).expect("create moto's log file");
        let errors = output.try_clone().expect("share moto's log file");
        match Command::new(program)
            .args(prefix)
            .args(args)
            .stdin(Stdio::null())
            // moto logs every request: to a file, since an unread pipe would
            // fill and stall it.
            .stdout(output)
            .stderr(errors)
            .spawn()
        {
            Ok(child) => return child,
            Err(err) if err.kind() == ErrorKind::NotFound => last = Some(err),
            Err(err) => panic!("cannot run {program}: {err}"),
        }
    }
    panic!("{HOW_TO_INSTALL} ({:?})", last)
}
