"""The Open Inference Protocol's gRPC service (`inference.GRPCInferenceService`, with Triton's
model configuration and statistics extensions), and the
harness's `bench.BenchWorker` extension, as protobuf modules generated from the `.proto` files
beside this one. The generated `*_pb2*.py` files are committed, so grpcio-tools is only needed
to regenerate them, from the repository root:

    python -m grpc_tools.protoc -I . --python_out=. --grpc_python_out=. \\
        runners/grpc_v2/inference.proto runners/grpc_v2/model_config.proto \\
        runners/grpc_v2/bench_worker.proto

They need protobuf and grpcio at least as new as the generator that wrote them (the versions
pinned from below in pyproject.toml).
"""
