//! `runner-scaler trace import` and `trace fetch`: CircleCI's job history
//! (its usage export) as a trace for `simulate`.

use crate::secret::Secret;
use crate::simulate::window::offset_seconds;
use crate::trace_import::fetch::{self, FetchOptions, MIN_POLL};
use crate::trace_import::usage_export::{Import, Importer};
use anyhow::{bail, Context};
use clap::{Args, Subcommand};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

/// Make traces for `simulate` from CircleCI's job history.
#[derive(Debug, Subcommand)]
pub enum TraceCommand {
    /// Read CircleCI usage exports (the Usage API's CSV files, plain or
    /// gzip, merged) into a trace: the finished jobs of self-hosted runner
    /// classes, submitted when queued, running from start to stop, with
    /// the wait each recorded.
    Import(ImportArgs),
    /// Export the last days of job history from CircleCI's Usage API
    /// (create the export, wait for it, download every file) and import it.
    Fetch(Box<FetchArgs>),
}

/// Where the trace goes and which classes it keeps.
#[derive(Debug, Args)]
pub struct OutputArgs {
    /// Keep only this self-hosted runner resource class (repeat for more)
    /// [default: every one].
    #[arg(long = "resource-class", value_name = "NAMESPACE/NAME")]
    resource_classes: Vec<String>,
    /// Write the trace to this file (the summary then goes to standard
    /// output) [default: standard output, the summary to standard error].
    #[arg(long, value_name = "TRACE.csv")]
    out: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct ImportArgs {
    /// Usage export files (.csv, or gzip whatever the name), merged.
    #[arg(required = true, value_name = "FILE")]
    files: Vec<PathBuf>,
    #[command(flatten)]
    output: OutputArgs,
}

#[derive(Debug, Args)]
pub struct FetchArgs {
    /// The organization's ID (CircleCI app: Organization Settings >
    /// Overview), not its name.
    #[arg(long, value_name = "ID")]
    org_id: String,
    /// How far back from --until: 14d, 36h. The Usage API keeps 13 months
    /// and exports at most 31 days a job; up to 310 days are fetched as
    /// several jobs.
    #[arg(long, default_value = "14d", value_name = "DURATION")]
    since: String,
    /// The window's end [default: a minute ago].
    #[arg(long, value_name = "RFC3339")]
    until: Option<jiff::Timestamp>,
    /// Take the CircleCI token as `once` does with this configuration: its
    /// circleci.token_env, token_secret (Secrets Manager) or
    /// token_parameter (SSM).
    #[arg(long, short, value_name = "FILE", conflicts_with = "token_env")]
    config: Option<PathBuf>,
    /// Without --config: the environment variable that holds a CircleCI
    /// personal API token [default: CIRCLECI_TOKEN].
    #[arg(long, value_name = "NAME")]
    token_env: Option<String>,
    /// Keep the downloaded export files in this directory, to import them
    /// again later without another export (CircleCI allows 10 an hour).
    #[arg(long, value_name = "DIR")]
    save_exports: Option<PathBuf>,
    /// Give up after this long (CircleCI runs an export for up to 4 hours).
    #[arg(long, default_value = "1h", value_name = "DURATION")]
    timeout: String,
    /// Time between two looks at the export (at least 6s: CircleCI allows
    /// 10 a minute).
    #[arg(long, default_value = "15s", value_name = "DURATION")]
    poll: String,
    /// The CircleCI API (tests point it at a fake).
    #[arg(long, default_value = fetch::DEFAULT_API_URL, hide = true)]
    api_url: String,
    /// Polls and retries this many milliseconds apart, below the minimum
    /// (tests against a fake).
    #[arg(long, hide = true)]
    test_interval_ms: Option<u64>,
    #[command(flatten)]
    output: OutputArgs,
}

impl TraceCommand {
    pub async fn run(self) -> anyhow::Result<ExitCode> {
        match self {
            TraceCommand::Import(args) => {
                let mut importer = Importer::new(args.output.resource_classes.clone());
                for file in &args.files {
                    importer.read_file(file)?;
                }
                let origin = names(&args.files);
                finish(importer, &origin, &args.output)
            }
            TraceCommand::Fetch(args) => fetch(*args).await,
        }
    }
}

fn names(files: &[PathBuf]) -> String {
    files
        .iter()
        .map(|f| f.display().to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

/// Write the trace and the summary; say how to simulate it.
fn finish(importer: Importer, origin: &str, output: &OutputArgs) -> anyhow::Result<ExitCode> {
    let import = importer.finish()?;
    let mut summary = import.summary.to_string();
    match &output.out {
        Some(path) => {
            write_trace(&import, origin, path)?;
            summary += &format!("wrote {} jobs to {}\n", import.jobs.len(), path.display());
            summary += &next_step(&import, &path.display().to_string());
            print!("{summary}");
        }
        None => {
            let mut stdout = std::io::stdout().lock();
            match import.write_trace(&mut stdout, origin) {
                Err(err) if err.kind() != std::io::ErrorKind::BrokenPipe => {
                    return Err(err).context("cannot write the trace to standard output")
                }
                _ => {}
            }
            summary += &next_step(&import, "TRACE.csv");
            eprint!("{summary}");
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn write_trace(import: &Import, origin: &str, path: &Path) -> anyhow::Result<()> {
    let write = || -> std::io::Result<()> {
        let mut file = std::io::BufWriter::new(std::fs::File::create(path)?);
        import.write_trace(&mut file, origin)?;
        file.flush()
    };
    write().with_context(|| format!("cannot write the trace to {}", path.display()))
}

fn next_step(import: &Import, trace: &str) -> String {
    let class = match import.classes.as_slice() {
        [_] => String::new(),
        [first, ..] => format!(" --resource-class {first}"),
        [] => String::new(),
    };
    let mut text = format!(
        "simulate it: runner-scaler simulate --trace {trace}{class} --policy queue --policy POLICY.wasm --report report.html\n"
    );
    if import.classes.len() > 1 {
        text += "(the trace has several resource classes: simulate one at a time)\n";
    }
    text
}

async fn fetch(args: FetchArgs) -> anyhow::Result<ExitCode> {
    let duration = |flag: &str, text: &str| {
        offset_seconds(text.trim())
            .filter(|&s| s > 0)
            .map(Duration::from_secs)
            .with_context(|| format!("{flag} {text:?} is not a duration; write e.g. 14d, 36h, 90m"))
    };
    let since = duration("--since", &args.since)?;
    let mut options = FetchOptions::new(
        args.org_id.trim().to_string(),
        jiff::Timestamp::UNIX_EPOCH,
        jiff::Timestamp::UNIX_EPOCH,
    );
    if options.org_id.is_empty() {
        bail!("--org-id is empty; it is the organization's ID (Organization Settings > Overview)");
    }
    options.end = match args.until {
        Some(until) => until,
        None => jiff::Timestamp::now() - jiff::SignedDuration::from_secs(60),
    };
    options.start = options.end - jiff::SignedDuration::try_from(since)?;
    options.deadline = duration("--timeout", &args.timeout)?;
    options.poll_interval = duration("--poll", &args.poll)?;
    options.api_url = args.api_url.clone();
    match args.test_interval_ms {
        Some(ms) => {
            options.poll_interval = Duration::from_millis(ms);
            options.base_delay = Duration::from_millis(ms);
        }
        None if options.poll_interval < MIN_POLL => bail!(
            "--poll {} is more often than CircleCI allows (10 looks a minute); use 6s or more",
            args.poll
        ),
        None => {}
    }
    let token = token(&args).await?;

    let temporary;
    let dir = match &args.save_exports {
        Some(dir) => {
            std::fs::create_dir_all(dir)
                .with_context(|| format!("cannot create --save-exports {}", dir.display()))?;
            dir.clone()
        }
        None => {
            temporary = tempfile::tempdir().context("cannot make a directory for the downloads")?;
            temporary.path().to_path_buf()
        }
    };
    eprintln!(
        "exporting the job history of {} from {} to {} (CircleCI's Usage API; this takes minutes)",
        crate::trace_import::cut(&options.org_id, 60),
        options.start.round(jiff::Unit::Second)?,
        options.end.round(jiff::Unit::Second)?
    );
    let files = fetch::fetch(&options, token, &dir, &mut |line| eprintln!("{line}")).await?;
    let mut importer = Importer::new(args.output.resource_classes.clone());
    for file in &files {
        importer.read_file(file)?;
    }
    let origin = format!(
        "CircleCI's usage export of {} from {} to {}",
        options.org_id,
        options.start.round(jiff::Unit::Second)?,
        options.end.round(jiff::Unit::Second)?
    );
    finish(importer, &origin, &args.output)
}

/// The token: the configuration's, as `once` reads it, or a variable's.
async fn token(args: &FetchArgs) -> anyhow::Result<Secret> {
    if let Some(path) = &args.config {
        let config = crate::config::Config::load(Some(path))?;
        let aws = crate::aws::AwsOptions::new(config.aws_endpoint_url.clone());
        let source = config
            .source(crate::sources::SourceKind::CircleCi)
            .with_context(|| {
                format!(
                    "{}: no pool reads CircleCI, so it names no CircleCI token: give the token \
                     in a variable instead (--token-env)",
                    config.origin
                )
            })?;
        return Ok(crate::modes::source_token(&config, source, &aws).await?.0);
    }
    let var = args.token_env.as_deref().unwrap_or("CIRCLECI_TOKEN");
    match std::env::var(var) {
        Ok(token) if !token.trim().is_empty() => Ok(Secret::new(token.trim())),
        _ => bail!(
            "no CircleCI token: the variable {var} is not set; export a CircleCI personal API \
             token in it (User Settings > Personal API Tokens), or give --config with the \
             scaler's configuration to read its token as `once` does"
        ),
    }
}
