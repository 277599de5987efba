# TensorFlow Serving with fsdnet_tf's model, batching and monitoring configs.
# Build from the repository root:  docker build -f docker/serving.Dockerfile -t fsdnet-serving .
# The SavedModel versions are mounted at /models/fsdnet (see docker-compose.yml).
FROM tensorflow/serving:2.19.1
COPY serving/configs/ /config/
EXPOSE 8500 8501
ENTRYPOINT ["tensorflow_model_server", \
  "--port=8500", "--rest_api_port=8501", \
  "--model_config_file=/config/models.config", "--model_config_file_poll_wait_seconds=30", \
  "--enable_batching=true", "--batching_parameters_file=/config/batching.config", \
  "--monitoring_config_file=/config/monitoring.config", \
  "--enable_model_warmup=true"]
