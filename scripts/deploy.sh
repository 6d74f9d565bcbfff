#!/bin/bash
# Deploy runner-scaler in one command: build the Lambda bundle, upload it to
# S3, and create or update the CloudFormation stack around it.
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
# --prefix PREFIX   key prefix in the bucket (default runner-scaler/); the key
#                   ends in the bundle's SHA-256, so new code means a new key
#                   and the stack update replaces the function's code.
# --arch ARCH       arm64 (default) or x86_64; sets the stack's Architecture.
# --zip FILE        deploy this bundle instead of building one.
# --out FILE        where the built bundle goes (default
#                   target/lambda/runner-scaler-lambda-ARCH.zip).
# --template FILE   default examples/cloudformation/runner-scaler.yaml.
# --region REGION   default: the AWS CLI's (AWS_REGION, the profile).
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
zip=""
out=""
template="$root/examples/cloudformation/runner-scaler.yaml"
region_args=()
package_args=()
parameters=()
AWSCLI_PIN="awscli==1.45.11"

die() { echo "deploy: $*" >&2; exit 1; }

while [ $# -gt 0 ]; do
  case "$1" in
    --stack) stack="${2:?--stack needs a name}"; shift 2 ;;
    --bucket) bucket="${2:?--bucket needs a bucket}"; shift 2 ;;
    --prefix) prefix="${2?--prefix needs a prefix}"; shift 2 ;;
    --arch) arch="${2:?--arch needs x86_64 or arm64}"; shift 2 ;;
    --zip) zip="${2:?--zip needs a file}"; shift 2 ;;
    --out) out="${2:?--out needs a file}"; shift 2 ;;
    --template) template="${2:?--template needs a file}"; shift 2 ;;
    --region) region_args=(--region "${2:?--region needs a region}"); shift 2 ;;
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

# The AWS CLI, from PyPI when missing (bounded: a registry may not answer).
if ! aws --version >/dev/null 2>&1; then
  echo "==> pip install $AWSCLI_PIN"
  timeout 900 python3 -m pip install --quiet "$AWSCLI_PIN" 2>/dev/null \
    || timeout 900 python3 -m pip install --quiet --break-system-packages "$AWSCLI_PIN" \
    || die "cannot install the AWS CLI from PyPI"
  aws --version >/dev/null 2>&1 || die "the AWS CLI is installed but does not run: is pip's script directory on PATH?"
fi
aws_() { aws "${region_args[@]}" "$@"; }

# 1. Package.
if [ -z "$zip" ]; then
  zip="${out:-${CARGO_TARGET_DIR:-$root/target}/lambda/runner-scaler-lambda-$arch.zip}"
  "$root/scripts/package-lambda.sh" --arch "$arch" --out "$zip" "${package_args[@]}"
fi
[ -f "$zip" ] || die "no bundle at $zip"

# 2. Upload, under a key named by its content.
digest="$(sha256sum "$zip" | cut -c1-16)"
key="${prefix}runner-scaler-lambda-$arch-$digest.zip"
echo "==> s3://$bucket/$key"
aws_ s3 cp --only-show-errors "$zip" "s3://$bucket/$key"

# 3. Create or update the stack. The template goes through the bucket too:
# CloudFormation takes at most 51,200 bytes inline, and it embeds two user data.
echo "==> stack $stack"
aws_ cloudformation deploy \
  --stack-name "$stack" \
  --template-file "$template" \
  --s3-bucket "$bucket" --s3-prefix "${prefix%/}" \
  --capabilities CAPABILITY_IAM \
  --no-fail-on-empty-changeset \
  --parameter-overrides CodeBucket="$bucket" CodeKey="$key" Architecture="$arch" "${parameters[@]}"

status="$(aws_ cloudformation describe-stacks --stack-name "$stack" --query 'Stacks[0].StackStatus' --output text)"
function_name="$(aws_ cloudformation describe-stack-resources --stack-name "$stack" \
  --query "StackResources[?LogicalResourceId=='ScalerFunction'].PhysicalResourceId | [0]" --output text)"
echo "==> $stack: $status; function $function_name runs s3://$bucket/$key ($arch)"
echo "Try it without a write:  aws lambda invoke --function-name $function_name --payload '{\"dry_run\": true}' --cli-binary-format raw-in-base64-out /dev/stdout"
echo "Check its permissions:   aws lambda invoke --function-name $function_name --payload '{\"probe\": true}' --cli-binary-format raw-in-base64-out /dev/stdout"
