"""The gRPC gateway server (server.py): start, steer and inspect orders over the protobuf API in protos/, with its
request mapping and validation (mapping.py), errors as google.rpc statuses (errors.py), admission under load
(admission.py), who may call (security.py) and its read of the attempt log (repository.py).

Imports common, the generated stubs and the services' contracts only; the client side lives in client."""
