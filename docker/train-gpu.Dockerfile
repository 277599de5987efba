# GPU training (fsdnet-train). TensorFlow's CUDA wheels bring the CUDA libraries; the
# host needs an NVIDIA driver and the NVIDIA container toolkit (docker run --gpus all).
# docker build -f docker/train-gpu.Dockerfile -t fsdnet-train-gpu .
# docker run --rm --gpus all -v $PWD/work:/work fsdnet-train-gpu \
#   --config frappe --transform-dir /work/transform --run-dir /work/runs/frappe --set train.mixed_precision=true
FROM nvidia/cuda:12.5.1-cudnn-runtime-ubuntu22.04
RUN apt-get update && apt-get install -y --no-install-recommends python3.11 python3.11-venv \
    && rm -rf /var/lib/apt/lists/* && python3.11 -m venv /venv
ENV PATH=/venv/bin:$PATH TF_USE_LEGACY_KERAS=1
WORKDIR /app
COPY setup.py README.md ./
COPY fsdnet_tf/ fsdnet_tf/
COPY pipelines/ pipelines/
COPY serving/ serving/
RUN pip install --no-cache-dir . "tensorflow[and-cuda]==2.21.0"
ENTRYPOINT ["fsdnet-train"]
