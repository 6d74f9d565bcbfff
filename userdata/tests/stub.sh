#!/bin/bash
# One stub for every command the user data touches; run.sh links it under each
# command's name. It appends "name args..." to $STUB_LOG and prints canned answers.
# Knobs: STUB_AWS_FAIL (a service, ssm|secretsmanager|autoscaling, or one call,
# e.g. "autoscaling complete-lifecycle-action"), STUB_AWS_AT_MIN (1: a decrement
# is refused as at the group's minimum; both: and the call without it fails),
# STUB_SSM_VALUE,
# STUB_ID_RC (exit code of `id`, 1 = user missing), STUB_SYSTEM_STATE,
# STUB_LIFECYCLE (the target lifecycle states that successive reads answer,
# comma-separated, the last one repeating; "none" = HTTP 404; default InService),
# STUB_FAIL (a command that fails, e.g. apt-get).
set -uo pipefail
name="$(basename "$0")"
{ printf '%s' "$name"; printf ' %s' "$@"; echo; } >> "${STUB_LOG:?STUB_LOG must be set}"
args=" $* "
if [ "$name" = "${STUB_FAIL:-}" ]; then echo "$name stub: failing as told (STUB_FAIL)" >&2; exit 100; fi

case "$name" in
  curl)
    case "$args" in
      *" -X PUT "*api/token*) echo "stub-imds-session-token" ;;
      *meta-data/instance-id*) echo "i-0123456789abcdef0" ;;
      *meta-data/placement/region*) echo "eu-west-1" ;;
      *meta-data/autoscaling/target-lifecycle-state*)
        IFS=, read -ra states <<<"${STUB_LIFECYCLE:-InService}"
        n="$(cat "$STUB_LOG.reads" 2>/dev/null || echo 0)"
        echo $((n + 1)) > "$STUB_LOG.reads"
        if [ "$n" -ge "${#states[@]}" ]; then n=$((${#states[@]} - 1)); fi
        if [ "${states[n]}" = none ]; then exit 22; fi # what curl -f does on a 404
        echo "${states[n]}" ;;
      *keys.openpgp.org*) echo "-----BEGIN PGP PUBLIC KEY BLOCK----- (stub)" ;; # Buildkite's key
      *packagecloud.io*)
        # The repository setup script: write a harmless one where -o points.
        while [ $# -gt 0 ]; do
          if [ "$1" = "-o" ]; then echo 'echo "stub: package repository configured"' > "$2"; fi
          shift
        done ;;
      *) echo "curl stub: unexpected call:$args" >&2; exit 22 ;;
    esac ;;
  aws)
    service="${1:-}"
    if [ -n "${STUB_AWS_FAIL:-}" ] && { [ "$service" = "$STUB_AWS_FAIL" ] || [ "$service ${2:-}" = "$STUB_AWS_FAIL" ]; }; then
      echo "An error occurred (AccessDeniedException) when calling the $service API (stub)" >&2
      exit 254
    fi
    # AWS's refusal at the group's minimum, for a decrement.
    if [ -n "${STUB_AWS_AT_MIN:-}" ] && [[ "$args" == *" terminate-instance-in-auto-scaling-group "*" --should-decrement-desired-capacity "* ]]; then
      echo "An error occurred (ValidationError) when calling the TerminateInstanceInAutoScalingGroup operation: Currently, desiredSize equals minSize (1). Terminating instance without replacement will violate group's min size constraint. Either set shouldDecrementDesiredCapacity flag to false or lower group's min size." >&2
      exit 254
    fi
    # STUB_AWS_AT_MIN=both: the call without the decrement fails too.
    if [ "${STUB_AWS_AT_MIN:-}" = both ] && [[ "$args" == *" --no-should-decrement-desired-capacity "* ]]; then
      echo "An error occurred (Throttling) when calling the TerminateInstanceInAutoScalingGroup operation: Rate exceeded (stub)" >&2
      exit 254
    fi
    case "$service" in
      ssm) echo "${STUB_SSM_VALUE:-runner-token-from-ssm}" ;;
      secretsmanager) echo "runner-token-from-secretsmanager" ;;
      autoscaling) echo '{"Activity": {"StatusCode": "InProgress"}}' ;;
    esac ;;
  systemctl)
    if [ "${1:-}" = "is-system-running" ]; then echo "${STUB_SYSTEM_STATE:-running}"; fi ;;
  id) exit "${STUB_ID_RC:-1}" ;;
  # The installed package's version.
  dpkg-query) case "$args" in *buildkite-agent*) echo "3.120.0-stub" ;; *) echo "3.1.0-stub" ;; esac ;;
  # A keyring from an armored key.
  gpg) if [ "${1:-}" = --dearmor ]; then echo "stub keyring from: $(cat)"; fi ;;
  *) ;; # apt-get, useradd, usermod, chown, logger, sleep, unzip, snap: log only
esac
exit 0
