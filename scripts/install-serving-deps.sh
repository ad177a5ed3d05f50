#!/bin/sh
# Runs inside `docker build` (the Dockerfile's deps stage): pip-installs the pinned serving
# requirements into TARGET, trusting the optional extra CA certificates and, when a wheelhouse
# is given, without any index. Usage: install-serving-deps.sh TARGET INPUTS_DIR PYPROJECT [RUNTIME]
# RUNTIME is tensorflow (default) or litert (no TensorFlow installed at all).
set -eu
target=$1 inputs=$2 pyproject=$3 runtime=${4:-tensorflow}

# awslambdaric is the entry point on base images that are not AWS's (AWS's has its own runtime).
with_ric=""
[ -x /lambda-entrypoint.sh ] || with_ric="--with awslambdaric"
# shellcheck disable=SC2086
python "$(dirname "$0")/serving_requirements.py" "$pyproject" --runtime "$runtime" $with_ric > /tmp/requirements.txt
echo "serving requirements:" && cat /tmp/requirements.txt

set -- --no-cache-dir --disable-pip-version-check --target "$target" -r /tmp/requirements.txt

# Extra CA certificates (a TLS-re-signing proxy, a corporate network): add them to pip's own
# bundle for this build only; they do not reach the final image.
if ls "$inputs"/ca-certificates/*.crt >/dev/null 2>&1; then
    bundle=/tmp/ca-bundle.pem
    python -c "import pip._vendor.certifi as c; print(c.where())" | xargs cat > "$bundle"
    cat "$inputs"/ca-certificates/*.crt >> "$bundle"
    echo "trusting $(ls "$inputs"/ca-certificates/*.crt | wc -l) extra CA certificate file(s)"
    set -- "$@" --cert "$bundle"
fi

if ls "$inputs"/wheelhouse/*.whl >/dev/null 2>&1; then
    echo "installing offline from the wheelhouse ($(ls "$inputs"/wheelhouse/*.whl | wc -l) wheels)"
    set -- "$@" --no-index --find-links "$inputs/wheelhouse"
fi

python -m pip install "$@"
