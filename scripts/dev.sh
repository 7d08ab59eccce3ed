#!/usr/bin/env bash
# `make run`: starts what is missing (Postgres, Redis), builds and migrates bulkd,
# creates a dev organization and API key, prints how to call the API, then runs
# the API and the worker in this process (Ctrl-C stops it).
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"

export DATABASE_URL=${DATABASE_URL:-postgres://postgres@127.0.0.1:5432/bulkd?sslmode=disable}
export REDIS_URL=${REDIS_URL:-redis://127.0.0.1:6379/0}
export HTTP_ADDR=${HTTP_ADDR:-:8080}
export BASE_URL=${BASE_URL:-http://localhost:8080}
# Development only: the queue UI needs a password, and admin/admin is the dev one.
export ADMIN_USERNAME=${ADMIN_USERNAME:-admin}
export ADMIN_PASSWORD=${ADMIN_PASSWORD:-admin}
# A development key for webhooks' secrets (never use it in production), and
# webhooks allowed to a receiver on this machine.
export WEBHOOK_SECRET_KEY=${WEBHOOK_SECRET_KEY:-ZGV2LW9ubHktd2ViaG9vay1rZXktbm90LTQtcHJvZCE=}
export WEBHOOK_ALLOW_PRIVATE=${WEBHOOK_ALLOW_PRIVATE:-true}
# A development key that signs the report links of the emails (never use it in
# production), and, without SMTP, each email written as files to open.
export REPORT_SECRET=${REPORT_SECRET:-ZGV2LW9ubHktcmVwb3J0LWtleS1ub3QtNC1wcm9kISE=}
export MAIL_DIR=${MAIL_DIR:-.local/mail}
# Prometheus metrics on a port of their own, on this machine only.
export METRICS_ADDR=${METRICS_ADDR-127.0.0.1:9100}

if ! command -v go >/dev/null 2>&1 && [[ -x /usr/local/go/bin/go ]]; then
  export PATH=$PATH:/usr/local/go/bin
fi
command -v go >/dev/null 2>&1 || { echo "dev.sh: go is not installed (https://go.dev/dl/)" >&2; exit 1; }

scripts/services.sh

echo "building bin/bulkd"
go build -o bin/bulkd ./cmd/bulkd
bin/bulkd migrate

org=$(bin/bulkd org create --name "Dev org" --notify-email dev@example.com | tail -n 1 | tr -d '[:space:]')
[[ -n $org ]] || { echo "dev.sh: 'bulkd org create' printed no id" >&2; exit 1; }
key=$(bin/bulkd apikey create --org "$org" | tail -n 1 | tr -d '[:space:]')
[[ -n $key ]] || { echo "dev.sh: 'bulkd apikey create' printed no key" >&2; exit 1; }

example=examples/tratta-bulk.json # one row of the Tratta bulk API's example; examples/README.md lists the others

base=${BASE_URL%/}
admin_password='from $ADMIN_PASSWORD'
[[ $ADMIN_PASSWORD == admin ]] && admin_password='admin: dev only'

line='────────────────────────────────────────────────────────────────────────'
cat <<EOF

┌$line
│ bulkd dev: organization $org (notify: dev@example.com)
│
│ API key (shown once):
│   $key
│
│ Submit a bulk (from $root):
│   curl -sS -X POST $base/api/v1/bulk -H "Authorization: Bearer $key" -H 'Content-Type: application/json' --data @$example
│
│ Then poll it and read its row errors (<id>: the bulk id in the 202 reply):
│   curl -sS $base/api/v1/bulk/<id> -H "Authorization: Bearer $key"
│   curl -sS $base/api/v1/bulk/<id>/errors -H "Authorization: Bearer $key"
│
│ Queue UI: $base/admin/queues  (user $ADMIN_USERNAME, password $admin_password)
${METRICS_ADDR:+│ Metrics: http://$METRICS_ADDR/metrics
}│ Email: ${SMTP_HOST:+SMTP via $SMTP_HOST:${SMTP_PORT:-587}}${SMTP_HOST:-no SMTP_HOST set: each completion email is written to $MAIL_DIR/ (.eml and .html: open the .html in a browser)}
└$line

EOF

exec bin/bulkd serve
