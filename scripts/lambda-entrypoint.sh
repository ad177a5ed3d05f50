#!/bin/sh
# The entry point on base images that are not AWS's Lambda image, which ships its own
# /lambda-entrypoint.sh: runs the handler (the CMD) with awslambdaric. Under Lambda or an
# emulator AWS_LAMBDA_RUNTIME_API is set; without it, start the emulator if the image has one.
set -eu
export LAMBDA_TASK_ROOT="${LAMBDA_TASK_ROOT:-/var/task}"
cd "$LAMBDA_TASK_ROOT"
# awslambdaric does not put LAMBDA_TASK_ROOT on the import path; the dependencies live there too.
export PYTHONPATH="$LAMBDA_TASK_ROOT${PYTHONPATH:+:$PYTHONPATH}"
if [ -z "${AWS_LAMBDA_RUNTIME_API:-}" ]; then
    if [ -x /usr/local/bin/aws-lambda-rie ]; then
        exec /usr/local/bin/aws-lambda-rie python -m awslambdaric "$@"
    fi
    echo "AWS_LAMBDA_RUNTIME_API is not set: run this image in Lambda, under 'sam local', or add" \
         "the runtime interface emulator as /usr/local/bin/aws-lambda-rie" >&2
    exit 64
fi
exec python -m awslambdaric "$@"
