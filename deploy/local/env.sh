# shellcheck shell=bash
# Local defaults for pgfleet's tests and tools, matching deploy/local/services.sh.
# Source it:  . deploy/local/env.sh
# A variable that is already set (and not empty) keeps its value.

: "${PGFLEET_TEST_PG_URL:=postgresql://postgres@127.0.0.1:5432/postgres}"
: "${PGFLEET_AMQP_URL:=amqp://guest:guest@127.0.0.1:5672/%2f}"
: "${PGFLEET_TEST_S3_ENDPOINT:=http://127.0.0.1:9000}"
: "${PGFLEET_TEST_RABBITMQ_API_URL:=http://127.0.0.1:15672}"
: "${AWS_ACCESS_KEY_ID:=pgfleet}"
: "${AWS_SECRET_ACCESS_KEY:=pgfleet-secret}"
: "${AWS_REGION:=us-east-1}"
: "${PGFLEET_STATE_URL:=postgresql://postgres@127.0.0.1:5432/pgfleet_state}"

export PGFLEET_TEST_PG_URL PGFLEET_AMQP_URL PGFLEET_TEST_S3_ENDPOINT PGFLEET_TEST_RABBITMQ_API_URL \
    AWS_ACCESS_KEY_ID AWS_SECRET_ACCESS_KEY AWS_REGION PGFLEET_STATE_URL
