from setuptools import find_packages, setup

setup(
    name="fsdnet_tf",
    version="0.1.0",
    description="FSDNet (fusion self-distillation on DCNv2) CTR models: tf.Transform pipeline, "
                "Keras training, TF Serving export",
    python_requires=">=3.11,<3.12",
    packages=find_packages(include=["fsdnet_tf", "fsdnet_tf.*", "pipelines", "pipelines.*",
                                     "serving", "serving.*"]),
    package_data={"fsdnet_tf": ["configs/*.yaml"], "serving": ["configs/*.config"]},
    install_requires=[
        "tensorflow==2.21.0",
        "tf-keras==2.21.0",
        "tensorflow-recommenders==0.7.7",
        "tensorflow-transform==1.21.0",
        "tfx-bsl==1.21.0",
        "apache-beam[gcp]==2.77.0",
        # tfx-bsl 1.21 requires the 2.19 serving API protos; they speak the same gRPC API.
        "tensorflow-serving-api==2.19.1",
        "pandas==3.1.1",
        "numpy==2.4.6",
        "pyarrow==25.0.1",
        "pyyaml==6.0.3",
        "matplotlib==3.11.2",
        "tensorboard==2.21.0",
        "grpcio==1.85.1",
    ],
    # kfp 2.17 needs kubernetes < 31 (the manifests' schema test uses its models); docker: kfp's local
    # runner imports it, and without the package the repository's docker/ folder would stand in for it.
    extras_require={"pipeline": ["kfp==2.17.3"],
                    "dev": ["pytest==9.2.0", "pytest-xdist==3.8.0", "scipy==1.17.1", "kfp==2.17.3", "kubernetes==30.1.0", "docker==7.1.0",
                            "scikit-learn==1.9.1"]},   # the RQ6 report's t-SNE and silhouette
    entry_points={"console_scripts": [
        "fsdnet-transform=pipelines.transform_cli:main",
        "fsdnet-train=fsdnet_tf.training.cli:main",
        "fsdnet-export=serving.export_cli:main",
        "fsdnet-serve=serving.serve_cli:main",
        "fsdnet-score=serving.score_cli:main",
        "fsdnet-demo=serving.demo:main",
        "fsdnet-menu=serving.menu:main",
        "fsdnet-pipeline=pipelines.pipeline_cli:main",
        "fsdnet-criteo-synth=pipelines.criteo_synth_cli:main",
    ]},
)
