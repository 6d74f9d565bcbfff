//! A source's token kept in AWS: a Secrets Manager secret (stored as text,
//! or as binary holding base64 text as the original tool decoded it) in
//! the source's [`SecretFormat`] — for CircleCI the original tool's JSON
//! object with `circle_token` and, optionally, `resource_class` — or an SSM
//! Parameter Store SecureString holding the token alone.

use crate::aws::{error_message, refusal, AwsOptions};
use crate::iam::{Action, Call};
use crate::secret::Secret;
use aws_sdk_ssm::config::http::HttpResponse;
use aws_sdk_ssm::error::{ProvideErrorMetadata, SdkError};
use base64::Engine;
use serde_json::Value;

/// How a source's Secrets Manager secret holds its token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SecretFormat {
    /// The JSON field of the token.
    pub token_field: &'static str,
    /// The JSON field of the queue pools may leave unnamed, if the source
    /// has one (CircleCI's `resource_class`).
    pub queue_field: Option<&'static str>,
    /// Whether the secret may instead be the token as plain text.
    pub plain_text: bool,
    /// The secret as it should be stored, for messages.
    pub example: &'static str,
}

/// What the secret holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenSecret {
    /// The API token.
    pub token: Secret,
    /// The queue pools that name none read (the format's `queue_field`).
    pub queue: Option<String>,
}

/// The secret could not be read or is not what the scaler expects. No variant
/// carries the secret's value or any part of it.
#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    /// Secrets Manager has no secret of that name in that region.
    #[error(
        "the secret {name} does not exist in {region}: check its name and region \
         (SECRET_NAME and SECRET_REGION, or the config's token_secret)"
    )]
    NotFound { name: String, region: String },
    /// AWS refused the read for want of permission; `message` names what
    /// to grant.
    #[error("cannot read {what} {name} in {region}: {message}")]
    Refused {
        what: &'static str,
        name: String,
        region: String,
        message: String,
    },
    /// The call failed: no network, a timeout, ...
    #[error("cannot read the secret {name} in {region} from AWS Secrets Manager: {message}")]
    Read {
        name: String,
        region: String,
        message: String,
    },
    /// The secret holds neither text nor binary that decodes to text.
    #[error(
        "the secret {name} in {region} has no text value (its binary value is neither base64 \
         nor UTF-8 text): store it as {example}"
    )]
    NotText {
        name: String,
        region: String,
        example: &'static str,
    },
    /// The text is not a JSON object.
    #[error(
        "the secret {name} in {region} is not a JSON object ({problem}): store it as {example}"
    )]
    NotJsonObject {
        name: String,
        region: String,
        problem: String,
        example: &'static str,
    },
    /// A field is missing.
    #[error(
        "the secret {name} in {region} has no `{field}` field: add it to the secret's \
         JSON object as a non-empty string"
    )]
    MissingField {
        name: String,
        region: String,
        field: &'static str,
    },
    /// A field is not a non-empty string.
    #[error(
        "the `{field}` field of the secret {name} in {region} is {found}: it must be a \
         non-empty string"
    )]
    BadField {
        name: String,
        region: String,
        field: &'static str,
        found: &'static str,
    },
    /// SSM has no parameter of that name in that region.
    #[error(
        "the SSM parameter {name} does not exist in {region}: check its name and region \
         (RUNNER_SCALER_TOKEN_PARAMETER and SECRET_REGION, or the config's token_parameter)"
    )]
    ParameterNotFound { name: String, region: String },
    /// The parameter could not be read.
    #[error("cannot read the SSM parameter {name} in {region}: {message}")]
    ParameterRead {
        name: String,
        region: String,
        message: String,
    },
    /// The parameter holds no token.
    #[error(
        "the SSM parameter {name} in {region} is empty: store the API token in it \
         as a SecureString"
    )]
    EmptyParameter { name: String, region: String },
}

/// Read the secret `name` of `region`, stored in `format`.
pub async fn read_token_secret(
    format: &SecretFormat,
    name: &str,
    region: &str,
    options: &AwsOptions,
) -> Result<TokenSecret, SecretError> {
    let client = options.secrets_manager(region).await;
    let answer = client
        .get_secret_value()
        .secret_id(name)
        .send()
        .await
        .map_err(|err| {
            let not_found = err
                .as_service_error()
                .is_some_and(|service| service.is_resource_not_found_exception());
            read_failure(Store::Secret, &err, not_found, name, region)
        })?;
    let not_text = || SecretError::NotText {
        name: name.into(),
        region: region.into(),
        example: format.example,
    };
    let text = match (answer.secret_string(), answer.secret_binary()) {
        (Some(text), _) => text.to_owned(),
        (None, Some(binary)) => binary_text(binary.as_ref()).ok_or_else(not_text)?,
        (None, None) => return Err(not_text()),
    };
    parse_token_secret(format, name, region, &text)
}

/// Where a token is kept in AWS.
#[derive(Debug, Clone, Copy)]
enum Store {
    /// A Secrets Manager secret.
    Secret,
    /// An SSM parameter.
    Parameter,
}

/// Why reading `name` in `region` from `store` failed: it does not exist
/// (`not_found`, as the service's own error says), AWS refused it (with the
/// statement to add), or another failure. The one mapping of both stores'
/// errors.
fn read_failure<E>(
    store: Store,
    err: &SdkError<E, HttpResponse>,
    not_found: bool,
    name: &str,
    region: &str,
) -> SecretError
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
{
    let (name, region) = (name.to_string(), region.to_string());
    let (action, what) = match store {
        Store::Secret => (Action::GetSecretValue, "the secret"),
        Store::Parameter => (Action::GetParameter, "the SSM parameter"),
    };
    let call = Call::new(action, &region, Some(&name));
    if let Some(refusal) = refusal(err, &call).filter(|_| !not_found) {
        return SecretError::Refused {
            what,
            message: refusal.explain(&call),
            name,
            region,
        };
    }
    match (store, not_found) {
        (Store::Secret, true) => SecretError::NotFound { name, region },
        (Store::Parameter, true) => SecretError::ParameterNotFound { name, region },
        (Store::Secret, false) => SecretError::Read {
            message: error_message(err),
            name,
            region,
        },
        (Store::Parameter, false) => SecretError::ParameterRead {
            message: error_message(err),
            name,
            region,
        },
    }
}

/// The text of a binary secret. The original tool base64-decoded
/// `SecretBinary` before parsing it (boto3 hands the bytes over already
/// decoded from the wire), so the bytes it expects are base64 text; bytes
/// that are the text itself are taken as they are.
pub fn binary_text(bytes: &[u8]) -> Option<String> {
    let compact: Vec<u8> = bytes
        .iter()
        .copied()
        .filter(|b| !b.is_ascii_whitespace())
        .collect();
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(&compact)
        .ok()
        .and_then(|plain| String::from_utf8(plain).ok());
    decoded.or_else(|| String::from_utf8(bytes.to_vec()).ok())
}

/// Read the token from the SSM parameter `name` of `region`, decrypted.
pub async fn read_token_parameter(
    name: &str,
    region: &str,
    options: &AwsOptions,
) -> Result<Secret, SecretError> {
    let client = options.ssm(region).await;
    let answer = client
        .get_parameter()
        .name(name)
        .with_decryption(true)
        .send()
        .await
        .map_err(|err| {
            let not_found = err
                .as_service_error()
                .is_some_and(|service| service.is_parameter_not_found());
            read_failure(Store::Parameter, &err, not_found, name, region)
        })?;
    let parameter = answer.parameter();
    if let Some(kind) = parameter.and_then(|p| p.r#type()) {
        if *kind != aws_sdk_ssm::types::ParameterType::SecureString {
            tracing::warn!(
                parameter = name,
                %region,
                kind = kind.as_str(),
                "the token's SSM parameter is not a SecureString, so it is stored unencrypted; \
                 store it as a SecureString"
            );
        }
    }
    let token = parameter
        .and_then(|p| p.value())
        .map(str::trim)
        .filter(|token| !token.is_empty())
        .ok_or_else(|| SecretError::EmptyParameter {
            name: name.into(),
            region: region.into(),
        })?;
    Ok(Secret::new(token))
}

/// The secret's text in `format`; `name` and `region` only name it in
/// errors.
pub fn parse_token_secret(
    format: &SecretFormat,
    name: &str,
    region: &str,
    text: &str,
) -> Result<TokenSecret, SecretError> {
    let not_object = |problem: String| SecretError::NotJsonObject {
        name: name.into(),
        region: region.into(),
        problem,
        example: format.example,
    };
    let trimmed = text.trim();
    if format.plain_text && !trimmed.starts_with('{') {
        if trimmed.is_empty() || trimmed.chars().any(char::is_control) {
            return Err(not_object("it is empty or not one line of text".into()));
        }
        return Ok(TokenSecret {
            token: Secret::new(trimmed),
            queue: None,
        });
    }
    // serde_json's own message may quote the text; only its position is kept.
    let value: Value = serde_json::from_str(text).map_err(|err| {
        not_object(format!(
            "invalid JSON at line {} column {}",
            err.line(),
            err.column()
        ))
    })?;
    let Value::Object(fields) = value else {
        return Err(not_object(format!("it is {}", kind(&value))));
    };
    let field = |field: &'static str| match fields.get(field) {
        None => Err(SecretError::MissingField {
            name: name.into(),
            region: region.into(),
            field,
        }),
        Some(Value::String(text)) if !text.trim().is_empty() => Ok(text.clone()),
        Some(other) => Err(SecretError::BadField {
            name: name.into(),
            region: region.into(),
            field,
            found: kind(other),
        }),
    };
    let queue = match format.queue_field {
        Some(queue_field) if fields.contains_key(queue_field) => Some(field(queue_field)?),
        _ => None,
    };
    Ok(TokenSecret {
        token: Secret::new(field(format.token_field)?),
        queue,
    })
}

/// What a JSON value is, for errors that must not show it.
fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(text) if text.trim().is_empty() => "empty",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TOKEN: &str = "CCIPAT_unit_secret_value";

    const JSON: SecretFormat = SecretFormat {
        token_field: "circle_token",
        queue_field: Some("resource_class"),
        plain_text: false,
        example: "{\"circle_token\": \"...\"}",
    };

    fn parse(text: &str) -> Result<TokenSecret, SecretError> {
        parse_token_secret(&JSON, "runner/prod", "eu-west-1", text)
    }

    #[test]
    fn the_original_tools_secret_parses() {
        let secret = parse(&format!(
            r#"{{"circle_token": "{TOKEN}", "resource_class": "acme/large", "other": 1}}"#
        ))
        .unwrap();
        assert_eq!(secret.token.expose(), TOKEN);
        assert_eq!(secret.queue.as_deref(), Some("acme/large"));
        // A pool that names its resource class needs only the token here.
        let token_only = parse(&format!(r#"{{"circle_token": "{TOKEN}"}}"#)).unwrap();
        assert_eq!(token_only.queue, None);
    }

    #[test]
    fn a_binary_secret_is_decoded_as_the_original_tool_did() {
        let json = format!(r#"{{"circle_token": "{TOKEN}", "resource_class": "acme/large"}}"#);
        let encoded = base64::engine::general_purpose::STANDARD.encode(&json);
        // (name, the binary value)
        let cases = [
            (
                "base64 of the JSON, as the original expects",
                encoded.clone().into_bytes(),
            ),
            (
                "base64 with a line break",
                format!("{}\n{}\n", &encoded[..20], &encoded[20..]).into_bytes(),
            ),
            ("the JSON's own bytes", json.clone().into_bytes()),
        ];
        for (name, bytes) in cases {
            let text = binary_text(&bytes).unwrap_or_else(|| panic!("{name}: no text"));
            let secret = parse(&text).unwrap_or_else(|err| panic!("{name}: {err}"));
            assert_eq!(secret.token.expose(), TOKEN, "{name}");
        }
        assert_eq!(
            binary_text(&[0xff, 0xfe, 0x00]),
            None,
            "neither base64 nor text"
        );
    }

    #[test]
    fn every_error_names_the_secret_and_the_field_and_never_the_token() {
        let cases = [
            (
                r#"{"resource_class": "acme/large"}"#.to_string(),
                "`circle_token`",
            ),
            (
                format!(r#"{{"circle_token": "{TOKEN}", "resource_class": ""}}"#),
                "`resource_class` field",
            ),
            (
                format!(r#"{{"circle_token": "{TOKEN}", "resource_class": 7}}"#),
                "a number",
            ),
            (
                format!(r#"{{"circle_token": "", "resource_class": "{TOKEN}"}}"#),
                "empty",
            ),
            (format!(r#"{{"circle_token": "{TOKEN}""#), "invalid JSON"),
            (format!(r#""{TOKEN}""#), "it is a string"),
            (TOKEN.to_string(), "invalid JSON"),
        ];
        for (text, expected) in cases {
            let message = parse(&text).unwrap_err().to_string();
            assert!(message.contains("runner/prod"), "{message}");
            assert!(message.contains("eu-west-1"), "{message}");
            assert!(message.contains(expected), "{expected} in {message}");
            assert!(!message.contains(TOKEN), "the token leaked: {message}");
        }
    }

    #[test]
    fn a_buildkite_secret_is_plain_text_or_json() {
        let format = &crate::sources::buildkite::SECRET;
        let read = |text: &str| parse_token_secret(format, "bk/agent", "eu-west-1", text);
        for text in [
            format!("{TOKEN}\n"),
            format!(r#"{{"buildkite_agent_token": "{TOKEN}"}}"#),
        ] {
            let secret = read(&text).unwrap_or_else(|err| panic!("{text}: {err}"));
            assert_eq!(secret.token.expose(), TOKEN, "{text}");
            assert_eq!(secret.queue, None, "a Buildkite secret names no queue");
        }
        for (text, expected) in [
            ("", "empty"),
            ("two\nlines", "not one line"),
            (r#"{"circle_token": "x"}"#, "`buildkite_agent_token`"),
        ] {
            let message = read(text).unwrap_err().to_string();
            assert!(message.contains("bk/agent"), "{message}");
            assert!(message.contains(expected), "{expected} in {message}");
        }
    }
}
