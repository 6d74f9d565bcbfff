# >>> userdata/shared.sh: edit it there, then run scripts/sync-template-userdata.sh
IMDS="http://169.254.169.254/latest"
LEAVE_SCRIPT="/usr/local/bin/runner-leave-group"
LIFECYCLE_SCRIPT="/usr/local/bin/runner-lifecycle"
START_UNIT="runner-scaler-start.service"
MARKER="/var/lib/runner-scaler/runner-started" # the runner has started here
ENV_FILE="/etc/runner-scaler/instance.env" # this instance, written at boot
IMAGE_FILE="/etc/runner-scaler/image" # a bake's last write
export DEBIAN_FRONTEND=noninteractive

# == Helpers
STEP="start"
step() { STEP="$1"; echo "==> [runner-scaler] $STEP"; }
# On failure, name the step (not the command: it may hold the token).
on_exit() {
  local rc=$?
  if [ "$rc" -eq 0 ]; then return; fi
  echo "[runner-scaler] FAILED during step: $STEP (exit $rc)" >&2
  # Leaving needs the identity (never read when baking).
  [ "$ON_FAILURE" = leave ] && [ -e "$ROOT$ENV_FILE" ] || return 0
  # With a hook the launch waits on it: ABANDON, and it is terminated.
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

# Wait for dpkg's lock (unattended-upgrades, at first boot).
apt_get() { apt-get -o DPkg::Lock::Timeout=600 -y -q "$@"; }

# AWS's CLI v2 bundle (why: userdata/README.md).
install_aws_cli() {
  local tmp
  tmp="$(mktemp -d)"
  curl -fsSL --retry 5 "https://awscli.amazonaws.com/awscli-exe-linux-$(uname -m).zip" -o "$tmp/awscliv2.zip"
  unzip -q "$tmp/awscliv2.zip" -d "$tmp"
  "$tmp/aws/install" --update
  rm -rf "$tmp"
}

# == Install phase, first part: packages (and "$@"), our scripts, the AWS CLI.
install_common() {
step "install prerequisites"
apt_get update
apt_get install curl ca-certificates unzip "$@"

step "install $LEAVE_SCRIPT"
install -d -m 755 "$ROOT/usr/local/bin" "$ROOT${MARKER%/*}" "$ROOT${ENV_FILE%/*}"
{
  echo "#!/bin/bash"
  echo "# Written by runner-scaler user data: leave the group once the runner exits."
  printf '# shellcheck source=/dev/null\n. %q\n' "$ROOT$ENV_FILE"
  cat <<'EOF'
set -uo pipefail
log() { logger -t runner-leave-group -- "$*"; echo "$*" >&2; }

log "runner exited (result=${SERVICE_RESULT:-?} status=${EXIT_STATUS:-?}); leaving the group"
# Already shutting down (scale-in, spot, stop): nothing to do.
if [ "$(systemctl is-system-running 2>/dev/null)" = "stopping" ]; then
  log "system is already stopping; not calling Auto Scaling"
  exit 0
fi

# The decrement is the point: without it the group launches a replacement.
for attempt in $(seq 1 "$ATTEMPTS"); do
  if err="$(aws autoscaling terminate-instance-in-auto-scaling-group --region "$REGION" \
       --instance-id "$INSTANCE_ID" --should-decrement-desired-capacity 2>&1 >/dev/null)"; then
    log "terminate-instance-in-auto-scaling-group accepted for $INSTANCE_ID (attempt $attempt)"
    exit 0
  fi
  [ -z "$err" ] || echo "${err:0:500}" >&2
  log "terminate-instance-in-auto-scaling-group failed (attempt $attempt/$ATTEMPTS)"
  # At the minimum (refused): AT_MINIMUM=replace terminates without it.
  if [ "$AT_MINIMUM" = replace ] && [[ "$err" == *"desiredSize equals minSize"* ]]; then
    log "at the group's minimum: terminating without the decrement"
    aws autoscaling terminate-instance-in-auto-scaling-group --region "$REGION" \
      --instance-id "$INSTANCE_ID" --no-should-decrement-desired-capacity >/dev/null && exit 0
    break
  fi
  if [ "$attempt" -lt "$ATTEMPTS" ]; then sleep "$DELAY"; DELAY=$((DELAY * 2)); fi
done

# The launch template terminates on shutdown: replaced, not billed.
log "giving up on Auto Scaling; powering off"
systemctl poweroff
EOF
} > "$ROOT$LEAVE_SCRIPT"
chmod 755 "$ROOT$LEAVE_SCRIPT"

step "install $LIFECYCLE_SCRIPT"
{
  echo "#!/bin/bash"
  echo "# Written by runner-scaler user data. Usage: runner-lifecycle state | complete CONTINUE|ABANDON | start"
  printf '# shellcheck source=/dev/null\n. %q\nMARKER=%q\nLEAVE=%q\nUNIT=%q\n' "$ROOT$ENV_FILE" "$ROOT$MARKER" "$ROOT$LEAVE_SCRIPT" "$AGENT.service"
  cat <<'EOF'
set -uo pipefail
I=http://169.254.169.254/latest
log() { logger -t runner-lifecycle -- "$*"; echo "$*" >&2; }
# A new IMDSv2 token per read: a stop outlives any token.
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
  # One job per instance: it ran here before, so leave.
  if [ -e "$MARKER" ]; then log "the runner already ran here; leaving"; exec "$LEAVE"; fi
  # No state (no group, or IMDS broken): start anyway.
  state="$(wait_state)" || { log "WARNING: no target lifecycle state; starting as in service"; state=InService; }
  # Wait while Warmed:*, Standby...; a failed read keeps the state.
  until [ "$state" = InService ]; do
    [ "$state" = "$last" ] || log "target lifecycle state $state: runner not started"
    last="$state"; sleep 5
    state="$(read_state)" || state="$last"
  done
  # Until the hook completes it is not in service, and could not leave.
  if [ -n "$HOOK" ] && ! complete CONTINUE; then log "hook not completed; leaving"; exec "$LEAVE"; fi
  : > "$MARKER"
  log "in service: starting $UNIT"
  systemctl start --no-block "$UNIT"
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
}

# == Install phase, last part: the one way the runner starts, once in service
# (never by itself: a warm-pool instance takes no job); the boot phase enables it.
install_start_unit() {
cat > "$ROOT/etc/systemd/system/$START_UNIT" <<EOF
[Unit]
Description=runner-scaler: start $AGENT once in service
Wants=network-online.target
After=network-online.target
[Service]
ExecStart=$LIFECYCLE_SCRIPT start
[Install]
WantedBy=multi-user.target
EOF
systemctl daemon-reload
systemctl disable "$AGENT.service"
}

# == Boot phase: this instance; nothing it writes may be baked.
boot_identity() {
step "read instance identity (IMDSv2)"
local t
t="$(curl -fsS --retry 5 --retry-connrefused -X PUT \
  -H "X-aws-ec2-metadata-token-ttl-seconds: 300" "$IMDS/api/token")"
imds() { curl -fsS --retry 5 --retry-connrefused -H "X-aws-ec2-metadata-token: $t" "$IMDS/meta-data/$1"; }
INSTANCE_ID="$(imds instance-id)"
REGION="${AWS_REGION_OVERRIDE:-$(imds placement/region)}"
[[ "$INSTANCE_ID" =~ ^i-[0-9a-f]+$ ]] || die "unexpected instance id from IMDS: $INSTANCE_ID"
[ -n "$REGION" ] || die "could not determine the region"
[[ "$LEAVE_AT_MINIMUM" =~ ^(retry|replace)$ ]] || die "LEAVE_AT_MINIMUM: retry or replace, not '$LEAVE_AT_MINIMUM'"
echo "instance $INSTANCE_ID in $REGION"
install -d -m 755 "$ROOT${ENV_FILE%/*}"
{
  echo "# Written by runner-scaler user data at boot."
  printf 'INSTANCE_ID=%q\nREGION=%q\nGROUP=%q\nHOOK=%q\n' "$INSTANCE_ID" "$REGION" \
    "$AUTO_SCALING_GROUP_NAME" "$LIFECYCLE_HOOK_NAME"
  # shellcheck disable=SC2016  # expanded when sourced
  printf 'ATTEMPTS="${LEAVE_ATTEMPTS:-%s}"\nDELAY="${LEAVE_RETRY_DELAY:-%s}"\nAT_MINIMUM="${LEAVE_AT_MINIMUM:-%s}"\n' \
    "$LEAVE_ATTEMPTS" "$LEAVE_RETRY_DELAY" "$LEAVE_AT_MINIMUM"
} > "$ROOT$ENV_FILE"
}

# Sets the caller's local `token`, checked without printing it.
fetch_token() {
step "fetch the token ($RUNNER_TOKEN_SOURCE)"
local region="${RUNNER_TOKEN_REGION:-$REGION}"
case "$RUNNER_TOKEN_SOURCE" in
  ssm)
    token="$(aws ssm get-parameter --region "$region" --name "$RUNNER_TOKEN_NAME" \
      --with-decryption --query Parameter.Value --output text)" ;;
  secretsmanager)
    token="$(aws secretsmanager get-secret-value --region "$region" \
      --secret-id "$RUNNER_TOKEN_NAME" --query SecretString --output text)" ;;
  inline)
    echo "WARNING: using an inline token from the user data (see RUNNER_TOKEN_INLINE)" >&2
    token="$RUNNER_TOKEN_INLINE" ;;
  *) die "RUNNER_TOKEN_SOURCE must be ssm, secretsmanager or inline, not '$RUNNER_TOKEN_SOURCE'" ;;
esac
# Also keeps it safe to put inside the config's quotes.
[[ "$token" =~ ^[A-Za-z0-9._~+/=-]+$ ]] || die "the token is empty or has unexpected characters"
unset RUNNER_TOKEN_INLINE
}

# The boot phase's last part.
start_in_service() {
step "enable $START_UNIT"
# For later boots (a warm-pool start).
systemctl enable --no-reload "$START_UNIT"
# No-block: in a warm pool, it waits for service.
systemctl start --no-block "$START_UNIT"

step "read the target lifecycle state"
STATE="$("$ROOT$LIFECYCLE_SCRIPT" state)" || echo "WARNING: no target lifecycle state" >&2
# Set up in a warm pool: it may now be stopped or hibernated.
if [[ "$STATE" == Warmed:* ]] && [ -n "$LIFECYCLE_HOOK_NAME" ]; then
  step "complete the warm-pool launch ($STATE)"
  "$ROOT$LIFECYCLE_SCRIPT" complete CONTINUE
fi
}

# == Main (the script's last line calls it)
main() {
KEY="$(install_key)"
baked="$(sed -n 's/^key=//p' "$ROOT$IMAGE_FILE" 2>/dev/null || true)"
case "$PHASE" in
  install)
    install_phase
    step "mark the image baked"
    printf '# Baked by runner-scaler user data (RUNNER_SCALER_PHASE=install).\nkey=%s\n%s=%s\nbaked_at=%s\n' \
      "$KEY" "${AGENT//-/_}" "$(dpkg-query -W -f '${Version}' "$AGENT")" "$(date -u +%FT%TZ)" > "$ROOT$IMAGE_FILE"
    ;;
  auto)
    boot_identity
    if [ "$baked" = "$KEY" ]; then
      echo "baked image ($(grep -v '^[#k]' "$ROOT$IMAGE_FILE" | paste -sd ' ')): boot phase only"
    else
      [ -z "$baked" ] || echo "WARNING: image baked by another install phase (key $baked): installing; rebuild it" >&2
      install_phase
    fi
    boot_phase
    ;;
  *) die "RUNNER_SCALER_PHASE must be auto or install, not '$PHASE'" ;;
esac
step "done"
}
# <<< userdata/shared.sh
