//! The runner secret in AWS Secrets Manager, as the original tool keeps it: a
//! JSON object with the CircleCI token (`circle_token`) and the runner
//! resource class (`resource_class`).

use crate::aws::{error_message, AwsOptions};
use crate::secret::Secret;
use serde_json::Value;

/// The token field of the secret.
pub const TOKEN_FIELD: &str = "circle_token";
/// The resource class field of the secret.
pub const RESOURCE_CLASS_FIELD: &str = "resource_class";

/// What the secret holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunnerSecret {
    /// The CircleCI API token.
    pub token: Secret,
    /// The runner resource class, `namespace/name`.
    pub resource_class: String,
}

/// The secret could not be read or is not what the scaler expects. No variant
/// carries the secret's value or any part of it.
#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    /// Secrets Manager has no secret of that name in that region.
    #[error(
        "the secret {name} does not exist in {region}: check its name and region \
         (SECRET_NAME and SECRET_REGION, or the config's secret)"
    )]
    NotFound { name: String, region: String },
    /// The call failed: access denied, no network, a timeout, ...
    #[error(
        "cannot read the secret {name} in {region} from AWS Secrets Manager: {message} \
         (the scaler needs secretsmanager:GetSecretValue on it)"
    )]
    Read {
        name: String,
        region: String,
        message: String,
    },
    /// The secret holds binary data, not text.
    #[error(
        "the secret {name} in {region} has no text value: store it as a JSON object \
         {{\"circle_token\": \"...\", \"resource_class\": \"namespace/name\"}}"
    )]
    NotText { name: String, region: String },
    /// The text is not a JSON object.
    #[error(
        "the secret {name} in {region} is not a JSON object ({problem}): store it as \
         {{\"circle_token\": \"...\", \"resource_class\": \"namespace/name\"}}"
    )]
    NotJsonObject {
        name: String,
        region: String,
        problem: String,
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
}

/// Read the runner secret `name` of `region`.
pub async fn read_runner_secret(
    name: &str,
    region: &str,
    options: &AwsOptions,
) -> Result<RunnerSecret, SecretError> {
    let client = aws_sdk_secretsmanager::Client::new(&options.sdk_config(region).await);
    let answer = client
        .get_secret_value()
        .secret_id(name)
        .send()
        .await
        .map_err(|err| {
            let not_found = err
                .as_service_error()
                .is_some_and(|service| service.is_resource_not_found_exception());
            if not_found {
                SecretError::NotFound {
                    name: name.into(),
                    region: region.into(),
                }
            } else {
                SecretError::Read {
                    name: name.into(),
                    region: region.into(),
                    message: error_message(&err),
                }
            }
        })?;
    let text = answer.secret_string().ok_or_else(|| SecretError::NotText {
        name: name.into(),
        region: region.into(),
    })?;
    parse_runner_secret(name, region, text)
}

/// The secret's text, `name` and `region` only naming it in errors.
pub fn parse_runner_secret(
    name: &str,
    region: &str,
    text: &str,
) -> Result<RunnerSecret, SecretError> {
    let not_object = |problem: String| SecretError::NotJsonObject {
        name: name.into(),
        region: region.into(),
        problem,
    };
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
    Ok(RunnerSecret {
        token: Secret::new(field(TOKEN_FIELD)?),
        resource_class: field(RESOURCE_CLASS_FIELD)?,
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

    fn parse(text: &str) -> Result<RunnerSecret, SecretError> {
        parse_runner_secret("runner/prod", "eu-west-1", text)
    }

    #[test]
    fn the_original_tools_secret_parses() {
        let secret = parse(&format!(
            r#"{{"circle_token": "{TOKEN}", "resource_class": "acme/large", "other": 1}}"#
        ))
        .unwrap();
        assert_eq!(secret.token.expose(), TOKEN);
        assert_eq!(secret.resource_class, "acme/large");
    }

    #[test]
    fn every_error_names_the_secret_and_the_field_and_never_the_token() {
        let cases = [
            (
                r#"{"resource_class": "acme/large"}"#.to_string(),
                "`circle_token`",
            ),
            (
                format!(r#"{{"circle_token": "{TOKEN}"}}"#),
                "`resource_class`",
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
}
