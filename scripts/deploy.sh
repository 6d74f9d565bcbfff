#!/bin/bash
# Deploy runner-scaler in one command: build the Lambda bundle (or take a
# downloaded one), upload it to S3, and create or update the CloudFormation
# stack around it, printing the stack's progress as it goes.
#
#   scripts/deploy.sh --stack NAME --bucket BUCKET [options] [Parameter=Value ...]
#
#   scripts/deploy.sh --stack ci-runners --bucket my-artifacts \
#     ResourceClass=acme/linux-large CircleToken="$CIRCLECI_API_TOKEN" \
#     RunnerToken="$RUNNER_AUTH_TOKEN" VpcId=vpc-0123 Subnets=subnet-0aaa,subnet-0bbb \
#     MaxRunners=10 TimeZone=Europe/Berlin Policy=policies/business-hours.wasm
#
# --stack NAME      the stack (created when missing, updated otherwise).
# --bucket BUCKET   an S3 bucket in the stack's region for the bundle and the
#                   template.
# --prefix PREFIX   key prefix in the bucket (default runner-scaler/); the keys
#                   end in the files' SHA-256, so new code means a new key
#                   and the stack update replaces the function's code.
# --arch ARCH       arm64 (default) or x86_64; sets the stack's Architecture.
#                   With --zip, the zip's own architecture is the default.
# --zip FILE        deploy this bundle instead of building one: a release's
#                   runner-scaler-lambda-ARCH.zip (check it against its
#                   SHA256SUMS first). No Rust is needed then: only the AWS
#                   CLI, python3 and sha256sum.
# --out FILE        where the built bundle goes (default
#                   target/lambda/runner-scaler-lambda-ARCH.zip).
# --template FILE   default examples/cloudformation/runner-scaler.yaml.
# --region REGION   default: the AWS CLI's (AWS_DEFAULT_REGION, the profile).
# --timeout SECONDS the longest the change set and the stack may take
#                   (default 1800, or DEPLOY_TIMEOUT). On a timeout, or a
#                   stack that fails or rolls back, the script exits 1 with
#                   the stack's status and its events' reasons.
# --policy FILE, --config FILE, --binary FILE, --no-precompile
#                   passed to scripts/package-lambda.sh (--binary: a bootstrap
#                   built elsewhere, e.g. on an arm64 machine).
# Parameter=Value   any template parameter, passed through; on an update,
#                   parameters not given keep their values (the tokens too).
#
# Needs credentials the AWS CLI can use; the AWS CLI is installed from PyPI
# when missing. AWS_ENDPOINT_URL points every call elsewhere (the tests use
# moto). Afterwards: `runner-scaler check --probe` or invoke the function
# with {"probe": true} to see that its role allows every call.
set -euo pipefail

root="$(cd "$(dirname "$0")/.." && pwd)"
stack=""
bucket=""
prefix="runner-scaler/"
arch=arm64
arch_given=no
zip=""
out=""
template="$root/examples/cloudformation/runner-scaler.yaml"
region_args=()
package_args=()
parameters=()
timeout_s="${DEPLOY_TIMEOUT:-1800}"
# Seconds between two reads of the stack while it changes.
poll="${DEPLOY_POLL:-5}"
AWSCLI_PIN="awscli==1.45.11"

die() { echo "deploy: $*" >&2; exit 1; }

while [ $# -gt 0 ]; do
  case "$1" in
    --stack) stack="${2:?--stack needs a name}"; shift 2 ;;
    --bucket) bucket="${2:?--bucket needs a bucket}"; shift 2 ;;
    --prefix) prefix="${2?--prefix needs a prefix}"; shift 2 ;;
    --arch) arch="${2:?--arch needs x86_64 or arm64}"; arch_given=yes; shift 2 ;;
    --zip) zip="${2:?--zip needs a file}"; shift 2 ;;
    --out) out="${2:?--out needs a file}"; shift 2 ;;
    --template) template="${2:?--template needs a file}"; shift 2 ;;
    --region) region_args=(--region "${2:?--region needs a region}"); shift 2 ;;
    --timeout) timeout_s="${2:?--timeout needs a number of seconds}"; shift 2 ;;
    --policy|--config|--binary) package_args+=("$1" "${2:?$1 needs a file}"); shift 2 ;;
    --no-precompile) package_args+=("$1"); shift ;;
    -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    --) shift; parameters+=("$@"); break ;;
    *=*) parameters+=("$1"); shift ;;
    *) die "unknown argument $1 (see --help)" ;;
  esac
done
[ -n "$stack" ] || die "--stack is required: the CloudFormation stack to create or update"
[ -n "$bucket" ] || die "--bucket is required: an S3 bucket for the bundle, in the stack's region"
case "$timeout_s" in
  ''|*[!0-9]*) die "--timeout (or DEPLOY_TIMEOUT) must be a number of seconds, not '$timeout_s'" ;;
esac
case "$arch" in
  arm64|aarch64) arch=arm64 ;;
  x86_64|amd64|x86-64) arch=x86_64 ;;
  *) die "--arch must be x86_64 or arm64, not $arch" ;;
esac
for parameter in "${parameters[@]}"; do
  case "${parameter%%=*}" in
    CodeBucket|CodeKey|Architecture) die "$parameter: deploy.sh sets ${parameter%%=*} itself" ;;
  esac
done
[ -f "$template" ] || die "no template at $template"

# The AWS CLI, from PyPI when missing (bounded: a registry may not answer).
if ! aws --version >/dev/null 2>&1; then
  echo "==> pip install $AWSCLI_PIN"
  timeout 900 python3 -m pip install --quiet "$AWSCLI_PIN" 2>/dev/null \
    || timeout 900 python3 -m pip install --quiet --break-system-packages "$AWSCLI_PIN" \
    || die "cannot install the AWS CLI from PyPI"
  aws --version >/dev/null 2>&1 || die "the AWS CLI is installed but does not run: is pip's script directory on PATH?"
fi
aws_() { aws "${region_args[@]}" "$@"; }

# 1. Package, unless given a bundle (then nothing here calls cargo).
if [ -z "$zip" ]; then
  zip="${out:-${CARGO_TARGET_DIR:-$root/target}/lambda/runner-scaler-lambda-$arch.zip}"
  "$root/scripts/package-lambda.sh" --arch "$arch" --out "$zip" "${package_args[@]}"
else
  [ ${#package_args[@]} -eq 0 ] || die "--zip deploys a bundle as it is: ${package_args[*]} would change it (use them without --zip)"
  [ -f "$zip" ] || die "no bundle at $zip"
  # The bootstrap's ELF machine says the zip's architecture.
  zip_arch="$(python3 -c '
import sys, zipfile
try:
    head = zipfile.ZipFile(sys.argv[1]).open("bootstrap").read(20)
except (KeyError, zipfile.BadZipFile) as err:
    sys.exit(f"deploy: {sys.argv[1]} is not a runner-scaler bundle ({err}): it must hold a bootstrap")
machine = int.from_bytes(head[18:20], "little") if head[:4] == b"\x7fELF" else None
print({0x3E: "x86_64", 0xB7: "arm64"}.get(machine, "unknown"))
' "$zip")" || exit 1
  if [ "$arch_given" = no ]; then
    arch="$zip_arch"
  elif [ "$zip_arch" != "$arch" ]; then
    die "$zip holds an $zip_arch bootstrap, not $arch: drop --arch, or deploy the $arch zip"
  fi
  case "$arch" in x86_64|arm64) ;; *) die "$zip's bootstrap is neither an x86_64 nor an arm64 ELF binary" ;; esac
fi
[ -f "$zip" ] || die "no bundle at $zip"

# 2. Upload the bundle and the template, under keys named by their content.
# (CloudFormation reads a template of more than 51,200 bytes only from S3.)
digest="$(sha256sum "$zip" | cut -c1-16)"
key="${prefix}runner-scaler-lambda-$arch-$digest.zip"
template_key="${prefix}runner-scaler-$(sha256sum "$template" | cut -c1-16).yaml"
echo "==> s3://$bucket/$key"
aws_ s3 cp --only-show-errors "$zip" "s3://$bucket/$key"
aws_ s3 cp --only-show-errors "$template" "s3://$bucket/$template_key"
location="$(aws_ s3api get-bucket-location --bucket "$bucket" --query LocationConstraint --output text)"
case "$location" in None|null|"") location=us-east-1 ;; EU) location=eu-west-1 ;; esac
template_url="https://$bucket.s3.$location.amazonaws.com/$template_key"

# The stack by name until the change set names its id; then by id (a stack
# left in REVIEW_IN_PROGRESS is the one the change set creates).
stack_ref="$stack"

# The stack's status, or NONE when there is no such stack.
stack_status() {
  local out
  if out="$(aws_ cloudformation describe-stacks --stack-name "$stack_ref" \
      --query 'Stacks[0].StackStatus' --output text 2>&1)"; then
    echo "$out"
  elif [[ "$out" == *"does not exist"* ]]; then
    echo NONE
  else
    die "cannot read the stack $stack: $out"
  fi
}

# The stack's events not shown yet, oldest first, one line each.
declare -A shown=()
show_events() {
  local lines id time status resource reason
  lines="$(aws_ cloudformation describe-stack-events --stack-name "$stack_ref" --max-items 25 \
    --query 'StackEvents[].[EventId,Timestamp,ResourceStatus,LogicalResourceId,ResourceStatusReason]' \
    --output text 2>/dev/null)" || return 0
  while IFS=$'\t' read -r id time status resource reason; do
    case "$id" in ''|None|NEXTTOKEN) continue ;; esac
    [ -z "${shown[$id]:-}" ] || continue
    shown[$id]=1
    [ "$reason" = None ] && reason=""
    echo "    $time  $status  $resource${reason:+  ($reason)}"
  done < <(printf '%s\n' "$lines" | tac)
}

# Give up: why, the stack's status and reason, and its latest events (the
# reasons of what failed among them).
fail() {
  echo "deploy: $1" >&2
  local status reason
  status="$(stack_status)"
  reason="$(aws_ cloudformation describe-stacks --stack-name "$stack_ref" \
    --query 'Stacks[0].StackStatusReason' --output text 2>/dev/null || true)"
  echo "deploy: stack $stack is $status${reason:+ ($reason)}" | sed 's/ (None)$//' >&2
  echo "deploy: its latest events:" >&2
  aws_ cloudformation describe-stack-events --stack-name "$stack_ref" --max-items 10 \
    --query 'StackEvents[].[Timestamp,ResourceStatus,LogicalResourceId,ResourceStatusReason]' \
    --output text 2>/dev/null | grep -v '^NEXTTOKEN' | sed 's/\tNone$//; s/^/deploy:   /' >&2 || true
  exit 1
}

# 3. A change set: CREATE for a new stack (or one left in REVIEW_IN_PROGRESS
# by an earlier change set), UPDATE otherwise.
status="$(stack_status)"
case "$status" in
  NONE|REVIEW_IN_PROGRESS) type=CREATE ;;
  ROLLBACK_COMPLETE|ROLLBACK_FAILED|CREATE_FAILED|DELETE_FAILED)
    die "stack $stack is $status: it cannot be updated; delete it (aws cloudformation delete-stack --stack-name $stack) and deploy again" ;;
  *_IN_PROGRESS) die "stack $stack is $status: another operation is under way; deploy again once it has finished" ;;
  *) type=UPDATE ;;
esac
# On an update, the parameters not given keep their values: those the
# stack has and the template still declares.
previous=""
declared=""
if [ "$type" = UPDATE ]; then
  previous="$(aws_ cloudformation describe-stacks --stack-name "$stack" \
    --query 'Stacks[0].Parameters[].ParameterKey' --output text)"
  declared="$(aws_ cloudformation get-template-summary --template-url "$template_url" \
    --query 'Parameters[].ParameterKey' --output text)"
fi
# The parameters as JSON (values may hold commas and quotes), in a file
# only this user can read: it may hold the tokens.
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
python3 - "$previous" "$declared" CodeBucket="$bucket" CodeKey="$key" Architecture="$arch" \
  "${parameters[@]}" > "$work/parameters.json" <<'EOF'
import json, sys
previous, declared = set(sys.argv[1].split()), set(sys.argv[2].split())
given = dict(pair.partition("=")[::2] for pair in sys.argv[3:])
out = [{"ParameterKey": k, "ParameterValue": v} for k, v in given.items()]
out += [{"ParameterKey": k, "UsePreviousValue": True} for k in sorted((previous & declared) - given.keys())]
print(json.dumps(out))
EOF
changeset="deploy-$(date -u +%Y%m%d-%H%M%S)"
deadline=$((SECONDS + timeout_s))
echo "==> stack $stack: $status; change set $changeset ($type), waiting at most ${timeout_s}s"
stack_ref="$(aws_ cloudformation create-change-set --stack-name "$stack" --change-set-name "$changeset" \
  --change-set-type "$type" --template-url "$template_url" \
  --parameters "file://$work/parameters.json" --capabilities CAPABILITY_IAM \
  --description "scripts/deploy.sh: $key" --query StackId --output text)"

# 4. Wait for the change set, then execute it and wait for the stack.
changes=yes
last=""
while :; do
  (( SECONDS < deadline )) || fail "timed out after ${timeout_s}s: the change set $changeset is ${last:-not ready}"
  answer="$(aws_ cloudformation describe-change-set --stack-name "$stack_ref" \
    --change-set-name "$changeset" --query '[Status,StatusReason]' --output text)"
  IFS=$'\t' read -r cs_status cs_reason <<< "$answer"
  [ "$cs_status" = "$last" ] || echo "    change set $changeset: $cs_status"
  last="$cs_status"
  case "$cs_status" in
    CREATE_COMPLETE) break ;;
    FAILED)
      case "$cs_reason" in
        *"didn't contain changes"*|*"No updates are to be performed"*)
          echo "==> no changes: stack $stack is up to date"
          aws_ cloudformation delete-change-set --stack-name "$stack_ref" --change-set-name "$changeset" || true
          changes=no
          break ;;
        *) fail "the change set $changeset failed: $cs_reason" ;;
      esac ;;
  esac
  sleep "$poll"
done
if [ "$changes" = yes ]; then
  aws_ cloudformation execute-change-set --stack-name "$stack_ref" --change-set-name "$changeset"
  last=""
  while :; do
    (( SECONDS < deadline )) || fail "timed out after ${timeout_s}s waiting for stack $stack (${last:-?})"
    status="$(stack_status)"
    [ "$status" = "$last" ] || echo "    stack $stack: $status"
    last="$status"
    show_events
    case "$status" in
      CREATE_COMPLETE|UPDATE_COMPLETE) break ;;
      *ROLLBACK_COMPLETE|*_FAILED) fail "stack $stack did not deploy: $status" ;;
    esac
    sleep "$poll"
  done
fi

[ "$changes" = no ] || status="$last"
function_name="$(aws_ cloudformation describe-stack-resources --stack-name "$stack_ref" \
  --query "StackResources[?LogicalResourceId=='ScalerFunction'].PhysicalResourceId | [0]" --output text)"
echo "==> $stack: $status; function $function_name runs s3://$bucket/$key ($arch)"
# The event goes in on stdin, as raw bytes (fileb://): the same command works
# with the AWS CLI v1 this script installs and with v2.
invoke="aws ${region_args[*]:+${region_args[*]} }lambda invoke --function-name $function_name --payload fileb:///dev/stdin /dev/stdout"
echo "Try it without a write:  echo '{\"dry_run\": true}' | $invoke"
echo "Check its permissions:   echo '{\"probe\": true}' | $invoke"
