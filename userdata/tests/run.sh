#!/bin/bash
# Tests for the EC2 user data: shellcheck, userdata/shared.sh in both scripts,
# then each script (CircleCI's, then Buildkite's) and the leave-group hook run
# in a temporary root with stub commands (tests/stub.sh): on a stock image
# (install and boot phases), baking an image (install phase), and on a baked
# image (boot phase, also timed: BOOT_RUNS runs, the median).
# Usage: bash userdata/tests/run.sh   (last line: "N passed, M failed")
set -uo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
USERDATA="$(dirname "$HERE")"
INSTALL="$USERDATA/install-runner-ubuntu.sh" # the script under test: CircleCI's, then Buildkite's
SERVICE=circleci-runner                      # the service it starts
ID="i-0123456789abcdef0"
SSM_TOKEN="runner-token-from-ssm"
SM_TOKEN="runner-token-from-secretsmanager"
CONFIG=etc/circleci-runner/circleci-runner-config.yaml
DROPIN=etc/systemd/system/circleci-runner.service.d/10-single-task.conf
LEAVE=usr/local/bin/runner-leave-group
LIFECYCLE=usr/local/bin/runner-lifecycle
UNIT=etc/systemd/system/runner-scaler-start.service
MARKER=var/lib/runner-scaler/runner-started
ENVFILE=etc/runner-scaler/instance.env
IMAGE=etc/runner-scaler/image
HOOK_VARS=(AUTO_SCALING_GROUP_NAME=ci-runners LIFECYCLE_HOOK_NAME=runner-ready)
COMPLETE="aws autoscaling complete-lifecycle-action --region eu-west-1 --auto-scaling-group-name ci-runners --lifecycle-hook-name runner-ready --instance-id $ID --lifecycle-action-result"
TERMINATE="aws autoscaling terminate-instance-in-auto-scaling-group --region eu-west-1 --instance-id $ID --should-decrement-desired-capacity"

TMP="$(mktemp -d)"
trap 'rm -rf "$TMP"' EXIT
BIN="$TMP/bin"
mkdir -p "$BIN"
for cmd in apt-get curl aws systemctl id useradd usermod chown logger sleep unzip snap dpkg-query gpg; do
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
lacks_re() { ! grep -qE -- "$2" "$1"; }
count() { grep -cE -- "$2" "$1"; }

# yaml_get FILE SECTION KEY: value of "  KEY: value" under top-level "SECTION:",
# surrounding double quotes removed. Enough for the flat file the script writes.
yaml_get() {
  awk -v s="$2" -v k="$3" '
    /^[^ #]/ { sec = $0; sub(/:.*/, "", sec) }
    sec == s && index($0, "  " k ": ") == 1 { v = substr($0, length(k) + 5); gsub(/^"|"$/, "", v); print v }
  ' "$1"
}

# run_install CASE [VAR=value...]: run the script in $TMP/CASE/root (or in
# $IN_ROOT) with the stubs; leaves out, err, rc and stub.log in $TMP/CASE.
run_install() {
  local dir="$TMP/$1" root="${IN_ROOT:-$TMP/$1/root}"; shift
  mkdir -p "$dir" "$root"
  env PATH="$BIN:$PATH" RUNNER_SCALER_ROOT="$root" STUB_LOG="$dir/stub.log" "$@" \
    bash "$INSTALL" >"$dir/out" 2>"$dir/err"
  echo $? >"$dir/rc"
  touch "$dir/stub.log"
}

# run_start CASE ROOT_CASE [VAR=value...]: run ROOT_CASE's runner-lifecycle start
# (what runner-scaler-start.service runs at boot), killed after $START_TIMEOUT s.
run_start() {
  local dir="$TMP/$1" root="$TMP/$2/root"; shift 2
  mkdir -p "$dir"
  env PATH="$BIN:$PATH" STUB_LOG="$dir/stub.log" "$@" \
    timeout "${START_TIMEOUT:-20}" "$root/$LIFECYCLE" start >"$dir/out" 2>"$dir/err"
  echo $? >"$dir/rc"
  touch "$dir/stub.log"
}
# state_reads FILE: how many times the target lifecycle state was read.
state_reads() { grep -c 'target-lifecycle-state' "$1"; }
# reads_before_start FILE: state reads logged before $SERVICE was started.
reads_before_start() {
  awk -v s="systemctl start --no-block $SERVICE.service" '/target-lifecycle-state/ { n++ } $0 == s { print n + 0; exit }' "$1"
}
runner_started() { has "$1" "systemctl start --no-block $SERVICE.service"; }
runner_not_started() { lacks_re "$1" "^systemctl (re)?start .*$SERVICE"; }

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
# shared.sh is a part of both scripts, checked in them.
while IFS= read -r f; do
  if out="$(shellcheck "$f" 2>&1)"; then pass "shellcheck ${f#"$USERDATA"/}"
  else fail "shellcheck ${f#"$USERDATA"/}"; printf '%s\n' "$out"; fi
done < <(find "$USERDATA" -name '*.sh' ! -path "$USERDATA/shared.sh" | sort)

echo "== userdata/shared.sh, verbatim in each script (scripts/sync-template-userdata.sh copies it)"
# shared_block FILE: the lines from shared.sh's first marker to its last.
shared_block() { sed -n '/^# >>> userdata\/shared\.sh/,/^# <<< userdata\/shared\.sh$/p' "$1"; }
for f in install-runner-ubuntu.sh install-buildkite-agent-ubuntu.sh; do
  check "$f holds it" diff "$USERDATA/shared.sh" <(shared_block "$USERDATA/$f")
  eq "$f holds it once" "$(grep -c '^# >>> userdata/shared.sh' "$USERDATA/$f")" 1
done

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
check "instance file holds the instance id" has_re "$r/$ENVFILE" "^INSTANCE_ID=$ID$"
check "instance file holds the region" has_re "$r/$ENVFILE" '^REGION=eu-west-1$'
check "leave hook reads the instance file" has_re "$r/$LEAVE" "^\. $r/$ENVFILE$"
check "lifecycle script reads the instance file" has_re "$r/$LIFECYCLE" "^\. $r/$ENVFILE$"
check "not marked as a baked image" test ! -e "$r/$IMAGE"
check "shellcheck generated leave hook" shellcheck "$r/$LEAVE"
check "systemd reloaded" has "$d/stub.log" "systemctl daemon-reload"
check "circleci-runner disabled: it never starts by itself at boot" has "$d/stub.log" "systemctl disable circleci-runner.service"
check "circleci-runner not started by the install itself" runner_not_started "$d/stub.log"
check "runner-scaler-start enabled" has "$d/stub.log" "systemctl enable --no-reload runner-scaler-start.service"
eq "runner-scaler-start started without blocking" "$(grep '^systemctl' "$d/stub.log" | tail -n1)" \
  "systemctl start --no-block runner-scaler-start.service"
check "start unit runs runner-lifecycle start" has_re "$r/$UNIT" '^ExecStart=/usr/local/bin/runner-lifecycle start$'
check "start unit wanted at boot" has_re "$r/$UNIT" '^WantedBy=multi-user.target$'
check "start unit has no leave hook (only the runner's exit leaves)" lacks "$r/$UNIT" "ExecStopPost"
check "lifecycle script executable" test -x "$r/$LIFECYCLE"
check "shellcheck generated lifecycle script" shellcheck "$r/$LIFECYCLE"
check "target lifecycle state read" has "$d/stub.log" "meta-data/autoscaling/target-lifecycle-state"
check "no leave attempt on success" lacks "$d/stub.log" "aws autoscaling"
check "nothing marked as started yet" test ! -e "$r/$MARKER"

echo "== runner-scaler-start, launched straight into service, no warm pool"
run_start start ssm
d="$TMP/start" r="$TMP/ssm/root"
eq "exits 0" "$(cat "$d/rc")" 0
check "starts circleci-runner" runner_started "$d/stub.log"
eq "after one state read" "$(reads_before_start "$d/stub.log")" 1
check "marks the runner started" test -e "$r/$MARKER"
check "no hook: no Auto Scaling call" lacks "$d/stub.log" "aws "

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
check "warns about the inline token" has "$d/err" "WARNING: using an inline token"
check "no AWS token lookup" lacks "$d/stub.log" "aws s"
check "token absent from stdout/stderr" lacks_any inline-token-0000 "$d/out" "$d/err"

echo "== install, token fetch fails"
run_install ssmfail STUB_AWS_FAIL=ssm
d="$TMP/ssmfail" r="$TMP/ssmfail/root"
check "exits non-zero" test "$(cat "$d/rc")" -ne 0
check "message names the failed step" has "$d/err" "FAILED during step: fetch the token (ssm)"
check "no config written" test ! -e "$r/$CONFIG"
check "runner not started" runner_not_started "$d/stub.log"
check "runner-scaler-start not enabled" lacks "$d/stub.log" "systemctl enable"
check "ON_FAILURE=leave leaves the group" has_re "$d/stub.log" \
  "^aws autoscaling terminate-instance-in-auto-scaling-group .*--instance-id $ID --should-decrement-desired-capacity"
run_install stay STUB_AWS_FAIL=ssm ON_FAILURE=stay
check "ON_FAILURE=stay keeps the instance" lacks "$TMP/stay/stub.log" "autoscaling"

echo "== install, malformed token"
run_install badtoken STUB_SSM_VALUE="not a token"
d="$TMP/badtoken"
check "exits non-zero" test "$(cat "$d/rc")" -ne 0
check "says the token is malformed" has "$d/err" "the token is empty or has unexpected characters"
check "malformed value not printed" lacks_any "not a token" "$d/out" "$d/err"

echo "== warm pool: install, launched into the pool (Warmed:Stopped)"
run_install warm STUB_LIFECYCLE=Warmed:Stopped "${HOOK_VARS[@]}"
d="$TMP/warm" r="$TMP/warm/root"
eq "exits 0" "$(cat "$d/rc")" 0
eq "configured: api.auth_token is the SSM value" "$(yaml_get "$r/$CONFIG" api auth_token)" "$SSM_TOKEN"
check "configured: drop-in with the leave hook" has_re "$r/$DROPIN" '^ExecStopPost=/usr/local/bin/runner-leave-group$'
check "instance file names the group and the hook" has_re "$r/$ENVFILE" '^GROUP=ci-runners$'
check "circleci-runner disabled" has "$d/stub.log" "systemctl disable circleci-runner.service"
check "circleci-runner not started" runner_not_started "$d/stub.log"
check "runner-scaler-start enabled and started (it waits)" has "$d/stub.log" "systemctl start --no-block runner-scaler-start.service"
eq "launch hook completed with CONTINUE, the last AWS call" "$(grep '^aws ' "$d/stub.log" | tail -n1)" "$COMPLETE CONTINUE"
check "console shows the warm-pool step" has "$d/out" "==> [runner-scaler] complete the warm-pool launch (Warmed:Stopped)"
check "no leave attempt" lacks "$d/stub.log" "terminate-instance"

echo "== warm pool: runner-scaler-start while Warmed:Stopped (until Auto Scaling stops the instance)"
START_TIMEOUT=1 run_start warmwait warm STUB_LIFECYCLE=Warmed:Stopped
d="$TMP/warmwait"
eq "still waiting when killed" "$(cat "$d/rc")" 124
check "read the state more than once" test "$(state_reads "$d/stub.log")" -gt 1
check "circleci-runner not started" runner_not_started "$d/stub.log"
check "no Auto Scaling call" lacks "$d/stub.log" "aws "
eq "says why, once" "$(grep -c 'Warmed:Stopped: runner not started' "$d/stub.log")" 1
check "not marked as started" test ! -e "$TMP/warm/root/$MARKER"

echo "== warm pool: the later boot, started into service"
run_start warmboot warm STUB_LIFECYCLE=InService
d="$TMP/warmboot"
eq "exits 0" "$(cat "$d/rc")" 0
check "completes the hook on the way into service" has "$d/stub.log" "$COMPLETE CONTINUE"
check "starts circleci-runner" runner_started "$d/stub.log"
eq "hook completed before the runner starts" \
  "$(grep -E '^(aws autoscaling complete|systemctl start --no-block circleci)' "$d/stub.log" | head -n1)" "$COMPLETE CONTINUE"
check "marks the runner started" test -e "$TMP/warm/root/$MARKER"

echo "== warm pool: the instance that started from the pool ran its job, then leaves"
run_leave warmleave warm
d="$TMP/warmleave"
eq "exits 0" "$(cat "$d/rc")" 0
eq "one call: terminate with decrement, never back to the pool" "$(grep '^aws ' "$d/stub.log")" "$TERMINATE"

echo "== warm pool: that instance boots again (a reboot after its job)"
run_start warmagain warm STUB_LIFECYCLE=InService
d="$TMP/warmagain"
check "circleci-runner not started again" runner_not_started "$d/stub.log"
eq "leaves with decrement instead" "$(grep '^aws ' "$d/stub.log")" "$TERMINATE"

echo "== warm pool: Hibernated (the same process waits through the hibernation)"
run_install hib STUB_LIFECYCLE=Warmed:Hibernated "${HOOK_VARS[@]}"
eq "install exits 0" "$(cat "$TMP/hib/rc")" 0
check "install completes the launch hook" has "$TMP/hib/stub.log" "$COMPLETE CONTINUE"
run_start hibstart hib STUB_LIFECYCLE=Warmed:Hibernated,none,Warmed:Hibernated,InService
d="$TMP/hibstart"
eq "exits 0" "$(cat "$d/rc")" 0
eq "starts circleci-runner only after reading InService" "$(reads_before_start "$d/stub.log")" 4
check "a failed read while warmed is no reason to start" lacks "$d/stub.log" "WARNING"
eq "completes the hook once, into service" "$(grep -c "^$COMPLETE CONTINUE$" "$d/stub.log")" 1

echo "== warm pool hook, launched straight into service (pool empty)"
run_install cold "${HOOK_VARS[@]}"
d="$TMP/cold"
eq "install exits 0" "$(cat "$d/rc")" 0
check "install does not complete the hook (runner-scaler-start does)" lacks "$d/stub.log" "complete-lifecycle-action"
run_start coldstart cold
d="$TMP/coldstart"
check "completes the hook" has "$d/stub.log" "$COMPLETE CONTINUE"
eq "starts circleci-runner after one read" "$(reads_before_start "$d/stub.log")" 1

echo "== warm pool hook, completing it fails"
run_install hookfail "${HOOK_VARS[@]}"
run_start hookfailstart hookfail STUB_AWS_FAIL="autoscaling complete-lifecycle-action"
d="$TMP/hookfailstart"
check "circleci-runner not started" runner_not_started "$d/stub.log"
check "leaves with decrement" has "$d/stub.log" "$TERMINATE"
check "not marked as started" test ! -e "$TMP/hookfail/root/$MARKER"

echo "== warm pool: install fails while Warmed:Stopped"
run_install warmfail STUB_LIFECYCLE=Warmed:Stopped STUB_AWS_FAIL=ssm "${HOOK_VARS[@]}"
d="$TMP/warmfail"
check "exits non-zero" test "$(cat "$d/rc")" -ne 0
check "abandons the launch" has "$d/stub.log" "$COMPLETE ABANDON"
check "no terminate (with a hook, ABANDON terminates it)" lacks "$d/stub.log" "terminate-instance"
check "runner-scaler-start not enabled" lacks "$d/stub.log" "systemctl enable"

echo "== no target lifecycle state in instance metadata"
# Every Auto Scaling instance has the item from launch on (AWS, since March
# 2022). Without it this instance is in no group's lifecycle (launched by hand,
# say), so it behaves as before warm pools and starts the runner, with a
# warning. Waiting instead would leave such an instance idle for ever.
run_install nostate STUB_LIFECYCLE=none
d="$TMP/nostate"
eq "install exits 0" "$(cat "$d/rc")" 0
check "install warns" has "$d/err" "WARNING: no target lifecycle state"
check "install completes nothing" lacks "$d/stub.log" "aws autoscaling"
run_start nostatestart nostate STUB_LIFECYCLE=none
d="$TMP/nostatestart"
eq "exits 0" "$(cat "$d/rc")" 0
eq "tries for a minute (12 reads)" "$(state_reads "$d/stub.log")" 12
check "warns in the journal" has_re "$d/stub.log" '^logger -t runner-lifecycle -- WARNING: no target lifecycle state'
check "starts circleci-runner" runner_started "$d/stub.log"

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

echo "== leave-group hook, at the group's minimum (LEAVE_AT_MINIMUM=retry, CircleCI's default)"
run_leave leavemin ssm STUB_AWS_AT_MIN=1 LEAVE_ATTEMPTS=3
d="$TMP/leavemin"
eq "retries the decrement LEAVE_ATTEMPTS times" "$(count "$d/stub.log" '^aws autoscaling terminate-instance-in-auto-scaling-group .*--should-decrement-desired-capacity$')" 3
check "never terminates without the decrement" lacks "$d/stub.log" "--no-should-decrement-desired-capacity"
eq "then powers off" "$(tail -n1 "$d/stub.log")" "systemctl poweroff"
check "AWS's refusal passed on to the journal" has "$d/err" "desiredSize equals minSize (1)"

echo "== leave-group hook, system already stopping"
run_leave leavestop ssm STUB_SYSTEM_STATE=stopping
d="$TMP/leavestop"
check "no Auto Scaling call" lacks "$d/stub.log" "aws "
check "no power-off" lacks "$d/stub.log" "poweroff"

# A token the bake could see, were it to look: it must end up nowhere.
BAKE_TOKEN="token-in-the-bake-environment"
echo "== bake an image: RUNNER_SCALER_PHASE=install (what Image Builder and Packer run)"
run_install bake RUNNER_SCALER_PHASE=install RUNNER_TOKEN_SOURCE=inline RUNNER_TOKEN_INLINE="$BAKE_TOKEN"
d="$TMP/bake" r="$TMP/bake/root"
eq "exits 0" "$(cat "$d/rc")" 0
check "runner package installed" has_re "$d/stub.log" '^apt-get .* install circleci-runner$'
check "job user created" has_re "$d/stub.log" '^useradd .*circleci$'
check "leave hook and lifecycle script installed" test -x "$r/$LEAVE" -a -x "$r/$LIFECYCLE"
check "drop-in and start unit installed" test -f "$r/$DROPIN" -a -f "$r/$UNIT"
check "circleci-runner disabled" has "$d/stub.log" "systemctl disable circleci-runner.service"
check "runner-scaler-start not enabled (the boot phase enables it)" lacks "$d/stub.log" "systemctl enable"
check "nothing started" lacks "$d/stub.log" "systemctl start"
check "no instance metadata read" lacks "$d/stub.log" "169.254.169.254"
check "no AWS call" lacks "$d/stub.log" "aws "
check "no runner config" test ! -e "$r/$CONFIG"
check "no instance file" test ! -e "$r/$ENVFILE"
eq "no file holds a token" "$(grep -rlF -e "$BAKE_TOKEN" -e "$SSM_TOKEN" -e "$SM_TOKEN" "$r")" ""
eq "no file names an instance" "$(grep -rlF -e "$ID" -e eu-west-1 "$r")" ""
check "marked baked, last" test "$(grep '^==>' "$d/out" | tail -n2 | head -n1)" = "==> [runner-scaler] mark the image baked"
check "image file has the install key" has_re "$r/$IMAGE" '^key=[0-9a-f]{64}$'
check "image file has the runner version" has_re "$r/$IMAGE" '^circleci_runner=3\.1\.0-stub$'
check "image file has the bake time" has_re "$r/$IMAGE" '^baked_at=20[0-9]{2}-[0-9]{2}-[0-9]{2}T'

echo "== bake fails"
run_install bakefail RUNNER_SCALER_PHASE=install STUB_FAIL=apt-get
d="$TMP/bakefail"
check "exits non-zero" test "$(cat "$d/rc")" -ne 0
check "message names the failed step" has "$d/err" "FAILED during step: install prerequisites"
check "no image file" test ! -e "$d/root/$IMAGE"
check "no attempt to leave a group (none to leave)" lacks "$d/stub.log" "aws "

# boot_baked CASE [VAR=value...]: bake an image into $TMP/CASE/root (logs in
# $TMP/CASE-bake), then run the user data there, as the stack does, with VARs.
boot_baked() {
  local c="$1"; shift
  IN_ROOT="$TMP/$c/root" run_install "$c-bake" RUNNER_SCALER_PHASE=install
  [ "$(cat "$TMP/$c-bake/rc")" = 0 ] || fail "$c: the bake exits 0"
  run_install "$c" "$@"
}
# tree_of ROOT: every file under ROOT (but the image file and the runner-started
# marker) with its mode and its content, ROOT's own path replaced by "ROOT".
tree_of() {
  (cd "$1" && find . -type f ! -name image ! -name runner-started | sort | while read -r f; do
    echo "== $f $(stat -c %a "$f")"; sed "s|$1|ROOT|g" "$f"
  done)
}

echo "== the stack's user data on the baked image: boot phase only"
boot_baked boot
d="$TMP/boot" r="$TMP/boot/root"
eq "exits 0" "$(cat "$d/rc")" 0
check "says it boots a baked image, with the runner version" has "$d/out" "baked image (circleci_runner=3.1.0-stub"
check "no package installed" lacks "$d/stub.log" "apt-get"
check "no download" lacks "$d/stub.log" "packagecloud"
check "no user created or changed" lacks_re "$d/stub.log" '^(useradd|usermod) '
eq "api.auth_token is the SSM value" "$(yaml_get "$r/$CONFIG" api auth_token)" "$SSM_TOKEN"
eq "runner.name from the instance id" "$(yaml_get "$r/$CONFIG" runner name)" "runner-scaler-$ID"
eq "config mode 600" "$(stat -c %a "$r/$CONFIG" 2>/dev/null)" 600
check "config chowned root:root" has "$d/stub.log" "chown root:root $r/$CONFIG"
check "token absent from stdout/stderr" lacks_any "$SSM_TOKEN" "$d/out" "$d/err"
check "instance file written" has_re "$r/$ENVFILE" "^INSTANCE_ID=$ID$"
check "runner-scaler-start enabled" has "$d/stub.log" "systemctl enable --no-reload runner-scaler-start.service"
eq "runner-scaler-start started without blocking, last" "$(grep '^systemctl' "$d/stub.log" | tail -n1)" \
  "systemctl start --no-block runner-scaler-start.service"
check "circleci-runner not started by the boot itself" runner_not_started "$d/stub.log"
# Same settings, same machine: only the image file tells them apart.
check "the same files as the stock install, with the same modes" diff <(tree_of "$TMP/ssm/root") <(tree_of "$r")
run_start bootstart boot
check "runner-scaler-start starts circleci-runner" runner_started "$TMP/bootstart/stub.log"
run_leave bootleave boot
eq "the job done, it leaves with decrement" "$(grep '^aws ' "$TMP/bootleave/stub.log")" "$TERMINATE"

echo "== the baked image in a warm pool (Warmed:Stopped)"
boot_baked bootwarm STUB_LIFECYCLE=Warmed:Stopped "${HOOK_VARS[@]}"
d="$TMP/bootwarm"
eq "exits 0" "$(cat "$d/rc")" 0
check "boot phase only" lacks "$d/stub.log" "apt-get"
eq "launch hook completed with CONTINUE, the last AWS call" "$(grep '^aws ' "$d/stub.log" | tail -n1)" "$COMPLETE CONTINUE"
check "circleci-runner not started" runner_not_started "$d/stub.log"

echo "== the baked image, token fetch fails"
boot_baked bootfail STUB_AWS_FAIL=ssm
d="$TMP/bootfail"
check "exits non-zero" test "$(cat "$d/rc")" -ne 0
check "message names the failed step" has "$d/err" "FAILED during step: fetch the token (ssm)"
check "leaves with decrement" has "$d/stub.log" "$TERMINATE"

echo "== an image baked by another install phase (here: another RUNNER_USER)"
boot_baked stale RUNNER_USER=builder
d="$TMP/stale" r="$TMP/stale/root"
eq "exits 0" "$(cat "$d/rc")" 0
check "warns that the image does not match" has "$d/err" "WARNING: image baked by another install phase"
check "installs as on a stock image" has_re "$d/stub.log" '^apt-get .* install circleci-runner$'
check "creates the user it needs" has_re "$d/stub.log" '^useradd .*builder$'
eq "command_prefix uses that user" "$(yaml_get "$r/$CONFIG" runner command_prefix)" '["sudo", "-niHu", "builder", "--"]'

echo "== RUNNER_SCALER_PHASE unknown"
run_install badphase RUNNER_SCALER_PHASE=bake
d="$TMP/badphase"
check "exits non-zero" test "$(cat "$d/rc")" -ne 0
check "names the setting and the values" has "$d/err" "RUNNER_SCALER_PHASE must be auto or install, not 'bake'"
check "did nothing" test ! -s "$d/stub.log"

echo "== the boot phase's own time, on the baked image (stub commands, so no AWS or IMDS latency)"
# time_boot CASE CONFIG [VAR=value...]: one bake into $TMP/CASE/root; before
# each of BOOT_RUNS runs, the boot phase's two files (CONFIG, the instance
# file) are removed, which gives back the baked tree (checked on the first run).
time_boot() {
  local c="$1" config="$2" runs="${BOOT_RUNS:-21}" times=() i t0 t1 median; shift 2
  local timed="$TMP/$c/root" baked_tree
  IN_ROOT="$timed" run_install "$c-bake" RUNNER_SCALER_PHASE=install
  baked_tree="$(tree_of "$timed")"
  for i in $(seq "$runs"); do
    rm -f "$timed/$config" "$timed/$ENVFILE"
    [ "$i" != 1 ] || eq "the baked tree, before each timed run" "$(tree_of "$timed")" "$baked_tree"
    t0="$EPOCHREALTIME"
    IN_ROOT="$timed" run_install "$c$i" "$@"
    t1="$EPOCHREALTIME"
    has "$TMP/$c$i/out" "boot phase only" || fail "timed run $i: boot phase only"
    [ "$(cat "$TMP/$c$i/rc")" = 0 ] || fail "timed run $i exits 0"
    times+=("$(( (${t1/./} - ${t0/./}) / 1000 ))")
  done
  median="$(printf '%s\n' "${times[@]}" | sort -n | sed -n "$(( (runs + 1) / 2 ))p")"
  echo "boot phase ($SERVICE): median ${median} ms over $runs runs (min $(printf '%s\n' "${times[@]}" | sort -n | head -n1) ms, max $(printf '%s\n' "${times[@]}" | sort -n | tail -n1) ms)"
  check "median well under the 2 s the issue allows" test "$median" -lt 2000
}
time_boot timed "$CONFIG"

# == Buildkite: userdata/install-buildkite-agent-ubuntu.sh, through the same
# harness; what shared.sh does (the two scripts, the lifecycle, leaving) was
# tested above in detail, and is checked here on this script's paths.
INSTALL="$USERDATA/install-buildkite-agent-ubuntu.sh" SERVICE=buildkite-agent
BK_CONFIG=etc/buildkite-agent/buildkite-agent.cfg
BK_DROPIN=etc/systemd/system/buildkite-agent.service.d/10-single-job.conf
KEYRING=usr/share/keyrings/buildkite-agent-archive-keyring.gpg
APT_SOURCE=etc/apt/sources.list.d/buildkite-agent.list
KEY_URL=https://keys.openpgp.org/vks/v1/by-fingerprint/32A37959C2FA5C3C99EFBC32A79206696452D198
# cfg_get FILE KEY: the value of KEY=value (surrounding double quotes removed).
cfg_get() { sed -n "s/^$2=//p" "$1" | sed 's/^"\(.*\)"$/\1/'; }
# in_order FILE REGEX...: each REGEX matches a line of FILE, first the first
# one, then the next after it, and so on.
in_order() {
  local file="$1" line=0 n; shift
  for re in "$@"; do
    n="$(tail -n +"$((line + 1))" "$file" | grep -nE -m1 -- "$re" | cut -d: -f1)"
    [ -n "$n" ] || return 1
    line=$((line + n))
  done
}
# refused_early CASE: no token read and no agent config.
refused_early() { lacks_re "$TMP/$1/stub.log" '^aws (ssm|secretsmanager) ' && test ! -e "$TMP/$1/root/$BK_CONFIG"; }

echo "== Buildkite: install, token from SSM Parameter Store (defaults, and a queue)"
run_install bk BUILDKITE_QUEUE=linux-large
d="$TMP/bk" r="$TMP/bk/root"
eq "exits 0" "$(cat "$d/rc")" 0
check "config file written" test -f "$r/$BK_CONFIG"
eq "config mode 640" "$(stat -c %a "$r/$BK_CONFIG" 2>/dev/null)" 640
check "config owned by root, group buildkite-agent (the agent reads it)" has "$d/stub.log" "chown root:buildkite-agent $r/$BK_CONFIG"
eq "token is the SSM value" "$(cfg_get "$r/$BK_CONFIG" token)" "$SSM_TOKEN"
eq "name from the instance id" "$(cfg_get "$r/$BK_CONFIG" name)" "runner-scaler-$ID"
eq "tags: the queue" "$(cfg_get "$r/$BK_CONFIG" tags)" queue=linux-large
eq "disconnect-after-job" "$(cfg_get "$r/$BK_CONFIG" disconnect-after-job)" true
eq "disconnect-after-idle-timeout, seconds" "$(cfg_get "$r/$BK_CONFIG" disconnect-after-idle-timeout)" 300
eq "build-path, in the agent's home" "$(cfg_get "$r/$BK_CONFIG" build-path)" /var/lib/buildkite-agent/builds
eq "nothing else set" "$(grep -v '^#' "$r/$BK_CONFIG" | cut -d= -f1 | tr '\n' ' ')" \
  "token name tags disconnect-after-job disconnect-after-idle-timeout build-path hooks-path plugins-path "
check "token read from SSM with decryption" has_re "$d/stub.log" \
  '^aws ssm get-parameter --region eu-west-1 --name /runner-scaler/buildkite-agent-token --with-decryption --query Parameter.Value --output text$'
check "token absent from stdout/stderr" lacks_any "$SSM_TOKEN" "$d/out" "$d/err"
eq "token only in the config file" "$(grep -rlF -- "$SSM_TOKEN" "$r")" "$r/$BK_CONFIG"
check "gpg among the prerequisites" has_re "$d/stub.log" '^apt-get .* install curl ca-certificates unzip gpg$'
check "Buildkite's key fetched by its fingerprint" has "$d/stub.log" "curl -fsSL --retry 5 $KEY_URL"
eq "and dearmored into the keyring" "$(cat "$r/$KEYRING" 2>/dev/null)" "stub keyring from: -----BEGIN PGP PUBLIC KEY BLOCK----- (stub)"
eq "the signed apt source, stable" "$(cat "$r/$APT_SOURCE" 2>/dev/null)" \
  "deb [signed-by=/$KEYRING] https://apt.buildkite.com/buildkite-agent stable main"
# (curl and gpg run at once, in a pipe: either may log first.)
for first in '^curl .*keys\.openpgp\.org' '^gpg --dearmor$'; do
  check "the key (${first:1:4}), then apt-get update, then the package" in_order "$d/stub.log" \
    "$first" '^apt-get .* update$' '^apt-get .* install buildkite-agent$'
done
check "buildkite-agent package installed" has_re "$d/stub.log" '^apt-get .* install buildkite-agent$'
check "no user created (the package's buildkite-agent runs the jobs)" lacks_re "$d/stub.log" '^(useradd|usermod) '
check "drop-in Restart=no" has_re "$r/$BK_DROPIN" '^Restart=no$'
check "drop-in clears the package's forced restart (SIGPIPE)" has_re "$r/$BK_DROPIN" '^RestartForceExitStatus=$'
check "drop-in ExecStopPost runs the leave hook as root (+)" has_re "$r/$BK_DROPIN" '^ExecStopPost=\+/usr/local/bin/runner-leave-group$'
check "drop-in leaves the agent's user as it is" lacks_re "$r/$BK_DROPIN" '^User='
check "the leave hook is CircleCI's" diff <(sed "s|$TMP/ssm/root||" "$TMP/ssm/root/$LEAVE") <(sed "s|$r||" "$r/$LEAVE")
check "the lifecycle script starts buildkite-agent.service" has_re "$r/$LIFECYCLE" '^UNIT=buildkite-agent.service$'
check "the start unit names it" has_re "$r/$UNIT" '^Description=runner-scaler: start buildkite-agent once in service$'
check "buildkite-agent disabled: it never starts by itself at boot" has "$d/stub.log" "systemctl disable buildkite-agent.service"
check "buildkite-agent not started by the install itself" runner_not_started "$d/stub.log"
eq "runner-scaler-start enabled, then started without blocking, last" "$(grep '^systemctl' "$d/stub.log" | tail -n2 | tr '\n' ,)" \
  "systemctl enable --no-reload runner-scaler-start.service,systemctl start --no-block runner-scaler-start.service,"
check "no leave attempt on success" lacks "$d/stub.log" "aws autoscaling"
check "not marked as a baked image" test ! -e "$r/$IMAGE"
# What userdata/README.md says of it: its config, and its settings' defaults.
readme="$USERDATA/README.md"
eq "README: the config's keys" "$(sed -n '/^## Buildkite/,/^## /p' "$readme" | sed -n 's/^  \([a-z-]*\)=.*/\1/p' | tr '\n' ' ')" \
  "$(grep -v '^#' "$r/$BK_CONFIG" | cut -d= -f1 | tr '\n' ' ')"
for v in RUNNER_TOKEN_NAME BUILDKITE_QUEUE BUILDKITE_AGENT_TAGS BUILDKITE_IDLE_TIMEOUT BUILDKITE_APT_CHANNEL; do
  default="$(sed -n "s/^$v=\"\${$v:-\(.*\)}\".*/\1/p" "$INSTALL")"
  check "README: $v, default ${default:-empty}" has "$readme" "| \`$v\` | ${default:+\`}${default:-empty}${default:+\`} |"
done

echo "== Buildkite: runner-scaler-start, launched straight into service"
run_start bkstart bk
d="$TMP/bkstart"
eq "exits 0" "$(cat "$d/rc")" 0
check "starts buildkite-agent" runner_started "$d/stub.log"
check "marks the runner started" test -e "$TMP/bk/root/$MARKER"

echo "== Buildkite: the job done, the agent exits (disconnect-after-job) and the instance leaves"
run_leave bkleave bk
eq "one call: terminate with decrement" "$(grep '^aws ' "$TMP/bkleave/stub.log")" "$TERMINATE"
run_leave bkleavefail bk STUB_AWS_FAIL=autoscaling LEAVE_ATTEMPTS=2
d="$TMP/bkleavefail"
eq "refused for another reason: retried" "$(count "$d/stub.log" '^aws autoscaling terminate-instance-in-auto-scaling-group ')" 2
check "never without the decrement" lacks "$d/stub.log" "--no-should-decrement-desired-capacity"
eq "then powers off" "$(tail -n1 "$d/stub.log")" "systemctl poweroff"
run_leave bkleavemin bk STUB_AWS_AT_MIN=1
d="$TMP/bkleavemin"
eq "at the group's minimum (LEAVE_AT_MINIMUM=replace): the decrement, refused, then at once without it" \
  "$(grep '^aws ' "$d/stub.log")" "$TERMINATE
${TERMINATE/--should/--no-should}"
eq "exits 0" "$(cat "$d/rc")" 0
check "no retry, no back-off" lacks_re "$d/stub.log" '^sleep'
check "no power-off" lacks "$d/stub.log" "poweroff"
check "says why in the journal" has_re "$d/stub.log" "^logger -t runner-leave-group -- at the group's minimum: terminating without the decrement"
run_leave bkleavemin2 bk STUB_AWS_AT_MIN=both
d="$TMP/bkleavemin2"
eq "and if that fails too: two calls" "$(count "$d/stub.log" '^aws autoscaling terminate-instance-in-auto-scaling-group ')" 2
eq "then powers off" "$(tail -n1 "$d/stub.log")" "systemctl poweroff"
run_leave bkleaveretry bk STUB_AWS_AT_MIN=1 LEAVE_AT_MINIMUM=retry LEAVE_ATTEMPTS=2
eq "LEAVE_AT_MINIMUM=retry when the hook runs: CircleCI's way" "$(count "$TMP/bkleaveretry/stub.log" '^aws autoscaling terminate-instance-in-auto-scaling-group .*--should-decrement-desired-capacity$')" 2
run_install bkbadmin LEAVE_AT_MINIMUM=sometimes
d="$TMP/bkbadmin"
eq "LEAVE_AT_MINIMUM neither retry nor replace: refused" "$(cat "$d/rc")" 1
check "naming the setting" has "$d/err" "LEAVE_AT_MINIMUM: retry or replace, not 'sometimes'"
run_start bkagain bk
eq "booted again after its job: leaves instead of a second job" "$(grep '^aws ' "$TMP/bkagain/stub.log")" "$TERMINATE"
check "and starts no agent" runner_not_started "$TMP/bkagain/stub.log"

echo "== Buildkite: Secrets Manager, more tags, another idle timeout and channel"
run_install bksm RUNNER_TOKEN_SOURCE=secretsmanager RUNNER_TOKEN_NAME=ci/agent-token BUILDKITE_QUEUE=arm \
  BUILDKITE_AGENT_TAGS=os=linux,arch=arm64 BUILDKITE_IDLE_TIMEOUT=120 BUILDKITE_APT_CHANNEL=unstable
d="$TMP/bksm" r="$TMP/bksm/root"
eq "exits 0" "$(cat "$d/rc")" 0
eq "token is the Secrets Manager value" "$(cfg_get "$r/$BK_CONFIG" token)" "$SM_TOKEN"
check "token read from Secrets Manager" has_re "$d/stub.log" \
  '^aws secretsmanager get-secret-value --region eu-west-1 --secret-id ci/agent-token --query SecretString --output text$'
check "token absent from stdout/stderr" lacks_any "$SM_TOKEN" "$d/out" "$d/err"
eq "tags: the queue first, then the others" "$(cfg_get "$r/$BK_CONFIG" tags)" queue=arm,os=linux,arch=arm64
eq "disconnect-after-idle-timeout follows the setting" "$(cfg_get "$r/$BK_CONFIG" disconnect-after-idle-timeout)" 120
check "the unstable channel" has "$r/$APT_SOURCE" "https://apt.buildkite.com/buildkite-agent unstable main"

echo "== Buildkite: a setting that would break the config: refused before the token is read"
for setting in 'BUILDKITE_QUEUE=linux "large"' 'BUILDKITE_AGENT_TAGS=os=linux,"x"' BUILDKITE_IDLE_TIMEOUT=5m; do
  run_install bkbad "$setting"
  d="$TMP/bkbad"
  check "${setting%%=*}: exits non-zero" test "$(cat "$d/rc")" -ne 0
  check "${setting%%=*}: the message names it" has "$d/err" "[runner-scaler] ${setting%%=*} is not"
  check "${setting%%=*}: no token read, no config" refused_early bkbad
  check "${setting%%=*}: leaves the group" has "$d/stub.log" "$TERMINATE"
  rm -rf "$d"
done

echo "== Buildkite: token fetch fails, and a malformed token"
run_install bkssmfail STUB_AWS_FAIL=ssm
d="$TMP/bkssmfail"
check "exits non-zero" test "$(cat "$d/rc")" -ne 0
check "message names the failed step" has "$d/err" "FAILED during step: fetch the token (ssm)"
check "no config written" test ! -e "$d/root/$BK_CONFIG"
check "leaves the group" has "$d/stub.log" "$TERMINATE"
run_install bkbadtoken STUB_SSM_VALUE='bad token"'
check "a malformed token: refused" has "$TMP/bkbadtoken/err" "the token is empty or has unexpected characters"
check "and not printed" lacks_any 'bad token"' "$TMP/bkbadtoken/out" "$TMP/bkbadtoken/err"

echo "== Buildkite: warm pool, launched into the pool (Warmed:Stopped), later started into service"
run_install bkwarm STUB_LIFECYCLE=Warmed:Stopped "${HOOK_VARS[@]}"
d="$TMP/bkwarm"
eq "exits 0" "$(cat "$d/rc")" 0
check "configured: the config holds the token" test -f "$d/root/$BK_CONFIG"
check "buildkite-agent not started" runner_not_started "$d/stub.log"
eq "launch hook completed with CONTINUE, the last AWS call" "$(grep '^aws ' "$d/stub.log" | tail -n1)" "$COMPLETE CONTINUE"
START_TIMEOUT=1 run_start bkwarmwait bkwarm STUB_LIFECYCLE=Warmed:Stopped
check "while warmed: runner-scaler-start waits, starts nothing" runner_not_started "$TMP/bkwarmwait/stub.log"
run_start bkwarmboot bkwarm STUB_LIFECYCLE=InService
d="$TMP/bkwarmboot"
eq "into service: the hook completed, then the agent started" \
  "$(grep -E '^(aws autoscaling complete|systemctl start --no-block buildkite)' "$d/stub.log" | tr '\n' ,)" \
  "$COMPLETE CONTINUE,systemctl start --no-block buildkite-agent.service,"
run_leave bkwarmleave bkwarm
eq "its job done, it leaves with decrement, never back to the pool" "$(grep '^aws ' "$TMP/bkwarmleave/stub.log")" "$TERMINATE"

echo "== Buildkite: bake an image (RUNNER_SCALER_PHASE=install), then boot it"
run_install bkbake RUNNER_SCALER_PHASE=install RUNNER_TOKEN_SOURCE=inline RUNNER_TOKEN_INLINE="$BAKE_TOKEN"
d="$TMP/bkbake" r="$TMP/bkbake/root"
eq "exits 0" "$(cat "$d/rc")" 0
check "agent package installed" has_re "$d/stub.log" '^apt-get .* install buildkite-agent$'
check "nothing started or enabled" lacks_re "$d/stub.log" '^systemctl (start|enable)'
check "no instance metadata read, no AWS call" lacks_re "$d/stub.log" '169\.254\.169\.254|^aws '
check "no agent config, no instance file" test ! -e "$r/$BK_CONFIG" -a ! -e "$r/$ENVFILE"
eq "no file holds a token" "$(grep -rlF -e "$BAKE_TOKEN" -e "$SSM_TOKEN" -e "$SM_TOKEN" "$r")" ""
check "image file has the agent's version" has_re "$r/$IMAGE" '^buildkite_agent=3\.120\.0-stub$'
boot_baked bkboot BUILDKITE_QUEUE=linux-large
d="$TMP/bkboot" r="$TMP/bkboot/root"
eq "boot: exits 0" "$(cat "$d/rc")" 0
check "says it boots a baked image, with the agent's version" has "$d/out" "baked image (buildkite_agent=3.120.0-stub"
check "no package installed, no key fetched" lacks_re "$d/stub.log" '^(apt-get|gpg) |keys.openpgp.org'
eq "tags: the queue" "$(cfg_get "$r/$BK_CONFIG" tags)" queue=linux-large
check "the same files as the stock install, with the same modes" diff <(tree_of "$TMP/bk/root") <(tree_of "$r")
IN_ROOT="$r" run_install bkstale BUILDKITE_APT_CHANNEL=unstable
check "baked with another channel: installs over it, with a warning" has "$TMP/bkstale/err" "WARNING: image baked by another install phase"

time_boot bktimed "$BK_CONFIG" BUILDKITE_QUEUE=linux-large

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
