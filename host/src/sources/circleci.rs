//! CircleCI's self-hosted runner API as a queue source: the unclaimed and
//! running task counts of a resource class, read through the shared client
//! ([`super::http`]) with a personal API token.

use super::http::{Answer, Api, ApiClient, Reading, UniqueKeys};
pub use super::http::{BuildError, HttpOptions, DEFAULT_MAX_CONCURRENT};
use super::SourceError;
use crate::observation::Queue;
use crate::secret::Secret;
use crate::token_secret::SecretFormat;
use reqwest::{StatusCode, Url};
use std::fmt;

/// Where CircleCI cloud serves the runner API.
pub const DEFAULT_BASE_URL: &str = "https://runner.circleci.com";

const API: Api = Api {
    name: "CircleCI",
    default_base_url: DEFAULT_BASE_URL,
    // The header the runner API reads a personal API token from.
    token_header: "circle-token",
    token_prefix: "",
};

/// The token's secret, as the original tool keeps it: a JSON object with
/// the token and, for pools that name no resource class, the class.
pub const SECRET: SecretFormat = SecretFormat {
    token_field: "circle_token",
    queue_field: Some("resource_class"),
    plain_text: false,
    example: r#"a JSON object {"circle_token": "...", "resource_class": "namespace/name"}"#,
};

/// The runner API of CircleCI cloud or server, read with a personal API token.
pub struct CircleCi {
    api: ApiClient,
}

impl fmt::Debug for CircleCi {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CircleCi").field("api", &self.api).finish()
    }
}

/// The two counts the runner API gives for a resource class.
#[derive(Debug, Clone, Copy)]
enum Count {
    Unclaimed,
    Running,
}

impl Count {
    fn path(self) -> &'static str {
        match self {
            Count::Unclaimed => "/api/v3/runner/tasks",
            Count::Running => "/api/v3/runner/tasks/running",
        }
    }

    fn field(self) -> &'static str {
        match self {
            Count::Unclaimed => "unclaimed_task_count",
            Count::Running => "running_runner_tasks",
        }
    }
}

impl CircleCi {
    /// A source for CircleCI cloud ([`DEFAULT_BASE_URL`]) with default timing.
    pub fn cloud(token: Secret) -> Result<Self, BuildError> {
        CircleCi::new(DEFAULT_BASE_URL, token, HttpOptions::default())
    }

    /// A source for the runner API at `base_url` (CircleCI server's runner
    /// host, or a fake in tests), authenticated with a personal API `token`.
    pub fn new(base_url: &str, token: Secret, options: HttpOptions) -> Result<Self, BuildError> {
        Ok(CircleCi {
            api: ApiClient::new(&API, base_url, token, options)?,
        })
    }

    /// The URL of one count for `resource_class`, the class encoded as a
    /// query value (its `/` included).
    fn url(&self, count: Count, resource_class: &str) -> Url {
        self.api
            .url(count.path(), &[("resource-class", resource_class)])
    }

    /// One count, with retries.
    async fn count(&self, count: Count, resource_class: &str) -> Result<u32, SourceError> {
        let base = self.api.base();
        let refused = |status: StatusCode| refusal(status, count.path(), resource_class, base);
        let read = |answer: &Answer| match UniqueKeys::parse(answer.body)
            .and_then(|object| super::http::count(&object.0, count.field()))
        {
            Ok(n) => Reading::Value(n),
            Err(why) => Reading::Retry(why),
        };
        self.api
            .get(
                self.url(count, resource_class),
                count.path(),
                resource_class,
                refused,
                read,
            )
            .await
    }

    /// The waiting and running jobs of `resource_class`.
    pub async fn queue(&self, resource_class: &str) -> Result<Queue, SourceError> {
        let (waiting, running) = tokio::try_join!(
            self.count(Count::Unclaimed, resource_class),
            self.count(Count::Running, resource_class),
        )?;
        Ok(Queue {
            waiting,
            running,
            blocked: None,
        })
    }
}

/// What a 4xx from `path` means for `resource_class`, and the fix.
fn refusal(status: StatusCode, path: &str, resource_class: &str, base: &Url) -> String {
    let class = crate::text::quoted(resource_class);
    match status {
        StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => {
            let namespace = resource_class.split('/').next().unwrap_or(resource_class);
            format!(
                "the token was refused (HTTP {status} from {path}) for resource class {class}: \
                 use a CircleCI personal API token (not a runner resource-class token) of a user \
                 with access to the namespace {}",
                crate::text::quoted(namespace)
            )
        }
        StatusCode::NOT_FOUND => format!(
            "resource class {class} was not found (HTTP {status} from {path}): \
             check that it is written namespace/name and exists \
             (`circleci runner resource-class list <namespace>`), and that the base URL {base} \
             is the runner API of your CircleCI"
        ),
        _ => format!("{path} answered HTTP {status} for resource class {class}"),
    }
}

/// `base_url` as the runner API's base: an absolute `http` or `https` URL
/// with a host, and no query or fragment (the configuration checks it too).
pub fn parse_base_url(base_url: &str) -> Result<Url, BuildError> {
    super::http::parse_base_url(&API, base_url)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_resource_class_is_a_query_value_and_base_paths_are_kept() {
        let token = Secret::new("t");
        let cloud = CircleCi::cloud(token.clone()).unwrap();
        assert_eq!(
            cloud.url(Count::Running, "acme/linux large&x").as_str(),
            "https://runner.circleci.com/api/v3/runner/tasks/running?resource-class=acme%2Flinux+large%26x"
        );
        let server = CircleCi::new(
            "https://ci.example.com/runner/",
            token,
            HttpOptions::default(),
        )
        .unwrap();
        assert_eq!(
            server.url(Count::Unclaimed, "a/b").as_str(),
            "https://ci.example.com/runner/api/v3/runner/tasks?resource-class=a%2Fb"
        );
    }

    #[test]
    fn bad_settings_are_explained_without_the_token() {
        let options = HttpOptions::default();
        for url in ["runner.circleci.com", "ftp://x", "https://x/?a=b"] {
            let err = CircleCi::new(url, Secret::new("t"), options.clone()).unwrap_err();
            assert!(matches!(err, BuildError::BaseUrl { .. }), "{url}: {err}");
        }
        let err = CircleCi::new(
            DEFAULT_BASE_URL,
            Secret::new("CCIPAT_canary\n"),
            options.clone(),
        )
        .unwrap_err();
        assert!(!format!("{err} {err:?}").contains("CCIPAT_canary"));
        let source =
            CircleCi::new(DEFAULT_BASE_URL, Secret::new("CCIPAT_canary"), options).unwrap();
        assert!(!format!("{source:?}").contains("CCIPAT_canary"));
    }
}
