"""Sweeps across many machines: each configuration of a Hydra sweep measured whole on one
machine of the tier it asks for, its run folder sent back as a shard and gathered into the
sweep folder, so `bench-report`, `bench.results.load` and the notebooks read one sweep.

Two engines, one gathering (`bench.cluster.shards`): Ray (`hydra/launcher=ray`, the driver in
`bench.cluster.ray_sweep`, the node's side in `bench.cluster.node_run`), and Kubernetes Indexed
Jobs writing shards to a shared volume (`bench.cluster.k8s_jobs`). Nothing here measures: a
node measures by running `python -m bench` itself, as a user would on that machine.
"""
