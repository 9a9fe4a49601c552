#!/usr/bin/env bash
# Deploys infra/template.yaml -- the same template that goes to AWS -- to the
# local AWS emulator, then runs the EMULATOR-ONLY step that applies what moto's
# CloudFormation ignores (bucket versioning, Object Lock, lifecycle, policies,
# S3->SQS notification; queue policy, alarms, PITR), and prints the stack
# outputs as JSON (also written to .labpipe/stack/outputs.json). Re-runnable.
#
#   usage: scripts/deploy-local.sh [--endpoint URL] [--stack NAME] [--param KEY=VALUE]...
#
# Without --endpoint it uses $AWS_ENDPOINT_URL, else the emulator started by
# 'scripts/stack.sh start'. It refuses endpoints that are not on this machine.
# Details: infra/deploy_local.py --help.
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$REPO/.venv"

case "${1:-}" in
  -h|--help) sed -n '2,12p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 0 ;;
esac

if ! "$VENV/bin/python" -c 'import boto3, yaml' >/dev/null 2>&1; then
  echo "deploy-local: .venv is missing boto3, running bootstrap (venv step)" >&2
  bash "$REPO/scripts/bootstrap.sh" venv
fi

exec "$VENV/bin/python" "$REPO/infra/deploy_local.py" "$@"
