# The tf.Transform pipeline (fsdnet-transform) and its Beam runners, CPU only.
# docker build -f docker/pipeline.Dockerfile -t fsdnet-pipeline .
# docker run --rm -v $PWD/data:/data -v $PWD/work:/work fsdnet-pipeline \
#   --config frappe --data-dir /data/frappe --output /work/transform
FROM python:3.11-slim
WORKDIR /app
COPY setup.py README.md ./
COPY fsdnet_tf/ fsdnet_tf/
COPY pipelines/ pipelines/
COPY serving/ serving/
# kfp: every step of the Kubeflow pipeline (fsdnet-pipeline compile) runs in this image.
RUN pip install --no-cache-dir ".[pipeline]"
ENTRYPOINT ["fsdnet-transform"]
