# The Lambda container image. By default on AWS's Lambda Python base image (for deploys); tests
# build the same file on a local Debian image (BASE_IMAGE=...), where awslambdaric is the entry
# point. The build fails unless every golden case gives the outputs recorded at training time.
#
# Optional inputs in build-inputs/ (see docs/deploy.md): extra CA certificates
# (ca-certificates/*.crt) and an offline wheelhouse (wheelhouse/*.whl).
ARG BASE_IMAGE=public.ecr.aws/lambda/python:3.11
# tensorflow: TensorFlow and LiteRT installed, SERVING_RUNTIME=auto picks per the manifest.
# litert: the LiteRT interpreter and numpy only, no TensorFlow (a fraction of the size).
ARG RUNTIME=tensorflow
# The artifact folders the image serves, each exported by handler.export (a folder of them: one per model).
# `make image MODEL_DIR=/any/folder` (or `make sam-build`) stages a folder from anywhere, even outside this
# repository, into build-inputs/models/ first, since a build reads only its context.
ARG MODEL_DIR=model_artifacts
# Optional: the manifest digest the function is pinned to (MODEL_DIGEST), as `python -m handler digest` prints it.
ARG MODEL_DIGEST=""

# Stage 1: the pinned serving dependencies, installed into a folder that stage 2 copies, so the
# wheelhouse and the CA certificates never become layers of the final image.
FROM ${BASE_IMAGE} AS deps
ARG RUNTIME
COPY build-inputs/ca-certificates/ /tmp/build-inputs/ca-certificates/
COPY build-inputs/wheelhouse/ /tmp/build-inputs/wheelhouse/
COPY pyproject.toml scripts/serving_requirements.py scripts/install-serving-deps.sh /tmp/build/
RUN sh /tmp/build/install-serving-deps.sh /opt/deps /tmp/build-inputs /tmp/build/pyproject.toml ${RUNTIME}

# Stage 2: the function.
FROM ${BASE_IMAGE}
ARG RUNTIME
ENV LAMBDA_TASK_ROOT=/var/task \
    TF_CPP_MIN_LOG_LEVEL=2 \
    PYTHONDONTWRITEBYTECODE=1
WORKDIR /var/task
COPY --from=deps /opt/deps/ /var/task/
COPY scripts/lambda-entrypoint.sh /tmp/lambda-entrypoint.sh
# AWS's image has /lambda-entrypoint.sh (its runtime + emulator); any other base gets ours.
RUN if [ -x /lambda-entrypoint.sh ]; then rm /tmp/lambda-entrypoint.sh; \
    else mv /tmp/lambda-entrypoint.sh /lambda-entrypoint.sh && chmod 755 /lambda-entrypoint.sh; fi
# The model's inputs come after the dependencies, so images of other models share every layer above (a cached
# build of another model copies and verifies only its own files).
ARG MODEL_DIR
ARG MODEL_DIGEST
COPY ${MODEL_DIR}/ /var/task/model_artifacts/
# Only now: an ENV named like a build argument hides it from every later instruction (COPY ${MODEL_DIR} above).
# The model served unless the function sets MODEL_DIR (the template does, from ModelName).
ENV MODEL_DIR=/var/task/model_artifacts/churn \
    MODEL_DIGEST=${MODEL_DIGEST}
COPY handler/ /var/task/handler/
# Our modules' bytecode, written by the image's own Python: with PYTHONDONTWRITEBYTECODE and Lambda's read-only
# root, every cold start would compile them again otherwise (pip compiled the dependencies when it installed them).
RUN python -m compileall -q /var/task/handler
# The image is only as good as its answers: replay every golden case of every model in it through
# the real code (custom layers from each artifact's own code/), with the installed libraries, and fail
# the build on any difference: on the runtime the image is named for, then on the one that will serve
# (SERVING_RUNTIME=auto).
RUN for dir in /var/task/model_artifacts/*/; do \
      PYTHONPATH=/var/task MODEL_DIR="$dir" MODEL_DIGEST= python -m handler verify --runtime ${RUNTIME} \
      && PYTHONPATH=/var/task MODEL_DIR="$dir" MODEL_DIGEST= python -m handler verify || exit 1; \
    done
# A pin must name a model of the image: every start would refuse the function otherwise.
RUN [ -z "${MODEL_DIGEST}" ] \
    || PYTHONPATH=/var/task python -m handler digest /var/task/model_artifacts/*/ | grep -qx "${MODEL_DIGEST}" \
    || { echo "MODEL_DIGEST=${MODEL_DIGEST} pins none of the models in the image" >&2; exit 1; }
ENTRYPOINT ["/lambda-entrypoint.sh"]
CMD ["handler.app.lambda_handler"]
