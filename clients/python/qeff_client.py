"""Minimal grpcio client for qeff (example; not used by the tests).

Generate the stubs first:
    python -m grpc_tools.protoc -I protos --python_out=. --grpc_python_out=. protos/qeff/v1/*.proto
Then: python clients/python/qeff_client.py 127.0.0.1:50051 tests/fixtures/hf/gpt2 "Hello world"
"""
import sys

import grpc
from qeff.v1 import compiler_pb2, compiler_pb2_grpc, exporter_pb2, exporter_pb2_grpc, runner_pb2, runner_pb2_grpc


def last_result(stream):
    result = None
    for event in stream:
        if event.HasField("progress"):
            print(f"  {event.progress.stage}: {event.progress.message}", file=sys.stderr)
        else:
            result = event.result
    return result


def main(address, model, prompt):
    channel = grpc.insecure_channel(address)
    exported = last_result(exporter_pb2_grpc.ExporterStub(channel).Export(exporter_pb2.ExportRequest(model=model)))
    compiled = last_result(compiler_pb2_grpc.CompilerStub(channel).Compile(
        compiler_pb2.CompileRequest(export_key=exported.artifact.key, prefill_seq_len=32, ctx_len=128)))
    runner = runner_pb2_grpc.RunnerStub(channel)
    model_info = runner.Load(runner_pb2.LoadRequest(qpc_key=compiled.artifact.key)).model
    for event in runner.Generate(runner_pb2.GenerateRequest(model_id=model_info.model_id, prompt=prompt, max_new_tokens=32)):
        print(event.text, end="", flush=True)
        if event.done:
            print(f"\nTTFT {event.stats.ttft_ms:.1f} ms, decode {event.stats.decode_tokens_per_s:.1f} tokens/s")


if __name__ == "__main__":
    main(*sys.argv[1:4])
