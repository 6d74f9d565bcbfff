#!/bin/bash
# Tests for the EC2 user data: shellcheck, then the install script and the
# leave-group hook run in a temporary root with stub commands (tests/stub.sh).
# Usage: bash userdata/tests/run.sh   (last line: "N passed, M failed")
set -uo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
USERDATA="$(dirname "$HERE")"
INSTALL="$USERDATA/install-runner-ubuntu.sh"
ID="i-0123456789abcdef0"
SSM_TOKEN="runner-token-from-ssm"
SM_TOKEN="runner-token-from-secretsmanager"
CONFIG=etc/circleci-runner/circleci-runner-config.yaml
DROPIN=etc/systemd/system/circleci-runner.service.d/10-single-task.conf
LEAVE=usr/local/bin/runner-leave-group

TMP="$(mktemp -d)"
trap 'rm -rf "$TMP"' EXIT
BIN="$TMP/bin"
mkdir -p "$BIN"
for cmd in apt-get curl aws systemctl id useradd usermod chown logger sleep unzip snap; do
  ln -s "$HERE/stub.sh" "$BIN/$cmd"
done

passed=0 failed=0
pass() { passed=$((passed + 1)); echo "PASS  $1"; }
fail() { failed=$((failed + 1)); echo "FAIL  $1${2:+  ($2)}"; }
# check DESCRIPTION COMMAND...: passes when the command succeeds.
check() { local d="$1"; shift; if "$@" >/dev/null 2>&1; then pass "$d"; else fail "$d"; fi; }
# eq DESCRIPTION ACTUAL EXPECTED
eq() { if [ "$2" = "$3" ]; then pass "$1"; else fail "$1" "got '$2', want '$3'"; fi; }
has() { grep -qF -- "$2" "$1"; }           # file contains fixed string
lacks() { ! grep -qF -- "$2" "$1"; }
lacks_any() { ! grep -qF -- "$1" "${@:2}"; } # STRING FILE...: in none of the files
has_re() { grep -qE -- "$2" "$1"; }        # file contains a line matching the regex
count() { grep -cE -- "$2" "$1"; }

# yaml_get FILE SECTION KEY: value of "  KEY: value" under top-level "SECTION:",
# surrounding double quotes removed. Enough for the flat file the script writes.
yaml_get() {
  awk -v s="$2" -v k="$3" '
    /^[^ #]/ { sec = $0; sub(/:.*/, "", sec) }
    sec == s && index($0, "  " k ": ") == 1 { v = substr($0, length(k) + 5); gsub(/^"|"$/, "", v); print v }
  ' "$1"
}

# run_install CASE [VAR=value...]: run the script in $TMP/CASE/root with the stubs;
# leaves out, err, rc and stub.log in $TMP/CASE.
run_install() {
  local dir="$TMP/$1"; shift
  mkdir -p "$dir/root"
  env PATH="$BIN:$PATH" RUNNER_SCALER_ROOT="$dir/root" STUB_LOG="$dir/stub.log" "$@" \
    bash "$INSTALL" >"$dir/out" 2>"$dir/err"
  echo $? >"$dir/rc"
  touch "$dir/stub.log"
}

# run_leave CASE ROOT_CASE [VAR=value...]: run the installed hook from ROOT_CASE's root.
run_leave() {
  local dir="$TMP/$1" root="$TMP/$2/root"; shift 2
  mkdir -p "$dir"
  env PATH="$BIN:$PATH" STUB_LOG="$dir/stub.log" "$@" "$root/$LEAVE" >"$dir/out" 2>"$dir/err"
  echo $? >"$dir/rc"
  touch "$dir/stub.log"
}

echo "== shellcheck"
command -v shellcheck >/dev/null || (apt-get update -qq && apt-get install -y -qq shellcheck) >/dev/null
while IFS= read -r f; do
  if out="$(shellcheck "$f" 2>&1)"; then pass "shellcheck ${f#"$USERDATA"/}"
  else fail "shellcheck ${f#"$USERDATA"/}"; printf '%s\n' "$out"; fi
done < <(find "$USERDATA" -name '*.sh' | sort)

echo "== install, token from SSM Parameter Store (defaults)"
run_install ssm
d="$TMP/ssm" r="$TMP/ssm/root"
eq "exits 0" "$(cat "$d/rc")" 0
check "config file written" test -f "$r/$CONFIG"
eq "config mode 600" "$(stat -c %a "$r/$CONFIG" 2>/dev/null)" 600
check "config chowned root:root" has "$d/stub.log" "chown root:root $r/$CONFIG"
eq "api.auth_token is the SSM value" "$(yaml_get "$r/$CONFIG" api auth_token)" "$SSM_TOKEN"
eq "runner.name from the instance id" "$(yaml_get "$r/$CONFIG" runner name)" "runner-scaler-$ID"
eq "runner.mode" "$(yaml_get "$r/$CONFIG" runner mode)" single-task
eq "runner.idle_timeout" "$(yaml_get "$r/$CONFIG" runner idle_timeout)" 5m
eq "runner.max_run_time" "$(yaml_get "$r/$CONFIG" runner max_run_time)" 5h
eq "runner.working_directory" "$(yaml_get "$r/$CONFIG" runner working_directory)" /var/lib/circleci-runner/workdir
eq "runner.cleanup_working_directory" "$(yaml_get "$r/$CONFIG" runner cleanup_working_directory)" true
eq "runner.command_prefix" "$(yaml_get "$r/$CONFIG" runner command_prefix)" '["sudo", "-niHu", "circleci", "--"]'
check "no api.url for CircleCI cloud" lacks "$r/$CONFIG" "url:"
check "IMDSv2 session token requested (PUT + ttl header)" \
  has_re "$d/stub.log" '^curl .*-X PUT -H X-aws-ec2-metadata-token-ttl-seconds: [0-9]+ http://169.254.169.254/latest/api/token'
check "token read from SSM with decryption" has_re "$d/stub.log" \
  '^aws ssm get-parameter --region eu-west-1 --name /runner-scaler/runner-token --with-decryption --query Parameter.Value --output text$'
check "Secrets Manager not called" lacks "$d/stub.log" "aws secretsmanager"
check "console output shows the steps" has "$d/out" "==> [runner-scaler] write runner config"
check "token absent from stdout" lacks "$d/out" "$SSM_TOKEN"
check "token absent from stderr" lacks "$d/err" "$SSM_TOKEN"
eq "token only in the config file" "$(grep -rlF -- "$SSM_TOKEN" "$r")" "$r/$CONFIG"
check "runner repository script fetched from packagecloud and run" has "$d/out" "stub: package repository configured"
check "circleci-runner package installed" has_re "$d/stub.log" '^apt-get .* install circleci-runner$'
check "missing job user created" has_re "$d/stub.log" '^useradd .*circleci$'
check "workdir owned by the job user" has "$d/stub.log" "chown circleci: $r/var/lib/circleci-runner/workdir"
check "drop-in Restart=no" has_re "$r/$DROPIN" '^Restart=no$'
check "drop-in ExecStopPost runs the leave hook" has_re "$r/$DROPIN" '^ExecStopPost=/usr/local/bin/runner-leave-group$'
check "drop-in User=root" has_re "$r/$DROPIN" '^User=root$'
check "leave hook executable" test -x "$r/$LEAVE"
check "leave hook knows the instance id" has_re "$r/$LEAVE" "^INSTANCE_ID=$ID$"
check "leave hook knows the region" has_re "$r/$LEAVE" '^REGION=eu-west-1$'
check "shellcheck generated leave hook" shellcheck "$r/$LEAVE"
check "systemd reloaded" has "$d/stub.log" "systemctl daemon-reload"
check "service enabled" has "$d/stub.log" "systemctl enable circleci-runner.service"
eq "service (re)started last" "$(grep '^systemctl' "$d/stub.log" | tail -n1)" "systemctl restart circleci-runner.service"
check "no leave attempt on success" lacks "$d/stub.log" "autoscaling"

echo "== install, token from Secrets Manager, custom settings"
run_install sm RUNNER_TOKEN_SOURCE=secretsmanager RUNNER_TOKEN_NAME=ci/runner-token \
  RUNNER_USER=builder RUNNER_IDLE_TIMEOUT=2m STUB_ID_RC=0
d="$TMP/sm" r="$TMP/sm/root"
eq "exits 0" "$(cat "$d/rc")" 0
eq "api.auth_token is the Secrets Manager value" "$(yaml_get "$r/$CONFIG" api auth_token)" "$SM_TOKEN"
check "token read from Secrets Manager" has_re "$d/stub.log" \
  '^aws secretsmanager get-secret-value --region eu-west-1 --secret-id ci/runner-token --query SecretString --output text$'
check "SSM not called" lacks "$d/stub.log" "aws ssm"
check "token absent from stdout/stderr" lacks_any "$SM_TOKEN" "$d/out" "$d/err"
eq "runner.idle_timeout follows the variable" "$(yaml_get "$r/$CONFIG" runner idle_timeout)" 2m
eq "command_prefix uses RUNNER_USER" "$(yaml_get "$r/$CONFIG" runner command_prefix)" '["sudo", "-niHu", "builder", "--"]'
check "existing user not re-created" lacks "$d/stub.log" "useradd"

echo "== install, inline token"
run_install inline RUNNER_TOKEN_SOURCE=inline RUNNER_TOKEN_INLINE=inline-token-0000
d="$TMP/inline" r="$TMP/inline/root"
eq "exits 0" "$(cat "$d/rc")" 0
eq "api.auth_token is the inline value" "$(yaml_get "$r/$CONFIG" api auth_token)" inline-token-0000
check "warns about the inline token" has "$d/err" "WARNING: using an inline runner token"
check "no AWS token lookup" lacks "$d/stub.log" "aws s"
check "token absent from stdout/stderr" lacks_any inline-token-0000 "$d/out" "$d/err"

echo "== install, token fetch fails"
run_install ssmfail STUB_AWS_FAIL=ssm
d="$TMP/ssmfail" r="$TMP/ssmfail/root"
check "exits non-zero" test "$(cat "$d/rc")" -ne 0
check "message names the failed step" has "$d/err" "FAILED during step: fetch runner auth token (ssm)"
check "no config written" test ! -e "$r/$CONFIG"
check "runner not started" lacks "$d/stub.log" "circleci-runner.service"
check "ON_FAILURE=leave leaves the group" has_re "$d/stub.log" \
  "^aws autoscaling terminate-instance-in-auto-scaling-group .*--instance-id $ID --should-decrement-desired-capacity"
run_install stay STUB_AWS_FAIL=ssm ON_FAILURE=stay
check "ON_FAILURE=stay keeps the instance" lacks "$TMP/stay/stub.log" "autoscaling"

echo "== install, malformed token"
run_install badtoken STUB_SSM_VALUE="not a token"
d="$TMP/badtoken"
check "exits non-zero" test "$(cat "$d/rc")" -ne 0
check "says the token is malformed" has "$d/err" "runner token is empty or has unexpected characters"
check "malformed value not printed" lacks_any "not a token" "$d/out" "$d/err"

echo "== leave-group hook, Auto Scaling accepts"
run_leave leave ssm
d="$TMP/leave"
eq "exits 0" "$(cat "$d/rc")" 0
eq "one terminate call" "$(count "$d/stub.log" '^aws ')" 1
check "terminates itself with decrement, own id and region" has "$d/stub.log" \
  "aws autoscaling terminate-instance-in-auto-scaling-group --region eu-west-1 --instance-id $ID --should-decrement-desired-capacity"
check "no power-off" lacks "$d/stub.log" "systemctl poweroff"
check "logged to the journal" has_re "$d/stub.log" '^logger -t runner-leave-group -- .*accepted'

echo "== leave-group hook, Auto Scaling fails"
run_leave leavefail ssm STUB_AWS_FAIL=autoscaling LEAVE_ATTEMPTS=3
d="$TMP/leavefail"
eq "retries LEAVE_ATTEMPTS times" "$(count "$d/stub.log" '^aws autoscaling terminate-instance-in-auto-scaling-group ')" 3
eq "backs off between attempts" "$(grep '^sleep' "$d/stub.log" | tr '\n' ,)" "sleep 5,sleep 10,"
eq "then powers off" "$(tail -n1 "$d/stub.log")" "systemctl poweroff"
check "logs the give-up" has_re "$d/stub.log" '^logger .*giving up'

echo "== leave-group hook, system already stopping"
run_leave leavestop ssm STUB_SYSTEM_STATE=stopping
d="$TMP/leavestop"
check "no Auto Scaling call" lacks "$d/stub.log" "aws "
check "no power-off" lacks "$d/stub.log" "poweroff"

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
