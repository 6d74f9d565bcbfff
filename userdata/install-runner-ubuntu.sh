#!/bin/bash
# EC2 user data for runner-scaler: one CircleCI machine runner 3 per instance,
# one job per instance. Ubuntu 22.04 / 24.04, amd64 or arm64, run as root by cloud-init.
#
# Boot -> fetch the runner token with the instance role -> run ONE job (or idle out)
# -> the runner exits -> systemd runs runner-leave-group, which terminates this
# instance AND lowers the group's desired capacity, so no replacement boots.
# In a warm pool, the runner starts only once the instance enters service.
# See userdata/README.md for the IAM the instance role needs.
#
# Never add `set -x`: the runner token would be printed to the console log.
set -euo pipefail

# ---------------------------------------------------------------------------
# Settings. Edit here, or export them before this script runs.
# ---------------------------------------------------------------------------

# Where the runner auth token comes from: ssm | secretsmanager | inline.
RUNNER_TOKEN_SOURCE="${RUNNER_TOKEN_SOURCE:-ssm}"
# SSM parameter name (a SecureString) or Secrets Manager secret id/ARN holding the token.
RUNNER_TOKEN_NAME="${RUNNER_TOKEN_NAME:-/runner-scaler/runner-token}"
# Region of that parameter/secret. Empty = this instance's region.
RUNNER_TOKEN_REGION="${RUNNER_TOKEN_REGION:-}"
# WARNING: only read when RUNNER_TOKEN_SOURCE=inline. A token here is stored in
# plain text in the launch template and readable by anyone allowed to describe
# it (and by any job, via the instance metadata service). Prefer ssm.
RUNNER_TOKEN_INLINE="${RUNNER_TOKEN_INLINE:-}"

# runner.name = "<prefix>-<instance id>", unique per instance.
RUNNER_NAME_PREFIX="${RUNNER_NAME_PREFIX:-runner-scaler}"
# Exit if no job was claimed in this time; the instance then leaves its group.
RUNNER_IDLE_TIMEOUT="${RUNNER_IDLE_TIMEOUT:-5m}"
# Longest a single job may run (runner default is 5h).
RUNNER_MAX_RUN_TIME="${RUNNER_MAX_RUN_TIME:-5h}"
# Job working directory; emptied after the job (cleanup_working_directory).
RUNNER_WORKING_DIR="${RUNNER_WORKING_DIR:-/var/lib/circleci-runner/workdir}"
# Where the runner stores the task-agent; must be readable by RUNNER_USER.
RUNNER_TASK_AGENT_DIR="${RUNNER_TASK_AGENT_DIR:-/var/lib/circleci-runner/task-agent}"
# Unprivileged user that jobs run as (created if missing).
RUNNER_USER="${RUNNER_USER:-circleci}"
# CircleCI server only: your installation's URL. Empty = CircleCI cloud.
RUNNER_API_URL="${RUNNER_API_URL:-}"
# CircleCI's package repository setup script (documented install route).
RUNNER_REPO_SCRIPT_URL="${RUNNER_REPO_SCRIPT_URL:-https://packagecloud.io/install/repositories/circleci/runner/script.deb.sh?any=true}"

# Region for AWS calls. Empty = read from instance metadata (IMDSv2).
AWS_REGION_OVERRIDE="${AWS_REGION_OVERRIDE:-}"
# Leaving the group: attempts of TerminateInstanceInAutoScalingGroup before
# falling back to a power-off, and the first retry delay in seconds (doubles).
LEAVE_ATTEMPTS="${LEAVE_ATTEMPTS:-5}"
LEAVE_RETRY_DELAY="${LEAVE_RETRY_DELAY:-5}"
# If this script fails: leave = leave like a finished runner (a broken instance
# would idle and count as capacity); stay = keep it up to log in and debug.
ON_FAILURE="${ON_FAILURE:-leave}"
# Warm pools: the group and its launch lifecycle hook (empty = no hook).
AUTO_SCALING_GROUP_NAME="${AUTO_SCALING_GROUP_NAME:-}"
LIFECYCLE_HOOK_NAME="${LIFECYCLE_HOOK_NAME:-}"

# Test hook: prefix for every path written. Empty (the default) = the real root.
ROOT="${RUNNER_SCALER_ROOT:-}"

IMDS="http://169.254.169.254/latest"
CONFIG_FILE="/etc/circleci-runner/circleci-runner-config.yaml"
DROPIN_FILE="/etc/systemd/system/circleci-runner.service.d/10-single-task.conf"
LEAVE_SCRIPT="/usr/local/bin/runner-leave-group"
LIFECYCLE_SCRIPT="/usr/local/bin/runner-lifecycle"
START_UNIT="runner-scaler-start.service"
MARKER="/var/lib/runner-scaler/runner-started" # the runner has started here
export DEBIAN_FRONTEND=noninteractive

# ---------------------------------------------------------------------------
# Helpers
# ---------------------------------------------------------------------------

STEP="start"
step() { STEP="$1"; echo "==> [runner-scaler] $STEP"; }
# On any failure, say which step broke (never the command line: it may hold the token).
on_exit() {
  local rc=$?
  if [ "$rc" -eq 0 ]; then return; fi
  echo "[runner-scaler] FAILED during step: $STEP (exit $rc)" >&2
  [ "$ON_FAILURE" = leave ] || return 0
  # With a hook the launch waits on it: ABANDON, and Auto Scaling terminates it.
  if [ -n "$LIFECYCLE_HOOK_NAME" ] && [ -x "$ROOT$LIFECYCLE_SCRIPT" ]; then
    echo "[runner-scaler] ON_FAILURE=leave: abandoning the launch" >&2
    "$ROOT$LIFECYCLE_SCRIPT" complete ABANDON || true
  elif [ -x "$ROOT$LEAVE_SCRIPT" ]; then
    echo "[runner-scaler] ON_FAILURE=leave: leaving the Auto Scaling group" >&2
    "$ROOT$LEAVE_SCRIPT" || true
  fi
}
trap on_exit EXIT
die() { echo "[runner-scaler] $*" >&2; exit 1; }

# Wait for dpkg's lock: unattended-upgrades often holds it during first boot.
apt_get() { apt-get -o DPkg::Lock::Timeout=600 -y -q "$@"; }

imds_token=""
imds() {
  curl -fsS --retry 5 --retry-connrefused -H "X-aws-ec2-metadata-token: $imds_token" "$IMDS/meta-data/$1"
}

# AWS's official CLI v2 bundle: one route on 22.04, 24.04 and both architectures
# (why not apt or snap: userdata/README.md).
install_aws_cli() {
  local tmp
  tmp="$(mktemp -d)"
  curl -fsSL --retry 5 "https://awscli.amazonaws.com/awscli-exe-linux-$(uname -m).zip" -o "$tmp/awscliv2.zip"
  unzip -q "$tmp/awscliv2.zip" -d "$tmp"
  "$tmp/aws/install" --update
  rm -rf "$tmp"
}

# ---------------------------------------------------------------------------
# Install
# ---------------------------------------------------------------------------

step "install prerequisites"
apt_get update
apt_get install curl ca-certificates unzip sudo

step "read instance identity (IMDSv2)"
imds_token="$(curl -fsS --retry 5 --retry-connrefused -X PUT \
  -H "X-aws-ec2-metadata-token-ttl-seconds: 300" "$IMDS/api/token")"
INSTANCE_ID="$(imds instance-id)"
REGION="${AWS_REGION_OVERRIDE:-$(imds placement/region)}"
[[ "$INSTANCE_ID" =~ ^i-[0-9a-f]+$ ]] || die "unexpected instance id from IMDS: $INSTANCE_ID"
[ -n "$REGION" ] || die "could not determine the region"
echo "instance $INSTANCE_ID in $REGION"

step "install $LEAVE_SCRIPT"
install -d -m 755 "$ROOT/usr/local/bin"
{
  echo "#!/bin/bash"
  echo "# Written by runner-scaler user data: leave the Auto Scaling group once the runner exits."
  printf 'INSTANCE_ID=%q\nREGION=%q\n' "$INSTANCE_ID" "$REGION"
  # shellcheck disable=SC2016  # the ${...:-} defaults are meant for the generated script
  printf 'ATTEMPTS="${LEAVE_ATTEMPTS:-%s}"\nDELAY="${LEAVE_RETRY_DELAY:-%s}"\n' "$LEAVE_ATTEMPTS" "$LEAVE_RETRY_DELAY"
  cat <<'EOF'
set -uo pipefail
log() { logger -t runner-leave-group -- "$*"; echo "$*" >&2; }

log "runner exited (result=${SERVICE_RESULT:-?} status=${EXIT_STATUS:-?}); leaving the group"
# Already shutting down (scale-in, spot, manual stop): nothing left to do.
if [ "$(systemctl is-system-running 2>/dev/null)" = "stopping" ]; then
  log "system is already stopping; not calling Auto Scaling"
  exit 0
fi

# Decrementing the desired capacity is the point: without it the group would
# launch a replacement for this instance.
for attempt in $(seq 1 "$ATTEMPTS"); do
  if aws autoscaling terminate-instance-in-auto-scaling-group --region "$REGION" \
       --instance-id "$INSTANCE_ID" --should-decrement-desired-capacity >/dev/null; then
    log "terminate-instance-in-auto-scaling-group accepted for $INSTANCE_ID (attempt $attempt)"
    exit 0
  fi
  log "terminate-instance-in-auto-scaling-group failed (attempt $attempt/$ATTEMPTS)"
  if [ "$attempt" -lt "$ATTEMPTS" ]; then sleep "$DELAY"; DELAY=$((DELAY * 2)); fi
done

# The launch template terminates on shutdown; the group will replace us, but at
# least this instance stops costing money.
log "giving up on Auto Scaling; powering off"
systemctl poweroff
EOF
} > "$ROOT$LEAVE_SCRIPT"
chmod 755 "$ROOT$LEAVE_SCRIPT"

step "install $LIFECYCLE_SCRIPT"
{
  echo "#!/bin/bash"
  echo "# Written by runner-scaler user data. Usage: runner-lifecycle state | complete CONTINUE|ABANDON | start"
  printf 'INSTANCE_ID=%q\nREGION=%q\nGROUP=%q\nHOOK=%q\nMARKER=%q\nLEAVE=%q\n' "$INSTANCE_ID" "$REGION" \
    "$AUTO_SCALING_GROUP_NAME" "$LIFECYCLE_HOOK_NAME" "$ROOT$MARKER" "$ROOT$LEAVE_SCRIPT"
  cat <<'EOF'
set -uo pipefail
I=http://169.254.169.254/latest
log() { logger -t runner-lifecycle -- "$*"; echo "$*" >&2; }
# A new IMDSv2 token per read: a stop or hibernation outlives any token.
read_state() {
  local t s
  t="$(curl -fsS -m 5 -X PUT -H "X-aws-ec2-metadata-token-ttl-seconds: 60" $I/api/token)" &&
    s="$(curl -fsS -m 5 -H "X-aws-ec2-metadata-token: $t" $I/meta-data/autoscaling/target-lifecycle-state)" &&
    [ -n "$s" ] && echo "$s"
}
# The state, trying for a minute.
wait_state() {
  for _ in $(seq 12); do read_state && return; sleep 5; done
  return 1
}
complete() {
  [ -n "$HOOK" ] && AWS_MAX_ATTEMPTS=5 aws autoscaling complete-lifecycle-action --region "$REGION" \
    --auto-scaling-group-name "$GROUP" --lifecycle-hook-name "$HOOK" --instance-id "$INSTANCE_ID" \
    --lifecycle-action-result "$1" && log "lifecycle action completed: $1"
}
start() {
  local state last=""
  # One job per instance: if the runner started here before, leave (decrementing).
  if [ -e "$MARKER" ]; then log "the runner already ran here; leaving"; exec "$LEAVE"; fi
  # No state at all: no group lifecycle here (or a broken IMDS); start as before warm pools.
  state="$(wait_state)" || { log "WARNING: no target lifecycle state; starting as in service"; state=InService; }
  # Wait while Warmed:* (across a stop or hibernation), Standby...; a failed read keeps the last state.
  until [ "$state" = InService ]; do
    [ "$state" = "$last" ] || log "target lifecycle state $state: runner not started"
    last="$state"; sleep 5
    state="$(read_state)" || state="$last"
  done
  # Until the hook completes, the instance is not in service and could not leave.
  if [ -n "$HOOK" ] && ! complete CONTINUE; then log "hook not completed; leaving"; exec "$LEAVE"; fi
  : > "$MARKER"
  log "in service: starting circleci-runner"
  systemctl start --no-block circleci-runner.service
}
case "${1:-}" in
  state) wait_state ;;
  complete) complete "$2" ;;
  start) start ;;
  *) exit 2 ;;
esac
EOF
} > "$ROOT$LIFECYCLE_SCRIPT"
chmod 755 "$ROOT$LIFECYCLE_SCRIPT"

step "install AWS CLI"
command -v aws >/dev/null || install_aws_cli

step "fetch runner auth token ($RUNNER_TOKEN_SOURCE)"
token_region="${RUNNER_TOKEN_REGION:-$REGION}"
case "$RUNNER_TOKEN_SOURCE" in
  ssm)
    RUNNER_TOKEN="$(aws ssm get-parameter --region "$token_region" --name "$RUNNER_TOKEN_NAME" \
      --with-decryption --query Parameter.Value --output text)" ;;
  secretsmanager)
    RUNNER_TOKEN="$(aws secretsmanager get-secret-value --region "$token_region" \
      --secret-id "$RUNNER_TOKEN_NAME" --query SecretString --output text)" ;;
  inline)
    echo "WARNING: using an inline runner token from the user data (see RUNNER_TOKEN_INLINE)" >&2
    RUNNER_TOKEN="$RUNNER_TOKEN_INLINE" ;;
  *) die "RUNNER_TOKEN_SOURCE must be ssm, secretsmanager or inline, not '$RUNNER_TOKEN_SOURCE'" ;;
esac
# Checked without printing it; also keeps it safe to put inside YAML quotes.
[[ "$RUNNER_TOKEN" =~ ^[A-Za-z0-9._~+/=-]+$ ]] || die "runner token is empty or has unexpected characters"

step "install CircleCI machine runner 3"
repo_script="$(mktemp)"
curl -fsSL --retry 5 "$RUNNER_REPO_SCRIPT_URL" -o "$repo_script"
bash "$repo_script"
rm -f "$repo_script"
apt_get install circleci-runner
# The package may start the service with its placeholder config; keep it down until configured.
systemctl stop circleci-runner.service 2>/dev/null || true

step "create job user $RUNNER_USER"
id -u "$RUNNER_USER" >/dev/null 2>&1 || useradd --create-home --shell /bin/bash "$RUNNER_USER"
# `sudo -i` in command_prefix needs a login shell; package-made accounts may have nologin.
usermod --shell /bin/bash "$RUNNER_USER"
install -d -m 755 "$ROOT/var/lib/circleci-runner" "$ROOT$RUNNER_TASK_AGENT_DIR"
install -d -m 750 "$ROOT$RUNNER_WORKING_DIR"
chown "$RUNNER_USER:" "$ROOT$RUNNER_WORKING_DIR"

# ---------------------------------------------------------------------------
# BUILD ENVIRONMENT: add what your jobs need here (runs as root, before the
# runner starts, so no job sees a half-built machine). Examples (Docker,
# languages, sudo for jobs): userdata/README.md, "The build environment".
# ---------------------------------------------------------------------------
step "build environment"
# (nothing by default)

step "write runner config"
install -d -m 755 "$ROOT/etc/circleci-runner"
# Created 600 from the first byte: the file holds the token.
(
  umask 077
  {
    echo "# Written by runner-scaler user data. Holds the runner token: keep mode 600."
    echo "api:"
    printf '  auth_token: "%s"\n' "$RUNNER_TOKEN"
    if [ -n "$RUNNER_API_URL" ]; then printf '  url: "%s"\n' "$RUNNER_API_URL"; fi
    echo "runner:"
    printf '  name: "%s"\n' "$RUNNER_NAME_PREFIX-$INSTANCE_ID"
    echo "  mode: single-task"
    printf '  idle_timeout: "%s"\n' "$RUNNER_IDLE_TIMEOUT"
    printf '  max_run_time: "%s"\n' "$RUNNER_MAX_RUN_TIME"
    printf '  working_directory: "%s"\n' "$RUNNER_WORKING_DIR"
    echo "  cleanup_working_directory: true"
    printf '  task_agent_directory: "%s"\n' "$RUNNER_TASK_AGENT_DIR"
    printf '  command_prefix: ["sudo", "-niHu", "%s", "--"]\n' "$RUNNER_USER"
    echo "logging:"
    echo '  format: "text"'
  } > "$ROOT$CONFIG_FILE"
)
chmod 600 "$ROOT$CONFIG_FILE"
# The service runs as root (see drop-in), so jobs, running as $RUNNER_USER, cannot read the token.
chown root:root "$ROOT$CONFIG_FILE"
unset RUNNER_TOKEN RUNNER_TOKEN_INLINE

step "install systemd drop-in"
install -d -m 755 "$(dirname "$ROOT$DROPIN_FILE")"
cat > "$ROOT$DROPIN_FILE" <<EOF
# Written by runner-scaler user data.
[Service]
# One job, then the instance goes away: never restart the runner.
Restart=no
# Root, as CircleCI documents for single-task; jobs step down to $RUNNER_USER via command_prefix.
User=root
# Runs after every exit (job done, idle timeout, crash): leave the group, lowering desired capacity.
ExecStopPost=$LEAVE_SCRIPT
EOF
chmod 644 "$ROOT$DROPIN_FILE"

step "install $START_UNIT"
install -d -m 755 "$ROOT${MARKER%/*}"
# The one way the runner starts: once in service, at this boot or when a
# warm-pool instance is started or resumed.
cat > "$ROOT/etc/systemd/system/$START_UNIT" <<EOF
[Unit]
Description=runner-scaler: start circleci-runner once in service
Wants=network-online.target
After=network-online.target
[Service]
ExecStart=$LIFECYCLE_SCRIPT start
[Install]
WantedBy=multi-user.target
EOF
systemctl daemon-reload
# Never by itself at boot: a warm-pool instance must not take a job.
systemctl disable circleci-runner.service
systemctl enable "$START_UNIT"
# No-block: in a warm pool, it waits for service.
systemctl start --no-block "$START_UNIT"

step "read the target lifecycle state"
STATE="$("$ROOT$LIFECYCLE_SCRIPT" state)" || echo "WARNING: no target lifecycle state" >&2
# Set up in a warm pool: Auto Scaling may now stop or hibernate the instance.
if [[ "$STATE" == Warmed:* ]] && [ -n "$LIFECYCLE_HOOK_NAME" ]; then
  step "complete the warm-pool launch ($STATE)"
  "$ROOT$LIFECYCLE_SCRIPT" complete CONTINUE
fi

step "done"
