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

# Stage 1: the pinned serving dependencies, installed into a folder that stage 2 copies, so the
# wheelhouse and the CA certificates never become layers of the final image.
FROM ${BASE_IMAGE} AS deps
ARG RUNTIME
COPY build-inputs/ /tmp/build-inputs/
COPY pyproject.toml scripts/serving_requirements.py scripts/install-serving-deps.sh /tmp/build/
RUN sh /tmp/build/install-serving-deps.sh /opt/deps /tmp/build-inputs /tmp/build/pyproject.toml ${RUNTIME}

# Stage 2: the function.
FROM ${BASE_IMAGE}
ARG RUNTIME
ENV LAMBDA_TASK_ROOT=/var/task \
    MODEL_DIR=/var/task/model_artifacts/churn \
    TF_CPP_MIN_LOG_LEVEL=2 \
    PYTHONDONTWRITEBYTECODE=1
WORKDIR /var/task
COPY --from=deps /opt/deps/ /var/task/
COPY scripts/lambda-entrypoint.sh /tmp/lambda-entrypoint.sh
# AWS's image has /lambda-entrypoint.sh (its runtime + emulator); any other base gets ours.
RUN if [ -x /lambda-entrypoint.sh ]; then rm /tmp/lambda-entrypoint.sh; \
    else mv /tmp/lambda-entrypoint.sh /lambda-entrypoint.sh && chmod 755 /lambda-entrypoint.sh; fi
COPY model_artifacts/ /var/task/model_artifacts/
COPY handler/ /var/task/handler/
# The image is only as good as its answers: replay every golden case of every model in it through
# the real code, with the installed libraries, and fail the build on any difference: on the
# runtime the image is named for, then on the one that will serve (SERVING_RUNTIME=auto).
RUN for dir in /var/task/model_artifacts/*/; do \
      PYTHONPATH=/var/task MODEL_DIR="$dir" python -m handler verify --runtime ${RUNTIME} \
      && PYTHONPATH=/var/task MODEL_DIR="$dir" python -m handler verify || exit 1; \
    done
ENTRYPOINT ["/lambda-entrypoint.sh"]
CMD ["handler.app.lambda_handler"]
