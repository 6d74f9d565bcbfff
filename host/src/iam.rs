//! What the scaler needs from IAM: the AWS actions it calls, the statement
//! that allows each, and AWS's refusal of a call turned into a message that
//! names the missing action, the principal and the statement to add.
//!
//! A deployment migrated from the original tool keeps a role that allows
//! only `UpdateAutoScalingGroup` and `GetSecretValue`; its first tick is
//! refused, and this is what tells the operator exactly what to grant.

use serde_json::json;

/// An AWS action the scaler calls.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Action {
    /// Read the groups (every tick). IAM cannot scope it to a group.
    DescribeGroups,
    /// Set a group's desired capacity (when it changes).
    SetDesiredCapacity,
    /// Set the desired capacity and widen the group's own bounds.
    UpdateGroup,
    /// Keep a policy's state in the group's tag.
    CreateOrUpdateTags,
    /// Remove that tag when the policy drops its state.
    DeleteTags,
    /// Size a group's warm pool, when its policy asks.
    PutWarmPool,
    /// Read the token's secret.
    GetSecretValue,
    /// Read the token's SSM parameter.
    GetParameter,
}

impl Action {
    /// The action as IAM names it.
    pub fn name(self) -> &'static str {
        match self {
            Action::DescribeGroups => "autoscaling:DescribeAutoScalingGroups",
            Action::SetDesiredCapacity => "autoscaling:SetDesiredCapacity",
            Action::UpdateGroup => "autoscaling:UpdateAutoScalingGroup",
            Action::CreateOrUpdateTags => "autoscaling:CreateOrUpdateTags",
            Action::DeleteTags => "autoscaling:DeleteTags",
            Action::PutWarmPool => "autoscaling:PutWarmPool",
            Action::GetSecretValue => "secretsmanager:GetSecretValue",
            Action::GetParameter => "ssm:GetParameter",
        }
    }
}

/// One call the scaler makes: the action, and what it acts on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Call {
    pub action: Action,
    /// The region the call goes to.
    pub region: String,
    /// The group, secret or parameter name (or ARN); `None` for describe.
    pub target: Option<String>,
}

impl Call {
    pub fn new(action: Action, region: &str, target: Option<&str>) -> Call {
        Call {
            action,
            region: region.to_owned(),
            target: target.map(str::to_owned),
        }
    }
}

/// AWS refused a call for want of permission, as its error said.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// The error code (`AccessDenied`, `AccessDeniedException`, ...).
    pub code: String,
    /// The action AWS says was refused: usually the call's, but reading a
    /// SecureString can be refused `kms:Decrypt`.
    pub action: String,
    /// Who asked, e.g. `arn:aws:sts::123456789012:assumed-role/ROLE/SESSION`.
    pub principal: Option<String>,
    /// The resource as AWS named it.
    pub resource: Option<String>,
    /// AWS's reason, e.g. "no identity-based policy allows the ... action".
    pub reason: Option<String>,
}

/// The longest piece of an AWS message kept: they go into log lines.
const MAX_PART: usize = 512;

impl Refusal {
    /// The refusal in an AWS error's `code` and `message`, if it is one.
    pub fn from_error(code: Option<&str>, message: Option<&str>, call: &Call) -> Option<Refusal> {
        let code = code?;
        let denied = code.ends_with("AccessDenied")
            || code.ends_with("AccessDeniedException")
            || matches!(code, "UnauthorizedOperation" | "NotAuthorized");
        if !denied {
            return None;
        }
        let message = message.unwrap_or_default();
        // AWS's wording: "User: PRINCIPAL is not authorized to perform:
        // ACTION [on resource: RESOURCE] [because ... | with an explicit deny in ...]".
        let principal = between(message, "User: ", " is not authorized");
        let after_action = message.split_once("to perform: ").map(|(_, rest)| rest);
        let action = after_action
            .and_then(|rest| rest.split_whitespace().next())
            .filter(|word| word.contains(':'))
            .map(str::to_owned)
            .unwrap_or_else(|| call.action.name().to_owned());
        let resource = after_action.and_then(|rest| {
            let rest = rest.split_once(" on resource: ")?.1;
            let end = [" because ", " with an explicit deny"]
                .iter()
                .filter_map(|stop| rest.find(stop))
                .min()
                .unwrap_or(rest.len());
            Some(cut(rest[..end].trim()))
        });
        let reason = ["because ", "with an explicit deny"]
            .iter()
            .filter_map(|start| message.find(start).map(|at| &message[at..]))
            .min_by_key(|rest| std::cmp::Reverse(rest.len()))
            .map(|rest| cut(rest.trim_end_matches('.')))
            // A message with no AWS wording at all (KMS: "Access to KMS is
            // not allowed") is kept whole: it is all there is.
            .or_else(|| (principal.is_none() && !message.is_empty()).then(|| cut(message)));
        Some(Refusal {
            code: code.to_owned(),
            action,
            principal,
            resource,
            reason,
        })
    }

    /// Whether an explicit Deny refused it: no Allow statement can help.
    pub fn explicit_deny(&self) -> bool {
        self.reason
            .as_deref()
            .is_some_and(|reason| reason.contains("explicit deny"))
    }

    /// The IAM role (`assumed-role/ROLE/SESSION`) or user (`user/NAME`) the
    /// principal is, if it is one: where the statement goes.
    pub fn holder(&self) -> Option<(&'static str, &str)> {
        let principal = self.principal.as_deref()?;
        let (kind, path) = if let Some((_, path)) = principal.split_once(":assumed-role/") {
            ("role", path)
        } else if let Some((_, path)) = principal.split_once(":user/") {
            ("user", path)
        } else {
            return None;
        };
        // A role's path holds its session after it; a user's may hold a path before it.
        let name = match kind {
            "role" => path.split('/').next(),
            _ => path.rsplit('/').next(),
        };
        name.filter(|n| !n.is_empty()).map(|n| (kind, n))
    }

    /// The statement that allows the refused call, as JSON.
    pub fn statement(&self, call: &Call) -> serde_json::Value {
        let resource = match &self.resource {
            // AWS named the resource as an ARN: that is what to allow.
            Some(arn) if arn.starts_with("arn:") => arn.clone(),
            _ if self.action != call.action.name() => "*".to_owned(),
            _ => resource_arn(call, self.principal.as_deref()),
        };
        json!({ "Effect": "Allow", "Action": self.action, "Resource": resource })
    }

    /// The message for an operator: what was refused, to whom, and the fix.
    pub fn explain(&self, call: &Call) -> String {
        let mut text = format!("{}: AWS refused {}", self.code, self.action);
        if let Some(principal) = &self.principal {
            text.push_str(&format!(" to {principal}"));
        }
        if let Some(resource) = &self.resource {
            text.push_str(&format!(" on {resource}"));
        }
        if let Some(reason) = &self.reason {
            text.push_str(&format!(" ({reason})"));
        }
        if self.explicit_deny() {
            text.push_str(
                ". An explicit Deny overrides every Allow: remove or narrow that Deny (an identity \
                 policy, a permissions boundary, or an organization's service control policy) for this \
                 action",
            );
            return text;
        }
        let statement = self.statement(call);
        let document = json!({ "Version": "2012-10-17", "Statement": [statement.clone()] });
        match self.holder() {
            Some((kind, name)) => text.push_str(&format!(
                ". Add this statement to the {kind} {name}: {statement}, e.g. `aws iam put-{kind}-policy \
                 --{kind}-name {name} --policy-name runner-scaler-{} --policy-document '{document}'`",
                policy_suffix(&self.action)
            )),
            None => text.push_str(&format!(
                ". Add this statement to the principal's policy: {statement}"
            )),
        }
        if self
            .reason
            .as_deref()
            .is_some_and(|r| r.contains("resource-based policy"))
        {
            text.push_str(
                "; the resource's own policy (the secret's or the KMS key's) must allow it too",
            );
        }
        text.push_str(". Every statement the scaler needs: docs/deploying.md#the-role");
        text
    }
}

/// The ARN a statement for `call` allows, with the partition and account
/// read from the principal's ARN (placeholders when it is unknown).
pub fn resource_arn(call: &Call, principal: Option<&str>) -> String {
    let target = call.target.as_deref().unwrap_or("*");
    if target.starts_with("arn:") {
        return target.to_owned();
    }
    let (partition, account) = principal
        .and_then(|arn| {
            let mut parts = arn.split(':');
            let _arn = parts.next()?;
            let partition = parts.next()?;
            let _service = parts.next()?;
            let _region = parts.next()?;
            let account = parts.next()?;
            (!account.is_empty()).then(|| (partition.to_owned(), account.to_owned()))
        })
        .unwrap_or_else(|| ("aws".to_owned(), "ACCOUNT".to_owned()));
    let region = &call.region;
    match call.action {
        Action::DescribeGroups => "*".to_owned(),
        Action::SetDesiredCapacity
        | Action::UpdateGroup
        | Action::CreateOrUpdateTags
        | Action::DeleteTags
        | Action::PutWarmPool => format!(
            "arn:{partition}:autoscaling:{region}:{account}:autoScalingGroup:*:autoScalingGroupName/{target}"
        ),
        // Secrets Manager appends six random characters to a secret's ARN.
        Action::GetSecretValue => {
            format!("arn:{partition}:secretsmanager:{region}:{account}:secret:{target}-??????")
        }
        Action::GetParameter => format!(
            "arn:{partition}:ssm:{region}:{account}:parameter/{}",
            target.trim_start_matches('/')
        ),
    }
}

/// A policy name's suffix for an action: `autoscaling:SetDesiredCapacity` →
/// `SetDesiredCapacity`.
fn policy_suffix(action: &str) -> String {
    action
        .rsplit(':')
        .next()
        .unwrap_or(action)
        .chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .collect()
}

/// The text between `start` and `end` in `text`.
fn between(text: &str, start: &str, end: &str) -> Option<String> {
    let rest = text.split_once(start)?.1;
    let value = rest.split_once(end)?.0.trim();
    (!value.is_empty()).then(|| cut(value))
}

/// `text`, cut to [`MAX_PART`] characters, control characters dropped.
fn cut(text: &str) -> String {
    text.chars()
        .filter(|c| !c.is_control())
        .take(MAX_PART)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const ROLE: &str =
        "arn:aws:sts::123456789012:assumed-role/cci-runner-lambda-iam-role/cci-runner-lambda-function";

    fn describe() -> Call {
        Call::new(Action::DescribeGroups, "eu-west-1", None)
    }

    fn set(group: &str) -> Call {
        Call::new(Action::SetDesiredCapacity, "eu-west-1", Some(group))
    }

    #[test]
    fn refusals_in_aws_own_words_are_understood() {
        // (name, code, message, call, action, resource in the statement, words of the message)
        let cases = [
            (
                "describe, which has no resource",
                "AccessDenied",
                format!("User: {ROLE} is not authorized to perform: autoscaling:DescribeAutoScalingGroups because no identity-based policy allows the autoscaling:DescribeAutoScalingGroups action"),
                describe(),
                "autoscaling:DescribeAutoScalingGroups",
                "*".to_string(),
                "Add this statement to the role cci-runner-lambda-iam-role",
            ),
            (
                "a group write names the group's ARN",
                "AccessDenied",
                format!("User: {ROLE} is not authorized to perform: autoscaling:SetDesiredCapacity on resource: arn:aws:autoscaling:eu-west-1:123456789012:autoScalingGroup:8e1c-44:autoScalingGroupName/ci because no identity-based policy allows the autoscaling:SetDesiredCapacity action"),
                set("ci"),
                "autoscaling:SetDesiredCapacity",
                "arn:aws:autoscaling:eu-west-1:123456789012:autoScalingGroup:8e1c-44:autoScalingGroupName/ci".to_string(),
                "--role-name cci-runner-lambda-iam-role --policy-name runner-scaler-SetDesiredCapacity",
            ),
            (
                "Secrets Manager names the secret as it was asked for",
                "AccessDeniedException",
                format!("User: {ROLE} is not authorized to perform: secretsmanager:GetSecretValue on resource: cci-runner-lambda-secrets because no identity-based policy allows the secretsmanager:GetSecretValue action"),
                Call::new(Action::GetSecretValue, "eu-west-1", Some("cci-runner-lambda-secrets")),
                "secretsmanager:GetSecretValue",
                "arn:aws:secretsmanager:eu-west-1:123456789012:secret:cci-runner-lambda-secrets-??????".to_string(),
                "on cci-runner-lambda-secrets",
            ),
            (
                "a SecureString whose key refuses",
                "AccessDeniedException",
                format!("User: {ROLE} is not authorized to perform: kms:Decrypt on resource: arn:aws:kms:eu-west-1:123456789012:key/1234 because no identity-based policy allows the kms:Decrypt action"),
                Call::new(Action::GetParameter, "eu-west-1", Some("/ci/token")),
                "kms:Decrypt",
                "arn:aws:kms:eu-west-1:123456789012:key/1234".to_string(),
                "AWS refused kms:Decrypt",
            ),
            (
                "a bare message, as moto words it",
                "AccessDenied",
                "User: arn:aws:iam::123456789012:user/old is not authorized to perform: autoscaling:DescribeAutoScalingGroups".to_string(),
                describe(),
                "autoscaling:DescribeAutoScalingGroups",
                "*".to_string(),
                "--user-name old --policy-name runner-scaler-DescribeAutoScalingGroups",
            ),
            (
                "no message at all",
                "AccessDenied",
                String::new(),
                set("ci"),
                "autoscaling:SetDesiredCapacity",
                "arn:aws:autoscaling:eu-west-1:ACCOUNT:autoScalingGroup:*:autoScalingGroupName/ci".to_string(),
                "AccessDenied: AWS refused autoscaling:SetDesiredCapacity.",
            ),
        ];
        for (name, code, message, call, action, resource, words) in cases {
            let refusal = Refusal::from_error(Some(code), Some(&message), &call)
                .unwrap_or_else(|| panic!("{name}: not a refusal"));
            assert_eq!(refusal.action, action, "{name}");
            assert_eq!(refusal.statement(&call)["Resource"], resource, "{name}");
            assert_eq!(refusal.statement(&call)["Action"], action, "{name}");
            let text = refusal.explain(&call);
            assert!(text.contains(words), "{name}: {text}");
            assert!(!text.contains('\n'), "{name}: one line: {text}");
        }
    }

    #[test]
    fn an_explicit_deny_is_not_answered_with_an_allow() {
        let message = format!(
            "User: {ROLE} is not authorized to perform: autoscaling:SetDesiredCapacity on resource: \
             arn:aws:autoscaling:eu-west-1:123456789012:autoScalingGroup:1:autoScalingGroupName/ci \
             with an explicit deny in a service control policy"
        );
        let refusal =
            Refusal::from_error(Some("AccessDenied"), Some(&message), &set("ci")).unwrap();
        assert!(refusal.explicit_deny());
        assert_eq!(
            refusal.resource.as_deref(),
            Some("arn:aws:autoscaling:eu-west-1:123456789012:autoScalingGroup:1:autoScalingGroupName/ci")
        );
        let text = refusal.explain(&set("ci"));
        assert!(text.contains("service control policy"), "{text}");
        assert!(text.contains("remove or narrow that Deny"), "{text}");
        assert!(!text.contains("put-role-policy"), "{text}");
    }

    #[test]
    fn other_errors_are_not_refusals() {
        for code in [
            "ValidationError",
            "Throttling",
            "InvalidClientTokenId",
            "ResourceNotFoundException",
        ] {
            assert_eq!(
                Refusal::from_error(Some(code), Some("x"), &describe()),
                None,
                "{code}"
            );
        }
        assert_eq!(Refusal::from_error(None, Some("x"), &describe()), None);
    }

    #[test]
    fn statements_name_the_resource_in_the_principals_partition_and_account() {
        let principal = Some("arn:aws-cn:sts::210987654321:assumed-role/r/s");
        let cases = [
            (Call::new(Action::DeleteTags, "cn-north-1", Some("ci")), "arn:aws-cn:autoscaling:cn-north-1:210987654321:autoScalingGroup:*:autoScalingGroupName/ci"),
            (Call::new(Action::GetParameter, "cn-north-1", Some("/ci/token")), "arn:aws-cn:ssm:cn-north-1:210987654321:parameter/ci/token"),
            (Call::new(Action::GetSecretValue, "cn-north-1", Some("arn:aws-cn:secretsmanager:cn-north-1:210987654321:secret:s-AbCdEf")), "arn:aws-cn:secretsmanager:cn-north-1:210987654321:secret:s-AbCdEf"),
        ];
        for (call, arn) in cases {
            assert_eq!(resource_arn(&call, principal), arn);
        }
    }
}
